//! Transform `enrich`: static fields, the host name, W3C trace context, lookup tables.
//!
//! ```toml
//! [transforms.ctx]
//! type = "enrich"
//! inputs = ["parsed"]
//! fields = { env = "prod", service = "${SERVICE}" }   # set when absent
//! host = true                                        # adds `host`
//! trace_context = true                               # default true
//! [[transforms.ctx.lookup]]
//! file = "tenants.csv"                                # CSV with a header row, or .json
//! key = "user_id"
//! fields = ["tenant", "plan"]
//! ```
//! * Trace context: a W3C `traceparent` (`00-<trace-id>-<span-id>-<flags>`) in a field
//!   named `traceparent` (any case) or in the message becomes `trace_id`, `span_id`,
//!   `trace_flags`; the spellings `traceId`, `trace`, `x-trace-id`, `trace-id`,
//!   `traceid` are renamed to `trace_id`.
//! * Lookup tables are loaded into a moka cache, reloaded when the file changes (checked
//!   at most once a second); a key with no row adds nothing and is counted in
//!   `sluice_lookup_misses_total{table}`. A JSON table is an object of key → object, or
//!   an array of objects that contain the key column.

use crate::{Emit, OptionError, Outcome, Transform, TransformConfig};
use memchr::memmem;
use serde::Deserialize;
use sluice_event::{Batch, ByteStr, Event, Fields, Value};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LookupConfig {
    /// The table: a CSV file with a header row, or a JSON file (reloaded when it changes).
    pub file: String,
    /// The event field whose value is looked up in the table's key column.
    pub key: String,
    /// Columns of the matching row copied into the event.
    pub fields: Vec<String>,
    /// Most rows kept in the cache (default 1,000,000).
    pub max_rows: Option<u64>,
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrichConfig {
    /// Static fields set when absent: `{ env = "prod", service = "${SERVICE}" }`.
    #[serde(default)]
    #[schemars(with = "std::collections::BTreeMap<String, String>")]
    pub fields: toml::Table,
    /// Add `host` (this machine's name).
    #[serde(default)]
    pub host: bool,
    /// Read a W3C `traceparent` into `trace_id`, `span_id`, `trace_flags`, and rename other trace id spellings to `trace_id`.
    #[serde(default = "yes")]
    pub trace_context: bool,
    /// Lookup tables (`[[transforms.NAME.lookup]]`): add columns of the row whose key matches a field.
    #[serde(default)]
    pub lookup: Vec<LookupConfig>,
}

fn yes() -> bool {
    true
}

fn to_value(v: &toml::Value) -> Option<Value> {
    Some(match v {
        toml::Value::String(s) => Value::from(s.as_str()),
        toml::Value::Integer(i) => Value::Int(*i),
        toml::Value::Float(f) => Value::Float(*f),
        toml::Value::Boolean(b) => Value::Bool(*b),
        _ => return None,
    })
}

fn json_value(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => {
            n.as_i64().map(Value::Int).unwrap_or_else(|| Value::Float(n.as_f64().unwrap_or(0.0)))
        }
        serde_json::Value::String(s) => Value::from(s.as_str()),
        other => Value::from(other.to_string()),
    }
}

/// One lookup table.
struct Table {
    name: String,
    path: PathBuf,
    key: String,
    fields: Vec<String>,
    max_rows: u64,
    cache: moka::sync::Cache<String, Arc<Fields>>,
    mtime: Option<SystemTime>,
    checked: Instant,
    misses: metrics::Counter,
}

