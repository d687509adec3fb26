//! Sink `loki`: push to Grafana Loki (`POST {endpoint}/loki/api/v1/push`).
//!
//! ```toml
//! [sinks.loki]
//! type = "loki"
//! inputs = ["masked"]                       # mask first: labels and lines leave sluice
//! endpoint = "http://loki:3100"
//! labels = { service = "{source}", level = "{level}", env = "prod" }
//! structured_metadata = ["trace_id"]
//! tenant_id = "ops"                         # X-Scope-OrgID
//! # encoding = "protobuf" (snappy logproto, default) or "json"; line_format = "json" | "raw" | "logfmt"
//! # bearer_token = "${LOKI_TOKEN}" or basic_auth = { user = "…", password = "${LOKI_PASSWORD}" }
//! ```
//! * Batching: events are grouped into streams by their label set, entries sorted by
//!   time within each stream, and pushed when `batch_max_bytes` of lines are buffered or
//!   the oldest has waited `batch_max_wait` (the runner's linger).
//! * Delivery: upstream is acknowledged only after a 2xx. Connection errors, 5xx and 429
//!   are retried by the runner with exponential backoff and jitter (a `Retry-After` is
//!   honoured); the same request is sent again. Other 4xx answers are not retried: the
//!   request's entries go to the dead-letter file (NDJSON, one entry a line with the
//!   server's reason), then the batch is acknowledged: nothing is dropped silently.
//! * Loki's limits: lines over `max_line_bytes` (256 KiB) are cut and get the structured
//!   metadata `truncated=true`; at most 15 labels; label names sanitised to
//!   `[a-zA-Z_][a-zA-Z0-9_]*`.
//! * Cardinality: at most `max_streams` label sets (default 1000) are kept per hour; the
//!   label values of further sets become `__overflow__` (static labels stay), counted in
//!   `sluice_loki_streams_overflow_total` and warned about at most once a minute.

pub mod proto;

