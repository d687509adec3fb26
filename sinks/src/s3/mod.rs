//! Sink `s3`: NDJSON objects in S3 or any S3-compatible store, compressed, partitioned by
//! event fields and time.
//!
//! ```toml
//! [sinks.archive]
//! type = "s3"
//! inputs = ["masked"]                  # mask first: objects and keys leave sluice
//! bucket = "logs-archive"
//! region = "eu-west-1"
//! key_template = "logs/{service}/{date}/{hour}/{instance}-{seq}.ndjson.zst"
//! # endpoint = "http://127.0.0.1:9000"  # MinIO, Ceph, moto, ...
//! # compression = "zstd" | "gzip" | "none";  max_bytes = "64MiB";  max_age = "5m"
//! ```
//! * Credentials come from the environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//!   `AWS_SESSION_TOKEN`), else the usual AWS files (`~/.aws/credentials` for
//!   `$AWS_PROFILE`), else the instance's role. They never appear in the config.
//! * Objects: one open object per partition (the key without `{seq}`, see [`key`]). An
//!   object closes when it holds `max_bytes` of NDJSON (before compression), when it is
//!   `max_age` old, when more than `max_open_objects` partitions are open (the oldest
//!   closes), and when sluice shuts down. Compressed bytes are cut into parts of
//!   `part_size` as they grow; an object larger than one part is a multipart upload whose
//!   parts go out while it fills, so memory holds about one part per open object.
//! * Delivery: a batch is acknowledged upstream only when every object holding its events
//!   is complete (acknowledgements are released in order). A failed request is retried
//!   with backoff; nothing is dropped. S3 shows an object only once its PUT or multipart
//!   completion succeeds, so a crash never leaves a half-written object under a final key:
//!   the source's checkpoint had not moved, and the events are read and uploaded again
//!   (into new keys: every run has its own `{instance}`). The parts of an upload cut by a
//!   crash stay in the bucket, invisible, until aborted: give the bucket a lifecycle rule
//!   `AbortIncompleteMultipartUpload` (e.g. after 1 day).
//! * Metrics: `sluice_s3_objects_total`, `sluice_s3_bytes_total` (compressed bytes
//!   stored), `sluice_s3_events_total`, `sluice_s3_upload_seconds` (from an object's
//!   close to its completion, retries included), `sluice_s3_request_failures_total`;
//!   retries are in `sluice_sink_retries_total`.

mod aws_files;
pub mod client;
pub mod key;
mod object;

pub use object::Compression;

use crate::{OptionError, Sink, SinkConfig, SinkContext, SinkError};
use client::{Client, Settings, Store};
use key::KeyTemplate;
use object::Object;
use serde::Deserialize;
use sluice_config::units::{self, ByteSize};
use sluice_event::{ndjson::Encoder, Batch};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Part size bounds of S3 multipart uploads (all parts but the last).
const MIN_PART: u64 = 5 * 1024 * 1024;
const MAX_PART: u64 = 5 * 1024 * 1024 * 1024;

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct S3SinkConfig {
    /// Bucket name.
    pub bucket: String,
    /// Region. Default: `AWS_REGION`, else the profile's region in `~/.aws/config`, else
    /// `us-east-1`.
    #[serde(default)]
    pub region: Option<String>,
    /// Endpoint of an S3-compatible store (`http://127.0.0.1:9000`). Default (or empty): AWS.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Object key, with placeholders for event fields (`{service}`), time (`{date}`,
    /// `{year}`, `{month}`, `{day}`, `{hour}`, `{minute}`, UTC, from the event's
    /// timestamp), `{instance}` and `{seq}` (both required). Default:
    /// `logs/{date}/{hour}/{instance}-{seq}.ndjson` plus `.zst` or `.gz`.
    #[serde(default)]
    pub key_template: Option<String>,
    /// `"zstd"`, `"gzip"` or `"none"`.
    #[serde(default)]
    pub compression: Compression,
    /// Compression level (zstd 1–19, default 3; gzip 0–9, default 6).
    #[serde(default)]
    pub compression_level: Option<i32>,
    /// An object closes once it holds this much NDJSON (before compression).
    #[serde(default = "default_max_bytes")]
    pub max_bytes: ByteSize,
    /// An object closes this long after it was opened (when its first event arrived).
    #[serde(default = "default_max_age")]
    pub max_age: units::Duration,
    /// Size of the parts of a multipart upload (5 MiB to 5 GiB).
    #[serde(default = "default_part_size")]
    pub part_size: ByteSize,
    /// Most partitions with an open object; opening one more closes the oldest.
    #[serde(default = "default_max_open")]
    pub max_open_objects: usize,
    /// Time limit of one request.
    #[serde(default = "default_timeout")]
    pub request_timeout: units::Duration,
    /// Address the bucket as `https://BUCKET.s3…` instead of `https://s3…/BUCKET`.
    #[serde(default)]
    pub virtual_hosted_style: bool,
}

