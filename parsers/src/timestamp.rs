//! Timestamp recognition without configuration, plus strftime for anything else.
//!
//! Recognised at the start of a string ([`parse_prefix`]):
//! * ISO 8601 / RFC 3339: `2026-11-21T02:14:33Z`, `2026-11-21 02:14:33,123`,
//!   `2026-11-21T02:14:33.123456+01:00`, `…+0100`, no zone = UTC
//! * Go: `2026/11/21 02:14:33.123456`
//! * nginx/Apache: `21/Nov/2026:02:14:33 +0000`
//! * syslog: `Nov 21 02:14:33` (also `Nov  1 …`, optional fraction; the year is inferred:
//!   the latest year that does not put the time more than a day in the future)
//! * Unix epoch: 10 (s), 13 (ms), 16 (µs) or 19 (ns) digits
//!
//! All results are UTC nanoseconds ([`Timestamp`]).

use sluice_event::time::days_from_civil;
use sluice_event::Timestamp;

const MONTHS: [&[u8; 3]; 12] =
    [b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"];

#[inline]
fn num(b: &[u8], i: usize, n: usize) -> Option<u32> {
    let s = b.get(i..i + n)?;
    let mut v = 0u32;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (c - b'0') as u32;
    }
    Some(v)
}

fn month(b: &[u8], i: usize) -> Option<u32> {
    let m = b.get(i..i + 3)?;
    MONTHS
        .iter()
        .position(|x| {
            x[0] == m[0].to_ascii_uppercase() && x[1] == m[1].to_ascii_lowercase() && x[2] == m[2].to_ascii_lowercase()
        })
        .map(|p| p as u32 + 1)
}

