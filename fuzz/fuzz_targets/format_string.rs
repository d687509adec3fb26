//! The format-string compiler and its matcher: any format, any line.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sluice_event::{ByteStr, Timestamp};
use sluice_parsers::format::FormatString;
use sluice_parsers::{Context, Parsed};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    // First line: the format; second (optional): a strftime layout; rest: lines.
    let mut parts = s.splitn(3, '\n');
    let fmt = parts.next().unwrap_or("");
    let ts = parts.next().filter(|t| t.contains('%'));
    let rest = parts.next().unwrap_or("");
    let ctx = Context { now: Timestamp::from_secs(1_795_320_000) };
    if let Ok(f) = FormatString::compile(fmt, ts) {
        for line in rest.split('\n') {
            let mut p = Parsed::default();
            let _ = f.parse(&ByteStr::from(line), &ctx, &mut p);
        }
    }
});
