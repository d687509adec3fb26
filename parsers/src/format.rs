//! Format strings describe a line header:
//! `"{timestamp} [{thread}] [traceId={trace_id}] {level} {logger} - {message}"`.
//!
//! * `{name}` captures up to the next literal text (or space, or the end of the line);
//!   `{name:int|float|ip|hex}` checks and types the value.
//! * `{timestamp}` spans a recognised timestamp (see [`crate::timestamp`]) or, with a
//!   `timestamp_format`, as many space-separated words as the layout has.
//! * `{level}` is normalised; `{message}` is the rest of the line.
//! * Literal text must match exactly, except that a run of spaces matches one or more
//!   spaces (padded levels such as `INFO ` are common).
//! * A captured `-` or empty value is treated as absent (the usual "no value" mark).

use crate::placeholder::{self, Kind};
use crate::timestamp::{self, Context};
use crate::{Level, ParseError, Parsed};
use memchr::memmem;
use sluice_event::{ByteStr, Value};
use smol_str::SmolStr;

#[derive(Debug, Clone)]
// Built once per pattern and walked in order on every line: the finder stays inline
// (no pointer chase per literal); the few wasted bytes per placeholder do not matter.
#[allow(clippy::large_enum_variant)]
enum Tok {
    Lit(String, memmem::Finder<'static>),
    Spaces,
    Cap(SmolStr, Kind),
}

/// A compiled format string.
#[derive(Debug, Clone)]
pub struct FormatString {
    toks: Vec<Tok>,
    ts_format: Option<String>,
    ts_words: usize,
}

impl FormatString {
    pub fn compile(fmt: &str, ts_format: Option<&str>) -> Result<FormatString, crate::PatternError> {
        if fmt.is_empty() {
            return Err("the format string is empty".into());
        }
        let mut toks = Vec::new();
        for part in placeholder::split_pattern(fmt)? {
            match part {
                Ok(lit) => {
                    // Split literal text into exact pieces and space runs.
                    let mut cur = String::new();
                    let mut chars = lit.chars().peekable();
                    while let Some(c) = chars.next() {
                        if c == ' ' {
                            while chars.peek() == Some(&' ') {
                                chars.next();
                            }
                            if !cur.is_empty() {
                                let s = std::mem::take(&mut cur);
                                toks.push(Tok::Lit(s.clone(), memmem::Finder::new(s.as_bytes()).into_owned()));
                            }
                            toks.push(Tok::Spaces);
                        } else {
                            cur.push(c);
                        }
                    }
                    if !cur.is_empty() {
                        toks.push(Tok::Lit(cur.clone(), memmem::Finder::new(cur.as_bytes()).into_owned()));
                    }
                }
                Err((name, kind)) => toks.push(Tok::Cap(name, kind)),
            }
        }
        if let Some(i) = toks.iter().position(|t| matches!(t, Tok::Cap(_, Kind::Message))) {
            if i + 1 != toks.len() {
                return Err("`{message}` must be the last part of the format string".into());
            }
        }
        Ok(FormatString {
            toks,
            ts_format: ts_format.map(str::to_owned),
            ts_words: ts_format.map_or(0, |f| f.split_whitespace().count()),
        })
    }

