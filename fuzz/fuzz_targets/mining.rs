//! Template mining: any bytes as lines (invalid UTF-8, NUL, huge tokens), a small
//! template limit so eviction runs, params for every line, and the invariant that
//! every line's final template is a live one.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sluice_parsers::mining::{Miner, MinerConfig};

fuzz_target!(|data: &[u8]| {
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
});
