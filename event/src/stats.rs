//! Per-component counters: kept as atomics for `/api/v1/status` and mirrored into the
//! Prometheus recorder. Updated once per batch, never per event.

use metrics::{counter, gauge, Counter, Gauge};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

pub struct ComponentStats {
    pub name: String,
    pub kind: &'static str,
    pub type_name: String,
    events_in: AtomicU64,
    events_out: AtomicU64,
    bytes_in: AtomicU64,
    unread_bytes: AtomicU64,
    started: AtomicBool,
    dropped: Mutex<BTreeMap<&'static str, u64>>,
    retries: AtomicU64,
    parse_errors: AtomicU64,
    m_parse_errors: Option<Counter>,
    m_in: Counter,
    m_out: Counter,
    m_bytes: Counter,
    m_unread: Gauge,
    m_retries: Option<Counter>,
}

fn labels(name: &str, kind: &'static str, ty: &str) -> [(&'static str, String); 3] {
    [("component", name.to_string()), ("component_kind", kind.to_string()), ("component_type", ty.to_string())]
}

impl ComponentStats {
    pub fn new(name: &str, kind: &'static str, type_name: &str) -> ComponentStats {
        let l = labels(name, kind, type_name);
        ComponentStats {
            name: name.into(),
            kind,
            type_name: type_name.into(),
            events_in: AtomicU64::new(0),
            events_out: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            unread_bytes: AtomicU64::new(0),
            started: AtomicBool::new(false),
            dropped: Mutex::new(BTreeMap::new()),
            retries: AtomicU64::new(0),
            parse_errors: AtomicU64::new(0),
            m_parse_errors: (kind == "transform").then(|| counter!("sluice_parse_errors_total", &l)),
            m_in: counter!("sluice_events_in_total", &l),
            m_out: counter!("sluice_events_out_total", &l),
            m_bytes: counter!("sluice_bytes_in_total", &l),
            m_unread: gauge!("sluice_file_unread_bytes", &l),
            // Only sinks retry: the series exists only for them.
            m_retries: (kind == "sink").then(|| counter!("sluice_sink_retries_total", &l)),
        }
    }
    pub fn events_in(&self, n: u64, bytes: u64) {
        self.events_in.fetch_add(n, Relaxed);
        self.m_in.increment(n);
        if bytes > 0 {
            self.bytes_in.fetch_add(bytes, Relaxed);
            self.m_bytes.increment(bytes);
        }
    }
    pub fn events_out(&self, n: u64) {
        self.events_out.fetch_add(n, Relaxed);
        self.m_out.increment(n);
    }
    pub fn dropped(&self, n: u64, reason: &'static str) {
        if n == 0 {
            return;
        }
        *self.dropped.lock().unwrap().entry(reason).or_default() += n;
        let mut l = labels(&self.name, self.kind, &self.type_name).to_vec();
        l.push(("reason", reason.to_string()));
        counter!("sluice_events_dropped_total", &l).increment(n);
    }
    pub fn parse_errors(&self, n: u64) {
        if n > 0 {
            self.parse_errors.fetch_add(n, Relaxed);
            if let Some(c) = &self.m_parse_errors {
                c.increment(n);
            }
        }
    }
    pub fn retry(&self) {
        self.retries.fetch_add(1, Relaxed);
        if let Some(c) = &self.m_retries {
            c.increment(1);
        }
    }
    pub fn set_unread_bytes(&self, b: u64) {
        self.unread_bytes.store(b, Relaxed);
        self.m_unread.set(b as f64);
    }
    pub fn set_started(&self) {
        self.started.store(true, Relaxed);
    }
    pub fn is_started(&self) -> bool {
        self.started.load(Relaxed)
    }
    pub fn snapshot(&self) -> StatusEntry {
        StatusEntry {
            name: self.name.clone(),
            kind: self.kind,
            r#type: self.type_name.clone(),
            started: self.is_started(),
            events_in: self.events_in.load(Relaxed),
            events_out: self.events_out.load(Relaxed),
            bytes_in: self.bytes_in.load(Relaxed),
            events_dropped: self.dropped.lock().unwrap().clone(),
            unread_bytes: (self.kind == "source").then(|| self.unread_bytes.load(Relaxed)),
            sink_retries: (self.kind == "sink").then(|| self.retries.load(Relaxed)),
            parse_errors: (self.kind == "transform").then(|| self.parse_errors.load(Relaxed)),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct StatusEntry {
    pub name: String,
    pub kind: &'static str,
    pub r#type: String,
    pub started: bool,
    pub events_in: u64,
    pub events_out: u64,
    pub bytes_in: u64,
    pub events_dropped: BTreeMap<&'static str, u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unread_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sink_retries: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parse_errors: Option<u64>,
}