impl Table {
    fn load(&mut self) -> Result<(), String> {
        let meta =
            std::fs::metadata(&self.path).map_err(|e| format!("cannot read \"{}\": {e}", self.path.display()))?;
        let cache = moka::sync::Cache::new(self.max_rows);
        let is_json = self.path.extension().is_some_and(|e| e == "json");
        if is_json {
            let text = std::fs::read_to_string(&self.path).map_err(|e| format!("\"{}\": {e}", self.path.display()))?;
            let doc: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| format!("\"{}\": invalid JSON: {e}", self.path.display()))?;
            let put = |k: String, row: &serde_json::Map<String, serde_json::Value>| {
                let mut f = Fields::new();
                for name in &self.fields {
                    if let Some(v) = row.get(name) {
                        f.insert(name.as_str(), json_value(v));
                    }
                }
                cache.insert(k, Arc::new(f));
            };
            match &doc {
                serde_json::Value::Object(m) => {
                    for (k, row) in m {
                        if let serde_json::Value::Object(r) = row {
                            put(k.clone(), r);
                        }
                    }
                }
                serde_json::Value::Array(rows) => {
                    for row in rows {
                        if let serde_json::Value::Object(r) = row {
                            if let Some(k) = r.get(&self.key) {
                                let k = k.as_str().map(str::to_owned).unwrap_or_else(|| k.to_string());
                                put(k, r);
                            }
                        }
                    }
                }
                _ => return Err(format!("\"{}\": expected an object or an array of objects", self.path.display())),
            }
        } else {
            let mut rdr =
                csv::Reader::from_path(&self.path).map_err(|e| format!("\"{}\": {e}", self.path.display()))?;
            let headers = rdr.headers().map_err(|e| format!("\"{}\": {e}", self.path.display()))?.clone();
            let key_col = headers
                .iter()
                .position(|h| h == self.key)
                .ok_or_else(|| format!("\"{}\": no column `{}` in the header row", self.path.display(), self.key))?;
            let cols: Vec<(usize, &String)> = self
                .fields
                .iter()
                .map(|f| {
                    headers
                        .iter()
                        .position(|h| h == f)
                        .map(|i| (i, f))
                        .ok_or_else(|| format!("\"{}\": no column `{f}`", self.path.display()))
                })
                .collect::<Result<_, _>>()?;
            for rec in rdr.records() {
                let rec = rec.map_err(|e| format!("\"{}\": {e}", self.path.display()))?;
                let mut f = Fields::new();
                for (i, name) in &cols {
                    if let Some(v) = rec.get(*i) {
                        f.insert(name.as_str(), Value::from(v));
                    }
                }
                cache.insert(rec.get(key_col).unwrap_or("").to_string(), Arc::new(f));
            }
        }
        self.cache = cache;
        self.mtime = meta.modified().ok();
        Ok(())
    }

    fn maybe_reload(&mut self) {
        if self.checked.elapsed() < Duration::from_secs(1) {
            return;
        }
        self.checked = Instant::now();
        let m = std::fs::metadata(&self.path).ok().and_then(|m| m.modified().ok());
        if m.is_some() && m != self.mtime {
            match self.load() {
                Ok(()) => {
                    tracing_log(&format!("lookup table `{}` reloaded ({} rows)", self.name, self.cache.entry_count()))
                }
                Err(e) => tracing_log(&format!("lookup table `{}` not reloaded: {e}", self.name)),
            }
        }
    }
}

fn tracing_log(msg: &str) {
    // Transforms stay free of the logging stack; stderr JSON keeps the log format.
    eprintln!(
        "{}",
        serde_json::json!({ "level": "INFO", "fields": { "message": msg }, "target": "sluice_transforms::enrich" })
    );
}

impl TransformConfig for EnrichConfig {
    fn build(&self, _ctx: &crate::TransformContext) -> Result<Box<dyn Transform>, OptionError> {
        Ok(Box::new(self.compile()?))
    }
}

impl EnrichConfig {
    pub fn compile(&self) -> Result<Enrich, OptionError> {
        let mut fields = Vec::new();
        for (k, v) in &self.fields {
            let v = to_value(v).ok_or_else(|| {
                OptionError::new("fields", format!("`fields.{k}` must be a string, number or boolean"))
            })?;
            // Added to every event: kept once, so a clone copies a pointer (see
            // `ByteStr::interned`).
            let v = match v {
                Value::Str(s) => Value::Str(ByteStr::interned(s.as_str())),
                v => v,
            };
            fields.push((k.clone(), v));
        }
        let host = if self.host {
            let h = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|s| s.trim().to_string())
                .ok()
                .or_else(|| std::env::var("HOSTNAME").ok())
                .unwrap_or_else(|| "unknown".into());
            Some(ByteStr::interned(&h))
        } else {
            None
        };
        let mut tables = Vec::new();
        for (i, l) in self.lookup.iter().enumerate() {
            if l.fields.is_empty() {
                return Err(OptionError::new("lookup", format!("lookup[{i}]: `fields` lists no columns")));
            }
            let name = PathBuf::from(&l.file).file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
            let mut t = Table {
                misses: metrics::counter!("sluice_lookup_misses_total", "table" => name.clone()),
                name,
                path: PathBuf::from(&l.file),
                key: l.key.clone(),
                fields: l.fields.clone(),
                max_rows: l.max_rows.unwrap_or(1_000_000),
                cache: moka::sync::Cache::new(1),
                mtime: None,
                checked: Instant::now(),
            };
            t.load().map_err(|e| OptionError::new("lookup", format!("lookup[{i}]: {e}")))?;
            tables.push(t);
        }
        Ok(Enrich { fields, host, trace: self.trace_context, tables, finder: memmem::Finder::new(b"-").into_owned() })
    }
}

