//! Transform `metrics`: log-derived Prometheus metrics. Events pass through unchanged.
//!
//! ```toml
//! [[transforms.m.counter]]
//! name = "operation_retries_total"
//! help = "Retries of downstream operations"
//! when = { event = "retry" }
//! labels = ["service", "operation", "reason"]
//!
//! [[transforms.m.histogram]]
//! name = "upstream_duration_seconds"
//! field = "duration_ms"
//! scale = 0.001
//! buckets = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]
//! labels = ["upstream"]
//!
//! [[transforms.m.gauge]]
//! name = "open_circuit_breakers"
//! inc_when = { event = "breaker_state", state = "open" }
//! dec_when = { event = "breaker_state", state = "closed" }
//! ```
//! * Every metric takes an optional `when`. A counter adds 1 (or the value of `field`);
//!   a histogram observes `field × scale`; a gauge is set from `field` or moved by
//!   `inc_when` / `dec_when`. An event without the metric's `field` is skipped for that
//!   metric and counted in `sluice_metric_missing_field_total{metric}`.
//! * Label values come from event fields (mask first: they leave sluice). A missing label
//!   field gives an empty value; `source` without such a field is the source component's
//!   name (one per service in the examples). Each metric has at most `max_series` (default 1000)
//!   label combinations; events of further combinations go to one series whose labels are
//!   all `__overflow__`, counted in `sluice_metric_series_overflow_total{metric}`.
//! * Compute metrics before `sample`, so rates are not off by the sample rate.

use crate::{Emit, OptionError, Outcome, Transform, TransformConfig, TransformContext};
use metrics::{Counter, Gauge, Histogram, Label};
use serde::Deserialize;
use sluice_config::condition::Condition;
use sluice_event::{Batch, Event, Value};
use std::collections::HashMap;

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CounterSpec {
    /// The metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`; counters end in `_total`).
    pub name: String,
    /// The HELP text shown on `/metrics`.
    pub help: Option<String>,
    /// Only events matching this condition count (default: every event).
    pub when: Option<Condition>,
    /// Event fields whose values label the series (mask them first: they leave sluice).
    #[serde(default)]
    pub labels: Vec<String>,
    /// Add this field's value instead of 1.
    pub field: Option<String>,
    /// Most label combinations; further ones go to one `__overflow__` series (default 1000).
    pub max_series: Option<usize>,
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HistogramSpec {
    /// The metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`; counters end in `_total`).
    pub name: String,
    /// The HELP text shown on `/metrics`.
    pub help: Option<String>,
    /// Only events matching this condition count (default: every event).
    pub when: Option<Condition>,
    /// Event fields whose values label the series (mask them first: they leave sluice).
    #[serde(default)]
    pub labels: Vec<String>,
    /// The numeric field observed.
    pub field: String,
    /// Multiply the field by this before observing (`0.001`: milliseconds to seconds).
    pub scale: Option<f64>,
    /// Histogram bucket bounds, after `scale` (default: Prometheus's default buckets).
    pub buckets: Option<Vec<f64>>,
    /// Most label combinations; further ones go to one `__overflow__` series (default 1000).
    pub max_series: Option<usize>,
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GaugeSpec {
    /// The metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`; counters end in `_total`).
    pub name: String,
    /// The HELP text shown on `/metrics`.
    pub help: Option<String>,
    /// Only events matching this condition count (default: every event).
    pub when: Option<Condition>,
    /// Event fields whose values label the series (mask them first: they leave sluice).
    #[serde(default)]
    pub labels: Vec<String>,
    /// Set the gauge to this numeric field's value.
    pub field: Option<String>,
    /// Add 1 to the gauge when an event matches.
    pub inc_when: Option<Condition>,
    /// Subtract 1 from the gauge when an event matches.
    pub dec_when: Option<Condition>,
    /// Most label combinations; further ones go to one `__overflow__` series (default 1000).
    pub max_series: Option<usize>,
}

#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Counters (`[[transforms.NAME.counter]]`): add 1, or a field's value, per matching event.
    #[serde(default)]
    pub counter: Vec<CounterSpec>,
    /// Histograms (`[[transforms.NAME.histogram]]`): observe a numeric field × `scale`.
    #[serde(default)]
    pub histogram: Vec<HistogramSpec>,
    /// Gauges (`[[transforms.NAME.gauge]]`): set from a field, or moved by `inc_when`/`dec_when`.
    #[serde(default)]
    pub gauge: Vec<GaugeSpec>,
}

/// Prometheus' default buckets.
pub const DEFAULT_BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

impl MetricsConfig {
    /// (histogram name, buckets) pairs, for configuring the exporter before it starts.
    pub fn histogram_buckets(&self) -> Vec<(String, Vec<f64>)> {
        self.histogram
            .iter()
            .map(|h| (h.name.clone(), h.buckets.clone().unwrap_or_else(|| DEFAULT_BUCKETS.to_vec())))
            .collect()
    }
}

fn check_name(key: &'static str, name: &str, counter: bool) -> Result<(), OptionError> {
    let ok = !name.is_empty()
        && name
            .chars()
            .enumerate()
            .all(|(i, c)| c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit()));
    if !ok {
        return Err(OptionError::new(
            key,
            format!("`{name}` is not a valid Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)"),
        ));
    }
    if name.starts_with("sluice_") {
        return Err(OptionError::new(
            key,
            format!("`{name}`: names starting with `sluice_` are reserved for sluice's own metrics"),
        ));
    }
    if counter && !name.ends_with("_total") {
        return Err(OptionError::new(key, format!("counter `{name}` should end in `_total` (Prometheus naming)")));
    }
    if !counter && name.ends_with("_total") {
        return Err(OptionError::new(key, format!("`{name}`: only counters end in `_total`")));
    }
    Ok(())
}

