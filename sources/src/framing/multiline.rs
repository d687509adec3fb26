//! Multiline records: fold continuation lines (stack traces, indented text) into the
//! record they belong to.
//!
//! * `mode = "java"`: a line continues the previous record if it is indented, starts with
//!   `Caused by:` / `Suppressed:` / `... N more`, or looks like an exception header
//!   (`java.net.SocketTimeoutException: Read timed out`).
//! * `start_pattern = "^\\d{4}-"`: a line matching the pattern starts a new record;
//!   anything else continues the current one.
//!
//! A record is flushed when the next record starts, when it has waited `timeout`
//! for more lines, when it would exceed `max_line_bytes`, or at the end of the input.
//! A multi-line record's raw bytes are its lines joined by `\n`; single lines are passed
//! through without copying.

use crate::framing::lines::Line;
use bytes::{Bytes, BytesMut};
use regex::Regex;
use serde::Deserialize;
use sluice_config::OptionError;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MultilineConfig {
    /// `"java"` for Java/JVM stack traces.
    pub mode: Option<String>,
    /// Regex matching the first line of a record.
    pub start_pattern: Option<String>,
    /// Flush a record after this long without a new line.
    #[serde(default = "default_timeout")]
    pub timeout: sluice_config::units::Duration,
}

fn default_timeout() -> sluice_config::units::Duration {
    sluice_config::units::Duration::from_secs(1)
}

#[derive(Debug, Clone)]
pub enum Rule {
    Java(Regex),
    Start(Regex),
}

impl MultilineConfig {
    /// Check the options; an error names the nested option (`multiline.start_pattern`).
    pub fn compile(&self) -> Result<(Rule, Duration), OptionError> {
        let rule = match (self.mode.as_deref(), &self.start_pattern) {
            (Some("java"), None) => Rule::Java(
                Regex::new(r"^(?:[a-zA-Z_$][\w$]*\.)+[a-zA-Z_$][\w$]*(?:Exception|Error|Throwable)(?::|$)")
                    .expect("static regex"),
            ),
            (None, Some(p)) => Rule::Start(
                Regex::new(p)
                    .map_err(|e| OptionError::new("multiline.start_pattern", format!("invalid regex: {e}")))?,
            ),
            (Some(m), None) => {
                return Err(OptionError::new(
                    "multiline.mode",
                    format!("unknown multiline mode `{m}`, expected `java` (or give `start_pattern`)"),
                ))
            }
            (Some(_), Some(_)) => {
                return Err(OptionError::new("multiline", "give either `mode` or `start_pattern`, not both"))
            }
            (None, None) => return Err(OptionError::new("multiline", "give `mode = \"java\"` or a `start_pattern`")),
        };
        Ok((rule, self.timeout.0.max(Duration::from_millis(1))))
    }
}

impl Rule {
    fn continues(&self, line: &[u8]) -> bool {
        match self {
            Rule::Java(exc) => {
                matches!(line.first(), Some(b' ') | Some(b'\t'))
                    || line.starts_with(b"Caused by:")
                    || line.starts_with(b"Suppressed:")
                    || line.starts_with(b"...")
                    || std::str::from_utf8(line).is_ok_and(|s| exc.is_match(s))
            }
            Rule::Start(re) => !std::str::from_utf8(line).is_ok_and(|s| re.is_match(s)),
        }
    }
}

struct Pending {
    first: Line,
    more: Vec<Bytes>,
    len: usize,
    end: u64,
    since: Instant,
}

pub struct Aggregator {
    rule: Rule,
    timeout: Duration,
    max: usize,
    pending: Option<Pending>,
}

impl Aggregator {
    pub fn new(rule: Rule, timeout: Duration, max_bytes: usize) -> Aggregator {
        Aggregator { rule, timeout, max: max_bytes, pending: None }
    }

    /// Offset of the first line of the record being assembled (the checkpoint must not
    /// pass it), if any.
    pub fn held_from(&self) -> Option<u64> {
        self.pending.as_ref().map(|p| p.first.offset)
    }

    /// Add a line; emits the previous record when this line starts a new one.
    pub fn push(&mut self, line: Line, out: &mut impl FnMut(Line)) {
        if let Some(p) = &mut self.pending {
            // Parts of a split over-long line always continue their record.
            let is_part = line.marks.split_part > 1;
            if (is_part || self.rule.continues(&line.bytes)) && p.len + 1 + line.bytes.len() <= self.max {
                p.len += 1 + line.bytes.len();
                p.end = line.end;
                // The record is clean (UTF-8, no NUL) only if every line of it is.
                p.first.clean &= line.clean;
                p.more.push(line.bytes);
                p.since = Instant::now();
                return;
            }
            self.flush(out);
        }
        let len = line.bytes.len();
        let end = line.end;
        self.pending = Some(Pending { first: line, more: Vec::new(), len, end, since: Instant::now() });
    }