    /// Parse `line` (which the returned fields may borrow from, zero-copy).
    pub fn parse(&self, line: &ByteStr, ctx: &Context, out: &mut Parsed) -> Result<(), ParseError> {
        let s = line.as_str();
        let b = s.as_bytes();
        let mut pos = 0usize;
        for (i, tok) in self.toks.iter().enumerate() {
            match tok {
                Tok::Lit(l, _) => {
                    if b[pos..].starts_with(l.as_bytes()) {
                        pos += l.len();
                    } else {
                        return Err(ParseError::at("expected", l, pos));
                    }
                }
                Tok::Spaces => {
                    let n = b[pos..].iter().take_while(|&&c| c == b' ').count();
                    if n == 0 {
                        if pos == b.len() && i + 1 == self.toks.len() {
                            break;
                        }
                        return Err(ParseError::at("expected", " ", pos));
                    }
                    pos += n;
                }
                Tok::Cap(name, kind) => {
                    let rest = &s[pos..];
                    let next = self.toks.get(i + 1);
                    let len = match kind {
                        Kind::Message => rest.len(),
                        Kind::Timestamp => self.timestamp_extent(rest, next, ctx, out, line)?,
                        _ => match next {
                            None => rest.len(),
                            Some(Tok::Spaces) => memchr::memchr(b' ', rest.as_bytes()).unwrap_or(rest.len()),
                            Some(Tok::Lit(l, f)) => {
                                f.find(rest.as_bytes()).ok_or_else(|| ParseError::at("expected", l, pos))?
                            }
                            Some(Tok::Cap(..)) => unreachable!("rejected at compile time"),
                        },
                    };
                    let text = &rest[..len];
                    pos += len;
                    match kind {
                        Kind::Timestamp => {}
                        Kind::Message => out.message = Some(line.slice_str(text)),
                        Kind::Level => {
                            if !text.is_empty() && text != "-" {
                                match Level::parse(text) {
                                    Some(l) => out.level = Some(l),
                                    None => out.fields.insert("level", Value::Str(line.slice_str(text))),
                                }
                            }
                        }
                        _ => {
                            if text.is_empty() || text == "-" {
                                continue;
                            }
                            match placeholder::typed(*kind, text, line) {
                                Some(v) => out.fields.insert(name.clone(), v),
                                None => {
                                    return Err(ParseError::new(format!(
                                        "`{name}` is not {} at column {}: \"{}\"",
                                        kind_name(*kind),
                                        pos - len + 1,
                                        truncate(text)
                                    )))
                                }
                            }
                        }
                    }
                }
            }
        }
        if pos < b.len() && !matches!(self.toks.last(), Some(Tok::Cap(..))) {
            return Err(ParseError::new(format!("unexpected text after the header at column {}", pos + 1)));
        }
        Ok(())
    }

    fn timestamp_extent(
        &self,
        rest: &str,
        next: Option<&Tok>,
        ctx: &Context,
        out: &mut Parsed,
        line: &ByteStr,
    ) -> Result<usize, ParseError> {
        if let Some(fmt) = &self.ts_format {
            // The timestamp ends where its layout ends, whatever delimiter follows.
            if let Some((t, n)) = timestamp::parse_prefix_with_format(rest, fmt) {
                out.timestamp = Some(t);
                return Ok(n);
            }
            // Not in the layout: keep as many space-separated words as it has, but never
            // past the literal that follows, and mark the event.
            let limit = match next {
                Some(Tok::Lit(_, f)) => f.find(rest.as_bytes()).unwrap_or(rest.len()),
                _ => rest.len(),
            };
            let rest = &rest[..limit];
            let mut end = 0;
            let mut words = 0;
            let b = rest.as_bytes();
            while words < self.ts_words && end < b.len() {
                while end < b.len() && b[end] == b' ' {
                    end += 1;
                }
                while end < b.len() && b[end] != b' ' {
                    end += 1;
                }
                words += 1;
            }
            let text = &rest[..end];
            out.bad_timestamp = Some(line.slice_str(text));
            return Ok(end);
        }
        if let Some((t, n)) = timestamp::parse_prefix(rest, ctx) {
            out.timestamp = Some(t);
            return Ok(n);
        }
        // Unrecognised: keep the text up to the next literal and mark the event.
        let n = match next {
            Some(Tok::Lit(_, f)) => f.find(rest.as_bytes()).unwrap_or(rest.len()),
            Some(Tok::Spaces) => memchr::memchr(b' ', rest.as_bytes()).unwrap_or(rest.len()),
            _ => rest.len(),
        };
        if n == 0 {
            return Err(ParseError::new("missing timestamp at the start of the line".to_string()));
        }
        out.bad_timestamp = Some(line.slice_str(&rest[..n]));
        Ok(n)
    }
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Int => "an integer",
        Kind::Float => "a number",
        Kind::Ip => "an IP address",
        Kind::Hex => "hexadecimal",
        _ => "valid",
    }
}

