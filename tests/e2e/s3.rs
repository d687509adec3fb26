//! The s3 sink against a real S3 API: moto's server (`pip install 'moto[server]'`), one
//! per test on a free loopback port. Objects are listed and read back over S3's REST API
//! and decompressed here.

use crate::harness::*;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) struct Moto {
    child: Child,
    pub(crate) port: u16,
    http: reqwest::blocking::Client,
}

fn moto_bin() -> Option<PathBuf> {
    let home = PathBuf::from(std::env::var_os("HOME").unwrap_or_default());
    find_tool(
        "moto_server",
        &[home.join(".cache/sluice/venv/bin/moto_server")],
        "pip install 'moto[server]' (.ci/run installs it into ~/.cache/sluice/venv)",
    )
}

impl Moto {
    pub(crate) fn start() -> Option<Moto> {
        let bin = moto_bin()?;
        let port = free_port();
        let child = Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        // moto serves objects to signed requests only; it does not check the signature.
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=sluice-test/20261130/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00"
                .parse()
                .unwrap(),
        );
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .default_headers(headers)
            .build()
            .unwrap();
        let m = Moto { child, port, http };
        assert!(
            wait_until(Duration::from_secs(60), || m.http.get(m.url("")).send().is_ok()),
            "moto_server did not answer"
        );
        Some(m)
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }

    pub(crate) fn create_bucket(&self, name: &str) {
        let r = self.http.put(self.url(name)).send().unwrap();
        assert!(r.status().is_success(), "create bucket: {}", r.status());
    }

    /// Every key in the bucket, sorted (S3 lists in key order).
    pub(crate) fn keys(&self, bucket: &str) -> Vec<String> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut req = self.http.get(self.url(bucket)).query(&[("list-type", "2")]);
            if let Some(t) = &token {
                req = req.query(&[("continuation-token", t.as_str())]);
            }
            let body = req.send().unwrap().text().unwrap();
            keys.extend(xml_values(&body, "Key"));
            token = xml_values(&body, "NextContinuationToken").into_iter().next();
            if token.is_none() {
                return keys;
            }
        }
    }

    pub(crate) fn get(&self, bucket: &str, key: &str) -> Vec<u8> {
        let r = self.http.get(self.url(&format!("{bucket}/{key}"))).send().unwrap();
        assert!(r.status().is_success(), "GET {key}: {}", r.status());
        r.bytes().unwrap().to_vec()
    }

    fn etag(&self, bucket: &str, key: &str) -> String {
        let r = self.http.head(self.url(&format!("{bucket}/{key}"))).send().unwrap();
        r.headers()["etag"].to_str().unwrap().trim_matches('"').to_string()
    }

    /// Multipart uploads started and neither completed nor aborted.
    fn uploads_in_progress(&self, bucket: &str) -> usize {
        let body = self.http.get(self.url(&format!("{bucket}?uploads"))).send().unwrap().text().unwrap();
        xml_values(&body, "UploadId").len()
    }

    pub(crate) fn signal(&self, sig: i32) {
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.signal(libc::SIGCONT);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn xml_values(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find(&open) {
        let from = i + open.len();
        let Some(j) = rest[from..].find(&close) else { break };
        out.push(rest[from..from + j].replace("&amp;", "&"));
        rest = &rest[from + j..];
    }
    out
}

/// The NDJSON events of an object.
pub(crate) fn events_of(data: &[u8], key: &str) -> Vec<serde_json::Value> {
    let raw =
        if key.ends_with(".zst") { zstd::decode_all(data).expect("a complete zstd stream") } else { data.to_vec() };
    raw.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap_or_else(|e| panic!("{key}: a line is not JSON ({e})")))
        .collect()
}

pub(crate) fn aws_env() -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID", "sluice-test".into()),
        ("AWS_SECRET_ACCESS_KEY", "sluice-test-secret".into()),
        ("AWS_REGION", "us-east-1".into()),
    ]
}

