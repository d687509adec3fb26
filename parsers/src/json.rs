//! JSON lines (simd-json). Common aliases are mapped: `msg`/`message`/`@message` →
//! message, `level`/`severity`/`lvl`/`loglevel` → level, `time`/`ts`/`timestamp`/
//! `@timestamp` → timestamp (RFC 3339 text or Unix seconds/milliseconds). Other keys
//! become fields (nested objects and arrays kept). Strings without escapes are zero-copy
//! slices of the line.

use crate::timestamp::{self, Context};
use crate::{Level, ParseError, Parsed};
use simd_json::borrowed::Value as J;
use simd_json::StaticNode;
use sluice_event::{ByteStr, Fields, Timestamp, Value};
use std::cell::RefCell;

#[derive(Debug, Default)]
pub struct JsonParser;

thread_local! {
    static SCRATCH: RefCell<(Vec<u8>, simd_json::Buffers)> = RefCell::new((Vec::new(), simd_json::Buffers::default()));
}

impl JsonParser {
    pub fn parse(&self, line: &ByteStr, ctx: &Context, out: &mut Parsed) -> Result<(), ParseError> {
        let text = line.as_str();
        let trimmed = text.trim_start();
        if !trimmed.starts_with('{') {
            return Err(ParseError::new("json: not a JSON object"));
        }
        SCRATCH.with(|cell| {
            let mut guard = cell.borrow_mut();
            let (buf, buffers) = &mut *guard;
            buf.clear();
            buf.extend_from_slice(text.as_bytes());
            let base = buf.as_ptr() as usize;
            let v = simd_json::borrowed::to_value_with_buffers(buf, buffers)
                .map_err(|e| ParseError::new(format!("json: {e}")))?;
            let J::Object(obj) = v else {
                return Err(ParseError::new("json: not a JSON object"));
            };
            let conv = Conv { line, base };
            for (k, v) in obj.iter() {
                let k: &str = k;
                match k {
                    "msg" | "message" | "@message" if matches!(v, J::String(_)) => {
                        if let J::String(s) = v {
                            out.message = Some(conv.str(s));
                        }
                    }
                    "level" | "severity" | "lvl" | "loglevel" if matches!(v, J::String(_)) => {
                        let J::String(s) = v else { unreachable!() };
                        match Level::parse(s) {
                            Some(l) => out.level = Some(l),
                            None => out.fields.insert(k, Value::Str(conv.str(s))),
                        }
                    }
                    "time" | "ts" | "timestamp" | "@timestamp" => match v {
                        J::String(s) => match timestamp::parse_exact(s, ctx) {
                            Some(t) => out.timestamp = Some(t),
                            None => out.bad_timestamp = Some(conv.str(s)),
                        },
                        J::Static(n) => match epoch(*n) {
                            Some(t) => out.timestamp = Some(t),
                            None => out.fields.insert(k, conv.value(v)),
                        },
                        _ => out.fields.insert(k, conv.value(v)),
                    },
                    _ => out.fields.insert(k, conv.value(v)),
                }
            }
            Ok(())
        })
    }
}

fn epoch(n: StaticNode) -> Option<Timestamp> {
    let int = match n {
        StaticNode::I64(i) => Some(i as i128),
        StaticNode::U64(u) => Some(u as i128),
        _ => None,
    };
    if let Some(i) = int {
        // Exact for integers: seconds, ms, µs or ns by magnitude.
        let nanos = match i {
            i if i <= 0 => return None,
            i if i < 100_000_000_000 => i * 1_000_000_000,
            i if i < 100_000_000_000_000 => i * 1_000_000,
            i if i < 100_000_000_000_000_000 => i * 1_000,
            i => i,
        };
        return i64::try_from(nanos).ok().map(Timestamp);
    }
    let StaticNode::F64(f) = n else { return None };
    if !f.is_finite() || f <= 0.0 {
        return None;
    }
    // Seconds, milliseconds, microseconds or nanoseconds, by magnitude.
    let nanos = if f < 1e11 {
        f * 1e9
    } else if f < 1e14 {
        f * 1e6
    } else if f < 1e17 {
        f * 1e3
    } else {
        f
    };
    (nanos < 9.2e18).then_some(Timestamp(nanos as i64))
}

struct Conv<'a> {
    line: &'a ByteStr,
    base: usize,
}

impl Conv<'_> {
    /// A string value: a slice of the original line when the bytes are unchanged there
    /// (no escapes), else a copy.
    fn str(&self, s: &str) -> ByteStr {
        let off = (s.as_ptr() as usize).wrapping_sub(self.base);
        let raw = self.line.as_str().as_bytes();
        if off <= raw.len() && raw.len() - off >= s.len() && &raw[off..off + s.len()] == s.as_bytes() {
            let orig = &self.line.as_str()[off..off + s.len()];
            return self.line.slice_str(orig);
        }
        ByteStr::from(s)
    }

    fn value(&self, v: &J<'_>) -> Value {
        match v {
            J::Static(StaticNode::Null) => Value::Null,
            J::Static(StaticNode::Bool(b)) => Value::Bool(*b),
            J::Static(StaticNode::I64(i)) => Value::Int(*i),
            J::Static(StaticNode::U64(u)) => i64::try_from(*u).map(Value::Int).unwrap_or(Value::Float(*u as f64)),
            J::Static(StaticNode::F64(f)) => Value::Float(*f),
            #[allow(unreachable_patterns)]
            J::Static(_) => Value::Null,
            J::String(s) => Value::Str(self.str(s)),
            J::Array(a) => Value::Array(a.iter().map(|x| self.value(x)).collect()),
            J::Object(o) => {
                let mut f = Fields::new();
                for (k, x) in o.iter() {
                    f.insert(k.as_ref(), self.value(x));
                }
                Value::Map(f)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(s: &str) -> Result<Parsed, ParseError> {
        let mut p = Parsed::default();
        JsonParser.parse(&ByteStr::from(s), &Context::default(), &mut p).map(|_| p)
    }

    #[test]
    fn objects() {
        let p = run(r#"{"time":"2026-11-21T01:00:57.353Z","level":"info","msg":"cart updated","trace_id":"6b4b","items":1,"total":5.5,"tags":["a","b\"c"],"user":{"id":7},"ok":true,"none":null}"#).unwrap();
        assert_eq!(p.timestamp.unwrap().to_rfc3339(), "2026-11-21T01:00:57.353Z");
        assert_eq!(p.level, Some(Level::Info));
        assert_eq!(p.message.unwrap().as_str(), "cart updated");
        assert_eq!(p.fields.get("items"), Some(&Value::Int(1)));
        assert_eq!(p.fields.get("total"), Some(&Value::Float(5.5)));
        assert_eq!(p.fields.get("tags"), Some(&Value::Array(vec![Value::from("a"), Value::from("b\"c")])));
        let Some(Value::Map(u)) = p.fields.get("user") else { panic!() };
        assert_eq!(u.get("id"), Some(&Value::Int(7)));
        assert_eq!(p.fields.get("none"), Some(&Value::Null));
        let p = run(r#"{"ts": 1795314873123, "message": "x"}"#).unwrap();
        assert_eq!(p.timestamp.unwrap().to_rfc3339(), "2026-11-22T02:34:33.123Z");
    }

    #[test]
    fn bad_json_is_an_error() {
        assert!(run(r#"{"a": "trunc"#).unwrap_err().0.starts_with("json:"));
        assert!(run("[1,2]").is_err());
        assert!(run("plain text").is_err());
        assert!(run("").is_err());
    }
}