use crate::{OptionError, Sink, SinkConfig, SinkContext, SinkError};
use serde::Deserialize;
use sluice_config::units::{self, ByteSize};
use sluice_event::{Batch, Event, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// Loki's logproto `PushRequest`, snappy-compressed.
    #[default]
    Protobuf,
    /// Loki's JSON push format.
    Json,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LineFormat {
    /// The event as one JSON object (timestamp, message, fields).
    #[default]
    Json,
    /// The message text (the line as read, unless a parse stage extracted a message),
    /// as masked.
    Raw,
    /// The message followed by the fields as `key=value`.
    Logfmt,
}

/// HTTP basic authentication.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    /// User name.
    pub user: String,
    /// Password (use `${ENV}`; never the secret itself in the file).
    pub password: String,
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LokiSinkConfig {
    /// Loki's base URL (`http://loki:3100`); requests go to `{endpoint}/loki/api/v1/push`.
    pub endpoint: String,
    /// `"protobuf"` (snappy logproto, what Loki's own clients send) or `"json"`.
    #[serde(default)]
    pub encoding: Encoding,
    /// Stream labels: static values or `{field}` from the event (`{source}` is the source
    /// component). A label whose field is missing is left out. At most 15.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Fields sent as structured metadata of each entry (not indexed: fine for ids).
    #[serde(default)]
    pub structured_metadata: Vec<String>,
    /// What the log line is: `"json"` (the whole event), `"raw"` (the message text) or `"logfmt"`.
    #[serde(default)]
    pub line_format: LineFormat,
    /// The tenant (`X-Scope-OrgID`) for multi-tenant Loki.
    pub tenant_id: Option<String>,
    /// A bearer token (use `${ENV}`).
    pub bearer_token: Option<String>,
    /// Basic authentication.
    pub basic_auth: Option<BasicAuth>,
    /// Extra CA certificate (PEM) for an `https` endpoint with a private CA.
    pub ca_file: Option<String>,
    /// Push when this many bytes of lines are buffered.
    #[serde(default = "default_batch_bytes")]
    pub batch_max_bytes: ByteSize,
    /// Push when the oldest buffered line has waited this long.
    #[serde(default = "default_batch_wait")]
    pub batch_max_wait: units::Duration,
    /// Longer lines are cut to this size and marked `truncated` (Loki rejects > 256 KB).
    #[serde(default = "default_max_line")]
    pub max_line_bytes: ByteSize,
    /// Most label sets per hour; further ones fold into `__overflow__` values.
    #[serde(default = "default_max_streams")]
    pub max_streams: usize,
    /// Where entries Loki refuses (4xx other than 429) are written, with the reason
    /// (default: `DATA_DIR/dead-letter/NAME.ndjson`).
    pub dead_letter_path: Option<String>,
    /// How long one request may take.
    #[serde(default = "default_timeout")]
    pub request_timeout: units::Duration,
}

fn default_batch_bytes() -> ByteSize {
    ByteSize(1 << 20)
}
fn default_batch_wait() -> units::Duration {
    units::Duration::from_secs(1)
}
fn default_max_line() -> ByteSize {
    ByteSize(256 << 10)
}
fn default_max_streams() -> usize {
    1000
}
fn default_timeout() -> units::Duration {
    units::Duration::from_secs(30)
}

/// Loki's default limit of labels per stream.
const MAX_LABELS: usize = 15;
const OVERFLOW: &str = "__overflow__";

/// One label: its sanitised name and its value (static, or a field).
#[derive(Debug, Clone)]
enum LabelValue {
    Static(String),
    Field(String),
}

impl SinkConfig for LokiSinkConfig {
    fn exposed_fields(&self) -> Vec<crate::Exposed> {
        self.labels
            .iter()
            .filter_map(|(name, v)| {
                let field = v.strip_prefix('{')?.strip_suffix('}')?;
                Some(crate::Exposed {
                    option: format!("labels.{name}"),
                    field: field.to_string(),
                    advice: "labels are indexed and leave sluice: put it in `structured_metadata` (masked) instead",
                })
            })
            .collect()
    }

    fn build(&self, ctx: &SinkContext) -> Result<Box<dyn Sink>, OptionError> {
        let endpoint = self.endpoint.trim_end_matches('/');
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(OptionError::new("endpoint", "must be an http:// or https:// URL"));
        }
        if self.labels.len() > MAX_LABELS {
            return Err(OptionError::new("labels", format!("at most {MAX_LABELS} labels (Loki's limit)")));
        }
        let mut labels = Vec::new();
        for (name, v) in &self.labels {
            let value = match v.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
                Some(field) if !field.is_empty() && !field.contains(['{', '}']) => LabelValue::Field(field.to_string()),
                _ if v.contains(['{', '}']) => {
                    return Err(OptionError::new(
                        format!("labels.{name}"),
                        "either a static value or one `{field}` reference",
                    ))
                }
                _ => LabelValue::Static(v.clone()),
            };
            labels.push((sanitize(name), value));
        }
        labels.sort_by(|a, b| a.0.cmp(&b.0));
        if self.bearer_token.is_some() && self.basic_auth.is_some() {
            return Err(OptionError::new("bearer_token", "give either `bearer_token` or `basic_auth`"));
        }
        if self.max_streams == 0 {
            return Err(OptionError::new("max_streams", "must be at least 1"));
        }
        let mut client = reqwest::blocking::Client::builder().timeout(*self.request_timeout);
        if let Some(ca) = &self.ca_file {
            let pem =
                std::fs::read(ca).map_err(|e| OptionError::new("ca_file", format!("cannot read \"{ca}\": {e}")))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| OptionError::new("ca_file", format!("\"{ca}\": {e}")))?;
            client = client.add_root_certificate(cert);
        }
        let client = client.build().map_err(|e| OptionError::new("endpoint", e.to_string()))?;
        let dead_letter = match &self.dead_letter_path {
            Some(p) => PathBuf::from(p),
            None => ctx.data_dir.join("dead-letter").join(format!("{}.ndjson", ctx.name)),
        };
        let l = [("component", ctx.name.clone())];
        Ok(Box::new(LokiSink {
            url: format!("{endpoint}/loki/api/v1/push"),
            cfg: self.clone(),
            labels,
            client,
            dead_letter,
            streams: HashMap::new(),
            buffered: 0,
            seen: HashSet::new(),
            seen_since: Instant::now(),
            last_overflow_warning: None,
            sent_bytes: 0,
            encoder: sluice_event::ndjson::Encoder::new(),
            m_requests: metrics::counter!("sluice_loki_requests_total", &l),
            m_bytes: metrics::counter!("sluice_loki_bytes_total", &l),
            m_failures: metrics::counter!("sluice_loki_failures_total", &l),
            m_dead: metrics::counter!("sluice_loki_dead_letter_entries_total", &l),
            m_overflow: metrics::counter!("sluice_loki_streams_overflow_total", &l),
        }))
    }
}