fn config(dir: &Path, logs: &Path, m: &Moto, api: Option<u16>, source_extra: &str, sink_extra: &str) -> String {
    format!(
        "{}[pipeline]\ndrain_timeout = \"120s\"\n[sources.app]\ntype = \"file\"\ninclude = [\"{}/*.log\"]\npoll_interval = \"20ms\"\n{source_extra}\n\
         [transforms.p]\ntype = \"parse\"\ninputs = [\"app\"]\nformat = \"logfmt\"\n\
         [sinks.archive]\ntype = \"s3\"\ninputs = [\"p\"]\nbucket = \"logs\"\nendpoint = \"http://127.0.0.1:{}\"\n{sink_extra}\n",
        header(dir, api),
        logs.display(),
        m.port
    )
}

fn log_line(service: &str, n: u64) -> String {
    format!("service={service} n={n} msg=\"request {n} of {service} done\"\n")
}

/// The `n` field of an event (logfmt gives it as a string).
fn n_of(e: &serde_json::Value) -> u64 {
    e["n"].as_str().map(|s| s.parse().unwrap()).or_else(|| e["n"].as_u64()).unwrap()
}

/// Every event read back from the bucket: (service, n) in the order of the objects'
/// keys and of the lines within each.
fn stored(m: &Moto) -> Vec<(String, String, u64)> {
    let mut out = Vec::new();
    for key in m.keys("logs") {
        for e in events_of(&m.get("logs", &key), &key) {
            out.push((key.clone(), e["service"].as_str().unwrap().to_string(), n_of(&e)));
        }
    }
    out
}

/// A bucket `logs` and a temporary directory with an empty `logs/` for the input.
fn bucket_and_dir(m: &Moto) -> (tempfile::TempDir, PathBuf) {
    m.create_bucket("logs");
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    (dir, logs)
}

/// A moto server (None: skipped), with [`bucket_and_dir`].
fn setup() -> Option<(Moto, tempfile::TempDir, PathBuf)> {
    let m = Moto::start()?;
    let (dir, logs) = bucket_and_dir(&m);
    Some((m, dir, logs))
}

#[test]
fn s3_objects_are_partitioned_complete_and_in_order() {
    let Some((m, dir, logs)) = setup() else { return };
    let services = ["orders", "payments", "gateway"];
    let mut text = String::new();
    for n in 0..3000u64 {
        text.push_str(&log_line(services[(n % 7 % 3) as usize], n));
    }
    std::fs::write(logs.join("a.log"), text).unwrap();
    let cfg = config(
        dir.path(),
        &logs,
        &m,
        None,
        "stop_at_eof = true",
        "key_template = \"logs/{service}/{date}/{hour}/{instance}-{seq}.ndjson.zst\"\nmax_age = \"1h\"",
    );
    let mut s = Sluice::start_with_env(dir.path(), &cfg, &aws_env());
    // Input ends; shutting down closes and uploads the open objects.
    assert_eq!(s.wait_exit(Duration::from_secs(60)), 0, "{}", s.stderr());
    let keys = m.keys("logs");
    assert_eq!(keys.len(), 3, "one object per service: {keys:?}");
    let re = regex::Regex::new(
        r"^logs/(orders|payments|gateway)/\d{4}-\d{2}-\d{2}/\d{2}/\d{8}T\d{6}Z-[0-9a-f]{8}-0000000[1-3]\.ndjson\.zst$",
    )
    .unwrap();
    for k in &keys {
        assert!(re.is_match(k), "unexpected key {k}");
    }
    let got = stored(&m);
    assert_eq!(got.len(), 3000);
    let mut per_service: HashMap<String, Vec<u64>> = HashMap::new();
    for (key, service, n) in &got {
        assert!(key.starts_with(&format!("logs/{service}/")), "{service} event in {key}");
        per_service.entry(service.clone()).or_default().push(*n);
    }
    for (service, ns) in per_service {
        let want: Vec<u64> = (0..3000u64).filter(|n| services[(n % 7 % 3) as usize] == service).collect();
        assert_eq!(ns, want, "{service}: the events, in the order sent");
    }
}

