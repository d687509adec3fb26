//! Every preset parser (json, logfmt, syslog, access logs, go log, klog) on any line,
//! valid UTF-8 or not (invalid input is lossily decoded first, as the pipeline does).
#![no_main]
use libfuzzer_sys::fuzz_target;
use sluice_event::{ByteStr, Timestamp};
use sluice_parsers::{Context, Format, Parsed, PRESETS};

fuzz_target!(|data: &[u8]| {
    let line = ByteStr::from(String::from_utf8_lossy(data).into_owned());
    let ctx = Context { now: Timestamp::from_secs(1_795_320_000) };
    for name in PRESETS {
        let f = Format::compile(name, None).unwrap();
        let mut p = Parsed::default();
        let _ = f.parse(&line, &ctx, &mut p);
    }
});