/// Label combinations of one metric, with their handles. Looked up by a hash of the
/// values (no allocation per event), with a fast path for the previous combination (logs
/// come in runs); a new combination allocates once.
struct Series<H> {
    name: String,
    labels: Vec<String>,
    max: usize,
    /// Series indexes by label-value hash (already a good hash: no re-hashing).
    map: sluice_event::hash::HashKeyed<Vec<usize>>,
    /// (label values, handle) by series index.
    series: Vec<(Vec<String>, H)>,
    last: Option<usize>,
    count: usize,
    overflow: Option<usize>,
    overflow_counter: Counter,
    missing: Counter,
    make: fn(&str, Vec<Label>) -> H,
}

/// A label's value: the event's field, else its metadata of that name (`source`, see
/// `Event::meta`), else empty.
#[inline]
fn label_of<'a>(e: &'a Event, l: &str) -> std::borrow::Cow<'a, str> {
    match e.fields.get(l) {
        None => std::borrow::Cow::Borrowed(e.meta(l).unwrap_or("")),
        v => label_str(v),
    }
}

fn label_str(v: Option<&Value>) -> std::borrow::Cow<'_, str> {
    match v {
        Some(Value::Str(s)) => std::borrow::Cow::Borrowed(s.as_str()),
        Some(Value::Int(i)) => std::borrow::Cow::Owned(i.to_string()),
        Some(Value::Float(f)) => std::borrow::Cow::Owned(f.to_string()),
        Some(Value::Bool(b)) => std::borrow::Cow::Borrowed(if *b { "true" } else { "false" }),
        _ => std::borrow::Cow::Borrowed(""),
    }
}

impl<H: Clone> Series<H> {
    fn new(name: &str, labels: &[String], max: Option<usize>, make: fn(&str, Vec<Label>) -> H) -> Series<H> {
        Series {
            name: name.to_string(),
            labels: labels.to_vec(),
            max: max.unwrap_or(1000).max(1),
            map: HashMap::default(),
            series: Vec::new(),
            last: None,
            count: 0,
            overflow: None,
            overflow_counter: metrics::counter!("sluice_metric_series_overflow_total", "metric" => name.to_string()),
            missing: metrics::counter!("sluice_metric_missing_field_total", "metric" => name.to_string()),
            make,
        }
    }

