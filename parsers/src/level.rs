//! Log levels, normalised to `trace|debug|info|warn|error|fatal`.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use std::sync::OnceLock;

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

/// Guess a level from message words, for formats without one (Go's `log`). Returns
/// the most severe level whose word occurs (`panic`/`fatal` → fatal, `error`/`failed`/
/// `exception` → error, `warn`/`retry`/`timeout`/`timed out` → warn), else info.
pub fn infer(message: &str) -> Level {
    static AC: OnceLock<(AhoCorasick, Vec<Level>)> = OnceLock::new();
    let (ac, levels) = AC.get_or_init(|| {
        let words: &[(&str, Level)] = &[
            ("panic", Level::Fatal),
            ("fatal", Level::Fatal),
            ("error", Level::Error),
            ("failed", Level::Error),
            ("failure", Level::Error),
            ("exception", Level::Error),
            ("warn", Level::Warn),
            ("retry", Level::Warn),
            ("retrying", Level::Warn),
            ("timeout", Level::Warn),
            ("timed out", Level::Warn),
            ("deprecated", Level::Warn),
        ];
        let ac = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostLongest)
            .build(words.iter().map(|w| w.0))
            .expect("static patterns");
        (ac, words.iter().map(|w| w.1).collect())
    });
    let mut best = Level::Info;
    for m in ac.find_iter(message) {
        let l = levels[m.pattern().as_usize()];
        if l > best {
            best = l;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises() {
        for (s, l) in [
            ("WARNING", Level::Warn),
            ("warn ", Level::Warn),
            ("ERR", Level::Error),
            ("CRITICAL", Level::Fatal),
            ("PANIC", Level::Fatal),
            ("E", Level::Error),
            ("[INFO]", Level::Info),
            ("Notice", Level::Info),
            ("SEVERE", Level::Error),
            ("dbg", Level::Debug),
        ] {
            assert_eq!(Level::parse(s), Some(l), "{s}");
        }
        assert_eq!(Level::parse("hello"), None);
        assert_eq!(Level::from_syslog_severity(4), Level::Warn);
        assert_eq!(infer("upstream bank-gw returned 504 after 30000ms"), Level::Info);
        assert_eq!(infer("retrying bank-gw request"), Level::Warn);
        assert_eq!(infer("Payment FAILED: timeout"), Level::Error);
    }
}
