//! The syslog source's stream framing (octet counting or newline, per frame) on any
//! bytes, cut into reads at fuzzer-chosen places, then each frame through the syslog
//! parser. Checks: no panic, bounded memory held, and every input byte is accounted
//! for (frames + skipped separators + count headers never exceed the input).
#![no_main]
use libfuzzer_sys::fuzz_target;
use sluice_event::{ByteStr, Timestamp};
use sluice_parsers::{Context, Parsed};
use sluice_parsers::syslog_stream::Framer;

fuzz_target!(|data: &[u8]| {
    let Some((&cuts, data)) = data.split_first() else { return };
    let max = 16 + (cuts as usize % 64);
    let mut f = Framer::new(max);
    let mut frames: Vec<Vec<u8>> = Vec::new();
    let step = 1 + (cuts as usize >> 3);
    for chunk in data.chunks(step) {
        f.push(chunk, &mut |l| frames.push(l.bytes.to_vec()));
        assert!(f.pending() <= max + 1 + chunk.len() + 10, "held {} bytes", f.pending());
    }
    f.finish(&mut |l| frames.push(l.bytes.to_vec()));
    assert_eq!(f.pending(), 0);
    let total: usize = frames.iter().map(Vec::len).sum();
    assert!(total <= data.len());
    let ctx = Context { now: Timestamp::from_secs(1_795_320_000) };
    for fr in frames {
        assert!(fr.len() <= max, "a frame longer than max_message_bytes");
        let line = ByteStr::from(String::from_utf8_lossy(&fr).into_owned());
        let mut p = Parsed::default();
        let _ = sluice_parsers::syslog::parse(&line, &ctx, &mut p);
    }
});
