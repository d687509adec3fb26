use crate::harness::*;
use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn line(tag: &str, i: usize) -> String {
    // Varying lengths, unique content.
    format!("{tag} line {i:07} {}", "x".repeat(20 + i % 90))
}

fn append(path: &Path, tag: &str, range: std::ops::Range<usize>) {
    let mut f = OpenOptions::new().create(true).append(true).open(path).unwrap();
    let mut buf = String::new();
    for i in range {
        buf.push_str(&line(tag, i));
        buf.push('\n');
        if buf.len() > 64 * 1024 {
            f.write_all(buf.as_bytes()).unwrap();
            buf.clear();
        }
    }
    f.write_all(buf.as_bytes()).unwrap();
}

/// copytruncate as logrotate does it: copy, then truncate in place.
fn copytruncate(path: &Path, copy: &Path) {
    std::fs::copy(path, copy).unwrap();
    OpenOptions::new().write(true).open(path).unwrap().set_len(0).unwrap();
}

fn file_config(dir: &Path, out: &Path, extra: &str) -> String {
    format!(
        "{}[pipeline]\nbatch_max_bytes = 65536\nbatch_max_events = 500\n[sources.app]\ntype = \"file\"\ninclude = [\"{}/logs/*.log\"]\nscan_interval = \"100ms\"\nrotate_wait = \"1s\"\n{extra}\n[sinks.out]\ntype = \"file\"\ninputs = [\"app\"]\npath = \"{}/out.ndjson\"\n",
        header(dir, None),
        dir.display(),
        out.display()
    )
}

fn expected(tag: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| line(tag, i)).collect()
}

fn assert_exactly_once(counts: &HashMap<String, usize>, want: &[String]) {
    let missing: Vec<&String> = want.iter().filter(|l| !counts.contains_key(*l)).collect();
    let dups: Vec<(&String, &usize)> = counts.iter().filter(|(_, c)| **c > 1).collect();
    assert!(missing.is_empty(), "{} lines missing, first: {:?}", missing.len(), missing.first());
    assert!(dups.is_empty(), "{} lines duplicated, e.g. {:?}", dups.len(), dups.first());
    assert_eq!(counts.len(), want.len(), "unexpected extra lines");
}

fn wait_for_all(out: &Path, n: usize, s: &Sluice) {
    let ok = wait_until(Duration::from_secs(60), || message_counts(out).len() >= n);
    assert!(ok, "only {} of {n} lines arrived; stderr:\n{}", message_counts(out).len(), s.stderr());
}

