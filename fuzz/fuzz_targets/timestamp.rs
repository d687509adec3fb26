//! Timestamp recognition and strftime parsing.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sluice_event::Timestamp;
use sluice_parsers::timestamp::{parse_prefix, parse_with_format, Context};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let ctx = Context { now: Timestamp::from_secs(1_795_320_000) };
    if let Some((t, n)) = parse_prefix(s, &ctx) {
        assert!(n <= s.len());
        let _ = t.to_rfc3339();
    }
    if let Some((fmt, text)) = s.split_once('\n') {
        let _ = parse_with_format(text, fmt);
    }
});
