//! The loki sink against a receiver implemented here: it speaks Loki's push endpoint
//! (`POST /loki/api/v1/push`, snappy + logproto, decoded with the same schema), answers
//! with scripted statuses (500, 429 with Retry-After, 400) and records what it accepted.

use crate::harness::*;
use sluice_sinks::loki::proto::{self, PushRequest};
use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Seen {
    accepted: Vec<PushRequest>,
    /// (status answered, when, X-Scope-OrgID)
    requests: Vec<(u16, Instant, Option<String>)>,
    /// The Authorization header of each request.
    auth: Vec<Option<String>>,
}

/// A Loki push endpoint on `port`; `script` answers first (status, Retry-After, body),
/// then 204.
pub(crate) struct Receiver {
    seen: Arc<Mutex<Seen>>,
    /// Cleared: every push is answered 503 (Loki down).
    available: Arc<std::sync::atomic::AtomicBool>,
}

impl Receiver {
    pub(crate) fn start(port: u16, script: Vec<(u16, Option<u64>, &'static str)>) -> Receiver {
        Receiver::start_with(port, script, None)
    }

    /// The same over TLS with the given certificate and key (PEM files).
    fn start_tls(port: u16, crt: &Path, key: &Path) -> Receiver {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(crt).unwrap().map(|c| c.unwrap()).collect();
        let key = PrivateKeyDer::from_pem_file(key).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        Receiver::start_with(port, vec![], Some(Arc::new(config)))
    }

    fn start_with(
        port: u16,
        script: Vec<(u16, Option<u64>, &'static str)>,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Receiver {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let available = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (s, up) = (seen.clone(), available.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (seen, script, tls, up) = (s.clone(), script.clone(), tls.clone(), up.clone());
                std::thread::spawn(move || match tls {
                    None => serve(conn, &seen, &script, &up),
                    Some(cfg) => {
                        let Ok(server) = rustls::ServerConnection::new(cfg) else { return };
                        serve(rustls::StreamOwned::new(server, conn), &seen, &script, &up)
                    }
                });
            }
        });
        Receiver { seen, available }
    }

    /// Down (`false`: every push gets 503) or up again.
    pub(crate) fn set_available(&self, up: bool) {
        self.available.store(up, std::sync::atomic::Ordering::Relaxed);
    }

    /// Every accepted entry: (labels, timestamp ns, line, structured metadata).
    pub(crate) fn entries(&self) -> Vec<(String, i64, String, HashMap<String, String>)> {
        let seen = self.seen.lock().unwrap();
        let mut out = Vec::new();
        for req in &seen.accepted {
            for s in &req.streams {
                for e in &s.entries {
                    let ts = e.timestamp.map_or(0, |t| t.seconds * 1_000_000_000 + t.nanos as i64);
                    let md = e.structured_metadata.iter().map(|p| (p.name.clone(), p.value.clone())).collect();
                    out.push((s.labels.clone(), ts, e.line.clone(), md));
                }
            }
        }
        out
    }
}

type Script = Mutex<VecDeque<(u16, Option<u64>, &'static str)>>;

/// One connection: read pushes until it closes, answer from the script (then 204).
fn serve(stream: impl Read + Write, seen: &Mutex<Seen>, script: &Script, up: &std::sync::atomic::AtomicBool) {
    let mut r = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut len = 0usize;
        let mut tenant = None;
        let mut auth = None;
        let mut json = false;
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (k, v) = h.split_once(':').unwrap();
            match k.to_ascii_lowercase().as_str() {
                "content-length" => len = v.trim().parse().unwrap(),
                "x-scope-orgid" => tenant = Some(v.trim().to_string()),
                "authorization" => auth = Some(v.trim().to_string()),
                "content-type" => json = v.trim() == "application/json",
                _ => {}
            }
        }
        let mut body = vec![0u8; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        assert!(line.starts_with("POST /loki/api/v1/push "), "{line}");
        let (status, retry_after, text) = if up.load(std::sync::atomic::Ordering::Relaxed) {
            script.lock().unwrap().pop_front().unwrap_or((204, None, ""))
        } else {
            (503, None, "down for the test")
        };
        {
            let mut seen = seen.lock().unwrap();
            seen.requests.push((status, Instant::now(), tenant));
            seen.auth.push(auth);
            if status < 300 {
                let req =
                    if json { from_json(&body) } else { proto::decode(&body).expect("a valid snappy logproto body") };
                seen.accepted.push(req);
            }
        }
        let extra = retry_after.map(|s| format!("Retry-After: {s}\r\n")).unwrap_or_default();
        let resp = format!(
            "HTTP/1.1 {status} X\r\nContent-Length: {}\r\n{extra}Connection: keep-alive\r\n\r\n{text}",
            text.len()
        );
        if r.get_mut().write_all(resp.as_bytes()).and_then(|_| r.get_mut().flush()).is_err() {
            return;
        }
    }
}

