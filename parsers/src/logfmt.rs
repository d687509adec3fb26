//! logfmt: `key=value key2="quoted \"value\"" flag`. `msg`/`message` become the
//! message, `level`/`lvl`/`severity` the level, `time`/`ts`/`timestamp` the timestamp.

use crate::timestamp::{self, Context};
use crate::{Level, ParseError, Parsed};
use sluice_event::{ByteStr, Value};

pub fn parse(line: &ByteStr, ctx: &Context, out: &mut Parsed) -> Result<(), ParseError> {
    let s = line.as_str();
    let b = s.as_bytes();
    let mut i = 0;
    let mut pairs = 0;
    while i < b.len() {
        while i < b.len() && b[i] == b' ' {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let ks = i;
        while i < b.len() && b[i] != b'=' && b[i] != b' ' {
            i += 1;
        }
        let key = &s[ks..i];
        if key.is_empty() || key.contains('"') {
            return Err(ParseError::new(format!("logfmt: expected a key at column {}", ks + 1)));
        }
        let value: Value = if i < b.len() && b[i] == b'=' {
            i += 1;
            if i < b.len() && b[i] == b'"' {
                i += 1;
                let vs = i;
                let mut escaped = false;
                loop {
                    if i >= b.len() {
                        return Err(ParseError::new(format!("logfmt: unterminated quoted value for `{key}`")));
                    }
                    match b[i] {
                        b'\\' => {
                            escaped = true;
                            i += 2;
                        }
                        b'"' => break,
                        _ => i += 1,
                    }
                }
                let raw = &s[vs..i.min(b.len())];
                i += 1;
                if escaped {
                    Value::Str(unescape(raw).into())
                } else {
                    Value::Str(line.slice_str(raw))
                }
            } else {
                let vs = i;
                while i < b.len() && b[i] != b' ' {
                    i += 1;
                }
                Value::Str(line.slice_str(&s[vs..i]))
            }
        } else {
            Value::Bool(true)
        };
        pairs += 1;
        match key {
            "msg" | "message" => {
                if let Value::Str(m) = value {
                    out.message = Some(m);
                }
            }
            "level" | "lvl" | "severity" | "loglevel" => match value.as_str().and_then(Level::parse) {
                Some(l) => out.level = Some(l),
                None => out.fields.insert(key, value),
            },
            "time" | "ts" | "timestamp" | "t" => match value.as_str().and_then(|v| timestamp::parse_exact(v, ctx)) {
                Some(t) => out.timestamp = Some(t),
                None => match value {
                    Value::Str(v) => out.bad_timestamp = Some(v),
                    other => out.fields.insert(key, other),
                },
            },
            _ => out.fields.insert(key, value),
        }
    }
    if pairs == 0 {
        return Err(ParseError::new("logfmt: empty line"));
    }
    Ok(())
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            match it.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some(o) => out.push(o),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs() {
        let line = ByteStr::from("time=2026-11-21T01:36:55.992Z level=warn msg=\"slow \\\"query\\\"\" duration_ms=44 query=\"red shoes\" cached");
        let mut p = Parsed::default();
        parse(&line, &Context::default(), &mut p).unwrap();
        assert_eq!(p.timestamp.unwrap().to_rfc3339(), "2026-11-21T01:36:55.992Z");
        assert_eq!(p.level, Some(Level::Warn));
        assert_eq!(p.message.unwrap().as_str(), "slow \"query\"");
        assert_eq!(p.fields.get("duration_ms").unwrap().as_str(), Some("44"));
        assert_eq!(p.fields.get("query").unwrap().as_str(), Some("red shoes"));
        assert_eq!(p.fields.get("cached"), Some(&Value::Bool(true)));
        let mut p = Parsed::default();
        assert!(parse(&ByteStr::from("a=\"open"), &Context::default(), &mut p).is_err());
        assert!(parse(&ByteStr::from("a=\"ends in backslash\\"), &Context::default(), &mut p).is_err());
    }
}
