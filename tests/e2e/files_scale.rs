//! The file source with thousands of files under a small descriptor limit: 10,000 files
//! of 20 lines, sluice started with soft and hard `RLIMIT_NOFILE` of 1024 (then 128), so
//! it cannot raise it: every line is delivered exactly once, then 500 files are
//! appended to while the rest stay quiet, then 100 are rotated (appended, renamed,
//! recreated).

use crate::harness::*;
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

const FILES: usize = 10_000;
const LINES: usize = 20;

fn start_limited(dir: &Path, config: &str, limit: u64) -> Sluice {
    use std::os::unix::process::CommandExt;
    let cfg = dir.join("sluice.toml");
    std::fs::write(&cfg, config).unwrap();
    let stderr_path = dir.join("stderr.log");
    let mut cmd = sluice();
    cmd.args(["run", "--config", cfg.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).unwrap());
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let r = libc::rlimit { rlim_cur: limit as libc::rlim_t, rlim_max: limit as libc::rlim_t };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &r) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Sluice { child: cmd.spawn().unwrap(), stderr_path }
}

/// How many times each message is in the NDJSON output.
fn counts(out: &Path) -> HashMap<String, usize> {
    let mut c = HashMap::new();
    for line in std::fs::read_to_string(out).unwrap().lines() {
        let e: serde_json::Value = serde_json::from_str(line).unwrap();
        *c.entry(e["message"].as_str().unwrap().to_string()).or_default() += 1;
    }
    c
}

fn run_at_limit(limit: u64) {
    let _disk = disk_heavy();
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let name = |i: usize| logs.join(format!("f{i:05}.log"));
    for i in 0..FILES {
        let mut text = String::with_capacity(LINES * 24);
        for j in 0..LINES {
            text.push_str(&format!("file {i} line {j}\n"));
        }
        std::fs::write(name(i), text).unwrap();
    }
    let out = dir.path().join("out.ndjson");
    let api = free_port();
    let cfg = format!(
        "{}[pipeline]\nbatch_max_events = 1000\n[sources.app]\ntype = \"file\"\ninclude = [\"{}/*.log\"]\n\
         [sinks.out]\ntype = \"file\"\ninputs = [\"app\"]\npath = \"{}\"\n",
        header(dir.path(), Some(api)),
        logs.display(),
        out.display()
    );
    let mut s = start_limited(dir.path(), &cfg, limit);
    let total = |c: &HashMap<String, usize>| c.values().sum::<usize>();
    let mut expected = FILES * LINES;
    let arrived = wait_until(Duration::from_secs(180), || count_lines(&out) >= expected as u64);
    assert!(arrived, "limit {limit}: {} of {expected} lines; stderr:\n{}", count_lines(&out), tail(&s.stderr()));

    // The descriptors open by sluice stayed within the limit and the budget was used.
    let (_, metrics) = http_get(api, "/metrics", None).expect("metrics");
    let open: f64 = metric_value(&metrics, "sluice_files_open");
    let watched: f64 = metric_value(&metrics, "sluice_files_watched");
    let fd_limit: f64 = metric_value(&metrics, "sluice_file_descriptors_limit");
    assert_eq!(fd_limit, limit as f64, "{metrics}");
    assert!(open >= 1.0 && open <= (limit - sluice_sources::fds::reserve_for(limit)) as f64, "open {open}");
    assert_eq!(watched, FILES as f64);

    // 500 files written to while the other 9,500 stay quiet.
    for i in (0..FILES).step_by(FILES / 500) {
        let mut f = std::fs::OpenOptions::new().append(true).open(name(i)).unwrap();
        for j in LINES..LINES + 3 {
            writeln!(f, "file {i} line {j}").unwrap();
        }
    }
    expected += 500 * 3;
    let arrived = wait_until(Duration::from_secs(60), || count_lines(&out) >= expected as u64);
    assert!(arrived, "limit {limit}: appends: {} of {expected}; stderr:\n{}", count_lines(&out), tail(&s.stderr()));

    // 100 rotated: a last line in the old file, renamed out of the glob, a new file.
    for i in (0..FILES).step_by(FILES / 100) {
        let p = name(i);
        writeln!(std::fs::OpenOptions::new().append(true).open(&p).unwrap(), "file {i} line before rotation").unwrap();
        std::fs::rename(&p, p.with_extension("log.1")).unwrap();
        std::fs::write(&p, format!("file {i} new line 0\nfile {i} new line 1\n")).unwrap();
    }
    expected += 100 * 3;
    let arrived = wait_until(Duration::from_secs(60), || count_lines(&out) >= expected as u64);
    assert!(arrived, "limit {limit}: rotation: {} of {expected}; stderr:\n{}", count_lines(&out), tail(&s.stderr()));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(s.terminate(Duration::from_secs(60)), 0, "{}", tail(&s.stderr()));

    let c = counts(&out);
    let dups: Vec<_> = c.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(dups.is_empty(), "limit {limit}: duplicated: {dups:?}");
    assert_eq!(total(&c), expected, "limit {limit}: every line once");
    for i in (0..FILES).step_by(FILES / 100) {
        for m in [format!("file {i} line before rotation"), format!("file {i} new line 1"), format!("file {i} line 0")]
        {
            assert_eq!(c.get(&m), Some(&1), "{m}");
        }
    }
    let err = s.stderr();
    assert!(!err.contains("Too many open files"), "{}", tail(&err));
}