/// Collects the messages a sluice file sink writes into a FIFO; slow while `slow`
/// is set, so that sluice's reader falls behind the writer.
struct FifoCollector {
    slow: Arc<AtomicBool>,
    lines: Arc<Mutex<Vec<String>>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl FifoCollector {
    fn start(fifo: PathBuf) -> FifoCollector {
        let slow = Arc::new(AtomicBool::new(true));
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let (s2, l2) = (slow.clone(), lines.clone());
        let handle = std::thread::spawn(move || {
            let f = std::fs::File::open(&fifo).unwrap();
            let mut r = std::io::BufReader::with_capacity(16 * 1024, f);
            let mut buf = String::new();
            let mut n = 0u64;
            loop {
                buf.clear();
                if r.read_line(&mut buf).unwrap() == 0 {
                    return;
                }
                let v: serde_json::Value = serde_json::from_str(&buf).unwrap();
                l2.lock().unwrap().push(v["message"].as_str().unwrap().to_string());
                n += 1;
                if n.is_multiple_of(40) && s2.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        });
        FifoCollector { slow, lines, handle: Some(handle) }
    }
    fn count(&self) -> usize {
        self.lines.lock().unwrap().len()
    }
    fn finish(mut self) -> HashMap<String, usize> {
        self.handle.take().unwrap().join().unwrap();
        let mut m = HashMap::new();
        for l in self.lines.lock().unwrap().iter() {
            *m.entry(l.clone()).or_default() += 1;
        }
        m
    }
}

fn unread_bytes(port: u16) -> u64 {
    let (_, body) = http_get(port, "/api/v1/status", None).expect("status");
    let st: serde_json::Value = serde_json::from_str(&body).unwrap();
    st["components"][0]["unread_bytes"].as_u64().unwrap()
}

/// Rename rotation and copytruncate, each done repeatedly while the writer is busy and
/// files are closed between writes (`close_idle = "5ms"`), while
/// the reader is behind (its sink is slow): every line arrives exactly once.
#[test]
fn rotation_while_writing_loses_and_duplicates_nothing() {
    let _disk = disk_heavy();
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let fifo = dir.path().join("out.ndjson");
    mkfifo(&fifo);
    let a = logs.join("a.log");
    append(&a, "T", 0..1000);
    let port = free_port();
    let cfg = format!(
        "{}[pipeline]\nbatch_max_bytes = 65536\nbatch_max_events = 500\nbuffer_batches = 2\n[sources.app]\ntype = \"file\"\ninclude = [\"{}/*.log\"]\nscan_interval = \"100ms\"\nrotate_wait = \"1s\"\nclose_idle = \"5ms\"\n[sinks.out]\ntype = \"file\"\ninputs = [\"app\"]\npath = \"{}\"\n",
        header(dir.path(), Some(port)),
        logs.display(),
        fifo.display()
    );
    let mut s = Sluice::start(dir.path(), &cfg);
    let collector = FifoCollector::start(fifo);
    assert!(wait_until(Duration::from_secs(10), || http_get(port, "/health/ready", None).is_some_and(|r| r.0 == 200)));
    let mut next = 1000;
    let mut behind = Vec::new();
    for round in 0..6 {
        append(&a, "T", next..next + 20_000);
        next += 20_000;
        std::thread::sleep(Duration::from_millis(50));
        behind.push(unread_bytes(port));
        if round % 2 == 0 {
            let rotated = logs.join(format!("a.log.{round}"));
            std::fs::rename(&a, &rotated).unwrap();
            // The application still writes a little to its old descriptor...
            append(&rotated, "T", next..next + 500);
            next += 500;
            // ...then reopens the path.
            append(&a, "T", next..next + 3000);
            next += 3000;
        } else {
            copytruncate(&a, &logs.join(format!("a.log.{round}")));
            append(&a, "T", next..next + 3000);
            next += 3000;
        }
        // Give discovery (every 100 ms) a chance before the next rotation.
        std::thread::sleep(Duration::from_millis(300));
    }
    append(&a, "T", next..next + 1000);
    next += 1000;
    collector.slow.store(false, Ordering::Relaxed);
    let ok = wait_until(Duration::from_secs(90), || collector.count() >= next);
    assert!(ok, "only {} of {next} lines arrived; stderr:\n{}", collector.count(), s.stderr());
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(s.terminate(Duration::from_secs(20)), 0);
    let counts = collector.finish();
    assert_exactly_once(&counts, &expected("T", next));
    // The reader really was behind when the files were rotated.
    assert!(
        behind.iter().all(|&b| b > 0) && behind.iter().any(|&b| b > 1_000_000),
        "unread bytes at rotation: {behind:?}"
    );
    eprintln!("rotation test: unread bytes at each rotation {behind:?}");
}

/// The reader is held back (its sink cannot write) while the file is rotated several
/// times, copytruncate and rename in turn: a file copytruncated and then renamed before
/// the reader got back to it keeps its old content in the copy, which is read; every
/// line arrives exactly once.
#[test]
fn rotations_while_the_reader_is_held_back_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let fifo = dir.path().join("out.ndjson");
    mkfifo(&fifo);
    let a = logs.join("a.log");
    let port = free_port();
    let cfg = format!(
        "{}[pipeline]\nbatch_max_events = 200\nbuffer_batches = 1\n[sources.app]\ntype = \"file\"\ninclude = [\"{}/*.log\"]\nscan_interval = \"50ms\"\nrotate_wait = \"1s\"\n[sinks.out]\ntype = \"file\"\ninputs = [\"app\"]\npath = \"{}\"\n",
        header(dir.path(), Some(port)),
        logs.display(),
        fifo.display()
    );
    let mut s = Sluice::start(dir.path(), &cfg);
    // Nobody reads the FIFO yet: the sink cannot open it and the source is held back.
    let mut next = 0;
    // A file written and copytruncated to a name outside `include` before the reader
    // ever saw it is beyond any tailer: each new file is awaited until it is open (on a
    // loaded machine 200 ms did not always suffice).
    let mut files = 0;
    for round in 1..=8 {
        if !a.exists() {
            files += 1;
        }
        append(&a, "H", next..next + 2_000);
        next += 2_000;
        let seen = wait_until(Duration::from_secs(10), || metric(port, "sluice_files_open", "app") >= files as f64);
        assert!(seen, "file {files} was never opened; stderr:\n{}", s.stderr());
        std::thread::sleep(Duration::from_millis(200));
        let rotated = logs.join(format!("a.log.{round}"));
        if round % 2 == 1 {
            std::fs::rename(&a, &rotated).unwrap();
        } else {
            copytruncate(&a, &rotated);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    append(&a, "H", next..next + 2_000);
    next += 2_000;
    let collector = FifoCollector::start(fifo);
    collector.slow.store(false, Ordering::Relaxed);
    let ok = wait_until(Duration::from_secs(60), || collector.count() >= next);
    assert!(ok, "only {} of {next} lines arrived; stderr:\n{}", collector.count(), s.stderr());
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(s.terminate(Duration::from_secs(20)), 0);
    assert_exactly_once(&collector.finish(), &expected("H", next));
}

/// kill -9 at arbitrary moments (while writing, rotating, and while sluice is down):
/// every line arrives at least once; duplicates stay within about one batch per kill.
#[test]
fn kill9_and_restart_loses_nothing() {
    let _disk = quiet_disk();
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let out = dir.path().join("out");
    let a = logs.join("a.log");
    let b = logs.join("b.log");
    let cfg = file_config(dir.path(), &out, "close_idle = \"5ms\"");
    let mut next_a = 0;
    let mut next_b = 0;
    let mut kills = 0;
    for round in 0..6 {
        let s = Sluice::start(dir.path(), &cfg);
        append(&a, "A", next_a..next_a + 15_000);
        next_a += 15_000;
        append(&b, "B", next_b..next_b + 5_000);
        next_b += 5_000;
        std::thread::sleep(Duration::from_millis(30 + 70 * (round % 3) as u64));
        s.kill9();
        kills += 1;
        // While sluice is down: rotate one way or the other, and keep writing.
        match round {
            1 => {
                std::fs::rename(&a, logs.join("a.log.1")).unwrap();
            }
            3 => copytruncate(&b, &logs.join("b.log.1")),
            4 => {
                std::fs::rename(&a, logs.join("a.log.2")).unwrap();
            }
            _ => {}
        }
        append(&a, "A", next_a..next_a + 2_000);
        next_a += 2_000;
    }
    let mut s = Sluice::start(dir.path(), &cfg);
    wait_for_all(&out, next_a + next_b, &s);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(s.terminate(Duration::from_secs(20)), 0);

    let counts = message_counts(&out);
    let mut want = expected("A", next_a);
    want.extend(expected("B", next_b));
    let missing: Vec<&String> = want.iter().filter(|l| !counts.contains_key(*l)).collect();
    assert!(missing.is_empty(), "{} lines lost, first {:?}", missing.len(), missing.first());
    assert_eq!(counts.len(), want.len());
    let dups: usize = counts.values().map(|c| c - 1).sum();
    // batch_max_events = 500: at most the batch being written plus the one whose
    // checkpoint was not yet saved, per kill.
    assert!(dups <= kills * 2 * 500, "{dups} duplicates after {kills} kills");
    eprintln!("kill -9 test: {kills} kills, {dups} duplicated lines of {}", want.len());
}

/// SIGTERM drains and writes the final checkpoint: a restart reads only new lines.
#[test]
fn sigterm_drains_and_restart_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let out = dir.path().join("out");
    let a = logs.join("a.log");
    append(&a, "S", 0..50_000);
    let cfg = file_config(dir.path(), &out, "");
    let mut s = Sluice::start(dir.path(), &cfg);
    // Terminate while it is still working through the backlog.
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(s.terminate(Duration::from_secs(20)), 0);
    let first = message_counts(&out).len();
    append(&a, "S", 50_000..60_000);
    let mut s = Sluice::start(dir.path(), &cfg);
    wait_for_all(&out, 60_000, &s);
    assert_eq!(s.terminate(Duration::from_secs(20)), 0);
    assert_exactly_once(&message_counts(&out), &expected("S", 60_000));
    eprintln!("SIGTERM after {first} of 50000 lines; restart resumed exactly");
    let cp = std::fs::read_to_string(dir.path().join("data/checkpoints/app.json")).unwrap();
    let size = std::fs::metadata(&a).unwrap().len();
    assert!(cp.contains(&format!("\"offset\": {size}")), "checkpoint should be at EOF {size}: {cp}");
}

/// New files are picked up while running; `exclude` is honoured; `read_from = "end"`
/// skips what existed on the first start only.
#[test]
fn globs_new_files_exclude_and_read_from_end() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let out = dir.path().join("out");
    append(&logs.join("old.log"), "OLD", 0..100);
    let cfg = file_config(dir.path(), &out, "read_from = \"end\"\nexclude = [\"**/debug-*.log\"]");
    let mut s = Sluice::start(dir.path(), &cfg);
    assert!(wait_until(Duration::from_secs(10), || dir.path().join("data/checkpoints/app.json").exists()));
    std::thread::sleep(Duration::from_millis(300));
    append(&logs.join("old.log"), "OLD", 100..150);
    append(&logs.join("new.log"), "NEW", 0..200);
    append(&logs.join("debug-x.log"), "DBG", 0..10);
    wait_for_all(&out, 250, &s);
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(s.terminate(Duration::from_secs(20)), 0);
    let counts = message_counts(&out);
    let mut want: Vec<String> = (100..150).map(|i| line("OLD", i)).collect();
    want.extend(expected("NEW", 200));
    assert_exactly_once(&counts, &want);
    let ev = read_events(&out);
    let e = ev.iter().find(|e| e["message"] == line("NEW", 1).as_str()).unwrap();
    assert_eq!(e["file"], logs.join("new.log").to_str().unwrap());
    assert_eq!(e["offset"], (line("NEW", 0).len() + 1) as u64);
}

/// A sink that cannot keep up (a FIFO nobody reads yet) holds the source back: memory
/// stays bounded, unread bytes are reported, and nothing is dropped.
#[test]
fn slow_sink_backpressure_bounds_memory() {
    let _disk = disk_heavy();
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let fifo = out.join("pipe.ndjson");
    mkfifo(&fifo);
    let n = 400_000; // ~40 MB of input
    append(&logs.join("a.log"), "P", 0..n);
    let port = free_port();
    let cfg = format!(
        "{}[pipeline]\nbuffer_batches = 2\n[sources.app]\ntype = \"file\"\ninclude = [\"{}/*.log\"]\n[sinks.out]\ntype = \"file\"\ninputs = [\"app\"]\npath = \"{}\"\n",
        header(dir.path(), Some(port)),
        logs.display(),
        fifo.display()
    );
    let s = Sluice::start(dir.path(), &cfg);
    std::thread::sleep(Duration::from_millis(1500));
    let rss_blocked = s.rss_kib();
    let (_, status) = http_get(port, "/api/v1/status", None).expect("status");
    let st: serde_json::Value = serde_json::from_str(&status).unwrap();
    let unread = st["components"][0]["unread_bytes"].as_u64().unwrap();
    assert!(unread > 20_000_000, "source should be held back, unread = {unread}");
    assert!(rss_blocked < 100 * 1024, "RSS {rss_blocked} KiB while blocked");
    // Now read the pipe: everything arrives.
    read_lines_from(&mut std::fs::File::open(&fifo).unwrap(), n);
    eprintln!("backpressure: RSS {rss_blocked} KiB while blocked with {unread} bytes unread");
    drop(s);
}

/// A sink outage (the output directory cannot be created) holds data back and
/// retries; when it recovers everything is written, nothing was dropped.
#[test]
fn sink_outage_holds_data_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let blocker = dir.path().join("outdir");
    std::fs::write(&blocker, "a file where the sink wants a directory").unwrap();
    let port = free_port();
    let cfg = format!(
        "{}[sources.app]\ntype = \"file\"\ninclude = [\"{}/*.log\"]\n[sinks.out]\ntype = \"file\"\ninputs = [\"app\"]\npath = \"{}/out.ndjson\"\n",
        header(dir.path(), Some(port)),
        logs.display(),
        blocker.display()
    );
    append(&logs.join("a.log"), "O", 0..5000);
    let mut s = Sluice::start(dir.path(), &cfg);
    let retried = wait_until(Duration::from_secs(10), || {
        http_get(port, "/metrics", None)
            .is_some_and(|(_, b)| b.lines().any(|l| l.starts_with("sluice_sink_retries_total{") && !l.ends_with(" 0")))
    });
    assert!(retried, "no retries reported; stderr:\n{}", s.stderr());
    assert!(s.stderr().contains("holding data and retrying"));
    std::fs::remove_file(&blocker).unwrap();
    std::fs::create_dir(&blocker).unwrap();
    wait_for_all(&blocker, 5000, &s);
    assert_eq!(s.terminate(Duration::from_secs(20)), 0);
    assert_exactly_once(&message_counts(&blocker), &expected("O", 5000));
}

