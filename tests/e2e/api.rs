use crate::harness::*;
use std::time::Duration;

#[test]
fn admin_api_health_metrics_status_and_token() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::write(logs.join("a.log"), "one\ntwo\nthree\n").unwrap();
    let port = free_port();
    let cfg = format!(
        "data_dir = \"{}\"\n[api]\naddress = \"127.0.0.1:{port}\"\ntoken = \"${{SLUICE_E2E_TOKEN:-s3cret}}\"\n[sources.app]\ntype = \"file\"\ninclude = [\"{}/*.log\"]\n[sinks.out]\ntype = \"blackhole\"\ninputs = [\"app\"]\n",
        dir.path().join("data").display(),
        logs.display()
    );
    let mut s = Sluice::start(dir.path(), &cfg);
    let tok = Some("s3cret");
    assert!(wait_until(Duration::from_secs(10), || http_get(port, "/health/ready", tok).is_some_and(|r| r.0 == 200)));
    assert_eq!(http_get(port, "/health/live", tok).unwrap().0, 200);
    // Without or with a wrong token: 401.
    assert_eq!(http_get(port, "/health/live", None).unwrap().0, 401);
    assert_eq!(http_get(port, "/metrics", Some("nope")).unwrap().0, 401);

    assert!(wait_until(Duration::from_secs(10), || {
        http_get(port, "/metrics", tok).is_some_and(|(_, b)| b.contains("sluice_events_out_total{component=\"out\",component_kind=\"sink\",component_type=\"blackhole\"} 3"))
    }));
    let (_, metrics) = http_get(port, "/metrics", tok).unwrap();
    for name in ["sluice_events_in_total", "sluice_events_out_total", "sluice_bytes_in_total", "sluice_file_unread_bytes"] {
        assert!(metrics.contains(name), "{name} missing from /metrics:\n{metrics}");
    }
    assert!(metrics.contains("sluice_bytes_in_total{component=\"app\",component_kind=\"source\",component_type=\"file\"} 11"), "{metrics}");

    let (code, body) = http_get(port, "/api/v1/status", tok).unwrap();
    assert_eq!(code, 200);
    let st: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(st["ready"], true);
    let comps = st["components"].as_array().unwrap();
    assert_eq!(comps.len(), 2);
    assert_eq!(comps[0]["name"], "app");
    assert_eq!(comps[0]["type"], "file");
    assert_eq!(comps[0]["events_out"], 3);
    assert_eq!(comps[1]["kind"], "sink");
    assert_eq!(comps[1]["events_in"], 3);
    // The token never appears in sluice's own logs.
    assert_eq!(s.terminate(Duration::from_secs(20)), 0);
    assert!(!s.stderr().contains("s3cret"));
}

#[test]
fn api_is_loopback_by_default_and_port_conflict_is_reported() {
    let out = sluice().arg("validate").output().unwrap();
    assert!(out.status.success());
    // Occupy a port, then ask sluice to use it.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "data_dir = \"{}\"\n[api]\naddress = \"127.0.0.1:{port}\"\n[sources.i]\ntype = \"stdin\"\n[sinks.o]\ntype = \"blackhole\"\ninputs = [\"i\"]\n",
        dir.path().display()
    );
    let mut s = Sluice::start(dir.path(), &cfg);
    let code = s.wait_exit(Duration::from_secs(10));
    assert_eq!(code, 1);
}