fn count_lines(p: &Path) -> u64 {
    std::fs::read(p).map(|b| b.iter().filter(|&&c| c == b'\n').count() as u64).unwrap_or(0)
}

fn metric_value(body: &str, name: &str) -> f64 {
    body.lines()
        .find(|l| l.starts_with(name) && !l.starts_with('#'))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(-1.0)
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

#[test]
fn ten_thousand_files_under_a_limit_of_1024() {
    run_at_limit(1024);
}

#[test]
fn ten_thousand_files_under_a_limit_of_128() {
    run_at_limit(128);
}

/// `ignore_older` skips files not written for that long (until they are written again);
/// compressed rotated archives matched by the glob are never read; with `watch = false`
/// files are polled and still read.
#[test]
fn old_and_compressed_files_are_skipped_and_polling_still_reads() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::write(logs.join("fresh.log"), "fresh 1\n").unwrap();
    std::fs::write(logs.join("old.log"), "old 1\n").unwrap();
    let ten_days = std::time::SystemTime::now() - Duration::from_secs(10 * 86_400);
    std::fs::File::options().write(true).open(logs.join("old.log")).unwrap().set_modified(ten_days).unwrap();
    // A gzip member holding "zipped 1\n" (what logrotate leaves as app.log.1.gz).
    std::fs::write(
        logs.join("app.log.1.gz"),
        b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\xab\xca,(HM\x51\x30\xe4\x02\x00\x9b\x8f\x0e\x6a\x09\x00\x00\x00",
    )
    .unwrap();
    let out = dir.path().join("out.ndjson");
    let cfg = format!(
        "{}[sources.app]\ntype = \"file\"\ninclude = [\"{}/*\"]\nignore_older = \"7d\"\nwatch = false\n\
         [sinks.out]\ntype = \"file\"\ninputs = [\"app\"]\npath = \"{}\"\n",
        header(dir.path(), None),
        logs.display(),
        out.display()
    );
    let mut s = Sluice::start(dir.path(), &cfg);
    assert!(wait_until(Duration::from_secs(10), || count_lines(&out) >= 1), "{}", s.stderr());
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(counts(&out).keys().cloned().collect::<Vec<_>>(), ["fresh 1"]);
    // Written again, the old file is read (from its start: it has no checkpoint); a
    // polled append to the fresh one arrives too.
    writeln!(std::fs::OpenOptions::new().append(true).open(logs.join("old.log")).unwrap(), "old 2").unwrap();
    writeln!(std::fs::OpenOptions::new().append(true).open(logs.join("fresh.log")).unwrap(), "fresh 2").unwrap();
    assert!(wait_until(Duration::from_secs(10), || count_lines(&out) >= 4), "{}", s.stderr());
    assert_eq!(s.terminate(Duration::from_secs(20)), 0);
    let mut got: Vec<String> = counts(&out).into_keys().collect();
    got.sort();
    assert_eq!(got, ["fresh 1", "fresh 2", "old 1", "old 2"]);
}
