//! Transform `sample`: keep a share of the stream without losing what matters, with an
//! incident switch that turns sampling off without a restart.
//!
//! ```toml
//! [transforms.sampled]
//! type = "sample"
//! inputs = ["metrics"]
//! rate = 10                                  # keep 1 in 10 (or a ratio: 0.1)
//! rules = [{ when = { event = "health_check_ok" }, rate = 100 }]   # first match wins
//! keep_level_at_least = "warn"               # default: every warn and above is kept
//! key_field = "trace_id"                     # one decision per trace (default)
//! tail = { window = "10s", keep_if = { level_at_least = "error" }, max_traces = 100000, max_bytes = "256MiB" }
//! auto_bypass = { when_error_ratio_above = 0.05, over = "1m", for = "15m" }
//! ```
//! * Head mode: the decision is a hash of `key_field` (FNV-1a + a 64-bit mixer), so every
//!   line of a trace is kept or dropped together, identically across restarts and
//!   instances. Events without the key are sampled per event. Kept sampled events carry
//!   `sample_rate` (e.g. `10`) for re-weighting.
//! * Tail mode holds each trace's events for `window`; if any event matches `keep_if`
//!   the whole trace is kept, including lines that arrived before; otherwise the rate
//!   applies when the window ends. Memory is bounded by `max_traces` and `max_bytes`;
//!   overflow decides the oldest trace early (`sluice_sample_early_decisions_total`). On
//!   shutdown held traces are decided and flushed. Held events keep their input
//!   unacknowledged, so a crash re-reads them.
//! * The switch ([`Control`]): while bypassed, everything passes (and held traces are
//!   flushed). The admin API and `sluice sampling off|on|status` drive it; `auto_bypass`
//!   turns it on when the share of error-level events over `over` (by event time)
//!   exceeds the threshold.

use crate::{Emit, OptionError, Outcome, Transform, TransformConfig, TransformContext};
use serde::Deserialize;
use sluice_config::condition::Condition;
use sluice_config::units::{parse_duration, parse_size};
use sluice_event::{Ack, Batch, Event, Timestamp, Value};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------- the switch

/// The incident switch of one sample stage.
#[derive(Debug)]
pub struct Control {
    pub stage: String,
    /// Unix nanoseconds until which sampling is bypassed; 0: not bypassed;
    /// `i64::MAX`: until further notice.
    until: AtomicI64,
    info: Mutex<(String, String)>,
    gauge: metrics::Gauge,
    expiry_gauge: metrics::Gauge,
}

/// The state of a switch, as shown by the API and saved in `data_dir`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct ControlState {
    pub stage: String,
    pub sampling: bool,
    /// RFC 3339 expiry of the bypass; absent when sampling or bypassed indefinitely.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bypass_until: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub by: String,
}

static DIRTY: AtomicBool = AtomicBool::new(false);

/// Every sample stage's switch, by stage name.
pub fn controls() -> &'static Mutex<BTreeMap<String, Arc<Control>>> {
    static R: OnceLock<Mutex<BTreeMap<String, Arc<Control>>>> = OnceLock::new();
    R.get_or_init(Default::default)
}

/// True once since the last call if any switch changed (for persisting the state).
pub fn take_dirty() -> bool {
    DIRTY.swap(false, Ordering::AcqRel)
}

impl Control {
    fn new(stage: &str) -> Arc<Control> {
        let c = Arc::new(Control {
            stage: stage.to_string(),
            until: AtomicI64::new(0),
            info: Mutex::new((String::new(), String::new())),
            gauge: metrics::gauge!("sluice_sampling_bypass", "stage" => stage.to_string()),
            expiry_gauge: metrics::gauge!("sluice_sampling_bypass_expiry_timestamp_seconds", "stage" => stage.to_string()),
        });
        c.gauge.set(0.0);
        c.expiry_gauge.set(0.0);
        controls().lock().unwrap().insert(stage.to_string(), c.clone());
        c
    }

