//! Go's standard `log` package and Kubernetes' klog.
//!
//! Go `log`: `[prefix]2009/01/23 01:23:23[.123123] [file.go:23: ]message` with any of
//! the Ldate, Ltime, Lmicroseconds, Lshortfile/Llongfile flags; a leading prefix (without
//! Lmsgprefix) becomes `prefix`. The format has no level (see `infer_level`).
//!
//! klog: `Lmmdd hh:mm:ss.uuuuuu threadid file:line] message`, L in `IWEF`.

use crate::timestamp::Context;
use crate::{Level, ParseError, Parsed};
use sluice_event::time::{civil_from_days, days_from_civil};
use sluice_event::{ByteStr, Timestamp, Value};

fn digits(b: &[u8], i: usize, n: usize) -> Option<u32> {
    let s = b.get(i..i + n)?;
    s.iter().try_fold(0u32, |v, &c| c.is_ascii_digit().then(|| v * 10 + (c - b'0') as u32))
}

/// `hh:mm:ss[.frac]` at `i` → (seconds of day, nanos, bytes).
fn clock(b: &[u8], i: usize) -> Option<(u32, u32, usize)> {
    let h = digits(b, i, 2)?;
    let m = digits(b, i + 3, 2)?;
    let s = digits(b, i + 6, 2)?;
    if b[i + 2] != b':' || b[i + 5] != b':' || h > 23 || m > 59 || s > 60 {
        return None;
    }
    let mut n = 8;
    let mut nanos = 0u32;
    if b.get(i + 8) == Some(&b'.') {
        let mut k = 0;
        while let Some(&c) = b.get(i + 9 + k) {
            if !c.is_ascii_digit() || k == 9 {
                break;
            }
            nanos = nanos * 10 + (c - b'0') as u32;
            k += 1;
        }
        for _ in k..9 {
            nanos *= 10;
        }
        n += 1 + k;
    }
    Some((h * 3600 + m * 60 + s.min(59), nanos, n))
}

fn ts(days: i64, sod: u32, nanos: u32) -> Timestamp {
    Timestamp((days * 86_400 + sod as i64) * 1_000_000_000 + nanos as i64)
}

/// `file.go:123: ` at the start of `s` → (caller, rest).
fn caller(s: &str) -> Option<(&str, &str)> {
    let colon_space = s.find(": ")?;
    let cand = &s[..colon_space];
    let (file, line) = cand.rsplit_once(':')?;
    (file.ends_with(".go") && !line.is_empty() && line.bytes().all(|c| c.is_ascii_digit()))
        .then(|| (cand, &s[colon_space + 2..]))
}

pub fn parse_go(line: &ByteStr, ctx: &Context, out: &mut Parsed) -> Result<(), ParseError> {
    let s = line.as_str();
    let b = s.as_bytes();
    // Optional prefix before the date/time.
    let start = if b.first().is_some_and(u8::is_ascii_digit) {
        0
    } else {
        match b.iter().position(u8::is_ascii_digit) {
            Some(k) if k > 0 && (b[k - 1] == b' ' || b[k - 1] == b':') => k,
            _ => return Err(ParseError::new("go log: expected a date or time")),
        }
    };
    let mut i = start;
    let mut days = ctx.now.days();
    if b.len() >= i + 10 && b[i + 4] == b'/' && b[i + 7] == b'/' {
        let y = digits(b, i, 4).ok_or_else(|| ParseError::new("go log: bad date"))?;
        let m =
            digits(b, i + 5, 2).filter(|m| (1..=12).contains(m)).ok_or_else(|| ParseError::new("go log: bad date"))?;
        let d =
            digits(b, i + 8, 2).filter(|d| (1..=31).contains(d)).ok_or_else(|| ParseError::new("go log: bad date"))?;
        days = days_from_civil(y as i64, m, d);
        i += 10;
        if b.get(i) == Some(&b' ') {
            i += 1;
        }
    }
    let mut sod = 0;
    let mut nanos = 0;
    if b.len() >= i + 8 && b[i + 2] == b':' {
        let (s2, n2, len) = clock(b, i).ok_or_else(|| ParseError::new("go log: bad time"))?;
        sod = s2;
        nanos = n2;
        i += len;
    }
    if i == start {
        return Err(ParseError::new("go log: expected a date or time"));
    }
    if b.get(i) == Some(&b' ') {
        i += 1;
    } else if i < b.len() {
        return Err(ParseError::new("go log: expected a space after the time"));
    }
    out.timestamp = Some(ts(days, sod, nanos));
    if start > 0 {
        let p = s[..start].trim_end_matches([' ', ':']);
        if !p.is_empty() {
            out.fields.insert("prefix", Value::Str(line.slice_str(p)));
        }
    }
    let mut msg = &s[i..];
    if let Some((c, rest)) = caller(msg) {
        out.fields.insert("caller", Value::Str(line.slice_str(c)));
        msg = rest;
    }
    out.message = Some(line.slice_str(msg));
    Ok(())
}

