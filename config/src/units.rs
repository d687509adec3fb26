//! Typed configuration values, one serde type each, used by every component:
//!
//! * [`Duration`]: `"500ms"`, `"10s"`, `"1.5s"`, `"5m"`, `"2h"`, `"1d"` (a string: a bare
//!   number would leave the unit to guesswork).
//! * [`ByteSize`]: `"512KiB"`, `"64MiB"`, `"1GiB"`, or a whole number of bytes.
//! * Levels: [`Level`] (`"warn"`, any case), re-exported from `sluice_event`, and
//!   [`LevelOrNone`] for thresholds that can be switched off.
//!
//! A value that does not parse is reported by [`crate::Config::decode`] at its own key,
//! however deeply nested (`transforms.s.tail.window`), with line and column.

use serde::de::{Deserializer, Error as _};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;

pub use sluice_event::Level;

/// A duration in configuration. Dereferences to [`std::time::Duration`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    pub const fn from_millis(ms: u64) -> Duration {
        Duration(std::time::Duration::from_millis(ms))
    }
    pub const fn from_secs(s: u64) -> Duration {
        Duration(std::time::Duration::from_secs(s))
    }
}

impl std::ops::Deref for Duration {
    type Target = std::time::Duration;
    fn deref(&self) -> &std::time::Duration {
        &self.0
    }
}

impl fmt::Display for Duration {
    /// The shortest exact form: `500ms`, `5s`, `1.5s`, `5m`, `2h`, `1d`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        let nanos_exact = self.0.as_nanos() == ms * 1_000_000;
        for (unit, size) in [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)] {
            if nanos_exact && ms >= size && ms.is_multiple_of(size) {
                return write!(f, "{}{unit}", ms / size);
            }
        }
        if nanos_exact {
            write!(f, "{ms}ms")
        } else {
            write!(f, "{}s", self.0.as_secs_f64())
        }
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as \"500ms\", \"10s\" or \"5m\"")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Duration, E> {
                parse_duration(s).map(Duration).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A size in bytes in configuration: `"64MiB"` or a whole number of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub fn bytes(self) -> u64 {
        self.0
    }
    /// The size as a `usize` (saturating).
    pub fn as_usize(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }
}

impl fmt::Display for ByteSize {
    /// `1GiB`, `64MiB`, `512KiB`, or the number of bytes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (unit, shift) in [("GiB", 30), ("MiB", 20), ("KiB", 10)] {
            if self.0 >= 1 << shift && self.0.is_multiple_of(1 << shift) {
                return write!(f, "{}{unit}", self.0 >> shift);
            }
        }
        write!(f, "{}", self.0)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as \"64MiB\" or a whole number of bytes")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<ByteSize, E> {
                parse_size(s).map(ByteSize).map_err(E::custom)
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(n))
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<ByteSize, E> {
                u64::try_from(n).map(ByteSize).map_err(|_| E::custom(format!("a size cannot be negative ({n})")))
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for ByteSize {
    /// `"64MiB"` for whole units, else the number of bytes.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 >= 1024 && self.0.is_multiple_of(1024) {
            s.collect_str(self)
        } else {
            s.serialize_u64(self.0)
        }
    }
}

/// A level threshold that can be switched off: a level name, or `"none"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LevelOrNone(pub Option<Level>);

impl<'de> Deserialize<'de> for LevelOrNone {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.eq_ignore_ascii_case("none") {
            return Ok(LevelOrNone(None));
        }
        Level::from_name(&s).map(|l| LevelOrNone(Some(l))).ok_or_else(|| {
            D::Error::custom(format!(
                "unknown level `{s}`, expected one of trace, debug, info, warn, error, fatal or none"
            ))
        })
    }
}

impl Serialize for LevelOrNone {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.map_or("none", Level::as_str))
    }
}

/// A malformed duration or size.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UnitError(String);