/// Loki's JSON push body, read into the protobuf types (as Loki does).
fn from_json(body: &[u8]) -> PushRequest {
    let v: serde_json::Value = serde_json::from_slice(body).expect("a valid JSON push body");
    let streams = v["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let labels: Vec<String> =
                s["stream"].as_object().unwrap().iter().map(|(k, v)| format!("{k}={v}")).collect();
            proto::StreamAdapter {
                labels: format!("{{{}}}", labels.join(", ")),
                entries: s["values"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| {
                        let ns: i64 = e[0].as_str().unwrap().parse().unwrap();
                        proto::EntryAdapter {
                            timestamp: Some(proto::Timestamp {
                                seconds: ns / 1_000_000_000,
                                nanos: (ns % 1_000_000_000) as i32,
                            }),
                            line: e[1].as_str().unwrap().to_string(),
                            structured_metadata: e
                                .get(2)
                                .and_then(|m| m.as_object())
                                .map(|m| {
                                    m.iter()
                                        .map(|(k, v)| proto::LabelPairAdapter {
                                            name: k.clone(),
                                            value: v.as_str().unwrap().into(),
                                        })
                                        .collect()
                                })
                                .unwrap_or_default(),
                        }
                    })
                    .collect(),
                hash: 0,
            }
        })
        .collect();
    PushRequest { streams }
}

/// A log of JSON lines: `n` events over services a, b, c, levels info/error, timestamps
/// not in order, a trace id each.
fn write_log(dir: &Path, n: usize) -> std::path::PathBuf {
    let p = dir.join("logs");
    std::fs::create_dir_all(&p).unwrap();
    let mut text = String::new();
    for i in 0..n {
        let svc = ["a", "b", "c"][i % 3];
        let level = if i % 5 == 0 { "error" } else { "info" };
        // Seconds run backwards in every group of ten lines: not in time order.
        let sec = 1_000 + (i / 10) * 10 + (9 - i % 10);
        text.push_str(&format!(
            "{{\"timestamp\":\"2026-11-30T10:{:02}:{:02}Z\",\"level\":\"{level}\",\"service\":\"{svc}\",\"user_id\":\"u{}\",\"trace_id\":\"t{i:04}\",\"message\":\"event {i}\"}}\n",
            (sec / 60) % 60,
            sec % 60,
            i % 50
        ));
    }
    std::fs::write(p.join("app.log"), text).unwrap();
    p
}

fn config(dir: &Path, logs: &Path, port: u16, extra: &str) -> String {
    format!(
        "{}[pipeline]\ndrain_timeout = \"90s\"\nbatch_max_events = 100\n[sources.app]\ntype = \"file\"\ninclude = [\"{}/*.log\"]\nstop_at_eof = true\n[transforms.p]\ntype = \"parse\"\ninputs = [\"app\"]\nformat = \"json\"\n[sinks.loki]\ntype = \"loki\"\ninputs = [\"p\"]\nendpoint = \"http://127.0.0.1:{port}\"\nlabels = {{ service = \"{{service}}\", level = \"{{level}}\", env = \"test\" }}\nstructured_metadata = [\"trace_id\"]\ntenant_id = \"ops\"\nbatch_max_wait = \"200ms\"\ndead_letter_path = \"{}/dead.ndjson\"\n{extra}\n",
        header(dir, None),
        logs.display(),
        dir.display()
    )
}

fn run_to_end(dir: &Path, cfg: &str, timeout: Duration) -> Sluice {
    let mut s = Sluice::start(dir, cfg);
    let code = s.wait_exit(timeout);
    assert_eq!(code, 0, "{}", s.stderr());
    s
}

