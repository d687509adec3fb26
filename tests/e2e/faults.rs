//! The fault-injection suite: file → parse → mask (no sampling) → three sinks: a file,
//! S3 (moto) and Loki (the test receiver of `loki.rs`), the S3 and Loki sinks behind
//! disk buffers. Input is written while it runs and rotated (rename and copytruncate)
//! every few seconds. Faults: 20 `kill -9`s at random moments with restarts (the disk
//! buffers holding data across them: Loki refuses pushes for the first part), and each
//! sink down for 30 s in one run. Each test counts the records written and the records
//! each sink received, fails on any loss, and reports duplicates, peak RSS and the time
//! to drain. Figures go to stderr (`--nocapture`) and into BENCHMARKS.md.

use crate::harness::*;
use crate::loki::Receiver;
use crate::s3::{aws_env, events_of, Moto};
use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Record `n`: a level, the record number, an e-mail address for the mask to redact.
fn record(n: usize) -> String {
    let level = if n.is_multiple_of(10) { "error" } else { "info" };
    format!("{level} record {n:08} for user{}@example.com done\n", n % 97)
}

/// The record number in a message (`record 00000042 ...`).
fn number(message: &str) -> Option<usize> {
    let i = message.find("record ")? + 7;
    message.get(i..i + 8)?.parse().ok()
}

