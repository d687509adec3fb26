//! Log levels, normalised to `trace|debug|info|warn|error|fatal`, in that order.
//!
//! The one home of the level order: conditions (`level_at_least`), the sample stage's
//! `keep_level_at_least` and the parsers all use [`Level`]. In configuration a level is
//! one of the six names (any case); [`Level::parse`] also normalises the words logs use
//! (`WARNING`, `ERR`, `CRITICAL`, Java's `SEVERE`, …).

use serde::de::{Deserialize, Deserializer, Error as _};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    Fatal,
}

impl Level {
    // Called per line by the parsers, from another crate.
    #[inline]
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
            Level::Fatal => "fatal",
        }
    }

    /// Normalise a level word: `WARNING`, `ERR`, `CRITICAL`, `PANIC`, `E`, `notice`,
    /// Java's `SEVERE`/`FINE`, … Case-insensitive; surrounding spaces and brackets ignored.
    // Called per line by the parsers, from another crate.
    #[inline]
    pub fn parse(s: &str) -> Option<Level> {
        let s = s.trim_matches(|c: char| c.is_ascii_whitespace() || matches!(c, '[' | ']' | '<' | '>' | ':'));
        if s.is_empty() || s.len() > 13 {
            return None;
        }
        let mut buf = [0u8; 13];
        for (i, b) in s.bytes().enumerate() {
            buf[i] = b.to_ascii_lowercase();
        }
        Some(match &buf[..s.len()] {
            b"trace" | b"trc" | b"t" | b"finest" | b"finer" | b"verbose" | b"v" => Level::Trace,
            b"debug" | b"dbg" | b"d" | b"fine" | b"config" => Level::Debug,
            b"info" | b"inf" | b"i" | b"information" | b"informational" | b"notice" | b"n" => Level::Info,
            b"warn" | b"warning" | b"wrn" | b"w" => Level::Warn,
            b"error" | b"err" | b"e" | b"severe" | b"eror" => Level::Error,
            b"fatal" | b"ftl" | b"f" | b"critical" | b"crit" | b"c" | b"panic" | b"emerg" | b"emergency" | b"alert"
            | b"a" | b"dpanic" => Level::Fatal,
            _ => return None,
        })
    }

    /// Syslog severity (0–7).
    // Called per line by the parsers, from another crate.
    #[inline]
    pub fn from_syslog_severity(sev: u8) -> Level {
        match sev {
            0..=2 => Level::Fatal,
            3 => Level::Error,
            4 => Level::Warn,
            5 | 6 => Level::Info,
            _ => Level::Debug,
        }
    }
}

impl Level {
    /// Every level, least severe first.
    pub const ALL: [Level; 6] = [Level::Trace, Level::Debug, Level::Info, Level::Warn, Level::Error, Level::Fatal];

    /// One of the six canonical names (any case), as written in configuration.
    // Called per line by the parsers, from another crate.
    #[inline]
    pub fn from_name(s: &str) -> Option<Level> {
        Level::ALL.into_iter().find(|l| l.as_str().eq_ignore_ascii_case(s))
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Level {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Level::from_name(&s).ok_or_else(|| {
            D::Error::custom(format!("unknown level `{s}`, expected one of trace, debug, info, warn, error, fatal"))
        })
    }
}

impl serde::Serialize for Level {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl schemars::JsonSchema for Level {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Level".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "format": "level" })
    }
}