pub struct Enrich {
    fields: Vec<(String, Value)>,
    host: Option<ByteStr>,
    trace: bool,
    tables: Vec<Table>,
    finder: memmem::Finder<'static>,
}

const TRACE_SPELLINGS: [&str; 7] = ["traceId", "trace", "x-trace-id", "trace-id", "traceid", "TraceId", "X-Trace-Id"];

fn is_hex(b: &[u8]) -> bool {
    b.iter().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
}

/// Parse a traceparent at the start of `s`: version-traceid-spanid-flags.
fn traceparent(s: &str) -> Option<(&str, &str, &str)> {
    let b = s.as_bytes();
    if b.len() < 55 || b[2] != b'-' || b[35] != b'-' || b[52] != b'-' || !is_hex(&b[..2]) || &b[..2] == b"ff" {
        return None;
    }
    let (t, sp, fl) = (&s[3..35], &s[36..52], &s[53..55]);
    if !is_hex(t.as_bytes())
        || !is_hex(sp.as_bytes())
        || !is_hex(fl.as_bytes())
        || t.bytes().all(|c| c == b'0')
        || sp.bytes().all(|c| c == b'0')
    {
        return None;
    }
    if b.len() > 55 && b[55].is_ascii_alphanumeric() {
        return None;
    }
    Some((t, sp, fl))
}

impl Enrich {
    fn set_trace(e: &mut Event, src: &ByteStr, t: &str, sp: &str, fl: &str) {
        e.fields.insert("trace_id", Value::Str(src.slice_str(t)));
        e.fields.insert("span_id", Value::Str(src.slice_str(sp)));
        e.fields.insert("trace_flags", Value::Str(src.slice_str(fl)));
    }

    pub fn apply(&mut self, e: &mut Event) -> u64 {
        for (k, v) in &self.fields {
            if e.fields.get(k).is_none() {
                e.fields.insert(k.as_str(), v.clone());
            }
        }
        if let Some(h) = &self.host {
            if e.fields.get("host").is_none() {
                e.fields.insert("host", Value::Str(h.clone()));
            }
        }
        if self.trace {
            // traceparent in a field, then in the message.
            let tp = e.fields.iter().find(|(k, _)| k.eq_ignore_ascii_case("traceparent")).and_then(|(_, v)| match v {
                Value::Str(s) => Some(s.clone()),
                _ => None,
            });
            let mut done = false;
            if let Some(s) = tp {
                if let Some((t, sp, fl)) = traceparent(s.as_str().trim()) {
                    Self::set_trace(e, &s, t, sp, fl);
                    done = true;
                }
            }
            if !done && e.fields.get("trace_id").is_none() {
                let msg = match &e.message {
                    Some(m) => m.clone(),
                    // SAFETY: message is None only for valid UTF-8 raw bytes.
                    None => unsafe { ByteStr::from_utf8_unchecked(e.raw.clone()) },
                };
                let b = msg.as_str().as_bytes();
                for dash in self.finder.find_iter(b) {
                    if dash >= 2 && (dash == 2 || !b[dash - 3].is_ascii_alphanumeric()) {
                        if let Some((t, sp, fl)) = traceparent(&msg.as_str()[dash - 2..]) {
                            Self::set_trace(e, &msg, t, sp, fl);
                            done = true;
                            break;
                        }
                    }
                }
            }
            if !done && e.fields.get("trace_id").is_none() {
                for sp in TRACE_SPELLINGS {
                    if let Some(v) = e.fields.remove(sp) {
                        e.fields.insert("trace_id", v);
                        break;
                    }
                }
            }
        }
        let mut misses = 0;
        for t in &mut self.tables {
            t.maybe_reload();
            let key = match e.fields.get(&t.key) {
                Some(Value::Str(s)) => Some(s.as_str().to_string()),
                Some(Value::Int(i)) => Some(i.to_string()),
                _ => None,
            };
            let Some(key) = key else { continue };
            match t.cache.get(&key) {
                Some(row) => {
                    for (k, v) in row.iter() {
                        e.fields.insert(k, v.clone());
                    }
                }
                None => {
                    t.misses.increment(1);
                    misses += 1;
                }
            }
        }
        misses
    }
}

