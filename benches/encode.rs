//! Criterion: NDJSON encoding and event creation, per line of a realistic mix.

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sluice_event::ndjson::Encoder;
use sluice_event::{Event, Origin, OriginInfo, Timestamp};

const SAMPLE: &str = "2026-11-21 01:01:35,654 INFO [payments.service] [6b4b066d6bd6aa4fcb12f7b693f6d7bd] Processing payment pay_f1bd078849e5bf0c for user 12210 amount_cents=57750 currency=JPY\n\
192.251.8.41 - - [21/Nov/2026:01:02:28 +0000] \"POST /api/orders HTTP/1.1\" 201 1952 \"-\" \"curl/8.5.0\" 0.623\n\
{\"time\":\"2026-11-21T01:00:57.353Z\",\"level\":\"info\",\"msg\":\"cart updated\",\"trace_id\":\"6b4b066d6bd6aa4fcb12f7b693f6d7bd\",\"items\":1}\n\
2026/11/21 01:01:30.028562 gateway: upstream bank-gw returned 200 after 528ms path=/v1/charge request_id=5a6accbf1957cd21\n";

fn events(n: usize) -> (Vec<Event>, usize) {
    let buf = Bytes::from(SAMPLE.repeat(n / 4));
    (events_from(&buf), buf.len())
}

/// Split a buffer into events the way the file source does (memchr + slice).
fn events_from(buf: &Bytes) -> Vec<Event> {
    let info = OriginInfo::new("bench", Some("/var/log/app/payments.log"));
    let mut out = Vec::with_capacity(4096);
    let mut start = 0;
    for i in memchr::memchr_iter(b'\n', buf) {
        out.push(Event::from_line(
            buf.slice(start..i),
            Timestamp(1_795_314_873_000_000_000),
            Origin { info: info.clone(), offset: start as u64 },
        ));
        start = i + 1;
    }
    out
}

fn bench(c: &mut Criterion) {
    let (evs, bytes) = events(4096);
    let mut g = c.benchmark_group("ndjson");
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_function("encode_4096_lines", |b| {
        let mut enc = Encoder::new();
        let mut out = Vec::with_capacity(4 << 20);
        b.iter(|| {
            out.clear();
            for e in &evs {
                enc.encode_event(&mut out, e);
            }
            out.len()
        })
    });
    let buf = Bytes::from(SAMPLE.repeat(1024));
    g.bench_function("split_and_create_4096_events", |b| b.iter(|| events_from(&buf).len()));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
