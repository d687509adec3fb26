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
        http_get(port, "/metrics", tok).is_some_and(|(_, b)| {
            b.contains(
                "sluice_events_out_total{component=\"out\",component_kind=\"sink\",component_type=\"blackhole\"} 3",
            )
        })
    }));
    let (_, metrics) = http_get(port, "/metrics", tok).unwrap();
    for name in
        ["sluice_events_in_total", "sluice_events_out_total", "sluice_bytes_in_total", "sluice_file_unread_bytes"]
    {
        assert!(metrics.contains(name), "{name} missing from /metrics:\n{metrics}");
    }
    assert!(
        metrics
            .contains("sluice_bytes_in_total{component=\"app\",component_kind=\"source\",component_type=\"file\"} 11"),
        "{metrics}"
    );

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

/// The README's first command: `sluice run` on the embedded quickstart config, from a
/// directory laid out like the repository (bundled logs only, nothing from ../shared).
#[test]
fn embedded_quickstart_writes_structured_events_and_serves_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("examples/quickstart/logs");
    std::fs::create_dir_all(&logs).unwrap();
    let mut lines = 0;
    for e in std::fs::read_dir(repo_dir().join("examples/quickstart/logs")).unwrap().flatten() {
        let text = std::fs::read_to_string(e.path()).unwrap();
        lines +=
            text.lines().filter(|l| !l.starts_with('\t') && !l.starts_with("java.") && !l.starts_with("org.")).count();
        std::fs::write(logs.join(e.file_name()), text).unwrap();
    }
    let port = free_port();
    let mut child = sluice()
        .current_dir(dir.path())
        .env("SLUICE_API_ADDRESS", format!("127.0.0.1:{port}"))
        .arg("run")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let out = dir.path().join("out");
    assert!(
        wait_until(Duration::from_secs(20), || read_events(&out).len() >= lines),
        "{} of {lines} events",
        read_events(&out).len()
    );
    let events = read_events(&out);
    assert!(events.iter().all(|e| e.get("parse_error").is_none()), "every bundled line parses");
    let with_event = events.iter().filter(|e| e.get("event").is_some()).count();
    assert_eq!(with_event, events.len(), "every record gets a named event");
    assert!(events.iter().any(|e| e["event"] == "payment_failed" || e["event"] == "payment_succeeded"));
    let all = events.iter().map(|e| e.to_string()).collect::<String>();
    assert!(!all.contains("@example.com"), "PII masked");
    let (code, metrics) = http_get(port, "/metrics", None).unwrap();
    assert_eq!(code, 200);
    assert!(metrics.contains("sluice_events_out_total{component=\"events\""), "{metrics}");
    // Log-derived metrics: one log_events_total per record, labelled by service.
    let records: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("log_events_total{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(records as usize, lines, "{metrics}");
    assert!(
        metrics.contains("log_events_total{source=\"payments\",event=\"payment_started\",level=\"info\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("upstream_duration_seconds_bucket{upstream=\"bank-gw\",le=\"30\"}"), "{metrics}");
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

/// Two processes must not share a data_dir (their checkpoints would clobber each other).
#[test]
fn second_process_on_the_same_data_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "data_dir = \"{}/data\"\n[api]\nenabled = false\n[sources.i]\ntype = \"file\"\ninclude = [\"{}/*.log\"]\n[sinks.o]\ntype = \"blackhole\"\ninputs = [\"i\"]\n",
        dir.path().display(),
        dir.path().display()
    );
    let first = Sluice::start(dir.path(), &cfg);
    std::thread::sleep(Duration::from_millis(500));
    let mut second = Sluice::start(dir.path(), &cfg);
    assert_eq!(second.wait_exit(Duration::from_secs(10)), 1);
    assert!(second.stderr().contains("is in use by another sluice process"), "{}", second.stderr());
    drop(first);
}
