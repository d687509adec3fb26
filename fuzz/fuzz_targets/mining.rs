//! Template mining: any bytes as lines (invalid UTF-8, NUL, huge tokens), a small
//! template limit so eviction runs, params for every line, and the invariants that
//! every line's final template is a live one, that a UTF-8 line (without `<*>` in it)
//! is its final template with its parameters put back, and that a template's brackets
//! balance whenever all of its lines' do.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sluice_parsers::mining::{brackets_balance as balanced, Miner, MinerConfig, VAR};
use std::collections::HashMap;

fuzz_target!(|data: &[u8]| {
    // Eviction: a small template limit; every line's final template is a live one.
    let mut m = Miner::new(MinerConfig { max_templates: 8, min_distinct: 2, ..MinerConfig::default() });
    let mut shapes = Vec::new();
    for line in data.split(|&b| b == b'\n') {
        let r = m.mine(line);
        let _ = m.params(line, r.template);
        shapes.push(r.shape);
    }
    for s in shapes {
        let t = m.template_of_shape(s);
        let _ = &m.template(t).text;
    }
    assert!(m.templates().len() <= 9);

    // The properties, without eviction (a template generalised by a line since forgotten
    // is not judged by the lines left): quick merges, every line kept.
    let mut m = Miner::new(MinerConfig { min_distinct: 2, ..MinerConfig::default() });
    let mut mined = Vec::new();
    for line in data.split(|&b| b == b'\n') {
        mined.push((line, m.mine(line).shape));
    }
    let mut lines_balance: HashMap<u32, bool> = HashMap::new();
    for (line, s) in mined {
        let t = m.template_of_shape(s);
        let text = m.template(t).text.clone();
        let Ok(line) = std::str::from_utf8(line) else {
            lines_balance.insert(t, false);
            continue;
        };
        if line.contains(VAR) {
            lines_balance.insert(t, false);
            continue; // a line holding the placeholder text itself cannot be told apart from a template
        }
        let params = m.params(line.as_bytes(), t);
        let mut rebuilt = String::new();
        let mut it = params.iter();
        for (i, part) in text.split(VAR).enumerate() {
            if i > 0 {
                rebuilt.push_str(it.next().map(String::as_str).unwrap_or("\u{0}"));
            }
            rebuilt.push_str(part);
        }
        let words: Vec<&str> = line.split(|c: char| c.is_ascii_whitespace()).filter(|w| !w.is_empty()).collect();
        assert_eq!(rebuilt, words.join(" "), "template `{text}` with params {params:?}");
        *lines_balance.entry(t).or_insert(true) &= balanced(line);
    }
    for (t, b) in lines_balance {
        let text = &m.template(t).text;
        assert!(!b || balanced(text), "`{text}` lost a bracket its lines balance");
    }
});
