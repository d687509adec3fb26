//! Level inference for formats without a level word. The [`Level`] type itself (its
//! order, names and normalisation) lives in `sluice_event`.

pub use sluice_event::Level;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use std::sync::OnceLock;

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