/// Loki label names: `[a-zA-Z_][a-zA-Z0-9_]*`.
fn sanitize(name: &str) -> String {
    let mut s: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    s
}

struct Entry {
    ts: i64,
    line: String,
    metadata: Vec<(String, String)>,
}

pub struct LokiSink {
    url: String,
    cfg: LokiSinkConfig,
    labels: Vec<(String, LabelValue)>,
    client: reqwest::blocking::Client,
    dead_letter: PathBuf,
    /// Buffered entries by label set (LogQL text).
    streams: HashMap<String, Vec<Entry>>,
    buffered: usize,
    /// Label sets seen this hour (the cardinality limit).
    seen: HashSet<String>,
    seen_since: Instant,
    last_overflow_warning: Option<Instant>,
    sent_bytes: u64,
    encoder: sluice_event::ndjson::Encoder,
    m_requests: metrics::Counter,
    m_bytes: metrics::Counter,
    m_failures: metrics::Counter,
    m_dead: metrics::Counter,
    m_overflow: metrics::Counter,
}

fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::Str(s) => Some(s.as_str().to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Int(i) => Some(i.to_string()),
        Value::Float(f) => Some(f.to_string()),
        other => {
            let mut out = Vec::new();
            sluice_event::ndjson::write_value(&mut out, other);
            Some(String::from_utf8_lossy(&out).into_owned())
        }
    }
}

fn field_text(e: &Event, name: &str) -> Option<String> {
    match e.fields.get(name) {
        Some(v) => value_text(v),
        None => e.meta(name).map(str::to_string),
    }
}

/// `{a="x", b="y"}` with Loki's escaping.
fn logql(labels: &[(String, String)]) -> String {
    let mut s = String::from("{");
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(k);
        s.push_str("=\"");
        for c in v.chars() {
            match c {
                '"' => s.push_str("\\\""),
                '\\' => s.push_str("\\\\"),
                '\n' => s.push_str("\\n"),
                c => s.push(c),
            }
        }
        s.push('"');
    }
    s.push('}');
    s
}