fn default_max_bytes() -> ByteSize {
    ByteSize(64 * 1024 * 1024)
}
fn default_max_age() -> units::Duration {
    units::Duration(Duration::from_secs(300))
}
fn default_part_size() -> ByteSize {
    ByteSize(8 * 1024 * 1024)
}
fn default_max_open() -> usize {
    64
}
fn default_timeout() -> units::Duration {
    units::Duration(Duration::from_secs(30))
}

impl S3SinkConfig {
    /// The endpoint, if set and not empty (`endpoint = "${S3_ENDPOINT:-}"` means AWS).
    fn endpoint(&self) -> Option<&str> {
        self.endpoint.as_deref().map(str::trim).filter(|e| !e.is_empty())
    }

    fn template_text(&self) -> String {
        match &self.key_template {
            Some(t) => t.clone(),
            None => format!("logs/{{date}}/{{hour}}/{{instance}}-{{seq}}.ndjson{}", self.compression.extension()),
        }
    }

    fn check(&self) -> Result<KeyTemplate, OptionError> {
        if self.bucket.trim().is_empty() {
            return Err(OptionError::new("bucket", "`bucket` must not be empty"));
        }
        if let Some(e) = self.endpoint() {
            if !(e.starts_with("http://") || e.starts_with("https://")) {
                return Err(OptionError::new("endpoint", "must be an http:// or https:// URL"));
            }
        }
        let text = self.template_text();
        let template = KeyTemplate::parse(&text).map_err(|m| OptionError::new("key_template", m))?;
        let c = self.compression;
        let mismatch = match () {
            _ if text.ends_with(".gz") => c != Compression::Gzip,
            _ if text.ends_with(".zst") || text.ends_with(".zstd") => c != Compression::Zstd,
            _ if [".ndjson", ".json", ".jsonl", ".log", ".txt"].iter().any(|x| text.ends_with(x)) => {
                c != Compression::None
            }
            _ => false,
        };
        if mismatch {
            return Err(OptionError::new(
                "key_template",
                format!("\"{text}\" ends in an extension that does not match `compression = \"{c:?}\"`").to_lowercase(),
            ));
        }
        let level = self.compression_level.unwrap_or(c.default_level());
        let ok = match c {
            Compression::Zstd => (1..=19).contains(&level),
            Compression::Gzip => (0..=9).contains(&level),
            Compression::None => self.compression_level.is_none(),
        };
        if !ok {
            return Err(OptionError::new("compression_level", format!("{level} is not a level of {c:?}")));
        }
        if !(MIN_PART..=MAX_PART).contains(&self.part_size.0) {
            return Err(OptionError::new("part_size", "must be between 5 MiB and 5 GiB (S3's limits)"));
        }
        if self.max_bytes.0 == 0 {
            return Err(OptionError::new("max_bytes", "must be more than 0"));
        }
        if self.max_age.0.is_zero() {
            return Err(OptionError::new("max_age", "must be more than 0"));
        }
        if self.max_open_objects == 0 {
            return Err(OptionError::new("max_open_objects", "must be at least 1"));
        }
        Ok(template)
    }

    /// Build a sink writing to `store` (tests use an in-memory store).
    pub fn build_with_store(&self, ctx: &SinkContext, store: Arc<dyn Store>) -> Result<S3Sink, OptionError> {
        let mut s = self.build_sink(ctx)?;
        s.client = Some(Client::new(store).map_err(|e| OptionError::new("bucket", e.to_string()))?);
        Ok(s)
    }

