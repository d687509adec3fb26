//! Hot reload: SIGHUP and `POST /api/v1/reload` re-read the config; what did not change
//! keeps running with its state (a file source keeps its position), changes apply, and a
//! config with errors is refused while the running one goes on.

use crate::harness::*;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

/// A minimal HTTP/1.1 POST without a body against loopback; returns (status, body).
fn http_post(port: u16, path: &str) -> Option<(u16, String)> {
    http_send(port, "POST", path, "")
}

fn http_send(port: u16, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let n = body.len();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {n}\r\nConnection: close\r\n\r\n{body}")
        .ok()?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).ok()?;
    let text = String::from_utf8_lossy(&resp).to_string();
    let status: u16 = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text[text.find("\r\n\r\n")? + 4..].to_string();
    Some((status, body))
}

fn append(path: &Path, from: usize, to: usize) {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
    let mut text = String::new();
    for i in from..to {
        let level = if i % 2 == 0 { "info" } else { "error" };
        text.push_str(&format!("{level} line {i}\n"));
    }
    f.write_all(text.as_bytes()).unwrap();
}

/// `logs/*.log` (or `include`) → parse `{level} {message}` → filter `when` → file `a`,
/// plus `extra`.
fn config(dir: &Path, api: u16, include: &str, when: &str, extra: &str) -> String {
    format!(
        "{}[sources.app]\ntype = \"file\"\ninclude = [\"{}/logs/{include}\"]\npoll_interval = \"20ms\"\n[transforms.p]\ntype = \"parse\"\ninputs = [\"app\"]\nformat = \"{{level}} {{message}}\"\n[transforms.f]\ntype = \"filter\"\ninputs = [\"p\"]\nwhen = {when}\n[sinks.a]\ntype = \"file\"\ninputs = [\"f\"]\npath = \"{}/a/out.ndjson\"\n{extra}",
        header(dir, Some(api)),
        dir.display(),
        dir.display()
    )
}

fn write_config(dir: &Path, text: &str) {
    // Written beside and renamed, as an editor or a config manager would.
    let tmp = dir.join("sluice.toml.new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(tmp, dir.join("sluice.toml")).unwrap();
}

fn messages(dir: &Path) -> Vec<String> {
    read_events(dir).iter().map(|e| e["message"].as_str().unwrap().to_string()).collect()
}

fn status_names(api: u16) -> Vec<String> {
    let (_, body) = http_get(api, "/api/v1/status", None).unwrap();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["components"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap().to_string()).collect()
}

#[test]
fn reload_applies_changes_and_keeps_what_did_not_change_running() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("logs")).unwrap();
    let log = dir.path().join("logs/app.log");
    append(&log, 0, 100);
    let api = free_port();
    let cfg = config(dir.path(), api, "*.log", "{ level = \"error\" }", "");
    let mut s = Sluice::start(dir.path(), &cfg);
    let a = dir.path().join("a");
    assert!(wait_until(Duration::from_secs(20), || messages(&a).len() == 50), "{}", s.stderr());

    // The filter changes (info instead of error) and a sink is added on the parse stage.
    let b = dir.path().join("b");
    let extra = format!("[sinks.b]\ntype = \"file\"\ninputs = [\"p\"]\npath = \"{}/out.ndjson\"\n", b.display());
    write_config(dir.path(), &config(dir.path(), api, "*.log", "{ level = \"info\" }", &extra));
    let (code, body) = http_post(api, "/api/v1/reload").expect("reload answered");
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let names =
        |k: &str| -> Vec<&str> { v["components"][k].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect() };
    assert_eq!(names("kept"), ["app", "p", "a"], "{body}");
    assert_eq!(names("changed"), ["f"], "{body}");
    assert_eq!(names("added"), ["b"], "{body}");
    assert!(status_names(api).contains(&"b".to_string()));

    append(&log, 100, 200);
    let want_b = 100;
    assert!(
        wait_until(Duration::from_secs(20), || messages(&a).len() == 100 && messages(&b).len() == want_b),
        "a: {} b: {}\n{}",
        messages(&a).len(),
        messages(&b).len(),
        s.stderr()
    );
    let got_a = messages(&a);
    // Before the reload: the errors (odd lines) of 0..100; after: the infos (even) of 100..200.
    let mut want_a: Vec<String> = (1..100).step_by(2).map(|i| format!("line {i}")).collect();
    want_a.extend((100..200).step_by(2).map(|i| format!("line {i}")));
    let mut sorted = got_a.clone();
    sorted.sort();
    want_a.sort();
    assert_eq!(sorted, want_a, "the source kept its position: nothing read twice, nothing skipped");
    // The new sink sees only what came after it (the source did not start over).
    let mut got_b = messages(&b);
    got_b.sort();
    let mut want: Vec<String> = (100..200).map(|i| format!("line {i}")).collect();
    want.sort();
    assert_eq!(got_b, want);
    assert_eq!(s.terminate(Duration::from_secs(20)), 0, "{}", s.stderr());
}