impl LokiSink {
    fn label_set(&mut self, e: &Event) -> String {
        let values: Vec<(String, String)> = self
            .labels
            .iter()
            .filter_map(|(name, v)| match v {
                LabelValue::Static(s) => Some((name.clone(), s.clone())),
                LabelValue::Field(f) => field_text(e, f).filter(|t| !t.is_empty()).map(|t| (name.clone(), t)),
            })
            .collect();
        let key = logql(&values);
        if self.seen_since.elapsed() > Duration::from_secs(3600) {
            self.seen.clear();
            self.seen_since = Instant::now();
        }
        if self.seen.contains(&key) {
            return key;
        }
        if self.seen.len() < self.cfg.max_streams {
            self.seen.insert(key.clone());
            return key;
        }
        // Over the limit: the values that come from fields become `__overflow__`.
        self.m_overflow.increment(1);
        if self.last_overflow_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
            tracing::warn!(
                max_streams = self.cfg.max_streams,
                "loki: more label sets than max_streams; folding into __overflow__"
            );
            self.last_overflow_warning = Some(Instant::now());
        }
        let folded: Vec<(String, String)> = self
            .labels
            .iter()
            .filter_map(|(name, v)| match v {
                LabelValue::Static(s) => Some((name.clone(), s.clone())),
                LabelValue::Field(f) => {
                    field_text(e, f).filter(|t| !t.is_empty()).map(|_| (name.clone(), OVERFLOW.to_string()))
                }
            })
            .collect();
        logql(&folded)
    }

    fn line(&mut self, e: &Event) -> String {
        match self.cfg.line_format {
            // The message text: the line as read, unless a parse stage took a message out
            // of it. Never the raw bytes: `mask` rewrites the message, not the raw line.
            LineFormat::Raw => e.message().to_string(),
            LineFormat::Json => {
                let mut out = Vec::with_capacity(e.raw.len() + 64);
                self.encoder.encode_event(&mut out, e);
                out.pop(); // the newline
                String::from_utf8(out).unwrap_or_else(|b| String::from_utf8_lossy(b.as_bytes()).into_owned())
            }
            LineFormat::Logfmt => {
                let mut s = e.message().to_string();
                for (k, v) in e.fields.iter() {
                    let t = value_text(v).unwrap_or_default();
                    s.push(' ');
                    s.push_str(k);
                    s.push('=');
                    if t.is_empty() || t.contains([' ', '"', '=']) {
                        s.push_str(&format!("{t:?}"));
                    } else {
                        s.push_str(&t);
                    }
                }
                s
            }
        }
    }

    fn request(&self) -> PushBody {
        let mut streams: Vec<(&String, &Vec<Entry>)> = self.streams.iter().collect();
        streams.sort_by(|a, b| a.0.cmp(b.0));
        match self.cfg.encoding {
            Encoding::Protobuf => {
                let req = proto::PushRequest {
                    streams: streams
                        .iter()
                        .map(|(labels, entries)| proto::StreamAdapter {
                            labels: (*labels).clone(),
                            entries: entries
                                .iter()
                                .map(|en| proto::EntryAdapter {
                                    timestamp: Some(proto::Timestamp {
                                        seconds: en.ts.div_euclid(1_000_000_000),
                                        nanos: en.ts.rem_euclid(1_000_000_000) as i32,
                                    }),
                                    line: en.line.clone(),
                                    structured_metadata: en
                                        .metadata
                                        .iter()
                                        .map(|(n, v)| proto::LabelPairAdapter { name: n.clone(), value: v.clone() })
                                        .collect(),
                                })
                                .collect(),
                            hash: 0,
                        })
                        .collect(),
                };
                PushBody { body: proto::encode(&req), content_type: "application/x-protobuf" }
            }
            Encoding::Json => {
                let streams: Vec<serde_json::Value> = streams
                    .iter()
                    .map(|(labels, entries)| {
                        serde_json::json!({
                            "stream": parse_logql(labels),
                            "values": entries.iter().map(|en| {
                                let md: serde_json::Map<String, serde_json::Value> =
                                    en.metadata.iter().map(|(n, v)| (n.clone(), v.clone().into())).collect();
                                if md.is_empty() {
                                    serde_json::json!([en.ts.to_string(), en.line])
                                } else {
                                    serde_json::json!([en.ts.to_string(), en.line, md])
                                }
                            }).collect::<Vec<_>>(),
                        })
                    })
                    .collect();
                PushBody {
                    body: serde_json::to_vec(&serde_json::json!({ "streams": streams })).expect("JSON"),
                    content_type: "application/json",
                }
            }
        }
    }

    /// Entries Loki refused: one NDJSON line each, with the reason, appended and synced.
    fn dead_letter(&mut self, status: u16, reason: &str) -> Result<(), SinkError> {
        if let Some(dir) = self.dead_letter.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&self.dead_letter)?;
        let mut out = String::new();
        let mut n = 0u64;
        for (labels, entries) in &self.streams {
            for en in entries {
                let md: serde_json::Map<String, serde_json::Value> =
                    en.metadata.iter().map(|(k, v)| (k.clone(), v.clone().into())).collect();
                out.push_str(
                    &serde_json::json!({"status": status, "reason": reason, "labels": labels, "timestamp_ns": en.ts, "line": en.line, "structured_metadata": md})
                        .to_string(),
                );
                out.push('\n');
                n += 1;
            }
        }
        f.write_all(out.as_bytes())?;
        f.sync_data()?;
        self.m_dead.increment(n);
        tracing::error!(status, reason = %reason, entries = n, path = %self.dead_letter.display(), "loki refused a push; entries written to the dead-letter file");
        Ok(())
    }
}

struct PushBody {
    body: Vec<u8>,
    content_type: &'static str,
}

/// `{a="x", b="y"}` back into a map (for the JSON encoding).
fn parse_logql(s: &str) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    let inner = s.trim_start_matches('{').trim_end_matches('}');
    let mut rest = inner;
    while let Some(eq) = rest.find("=\"") {
        let key = rest[..eq].trim_start_matches([',', ' ']).to_string();
        let mut val = String::new();
        let mut chars = rest[eq + 2..].char_indices();
        let mut end = rest.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => val.push('\n'),
                    Some((_, o)) => val.push(o),
                    None => {}
                },
                '"' => {
                    end = eq + 2 + i + 1;
                    break;
                }
                c => val.push(c),
            }
        }
        m.insert(key, val.into());
        rest = &rest[end.min(rest.len())..];
    }
    m
}

