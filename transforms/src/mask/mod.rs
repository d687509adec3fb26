//! Transform `mask`: find PII in the message and every string field (recursively) and
//! redact it, show part of it, or replace it with a keyed pseudonym.
//!
//! ```toml
//! [transforms.pii]
//! type = "mask"
//! inputs = ["parsed"]
//! detectors = ["email", "credit_card", "ipv4", "phone"]   # default: all built-in
//! mode = "redact"                                       # redact | partial | hash
//! modes = { email = "hash", credit_card = "partial" }   # per detector
//! hash_key_env = "SLUICE_MASK_KEY"                      # or hash_key_file = "/run/secrets/mask-key"
//! skip_fields = ["trace_id"]
//! custom = [{ name = "order_id", pattern = "ORD-\\d{8}" }]
//! ```
//! * `redact`: `[EMAIL]`; `partial`: `j***@example.com`, `************1111`;
//!   `hash`: `email:4f1c9a2b7d3e`, the first 12 hex digits of HMAC-SHA256 with the key
//!   (never in the config text) over a normalised value, so the same person gets the same
//!   pseudonym across lines, restarts and instances, and cannot be brute-forced without
//!   the key.
//! * Masked values are counted in `sluice_masked_values_total{detector}`.
//! * If an event's raw bytes were not UTF-8 and anything was masked, the raw bytes are
//!   replaced by the masked text, so no unmasked copy leaves sluice.

pub mod detect;