#[test]
fn a_config_with_errors_is_refused_and_the_running_one_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("logs")).unwrap();
    let log = dir.path().join("logs/app.log");
    append(&log, 0, 10);
    let api = free_port();
    let good = config(dir.path(), api, "*.log", "{ level = \"error\" }", "");
    let mut s = Sluice::start(dir.path(), &good);
    let a = dir.path().join("a");
    assert!(wait_until(Duration::from_secs(20), || messages(&a).len() == 5), "{}", s.stderr());

    // A misspelt key: refused through the API with the located error.
    write_config(dir.path(), &good.replace("poll_interval", "poll_intervall"));
    let (code, body) = http_post(api, "/api/v1/reload").unwrap();
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("sluice.toml:") && body.contains("unknown key `poll_intervall`"), "{body}");
    // A change only a restart can apply: refused too, saying so.
    write_config(dir.path(), &good.replace("[sources.app]", "[pipeline]\nbatch_max_events = 10\n[sources.app]"));
    let (code, body) = http_post(api, "/api/v1/reload").unwrap();
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("`[pipeline]` changed"), "{body}");
    // SIGHUP with a broken config: logged, still running.
    write_config(dir.path(), &good.replace("type = \"filter\"", "type = \"filtre\""));
    s.signal(libc::SIGHUP);
    let refused = |s: &Sluice| {
        s.stderr().lines().any(|l| {
            l.contains("new configuration refused")
                && l.contains("SIGHUP")
                && l.contains("unknown transform type `filtre`")
        })
    };
    assert!(wait_until(Duration::from_secs(10), || refused(&s)), "{}", s.stderr());
    append(&log, 10, 20);
    assert!(wait_until(Duration::from_secs(20), || messages(&a).len() == 10), "the old pipeline runs on");

    // SIGHUP with a good config: applied (the new sink appears and gets the new lines).
    let b = dir.path().join("b");
    let extra = format!("[sinks.b]\ntype = \"file\"\ninputs = [\"f\"]\npath = \"{}/out.ndjson\"\n", b.display());
    write_config(dir.path(), &config(dir.path(), api, "*.log", "{ level = \"error\" }", &extra));
    s.signal(libc::SIGHUP);
    assert!(wait_until(Duration::from_secs(10), || status_names(api).contains(&"b".to_string())), "{}", s.stderr());
    append(&log, 20, 30);
    assert!(wait_until(Duration::from_secs(20), || messages(&b).len() == 5), "{}", s.stderr());
    assert_eq!(messages(&a).len(), 15);
    assert_eq!(s.terminate(Duration::from_secs(20)), 0, "{}", s.stderr());
}

/// A changed source is replaced: the new one starts from the old one's checkpoints.
#[test]
fn a_changed_source_resumes_from_its_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("logs")).unwrap();
    let first = dir.path().join("logs/app.log");
    let second = dir.path().join("logs/app.txt");
    append(&first, 0, 2000);
    append(&second, 5000, 5100);
    let api = free_port();
    let all = "{ exists = \"level\" }";
    let mut s = Sluice::start(dir.path(), &config(dir.path(), api, "*.log", all, ""));
    let a = dir.path().join("a");
    assert!(wait_until(Duration::from_secs(20), || messages(&a).len() == 2000), "{}", s.stderr());
    // The source now also reads *.txt.
    write_config(dir.path(), &config(dir.path(), api, "app.*", all, ""));
    let (code, body) = http_post(api, "/api/v1/reload").unwrap();
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"changed\":[\"app\"]"), "{body}");
    append(&first, 2000, 2100);
    assert!(wait_until(Duration::from_secs(20), || messages(&a).len() >= 2200), "{}", s.stderr());
    std::thread::sleep(Duration::from_millis(500));
    let mut got = messages(&a);
    got.sort();
    let mut want: Vec<String> = (0..2100).chain(5000..5100).map(|i| format!("line {i}")).collect();
    want.sort();
    assert_eq!(got.len(), want.len(), "no line read twice");
    assert_eq!(got, want);
    assert_eq!(s.terminate(Duration::from_secs(20)), 0, "{}", s.stderr());
}

/// On-call turned sampling off for an incident; a reload that changes the sample stage
/// keeps it off.
#[test]
fn a_sampling_bypass_survives_a_reload_of_its_stage() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("logs")).unwrap();
    let api = free_port();
    let cfg = |rate: u32| {
        format!(
            "{}[sources.app]\ntype = \"file\"\ninclude = [\"{}/logs/*.log\"]\n[transforms.s]\ntype = \"sample\"\ninputs = [\"app\"]\nrate = {rate}\n[sinks.a]\ntype = \"file\"\ninputs = [\"s\"]\npath = \"{}/a/out.ndjson\"\n",
            header(dir.path(), Some(api)),
            dir.path().display(),
            dir.path().display()
        )
    };
    let mut s = Sluice::start(dir.path(), &cfg(10));
    assert!(wait_until(Duration::from_secs(10), || http_get(api, "/health/ready", None).is_some_and(|r| r.0 == 200)));
    let off = r#"{"enabled": false, "for": "30m", "reason": "incident 42", "by": "oncall"}"#;
    let (code, body) = http_send(api, "PUT", "/api/v1/sampling", off).unwrap();
    assert_eq!(code, 200, "{body}");
    write_config(dir.path(), &cfg(100));
    let (code, body) = http_post(api, "/api/v1/reload").unwrap();
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"changed\":[\"s\"]"), "{body}");
    let (_, body) = http_get(api, "/api/v1/sampling", None).unwrap();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let st = &v["stages"][0];
    assert_eq!(st["stage"], "s");
    assert_eq!(st["sampling"], false, "still bypassed after the reload: {body}");
    assert_eq!(st["reason"], "incident 42", "{body}");
    // And the running stage passes everything (it would keep about 1 in 100).
    append(&dir.path().join("logs/app.log"), 0, 300);
    let a = dir.path().join("a");
    assert!(wait_until(Duration::from_secs(20), || read_events(&a).len() == 300), "{}", read_events(&a).len());
    assert_eq!(s.terminate(Duration::from_secs(20)), 0, "{}", s.stderr());
}
