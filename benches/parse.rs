//! Criterion: parse throughput per preset and for a header format + 50 / 500 printf
//! templates, on the bundled corpus sample (examples/quickstart/logs, made with the
//! shared generator). Throughput is reported in lines (elements) per second on one core.

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sluice_event::{ByteStr, Event, Origin, OriginInfo, Timestamp};
use sluice_parsers::{Context, Format, Parsed};
use sluice_transforms::parse::ParseConfig;
use std::path::Path;

fn lines(file: &str) -> Vec<ByteStr> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/quickstart/logs").join(file);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    text.lines()
        .filter(|l| !l.starts_with('\t') && !l.starts_with("java.") && !l.starts_with("org."))
        .map(ByteStr::from)
        .collect()
}

fn klog_lines() -> Vec<ByteStr> {
    (0..500)
        .map(|i| {
            ByteStr::from(
                format!(
                    "{}1121 02:14:{:02}.{:06}   {} controller.go:{}] sync of pod default/web-{} finished in {}ms",
                    ["I", "W", "E"][i % 3],
                    i % 60,
                    i * 7,
                    1000 + i,
                    100 + i % 50,
                    i,
                    i % 900
                )
                .as_str(),
            )
        })
        .collect()
}

fn bench_presets(c: &mut Criterion) {
    let ctx = Context::default();
    let mut g = c.benchmark_group("preset");
    let cases: Vec<(&str, &str, Vec<ByteStr>)> = vec![
        ("json", "json", lines("cart.log")),
        ("logfmt", "logfmt", lines("search.log")),
        ("syslog", "syslog", lines("auth.log")),
        ("nginx_combined", "nginx_combined", lines("access.log")),
        ("go_std", "go_std", lines("gateway.log")),
        ("klog", "klog", klog_lines()),
        ("format_python", "{timestamp} {level} [{logger}] [{trace_id}] {message}", lines("payments.log")),
        (
            "format_log4j",
            "{timestamp} [{thread}] [traceId={trace_id}] {level} {logger} - {message}",
            lines("orders.log"),
        ),
    ];
    for (name, spec, input) in cases {
        let f = Format::compile(spec, None).unwrap();
        let mut out = Parsed::default();
        // Every line must parse: a benchmark of the error path would flatter nobody.
        for l in &input {
            out.clear();
            f.parse(l, &ctx, &mut out).unwrap_or_else(|e| panic!("{name}: {e}: {l}"));
        }
        g.throughput(Throughput::Elements(input.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(name), &input, |b, input| {
            b.iter(|| {
                let mut n = 0;
                for l in input {
                    out.clear();
                    if f.parse(l, &ctx, &mut out).is_ok() {
                        n += out.fields.len();
                    }
                }
                n
            })
        });
    }
    g.finish();
}

const REAL: &[(&str, &str)] = &[
    ("health_check_ok", "health check ok"),
    (
        "payment_started",
        "Processing payment {payment_id} for user {user_id} amount_cents={amount_cents:int} currency={currency}",
    ),
    ("card_authorized", "Card {card} authorized by {gateway}"),
    ("payment_failed", "Payment failed for user {user_id}: {error}"),
    (
        "payment_retry",
        "Retrying charge for payment {payment_id} (attempt {attempt:int} of {max_attempts:int}) reason={reason}",
    ),
    ("payment_succeeded", "Payment {payment_id} succeeded in {duration_ms:int}ms"),
    ("receipt_sent", "Sending receipt to {email}"),
    ("deprecated_api_key", "Deprecated static API key {api_key} used by merchant {merchant_id}"),
    ("kyc_passed", "KYC check passed for user {user_id} ssn={ssn} phone={phone}"),
];

/// `n` templates: the 9 real payment templates plus decoys that share vocabulary with
/// them (so candidate filtering has real work to do).
fn templates(n: usize) -> String {
    let verbs = [
        "Processing",
        "Refunding",
        "Payment",
        "Retrying",
        "Sending",
        "Loading",
        "Cancelling",
        "Validating",
        "Scheduling",
        "Archiving",
    ];
    let nouns =
        ["payment", "refund", "invoice", "receipt", "order", "charge", "payout", "dispute", "transfer", "ledger entry"];
    let tails = [
        "for user {user_id}",
        "in {duration_ms:int}ms",
        "for merchant {merchant_id}",
        "with status {status}",
        "reason={reason}",
    ];
    let mut t = String::from("templates = [\n");
    for (e, p) in REAL {
        t.push_str(&format!("  {{ event = \"{e}\", pattern = \"{p}\" }},\n"));
    }
    let mut i = 0;
    while t.lines().count() - 1 < n {
        let v = verbs[i % verbs.len()];
        let no = nouns[(i / verbs.len()) % nouns.len()];
        let tail = tails[(i / 100) % tails.len()];
        t.push_str(&format!("  {{ event = \"decoy_{i}\", pattern = \"{v} {no} {{id}} step {i} {tail}\" }},\n"));
        i += 1;
    }
    t.push_str("]\n");
    t
}

fn bench_templates(c: &mut Criterion) {
    let input = lines("payments.log");
    let info = OriginInfo::new("bench", None);
    let events: Vec<Event> = input
        .iter()
        .map(|l| {
            Event::from_line(
                Bytes::copy_from_slice(l.as_str().as_bytes()),
                Timestamp(0),
                Origin { info: info.clone(), offset: 0 },
            )
        })
        .collect();
    let ctx = Context::default();
    let mut g = c.benchmark_group("header_plus_templates");
    g.throughput(Throughput::Elements(events.len() as u64));
    for n in [0usize, 10, 50, 500] {
        let cfg_text = format!(
            "format = \"{{timestamp}} {{level}} [{{logger}}] [{{trace_id}}] {{message}}\"\n{}",
            if n == 0 { String::new() } else { templates(n) }
        );
        let cfg: ParseConfig = toml::from_str(&cfg_text).unwrap();
        let mut p = cfg.compile().unwrap();
        // Every line gets its event (the 9 real templates cover the file).
        if n > 0 {
            for e in &events {
                let mut e = e.clone();
                p.apply(&mut e, &ctx).unwrap();
                assert!(e.fields.get("event").is_some(), "no template for {}", e.message());
            }
        }
        g.bench_function(BenchmarkId::from_parameter(format!("{n}_templates")), |b| {
            b.iter_batched(
                || events.clone(),
                |mut evs| {
                    for e in &mut evs {
                        let _ = p.apply(e, &ctx);
                    }
                    evs
                },
                criterion::BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench_presets, bench_templates);
criterion_main!(benches);
