//! Timestamps: nanoseconds since the Unix epoch, UTC, formatted as RFC 3339.

use std::time::{SystemTime, UNIX_EPOCH};

/// Nanoseconds since 1970-01-01T00:00:00Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn now() -> Timestamp {
        let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        Timestamp(d.as_nanos() as i64)
    }
    pub fn from_secs(s: i64) -> Timestamp {
        Timestamp(s.saturating_mul(1_000_000_000))
    }
    pub fn secs(self) -> i64 {
        self.0.div_euclid(1_000_000_000)
    }
    pub fn subsec_nanos(self) -> u32 {
        self.0.rem_euclid(1_000_000_000) as u32
    }
    /// Days since the epoch (UTC).
    pub fn days(self) -> i64 {
        self.secs().div_euclid(86_400)
    }
    /// RFC 3339 in UTC with the shortest of 0, 3, 6 or 9 fractional digits.
    pub fn to_rfc3339(self) -> String {
        let mut s = Vec::with_capacity(32);
        write_rfc3339(&mut s, self);
        String::from_utf8(s).expect("ascii")
    }
    /// `YYYY-MM-DD` of this instant (UTC).
    pub fn date_string(self) -> String {
        let (y, m, d) = civil_from_days(self.days());
        format!("{y:04}-{m:02}-{d:02}")
    }
}

/// Convert days since the epoch to (year, month, day). Howard Hinnant's algorithm.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Convert (year, month, day) to days since the epoch.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn push2(out: &mut Vec<u8>, v: u32) {
    out.push(b'0' + (v / 10) as u8);
    out.push(b'0' + (v % 10) as u8);
}

/// Append `ts` as RFC 3339 UTC (e.g. `2026-11-21T02:14:33.123Z`).
pub fn write_rfc3339(out: &mut Vec<u8>, ts: Timestamp) {
    write_rfc3339_secs(out, ts.secs());
    write_rfc3339_fraction(out, ts.subsec_nanos());
}

/// The whole-second part of [`write_rfc3339`]: `2026-11-21T02:14:33`.
pub fn write_rfc3339_secs(out: &mut Vec<u8>, secs: i64) {
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400) as u32;
    if (0..=9999).contains(&y) {
        let y = y as u32;
        push2(out, y / 100);
        push2(out, y % 100);
    } else {
        out.extend_from_slice(format!("{y:04}").as_bytes());
    }
    out.push(b'-');
    push2(out, mo);
    out.push(b'-');
    push2(out, d);
    out.push(b'T');
    push2(out, sod / 3600);
    out.push(b':');
    push2(out, sod / 60 % 60);
    out.push(b':');
    push2(out, sod % 60);
}

/// The rest of [`write_rfc3339`]: `.123` (3, 6 or 9 digits, none for a whole second)
/// and `Z`.
#[inline]
pub fn write_rfc3339_fraction(out: &mut Vec<u8>, ns: u32) {
    if ns != 0 {
        let (val, digits) = if ns.is_multiple_of(1_000_000) {
            (ns / 1_000_000, 3)
        } else if ns.is_multiple_of(1_000) {
            (ns / 1_000, 6)
        } else {
            (ns, 9)
        };
        let mut buf = [b'.'; 11];
        let mut v = val;
        for i in (1..=digits).rev() {
            buf[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
        buf[digits + 1] = b'Z';
        out.extend_from_slice(&buf[..digits + 2]);
    } else {
        out.push(b'Z');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats() {
        assert_eq!(Timestamp(0).to_rfc3339(), "1970-01-01T00:00:00Z");
        let t = Timestamp(1_795_314_873_123_000_000);
        assert_eq!(t.to_rfc3339(), "2026-11-22T02:34:33.123Z");
        assert_eq!(Timestamp(1_000_001).to_rfc3339(), "1970-01-01T00:00:00.001000001Z");
        assert_eq!(Timestamp(-1_000_000_000).to_rfc3339(), "1969-12-31T23:59:59Z");
        assert_eq!(t.date_string(), "2026-11-22");
    }

    #[test]
    fn civil_roundtrip() {
        for d in [-800_000i64, -1, 0, 1, 59, 60, 11_016, 20_413, 2_000_000] {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
    }
}
