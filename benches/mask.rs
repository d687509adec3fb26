//! Criterion: the mask stage (all built-in detectors, redact) over the bundled corpus
//! sample, message only, in bytes per second on one core. Issue target: >= 300 MB/s.

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sluice_event::{Event, Origin, OriginInfo, Timestamp};
use sluice_transforms::mask::MaskConfig;
use std::path::Path;

fn corpus() -> Vec<Event> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/quickstart/logs");
    let info = OriginInfo::new("bench", None);
    let mut v = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.path()).collect();
    names.sort();
    for p in names {
        for l in std::fs::read_to_string(&p).unwrap().lines() {
            v.push(Event::from_line(
                Bytes::copy_from_slice(l.as_bytes()),
                Timestamp(0),
                Origin { info: info.clone(), offset: 0 },
            ));
        }
    }
    v
}

fn bench(c: &mut Criterion) {
    let events = corpus();
    let bytes: usize = events.iter().map(|e| e.raw.len()).sum();
    let mut g = c.benchmark_group("mask");
    g.throughput(Throughput::Bytes(bytes as u64));
    for (name, cfg) in [
        ("all_detectors_redact", ""),
        ("email", "detectors = [\"email\"]"),
        ("numeric", "detectors = [\"ipv4\", \"credit_card\", \"phone\", \"us_ssn\"]"),
        ("iban", "detectors = [\"iban\"]"),
        ("secret", "detectors = [\"secret\"]"),
        ("bearer", "detectors = [\"bearer\"]"),
        ("ipv6", "detectors = [\"ipv6\"]"),
        ("jwt_aws", "detectors = [\"jwt\", \"aws_key\"]"),
    ] {
        let mut m = toml::from_str::<MaskConfig>(cfg).unwrap().compile().unwrap();
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut n = 0;
                for e in &events {
                    if let Some(s) = m.mask_str(e.message()) {
                        n += s.len();
                    }
                }
                n
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
