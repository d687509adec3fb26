//! Pure, I/O-free log parsers for sluice.
//!
//! * [`Format`]: a header format, either a preset (`json`, `logfmt`, `syslog`,
//!   `nginx_combined`, `apache_common`, `apache_combined`, `go_std`, `klog`) or a
//!   [`format::FormatString`] such as `"{timestamp} {level} [{logger}] {message}"`.
//! * [`templates::TemplateSet`]: printf templates → named events, matched in one pass.
//! * [`timestamp`] and [`Level`]: recognition and normalisation.
//!
//! Parsers read a line as a [`ByteStr`] and return fields that are zero-copy slices of
//! it where possible. Nothing here blocks, allocates per byte, or panics on any input
//! (the `fuzz/` targets check that).

pub mod access;
pub mod format;
pub mod goklog;
pub mod json;
pub mod level;
pub mod logfmt;
pub mod mining;
pub mod placeholder;
pub mod syslog;
pub mod syslog_stream;
pub mod templates;
pub mod timestamp;

pub use level::Level;
pub use timestamp::Context;

use sluice_event::{ByteStr, Event, Fields, Timestamp, Value};
use std::borrow::Cow;
use std::fmt;

/// What a parser extracted from one line.
#[derive(Debug, Default)]
pub struct Parsed {
    pub timestamp: Option<Timestamp>,
    /// A timestamp that was present but not understood (kept; the event is marked).
    pub bad_timestamp: Option<ByteStr>,
    pub level: Option<Level>,
    /// The message text, when the format separates it from the header.
    pub message: Option<ByteStr>,
    pub fields: Fields,
}

impl Parsed {
    pub fn clear(&mut self) {
        *self = Parsed::default();
    }

    /// Move what was parsed into the event: timestamp (or the unrecognised text, marked
    /// with `timestamp_error`), `level`, the message, and the fields (which win over
    /// fields of the same name already on the event). The parse stage and the sources
    /// that parse (syslog) share this.
    pub fn apply_to(self, e: &mut Event) {
        if let Some(t) = self.timestamp {
            e.timestamp = t;
        }
        if let Some(m) = self.message {
            e.message = Some(m);
        }
        // `timestamp_raw`, `timestamp_error` and `level` first, then the parsed fields.
        let mut front = Vec::new();
        if let Some(bad) = self.bad_timestamp {
            front.push(("timestamp_raw", Value::Str(bad)));
            front.push(("timestamp_error", Value::Str(ByteStr::from_static("unrecognised timestamp"))));
        }
        let level = self.level.map(|l| ("level", Value::Str(ByteStr::from_static(l.as_str()))));
        if e.fields.is_empty() && front.is_empty() && !self.fields.iter().any(|(k, _)| k == "level") {
            // The usual case: the parsed fields become the event's (no copy), the level
            // goes in front.
            e.fields = self.fields;
            if let Some((k, v)) = level {
                e.fields.insert_first(k, v);
            }
            return;
        }
        for (k, v) in front.into_iter().chain(level) {
            e.fields.insert_static(k, v);
        }
        e.fields.absorb(self.fields);
    }
}

/// A format string, template or placeholder that does not compile; the message says
/// what to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError(pub String);

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PatternError {}

impl From<String> for PatternError {
    fn from(s: String) -> PatternError {
        PatternError(s)
    }
}

impl From<&str> for PatternError {
    fn from(s: &str) -> PatternError {
        PatternError(s.to_string())
    }
}

/// Why a line did not fit its format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub Cow<'static, str>);

impl ParseError {
    pub fn new(s: impl Into<Cow<'static, str>>) -> ParseError {
        ParseError(s.into())
    }
    pub(crate) fn at(what: &str, lit: &str, pos: usize) -> ParseError {
        ParseError(Cow::Owned(format!("{what} `{lit}` at column {}", pos + 1)))
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Preset names, for error messages.
pub const PRESETS: [&str; 8] =
    ["json", "logfmt", "syslog", "nginx_combined", "apache_common", "apache_combined", "go_std", "klog"];

/// A compiled header format.
#[derive(Debug)]
pub enum Format {
    Json(json::JsonParser),
    Logfmt,
    Syslog,
    Access(access::Flavor),
    GoStd,
    Klog,
    String(format::FormatString),
}

impl Format {
    /// A preset name, or a format string (anything containing `{`).
    pub fn compile(spec: &str, timestamp_format: Option<&str>) -> Result<Format, PatternError> {
        Ok(match spec {
            "json" => Format::Json(json::JsonParser),
            "logfmt" => Format::Logfmt,
            "syslog" => Format::Syslog,
            "nginx_combined" => Format::Access(access::Flavor::NginxCombined),
            "apache_common" => Format::Access(access::Flavor::ApacheCommon),
            "apache_combined" => Format::Access(access::Flavor::ApacheCombined),
            "go_std" => Format::GoStd,
            "klog" => Format::Klog,
            s if s.contains('{') => Format::String(format::FormatString::compile(s, timestamp_format)?),
            other => {
                return Err(format!(
                    "unknown format `{other}`: expected a preset ({}) or a format string with {{placeholders}}",
                    PRESETS.join(", ")
                )
                .into())
            }
        })
    }

    /// Parse one line into `out` (cleared by the caller).
    pub fn parse(&self, line: &ByteStr, ctx: &Context, out: &mut Parsed) -> Result<(), ParseError> {
        match self {
            Format::Json(j) => j.parse(line, ctx, out),
            Format::Logfmt => logfmt::parse(line, ctx, out),
            Format::Syslog => syslog::parse(line, ctx, out),
            Format::Access(f) => access::parse(*f, line, ctx, out),
            Format::GoStd => goklog::parse_go(line, ctx, out),
            Format::Klog => goklog::parse_klog(line, ctx, out),
            Format::String(f) => f.parse(line, ctx, out),
        }
    }
}
