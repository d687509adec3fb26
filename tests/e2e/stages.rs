//! Transforms wired together through the real binary: parse → enrich (lookup table,
//! trace context) → mask → route to two sinks, with the masking metrics on /metrics.

use crate::harness::*;
use std::time::Duration;

#[test]
fn parse_enrich_mask_route_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::write(dir.path().join("users.csv"), "user_id,tenant\n42,acme\n").unwrap();
    std::fs::write(
        logs.join("app.log"),
        "2026-11-21 01:00:00,001 ERROR [pay] [-] Payment failed for user 42: Card 4111 1111 1111 1111 declined, mail jane@example.com\n\
         2026-11-21 01:00:00,002 INFO [pay] [-] Sending receipt to bob@example.org traceparent=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\n\
         2026-11-21 01:00:00,003 INFO [pay] [-] health check ok\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let port = free_port();
    std::env::set_var("SLUICE_E2E_MASK_KEY", "not-in-the-config");
    let cfg = format!(
        r#"data_dir = "{d}/data"
[api]
address = "127.0.0.1:{port}"
[sources.app]
type = "file"
include = ["{d}/logs/*.log"]
[transforms.parsed]
type = "parse"
inputs = ["app"]
format = "{{timestamp}} {{level}} [{{logger}}] [{{trace_id}}] {{message}}"
templates = [
  {{ event = "payment_failed", pattern = "Payment failed for user {{user_id}}: {{error}}" }},
  {{ event = "receipt_sent", pattern = "Sending receipt to {{email}} traceparent={{tp}}" }},
]
[transforms.ctx]
type = "enrich"
inputs = ["parsed"]
fields = {{ service = "payments" }}
[[transforms.ctx.lookup]]
file = "{d}/users.csv"
key = "user_id"
fields = ["tenant"]
[transforms.pii]
type = "mask"
inputs = ["ctx"]
modes = {{ email = "hash", credit_card = "partial" }}
hash_key_env = "SLUICE_E2E_MASK_KEY"
[transforms.split]
type = "route"
inputs = ["pii"]
route.errors = {{ level_at_least = "error" }}
[sinks.errors]
type = "file"
inputs = ["split.errors"]
path = "{o}/errors.ndjson"
[sinks.rest]
type = "file"
inputs = ["split._unmatched"]
path = "{o}/rest.ndjson"
"#,
        d = dir.path().display(),
        o = out.display()
    );
    let mut s = Sluice::start_with_env(dir.path(), &cfg, &[("SLUICE_E2E_MASK_KEY", "not-in-the-config".into())]);
    assert!(wait_until(Duration::from_secs(10), || read_events(&out).len() >= 3), "stderr: {}", s.stderr());
    let errors = std::fs::read_to_string(out.join("errors.ndjson")).unwrap();
    let rest = std::fs::read_to_string(out.join("rest.ndjson")).unwrap();
    assert_eq!(errors.lines().count(), 1);
    assert_eq!(rest.lines().count(), 2);
    let e: serde_json::Value = serde_json::from_str(errors.lines().next().unwrap()).unwrap();
    assert_eq!(e["event"], "payment_failed");
    assert_eq!(e["tenant"], "acme", "lookup by user_id");
    assert_eq!(e["service"], "payments");
    let msg = e["message"].as_str().unwrap();
    assert!(msg.contains("Card ************1111 declined"), "{msg}");
    assert!(!msg.contains("jane@example.com") && msg.contains("mail email:"), "{msg}");
    assert!(!errors.contains("4111 1111") && !errors.contains("jane@"), "no PII in any field: {errors}");
    let r: serde_json::Value = serde_json::from_str(rest.lines().next().unwrap()).unwrap();
    assert_eq!(r["event"], "receipt_sent");
    assert_eq!(r["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736", "trace context from the traceparent");
    assert_eq!(r["span_id"], "00f067aa0ba902b7");
    assert!(r["email"].as_str().unwrap().starts_with("email:"));
    assert!(!rest.contains("bob@example.org"));
    let (_, metrics) = http_get(port, "/metrics", None).unwrap();
    assert!(metrics.contains("sluice_masked_values_total{detector=\"email\"} 4"), "{metrics}");
    assert!(metrics.contains("sluice_masked_values_total{detector=\"credit_card\"} 2"), "{metrics}");
    assert!(metrics.contains("sluice_lookup_misses_total"), "{metrics}");
    assert_eq!(s.terminate(Duration::from_secs(20)), 0);
    assert!(!s.stderr().contains("not-in-the-config"), "the key never appears in logs");
}

/// A stateless stage on several workers after a fan-in, with every edge bounded in
/// bytes: while the sink is blocked (a named pipe nobody reads) each edge holds at most
/// its `buffer_bytes` (or one batch), `sluice_buffer_bytes` says so, and memory stays
/// small although the input is 10 times larger; once the pipe is read every line
/// arrives exactly once, masked, each file's lines in their order.
#[test]
fn workers_keep_order_and_edges_are_bounded_in_bytes() {
    let _heavy = disk_heavy();
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let n = 20_000usize;
    let pad = "x".repeat(2000);
    for f in ["a", "b"] {
        let mut text = String::new();
        for i in 0..n {
            text.push_str(&format!("{f} {i:06} mail user{i}@example.com {pad}\n"));
        }
        std::fs::write(logs.join(format!("{f}.log")), text).unwrap();
    }
    let fifo = dir.path().join("out.ndjson");
    mkfifo(&fifo);
    let port = free_port();
    let cfg = format!(
        "{}[pipeline]\nbatch_max_events = 64\nbuffer_batches = 64\nbuffer_bytes = \"1MiB\"\n\
         [sources.a]\ntype = \"file\"\ninclude = [\"{l}/a.log\"]\n\
         [sources.b]\ntype = \"file\"\ninclude = [\"{l}/b.log\"]\n\
         [transforms.pii]\ntype = \"mask\"\ninputs = [\"a\", \"b\"]\ndetectors = [\"email\"]\nworkers = 3\n\
         [transforms.keep]\ntype = \"filter\"\ninputs = [\"pii\"]\nwhen = {{ matches = {{ message = \"mail\" }} }}\nworkers = 2\n\
         [sinks.out]\ntype = \"file\"\ninputs = [\"keep\"]\npath = \"{o}\"\n",
        header(dir.path(), Some(port)),
        l = logs.display(),
        o = fifo.display()
    );
    let mut s = Sluice::start(dir.path(), &cfg);
    // Held back: every edge filled up to its bound.
    assert!(
        wait_until(Duration::from_secs(20), || metric(port, "sluice_buffer_bytes", "pii") > 0.0
            && metric(port, "sluice_buffer_bytes", "keep") > 0.0),
        "stderr: {}",
        s.stderr()
    );
    std::thread::sleep(Duration::from_millis(500));
    let one_batch = 64.0 * 2200.0;
    let (_, body) = http_get(port, "/metrics", None).expect("metrics");
    for c in ["pii", "keep", "out"] {
        assert!(body.contains(&format!("sluice_buffer_bytes{{component=\"{c}\"}}")), "no gauge for {c}");
        let b = metric(port, "sluice_buffer_bytes", c);
        assert!(b <= (1u64 << 20) as f64 + one_batch, "edge into {c} holds {b} bytes");
    }
    let rss = s.rss_kib();
    assert!(rss < 60 * 1024, "RSS {rss} KiB while held back with 80 MB of input");
    // Read the pipe: every line once, in order per file, masked.
    let text = {
        use std::io::Read;
        let mut f = std::fs::File::open(&fifo).unwrap();
        let mut out = Vec::new();
        let mut buf = vec![0u8; 1 << 20];
        while out.iter().filter(|&&b| b == b'\n').count() < 2 * n {
            let k = f.read(&mut buf).unwrap();
            assert!(k > 0, "pipe closed early");
            out.extend_from_slice(&buf[..k]);
        }
        String::from_utf8(out).unwrap()
    };
    let mut next = [0usize; 2];
    for line in text.lines() {
        let e: serde_json::Value = serde_json::from_str(line).unwrap();
        let msg = e["message"].as_str().unwrap();
        assert!(msg.contains("mail [EMAIL] x") && !msg.contains('@'), "{msg}");
        let f = usize::from(msg.starts_with('b'));
        let i: usize = msg[2..8].parse().unwrap();
        assert_eq!(i, next[f], "lines of {} out of order or missing", &msg[..1]);
        next[f] += 1;
    }
    assert_eq!(next, [n, n]);
    assert_eq!(s.terminate(Duration::from_secs(20)), 0);
}

/// `workers` on a stage that carries state from one batch to the next is refused with
/// a located error naming the stages that take it.
#[test]
fn workers_on_a_stateful_stage_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "{}[sources.a]\ntype = \"stdin\"\n[transforms.s]\ntype = \"sample\"\ninputs = [\"a\"]\nrate = 10\nworkers = 2\n[sinks.out]\ntype = \"blackhole\"\ninputs = [\"s\"]\n",
        header(dir.path(), None)
    );
    let path = dir.path().join("sluice.toml");
    std::fs::write(&path, cfg).unwrap();
    let out = sluice().args(["validate", "--config", path.to_str().unwrap()]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("sluice.toml:10:11:") && err.contains("`transforms.s.workers`"), "{err}");
    assert!(err.contains("filter, mask, regex, route"), "{err}");
}