#[test]
fn s3_outage_of_30s_holds_data_back_and_loses_nothing() {
    let Some((m, dir, logs)) = setup() else { return };
    let api = free_port();
    let cfg = config(
        dir.path(),
        &logs,
        &m,
        Some(api),
        "",
        "key_template = \"logs/{service}/{instance}-{seq}.ndjson.zst\"\nmax_age = \"1s\"\nrequest_timeout = \"2s\"",
    );
    let mut s = Sluice::start_with_env(dir.path(), &cfg, &aws_env());
    let mut f = std::fs::File::create(logs.join("a.log")).unwrap();
    let mut n = 0u64;
    let mut write_for = |d: Duration, f: &mut std::fs::File| {
        let end = Instant::now() + d;
        while Instant::now() < end {
            let mut chunk = String::new();
            for _ in 0..100 {
                chunk.push_str(&log_line(if n.is_multiple_of(2) { "orders" } else { "payments" }, n));
                n += 1;
            }
            f.write_all(chunk.as_bytes()).unwrap();
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    write_for(Duration::from_secs(3), &mut f);
    assert!(wait_until(Duration::from_secs(20), || !m.keys("logs").is_empty()), "no object before the outage");
    // The S3 server stops for 30 s (its requests hang) while input keeps coming.
    m.signal(libc::SIGSTOP);
    let stopped = Instant::now();
    write_for(Duration::from_secs(30), &mut f);
    let retries_during = metric(api, "sluice_sink_retries_total", "archive");
    let failures_during = metric(api, "sluice_s3_request_failures_total", "archive");
    m.signal(libc::SIGCONT);
    eprintln!("S3 stopped for {:?}; sink retries meanwhile: {retries_during}", stopped.elapsed());
    write_for(Duration::from_secs(3), &mut f);
    let total = n;
    // Everything written arrives once S3 is back (objects close after 1 s).
    let arrived = wait_until(Duration::from_secs(60), || stored(&m).len() as u64 >= total);
    let (objects, bytes) =
        (metric(api, "sluice_s3_objects_total", "archive"), metric(api, "sluice_s3_bytes_total", "archive"));
    let stored_bytes: usize = m.keys("logs").iter().map(|k| m.get("logs", k).len()).sum();
    assert!(objects >= 2.0 && objects as usize <= m.keys("logs").len(), "objects counted: {objects}");
    assert!(bytes > 0.0 && bytes as usize <= stored_bytes, "bytes counted: {bytes} of {stored_bytes}");
    assert_eq!(s.terminate(Duration::from_secs(60)), 0, "{}", s.stderr());
    let got = stored(&m);
    let mut count: HashMap<u64, usize> = HashMap::new();
    for (_, _, n) in &got {
        *count.entry(*n).or_default() += 1;
    }
    let missing: Vec<u64> = (0..total).filter(|n| !count.contains_key(n)).collect();
    let dups = count.values().filter(|c| **c > 1).count();
    eprintln!("records in {total}, stored {}, missing {}, duplicated {dups}", got.len(), missing.len());
    assert!(arrived, "not everything arrived within 60 s of S3's return");
    assert!(missing.is_empty(), "lost {} records, first {:?}", missing.len(), &missing[..missing.len().min(5)]);
    assert_eq!(dups, 0, "no crash, so no duplicates");
    assert!(retries_during >= 2.0, "the outage was retried: {retries_during}");
    assert!(failures_during >= 2.0, "failed requests counted: {failures_during}");
}

/// `n` lines of about 150 bytes that compress only about 3:1 (random hex), so that
/// 300 MB make a compressed object of many parts.
fn write_big_log(path: &Path, lines: u64) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut state = rand_u64() | 1;
    for n in 0..lines {
        let mut r = String::with_capacity(96);
        for _ in 0..4 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            r.push_str(&format!("{state:016x}"));
        }
        writeln!(f, "service=bulk n={n} payload={r} msg=\"bulk record {n}\"").unwrap();
    }
    f.flush().unwrap();
}