    /// The series index for this event's label values (each label looked up once).
    fn index(&mut self, e: &Event) -> usize {
        const STACK: usize = 8;
        let n = self.labels.len();
        if n == 0 && !self.series.is_empty() {
            return 0;
        }
        if n <= STACK {
            let mut vals: [std::borrow::Cow<'_, str>; STACK] = Default::default();
            for (v, l) in vals.iter_mut().zip(&self.labels) {
                *v = label_of(e, l);
            }
            self.index_of(&vals[..n])
        } else {
            let vals: Vec<_> = self.labels.iter().map(|l| label_of(e, l)).collect();
            self.index_of(&vals)
        }
    }

    #[inline]
    fn same(&self, idx: usize, vals: &[std::borrow::Cow<'_, str>]) -> bool {
        let have = &self.series[idx].0;
        have.len() == vals.len()
            && have.iter().zip(vals).all(|(h, v)| sluice_event::short_eq(h.as_bytes(), v.as_bytes()))
    }

    fn index_of(&mut self, vals: &[std::borrow::Cow<'_, str>]) -> usize {
        if let Some(i) = self.last {
            if Some(i) != self.overflow && self.same(i, vals) {
                return i;
            }
        }
        let mut hash: u64 = 0;
        for v in vals {
            hash = sluice_event::hash::hash_bytes(hash, v.as_bytes());
        }
        if let Some(cands) = self.map.get(&hash) {
            for &i in cands {
                if self.same(i, vals) {
                    self.last = Some(i);
                    return i;
                }
            }
        }
        if self.count >= self.max {
            self.overflow_counter.increment(1);
            let i = match self.overflow {
                Some(i) => i,
                None => {
                    let labels = self.labels.iter().map(|l| Label::new(l.clone(), "__overflow__")).collect();
                    self.series.push((Vec::new(), (self.make)(&self.name, labels)));
                    self.overflow = Some(self.series.len() - 1);
                    self.series.len() - 1
                }
            };
            return i;
        }
        let vals: Vec<String> = vals.iter().map(|v| v.to_string()).collect();
        let labels = self.labels.iter().zip(&vals).map(|(k, v)| Label::new(k.clone(), v.clone())).collect();
        self.series.push((vals, (self.make)(&self.name, labels)));
        let i = self.series.len() - 1;
        self.map.entry(hash).or_default().push(i);
        self.count += 1;
        self.last = Some(i);
        i
    }

    fn get(&mut self, e: &Event) -> &H {
        let i = self.index(e);
        &self.series[i].1
    }
}

fn num(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Int(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        Value::Str(s) => s.as_str().trim().parse().ok(),
        _ => None,
    }
}

/// A cheap pre-check of a `when` that requires `event` to be one of some names: one
/// look at the event's `event` field (taken once per event) rules out most metrics
/// without evaluating their conditions.
struct Gate(Option<Box<[String]>>);

impl Gate {
    fn of(c: Option<&Condition>) -> Gate {
        Gate(c.and_then(|c| c.required_texts("event")).map(|v| v.into_iter().map(str::to_owned).collect()))
    }
    /// False only when the condition cannot hold.
    #[inline]
    fn open(&self, event: Option<&Value>) -> bool {
        match (&self.0, event) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(names), Some(Value::Str(s))) => {
                names.iter().any(|n| sluice_event::short_eq(n.as_bytes(), s.as_bytes()))
            }
            (Some(_), Some(_)) => true,
        }
    }
}

struct CounterM {
    gate: Gate,
    when: Option<Condition>,
    field: Option<String>,
    series: Series<Counter>,
    /// Increments of this batch, by series index (applied once per batch).
    pending: Vec<u64>,
    touched: Vec<usize>,
}
struct HistogramM {
    gate: Gate,
    when: Option<Condition>,
    field: String,
    scale: f64,
    series: Series<Histogram>,
}
struct GaugeM {
    gate: Gate,
    when: Option<Condition>,
    field: Option<String>,
    inc: Option<Condition>,
    dec: Option<Condition>,
    series: Series<Gauge>,
}

pub struct Metrics {
    counters: Vec<CounterM>,
    histograms: Vec<HistogramM>,
    gauges: Vec<GaugeM>,
}

impl TransformConfig for MetricsConfig {
    fn build(&self, _ctx: &TransformContext) -> Result<Box<dyn Transform>, OptionError> {
        Ok(Box::new(self.compile()?))
    }