use crate::{Emit, OptionError, Outcome, Transform, TransformConfig};
use detect::{Kind, NumericDets, Span};
use hmac::{Hmac, Mac};
use regex::Regex;
use serde::Deserialize;
use sha2::Sha256;
use sluice_event::{Batch, ByteStr, Event, Marks, Value};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Redact,
    Partial,
    Hash,
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomDetector {
    /// The detector's name: the redaction label (`[ORDER_ID]`), hash prefix and metric label.
    pub name: String,
    /// The regex a value must match.
    pub pattern: String,
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MaskConfig {
    /// Built-in detectors to run (`email`, `credit_card`, `ipv4`, `phone`, …); default: all.
    pub detectors: Option<Vec<String>>,
    /// What to do with a match: `redact` (`[EMAIL]`), `partial` (`j***@example.com`) or `hash` (keyed pseudonym).
    #[serde(default = "default_mode")]
    pub mode: Mode,
    /// Per-detector modes: `{ email = "hash", credit_card = "partial" }`.
    #[serde(default)]
    pub modes: BTreeMap<String, Mode>,
    /// Environment variable holding the HMAC key for `hash` (the key never goes in the file).
    pub hash_key_env: Option<String>,
    /// File holding the HMAC key for `hash` (e.g. a mounted secret).
    pub hash_key_file: Option<String>,
    /// Fields never masked (`trace_id`).
    #[serde(default)]
    pub skip_fields: Vec<String>,
    /// Extra detectors: `[{ name = "order_id", pattern = "ORD-\\d{8}" }]`.
    #[serde(default)]
    pub custom: Vec<CustomDetector>,
    /// Fields whose whole value is personal data (a user name, an account id): replaced
    /// whole with this stage's `mode` (`[USER]`, partial, or a keyed pseudonym `user:…`).
    /// Sinks refuse them as labels (labels are indexed and leave sluice).
    #[serde(default)]
    pub sensitive_fields: Vec<String>,
}

fn default_mode() -> Mode {
    Mode::Redact
}

#[derive(Clone)]
enum Det {
    Builtin(Kind),
    Custom(Regex),
}

#[derive(Clone)]
struct Detector {
    name: String,
    label: String,
    det: Det,
    mode: Mode,
    counter: metrics::Counter,
}

/// A field masked whole (`sensitive_fields`).
#[derive(Clone)]
struct SensitiveField {
    name: String,
    label: String,
    counter: metrics::Counter,
}

#[derive(Clone)]
pub struct Mask {
    /// Fields masked whole, with `whole_mode`.
    sensitive: Vec<SensitiveField>,
    whole_mode: Mode,
    dets: Vec<Detector>,
    numeric: NumericDets,
    key: Option<Vec<u8>>,
    skip: Vec<String>,
    spans: Vec<Span>,
    counts: Vec<u64>,
    /// The shortest text any detector can match (shorter strings are not scanned).
    min_len: usize,
    /// Where masked text is written before it is copied out.
    scratch: String,
}

impl TransformConfig for MaskConfig {
    fn build(&self, _ctx: &crate::TransformContext) -> Result<Box<dyn Transform>, OptionError> {
        Ok(Box::new(self.compile()?))
    }

    fn sensitive_fields(&self) -> Vec<String> {
        self.sensitive_fields.clone()
    }
}

impl MaskConfig {
    pub fn compile(&self) -> Result<Mask, OptionError> {
        let names: Vec<String> = match &self.detectors {
            Some(d) => d.clone(),
            None => detect::ALL.iter().map(|k| k.name().to_string()).collect(),
        };
        let mut dets = Vec::new();
        for n in &names {
            let kind = Kind::from_name(n).ok_or_else(|| {
                let known: Vec<&str> = detect::ALL.iter().map(|k| k.name()).collect();
                OptionError::new(
                    "detectors",
                    format!("unknown detector `{n}`, expected one of {} (or a `custom` detector)", known.join(", ")),
                )
            })?;
            dets.push((n.clone(), Det::Builtin(kind)));
        }
        for c in &self.custom {
            if c.name.is_empty() || names.contains(&c.name) {
                return Err(OptionError::new(
                    "custom",
                    format!("custom detector name `{}` is empty or already used", c.name),
                ));
            }
            let re = Regex::new(&c.pattern)
                .map_err(|e| OptionError::new("custom", format!("detector `{}`: invalid regex: {e}", c.name)))?;
            dets.push((c.name.clone(), Det::Custom(re)));
        }
        for k in self.modes.keys() {
            if !dets.iter().any(|(n, _)| n == k) {
                return Err(OptionError::new("modes", format!("`modes.{k}` names no enabled detector")));
            }
        }
        let mut numeric = NumericDets::default();
        let dets: Vec<Detector> = dets
            .into_iter()
            .enumerate()
            .map(|(i, (name, det))| {
                if let Det::Builtin(k) = det {
                    match k {
                        Kind::Ipv4 => numeric.ipv4 = Some(i),
                        Kind::UsSsn => numeric.ssn = Some(i),
                        Kind::CreditCard => numeric.card = Some(i),
                        Kind::Phone => numeric.phone = Some(i),
                        _ => {}
                    }
                }
                Detector {
                    label: format!("[{}]", name.to_ascii_uppercase()),
                    mode: self.modes.get(&name).copied().unwrap_or(self.mode),
                    counter: metrics::counter!("sluice_masked_values_total", "detector" => name.clone()),
                    name,
                    det,
                }
            })
            .collect();
        let needs_key =
            dets.iter().any(|d| d.mode == Mode::Hash) || (!self.sensitive_fields.is_empty() && self.mode == Mode::Hash);
        let key = match (&self.hash_key_env, &self.hash_key_file) {
            (Some(_), Some(_)) => {
                return Err(OptionError::new("hash_key_env", "give `hash_key_env` or `hash_key_file`, not both"))
            }
            (Some(var), None) => Some(
                std::env::var(var)
                    .ok()
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| {
                        OptionError::new("hash_key_env", format!("environment variable `{var}` is not set or empty"))
                    })?
                    .into_bytes(),
            ),
            (None, Some(path)) => {
                let k = std::fs::read(path)
                    .map_err(|e| OptionError::new("hash_key_file", format!("cannot read \"{path}\": {e}")))?;
                let k = k.trim_ascii().to_vec();
                if k.is_empty() {
                    return Err(OptionError::new("hash_key_file", format!("\"{path}\" is empty")));
                }
                Some(k)
            }
            (None, None) => None,
        };
        if needs_key && key.is_none() {
            return Err(OptionError::new(
                "mode",
                "`hash` mode needs a key: set `hash_key_env` or `hash_key_file` (never the key itself)",
            ));
        }
        let n = dets.len();
        let custom = dets.iter().any(|d| matches!(d.det, Det::Custom(_)));
        let kinds: Vec<Kind> = dets
            .iter()
            .filter_map(|d| match d.det {
                Det::Builtin(k) => Some(k),
                Det::Custom(_) => None,
            })
            .collect();
        let sensitive = self
            .sensitive_fields
            .iter()
            .map(|f| SensitiveField {
                name: f.clone(),
                label: format!("[{}]", f.to_ascii_uppercase()),
                counter: metrics::counter!("sluice_masked_values_total", "detector" => format!("field:{f}")),
            })
            .collect();
        Ok(Mask {
            dets,
            numeric,
            key,
            skip: self.skip_fields.clone(),
            spans: Vec::new(),
            counts: vec![0; n],
            scratch: String::new(),
            min_len: if custom { 1 } else { detect::min_len(&kinds) },
            sensitive,
            whole_mode: self.mode,
        })
    }
}