    /// Emit the held record if it waited longer than the timeout.
    pub fn flush_expired(&mut self, out: &mut impl FnMut(Line)) {
        if self.pending.as_ref().is_some_and(|p| p.since.elapsed() >= self.timeout) {
            self.flush(out);
        }
    }

    /// Emit the held record now.
    pub fn flush(&mut self, out: &mut impl FnMut(Line)) {
        let Some(p) = self.pending.take() else { return };
        let mut first = p.first;
        if !p.more.is_empty() {
            let mut b = BytesMut::with_capacity(p.len);
            b.extend_from_slice(&first.bytes);
            for m in &p.more {
                b.extend_from_slice(b"\n");
                b.extend_from_slice(m);
            }
            first.bytes = b.freeze();
        }
        first.end = p.end;
        out(first);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_event::Marks;

    fn lines(text: &str) -> Vec<Line> {
        let mut off = 0u64;
        text.split('\n')
            .map(|l| {
                let line = Line {
                    bytes: Bytes::copy_from_slice(l.as_bytes()),
                    offset: off,
                    end: off + l.len() as u64 + 1,
                    marks: Marks::default(),
                    clean: false,
                };
                off += l.len() as u64 + 1;
                line
            })
            .collect()
    }

    fn fold(cfg: MultilineConfig, text: &str) -> Vec<(String, u64, u64)> {
        let (rule, t) = cfg.compile().unwrap();
        let mut a = Aggregator::new(rule, t, 1 << 20);
        let mut got = Vec::new();
        let mut f = |l: Line| got.push((String::from_utf8(l.bytes.to_vec()).unwrap(), l.offset, l.end));
        for l in lines(text) {
            a.push(l, &mut f);
        }
        a.flush(&mut f);
        got
    }

    #[test]
    fn java_stack_traces() {
        let text = "2026-11-21 01:00:00.000 [t] ERROR x - Failed to publish\njava.net.SocketTimeoutException: Read timed out\n\tat a.b(C.java:1)\n\t... 12 more\nCaused by: java.io.IOException: x\n\tat d.e(F.java:2)\n2026-11-21 01:00:01.000 [t] INFO x - next";
        let got = fold(
            MultilineConfig {
                mode: Some("java".into()),
                start_pattern: None,
                timeout: sluice_config::units::Duration::from_millis(1000),
            },
            text,
        );
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0.lines().count(), 6);
        assert!(got[0].0.ends_with("\tat d.e(F.java:2)"));
        assert_eq!(got[0].1, 0);
        assert_eq!(got[1].1, got[0].2);
        assert_eq!(got[1].0, "2026-11-21 01:00:01.000 [t] INFO x - next");
    }

    #[test]
    fn start_pattern_and_timeout() {
        let got = fold(
            MultilineConfig {
                mode: None,
                start_pattern: Some(r"^\d{4}-".into()),
                timeout: sluice_config::units::Duration::from_millis(1000),
            },
            "2026-a\ncont\n2026-b\n2026-c\nx\ny",
        );
        let texts: Vec<&str> = got.iter().map(|g| g.0.as_str()).collect();
        assert_eq!(texts, vec!["2026-a\ncont", "2026-b", "2026-c\nx\ny"]);
        let (rule, _) = MultilineConfig {
            mode: Some("java".into()),
            start_pattern: None,
            timeout: sluice_config::units::Duration::from_millis(1),
        }
        .compile()
        .unwrap();
        let mut a = Aggregator::new(rule, Duration::from_millis(1), 1 << 20);
        let mut n = 0;
        a.push(lines("only")[0].clone_for_test(), &mut |_| n += 1);
        assert_eq!(a.held_from(), Some(0));
        std::thread::sleep(Duration::from_millis(5));
        a.flush_expired(&mut |_| n += 1);
        assert_eq!(n, 1);
        assert!(MultilineConfig {
            mode: Some("python".into()),
            start_pattern: None,
            timeout: sluice_config::units::Duration::from_millis(1)
        }
        .compile()
        .is_err());
    }

    impl Line {
        fn clone_for_test(&self) -> Line {
            Line { bytes: self.bytes.clone(), offset: self.offset, end: self.end, marks: self.marks, clean: self.clean }
        }
    }
}