    /// Bypass sampling until `until` (`None`: until further notice). Writes the audit line.
    pub fn bypass(&self, until: Option<Timestamp>, reason: &str, by: &str) {
        let u = until.map_or(i64::MAX, |t| t.0);
        self.until.store(u, Ordering::Release);
        *self.info.lock().unwrap() = (reason.to_string(), by.to_string());
        self.gauge.set(1.0);
        self.expiry_gauge.set(until.map_or(0.0, |t| t.0 as f64 / 1e9));
        DIRTY.store(true, Ordering::Release);
        tracing::warn!(
            target: "audit",
            stage = %self.stage,
            by = %by,
            reason = %reason,
            expires = %until.map_or("never (until turned on)".to_string(), |t| t.to_rfc3339()),
            "sampling bypass ON: every event passes"
        );
    }

    /// Resume sampling.
    pub fn resume(&self, by: &str, why: &str) {
        if self.until.swap(0, Ordering::AcqRel) == 0 {
            return;
        }
        *self.info.lock().unwrap() = (String::new(), String::new());
        self.gauge.set(0.0);
        self.expiry_gauge.set(0.0);
        DIRTY.store(true, Ordering::Release);
        tracing::warn!(target: "audit", stage = %self.stage, by = %by, reason = %why, "sampling bypass OFF: sampling resumed");
    }

    /// Is sampling bypassed at `now`? Expires the bypass when its time has come.
    #[inline]
    pub fn bypassed(&self, now: Timestamp) -> bool {
        let u = self.until.load(Ordering::Acquire);
        if u == 0 {
            return false;
        }
        if now.0 < u {
            return true;
        }
        self.resume("expiry", "the bypass period ended");
        false
    }

    pub fn state(&self) -> ControlState {
        let u = self.until.load(Ordering::Acquire);
        let (reason, by) = self.info.lock().unwrap().clone();
        ControlState {
            stage: self.stage.clone(),
            sampling: u == 0,
            bypass_until: (u != 0 && u != i64::MAX).then(|| Timestamp(u).to_rfc3339()),
            reason,
            by,
        }
    }
}

// ---------------------------------------------------------------- config

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Rate {
    OneIn(u64),
    Ratio(f64),
}