/// The pseudonym `hash` mode gives `value` found by detector `name` (`email`), or in a
/// sensitive field `name`: what `sluice pseudonym` prints, so on-call can find a user's
/// lines from the address a ticket gives, without sluice ever writing the address.
pub fn pseudonym_for(key: &[u8], name: &str, value: &str) -> String {
    let mut out = String::new();
    pseudonym(key, name, &normalise(detect::Kind::from_name(name), value), &mut out);
    out
}

/// `name:` and the first 12 hex digits of HMAC-SHA256(key, value).
fn pseudonym(key: &[u8], name: &str, value: &str, out: &mut String) {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("any key length");
    mac.update(value.as_bytes());
    let tag = mac.finalize().into_bytes();
    out.push_str(name);
    out.push(':');
    for b in &tag[..6] {
        out.push_str(&format!("{b:02x}"));
    }
}

fn normalise(kind: Option<Kind>, v: &str) -> String {
    match kind {
        Some(Kind::Email) => v.replace("%40", "@").to_ascii_lowercase(),
        Some(Kind::CreditCard) | Some(Kind::UsSsn) | Some(Kind::Iban) => {
            v.chars().filter(|c| c.is_ascii_alphanumeric()).collect()
        }
        Some(Kind::Phone) => v.chars().filter(|c| c.is_ascii_digit() || *c == '+').collect(),
        _ => v.to_string(),
    }
}

fn partial(kind: Option<Kind>, v: &str) -> String {
    match kind {
        Some(Kind::Email) => {
            let (at, sep) = match v.find('@') {
                Some(i) => (i, 1),
                None => (v.find("%40").unwrap_or(0), 3),
            };
            let first = v.chars().next().map(String::from).unwrap_or_default();
            format!("{first}***{}{}", if sep == 1 { "@" } else { "%40" }, &v[(at + sep).min(v.len())..])
        }
        Some(Kind::CreditCard) => {
            let digits: Vec<char> = v.chars().filter(char::is_ascii_digit).collect();
            let keep = digits.len().saturating_sub(4);
            digits.iter().enumerate().map(|(i, c)| if i < keep { '*' } else { *c }).collect()
        }
        Some(Kind::Ipv4) => {
            let mut parts = v.split('.');
            format!("{}.*.*.*", parts.next().unwrap_or("*"))
        }
        _ => {
            // Keep the last four alphanumerics, star the other alphanumerics.
            let total = v.chars().filter(char::is_ascii_alphanumeric).count();
            let keep_from = total.saturating_sub(4);
            let mut seen = 0;
            v.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        seen += 1;
                        if seen <= keep_from {
                            return '*';
                        }
                    }
                    c
                })
                .collect()
        }
    }
}

