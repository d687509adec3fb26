//! Line framing shared by the sources: bytes in, lines out.
//!
//! * [`lines`]: split a byte stream on `\n` (CRLF and NUL tolerant), mark lines longer
//!   than `max_line_bytes` as split parts instead of dropping them.
//! * [`multiline`]: join continuation lines (stack traces, indented follow-ups) into one
//!   event with start/continue rules and a flush timeout.

pub mod lines;
pub mod multiline;