impl Rate {
    fn keep_probability(&self) -> Result<f64, String> {
        match *self {
            Rate::OneIn(0) => Err("`rate` must be at least 1 (keep 1 in N) or a ratio in (0, 1]".into()),
            Rate::OneIn(n) => Ok(1.0 / n as f64),
            Rate::Ratio(r) if r > 0.0 && r <= 1.0 => Ok(r),
            Rate::Ratio(r) => Err(format!("`rate` {r} must be a ratio in (0, 1] or a whole number N (keep 1 in N)")),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    pub when: Condition,
    pub rate: Rate,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TailConfig {
    pub window: String,
    pub keep_if: Condition,
    #[serde(default = "default_max_traces")]
    pub max_traces: usize,
    #[serde(default = "default_max_bytes")]
    pub max_bytes: String,
}

fn default_max_traces() -> usize {
    100_000
}
fn default_max_bytes() -> String {
    "256MiB".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoBypassConfig {
    pub when_error_ratio_above: f64,
    pub over: String,
    #[serde(rename = "for")]
    pub for_: String,
    #[serde(default = "default_min_events")]
    pub min_events: u64,
}

fn default_min_events() -> u64 {
    100
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleConfig {
    pub rate: Rate,
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    #[serde(default = "default_keep_level")]
    pub keep_level_at_least: String,
    #[serde(default = "default_key")]
    pub key_field: String,
    pub tail: Option<TailConfig>,
    pub auto_bypass: Option<AutoBypassConfig>,
}

fn default_keep_level() -> String {
    "warn".into()
}
fn default_key() -> String {
    "trace_id".into()
}

impl TransformConfig for SampleConfig {
    fn build(&self, ctx: &TransformContext) -> Result<Box<dyn Transform>, OptionError> {
        Ok(Box::new(self.compile(&ctx.name)?))
    }
}

impl SampleConfig {
    pub fn compile(&self, name: &str) -> Result<Sample, OptionError> {
        let base = self.rate.keep_probability().map_err(|m| OptionError::new("rate", m))?;
        let mut rules = Vec::new();
        if self.keep_level_at_least != "none" {
            let c = toml::Value::Table(toml::Table::from_iter([(
                "level_at_least".to_string(),
                toml::Value::String(self.keep_level_at_least.clone()),
            )]));
            let cond = Condition::from_toml(&c)
                .map_err(|m| OptionError::new("keep_level_at_least", format!("{m} (or \"none\")")))?;
            rules.push((cond, 1.0));
        }
        for (i, r) in self.rules.iter().enumerate() {
            let p = r.rate.keep_probability().map_err(|m| OptionError::new("rules", format!("rules[{i}]: {m}")))?;
            rules.push((r.when.clone(), p));
        }
        let tail = match &self.tail {
            None => None,
            Some(t) => {
                let window =
                    parse_duration(&t.window).map_err(|m| OptionError::new("tail", format!("`tail.window`: {m}")))?;
                let max_bytes =
                    parse_size(&t.max_bytes).map_err(|m| OptionError::new("tail", format!("`tail.max_bytes`: {m}")))?;
                if t.max_traces == 0 {
                    return Err(OptionError::new("tail", "`tail.max_traces` must be at least 1"));
                }
                Some(Tail::new(window, t.keep_if.clone(), t.max_traces, max_bytes as usize))
            }
        };
        let auto = match &self.auto_bypass {
            None => None,
            Some(a) => {
                if !(a.when_error_ratio_above > 0.0 && a.when_error_ratio_above < 1.0) {
                    return Err(OptionError::new("auto_bypass", "`when_error_ratio_above` must be between 0 and 1"));
                }
                let over =
                    parse_duration(&a.over).map_err(|m| OptionError::new("auto_bypass", format!("`over`: {m}")))?;
                let dur =
                    parse_duration(&a.for_).map_err(|m| OptionError::new("auto_bypass", format!("`for`: {m}")))?;
                Some(AutoBypass {
                    threshold: a.when_error_ratio_above,
                    over_secs: over.as_secs().max(1) as i64,
                    dur,
                    min_events: a.min_events,
                    buckets: BTreeMap::new(),
                    total: 0,
                    errors: 0,
                    newest: i64::MIN,
                    origins: HashMap::new(),
                    evaluated_to: i64::MIN,
                    origin_added: Instant::now(),
                })
            }
        };
        let error_cond = Condition::from_toml(&toml::Value::Table(toml::Table::from_iter([(
            "level_at_least".to_string(),
            toml::Value::String("error".into()),
        )])))
        .expect("static condition");
        Ok(Sample {
            control: Control::new(name),
            base,
            rules,
            key: self.key_field.clone(),
            tail,
            auto,
            error_cond,
            rng: seed(),
            early: metrics::counter!("sluice_sample_early_decisions_total", "stage" => name.to_string()),
            batch_no: 0,
            dropped: 0,
        })
    }
}

fn seed() -> u64 {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos() as u64;
    mix(t ^ 0x9e37_79b9_7f4a_7c15) | 1
}

/// A stable 64-bit hash of a key: FNV-1a then a splitmix64 finaliser (uniform bits).
#[inline]
pub fn key_hash(key: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix(h)
}

#[inline]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[inline]
fn keep_hash(h: u64, p: f64) -> bool {
    p >= 1.0 || ((h >> 11) as f64) < p * (1u64 << 53) as f64
}

// ---------------------------------------------------------------- tail state

struct TraceBuf {
    events: Vec<Event>,
    acks: Vec<Ack>,
    last_batch: u64,
    bytes: usize,
    keep: bool,
}

struct Tail {
    window: Duration,
    keep_if: Condition,
    max_traces: usize,
    max_bytes: usize,
    held: HashMap<u64, TraceBuf>,
    /// (deadline, trace) in arrival order.
    order: VecDeque<(Instant, u64)>,
    /// Traces kept because of `keep_if`, remembered for another window for late events.
    kept: HashMap<u64, Instant>,
    kept_order: VecDeque<(Instant, u64)>,
    bytes: usize,
}

impl Tail {
    fn new(window: Duration, keep_if: Condition, max_traces: usize, max_bytes: usize) -> Tail {
        Tail {
            window,
            keep_if,
            max_traces,
            max_bytes,
            held: HashMap::with_capacity(max_traces.min(1 << 16)),
            order: VecDeque::new(),
            kept: HashMap::new(),
            kept_order: VecDeque::new(),
            bytes: 0,
        }
    }
}

struct AutoBypass {
    threshold: f64,
    over_secs: i64,
    dur: Duration,
    min_events: u64,
    buckets: BTreeMap<i64, (u64, u64)>,
    total: u64,
    errors: u64,
    newest: i64,
    /// Per input (origin): latest event second and when it was last seen. Windows are
    /// judged only up to the slowest active input (a watermark), so a replay of several
    /// files read at different positions never judges a half-filled window.
    origins: HashMap<usize, (i64, Instant)>,
    evaluated_to: i64,
    /// When an input was last seen for the first time: windows are judged once the set
    /// of inputs has been stable for five seconds (and all again at shutdown).
    origin_added: Instant,
}

impl AutoBypass {
    /// Count one event in its second (event time). Events may arrive out of order (files
    /// are read at different positions, a replay reads whole files at once), so buckets
    /// are kept for 24 hours of event time before the newest (at most 86,400 buckets).
    #[inline]
    fn add(&mut self, sec: i64, error: bool) {
        let b = self.buckets.entry(sec).or_insert((0, 0));
        b.0 += 1;
        if error {
            b.1 += 1;
        }
        if sec > self.newest {
            self.newest = sec;
            let cutoff = sec.saturating_sub(86_400.max(self.over_secs * 2));
            while let Some((&s, _)) = self.buckets.first_key_value() {
                if s >= cutoff {
                    break;
                }
                self.buckets.pop_first();
            }
        }
    }

    /// Record that input `origin` has reached event second `sec`.
    #[inline]
    fn seen(&mut self, origin: usize, sec: i64, now: Instant) {
        if !self.origins.contains_key(&origin) {
            self.origin_added = now;
        }
        let o = self.origins.entry(origin).or_insert((sec, now));
        o.0 = o.0.max(sec);
        o.1 = now;
    }

    /// Judge every complete window up to the watermark; the first that trips wins.
    fn check(&mut self, now: Instant, force: bool) -> Option<(f64, i64)> {
        // After a new input appears, wait before judging: its events may still be on
        // their way through slower stages (a replay reads whole files at once).
        if !force && now.duration_since(self.origin_added) < Duration::from_secs(5) {
            return None;
        }
        self.origins.retain(|_, (_, seen)| force || now.duration_since(*seen) < Duration::from_secs(120));
        let wm = self.origins.values().map(|(s, _)| *s).min()?;
        if wm <= self.evaluated_to && !force {
            return None;
        }
        let earliest = *self.buckets.first_key_value()?.0;
        // At shutdown every input is complete: judge every window again.
        let from =
            if self.evaluated_to == i64::MIN || force { earliest } else { self.evaluated_to + 1 }.max(wm - 86_400);
        self.evaluated_to = wm;
        (from..=wm).find_map(|end| self.tripped(end).map(|r| (r, end)))
    }

    /// The error ratio over the `over` seconds ending at `end`, if it trips.
    fn tripped(&mut self, end: i64) -> Option<f64> {
        let (mut total, mut errors) = (0u64, 0u64);
        for (_, &(t, e)) in self.buckets.range(end.saturating_sub(self.over_secs - 1)..=end) {
            total += t;
            errors += e;
        }
        self.total = total;
        self.errors = errors;
        let r = errors as f64 / total.max(1) as f64;
        (total >= self.min_events && r > self.threshold).then_some(r)
    }
}

// ---------------------------------------------------------------- the stage

pub struct Sample {
    control: Arc<Control>,
    base: f64,
    rules: Vec<(Condition, f64)>,
    key: String,
    tail: Option<Tail>,
    auto: Option<AutoBypass>,
    error_cond: Condition,
    rng: u64,
    early: metrics::Counter,
    batch_no: u64,
    /// Events sampled out since the last report (tail decisions happen in ticks too).
    dropped: u64,
}

fn rate_value(p: f64) -> Value {
    let r = 1.0 / p;
    if (r - r.round()).abs() < 1e-9 {
        Value::Int(r.round() as i64)
    } else {
        Value::Float(r)
    }
}

impl Sample {
    pub fn control(&self) -> &Arc<Control> {
        &self.control
    }

    #[inline]
    fn probability(&self, e: &Event) -> f64 {
        for (c, p) in &self.rules {
            if c.eval(e) {
                return *p;
            }
        }
        self.base
    }

    #[inline]
    fn key_of(&self, e: &Event) -> Option<u64> {
        match e.fields.get(&self.key)? {
            Value::Str(s) if !s.as_str().is_empty() => Some(key_hash(s.as_str().as_bytes())),
            Value::Int(i) => Some(key_hash(i.to_string().as_bytes())),
            _ => None,
        }
    }

    #[inline]
    fn next_random(&mut self) -> u64 {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Head decision for one event; marks kept sampled events with `sample_rate`.
    #[inline]
    fn decide(&mut self, e: &mut Event, key: Option<u64>) -> bool {
        let p = self.probability(e);
        if p >= 1.0 {
            return true;
        }
        let h = match key {
            Some(h) => h,
            None => self.next_random(),
        };
        let keep = keep_hash(h, p);
        if keep {
            e.fields.insert("sample_rate", rate_value(p));
        } else {
            self.dropped += 1;
        }
        keep
    }

    fn flush_all_held(&mut self, out: &mut Vec<Event>, acks: &mut Vec<Ack>, as_kept: bool) {
        let Some(t) = &mut self.tail else { return };
        let held: Vec<(u64, TraceBuf)> = t.held.drain().collect();
        t.order.clear();
        t.bytes = 0;
        for (k, mut buf) in held {
            if as_kept || buf.keep {
                out.append(&mut buf.events);
            } else {
                for mut e in buf.events.drain(..) {
                    if self.decide(&mut e, Some(k)) {
                        out.push(e);
                    }
                }
            }
            acks.append(&mut buf.acks);
        }
    }

    /// Decide traces whose window ended (or the oldest, while over the limits).
    fn expire(&mut self, now: Instant, out: &mut Vec<Event>, acks: &mut Vec<Ack>) {
        loop {
            let Some(t) = &mut self.tail else { return };
            let over = t.held.len() > t.max_traces || t.bytes > t.max_bytes;
            let Some(&(deadline, k)) = t.order.front() else { break };
            if deadline > now && !over {
                break;
            }
            t.order.pop_front();
            let Some(mut buf) = t.held.remove(&k) else { continue };
            t.bytes -= buf.bytes;
            if deadline > now {
                self.early.increment(1);
            }
            acks.append(&mut buf.acks);
            for mut e in buf.events.drain(..) {
                if buf.keep || self.decide(&mut e, Some(k)) {
                    out.push(e);
                }
            }
        }
        if let Some(t) = &mut self.tail {
            while let Some(&(d, k)) = t.kept_order.front() {
                if d > now {
                    break;
                }
                t.kept_order.pop_front();
                if t.kept.get(&k) == Some(&d) {
                    t.kept.remove(&k);
                }
            }
        }
    }

    fn emit(out: &mut dyn Emit, events: Vec<Event>, acks: Vec<Ack>) {
        if !events.is_empty() || !acks.is_empty() {
            out.emit(None, Batch { events, acks });
        }
    }
}

impl Sample {
    /// Judge complete windows; trip the switch when the error ratio is too high.
    fn auto_check(&mut self, now: Instant, force: bool) {
        let Some(a) = &mut self.auto else { return };
        let Some((r, end)) = a.check(now, force) else { return };
        let now_ts = Timestamp::now();
        if !self.control.bypassed(now_ts) {
            let until = Timestamp(now_ts.0 + a.dur.as_nanos() as i64);
            self.control.bypass(
                Some(until),
                &format!(
                    "error ratio {r:.3} ({} errors in {} events) over {}s of events ending at {} is above {}",
                    a.errors,
                    a.total,
                    a.over_secs,
                    Timestamp::from_secs(end).to_rfc3339(),
                    a.threshold
                ),
                "auto_bypass",
            );
        }
    }
}

impl Transform for Sample {
    fn process(&mut self, batch: Batch, out: &mut dyn Emit) -> Outcome {
        let now_ts = Timestamp::now();
        let now = Instant::now();
        self.batch_no += 1;
        let Batch { events, acks: batch_acks } = batch;
        let n_in = events.len();
        // Auto bypass watches the full stream, by event time.
        if let Some(a) = &mut self.auto {
            for e in &events {
                let sec = e.timestamp.secs();
                a.add(sec, self.error_cond.eval(e));
                a.seen(Arc::as_ptr(&e.origin.info) as usize, sec, now);
            }
        }
        self.auto_check(now, false);
        let mut kept: Vec<Event> = Vec::with_capacity(n_in);
        let mut acks: Vec<Ack> = Vec::new();
        if self.control.bypassed(now_ts) {
            self.flush_all_held(&mut kept, &mut acks, true);
            kept.extend(events);
            acks.extend(batch_acks);
            Self::emit(out, kept, acks);
            return Outcome::default();
        }
        for mut e in events {
            let key = self.key_of(&e);
            match (&mut self.tail, key) {
                (Some(t), Some(k)) => {
                    if t.kept.contains_key(&k) {
                        kept.push(e);
                        continue;
                    }
                    let hit = t.keep_if.eval(&e);
                    if let Some(buf) = t.held.get_mut(&k) {
                        if hit {
                            // The whole trace is kept, including what came before.
                            let mut buf = t.held.remove(&k).unwrap();
                            t.bytes -= buf.bytes;
                            kept.append(&mut buf.events);
                            kept.push(e);
                            acks.append(&mut buf.acks);
                            let d = now + t.window;
                            t.kept.insert(k, d);
                            t.kept_order.push_back((d, k));
                            continue;
                        }
                        let sz = e.size_hint();
                        buf.bytes += sz;
                        t.bytes += sz;
                        buf.events.push(e);
                        if buf.last_batch != self.batch_no {
                            buf.last_batch = self.batch_no;
                            buf.acks.extend(batch_acks.iter().cloned());
                        }
                    } else if hit {
                        let d = now + t.window;
                        t.kept.insert(k, d);
                        t.kept_order.push_back((d, k));
                        kept.push(e);
                    } else {
                        let sz = e.size_hint();
                        t.bytes += sz;
                        t.held.insert(
                            k,
                            TraceBuf {
                                events: vec![e],
                                acks: batch_acks.clone(),
                                last_batch: self.batch_no,
                                bytes: sz,
                                keep: false,
                            },
                        );
                        t.order.push_back((now + t.window, k));
                    }
                }
                _ => {
                    if self.decide(&mut e, key) {
                        kept.push(e);
                    }
                }
            }
        }
        acks.extend(batch_acks);
        self.expire(now, &mut kept, &mut acks);
        Self::emit(out, kept, acks);
        Outcome { dropped: std::mem::take(&mut self.dropped), reason: "sampled", errors: 0 }
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(if self.tail.is_some() { Duration::from_millis(100) } else { Duration::from_millis(500) })
    }

    fn tick(&mut self, out: &mut dyn Emit) {
        self.auto_check(Instant::now(), false);
        let mut kept = Vec::new();
        let mut acks = Vec::new();
        if self.control.bypassed(Timestamp::now()) {
            self.flush_all_held(&mut kept, &mut acks, true);
        } else {
            self.expire(Instant::now(), &mut kept, &mut acks);
        }
        Self::emit(out, kept, acks);
    }

    fn finish(&mut self, out: &mut dyn Emit) {
        self.auto_check(Instant::now(), true);
        let mut kept = Vec::new();
        let mut acks = Vec::new();
        self.flush_all_held(&mut kept, &mut acks, false);
        Self::emit(out, kept, acks);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use sluice_event::{Origin, OriginInfo};

    fn ev(i: usize, trace: Option<String>, level: &str) -> Event {
        thread_local!(static INFO: Arc<OriginInfo> = OriginInfo::new("s", None));
        let info = INFO.with(|i| i.clone());
        let mut e = Event::from_line(
            Bytes::from(format!("line {i}")),
            Timestamp::from_secs(1_795_000_000 + i as i64 / 1000),
            Origin { info, offset: i as u64 },
        );
        e.fields.insert("level", Value::from(level));
        if let Some(t) = trace {
            e.fields.insert("trace_id", Value::from(t.as_str()));
        }
        e
    }

    fn cfg(name: &str, t: &str) -> Sample {
        toml::from_str::<SampleConfig>(t).unwrap().compile(name).unwrap()
    }

    fn run(s: &mut Sample, events: Vec<Event>) -> Vec<Event> {
        let mut got = Vec::new();
        for chunk in events.chunks(1000) {
            s.process(Batch::new(chunk.to_vec()), &mut |_: Option<&str>, b: Batch| got.extend(b.events));
        }
        s.finish(&mut |_: Option<&str>, b: Batch| got.extend(b.events));
        got
    }

    #[test]
    fn keep_ratio_and_trace_consistency() {
        let n = 200_000;
        // 20,000 traces of 10 info lines each.
        let events: Vec<Event> = (0..n).map(|i| ev(i, Some(format!("{:032x}", i / 10)), "info")).collect();
        let got = run(&mut cfg("t1", "rate = 10"), events.clone());
        let ratio = got.len() as f64 / n as f64;
        // 20,000 independent trace decisions at p = 0.1: sd of the trace count is ~42.
        assert!((ratio - 0.1).abs() < 0.0065, "kept {ratio}");
        let mut per_trace: HashMap<String, usize> = HashMap::new();
        for e in &got {
            *per_trace.entry(e.fields.get("trace_id").unwrap().as_str().unwrap().to_string()).or_default() += 1;
            assert_eq!(e.fields.get("sample_rate"), Some(&Value::Int(10)));
        }
        assert!(per_trace.values().all(|&c| c == 10), "all lines of a trace share a decision");
        // A second instance decides identically.
        let again = run(&mut cfg("t2", "rate = 10"), events);
        assert_eq!(
            got.iter().map(|e| e.origin.offset).collect::<Vec<_>>(),
            again.iter().map(|e| e.origin.offset).collect::<Vec<_>>()
        );
        // Without a key: per event, still about 10%.
        let loose: Vec<Event> = (0..100_000).map(|i| ev(i, None, "info")).collect();
        let r = run(&mut cfg("t3", "rate = 0.1"), loose).len() as f64 / 100_000.0;
        assert!((r - 0.1).abs() < 0.006, "{r}");
    }

    #[test]
    fn warn_and_rules() {
        let events = vec![ev(0, None, "warn"), ev(1, None, "error"), ev(2, Some("x".into()), "debug")];
        let got = run(&mut cfg("t4", "rate = 1000000\nrules = [{ when = { level = \"debug\" }, rate = 1 }]"), events);
        assert_eq!(got.len(), 3, "warn+ kept by default, debug kept by rule");
        assert!(got.iter().all(|e| e.fields.get("sample_rate").is_none()));
        assert!(toml::from_str::<SampleConfig>("rate = 0").unwrap().compile("t5").is_err());
        assert!(toml::from_str::<SampleConfig>("rate = 1.5").unwrap().compile("t6").is_err());
    }

    #[test]
    fn tail_keeps_whole_error_traces() {
        let mut events = Vec::new();
        for t in 0..1000 {
            for j in 0..5 {
                let level = if t % 50 == 0 && j == 3 { "error" } else { "info" };
                events.push(ev(t * 5 + j, Some(format!("trace-{t}")), level));
            }
        }
        let mut s = cfg("t7", "rate = 1000000\nkeep_level_at_least = \"none\"\ntail = { window = \"10s\", keep_if = { level_at_least = \"error\" } }");
        let got = run(&mut s, events);
        // 20 error traces, all 5 lines each (including the 3 before the error).
        assert_eq!(got.len(), 100, "{}", got.len());
        let mut per: HashMap<String, usize> = HashMap::new();
        for e in &got {
            *per.entry(e.fields.get("trace_id").unwrap().as_str().unwrap().to_string()).or_default() += 1;
        }
        assert!(per.values().all(|&c| c == 5));
        assert!(per.keys().all(|k| k.trim_start_matches("trace-").parse::<usize>().unwrap() % 50 == 0));
    }

    #[test]
    fn drops_are_reported() {
        let mut s = cfg("t11", "rate = 1000000\nkeep_level_at_least = \"none\"");
        let events: Vec<Event> = (0..100).map(|i| ev(i, None, "info")).collect();
        let o = s.process(Batch::new(events), &mut |_: Option<&str>, _b: Batch| {});
        assert!(o.dropped >= 95 && o.reason == "sampled", "{o:?}");
    }

    #[test]
    fn tail_limits_decide_early_and_shutdown_flushes() {
        let mut s = cfg(
            "t8",
            "rate = 1\ntail = { window = \"1h\", keep_if = { level_at_least = \"error\" }, max_traces = 10 }",
        );
        let events: Vec<Event> = (0..100).map(|i| ev(i, Some(format!("t{i}")), "info")).collect();
        let mut got = Vec::new();
        s.process(Batch::new(events), &mut |_: Option<&str>, b: Batch| got.extend(b.events));
        assert_eq!(got.len(), 90, "overflow decided early, 10 still held");
        s.finish(&mut |_: Option<&str>, b: Batch| got.extend(b.events));
        assert_eq!(got.len(), 100, "held traces flushed at shutdown");
    }

    #[test]
    fn switch_bypasses_and_expires() {
        let mut s = cfg("t9", "rate = 1000000\nkeep_level_at_least = \"none\"");
        let c = s.control().clone();
        c.bypass(Some(Timestamp(Timestamp::now().0 + 200_000_000)), "INC-1", "test");
        assert!(!c.state().sampling);
        let events: Vec<Event> = (0..100).map(|i| ev(i, None, "info")).collect();
        assert_eq!(run(&mut s, events.clone()).len(), 100);
        std::thread::sleep(Duration::from_millis(250));
        assert!(run(&mut s, events).len() < 5);
        assert!(c.state().sampling, "expired by itself");
        assert!(controls().lock().unwrap().contains_key("t9"));
    }

    #[test]
    fn auto_bypass_trips_on_error_ratio() {
        let mut s = cfg("t10", "rate = 1000000\nkeep_level_at_least = \"none\"\nauto_bypass = { when_error_ratio_above = 0.05, over = \"1m\", for = \"15m\" }");
        // 1000 calm events, then 20% errors.
        let calm: Vec<Event> = (0..1000).map(|i| ev(i, None, "info")).collect();
        run(&mut s, calm);
        assert!(s.control().state().sampling);
        let storm: Vec<Event> = (1000..2000).map(|i| ev(i, None, if i % 5 == 0 { "error" } else { "info" })).collect();
        run(&mut s, storm);
        let st = s.control().state();
        assert!(!st.sampling && st.by == "auto_bypass" && st.reason.contains("error ratio"), "{st:?}");
    }
}
