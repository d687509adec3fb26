//! Human units in configuration values: durations (`500ms`, `10s`, `1m`, `2h`, `1d`)
//! and sizes (`512KiB`, `64MiB`, `1GiB`, `1000`).

use std::time::Duration;

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("invalid duration \"{s}\": expected e.g. 500ms, 10s, 30m, 2h"))?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "s" | "" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86400.0,
        u => return Err(format!("invalid duration \"{s}\": unknown unit `{u}`, expected ms, s, m, h or d")),
    };
    if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
        return Err(format!("invalid duration \"{s}\""));
    }
    Ok(Duration::from_secs_f64(secs))
}

pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("invalid size \"{s}\": expected e.g. 64MiB"))?;
    let mult = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" | "KB" => 1 << 10,
        "MiB" | "M" | "MB" => 1 << 20,
        "GiB" | "G" | "GB" => 1 << 30,
        u => return Err(format!("invalid size \"{s}\": unknown unit `{u}`, expected KiB, MiB or GiB")),
    };
    n.checked_mul(mult).ok_or_else(|| format!("invalid size \"{s}\": too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("5 weeks").is_err());
        assert_eq!(parse_size("64MiB").unwrap(), 64 << 20);
        assert!(parse_size("lots").is_err());
    }
}
