//! Criterion: cost of log-derived metrics. The same parse (header + templates) over the
//! payments sample, without and with a `metrics` stage of five metrics (three counters,
//! a histogram, a gauge), with the Prometheus recorder installed. Issue target: the
//! pipeline with five metrics is at most 10% slower.

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use sluice_event::{Event, Origin, OriginInfo, Timestamp};
use sluice_parsers::Context;
use sluice_transforms::metrics::MetricsConfig;
use sluice_transforms::parse::ParseConfig;
use std::path::Path;

const PARSE: &str = r#"
format = "{timestamp} {level} [{logger}] [{trace_id}] {message}"
templates = [
  { event = "health_check_ok", pattern = "health check ok" },
  { event = "payment_started", pattern = "Processing payment {payment_id} for user {user_id} amount_cents={amount_cents:int} currency={currency}" },
  { event = "card_authorized", pattern = "Card {card} authorized by {gateway}" },
  { event = "payment_failed", pattern = "Payment failed for user {user_id}: {error}" },
  { event = "payment_retry", pattern = "Retrying charge for payment {payment_id} (attempt {attempt:int} of {max_attempts:int}) reason={reason}" },
  { event = "payment_succeeded", pattern = "Payment {payment_id} succeeded in {duration_ms:int}ms" },
  { event = "receipt_sent", pattern = "Sending receipt to {email}" },
  { event = "deprecated_api_key", pattern = "Deprecated static API key {api_key} used by merchant {merchant_id}" },
  { event = "kyc_passed", pattern = "KYC check passed for user {user_id} ssn={ssn} phone={phone}" },
]
"#;

const METRICS: &str = r#"
[[counter]]
name = "log_events_total"
labels = ["logger", "level"]
[[counter]]
name = "payment_failures_total"
when = { event = "payment_failed" }
labels = ["error"]
[[counter]]
name = "payments_started_total"
when = { event = "payment_started" }
labels = ["currency"]
[[histogram]]
name = "payment_duration_seconds"
field = "duration_ms"
scale = 0.001
when = { event = "payment_succeeded" }
[[gauge]]
name = "last_payment_amount_cents"
field = "amount_cents"
when = { event = "payment_started" }
"#;

fn bench(c: &mut Criterion) {
    let _ = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder();
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/quickstart/logs/payments.log");
    let info = OriginInfo::new("bench", None);
    let events: Vec<Event> = std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(|l| {
            Event::from_line(
                Bytes::copy_from_slice(l.as_bytes()),
                Timestamp(0),
                Origin { info: info.clone(), offset: 0 },
            )
        })
        .collect();
    let ctx = Context::default();
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(events.len() as u64));
    let mut parse = toml::from_str::<ParseConfig>(PARSE).unwrap().compile().unwrap();
    g.bench_function("parse", |b| {
        b.iter_batched(
            || events.clone(),
            |mut evs| {
                for e in &mut evs {
                    let _ = parse.apply(e, &ctx);
                }
                evs
            },
            BatchSize::LargeInput,
        )
    });
    let mut m = toml::from_str::<MetricsConfig>(METRICS).unwrap().compile().unwrap();
    g.bench_function("parse_plus_5_metrics", |b| {
        b.iter_batched(
            || events.clone(),
            |mut evs| {
                for e in &mut evs {
                    let _ = parse.apply(e, &ctx);
                    m.observe(e);
                }
                m.flush();
                evs
            },
            BatchSize::LargeInput,
        )
    });
    // The metrics stage alone, on events parsed beforehand (what its own thread does).
    let mut parsed = events.clone();
    for e in &mut parsed {
        let _ = parse.apply(e, &ctx);
    }
    g.bench_function("5_metrics_only", |b| {
        b.iter(|| {
            for e in &parsed {
                m.observe(e);
            }
            m.flush();
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