pub(crate) fn truncate(s: &str) -> &str {
    let mut n = s.len().min(40);
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    &s[..n]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(fmt: &str, line: &str) -> Result<Parsed, String> {
        let f = FormatString::compile(fmt, None).unwrap();
        let mut p = Parsed::default();
        f.parse(&ByteStr::from(line), &Context::default(), &mut p).map_err(|e| e.to_string())?;
        Ok(p)
    }

    /// Every placeholder type, followed by every kind of delimiter, takes exactly its own
    /// text: a `{timestamp}` with a layout ends where the layout ends (it used to take
    /// space-separated words, so `…:123|Step_Counter|…` failed at the end of the line).
    #[test]
    fn every_placeholder_ends_at_every_delimiter() {
        let values: [(&str, &str, Option<&str>); 6] = [
            ("{timestamp}", "20261121-02:14:33:123", Some("%Y%m%d-%H:%M:%S:%3f")),
            ("{timestamp}", "2026-11-21 02:14:33", Some("%Y-%m-%d %H:%M:%S")),
            ("{timestamp}", "2026-11-21T02:14:33.123Z", None),
            ("{pid:int}", "30002312", None),
            ("{ip:ip}", "10.0.0.1", None),
            ("{component}", "Step_Counter", None),
        ];
        for delim in ["|", ",", ";", " ", " - ", "] [", "\t", "::"] {
            for (ph, value, layout) in values {
                let fmt = format!("{ph}{delim}{{rest}}{delim}{{message}}");
                let line = format!("{value}{delim}tail{delim}the message");
                let f = FormatString::compile(&fmt, layout).unwrap();
                let mut p = Parsed::default();
                let r = f.parse(&ByteStr::from(line.as_str()), &Context::default(), &mut p);
                assert!(r.is_ok(), "{fmt:?} on {line:?}: {:?}", r.err().map(|e| e.to_string()));
                assert_eq!(p.fields.get("rest").and_then(|v| v.as_str()), Some("tail"), "{fmt:?} on {line:?}");
                assert_eq!(p.message.as_ref().map(|m| m.as_str()), Some("the message"), "{fmt:?} on {line:?}");
                if ph == "{timestamp}" {
                    assert!(p.timestamp.is_some() && p.bad_timestamp.is_none(), "{fmt:?} on {line:?}");
                }
            }
        }
    }

    #[test]
    fn log4j_header() {
        let p = run(
            "{timestamp} [{thread}] [traceId={trace_id}] {level} {logger} - {message}",
            "2026-11-21 01:01:13.405 [http-nio-8080-exec-8] [traceId=6b4b] INFO  c.s.orders.OrderService - Order ORD-1 created",
        )
        .unwrap();
        assert_eq!(p.timestamp.unwrap().to_rfc3339(), "2026-11-21T01:01:13.405Z");
        assert_eq!(p.fields.get("thread").unwrap().as_str(), Some("http-nio-8080-exec-8"));
        assert_eq!(p.fields.get("trace_id").unwrap().as_str(), Some("6b4b"));
        assert_eq!(p.fields.get("logger").unwrap().as_str(), Some("c.s.orders.OrderService"));
        assert_eq!(p.level, Some(Level::Info));
        assert_eq!(p.message.unwrap().as_str(), "Order ORD-1 created");
        // Empty MDC value: absent.
        let p = run("{timestamp} [traceId={trace_id}] {message}", "2026-11-21 01:01:13.405 [traceId=] x").unwrap();
        assert!(p.fields.get("trace_id").is_none());
    }

    #[test]
    fn typed_and_errors() {
        let p =
            run("{ip:ip} {status:int} {t:float} {id:hex} {message}", "10.0.0.1 504 0.25 dead42 rest of it").unwrap();
        assert_eq!(p.fields.get("status"), Some(&Value::Int(504)));
        assert_eq!(p.fields.get("t"), Some(&Value::Float(0.25)));
        let e = run("{ip:ip} {status:int} {message}", "10.0.0.1 abc x").unwrap_err();
        assert!(e.contains("`status` is not an integer at column 10"), "{e}");
        let e = run("{a} [{b}] {message}", "x y").unwrap_err();
        assert!(e.contains("expected `[`"), "{e}");
        // Unparseable timestamp: kept, not fatal.
        let p = run("{timestamp} {level} {message}", "yesterday INFO hi").unwrap();
        assert!(p.timestamp.is_none());
        assert_eq!(p.bad_timestamp.unwrap().as_str(), "yesterday");
        assert!(FormatString::compile("{message} x", None).is_err());
    }

    #[test]
    fn strftime_timestamp() {
        let f = FormatString::compile("{timestamp} {level} {message}", Some("%d.%m.%Y %H:%M:%S")).unwrap();
        let mut p = Parsed::default();
        f.parse(&ByteStr::from("21.11.2026 02:14:33 WARN hi"), &Context::default(), &mut p).unwrap();
        assert_eq!(p.timestamp.unwrap().to_rfc3339(), "2026-11-21T02:14:33Z");
        assert_eq!(p.level, Some(Level::Warn));
    }
}