    fn exporter_settings(&self, settings: &mut crate::ExporterSettings) {
        settings.histogram_buckets.extend(self.histogram_buckets());
    }
}

impl MetricsConfig {
    pub fn compile(&self) -> Result<Metrics, OptionError> {
        if self.counter.is_empty() && self.histogram.is_empty() && self.gauge.is_empty() {
            return Err(OptionError::new("counter", "define at least one [[…counter]], [[…histogram]] or [[…gauge]]"));
        }
        let mut names = std::collections::HashSet::new();
        let mut counters = Vec::new();
        for c in &self.counter {
            check_name("counter", &c.name, true)?;
            if !names.insert(c.name.clone()) {
                return Err(OptionError::new("counter", format!("metric `{}` is defined twice", c.name)));
            }
            if let Some(h) = &c.help {
                metrics::describe_counter!(c.name.clone(), h.clone());
            }
            counters.push(CounterM {
                gate: Gate::of(c.when.as_ref()),
                when: c.when.clone(),
                field: c.field.clone(),
                series: Series::new(&c.name, &c.labels, c.max_series, |n, l| metrics::counter!(n.to_string(), l)),
                pending: Vec::new(),
                touched: Vec::new(),
            });
        }
        let mut histograms = Vec::new();
        for h in &self.histogram {
            check_name("histogram", &h.name, false)?;
            if !names.insert(h.name.clone()) {
                return Err(OptionError::new("histogram", format!("metric `{}` is defined twice", h.name)));
            }
            if let Some(b) = &h.buckets {
                if b.is_empty() || b.windows(2).any(|w| w[0] >= w[1]) {
                    return Err(OptionError::new(
                        "histogram",
                        format!("`{}`: buckets must be increasing and not empty", h.name),
                    ));
                }
            }
            if let Some(d) = &h.help {
                metrics::describe_histogram!(h.name.clone(), d.clone());
            }
            histograms.push(HistogramM {
                gate: Gate::of(h.when.as_ref()),
                when: h.when.clone(),
                field: h.field.clone(),
                scale: h.scale.unwrap_or(1.0),
                series: Series::new(&h.name, &h.labels, h.max_series, |n, l| metrics::histogram!(n.to_string(), l)),
            });
        }
        let mut gauges = Vec::new();
        for g in &self.gauge {
            check_name("gauge", &g.name, false)?;
            if !names.insert(g.name.clone()) {
                return Err(OptionError::new("gauge", format!("metric `{}` is defined twice", g.name)));
            }
            if g.field.is_none() && g.inc_when.is_none() && g.dec_when.is_none() {
                return Err(OptionError::new(
                    "gauge",
                    format!("`{}`: give `field` (set) or `inc_when` / `dec_when`", g.name),
                ));
            }
            if let Some(d) = &g.help {
                metrics::describe_gauge!(g.name.clone(), d.clone());
            }
            gauges.push(GaugeM {
                gate: Gate::of(g.when.as_ref()),
                when: g.when.clone(),
                field: g.field.clone(),
                inc: g.inc_when.clone(),
                dec: g.dec_when.clone(),
                series: Series::new(&g.name, &g.labels, g.max_series, |n, l| metrics::gauge!(n.to_string(), l)),
            });
        }
        Ok(Metrics { counters, histograms, gauges })
    }
}

impl Metrics {
    pub fn observe(&mut self, e: &Event) {
        let event = e.fields.get("event");
        for c in &mut self.counters {
            if !c.gate.open(event) || c.when.as_ref().is_some_and(|w| !w.eval(e)) {
                continue;
            }
            let by = match &c.field {
                None => 1,
                Some(f) => match num(e.fields.get(f)) {
                    Some(v) if v >= 0.0 => v as u64,
                    _ => {
                        c.series.missing.increment(1);
                        continue;
                    }
                },
            };
            let i = c.series.index(e);
            if i >= c.pending.len() {
                c.pending.resize(i + 1, 0);
            }
            if c.pending[i] == 0 {
                c.touched.push(i);
            }
            c.pending[i] += by;
        }
        for h in &mut self.histograms {
            if !h.gate.open(event) || h.when.as_ref().is_some_and(|w| !w.eval(e)) {
                continue;
            }
            match num(e.fields.get(&h.field)) {
                Some(v) => h.series.get(e).record(v * h.scale),
                None => h.series.missing.increment(1),
            }
        }
        for g in &mut self.gauges {
            if !g.gate.open(event) || g.when.as_ref().is_some_and(|w| !w.eval(e)) {
                continue;
            }
            if let Some(f) = &g.field {
                match num(e.fields.get(f)) {
                    Some(v) => g.series.get(e).set(v),
                    None => g.series.missing.increment(1),
                }
            }
            if g.inc.as_ref().is_some_and(|c| c.eval(e)) {
                g.series.get(e).increment(1.0);
            }
            if g.dec.as_ref().is_some_and(|c| c.eval(e)) {
                g.series.get(e).decrement(1.0);
            }
        }
    }
}

impl Metrics {
    /// Apply the counter increments gathered since the last flush.
    pub fn flush(&mut self) {
        for c in &mut self.counters {
            for i in c.touched.drain(..) {
                c.series.series[i].1.increment(std::mem::take(&mut c.pending[i]));
            }
        }
    }
}

impl Transform for Metrics {
    fn process(&mut self, batch: Batch, out: &mut dyn Emit) -> Outcome {
        for e in &batch.events {
            self.observe(e);
        }
        self.flush();
        out.emit(None, batch);
        Outcome::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use sluice_event::{Origin, OriginInfo, Timestamp};

    #[test]
    fn cardinality_guard_sends_new_series_to_overflow() {
        let mut s: Series<Counter> =
            Series::new("guarded_total", &["user".to_string()], Some(2), |n, l| metrics::counter!(n.to_string(), l));
        let info = OriginInfo::new("s", None);
        for i in 0..5 {
            let mut e =
                Event::from_line(Bytes::from_static(b"x"), Timestamp(0), Origin { info: info.clone(), offset: 0 });
            e.fields.insert("user", Value::from(format!("u{}", i % 4).as_str()));
            let _ = s.get(&e);
        }
        assert_eq!(s.count, 2, "at most max_series real series");
        assert!(s.overflow.is_some(), "the rest went to __overflow__");
    }

    #[test]
    fn source_label_names_the_source_component() {
        let mut s: Series<Counter> =
            Series::new("by_source_total", &["source".to_string()], None, |n, l| metrics::counter!(n.to_string(), l));
        let e = |src: &str| {
            Event::from_line(
                Bytes::from_static(b"x"),
                Timestamp(0),
                Origin { info: OriginInfo::new(src, None), offset: 0 },
            )
        };
        let (a, b) = (e("orders"), e("payments"));
        let _ = s.get(&a);
        let _ = s.get(&b);
        let _ = s.get(&a);
        let vals: Vec<&str> = s.series.iter().map(|(v, _)| v[0].as_str()).collect();
        assert_eq!(vals, ["orders", "payments"]);
        let mut c = e("orders");
        c.fields.insert("source", Value::from("override"));
        let _ = s.get(&c);
        assert_eq!(s.series.last().unwrap().0[0], "override", "a `source` field wins");
    }

    #[test]
    fn config_checks() {
        let err = |t: &str| toml::from_str::<MetricsConfig>(t).unwrap().compile().err().unwrap().message;
        assert!(err("[[counter]]\nname = \"retries\"").contains("should end in `_total`"));
        assert!(err("[[counter]]\nname = \"sluice_x_total\"").contains("reserved"));
        assert!(err("[[counter]]\nname = \"9x_total\"").contains("not a valid Prometheus metric name"));
        assert!(err("[[histogram]]\nname = \"d_seconds\"\nfield = \"d\"\nbuckets = [1, 0.5]").contains("increasing"));
        assert!(err("[[gauge]]\nname = \"g\"").contains("give `field`"));
        assert!(err("").contains("at least one"));
        assert!(err("[[counter]]\nname = \"a_total\"\n[[counter]]\nname = \"a_total\"").contains("twice"));
    }
}
