//! Transform `regex`: named captures → fields, with Logstash-style `grok` patterns.
//!
//! ```toml
//! [transforms.web]
//! type = "regex"
//! inputs = ["access"]
//! grok = "%{IPORHOST:client} %{USER:ident} %{USER:user} \\[%{HTTPDATE:ts}\\] \"%{WORD:method} %{URIPATHPARAM:path} HTTP/%{NUMBER:http}\" %{INT:status:int} %{NUMBER:bytes:int}"
//! # or: pattern = "(?P<client>\\S+) …"
//! patterns = { MYID = "ORD-\\d+" }   # extra grok patterns
//! field = "message"                 # which field to match (default: the message)
//! on_error = "pass"                 # or "drop"
//! ```
//! `%{NAME:field:int}` / `:float` type the capture. A line that does not match gets
//! `parse_error` (or is dropped and counted).

use crate::parse::OnError;
use crate::{Emit, OptionError, Outcome, Transform, TransformConfig};
use regex::Regex;
use serde::Deserialize;
use sluice_event::{Batch, ByteStr, Event, Value};
use std::collections::BTreeMap;

/// The common Logstash grok library (subset), by name.
pub const GROK: &[(&str, &str)] = &[
    ("USERNAME", r"[a-zA-Z0-9._-]+"),
    ("USER", r"%{USERNAME}"),
    ("EMAILLOCALPART", r"[a-zA-Z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-zA-Z0-9!#$%&'*+/=?^_`{|}~-]+)*"),
    ("EMAILADDRESS", r"%{EMAILLOCALPART}@%{HOSTNAME}"),
    ("INT", r"(?:[+-]?(?:[0-9]+))"),
    ("BASE10NUM", r"(?:[+-]?(?:[0-9]+(?:\.[0-9]+)?|\.[0-9]+))"),
    ("NUMBER", r"(?:%{BASE10NUM})"),
    ("BASE16NUM", r"(?:0[xX]?[0-9a-fA-F]+)"),
    ("POSINT", r"\b(?:[1-9][0-9]*)\b"),
    ("NONNEGINT", r"\b(?:[0-9]+)\b"),
    ("WORD", r"\b\w+\b"),
    ("NOTSPACE", r"\S+"),
    ("SPACE", r"\s*"),
    ("DATA", r".*?"),
    ("GREEDYDATA", r".*"),
    ("QUOTEDSTRING", r#"(?:"(?:\\.|[^\\"])*"|'(?:\\.|[^\\'])*'|`(?:\\.|[^\\`])*`)"#),
    ("QS", r"%{QUOTEDSTRING}"),
    ("UUID", r"[A-Fa-f0-9]{8}-(?:[A-Fa-f0-9]{4}-){3}[A-Fa-f0-9]{12}"),
    (
        "MAC",
        r"(?:(?:[A-Fa-f0-9]{2}:){5}[A-Fa-f0-9]{2}|(?:[A-Fa-f0-9]{2}-){5}[A-Fa-f0-9]{2}|(?:[A-Fa-f0-9]{4}\.){2}[A-Fa-f0-9]{4})",
    ),
    ("IPV6", r"(?:[0-9A-Fa-f]{0,4}:){2,7}(?:%{IPV4}|[0-9A-Fa-f]{1,4})?"),
    ("IPV4", r"(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"),
    ("IP", r"(?:%{IPV6}|%{IPV4})"),
    ("HOSTNAME", r"\b(?:[0-9A-Za-z][0-9A-Za-z-]{0,62})(?:\.(?:[0-9A-Za-z][0-9A-Za-z-]{0,62}))*\.?\b"),
    ("IPORHOST", r"(?:%{IP}|%{HOSTNAME})"),
    ("HOSTPORT", r"%{IPORHOST}:%{POSINT}"),
    ("UNIXPATH", r"(?:/[\w_%!$@:.,+~-]*)+"),
    ("PATH", r"%{UNIXPATH}"),
    ("URIPROTO", r"[A-Za-z][A-Za-z0-9+\-.]+"),
    ("URIHOST", r"%{IPORHOST}(?::%{POSINT})?"),
    ("URIPATH", r"(?:/[A-Za-z0-9$.+!*'(){},~:;=@#%&_\-]*)+"),
    ("URIPARAM", r"\?[A-Za-z0-9$.+!*'|(){},~@#%&/=:;_?\-\[\]<>]*"),
    ("URIPATHPARAM", r"%{URIPATH}(?:%{URIPARAM})?"),
    ("URI", r"%{URIPROTO}://(?:%{USER}(?::[^@]*)?@)?(?:%{URIHOST})?(?:%{URIPATHPARAM})?"),
    (
        "MONTH",
        r"\b(?:[Jj]an(?:uary|uar)?|[Ff]eb(?:ruary|ruar)?|[Mm](?:a|ä)?r(?:ch|z)?|[Aa]pr(?:il)?|[Mm]a(?:y|i)?|[Jj]un(?:e|i)?|[Jj]ul(?:y|i)?|[Aa]ug(?:ust)?|[Ss]ep(?:tember)?|[Oo](?:c|k)?t(?:ober)?|[Nn]ov(?:ember)?|[Dd]e(?:c|z)(?:ember)?)\b",
    ),
    ("MONTHNUM", r"(?:0?[1-9]|1[0-2])"),
    ("MONTHDAY", r"(?:(?:0[1-9])|(?:[12][0-9])|(?:3[01])|[1-9])"),
    ("DAY", r"(?:Mon(?:day)?|Tue(?:sday)?|Wed(?:nesday)?|Thu(?:rsday)?|Fri(?:day)?|Sat(?:urday)?|Sun(?:day)?)"),
    ("YEAR", r"(?:\d\d){1,2}"),
    ("HOUR", r"(?:2[0123]|[01]?[0-9])"),
    ("MINUTE", r"(?:[0-5][0-9])"),
    ("SECOND", r"(?:(?:[0-5]?[0-9]|60)(?:[:.,][0-9]+)?)"),
    ("TIME", r"%{HOUR}:%{MINUTE}(?::%{SECOND})?"),
    ("DATE_US", r"%{MONTHNUM}[/-]%{MONTHDAY}[/-]%{YEAR}"),
    ("DATE_EU", r"%{MONTHDAY}[./-]%{MONTHNUM}[./-]%{YEAR}"),
    ("ISO8601_TIMEZONE", r"(?:Z|[+-]%{HOUR}(?::?%{MINUTE}))"),
    ("ISO8601_SECOND", r"%{SECOND}"),
    ("TIMESTAMP_ISO8601", r"%{YEAR}-%{MONTHNUM}-%{MONTHDAY}[T ]%{HOUR}:?%{MINUTE}(?::?%{SECOND})?%{ISO8601_TIMEZONE}?"),
    ("DATE", r"%{DATE_US}|%{DATE_EU}"),
    ("DATESTAMP", r"%{DATE}[- ]%{TIME}"),
    ("HTTPDATE", r"%{MONTHDAY}/%{MONTH}/%{YEAR}:%{TIME} %{INT}"),
    ("SYSLOGTIMESTAMP", r"%{MONTH} +%{MONTHDAY} %{TIME}"),
    ("PROG", r"[\x21-\x5a\x5c\x5e-\x7e]+"),
    ("SYSLOGPROG", r"%{PROG:program}(?:\[%{POSINT:pid}\])?"),
    ("SYSLOGHOST", r"%{IPORHOST}"),
    (
        "LOGLEVEL",
        r"(?:[Aa]lert|ALERT|[Tt]race|TRACE|[Dd]ebug|DEBUG|[Nn]otice|NOTICE|[Ii]nfo?(?:rmation)?|INFO?(?:RMATION)?|[Ww]arn?(?:ing)?|WARN?(?:ING)?|[Ee]rr?(?:or)?|ERR?(?:OR)?|[Cc]rit?(?:ical)?|CRIT?(?:ICAL)?|[Ff]atal|FATAL|[Ss]evere|SEVERE|EMERG(?:ENCY)?|[Ee]merg(?:ency)?)",
    ),
    (
        "COMMONAPACHELOG",
        r#"%{IPORHOST:clientip} %{USER:ident} %{USER:auth} \[%{HTTPDATE:timestamp}\] "(?:%{WORD:verb} %{NOTSPACE:request}(?: HTTP/%{NUMBER:httpversion})?|%{DATA:rawrequest})" %{NUMBER:response} (?:%{NUMBER:bytes}|-)"#,
    ),
    ("COMBINEDAPACHELOG", r#"%{COMMONAPACHELOG} %{QS:referrer} %{QS:agent}"#),
];

/// The type a grok capture is converted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    Str,
    Int,
    Float,
}

/// A grok capture: regex group name, field name, type.
pub type GrokCapture = (String, String, Ty);

/// Expand a grok expression into a regex; returns it and its captures.
pub fn expand_grok(
    expr: &str,
    extra: &BTreeMap<String, String>,
) -> Result<(String, Vec<GrokCapture>), sluice_parsers::PatternError> {
    let mut captures = Vec::new();
    let out = expand(expr, extra, &mut captures, 0)?;
    Ok((out, captures))
}

fn lookup<'a>(name: &str, extra: &'a BTreeMap<String, String>) -> Option<&'a str> {
    extra.get(name).map(String::as_str).or_else(|| GROK.iter().find(|(n, _)| *n == name).map(|(_, p)| *p))
}