/// A bucket `logs` and a directory with `logs/big.log` of `lines` lines.
fn big_run(m: &Moto, lines: u64) -> (tempfile::TempDir, PathBuf) {
    let (dir, logs) = bucket_and_dir(m);
    write_big_log(&logs.join("big.log"), lines);
    (dir, logs)
}

#[test]
fn s3_300mb_run_uses_multipart_and_reads_back_whole() {
    let Some(m) = Moto::start() else { return };
    let _disk = disk_heavy();
    let lines = 2_500_000u64;
    let (dir, logs) = big_run(&m, lines);
    let size = std::fs::metadata(logs.join("big.log")).unwrap().len();
    assert!(size >= 300_000_000, "{size} bytes");
    let cfg = config(
        dir.path(),
        &logs,
        &m,
        None,
        "stop_at_eof = true",
        "key_template = \"bulk/{instance}-{seq}.ndjson.zst\"\nmax_bytes = \"2GiB\"\nmax_age = \"1h\"",
    );
    let started = Instant::now();
    let mut s = Sluice::start_with_env(dir.path(), &cfg, &aws_env());
    assert_eq!(s.wait_exit(Duration::from_secs(600)), 0, "{}", s.stderr());
    eprintln!("{size} bytes to S3 in {:?}", started.elapsed());
    let keys = m.keys("logs");
    assert_eq!(keys.len(), 1, "{keys:?}");
    // A multipart upload's ETag is the digest of the part digests, then `-` and the count.
    let etag = m.etag("logs", &keys[0]);
    let parts: usize = etag.rsplit_once('-').map(|(_, n)| n.parse().unwrap()).unwrap_or(1);
    assert!(parts >= 3, "ETag {etag}: not a multipart upload of several parts");
    let data = m.get("logs", &keys[0]);
    let events = events_of(&data, &keys[0]);
    eprintln!("object {}: {} bytes, {parts} parts, {} events", keys[0], data.len(), events.len());
    assert_eq!(events.len() as u64, lines);
    assert!(events.iter().enumerate().all(|(i, e)| n_of(e) == i as u64), "every record, in order");
}

#[test]
fn s3_upload_cut_by_kill_9_is_never_visible_and_replays_after_restart() {
    let Some(m) = Moto::start() else { return };
    let _disk = disk_heavy();
    let lines = 400_000u64;
    let (dir, logs) = big_run(&m, lines);
    let cfg = config(
        dir.path(),
        &logs,
        &m,
        None,
        "stop_at_eof = true",
        "key_template = \"bulk/{instance}-{seq}.ndjson\"\ncompression = \"none\"\nmax_bytes = \"1GiB\"\nmax_age = \"1h\"\npart_size = \"5MiB\"",
    );
    let s = Sluice::start_with_env(dir.path(), &cfg, &aws_env());
    assert!(
        wait_until(Duration::from_secs(60), || m.uploads_in_progress("logs") > 0),
        "no multipart upload started: {}",
        s.stderr()
    );
    s.kill9();
    // The upload was cut: nothing is visible under a final key.
    assert_eq!(m.keys("logs"), Vec::<String>::new(), "a half-written object is visible");
    assert!(m.uploads_in_progress("logs") > 0);
    // Restarted, sluice reads the file again from its checkpoint (which had not moved)
    // and uploads it whole under a new key when the input ends.
    let mut s = Sluice::start_with_env(dir.path(), &cfg, &aws_env());
    assert_eq!(s.wait_exit(Duration::from_secs(300)), 0, "{}", s.stderr());
    let keys = m.keys("logs");
    assert_eq!(keys.len(), 1, "{keys:?}");
    let events = events_of(&m.get("logs", &keys[0]), &keys[0]);
    assert_eq!(events.len() as u64, lines, "every record, once");
    assert!(events.iter().enumerate().all(|(i, e)| n_of(e) == i as u64), "every record, in order");
}