/// Fan-out: the checkpoint advances only when every sink fed by the events has written
/// them. One sink is blocked (a FIFO without a reader), the other writes everything; after
/// kill -9 and a restart with a working second sink, every line reaches it.
#[test]
fn checkpoint_waits_for_every_sink_of_a_fan_out() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let out_f = dir.path().join("out-f");
    let out_p = dir.path().join("out-p");
    std::fs::create_dir_all(&out_p).unwrap();
    let fifo = out_p.join("blocked.fifo");
    mkfifo(&fifo);
    append(&logs.join("a.log"), "F", 0..2000);
    let cfg = |second: &str| {
        format!(
            "{}[sources.app]\ntype = \"file\"\ninclude = [\"{}/*.log\"]\n[sinks.f]\ntype = \"file\"\ninputs = [\"app\"]\npath = \"{}/f.ndjson\"\n[sinks.p]\ntype = \"file\"\ninputs = [\"app\"]\npath = \"{second}\"\n",
            header(dir.path(), None),
            logs.display(),
            out_f.display()
        )
    };
    let s = Sluice::start(dir.path(), &cfg(fifo.to_str().unwrap()));
    wait_for_all(&out_f, 2000, &s);
    std::thread::sleep(Duration::from_millis(500));
    let cp = std::fs::read_to_string(dir.path().join("data/checkpoints/app.json")).unwrap();
    assert!(cp.contains("\"offset\": 0"), "nothing may be checkpointed while sink p has not written: {cp}");
    s.kill9();
    let mut s = Sluice::start(dir.path(), &cfg(out_p.join("p.ndjson").to_str().unwrap()));
    wait_for_all(&out_p, 2000, &s);
    assert_eq!(s.terminate(Duration::from_secs(20)), 0);
    assert_exactly_once(&message_counts(&out_p), &expected("F", 2000));
    // Sink f got everything twice: once per run (at-least-once, never lost).
    assert!(message_counts(&out_f).values().all(|&c| c == 2));
}