fn expand(
    expr: &str,
    extra: &BTreeMap<String, String>,
    caps: &mut Vec<GrokCapture>,
    depth: usize,
) -> Result<String, String> {
    if depth > 20 {
        return Err("grok patterns nest too deeply (a pattern refers to itself?)".into());
    }
    let mut out = String::with_capacity(expr.len() * 2);
    let mut rest = expr;
    while let Some(i) = rest.find("%{") {
        out.push_str(&rest[..i]);
        let end = rest[i..].find('}').ok_or_else(|| format!("unclosed `%{{` in grok expression \"{expr}\""))? + i;
        let spec = &rest[i + 2..end];
        let mut parts = spec.splitn(3, ':');
        let name = parts.next().unwrap_or("");
        let field = parts.next();
        let ty = match parts.next() {
            None | Some("string") => Ty::Str,
            Some("int") => Ty::Int,
            Some("float") => Ty::Float,
            Some(t) => return Err(format!("unknown grok type `{t}` in `%{{{spec}}}`, expected `int` or `float`")),
        };
        let body = lookup(name, extra).ok_or_else(|| format!("unknown grok pattern `{name}` in `%{{{spec}}}`"))?;
        let inner = expand(body, extra, caps, depth + 1)?;
        match field {
            Some(f) if !f.is_empty() => {
                let group = format!("g{}", caps.len());
                caps.push((group.clone(), f.to_string(), ty));
                out.push_str(&format!("(?P<{group}>{inner})"));
            }
            _ => out.push_str(&format!("(?:{inner})")),
        }
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegexConfig {
    /// A regex whose named groups (`(?P<client>\\S+)`) become fields (give this or `grok`).
    pub pattern: Option<String>,
    /// A grok expression: `%{IPORHOST:client} %{INT:status:int}` (give this or `pattern`).
    pub grok: Option<String>,
    /// Extra grok patterns by name: `{ MYID = "ORD-\\d+" }`.
    #[serde(default)]
    pub patterns: BTreeMap<String, String>,
    /// The field to match (default: the message).
    pub field: Option<String>,
    /// Lines that do not match: `"pass"` them on with `parse_error`, or `"drop"` them (counted).
    #[serde(default)]
    pub on_error: OnError,
}

impl TransformConfig for RegexConfig {
    fn build(&self, _ctx: &crate::TransformContext) -> Result<Box<dyn Transform>, OptionError> {
        Ok(Box::new(self.compile()?))
    }
}

impl RegexConfig {
    pub fn compile(&self) -> Result<RegexTransform, OptionError> {
        let (src, key, names) = match (&self.pattern, &self.grok) {
            (Some(p), None) => {
                let re = Regex::new(p).map_err(|e| OptionError::new("pattern", format!("invalid regex: {e}")))?;
                let names = re.capture_names().flatten().map(|n| (n.to_string(), n.to_string(), Ty::Str)).collect();
                (p.clone(), "pattern", names)
            }
            (None, Some(g)) => {
                let (re, names) =
                    expand_grok(g, &self.patterns).map_err(|m| OptionError::new("grok", m.to_string()))?;
                (re, "grok", names)
            }
            _ => return Err(OptionError::new("pattern", "give exactly one of `pattern` (a regex) or `grok`")),
        };
        let re = Regex::new(&src).map_err(|e| OptionError::new(key, format!("invalid expression: {e}")))?;
        if names.is_empty() {
            return Err(OptionError::new(key, "the expression captures nothing: use (?P<name>…) or %{PATTERN:name}"));
        }
        let groups = names
            .into_iter()
            .map(|(g, f, t)| (re.capture_names().position(|n| n == Some(g.as_str())).unwrap(), f, t))
            .collect();
        Ok(RegexTransform { re, groups, field: self.field.clone(), on_error: self.on_error, locs: None })
    }
}

#[derive(Clone)]
pub struct RegexTransform {
    re: Regex,
    /// (capture index, field name, type)
    groups: Vec<(usize, String, Ty)>,
    field: Option<String>,
    on_error: OnError,
    locs: Option<regex::CaptureLocations>,
}

impl RegexTransform {
    fn apply(&mut self, e: &mut Event) -> Result<(), String> {
        let text: ByteStr = match &self.field {
            None => match &e.message {
                Some(m) => m.clone(),
                // SAFETY: message is None only for valid UTF-8 raw bytes.
                None => unsafe { ByteStr::from_utf8_unchecked(e.raw.clone()) },
            },
            Some(f) => match e.fields.get(f) {
                Some(Value::Str(s)) => s.clone(),
                _ => return Err(format!("field `{f}` is missing or not a string")),
            },
        };
        let locs = self.locs.get_or_insert_with(|| self.re.capture_locations());
        if self.re.captures_read(locs, text.as_str()).is_none() {
            return Err("no match".into());
        }
        for (idx, name, ty) in &self.groups {
            let Some((a, b)) = locs.get(*idx) else { continue };
            let s = &text.as_str()[a..b];
            let v = match ty {
                Ty::Str => Value::Str(text.slice_str(s)),
                Ty::Int => match s.parse() {
                    Ok(i) => Value::Int(i),
                    Err(_) => Value::Str(text.slice_str(s)),
                },
                Ty::Float => match s.parse::<f64>() {
                    Ok(f) if f.is_finite() => Value::Float(f),
                    _ => Value::Str(text.slice_str(s)),
                },
            };
            e.fields.insert(name.as_str(), v);
        }
        Ok(())
    }
}

impl Transform for RegexTransform {
    fn fork(&self) -> Option<Box<dyn Transform>> {
        Some(Box::new(self.clone()))
    }

    fn process(&mut self, mut batch: Batch, out: &mut dyn Emit) -> Outcome {
        let mut o = Outcome { reason: "parse_error", ..Outcome::default() };
        let mut keep = Vec::with_capacity(batch.events.len());
        for mut e in batch.events.drain(..) {
            match self.apply(&mut e) {
                Ok(()) => keep.push(e),
                Err(reason) => {
                    o.errors += 1;
                    if self.on_error == OnError::Drop {
                        o.dropped += 1;
                    } else {
                        e.fields.insert("parse_error", Value::Str(reason.into()));
                        keep.push(e);
                    }
                }
            }
        }
        batch.events = keep;
        out.emit(None, batch);
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use sluice_event::{Origin, OriginInfo, Timestamp};

    fn run(c: &RegexConfig, line: &str) -> Event {
        let mut t = c.compile().unwrap();
        let e = Event::from_line(
            Bytes::copy_from_slice(line.as_bytes()),
            Timestamp(0),
            Origin { info: OriginInfo::new("s", None), offset: 0 },
        );
        let mut got = Vec::new();
        t.process(Batch::new(vec![e]), &mut |_: Option<&str>, b: Batch| got.extend(b.events));
        got.pop().unwrap()
    }

    fn grok(g: &str) -> RegexConfig {
        RegexConfig {
            pattern: None,
            grok: Some(g.into()),
            patterns: BTreeMap::new(),
            field: None,
            on_error: OnError::Pass,
        }
    }

    #[test]
    fn grok_apache_and_types() {
        let e = run(
            &grok("%{COMBINEDAPACHELOG}"),
            r#"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif?x=1 HTTP/1.0" 200 2326 "http://example.com/" "Mozilla/4.08""#,
        );
        assert_eq!(e.fields.get("clientip").unwrap().as_str(), Some("127.0.0.1"));
        assert_eq!(e.fields.get("verb").unwrap().as_str(), Some("GET"));
        assert_eq!(e.fields.get("request").unwrap().as_str(), Some("/apache_pb.gif?x=1"));
        assert_eq!(e.fields.get("timestamp").unwrap().as_str(), Some("10/Oct/2000:13:55:36 -0700"));
        assert_eq!(e.fields.get("agent").unwrap().as_str(), Some("\"Mozilla/4.08\""));
        let e = run(&grok("%{TIMESTAMP_ISO8601:ts} %{LOGLEVEL:level} %{UUID:id} took %{NUMBER:ms:float}ms code=%{INT:code:int} from %{IP:ip}"),
            "2026-11-21T02:14:33.123Z WARNING 123e4567-e89b-12d3-a456-426614174000 took 12.5ms code=7 from 2001:db8::1");
        assert_eq!(e.fields.get("ms"), Some(&Value::Float(12.5)));
        assert_eq!(e.fields.get("code"), Some(&Value::Int(7)));
        assert_eq!(e.fields.get("ip").unwrap().as_str(), Some("2001:db8::1"));
        let e = run(
            &grok("%{SYSLOGTIMESTAMP:ts} %{SYSLOGHOST:host} %{SYSLOGPROG}: %{GREEDYDATA:msg}"),
            "Nov  1 02:14:33 web-1 sshd[42]: hello there",
        );
        assert_eq!(e.fields.get("pid").unwrap().as_str(), Some("42"));
        assert_eq!(e.fields.get("msg").unwrap().as_str(), Some("hello there"));
        let e = run(
            &grok("%{WORD:w} %{QS:q} %{EMAILADDRESS:mail} %{URI:u}"),
            r#"hi "a \"b\"" x.y@mail.example.org https://u@h.example:8080/p?q=1"#,
        );
        assert_eq!(e.fields.get("mail").unwrap().as_str(), Some("x.y@mail.example.org"));
        assert_eq!(e.fields.get("u").unwrap().as_str(), Some("https://u@h.example:8080/p?q=1"));
    }

    #[test]
    fn regex_custom_patterns_and_errors() {
        let c = RegexConfig {
            pattern: Some(r"user=(?P<user>\w+)".into()),
            grok: None,
            patterns: BTreeMap::new(),
            field: None,
            on_error: OnError::Pass,
        };
        assert_eq!(run(&c, "x user=bob y").fields.get("user").unwrap().as_str(), Some("bob"));
        assert_eq!(run(&c, "nothing").fields.get("parse_error").unwrap().as_str(), Some("no match"));
        let mut g = grok("order %{ORDER:id}");
        g.patterns.insert("ORDER".into(), r"ORD-\d+".into());
        assert_eq!(run(&g, "order ORD-0042").fields.get("id").unwrap().as_str(), Some("ORD-0042"));
        assert!(grok("%{NOPE:x}").compile().err().unwrap().message.contains("unknown grok pattern `NOPE`"));
        let mut rec = grok("%{A:x}");
        rec.patterns.insert("A".into(), "%{A}".into());
        assert!(rec.compile().err().unwrap().message.contains("nest too deeply"));
    }
}