fn valid(y: i64, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> bool {
    (1..=12).contains(&mo) && (1..=31).contains(&d) && h < 24 && mi < 60 && s <= 60 && (1..=9999).contains(&y)
}

// The calendar fields, in order, as each recogniser reads them.
#[allow(clippy::too_many_arguments)]
fn make(y: i64, mo: u32, d: u32, h: u32, mi: u32, s: u32, nanos: u32, offset_secs: i64) -> Option<Timestamp> {
    if !valid(y, mo, d, h, mi, s) {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    let secs = days * 86_400 + (h * 3600 + mi * 60 + s.min(59)) as i64 - offset_secs;
    Some(Timestamp(secs * 1_000_000_000 + nanos as i64))
}

/// `.123` / `,123456` → (nanos, bytes consumed).
fn fraction(b: &[u8], i: usize) -> (u32, usize) {
    match b.get(i) {
        Some(b'.') | Some(b',') => {
            let mut n = 0u32;
            let mut k = 0;
            while let Some(&c) = b.get(i + 1 + k) {
                if !c.is_ascii_digit() {
                    break;
                }
                if k < 9 {
                    n = n * 10 + (c - b'0') as u32;
                }
                k += 1;
            }
            if k == 0 {
                return (0, 0);
            }
            let mut nanos = n;
            for _ in k.min(9)..9 {
                nanos *= 10;
            }
            (nanos, 1 + k)
        }
        _ => (0, 0),
    }
}

/// `Z`, `±HH:MM`, `±HHMM`, `±HH` → (offset seconds, bytes consumed).
fn zone(b: &[u8], i: usize) -> (i64, usize) {
    match b.get(i) {
        Some(b'Z') | Some(b'z') => (0, 1),
        Some(&c @ (b'+' | b'-')) => {
            let sign = if c == b'-' { -1 } else { 1 };
            let Some(h) = num(b, i + 1, 2) else { return (0, 0) };
            if b.get(i + 3) == Some(&b':') {
                if let Some(m) = num(b, i + 4, 2) {
                    return (sign * (h as i64 * 3600 + m as i64 * 60), 6);
                }
            }
            if let Some(m) = num(b, i + 3, 2) {
                return (sign * (h as i64 * 3600 + m as i64 * 60), 5);
            }
            (sign * h as i64 * 3600, 3)
        }
        _ => (0, 0),
    }
}

/// Context for inferring missing parts (the year of syslog timestamps).
#[derive(Debug, Clone, Copy)]
pub struct Context {
    pub now: Timestamp,
}

impl Default for Context {
    fn default() -> Self {
        Context { now: Timestamp::now() }
    }
}

/// Recognise a timestamp at the start of `s`; returns it and the bytes it spans.
pub fn parse_prefix(s: &str, ctx: &Context) -> Option<(Timestamp, usize)> {
    let b = s.as_bytes();
    let first = *b.first()?;
    if first.is_ascii_digit() {
        // YYYY-MM-DD… or YYYY/MM/DD…
        if b.len() >= 19
            && (b[4] == b'-' || b[4] == b'/')
            && b[7] == b[4]
            && (b[10] == b'T' || b[10] == b' ' || b[10] == b't')
        {
            let y = num(b, 0, 4)? as i64;
            let mo = num(b, 5, 2)?;
            let d = num(b, 8, 2)?;
            let h = num(b, 11, 2)?;
            if b[13] != b':' || b[16] != b':' {
                return None;
            }
            let mi = num(b, 14, 2)?;
            let sec = num(b, 17, 2)?;
            let (nanos, fl) = fraction(b, 19);
            let mut end = 19 + fl;
            let (off, zl) = if b[4] == b'-' { zone(b, end) } else { (0, 0) };
            end += zl;
            return make(y, mo, d, h, mi, sec, nanos, off).map(|t| (t, end));
        }
        // DD/Mon/YYYY:HH:MM:SS ±HHMM
        if b.len() >= 20 && b[2] == b'/' && b[6] == b'/' && b[11] == b':' {
            let d = num(b, 0, 2)?;
            let mo = month(b, 3)?;
            let y = num(b, 7, 4)? as i64;
            let h = num(b, 12, 2)?;
            let mi = num(b, 15, 2)?;
            let sec = num(b, 18, 2)?;
            let (nanos, fl) = fraction(b, 20);
            let mut end = 20 + fl;
            let mut off = 0;
            if b.get(end) == Some(&b' ') {
                let (o, zl) = zone(b, end + 1);
                if zl > 0 {
                    off = o;
                    end += 1 + zl;
                }
            }
            return make(y, mo, d, h, mi, sec, nanos, off).map(|t| (t, end));
        }
        // Unix epoch (whole token of 10/13/16/19 digits).
        let n = b.iter().take_while(|c| c.is_ascii_digit()).count();
        if matches!(n, 10 | 13 | 16 | 19) && b.get(n).is_none_or(|c| !c.is_ascii_alphanumeric()) {
            let v: i64 = s[..n].parse().ok()?;
            let nanos = match n {
                10 => v.checked_mul(1_000_000_000)?,
                13 => v.checked_mul(1_000_000)?,
                16 => v.checked_mul(1_000)?,
                _ => v,
            };
            let (frac, fl) = if n == 10 { fraction(b, 10) } else { (0, 0) };
            return Some((Timestamp(nanos + frac as i64), n + fl));
        }
        return None;
    }
    // Mon DD HH:MM:SS
    if b.len() >= 15 && first.is_ascii_alphabetic() && b[3] == b' ' {
        let mo = month(b, 0)?;
        let d = if b[4] == b' ' { num(b, 5, 1)? } else { num(b, 4, 2)? };
        if b[6] != b' ' || b[9] != b':' || b[12] != b':' {
            return None;
        }
        let h = num(b, 7, 2)?;
        let mi = num(b, 10, 2)?;
        let sec = num(b, 13, 2)?;
        let (nanos, fl) = fraction(b, 15);
        let (now_y, _, _) = sluice_event::time::civil_from_days(ctx.now.days());
        for y in [now_y + 1, now_y, now_y - 1] {
            if let Some(t) = make(y, mo, d, h, mi, sec, nanos, 0) {
                if t.0 <= ctx.now.0 + 86_400 * 1_000_000_000 {
                    return Some((t, 15 + fl));
                }
            }
        }
        return None;
    }
    None
}

/// The whole of `s` must be a recognised timestamp (surrounding spaces allowed).
pub fn parse_exact(s: &str, ctx: &Context) -> Option<Timestamp> {
    let t = s.trim();
    match parse_prefix(t, ctx) {
        Some((ts, n)) if n == t.len() => Some(ts),
        _ => None,
    }
}

/// Parse the start of `s` with a strftime layout (chrono syntax): the time and how many
/// bytes it took, so that whatever follows (a `|`, a `,`, a space) is left to the rest of
/// the format. Without `%z`/`%Z` the time is UTC.
pub fn parse_prefix_with_format(s: &str, fmt: &str) -> Option<(Timestamp, usize)> {
    let lead = s.len() - s.trim_start_matches(' ').len();
    let body = &s[lead..];
    let (t, rest) = if fmt.contains("%z") || fmt.contains("%:z") {
        let (dt, rest) = chrono::DateTime::parse_and_remainder(body, fmt).ok()?;
        (dt.timestamp_nanos_opt()?, rest)
    } else {
        let (ndt, rest) = chrono::NaiveDateTime::parse_and_remainder(body, fmt).ok()?;
        (ndt.and_utc().timestamp_nanos_opt()?, rest)
    };
    Some((Timestamp(t), s.len() - rest.len()))
}

/// Parse with a strftime layout (chrono syntax). Without `%z`/`%Z` the time is UTC.
pub fn parse_with_format(s: &str, fmt: &str) -> Option<Timestamp> {
    let s = s.trim();
    if fmt.contains("%z") || fmt.contains("%:z") {
        let dt = chrono::DateTime::parse_from_str(s, fmt).ok()?;
        return dt.timestamp_nanos_opt().map(Timestamp);
    }
    let ndt = chrono::NaiveDateTime::parse_from_str(s, fmt).ok()?;
    ndt.and_utc().timestamp_nanos_opt().map(Timestamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context {
        // 2026-11-22T04:00:00Z
        Context { now: Timestamp::from_secs(1_795_320_000) }
    }

    fn iso(s: &str) -> String {
        let (t, n) = parse_prefix(s, &ctx()).unwrap_or_else(|| panic!("no timestamp in {s:?}"));
        format!("{} {n}", t.to_rfc3339())
    }

    #[test]
    fn layouts() {
        assert_eq!(iso("2026-11-21T02:14:33Z rest"), "2026-11-21T02:14:33Z 20");
        assert_eq!(iso("2026-11-21 02:14:33,123 INFO"), "2026-11-21T02:14:33.123Z 23");
        assert_eq!(iso("2026-11-21 02:14:33.123 [x]"), "2026-11-21T02:14:33.123Z 23");
        assert_eq!(iso("2026-11-21T03:14:33.123456+01:00"), "2026-11-21T02:14:33.123456Z 32");
        assert_eq!(iso("2026-11-21T03:14:33-0130 x"), "2026-11-21T04:44:33Z 24");
        assert_eq!(iso("2026/11/21 02:14:33.123456 gateway"), "2026-11-21T02:14:33.123456Z 26");
        assert_eq!(iso("21/Nov/2026:02:14:33 +0000] \"GET"), "2026-11-21T02:14:33Z 26");
        assert_eq!(iso("21/Nov/2026:03:14:33 +0100"), "2026-11-21T02:14:33Z 26");
        assert_eq!(iso("Nov 21 02:14:33 host"), "2026-11-21T02:14:33Z 15");
        assert_eq!(iso("Nov  1 02:14:33 host"), "2026-11-01T02:14:33Z 15");
        // December seen in November: last year.
        assert_eq!(iso("Dec 31 23:59:59 host"), "2025-12-31T23:59:59Z 15");
        assert_eq!(iso("1795314873 x"), "2026-11-22T02:34:33Z 10");
        assert_eq!(iso("1795314873123"), "2026-11-22T02:34:33.123Z 13");
        assert!(parse_prefix("2026-13-21 02:14:33", &ctx()).is_none());
        assert!(parse_prefix("hello", &ctx()).is_none());
        assert!(parse_prefix("12345", &ctx()).is_none());
        assert!(parse_exact("2026-11-21T02:14:33Z", &ctx()).is_some());
        assert!(parse_exact("2026-11-21T02:14:33Z junk", &ctx()).is_none());
    }

    #[test]
    fn strftime() {
        let t = parse_with_format("21.11.2026 02:14:33", "%d.%m.%Y %H:%M:%S").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-21T02:14:33Z");
        let t = parse_with_format("2026-11-21 03:14:33 +0100", "%Y-%m-%d %H:%M:%S %z").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-21T02:14:33Z");
        assert!(parse_with_format("nope", "%Y").is_none());
    }
}