impl Mask {
    /// Find every detector's spans in `text` into `self.spans`. A prefilter first says
    /// which detectors can match at all (enough digits, a `=` or `:` for secrets, …), so
    /// a string without candidates costs a few vectorised passes and nothing else.
    fn find(&mut self, text: &str) {
        self.spans.clear();
        if text.len() < self.min_len {
            return;
        }
        let mut pre = detect::Prefilter::new(text.as_bytes());
        if self.numeric.any() && pre.digits() >= self.numeric.min_digits() {
            detect::numeric(text, self.numeric, &mut self.spans);
        }
        for (i, d) in self.dets.iter().enumerate() {
            match &d.det {
                Det::Builtin(k) if !pre.may_match(*k) => {}
                Det::Builtin(Kind::Email) => detect::emails(text, i, &mut self.spans),
                Det::Builtin(Kind::Ipv6) => detect::ipv6(text, i, &mut self.spans),
                Det::Builtin(Kind::Iban) => detect::iban(text, i, &mut self.spans),
                Det::Builtin(Kind::Jwt) => detect::jwt(text, i, &mut self.spans),
                Det::Builtin(Kind::Bearer) => detect::bearer(text, i, &mut self.spans),
                Det::Builtin(Kind::AwsKey) => detect::aws_key(text, i, &mut self.spans),
                Det::Builtin(Kind::Secret) => detect::secrets(text, i, &mut self.spans),
                Det::Builtin(_) => {}
                Det::Custom(re) => detect::custom(text, re, i, &mut self.spans),
            }
        }
        // Earliest first; at the same start the longest; a span overlapping an earlier
        // one is dropped (so the spans are ordered by end as well).
        self.spans.sort_unstable_by_key(|s| (s.start, std::cmp::Reverse(s.end)));
        let mut end = 0;
        self.spans.retain(|s| {
            let keep = s.start >= end;
            if keep {
                end = s.end;
            }
            keep
        });
    }

    /// Write `text` with `spans` (as `find` leaves them: ordered, not overlapping;
    /// positions relative to `base`, `text` being a window of the scanned string
    /// starting there) replaced, clipped to `text`. Counts each replacement.
    ///
    /// Written into a buffer kept across calls, then copied once into a string of
    /// exactly its size (one allocation per masked value).
    fn replace(&mut self, spans: &[Span], text: &str, base: usize) -> ByteStr {
        let mut out = std::mem::take(&mut self.scratch);
        out.clear();
        let mut pos = 0;
        for s in spans {
            let start = s.start.max(base) - base;
            let end = s.end.min(base + text.len()).saturating_sub(base);
            if end <= start {
                continue;
            }
            out.push_str(&text[pos..start]);
            let v = &text[start..end];
            let d = &self.dets[s.det];
            let kind = match d.det {
                Det::Builtin(k) => Some(k),
                Det::Custom(_) => None,
            };
            match d.mode {
                Mode::Redact => out.push_str(&d.label),
                Mode::Partial => out.push_str(&partial(kind, v)),
                Mode::Hash => {
                    pseudonym(self.key.as_deref().expect("checked at build"), &d.name, &normalise(kind, v), &mut out)
                }
            }
            self.counts[s.det] += 1;
            pos = end;
        }
        out.push_str(&text[pos..]);
        let masked = ByteStr::from(out.as_str());
        self.scratch = out;
        masked
    }

    /// Mask one string; `None` if nothing was found.
    pub fn mask_str(&mut self, text: &str) -> Option<String> {
        self.mask_text(text).map(|m| m.as_str().to_owned())
    }

    fn mask_text(&mut self, text: &str) -> Option<ByteStr> {
        self.find(text);
        if self.spans.is_empty() {
            return None;
        }
        let spans = std::mem::take(&mut self.spans);
        let out = self.replace(&spans, text, 0);
        self.spans = spans;
        Some(out)
    }

