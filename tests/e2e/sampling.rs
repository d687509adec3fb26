//! Sampling and the incident switch through the real binary and its CLI.

use crate::harness::*;
use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

fn cli(port: u16, args: &[&str], token: Option<&str>) -> (i32, String, String) {
    let mut c = sluice();
    c.arg("sampling").args(args).args(["--api", &format!("http://127.0.0.1:{port}")]).env_remove("SLUICE_API_TOKEN");
    if let Some(t) = token {
        c.env("SLUICE_API_TOKEN", t);
    }
    let out = c.output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn append(path: &std::path::Path, from: usize, n: usize) {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
    let mut s = String::new();
    for i in from..from + n {
        s.push_str(&format!("INFO request {i} done trace={i:032x}\n"));
    }
    f.write_all(s.as_bytes()).unwrap();
}

#[test]
fn incident_switch_api_cli_audit_persistence_and_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let out = dir.path().join("out");
    let port = free_port();
    let cfg = format!(
        "data_dir = \"{d}/data\"\n[api]\naddress = \"127.0.0.1:{port}\"\ntoken = \"${{SLUICE_API_TOKEN}}\"\n[sources.app]\ntype = \"file\"\ninclude = [\"{d}/logs/*.log\"]\npoll_interval = \"10ms\"\n[transforms.p]\ntype = \"parse\"\ninputs = [\"app\"]\nformat = \"{{level}} {{message}}\"\ntemplates = [{{ event = \"done\", pattern = \"request {{n:int}} done trace={{trace_id}}\" }}]\n[transforms.s]\ntype = \"sample\"\ninputs = [\"p\"]\nrate = 1000000\n[sinks.out]\ntype = \"file\"\ninputs = [\"s\"]\npath = \"{o}/out.ndjson\"\n",
        d = dir.path().display(),
        o = out.display()
    );
    let env = [("SLUICE_API_TOKEN", "t0k".to_string())];
    let a = logs.join("a.log");
    append(&a, 0, 2000);
    let mut s = Sluice::start_with_env(dir.path(), &cfg, &env);
    assert!(wait_until(Duration::from_secs(10), || http_get(port, "/health/ready", Some("t0k"))
        .is_some_and(|r| r.0 == 200)));
    std::thread::sleep(Duration::from_millis(500));
    let before = read_events(&out).len();
    assert!(before < 5, "1 in a million: {before} kept");

    // Without the token: refused.
    assert_eq!(http_get(port, "/api/v1/sampling", None).unwrap().0, 401);
    let (code, _, err) = cli(port, &["status"], None);
    assert_eq!(code, 1);
    assert!(err.contains("unauthorized"), "{err}");

    // Off for 3 s: lines written from then on all pass, within a second.
    let (code, o, err) = cli(port, &["off", "--for", "3s", "--reason", "INC-4211", "--stage", "s"], Some("t0k"));
    assert_eq!(code, 0, "{err}");
    assert!(o.contains("s: sampling OFF until") && o.contains("INC-4211"), "{o}");
    let t0 = Instant::now();
    append(&a, 2000, 500);
    assert!(
        wait_until(Duration::from_secs(1), || read_events(&out).len() >= before + 500),
        "bypass took effect within 1 s: {} events",
        read_events(&out).len()
    );
    eprintln!("switch effect observed after {:?}", t0.elapsed());
    let (_, o, _) = cli(port, &["status"], Some("t0k"));
    assert!(o.contains("s: sampling OFF until 20") && o.contains("reason: INC-4211"), "{o}");
    let (_, metrics) = http_get(port, "/metrics", Some("t0k")).unwrap();
    assert!(metrics.contains("sluice_sampling_bypass{stage=\"s\"} 1"), "{metrics}");
    assert!(
        metrics.lines().any(|l| l.starts_with("sluice_sampling_bypass_expiry_timestamp_seconds{stage=\"s\"} 1")),
        "{metrics}"
    );
    let audit = s.stderr();
    assert!(
        audit.contains("sampling bypass ON") && audit.contains("INC-4211") && audit.contains("\"by\":\""),
        "{audit}"
    );

    // The state survives a restart until it expires.
    assert_eq!(s.terminate(Duration::from_secs(20)), 0);
    let mut s = Sluice::start_with_env(dir.path(), &cfg, &env);
    assert!(wait_until(Duration::from_secs(10), || http_get(port, "/health/ready", Some("t0k"))
        .is_some_and(|r| r.0 == 200)));
    let (_, o, _) = cli(port, &["status"], Some("t0k"));
    assert!(o.contains("sampling OFF") && o.contains("restored after restart"), "{o}");

    // Expiry restores sampling by itself.
    assert!(wait_until(Duration::from_secs(6), || cli(port, &["status"], Some("t0k")).1.contains("s: sampling on")));
    let n = read_events(&out).len();
    append(&a, 2500, 2000);
    std::thread::sleep(Duration::from_millis(700));
    assert!(read_events(&out).len() < n + 5, "sampling again after expiry");
    assert!(s.stderr().contains("sampling bypass OFF"));

    // Back off and on again through the CLI; unknown stage is a clear error.
    assert_eq!(cli(port, &["off", "--for", "10m", "--reason", "INC-5"], Some("t0k")).0, 0);
    assert_eq!(cli(port, &["on"], Some("t0k")).0, 0);
    let (code, _, err) = cli(port, &["off", "--for", "1m", "--reason", "x", "--stage", "nope"], Some("t0k"));
    assert_eq!(code, 1);
    assert!(err.contains("no sample stage named `nope`"), "{err}");
    assert_eq!(s.terminate(Duration::from_secs(20)), 0);

    // --no-sampling: off from the start.
    let cfgp = dir.path().join("sluice.toml");
    let mut child = sluice()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .args(["run", "--no-sampling", "--config", cfgp.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(10), || cli(port, &["status"], Some("t0k"))
        .1
        .contains("s: sampling OFF until further notice")));
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

/// Two separate sluice processes on the same input make identical decisions.
#[test]
fn two_processes_make_identical_decisions() {
    let mut outputs = Vec::new();
    let mut input = String::new();
    for i in 0..30_000 {
        input.push_str(&format!("INFO step {} of trace={:032x}\n", i % 7, i / 6));
    }
    for run in 0..2 {
        let dir = tempfile::tempdir().unwrap();
        let cfg = format!(
            "data_dir = \"{d}/data\"\n[api]\nenabled = false\n[sources.in]\ntype = \"stdin\"\n[transforms.p]\ntype = \"parse\"\ninputs = [\"in\"]\nformat = \"{{level}} step {{step}} of trace={{trace_id}}\"\n[transforms.s]\ntype = \"sample\"\ninputs = [\"p\"]\nrate = 10\n[sinks.c]\ntype = \"console\"\ninputs = [\"s\"]\n",
            d = dir.path().display()
        );
        let p = dir.path().join("sluice.toml");
        std::fs::write(&p, cfg).unwrap();
        let mut child = sluice()
            .args(["run", "--config", p.to_str().unwrap()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let data = input.clone();
        let writer = std::thread::spawn(move || stdin.write_all(data.as_bytes()).unwrap());
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        assert!(out.status.success(), "run {run}");
        let mut msgs: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["message"].as_str().unwrap().to_string())
            .collect();
        msgs.sort();
        outputs.push(msgs);
    }
    assert_eq!(outputs[0], outputs[1]);
    let ratio = outputs[0].len() as f64 / 30_000.0;
    assert!((ratio - 0.1).abs() < 0.02, "kept {ratio}");
}