    fn build_sink(&self, ctx: &SinkContext) -> Result<S3Sink, OptionError> {
        let template = self.check()?;
        let l = [("component", ctx.name.clone())];
        Ok(S3Sink {
            settings: Settings {
                bucket: self.bucket.clone(),
                region: self.region.clone(),
                endpoint: self.endpoint().map(str::to_string),
                virtual_hosted_style: self.virtual_hosted_style,
                request_timeout: self.request_timeout.0,
            },
            template,
            instance: key::new_instance_id(),
            compression: self.compression,
            level: self.compression_level.unwrap_or(self.compression.default_level()),
            max_bytes: self.max_bytes.0,
            max_age: self.max_age.0,
            part_size: self.part_size.0 as usize,
            max_open: self.max_open_objects,
            client: None,
            open: HashMap::new(),
            closing: Vec::new(),
            partition: String::new(),
            current: String::new(),
            lines: Vec::with_capacity(256 * 1024),
            enc: Encoder::new(),
            written: 0,
            seq: 0,
            bytes: 0,
            m_objects: metrics::counter!("sluice_s3_objects_total", &l),
            m_bytes: metrics::counter!("sluice_s3_bytes_total", &l),
            m_events: metrics::counter!("sluice_s3_events_total", &l),
            m_failures: metrics::counter!("sluice_s3_request_failures_total", &l),
            m_latency: metrics::histogram!("sluice_s3_upload_seconds", &l),
        })
    }
}

impl SinkConfig for S3SinkConfig {
    fn build(&self, ctx: &SinkContext) -> Result<Box<dyn Sink>, OptionError> {
        Ok(Box::new(self.build_sink(ctx)?))
    }

    fn exposed_fields(&self) -> Vec<crate::Exposed> {
        // Key parts leave sluice like labels do: a sensitive field must not be one.
        let Ok(t) = KeyTemplate::parse(&self.template_text()) else { return Vec::new() };
        t.fields()
            .map(|f| crate::Exposed {
                option: "key_template".to_string(),
                field: f.to_string(),
                advice:
                    "object keys are listed in clear and leave sluice: partition by a field that is not personal data",
            })
            .collect()
    }
}

/// Bucket boundaries of `sluice_s3_upload_seconds`.
pub const UPLOAD_SECONDS_BUCKETS: &[f64] = &[0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];

pub struct S3Sink {
    settings: Settings,
    template: KeyTemplate,
    instance: String,
    compression: Compression,
    level: i32,
    max_bytes: u64,
    max_age: Duration,
    part_size: usize,
    max_open: usize,
    /// Created on the first flush (building has no side effects).
    client: Option<Client>,
    /// The open object of each partition.
    open: HashMap<String, Object>,
    /// Closed objects whose upload is not complete yet.
    closing: Vec<Object>,
    partition: String,
    current: String,
    lines: Vec<u8>,
    enc: Encoder,
    /// Batches written so far (the runner's count).
    written: u64,
    seq: u64,
    bytes: u64,
    m_objects: metrics::Counter,
    m_bytes: metrics::Counter,
    m_events: metrics::Counter,
    m_failures: metrics::Counter,
    m_latency: metrics::Histogram,
}