/// Fan-in: two sources feed one sink; each event keeps its own origin.
#[test]
fn fan_in_two_sources_one_sink() {
    let dir = tempfile::tempdir().unwrap();
    for d in ["l1", "l2"] {
        std::fs::create_dir_all(dir.path().join(d)).unwrap();
    }
    append(&dir.path().join("l1/a.log"), "X", 0..300);
    append(&dir.path().join("l2/b.log"), "Y", 0..200);
    let out = dir.path().join("out");
    let cfg = format!(
        "{}[sources.one]\ntype = \"file\"\ninclude = [\"{d}/l1/*.log\"]\n[sources.two]\ntype = \"file\"\ninclude = [\"{d}/l2/*.log\"]\n[sinks.all]\ntype = \"file\"\ninputs = [\"one\", \"two\"]\npath = \"{}/{{source}}.ndjson\"\n",
        header(dir.path(), None),
        out.display(),
        d = dir.path().display()
    );
    let mut s = Sluice::start(dir.path(), &cfg);
    wait_for_all(&out, 500, &s);
    assert_eq!(s.terminate(Duration::from_secs(20)), 0);
    let one = std::fs::read_to_string(out.join("one.ndjson")).unwrap();
    let two = std::fs::read_to_string(out.join("two.ndjson")).unwrap();
    assert_eq!(one.lines().count(), 300);
    assert_eq!(two.lines().count(), 200);
    assert!(two.lines().all(|l| l.contains("\"source\":\"two\"")));
}