/// Writes records to `logs/app.log` at a steady rate; every `rotate_every` it rotates the
/// file, by rename and by copytruncate in turn (as logrotate does, between two writes).
struct Writer {
    stop: Arc<AtomicBool>,
    written: Arc<AtomicUsize>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    fn start(logs: &Path, per_tick: usize, rotate_every: Duration) -> Writer {
        let (stop, written) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
        let (s, w, logs) = (stop.clone(), written.clone(), logs.to_path_buf());
        let handle = std::thread::spawn(move || {
            let path = logs.join("app.log");
            let mut last_rotation = Instant::now();
            let mut rotations = 0u32;
            while !s.load(Ordering::Relaxed) {
                let n = w.load(Ordering::Relaxed);
                let text: String = (n..n + per_tick).map(record).collect();
                let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&path).unwrap();
                f.write_all(text.as_bytes()).unwrap();
                drop(f);
                w.store(n + per_tick, Ordering::Relaxed);
                if last_rotation.elapsed() >= rotate_every {
                    rotations += 1;
                    let rotated = logs.join(format!("app.log.{rotations}"));
                    if !rotations.is_multiple_of(2) {
                        std::fs::rename(&path, &rotated).unwrap();
                    } else {
                        std::fs::copy(&path, &rotated).unwrap();
                        std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(0).unwrap();
                    }
                    last_rotation = Instant::now();
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        Writer { stop, written, handle: Some(handle) }
    }

    /// Stop writing; returns how many records were written.
    fn finish(mut self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().unwrap().join().unwrap();
        self.written.load(Ordering::Relaxed)
    }
}

/// How often each record arrived at one sink, and anything else that did.
#[derive(Default)]
struct Tally(HashMap<usize, usize>, Vec<String>);

impl Tally {
    fn add(&mut self, message: &str) {
        match number(message) {
            Some(n) => *self.0.entry(n).or_default() += 1,
            None => self.1.push(message.to_string()),
        }
    }
    fn missing(&self, total: usize) -> Vec<usize> {
        (0..total).filter(|n| !self.0.contains_key(n)).collect()
    }
    fn duplicated(&self) -> usize {
        self.0.values().map(|c| c - 1).sum()
    }
}

fn file_tally(out: &Path) -> Tally {
    let mut t = Tally::default();
    for e in read_events(out) {
        let m = e["message"].as_str().unwrap();
        assert!(!m.contains("@example.com"), "an address left unmasked: {m}");
        t.add(m);
    }
    t
}

fn s3_tally(m: &Moto) -> Tally {
    let mut t = Tally::default();
    for key in m.keys("logs") {
        for e in events_of(&m.get("logs", &key), &key) {
            t.add(e["message"].as_str().unwrap());
            if e["message"] == "" {
                eprintln!("s3 empty: {e}");
            }
        }
    }
    t
}

fn loki_tally(rx: &Receiver) -> Tally {
    let mut t = Tally::default();
    for e in rx.entries() {
        let v: serde_json::Value = serde_json::from_str(&e.2).unwrap();
        t.add(v["message"].as_str().unwrap());
    }
    t
}

/// The pipeline under test; `file_path` is where the file sink writes.
fn config(dir: &Path, api: u16, file_path: &Path, moto_port: u16, loki_port: u16) -> String {
    format!(
        "{}[pipeline]\nbatch_max_events = 500\ndrain_timeout = \"60s\"\n\
         [sources.app]\ntype = \"file\"\ninclude = [\"{}/logs/*.log\"]\npoll_interval = \"20ms\"\nscan_interval = \"100ms\"\nrotate_wait = \"2s\"\n\
         [transforms.p]\ntype = \"parse\"\ninputs = [\"app\"]\nformat = \"{{level}} {{message}}\"\n\
         [transforms.m]\ntype = \"mask\"\ninputs = [\"p\"]\ndetectors = [\"email\"]\nmode = \"redact\"\n\
         [sinks.out]\ntype = \"file\"\ninputs = [\"m\"]\npath = \"{}\"\n\
         [sinks.archive]\ntype = \"s3\"\ninputs = [\"m\"]\nbucket = \"logs\"\nendpoint = \"http://127.0.0.1:{moto_port}\"\nkey_template = \"logs/{{instance}}-{{seq}}.ndjson.zst\"\nmax_age = \"1s\"\nrequest_timeout = \"2s\"\nbuffer = {{ type = \"disk\", max_bytes = \"256MiB\" }}\n\
         [sinks.loki]\ntype = \"loki\"\ninputs = [\"m\"]\nendpoint = \"http://127.0.0.1:{loki_port}\"\nlabels = {{ app = \"faults\" }}\nbatch_max_wait = \"200ms\"\nbuffer = {{ type = \"disk\", max_bytes = \"256MiB\" }}\n",
        header(dir, Some(api)),
        dir.display(),
        file_path.display()
    )
}

/// Peak RSS of a running sluice, sampled every 100 ms while `until` is false.
fn peak_rss_while(s: &Sluice, mut until: impl FnMut() -> bool, timeout: Duration) -> (u64, bool) {
    let end = Instant::now() + timeout;
    let mut peak = 0;
    while Instant::now() < end {
        peak = peak.max(s.rss_kib());
        if until() {
            return (peak, true);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    (peak, false)
}

/// sluice's warnings and errors, for the record of a run.
fn warnings(s: &Sluice) {
    for l in s.stderr().lines().filter(|l| l.contains("\"level\":\"WARN\"") || l.contains("\"level\":\"ERROR\"")) {
        eprintln!("sluice: {l}");
    }
}

struct Report {
    name: &'static str,
    written: usize,
    per_sink: Vec<(&'static str, Tally)>,
    peak_rss_kib: u64,
    drain: Duration,
}

impl Report {
    fn check(&self) {
        let mut lost = Vec::new();
        for (sink, t) in &self.per_sink {
            let missing = t.missing(self.written);
            eprintln!(
                "{}: sink {sink}: records in {}, lost {}, duplicated {}",
                self.name,
                self.written,
                missing.len(),
                t.duplicated()
            );
            if !missing.is_empty() {
                lost.push(format!("{sink}: {} lost, first {:?}", missing.len(), &missing[..missing.len().min(5)]));
            }
            if !t.1.is_empty() {
                lost.push(format!(
                    "{sink}: {} events that were never written, first {:?}",
                    t.1.len(),
                    &t.1[..t.1.len().min(3)]
                ));
            }
        }
        eprintln!(
            "{}: peak RSS {:.1} MiB, drained in {:.1} s",
            self.name,
            self.peak_rss_kib as f64 / 1024.0,
            self.drain.as_secs_f64()
        );
        assert!(lost.is_empty(), "{}: records lost: {}", self.name, lost.join("; "));
    }
}

/// Everything each sink holds once all of them have every record (or the timeout).
fn wait_for_all(
    s: &Sluice,
    written: usize,
    out: &dyn Fn() -> Tally,
    m: &Moto,
    rx: &Receiver,
    timeout: Duration,
) -> (u64, Duration) {
    let t0 = Instant::now();
    let complete = || {
        out().missing(written).is_empty() && loki_tally(rx).missing(written).is_empty() && {
            // Reading the bucket is the slow part: only once the others are complete.
            s3_tally(m).missing(written).is_empty()
        }
    };
    let (peak, _) = peak_rss_while(s, complete, timeout);
    (peak, t0.elapsed())
}

/// 20 `kill -9`s at random moments of a run with rotation; the Loki receiver refuses
/// pushes for the first third, so its disk buffer holds data across several kills.
#[test]
fn twenty_kill9s_with_rotation_and_disk_buffers_lose_nothing() {
    let Some(m) = Moto::start() else { return };
    m.create_bucket("logs");
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let out = dir.path().join("out");
    let (api, loki_port) = (free_port(), free_port());
    let rx = Receiver::start(loki_port, vec![]);
    rx.set_available(false);
    let cfg = config(dir.path(), api, &out.join("events.ndjson"), m.port, loki_port);
    let writer = Writer::start(&logs, 100, Duration::from_secs(2));
    let mut peak = 0;
    for kill in 0..20 {
        if kill == 7 {
            rx.set_available(true);
        }
        let s = Sluice::start_with_env(dir.path(), &cfg, &aws_env());
        let up = Duration::from_millis(300 + rand_u64() % 1200);
        let (p, _) = peak_rss_while(&s, || false, up);
        peak = peak.max(p);
        s.kill9();
    }
    let written = writer.finish();
    let s = Sluice::start_with_env(dir.path(), &cfg, &aws_env());
    let (p, drain) = wait_for_all(&s, written, &|| file_tally(&out), &m, &rx, Duration::from_secs(180));
    let mut s = s;
    assert_eq!(s.terminate(Duration::from_secs(60)), 0, "{}", s.stderr());
    warnings(&s);
    let report = Report {
        name: "20 x kill -9",
        written,
        per_sink: vec![("file", file_tally(&out)), ("s3", s3_tally(&m)), ("loki", loki_tally(&rx))],
        peak_rss_kib: peak.max(p),
        drain,
    };
    report.check();
}

/// A FIFO reader that stops reading while `paused` (a file sink whose disk hangs).
struct FifoReader {
    paused: Arc<AtomicBool>,
    messages: Arc<Mutex<Vec<String>>>,
}

impl FifoReader {
    fn start(fifo: PathBuf) -> FifoReader {
        let paused = Arc::new(AtomicBool::new(false));
        let messages: Arc<Mutex<Vec<String>>> = Arc::default();
        let (p, m) = (paused.clone(), messages.clone());
        std::thread::spawn(move || {
            let f = std::fs::File::open(&fifo).unwrap();
            let mut r = std::io::BufReader::with_capacity(64 * 1024, f);
            let mut line = String::new();
            loop {
                while p.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                line.clear();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                let v: serde_json::Value = serde_json::from_str(&line).unwrap();
                m.lock().unwrap().push(v["message"].as_str().unwrap().to_string());
            }
        });
        FifoReader { paused, messages }
    }
    fn tally(&self) -> Tally {
        let mut t = Tally::default();
        for msg in self.messages.lock().unwrap().iter() {
            t.add(msg);
        }
        t
    }
}

/// Each sink down for 30 s while input keeps coming and rotating: Loki answers 503,
/// S3 stops answering (SIGSTOP), the file sink's reader stops reading; staggered, so
/// that two are down at once part of the time.
#[test]
fn each_sink_down_for_30s_loses_nothing_with_memory_bounded() {
    let Some(m) = Moto::start() else { return };
    m.create_bucket("logs");
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let fifo = dir.path().join("out.ndjson");
    mkfifo(&fifo);
    let (api, loki_port) = (free_port(), free_port());
    let rx = Receiver::start(loki_port, vec![]);
    let cfg = config(dir.path(), api, &fifo, m.port, loki_port);
    let mut s = Sluice::start_with_env(dir.path(), &cfg, &aws_env());
    let file = FifoReader::start(fifo);
    let writer = Writer::start(&logs, 100, Duration::from_secs(3));
    let t0 = Instant::now();
    let at = |secs: u64| {
        let until = t0 + Duration::from_secs(secs);
        let now = Instant::now();
        if until > now {
            std::thread::sleep(until - now);
        }
    };
    let mut peak = 0;
    let mut sample = |s: &Sluice, secs: u64| {
        let (p, _) =
            peak_rss_while(s, || false, (t0 + Duration::from_secs(secs)).saturating_duration_since(Instant::now()));
        peak = peak.max(p);
    };
    sample(&s, 3);
    rx.set_available(false); // Loki down 3 s .. 33 s
    sample(&s, 13);
    m.signal(libc::SIGSTOP); // S3 down 13 s .. 43 s
    sample(&s, 33);
    rx.set_available(true);
    sample(&s, 35);
    file.paused.store(true, Ordering::Relaxed); // file sink held 35 s .. 65 s
    sample(&s, 43);
    m.signal(libc::SIGCONT);
    sample(&s, 65);
    file.paused.store(false, Ordering::Relaxed);
    let all_up = Instant::now();
    at(66);
    let written = writer.finish();
    let (p, _) = wait_for_all(&s, written, &|| file.tally(), &m, &rx, Duration::from_secs(180));
    // From the moment the last sink came back.
    let drain = all_up.elapsed();
    assert_eq!(s.terminate(Duration::from_secs(60)), 0, "{}", s.stderr());
    warnings(&s);
    let report = Report {
        name: "each sink down 30 s",
        written,
        per_sink: vec![("file", file.tally()), ("s3", s3_tally(&m)), ("loki", loki_tally(&rx))],
        peak_rss_kib: peak.max(p),
        drain,
    };
    report.check();
    for (sink, t) in &report.per_sink {
        assert_eq!(t.duplicated(), 0, "{sink}: no crash, so no duplicates");
    }
    // The documented bound (README, BENCHMARKS.md): the memory buffers are bounded in
    // bytes, the disk buffers hold the rest on disk and the input waits in its files.
    assert!(peak.max(p) < 100 * 1024, "peak RSS {} KiB under an outage", peak.max(p));
}