pub fn parse_klog(line: &ByteStr, ctx: &Context, out: &mut Parsed) -> Result<(), ParseError> {
    let s = line.as_str();
    let b = s.as_bytes();
    let err = || ParseError::new("klog: expected `Lmmdd hh:mm:ss.uuuuuu threadid file:line] msg`");
    let level = match b.first() {
        Some(b'I') => Level::Info,
        Some(b'W') => Level::Warn,
        Some(b'E') => Level::Error,
        Some(b'F') => Level::Fatal,
        _ => return Err(err()),
    };
    let mo = digits(b, 1, 2).filter(|m| (1..=12).contains(m)).ok_or_else(err)?;
    let d = digits(b, 3, 2).filter(|d| (1..=31).contains(d)).ok_or_else(err)?;
    if b.get(5) != Some(&b' ') || b.len() < 14 {
        return Err(err());
    }
    let (sod, nanos, n) = clock(b, 6).ok_or_else(err)?;
    let mut i = 6 + n;
    while b.get(i) == Some(&b' ') {
        i += 1;
    }
    let tid_start = i;
    while b.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    let tid = &s[tid_start..i];
    if tid.is_empty() || b.get(i) != Some(&b' ') {
        return Err(err());
    }
    i += 1;
    let close = s[i..].find("] ").map(|k| i + k).or_else(|| s.ends_with(']').then(|| s.len() - 1)).ok_or_else(err)?;
    let caller = &s[i..close];
    let (now_y, _, _) = civil_from_days(ctx.now.days());
    let mut t = ts(days_from_civil(now_y, mo, d), sod, nanos);
    if t.0 > ctx.now.0 + 86_400 * 1_000_000_000 {
        t = ts(days_from_civil(now_y - 1, mo, d), sod, nanos);
    }
    out.timestamp = Some(t);
    out.level = Some(level);
    if let Ok(n) = tid.parse::<i64>() {
        out.fields.insert("thread_id", Value::Int(n));
    }
    out.fields.insert("caller", Value::Str(line.slice_str(caller)));
    let msg = s.get(close + 2..).unwrap_or("");
    out.message = Some(line.slice_str(msg));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context {
        Context { now: Timestamp::from_secs(1_795_320_000) }
    }

    #[test]
    fn go_flags() {
        let mut p = Parsed::default();
        parse_go(&ByteStr::from("2026/11/21 01:00:27.500551 gateway: circuit breaker open"), &ctx(), &mut p).unwrap();
        assert_eq!(p.timestamp.unwrap().to_rfc3339(), "2026-11-21T01:00:27.500551Z");
        assert_eq!(p.message.unwrap().as_str(), "gateway: circuit breaker open");
        let mut p = Parsed::default();
        parse_go(&ByteStr::from("api: 2026/11/21 01:00:27 main.go:42: started"), &ctx(), &mut p).unwrap();
        assert_eq!(p.fields.get("prefix").unwrap().as_str(), Some("api"));
        assert_eq!(p.fields.get("caller").unwrap().as_str(), Some("main.go:42"));
        assert_eq!(p.message.unwrap().as_str(), "started");
        let mut p = Parsed::default();
        parse_go(&ByteStr::from("01:00:27 only time"), &ctx(), &mut p).unwrap();
        assert_eq!(p.timestamp.unwrap().to_rfc3339(), "2026-11-22T01:00:27Z");
        let mut p = Parsed::default();
        assert!(parse_go(&ByteStr::from("no time here"), &ctx(), &mut p).is_err());
        assert!(parse_go(&ByteStr::from("2026/13/01 x"), &ctx(), &mut p).is_err());
    }

    #[test]
    fn klog_lines() {
        let mut p = Parsed::default();
        parse_klog(
            &ByteStr::from("E1121 02:14:33.123456   12345 controller.go:123] sync failed: timeout"),
            &ctx(),
            &mut p,
        )
        .unwrap();
        assert_eq!(p.level, Some(Level::Error));
        assert_eq!(p.timestamp.unwrap().to_rfc3339(), "2026-11-21T02:14:33.123456Z");
        assert_eq!(p.fields.get("thread_id"), Some(&Value::Int(12345)));
        assert_eq!(p.fields.get("caller").unwrap().as_str(), Some("controller.go:123"));
        assert_eq!(p.message.unwrap().as_str(), "sync failed: timeout");
        let mut p = Parsed::default();
        assert!(parse_klog(&ByteStr::from("X1121 02:14:33.1 1 a.go:1] m"), &ctx(), &mut p).is_err());
        assert!(parse_klog(&ByteStr::from("I1"), &ctx(), &mut p).is_err());
    }
}