#[test]
fn pushes_streams_with_labels_order_and_structured_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let logs = write_log(dir.path(), 600);
    let port = free_port();
    let rx = Receiver::start(port, vec![]);
    let cfg = config(dir.path(), &logs, port, "bearer_token = \"${LOKI_TOKEN}\"");
    let mut s = Sluice::start_with_env(dir.path(), &cfg, &[("LOKI_TOKEN", "s3cret".to_string())]);
    assert_eq!(s.wait_exit(Duration::from_secs(60)), 0, "{}", s.stderr());
    let entries = rx.entries();
    assert_eq!(entries.len(), 600);
    let mut label_sets: Vec<String> = entries.iter().map(|e| e.0.clone()).collect();
    label_sets.sort();
    label_sets.dedup();
    assert_eq!(label_sets.len(), 6, "{label_sets:?}");
    assert!(label_sets.contains(&"{env=\"test\", level=\"error\", service=\"a\"}".to_string()), "{label_sets:?}");
    let e = entries.iter().find(|e| e.2.contains("\"message\":\"event 7\"")).expect("event 7");
    assert_eq!(e.0, "{env=\"test\", level=\"info\", service=\"b\"}");
    assert_eq!(e.3["trace_id"], "t0007");
    let line: serde_json::Value = serde_json::from_str(&e.2).unwrap();
    assert_eq!(line["user_id"], "u7");
    // Within every stream of every push, entries are in time order.
    let seen = rx.seen.lock().unwrap();
    for req in &seen.accepted {
        for s in &req.streams {
            let ts: Vec<i64> = s.entries.iter().map(|e| e.timestamp.unwrap().seconds).collect();
            assert!(ts.windows(2).all(|w| w[0] <= w[1]), "{} not sorted: {ts:?}", s.labels);
        }
    }
    assert!(seen.requests.iter().all(|r| r.2.as_deref() == Some("ops")), "X-Scope-OrgID on every request");
    assert!(seen.auth.iter().all(|a| a.as_deref() == Some("Bearer s3cret")), "the token from the environment");
    assert!(seen.accepted.len() < 600 / 10, "batched: {} requests", seen.accepted.len());
}

#[test]
fn retries_5xx_and_429_then_delivers_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let logs = write_log(dir.path(), 300);
    let port = free_port();
    let rx = Receiver::start(port, vec![(500, None, "boom"), (503, None, "busy"), (429, Some(2), "slow down")]);
    let cfg = config(dir.path(), &logs, port, "basic_auth = { user = \"sluice\", password = \"pw\" }");
    run_to_end(dir.path(), &cfg, Duration::from_secs(60));
    let entries = rx.entries();
    let mut lines: Vec<&String> = entries.iter().map(|e| &e.2).collect();
    lines.sort();
    let before = lines.len();
    lines.dedup();
    assert_eq!((before, lines.len()), (300, 300), "every event once");
    let seen = rx.seen.lock().unwrap();
    let statuses: Vec<u16> = seen.requests.iter().map(|r| r.0).collect();
    assert_eq!(&statuses[..4], &[500, 503, 429, 204], "{statuses:?}");
    // Basic auth: base64("sluice:pw").
    assert!(seen.auth.iter().all(|a| a.as_deref() == Some("Basic c2x1aWNlOnB3")), "{:?}", seen.auth);
    let waited = seen.requests[3].1 - seen.requests[2].1;
    assert!(waited >= Duration::from_millis(1900), "Retry-After: 2 honoured, waited {waited:?}");
}

#[test]
fn connection_refused_for_20s_then_delivers_everything() {
    let dir = tempfile::tempdir().unwrap();
    let logs = write_log(dir.path(), 300);
    let port = free_port();
    let mut s = Sluice::start(dir.path(), &config(dir.path(), &logs, port, ""));
    std::thread::sleep(Duration::from_secs(20));
    assert!(s.child.try_wait().unwrap().is_none(), "sluice holds the data and keeps retrying");
    let rx = Receiver::start(port, vec![]);
    assert_eq!(s.wait_exit(Duration::from_secs(60)), 0, "{}", s.stderr());
    assert_eq!(rx.entries().len(), 300);
}

#[test]
fn bad_request_goes_to_the_dead_letter_file() {
    let dir = tempfile::tempdir().unwrap();
    let logs = write_log(dir.path(), 50);
    let port = free_port();
    let rx = Receiver::start(port, vec![(400, None, "entry too far behind")]);
    // One push for everything: batch_max_wait long enough to gather all 50 lines.
    run_to_end(
        dir.path(),
        &config(dir.path(), &logs, port, "").replace("batch_max_wait = \"200ms\"", "batch_max_wait = \"5s\""),
        Duration::from_secs(60),
    );
    assert!(rx.entries().is_empty());
    let dead = std::fs::read_to_string(dir.path().join("dead.ndjson")).unwrap();
    let lines: Vec<serde_json::Value> = dead.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 50, "every refused entry is kept");
    assert_eq!(lines[0]["status"], 400);
    assert_eq!(lines[0]["reason"], "entry too far behind");
    assert!(lines[0]["labels"].as_str().unwrap().contains("service="));
}

