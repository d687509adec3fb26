//! The store behind the sink: `object_store`'s S3 client driven from the sink's thread
//! on a small runtime of its own. Requests are not retried here (the client's own
//! retries are off): a failed request fails the sink's flush, and the runner retries it
//! with backoff, counted in `sluice_sink_retries_total`.

use super::aws_files;
use crate::SinkError;
use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{ClientOptions, MultipartId, ObjectStore, ObjectStoreExt, PutOptions, PutPayload, RetryConfig};
use std::sync::Arc;
use std::time::Duration;

/// What the sink needs of a store: single PUTs and multipart uploads.
pub trait Store: ObjectStore + MultipartStore {}
impl<T: ObjectStore + MultipartStore> Store for T {}

/// Connection settings (from the sink's config).
#[derive(Debug, Clone)]
pub struct Settings {
    pub bucket: String,
    pub region: Option<String>,
    pub endpoint: Option<String>,
    pub virtual_hosted_style: bool,
    pub request_timeout: Duration,
}

/// Build the S3 client: the environment's `AWS_*` settings, then the usual AWS files for
/// what the environment does not set, then the config's options.
pub fn s3(s: &Settings) -> Result<Arc<dyn Store>, SinkError> {
    let mut b = AmazonS3Builder::from_env().with_bucket_name(&s.bucket);
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if env("AWS_ACCESS_KEY_ID").is_none() {
        if let Some(c) = aws_files::credentials() {
            b = b.with_access_key_id(c.key_id).with_secret_access_key(c.secret_key);
            if let Some(t) = c.token {
                b = b.with_token(t);
            }
        }
    }
    let region = s
        .region
        .clone()
        .or_else(|| env("AWS_REGION"))
        .or_else(|| env("AWS_DEFAULT_REGION"))
        .or_else(aws_files::region)
        .unwrap_or_else(|| "us-east-1".to_string());
    b = b.with_region(region).with_virtual_hosted_style_request(s.virtual_hosted_style);
    if let Some(e) = &s.endpoint {
        b = b.with_endpoint(e);
    }
    // (The client options replace the builder's: plain HTTP is allowed here.)
    let client = ClientOptions::new()
        .with_timeout(s.request_timeout)
        .with_connect_timeout(Duration::from_secs(5))
        .with_allow_http(s.endpoint.as_deref().is_some_and(|e| e.starts_with("http://")));
    let retry = RetryConfig { max_retries: 0, retry_timeout: s.request_timeout, ..RetryConfig::default() };
    let store = b
        .with_client_options(client)
        .with_retry(retry)
        .build()
        .map_err(|e| SinkError::Other(format!("s3: cannot configure the client: {e}")))?;
    Ok(Arc::new(store))
}

/// A store and the runtime its requests run on.
pub struct Client {
    rt: tokio::runtime::Runtime,
    store: Arc<dyn Store>,
}

fn err(op: &str, key: &str, e: object_store::Error) -> SinkError {
    SinkError::Other(format!("s3 {op} of `{key}` failed: {e}"))
}

impl Client {
    pub fn new(store: Arc<dyn Store>) -> Result<Client, SinkError> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        Ok(Client { rt, store })
    }

    pub fn put(&self, key: &str, data: Bytes) -> Result<(), SinkError> {
        let path = Path::from(key);
        let payload = PutPayload::from(data);
        self.rt
            .block_on(self.store.put_opts(&path, payload, PutOptions::default()))
            .map(|_| ())
            .map_err(|e| err("PUT", key, e))
    }

    pub fn create_multipart(&self, key: &str) -> Result<MultipartId, SinkError> {
        let path = Path::from(key);
        self.rt.block_on(self.store.create_multipart(&path)).map_err(|e| err("multipart create", key, e))
    }

    pub fn put_part(&self, key: &str, id: &MultipartId, idx: usize, data: Bytes) -> Result<PartId, SinkError> {
        let path = Path::from(key);
        self.rt
            .block_on(self.store.put_part(&path, id, idx, PutPayload::from(data)))
            .map_err(|e| err(&format!("part {}", idx + 1), key, e))
    }

    /// Complete a multipart upload. When the request fails, the object may still have
    /// been completed (the answer was lost): keys are never reused, so an object under
    /// the key means this upload completed.
    pub fn complete(&self, key: &str, id: &MultipartId, parts: Vec<PartId>) -> Result<(), SinkError> {
        let path = Path::from(key);
        match self.rt.block_on(self.store.complete_multipart(&path, id, parts)) {
            Ok(_) => Ok(()),
            Err(e) => match self.rt.block_on(self.store.head(&path)) {
                Ok(_) => Ok(()),
                Err(_) => Err(err("multipart complete", key, e)),
            },
        }
    }
}