/// Parse `500ms`, `10s`, `1.5s`, `5m`, `2h`, `1d` (a bare number is seconds).
pub fn parse_duration(s: &str) -> Result<std::time::Duration, UnitError> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 =
        num.parse().map_err(|_| UnitError(format!("invalid duration \"{s}\": expected e.g. 500ms, 10s, 30m, 2h")))?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "s" | "" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86400.0,
        u => return Err(UnitError(format!("invalid duration \"{s}\": unknown unit `{u}`, expected ms, s, m, h or d"))),
    };
    if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
        return Err(UnitError(format!("invalid duration \"{s}\"")));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

/// Parse `512KiB`, `64MiB`, `1GiB` or a number of bytes.
pub fn parse_size(s: &str) -> Result<u64, UnitError> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| UnitError(format!("invalid size \"{s}\": expected e.g. 64MiB")))?;
    let mult = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" | "KB" => 1 << 10,
        "MiB" | "M" | "MB" => 1 << 20,
        "GiB" | "G" | "GB" => 1 << 30,
        u => return Err(UnitError(format!("invalid size \"{s}\": unknown unit `{u}`, expected KiB, MiB or GiB"))),
    };
    n.checked_mul(mult).ok_or_else(|| UnitError(format!("invalid size \"{s}\": too large")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        use std::time::Duration;
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("5 weeks").is_err());
        assert_eq!(parse_size("64MiB").unwrap(), 64 << 20);
        assert!(parse_size("lots").is_err());
    }

    #[derive(Debug, Deserialize)]
    struct T {
        d: Option<super::Duration>,
        b: Option<ByteSize>,
        l: Option<LevelOrNone>,
    }

    fn de(text: &str) -> Result<T, String> {
        toml::from_str(text).map_err(|e| e.message().to_string())
    }

    #[test]
    fn typed_values() {
        assert_eq!(*de("d = \"250ms\"").unwrap().d.unwrap(), std::time::Duration::from_millis(250));
        assert!(de("d = 5").unwrap_err().contains("expected a duration such as \"500ms\""));
        assert!(de("d = \"5 weeks\"").unwrap_err().contains("unknown unit `weeks`"));
        assert_eq!(de("b = \"1MiB\"").unwrap().b.unwrap(), ByteSize(1 << 20));
        assert_eq!(de("b = 4096").unwrap().b.unwrap(), ByteSize(4096));
        assert!(de("b = -1").unwrap_err().contains("cannot be negative"));
        assert_eq!(de("l = \"None\"").unwrap().l.unwrap(), LevelOrNone(None));
        assert_eq!(de("l = \"WARN\"").unwrap().l.unwrap(), LevelOrNone(Some(Level::Warn)));
        assert!(de("l = \"loud\"").unwrap_err().contains("unknown level `loud`"));
        for (d, text) in [(500, "500ms"), (5000, "5s"), (1500, "1500ms"), (300_000, "5m"), (7_200_000, "2h")] {
            assert_eq!(super::Duration::from_millis(d).to_string(), text);
        }
        assert_eq!(ByteSize(256 << 20).to_string(), "256MiB");
        assert_eq!(ByteSize(1000).to_string(), "1000");
    }
}

/// A schema for a value written as a string of one kind (`format` names the kind in
/// the generated reference).
fn string_schema(format: &str) -> schemars::Schema {
    schemars::json_schema!({ "type": "string", "format": format })
}

macro_rules! schema_as {
    ($t:ty, $name:literal, $schema:expr) => {
        impl schemars::JsonSchema for $t {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                $name.into()
            }
            fn inline_schema() -> bool {
                true
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                $schema
            }
        }
    };
}

schema_as!(Duration, "Duration", string_schema("duration"));
schema_as!(ByteSize, "ByteSize", schemars::json_schema!({ "type": ["string", "integer"], "format": "size" }));
schema_as!(LevelOrNone, "LevelOrNone", string_schema("level or none"));