#[test]
fn label_cardinality_folds_into_overflow() {
    let dir = tempfile::tempdir().unwrap();
    let logs = write_log(dir.path(), 500);
    let port = free_port();
    let rx = Receiver::start(port, vec![]);
    let api = free_port();
    let cfg = config(dir.path(), &logs, port, "max_streams = 5")
        .replace(
            "labels = { service = \"{service}\", level = \"{level}\", env = \"test\" }",
            "labels = { user = \"{user_id}\", env = \"test\" }",
        )
        .replace("[api]\nenabled = false\n", &format!("[api]\naddress = \"127.0.0.1:{api}\"\n"))
        .replace("stop_at_eof = true", "stop_at_eof = false");
    let mut s = Sluice::start(dir.path(), &cfg);
    assert!(wait_until(Duration::from_secs(30), || rx.entries().len() >= 500), "{}", s.stderr());
    let metrics = http_get(api, "/metrics", None).unwrap().1;
    let overflow: f64 = metrics
        .lines()
        .find(|l| l.starts_with("sluice_loki_streams_overflow_total"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0);
    assert_eq!(s.terminate(Duration::from_secs(30)), 0);
    let mut sets: Vec<String> = rx.entries().into_iter().map(|e| e.0).collect();
    sets.sort();
    sets.dedup();
    assert_eq!(sets.len(), 6, "5 label sets and the overflow one: {sets:?}");
    assert!(sets.contains(&"{env=\"test\", user=\"__overflow__\"}".to_string()), "{sets:?}");
    assert_eq!(overflow, 450.0, "45 of 50 users' events folded");
}

#[test]
fn json_encoding_message_lines_and_long_lines_cut_with_a_mark() {
    let dir = tempfile::tempdir().unwrap();
    let logs = write_log(dir.path(), 30);
    let long = format!(
        "{{\"timestamp\":\"2026-11-30T11:00:00Z\",\"service\":\"a\",\"level\":\"info\",\"message\":\"{}\"}}\n",
        "z".repeat(4000)
    );
    let mut f = std::fs::OpenOptions::new().append(true).open(logs.join("app.log")).unwrap();
    f.write_all(long.as_bytes()).unwrap();
    let port = free_port();
    let rx = Receiver::start(port, vec![]);
    let cfg = config(dir.path(), &logs, port, "encoding = \"json\"\nline_format = \"raw\"\nmax_line_bytes = 1024");
    run_to_end(dir.path(), &cfg, Duration::from_secs(60));
    let entries = rx.entries();
    assert_eq!(entries.len(), 31);
    // `raw` is the message text (the parse stage took it out of the JSON line).
    let e = entries.iter().find(|e| e.2 == "event 0").expect("the message of event 0");
    assert_eq!(e.3["trace_id"], "t0000");
    assert_eq!(e.0, "{env=\"test\", level=\"error\", service=\"a\"}");
    let cut = entries.iter().find(|e| e.2.contains("zzzz")).unwrap();
    assert_eq!(cut.2.len(), 1024, "cut at max_line_bytes");
    assert_eq!(cut.3["truncated"], "true");
}

#[test]
fn nothing_unmasked_leaves_in_lines_or_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::write(
        logs.join("app.log"),
        "{\"timestamp\":\"2026-11-30T11:00:00Z\",\"service\":\"a\",\"level\":\"info\",\"trace_id\":\"jane@example.com\",\"message\":\"login by jane@example.com from 203.0.113.9\"}\n",
    )
    .unwrap();
    for format in ["raw", "json", "logfmt"] {
        let port = free_port();
        let rx = Receiver::start(port, vec![]);
        let cfg = config(dir.path(), &logs, port, &format!("line_format = \"{format}\""))
            .replace("[sinks.loki]", "[transforms.pii]\ntype = \"mask\"\ninputs = [\"p\"]\n[sinks.loki]")
            .replace("inputs = [\"p\"]\nendpoint", "inputs = [\"pii\"]\nendpoint");
        let _ = std::fs::remove_dir_all(dir.path().join("data"));
        run_to_end(dir.path(), &cfg, Duration::from_secs(60));
        let entries = rx.entries();
        assert_eq!(entries.len(), 1);
        let (_, _, line, md) = &entries[0];
        assert!(!line.contains("jane@") && !line.contains("203.0.113.9"), "{format}: {line}");
        assert!(line.contains("[EMAIL]"), "{format}: {line}");
        assert!(!md["trace_id"].contains("jane@"), "{format}: {md:?}");
    }
}

#[test]
fn https_endpoint_with_a_private_ca() {
    let Some(_) = tool("openssl", "openssl") else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    crate::syslog::certificates(d);
    let logs = write_log(d, 40);
    let port = free_port();
    let rx = Receiver::start_tls(port, &d.join("server.crt"), &d.join("server.key"));
    let cfg = config(d, &logs, port, &format!("ca_file = \"{}/ca.crt\"", d.display()))
        .replace(&format!("http://127.0.0.1:{port}"), &format!("https://127.0.0.1:{port}"));
    run_to_end(d, &cfg, Duration::from_secs(60));
    assert_eq!(rx.entries().len(), 40);
}