    fn mask_value(&mut self, v: &mut Value) -> bool {
        match v {
            Value::Str(s) => match self.mask_text(s.as_str()) {
                Some(m) => {
                    *s = m;
                    true
                }
                None => false,
            },
            Value::Array(a) => {
                let mut any = false;
                for x in a {
                    any |= self.mask_value(x);
                }
                any
            }
            Value::Map(m) => {
                let mut any = false;
                for (_, v) in m.iter_mut() {
                    any |= self.mask_value(v);
                }
                any
            }
            _ => false,
        }
    }

    /// Replace the whole value of each sensitive field present.
    fn mask_sensitive(&mut self, e: &mut Event) -> bool {
        let mut any = false;
        for f in &self.sensitive {
            let Some(v) = e.fields.get_mut(&f.name) else { continue };
            let text = match &*v {
                Value::Null => continue,
                Value::Str(s) => s.as_str().to_string(),
                Value::Int(i) => i.to_string(),
                Value::Float(x) => x.to_string(),
                Value::Bool(b) => b.to_string(),
                other => format!("{other:?}"),
            };
            let mut out = String::new();
            match self.whole_mode {
                Mode::Redact => out.push_str(&f.label),
                Mode::Partial => out.push_str(&partial(None, &text)),
                Mode::Hash => pseudonym(self.key.as_deref().expect("checked at build"), &f.name, &text, &mut out),
            }
            *v = Value::Str(ByteStr::from(out));
            f.counter.increment(1);
            any = true;
        }
        any
    }

    /// `s` with the spans of the scanned text `[lo, hi)` that fall on it replaced, if it
    /// is a slice of that text: `None` when it is not (it must be scanned on its own),
    /// `Some(None)` when no span touches it.
    fn clipped(&mut self, spans: &[Span], lo: usize, hi: usize, s: &str) -> Option<Option<ByteStr>> {
        let (p, n) = (s.as_ptr() as usize, s.len());
        if p < lo || p + n > hi || n == 0 {
            return None;
        }
        // Spans are ordered by start and by end (no overlaps): binary search both ends.
        let (from, to) = (p - lo, p - lo + n);
        let first = spans.partition_point(|sp| sp.end <= from);
        let last = spans.partition_point(|sp| sp.start < to);
        Some((first < last).then(|| self.replace(&spans[first..last], s, from)))
    }

    /// Mask an event in place; returns true if anything was masked.
    ///
    /// The line the event was read from is scanned once. The message and every string
    /// field that is a slice of it (a header field, a template's parameter) take the
    /// spans that fall on them, clipped, instead of being scanned again: a field and the
    /// message always agree, and a line costs one scan however many fields it has.
    /// Other strings (decoded JSON, values set by other stages, nested values) are
    /// scanned on their own.
    pub fn apply(&mut self, e: &mut Event) -> bool {
        let mut any = !self.sensitive.is_empty() && self.mask_sensitive(e);
        // The line: the raw bytes when they are UTF-8, else the (lossy) message.
        let lossy = match (&e.message, e.marks.has(Marks::INVALID_UTF8)) {
            (Some(m), true) => Some(m.clone()),
            _ => None,
        };
        let text = match &lossy {
            Some(m) => m.as_str(),
            // SAFETY: the raw bytes were checked UTF-8 when the event was built (else
            // the INVALID_UTF8 mark is set and the lossy message is used).
            None => unsafe { std::str::from_utf8_unchecked(&e.raw) },
        };
        self.find(text);
        let spans = std::mem::take(&mut self.spans);
        let (lo, hi) = (text.as_ptr() as usize, text.as_ptr() as usize + text.len());
        let masked_message = match &e.message {
            None => (!spans.is_empty()).then(|| self.replace(&spans, text, 0)),
            Some(m) => match self.clipped(&spans, lo, hi, m.as_str()) {
                Some(r) => r,
                None => self.mask_text(m.as_str()),
            },
        };
        if let Some(m) = masked_message {
            e.message = Some(m);
            any = true;
        }
        let skip = std::mem::take(&mut self.skip);
        for (k, v) in e.fields.iter_mut() {
            if skip.iter().any(|s| s == k) {
                continue;
            }
            if let Value::Str(s) = v {
                if let Some(r) = self.clipped(&spans, lo, hi, s.as_str()) {
                    if let Some(m) = r {
                        *s = m;
                        any = true;
                    }
                    continue;
                }
            }
            any |= self.mask_value(v);
        }
        self.skip = skip;
        self.spans = spans;
        if any && e.marks.has(Marks::INVALID_UTF8) {
            // The raw bytes would otherwise leave sluice unmasked (as raw_base64).
            e.raw = e.message.as_ref().map(|m| m.as_bytes().clone()).unwrap_or_default();
            e.marks.clear(Marks::INVALID_UTF8);
        }
        any
    }
}