impl Transform for Enrich {
    fn process(&mut self, mut batch: Batch, out: &mut dyn Emit) -> Outcome {
        for e in &mut batch.events {
            self.apply(e);
        }
        out.emit(None, batch);
        Outcome::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use sluice_event::{Origin, OriginInfo, Timestamp};

    fn ev(msg: &str, fields: &[(&str, &str)]) -> Event {
        let mut e = Event::from_line(
            Bytes::copy_from_slice(msg.as_bytes()),
            Timestamp(0),
            Origin { info: OriginInfo::new("s", None), offset: 0 },
        );
        for (k, v) in fields {
            e.fields.insert(*k, Value::from(*v));
        }
        e
    }

    fn s<'a>(e: &'a Event, k: &str) -> Option<&'a str> {
        e.fields.get(k).and_then(Value::as_str)
    }

    #[test]
    fn static_host_and_trace() {
        let c: EnrichConfig = toml::from_str("fields = { env = \"prod\", shard = 3 }\nhost = true").unwrap();
        let mut en = c.compile().unwrap();
        let mut e = ev(
            "call with traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 done",
            &[("env", "dev")],
        );
        en.apply(&mut e);
        assert_eq!(s(&e, "env"), Some("dev"), "existing fields are kept");
        assert_eq!(e.fields.get("shard"), Some(&Value::Int(3)));
        assert!(s(&e, "host").is_some_and(|h| !h.is_empty()));
        assert_eq!(s(&e, "trace_id"), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        assert_eq!(s(&e, "span_id"), Some("00f067aa0ba902b7"));
        assert_eq!(s(&e, "trace_flags"), Some("01"));
        let mut e = ev("x", &[("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")]);
        en.apply(&mut e);
        assert_eq!(s(&e, "span_id"), Some("00f067aa0ba902b7"));
        let mut e = ev("x", &[("traceId", "abc123")]);
        en.apply(&mut e);
        assert_eq!(s(&e, "trace_id"), Some("abc123"));
        assert!(e.fields.get("traceId").is_none());
        let mut e = ev("bad 00-00000000000000000000000000000000-00f067aa0ba902b7-01", &[]);
        en.apply(&mut e);
        assert!(e.fields.get("trace_id").is_none());
    }

    #[test]
    fn lookup_csv_json_reload_and_misses() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("tenants.csv");
        std::fs::write(&csv, "user_id,tenant,plan,secret\n42,acme,gold,x\n7,globex,free,y\n").unwrap();
        let c: EnrichConfig = toml::from_str(&format!(
            "trace_context = false\n[[lookup]]\nfile = \"{}\"\nkey = \"user_id\"\nfields = [\"tenant\", \"plan\"]\n",
            csv.display()
        ))
        .unwrap();
        let mut en = c.compile().unwrap();
        let mut e = ev("m", &[("user_id", "42")]);
        assert_eq!(en.apply(&mut e), 0);
        assert_eq!(s(&e, "tenant"), Some("acme"));
        assert_eq!(s(&e, "plan"), Some("gold"));
        assert!(e.fields.get("secret").is_none());
        let mut e = ev("m", &[("user_id", "99")]);
        assert_eq!(en.apply(&mut e), 1, "a missing key is counted");
        assert!(e.fields.get("tenant").is_none());
        // Reload on change.
        std::thread::sleep(Duration::from_millis(1100));
        std::fs::write(&csv, "user_id,tenant,plan\n99,initech,pro\n").unwrap();
        let t = SystemTime::now() + Duration::from_secs(5);
        std::fs::File::options().write(true).open(&csv).unwrap().set_modified(t).unwrap();
        let mut e = ev("m", &[("user_id", "99")]);
        assert_eq!(en.apply(&mut e), 0);
        assert_eq!(s(&e, "tenant"), Some("initech"));

        let json = dir.path().join("plans.json");
        std::fs::write(&json, r#"[{"user_id": 42, "tier": 3}]"#).unwrap();
        let c: EnrichConfig = toml::from_str(&format!(
            "[[lookup]]\nfile = \"{}\"\nkey = \"user_id\"\nfields = [\"tier\"]\n",
            json.display()
        ))
        .unwrap();
        let mut en = c.compile().unwrap();
        let mut e = ev("m", &[]);
        e.fields.insert("user_id", Value::Int(42));
        en.apply(&mut e);
        assert_eq!(e.fields.get("tier"), Some(&Value::Int(3)));
        let bad: EnrichConfig =
            toml::from_str(&format!("[[lookup]]\nfile = \"{}\"\nkey = \"nope\"\nfields = [\"tier\"]\n", csv.display()))
                .unwrap();
        assert!(bad.compile().err().unwrap().message.contains("no column `nope`"));
    }
}