impl S3Sink {
    /// The id of this run, as used for `{instance}`.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Append the encoded lines to the open object of `self.current`.
    fn append_run(&mut self, events: u64) -> Result<(), SinkError> {
        if self.lines.is_empty() {
            return Ok(());
        }
        if !self.open.contains_key(self.current.as_str()) {
            if self.open.len() >= self.max_open {
                let oldest = self.open.iter().min_by_key(|(_, o)| o.opened).map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    let o = self.open.remove(&k).expect("present");
                    self.closing.push(o);
                }
            }
            self.seq += 1;
            let o = Object::new(
                key::object_key(&self.current, self.seq),
                self.written,
                self.compression,
                self.level,
                self.part_size,
            )?;
            self.open.insert(self.current.clone(), o);
        }
        let o = self.open.get_mut(self.current.as_str()).expect("opened above");
        o.append(&self.lines, events)?;
        self.lines.clear();
        if o.raw_bytes >= self.max_bytes {
            let o = self.open.remove(self.current.as_str()).expect("present");
            self.closing.push(o);
        }
        Ok(())
    }

    fn client(&mut self) -> Result<&Client, SinkError> {
        if self.client.is_none() {
            self.client = Some(Client::new(client::s3(&self.settings)?)?);
        }
        Ok(self.client.as_ref().expect("set above"))
    }

    /// Upload what is ready: parts cut from open objects, and closed objects whole.
    fn upload(&mut self, close_all: bool) -> Result<(), SinkError> {
        let now = Instant::now();
        let due: Vec<String> = self
            .open
            .iter()
            .filter(|(_, o)| close_all || now.duration_since(o.opened) >= self.max_age)
            .map(|(k, _)| k.clone())
            .collect();
        for k in due {
            let o = self.open.remove(&k).expect("present");
            self.closing.push(o);
        }
        for o in &mut self.closing {
            o.close()?;
        }
        self.client()?;
        let client = self.client.as_ref().expect("created above");
        let failed = |e: SinkError| {
            self.m_failures.increment(1);
            e
        };
        // Parts of objects still filling.
        for o in self.open.values_mut() {
            send_parts(client, o).map_err(failed)?;
        }
        // Closed objects, completed in the order they closed.
        while let Some(o) = self.closing.first_mut() {
            send_parts(client, o).map_err(failed)?;
            let tail = o.tail.clone().unwrap_or_default();
            match &mut o.upload {
                None => {
                    client.put(&o.key, tail.clone()).map_err(failed)?;
                    o.uploaded_bytes += tail.len() as u64;
                }
                Some((id, parts)) => {
                    if !tail.is_empty() {
                        let p = client.put_part(&o.key, id, parts.len(), tail.clone()).map_err(failed)?;
                        // The tail is uploaded: a retried completion must not send it again.
                        parts.push(p);
                        o.uploaded_bytes += tail.len() as u64;
                        o.tail = Some(bytes::Bytes::new());
                    }
                    client.complete(&o.key, id, parts.clone()).map_err(failed)?;
                }
            }
            let o = self.closing.remove(0);
            self.m_objects.increment(1);
            self.m_bytes.increment(o.uploaded_bytes);
            self.m_events.increment(o.events);
            if let Some(t) = o.closed {
                self.m_latency.record(t.elapsed().as_secs_f64());
            }
            self.bytes += o.uploaded_bytes;
            tracing::debug!(key = %o.key, events = o.events, bytes = o.uploaded_bytes, "s3: object stored");
        }
        Ok(())
    }
}

/// Upload the parts cut so far, starting the multipart upload on the first.
fn send_parts(client: &Client, o: &mut Object) -> Result<(), SinkError> {
    while let Some(part) = o.ready.front().cloned() {
        if o.upload.is_none() {
            o.upload = Some((client.create_multipart(&o.key)?, Vec::new()));
        }
        let (id, parts) = o.upload.as_mut().expect("started above");
        let p = client.put_part(&o.key, id, parts.len(), part.clone())?;
        parts.push(p);
        o.uploaded_bytes += part.len() as u64;
        o.ready.pop_front();
    }
    Ok(())
}

impl Sink for S3Sink {
    fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        let mut run = 0u64;
        for e in &batch.events {
            self.template.render_partition(e, &self.instance, &mut self.partition);
            if self.partition != self.current {
                self.append_run(run)?;
                run = 0;
                std::mem::swap(&mut self.partition, &mut self.current);
            }
            self.enc.encode_event(&mut self.lines, e);
            run += 1;
        }
        self.append_run(run)?;
        self.written += 1;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.upload(false)
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        self.upload(true)
    }

    fn durable_batches(&self) -> Option<u64> {
        let oldest = self.open.values().chain(&self.closing).map(|o| o.first_batch).min();
        Some(oldest.unwrap_or(self.written))
    }

    fn max_pending_batches(&self) -> usize {
        usize::MAX
    }

    fn wants_flush(&self) -> bool {
        let now = Instant::now();
        !self.closing.is_empty()
            || self.open.values().any(|o| !o.ready.is_empty() || now.duration_since(o.opened) >= self.max_age)
    }

    fn next_due(&self) -> Option<Duration> {
        let now = Instant::now();
        if !self.closing.is_empty() {
            return Some(Duration::ZERO);
        }
        self.open.values().map(|o| self.max_age.saturating_sub(now.duration_since(o.opened))).min()
    }

    fn bytes_written(&self) -> u64 {
        self.bytes
    }
}

#[cfg(test)]
mod tests;