/// The shipped archive example: every event, masked and unsampled, in S3 (keys by
/// service and hour); Loki gets the sampled stream.
#[test]
fn archive_example_keeps_everything_masked_in_s3_and_samples_loki() {
    let Some(m) = Moto::start() else { return };
    m.create_bucket("archive");
    let dir = tempfile::tempdir().unwrap();
    let loki_port = free_port();
    let loki = crate::loki::Receiver::start(loki_port, vec![]);
    let api = free_port();
    let repo = repo_dir();
    let cfg = std::fs::read_to_string(repo.join("examples/archive/sluice.toml")).unwrap();
    let mut env = aws_env();
    env.extend([
        ("DATA_DIR", dir.path().join("data").display().to_string()),
        ("LOGS_DIR", repo.join("examples/quickstart/logs").display().to_string()),
        ("SLUICE_API_ADDRESS", format!("127.0.0.1:{api}")),
        ("S3_BUCKET", "archive".to_string()),
        ("S3_ENDPOINT", format!("http://127.0.0.1:{}", m.port)),
        ("LOKI_ENDPOINT", format!("http://127.0.0.1:{loki_port}")),
    ]);
    let mut s = Sluice::start_with_env(dir.path(), &cfg, &env);
    // Everything read (the sources are idle), then a clean stop closes the objects.
    let read = |name: &str| metric(api, "sluice_events_out_total", name);
    assert!(
        wait_until(Duration::from_secs(60), || {
            let before = read("payments") + read("orders");
            std::thread::sleep(Duration::from_millis(1500));
            before > 0.0 && read("payments") + read("orders") == before && !loki.entries().is_empty()
        }),
        "{}",
        s.stderr()
    );
    let events_read = read("payments") + read("orders");
    assert_eq!(s.terminate(Duration::from_secs(60)), 0, "{}", s.stderr());

    let keys = m.keys("archive");
    let key = regex::Regex::new(
        r"^logs/(payments|orders)/\d{4}-\d{2}-\d{2}/\d{2}/\d{8}T\d{6}Z-[0-9a-f]{8}-\d{8}\.ndjson\.zst$",
    )
    .unwrap();
    assert!(!keys.is_empty() && keys.iter().all(|k| key.is_match(k)), "{keys:?}");
    let mut archived = Vec::new();
    let email = regex::Regex::new(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}").unwrap();
    for k in &keys {
        let data = zstd::decode_all(&m.get("archive", k)[..]).unwrap();
        let text = String::from_utf8(data).unwrap();
        assert!(!email.is_match(&text), "{k}: an e-mail address left sluice unmasked");
        archived.extend(events_of(text.as_bytes(), "(decompressed)"));
    }
    let failed = archived.iter().filter(|e| e["event"] == "payment_failed").count();
    let input_failed = std::fs::read_to_string(repo.join("examples/quickstart/logs/payments.log"))
        .unwrap()
        .matches("Payment failed for user")
        .count();
    assert_eq!(archived.len() as f64, events_read, "S3 has every event read, unsampled");
    assert_eq!(failed, input_failed);
    assert!(
        archived
            .iter()
            .filter(|e| e.get("user_id").is_some())
            .all(|e| e["user_id"] != "42" && e["user_id"].as_str().is_some_and(|u| u.starts_with('['))),
        "user ids are masked whole"
    );
    let loki_entries = loki.entries().len();
    eprintln!("archived {} events in {} objects; Loki got {loki_entries}", archived.len(), keys.len());
    assert!(loki_entries < archived.len() / 2, "Loki gets the sampled stream: {loki_entries} of {}", archived.len());
}