impl Sink for LokiSink {
    fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        let max_line = self.cfg.max_line_bytes.as_usize();
        for e in &batch.events {
            let key = self.label_set(e);
            let mut line = self.line(e);
            let mut metadata: Vec<(String, String)> = self
                .cfg
                .structured_metadata
                .iter()
                .filter_map(|f| field_text(e, f).map(|v| (sanitize(f), v)))
                .collect();
            if line.len() > max_line {
                let mut cut = max_line;
                while !line.is_char_boundary(cut) {
                    cut -= 1;
                }
                line.truncate(cut);
                metadata.push(("truncated".into(), "true".into()));
            }
            self.buffered += line.len();
            self.streams.entry(key).or_default().push(Entry { ts: e.timestamp.0, line, metadata });
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        if self.streams.is_empty() {
            return Ok(());
        }
        for entries in self.streams.values_mut() {
            entries.sort_by_key(|e| e.ts);
        }
        let PushBody { body, content_type } = self.request();
        let mut req = self.client.post(&self.url).header("Content-Type", content_type).body(body.clone());
        if let Some(t) = &self.cfg.tenant_id {
            req = req.header("X-Scope-OrgID", t);
        }
        if let Some(t) = &self.cfg.bearer_token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = &self.cfg.basic_auth {
            req = req.basic_auth(&b.user, Some(&b.password));
        }
        self.m_requests.increment(1);
        let resp = match req.send() {
            Ok(r) => r,
            Err(e) => {
                self.m_failures.increment(1);
                return Err(SinkError::Other(format!("loki push to {}: {e}", self.url)));
            }
        };
        let status = resp.status().as_u16();
        if resp.status().is_success() {
            self.sent_bytes += body.len() as u64;
            self.m_bytes.increment(body.len() as u64);
            self.streams.clear();
            self.buffered = 0;
            return Ok(());
        }
        self.m_failures.increment(1);
        let retry_after = resp
            .headers()
            .get("Retry-After")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let reason = resp.text().unwrap_or_default().trim().chars().take(500).collect::<String>();
        match status {
            429 | 500..=599 => match retry_after {
                Some(after) => {
                    Err(SinkError::RetryAfter { message: format!("loki answered {status}: {reason}"), after })
                }
                None => Err(SinkError::Other(format!("loki answered {status}: {reason}"))),
            },
            _ => {
                // Not retryable: keep the entries in the dead-letter file, then let go.
                self.dead_letter(status, &reason)?;
                self.streams.clear();
                self.buffered = 0;
                Ok(())
            }
        }
    }

    fn max_pending_batches(&self) -> usize {
        // The size limit (`wants_flush`) and `linger` decide when to push.
        usize::MAX
    }

    fn bytes_written(&self) -> u64 {
        self.sent_bytes
    }

    fn linger(&self) -> Duration {
        *self.cfg.batch_max_wait
    }

    fn wants_flush(&self) -> bool {
        self.buffered >= self.cfg.batch_max_bytes.as_usize()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_names_and_values() {
        assert_eq!(sanitize("service.name"), "service_name");
        assert_eq!(sanitize("1st"), "_1st");
        let l = logql(&[("a".into(), "x\"y".into()), ("b".into(), "1\\2".into())]);
        assert_eq!(l, "{a=\"x\\\"y\", b=\"1\\\\2\"}");
        let m = parse_logql(&l);
        assert_eq!(m["a"], "x\"y");
        assert_eq!(m["b"], "1\\2");
    }

    #[test]
    fn config_checks() {
        let ctx = SinkContext { name: "l".into(), data_dir: std::env::temp_dir() };
        let build = |extra: &str| {
            let cfg: LokiSinkConfig = toml::from_str(&format!("endpoint = \"http://127.0.0.1:1\"\n{extra}")).unwrap();
            cfg.build(&ctx).err()
        };
        let many: Vec<String> = (0..16).map(|i| format!("l{i} = \"x\"")).collect();
        let e = build(&format!("labels = {{ {} }}", many.join(", "))).unwrap();
        assert_eq!((e.key.as_str(), e.message.as_str()), ("labels", "at most 15 labels (Loki's limit)"));
        assert_eq!(build("labels = { a = \"pre-{x}\" }").unwrap().key, "labels.a");
        assert_eq!(
            build("bearer_token = \"t\"\nbasic_auth = { user = \"u\", password = \"p\" }").unwrap().key,
            "bearer_token"
        );
        assert!(build("labels = { service = \"{source}\", env = \"prod\" }").is_none());
    }
}
