//! Criterion: the sample stage. Head mode (1 in 10 by trace id, warn+ kept) and tail mode
//! with 100,000 traces open at once. Issue targets: head >= 5M events/s/core, tail >= 1M.

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use sluice_event::{Batch, Event, Origin, OriginInfo, Timestamp, Value};
use sluice_transforms::sample::SampleConfig;
use sluice_transforms::Transform;

fn events(n: usize, traces: usize) -> Vec<Event> {
    let info = OriginInfo::new("bench", None);
    let raw = Bytes::from_static(b"2026-11-21 01:01:35,654 INFO [payments.service] [6b4b066d6bd6aa4fcb12f7b693f6d7bd] Payment pay_f1bd078849e5bf0c succeeded in 528ms");
    (0..n)
        .map(|i| {
            let mut e = Event::from_line(
                raw.clone(),
                Timestamp(1_795_000_000_000_000_000 + i as i64 * 1_000_000),
                Origin { info: info.clone(), offset: i as u64 },
            );
            e.fields.insert("level", Value::from(if i % 100 == 0 { "warn" } else { "info" }));
            e.fields.insert("trace_id", Value::from(format!("{:032x}", (i * 7919) % traces).as_str()));
            e
        })
        .collect()
}

fn run(cfg: &str, name: &str, evs: Vec<Event>) -> usize {
    let mut s = toml::from_str::<SampleConfig>(cfg).unwrap().compile(name).unwrap();
    let mut kept = 0;
    let mut it = evs.into_iter();
    loop {
        let chunk: Vec<Event> = it.by_ref().take(1024).collect();
        if chunk.is_empty() {
            break;
        }
        s.process(Batch::new(chunk), &mut |_: Option<&str>, b: Batch| kept += b.events.len());
    }
    kept
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("sample");
    let head = events(200_000, 50_000);
    g.throughput(Throughput::Elements(head.len() as u64));
    g.bench_function("head_1_in_10_by_trace", |b| {
        b.iter_batched(|| head.clone(), |evs| run("rate = 10", "bench_head", evs), BatchSize::LargeInput)
    });
    // 200,000 events over 100,000 traces: 100,000 traces are held open at once.
    let tail = events(200_000, 100_000);
    g.bench_function("tail_100k_open_traces", |b| {
        b.iter_batched(
            || tail.clone(),
            |evs| run("rate = 10\ntail = { window = \"1h\", keep_if = { level_at_least = \"error\" }, max_traces = 100000, max_bytes = \"1GiB\" }", "bench_tail", evs),
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
