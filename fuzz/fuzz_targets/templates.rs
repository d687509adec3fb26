//! Template compilation and one-pass matching: any patterns, any messages. The
//! template found is the one a check of every template, most specific first, finds.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sluice_event::{ByteStr, Fields};
use sluice_parsers::templates::{Scratch, TemplateSet, TemplateSpec};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    // Lines before a blank line are patterns; lines after it are messages.
    let (pats, msgs) = s.split_once("\n\n").unwrap_or((s, ""));
    let specs: Vec<TemplateSpec> = pats
        .split('\n')
        .enumerate()
        .map(|(i, p)| TemplateSpec { event: format!("e{i}"), pattern: p.to_string() })
        .collect();
    if let Ok(set) = TemplateSet::compile(&specs) {
        let mut sc = Scratch::default();
        for m in msgs.split('\n') {
            let mut f = Fields::new();
            let got = set.matches(&ByteStr::from(m), &mut f, &mut sc).map(|t| t.pattern);
            assert_eq!(got, set.winner_by_checking_all(m).map(|t| t.pattern), "{specs:?} on {m:?}");
        }
    }
});