/// Multiline through the real file source: records are folded, and the last record is
/// flushed by the timeout while sluice keeps running (never held forever).
#[test]
fn multiline_start_pattern_and_timeout_flush() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let out = dir.path().join("out");
    let cfg = file_config(dir.path(), &out, "multiline = { start_pattern = \"^\\\\d{4}-\", timeout = \"1s\" }");
    let a = logs.join("a.log");
    std::fs::write(&a, "2026-01 first\n  detail one\n  detail two\n2026-02 second\n2026-03 third\ncontinued\n")
        .unwrap();
    let mut s = Sluice::start(dir.path(), &cfg);
    // All three records arrive, the last one only through the timeout.
    assert!(wait_until(Duration::from_secs(10), || read_events(&out).len() >= 3), "stderr: {}", s.stderr());
    let ev = read_events(&out);
    let msgs: Vec<&str> = ev.iter().map(|e| e["message"].as_str().unwrap()).collect();
    assert_eq!(msgs, vec!["2026-01 first\n  detail one\n  detail two", "2026-02 second", "2026-03 third\ncontinued"]);
    assert_eq!(ev[1]["offset"], 40);
    // A record in progress is not checkpointed: kill -9 while it is held, restart, and
    // it arrives whole.
    append_raw(&a, "2026-04 fourth\n  part");
    std::thread::sleep(Duration::from_millis(100));
    s.signal(libc::SIGKILL);
    let _ = s.child.wait();
    append_raw(&a, " two\n2026-05 fifth\n");
    let mut s = Sluice::start(dir.path(), &cfg);
    assert!(wait_until(Duration::from_secs(10), || read_events(&out).len() >= 5), "stderr: {}", s.stderr());
    assert_eq!(s.terminate(Duration::from_secs(20)), 0);
    let msgs: Vec<String> = read_events(&out).iter().map(|e| e["message"].as_str().unwrap().to_string()).collect();
    assert!(msgs.contains(&"2026-04 fourth\n  part two".to_string()), "{msgs:?}");
    assert!(msgs.contains(&"2026-05 fifth".to_string()), "{msgs:?}");
}

fn append_raw(path: &Path, text: &str) {
    OpenOptions::new().append(true).open(path).unwrap().write_all(text.as_bytes()).unwrap();
}