impl Transform for Mask {
    fn process(&mut self, mut batch: Batch, out: &mut dyn Emit) -> Outcome {
        for e in &mut batch.events {
            self.apply(e);
        }
        for (i, c) in self.counts.iter_mut().enumerate() {
            if *c > 0 {
                self.dets[i].counter.increment(*c);
                *c = 0;
            }
        }
        out.emit(None, batch);
        Outcome::default()
    }

    fn fork(&self) -> Option<Box<dyn Transform>> {
        Some(Box::new(self.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_event::Fields;

    fn mask(cfg: &str, text: &str) -> String {
        let c: MaskConfig = toml::from_str(cfg).unwrap();
        c.compile().unwrap().mask_str(text).unwrap_or_else(|| text.to_string())
    }

    #[test]
    fn modes() {
        let t = "Sending receipt to Jane.Doe@Example.com card 4111-1111-1111-1111 from 10.1.2.3";
        assert_eq!(mask("", t), "Sending receipt to [EMAIL] card [CREDIT_CARD] from [IPV4]");
        assert_eq!(
            mask("mode = \"partial\"", t),
            "Sending receipt to J***@Example.com card ************1111 from 10.*.*.*"
        );
        std::env::set_var("SLUICE_TEST_MASK_KEY", "k1");
        let h1 = mask("mode = \"hash\"\nhash_key_env = \"SLUICE_TEST_MASK_KEY\"", "a jane.doe@example.com b");
        let h2 = mask("mode = \"hash\"\nhash_key_env = \"SLUICE_TEST_MASK_KEY\"", "x JANE.DOE%40example.com");
        let tag = &h1[2..h1.len() - 2];
        assert!(tag.starts_with("email:") && tag.len() == "email:".len() + 12, "{h1}");
        assert!(h2.ends_with(tag), "same person, same pseudonym: {h1} / {h2}");
        std::env::set_var("SLUICE_TEST_MASK_KEY2", "k2");
        let h3 = mask("mode = \"hash\"\nhash_key_env = \"SLUICE_TEST_MASK_KEY2\"", "a jane.doe@example.com b");
        assert_ne!(h1, h3, "another key, another pseudonym");
        assert_eq!(
            mask("modes = { email = \"partial\" }\ndetectors = [\"email\", \"ipv4\"]", "j@x.org 1.2.3.4"),
            "j***@x.org [IPV4]"
        );
        assert_eq!(
            mask("custom = [{ name = \"order\", pattern = \"ORD-\\\\d{8}\" }]\ndetectors = []", "Order ORD-12345678 x"),
            "Order [ORDER] x"
        );
    }

    #[test]
    fn config_errors() {
        let err = |t: &str| toml::from_str::<MaskConfig>(t).unwrap().compile().err().unwrap();
        assert_eq!(err("detectors = [\"mail\"]").key, "detectors");
        assert_eq!(err("mode = \"hash\"").key, "mode");
        assert_eq!(err("hash_key_env = \"SLUICE_TEST_NOPE_UNSET\"").key, "hash_key_env");
        assert_eq!(err("modes = { phone2 = \"hash\" }").key, "modes");
    }

    #[test]
    fn fields_recursive_skip_and_raw() {
        use bytes::Bytes;
        use sluice_event::{Origin, OriginInfo, Timestamp};
        let c: MaskConfig = toml::from_str("skip_fields = [\"trace_id\"]").unwrap();
        let mut m = c.compile().unwrap();
        let mut e = Event::from_line(
            Bytes::from_static(b"bad \xff a@b.io"),
            Timestamp(0),
            Origin { info: OriginInfo::new("s", None), offset: 0 },
        );
        let mut inner = Fields::new();
        inner.insert("mail", Value::from("x@y.com"));
        e.fields.insert("nested", Value::Map(inner));
        e.fields.insert("list", Value::Array(vec![Value::from("1.2.3.4")]));
        e.fields.insert("trace_id", Value::from("203.0.113.1"));
        assert!(m.apply(&mut e));
        assert_eq!(e.message(), "bad \u{fffd} [EMAIL]");
        let Some(Value::Map(inner)) = e.fields.get("nested") else { panic!() };
        assert_eq!(inner.get("mail").unwrap().as_str(), Some("[EMAIL]"));
        assert_eq!(e.fields.get("list"), Some(&Value::Array(vec![Value::from("[IPV4]")])));
        assert_eq!(e.fields.get("trace_id").unwrap().as_str(), Some("203.0.113.1"));
        assert!(!e.marks.has(Marks::INVALID_UTF8));
        assert!(!e.raw.windows(4).any(|w| w == b"a@b."));
    }

    /// Fields sliced from the line take the spans found on the line (scanned once), so
    /// they agree with the message; other strings are scanned on their own.
    #[test]
    fn fields_sliced_from_the_line_follow_the_line() {
        use bytes::Bytes;
        use sluice_event::{Origin, OriginInfo, Timestamp};
        let raw = Bytes::from_static(b"[pay] user jane@x.io from 10.1.2.3 id=123-45-6789x");
        let mut e = Event::from_line(raw.clone(), Timestamp(0), Origin { info: OriginInfo::new("s", None), offset: 0 });
        let line = ByteStr::from_utf8(raw).unwrap();
        let text = line.as_str();
        e.message = Some(line.slice_str(&text[6..]));
        e.fields.insert("logger", Value::Str(line.slice_str(&text[1..4])));
        e.fields.insert("ip", Value::Str(line.slice_str(&text[26..34])));
        e.fields.insert("mail_part", Value::Str(line.slice_str(&text[11..15])));
        e.fields.insert("id", Value::Str(line.slice_str(&text[38..49])));
        e.fields.insert("copied", Value::from("x a@b.io"));
        let c: MaskConfig = toml::from_str("").unwrap();
        let mut m = c.compile().unwrap();
        assert!(m.apply(&mut e));
        assert_eq!(e.message(), "user [EMAIL] from [IPV4] id=123-45-6789x");
        let f = |k: &str| e.fields.get(k).unwrap().as_str().unwrap().to_string();
        assert_eq!(f("logger"), "pay");
        assert_eq!(f("ip"), "[IPV4]");
        // Part of an address found on the line: masked whole.
        assert_eq!(f("mail_part"), "[EMAIL]");
        // Not an SSN where it stands on the line (a word follows), so not in the field either.
        assert_eq!(f("id"), "123-45-6789");
        assert_eq!(f("copied"), "x [EMAIL]");
        // Counted once per place masked: message (2) and fields (3).
        assert_eq!(m.counts.iter().sum::<u64>(), 5);
    }

    /// The prefilter never hides a match: with it, every detector finds what it finds
    /// without it, on texts holding each kind of value and on near misses.
    #[test]
    fn prefilter_never_hides_a_match() {
        let texts = [
            "to jane.doe42@mail.example.org.",
            "/api?email=jane%40example.co.uk&x=1",
            "from 203.0.113.161 port 50015",
            "ssn=123-45-6789 phone=+12345550123 or (555) 123-4567",
            "Card 4111 1111 1111 1111 ok 4111-1111-1111-1111",
            "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n",
            "Authorization: Bearer abc.def-123456",
            "key AKIAIOSFODNN7EXAMPLE used",
            "API key sk_live_4eC39HqLyjWDarjtT1zdp7dc used",
            "login password=hunter2&user=x {\"api_key\": \"abc123\"} pwd=x",
            "from 2001:db8::8a2e:370:7334 ::1",
            "IBAN DE89 3704 0044 0532 0130 00 and GB82WEST12345698765432",
            "pwd=x",
            "a@b.io",
            "1.2.3.4",
        ];
        let c: MaskConfig = toml::from_str("").unwrap();
        let mut m = c.compile().unwrap();
        for t in texts {
            m.find(t);
            let with: Vec<Span> = m.spans.clone();
            let mut without = Vec::new();
            detect::numeric(t, m.numeric, &mut without);
            for (i, d) in m.dets.iter().enumerate() {
                match &d.det {
                    Det::Builtin(Kind::Email) => detect::emails(t, i, &mut without),
                    Det::Builtin(Kind::Ipv6) => detect::ipv6(t, i, &mut without),
                    Det::Builtin(Kind::Iban) => detect::iban(t, i, &mut without),
                    Det::Builtin(Kind::Jwt) => detect::jwt(t, i, &mut without),
                    Det::Builtin(Kind::Bearer) => detect::bearer(t, i, &mut without),
                    Det::Builtin(Kind::AwsKey) => detect::aws_key(t, i, &mut without),
                    Det::Builtin(Kind::Secret) => detect::secrets(t, i, &mut without),
                    _ => {}
                }
            }
            assert!(!without.is_empty(), "{t}");
            for s in &without {
                assert!(with.iter().any(|w| w.start <= s.start && s.end <= w.end), "{t}: {s:?} lost by the prefilter");
            }
        }
    }

    #[test]
    fn sensitive_fields_are_masked_whole() {
        use bytes::Bytes;
        use sluice_event::{Origin, OriginInfo, Timestamp};
        let event = || {
            let mut e = Event::from_line(
                Bytes::from_static(b"login ok"),
                Timestamp(0),
                Origin { info: OriginInfo::new("s", None), offset: 0 },
            );
            e.fields.insert("user", Value::from("jane.doe"));
            e.fields.insert("account", Value::Int(42));
            e
        };
        let c: MaskConfig = toml::from_str("sensitive_fields = [\"user\", \"account\", \"absent\"]").unwrap();
        let mut e = event();
        assert!(c.compile().unwrap().apply(&mut e));
        assert_eq!(e.fields.get("user").unwrap().as_str(), Some("[USER]"));
        assert_eq!(e.fields.get("account").unwrap().as_str(), Some("[ACCOUNT]"));
        assert!(e.fields.get("absent").is_none());
        // Keyed pseudonyms: the same person, the same value; no key, no build.
        std::env::set_var("SLUICE_TEST_MASK_KEY_SF", "k1");
        let c: MaskConfig = toml::from_str(
            "sensitive_fields = [\"user\"]\nmode = \"hash\"\nhash_key_env = \"SLUICE_TEST_MASK_KEY_SF\"",
        )
        .unwrap();
        let (mut a, mut b) = (event(), event());
        let mut m = c.compile().unwrap();
        m.apply(&mut a);
        m.apply(&mut b);
        let pa = a.fields.get("user").unwrap().as_str().unwrap().to_string();
        assert!(pa.starts_with("user:") && pa.len() == "user:".len() + 12, "{pa}");
        assert_eq!(Some(pa.as_str()), b.fields.get("user").unwrap().as_str());
        let c: MaskConfig = toml::from_str("sensitive_fields = [\"user\"]\nmode = \"hash\"").unwrap();
        assert!(c.compile().is_err());
    }
}
