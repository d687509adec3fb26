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
