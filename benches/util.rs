//! Helpers the benchmark drivers share: arguments, ports, sluice's `/metrics`, CPU time.
// Each driver uses a subset.
#![allow(dead_code)]

use std::io::{Read, Write};

/// The value after `name` on the command line, or `default`.
pub fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned()).unwrap_or_else(|| default.to_string())
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One series of sluice's `/metrics` (the line with `component="…"`).
pub fn metric(api: u16, name: &str, component: &str) -> Option<u64> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", api)).ok()?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    let want = format!("component=\"{component}\"");
    body.lines()
        .find(|l| l.starts_with(name) && l.contains(&want))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
}

/// User plus system CPU seconds of a running process so far.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // utime and stime are fields 14 and 15 (1-based), 11 and 12 after the `)`.
    let f: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// User plus system CPU seconds of every child process waited for so far.
pub fn children_cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Lines in a file (the NDJSON output: one per event).
pub fn count_lines(path: &std::path::Path) -> u64 {
    std::fs::read(path).map(|t| t.iter().filter(|&&b| b == b'\n').count() as u64).unwrap_or(0)
}

/// `median X msgs/s (min A, max B); sluice CPU median C s` of the runs.
pub fn rate_summary(mut rates: Vec<f64>, mut cpus: Vec<f64>) -> String {
    rates.sort_by(|a, b| a.partial_cmp(b).unwrap());
    cpus.sort_by(|a, b| a.partial_cmp(b).unwrap());
    format!(
        "median {:.0} msgs/s (min {:.0}, max {:.0}); sluice CPU median {:.2} s",
        rates[rates.len() / 2],
        rates[0],
        rates[rates.len() - 1],
        cpus[cpus.len() / 2]
    )
}

/// The `[sinks.out]` body for `--sink blackhole|file` (the file under `out`).
pub fn sink_config(sink: &str, out: &std::path::Path) -> String {
    match sink {
        "blackhole" => "type = \"blackhole\"".to_string(),
        _ => format!("type = \"file\"\npath = \"{}/out.ndjson\"", out.display()),
    }
}

/// The corpus driver arguments: (repository root, corpus dir, sluice binary, runs).
pub fn corpus_args() -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf, usize) {
    use std::path::PathBuf;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let corpus = PathBuf::from(arg("--corpus", root.join("target/bench-data/seed7-1G").to_str().unwrap()));
    let sluice = PathBuf::from(arg("--sluice", root.join("target/release/sluice").to_str().unwrap()));
    let runs: usize = arg("--runs", "3").parse().unwrap();
    (root, corpus, sluice, runs)
}

/// The `.log` files of the corpus; `None` (and a SKIP line) when there are none.
pub fn corpus_files(corpus: &std::path::Path) -> Option<Vec<std::path::PathBuf>> {
    let files: Vec<std::path::PathBuf> = std::fs::read_dir(corpus)
        .map(|rd| rd.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "log")).collect())
        .unwrap_or_default();
    if files.is_empty() {
        println!("SKIP: no corpus in {} (run e2e-bench once to generate it)", corpus.display());
        return None;
    }
    Some(files)
}

/// Run `sluice run --config CFG` to completion with `env`; returns (wall seconds, CPU
/// seconds of sluice). Panics with its stderr if it fails.
pub fn run_sluice(sluice: &std::path::Path, cfg: &std::path::Path, env: &[(&str, &str)]) -> (f64, f64) {
    use std::process::{Command, Stdio};
    let t = std::time::Instant::now();
    let cpu_before = children_cpu_seconds();
    let st = Command::new(sluice)
        .args(["run", "--config"])
        .arg(cfg)
        .env("SLUICE_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("sluice");
    let secs = t.elapsed().as_secs_f64();
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
    (secs, children_cpu_seconds() - cpu_before)
}

/// Wait until sluice (its API on `api`) has taken `n` events into sink `out`, then stop
/// it with SIGTERM (it must exit 0) and, for a file sink, check one line per event in
/// `dir/out.ndjson`. Returns (events/s since `started`, sluice's CPU seconds).
pub fn finish_run(
    mut child: std::process::Child,
    api: u16,
    n: u64,
    started: std::time::Instant,
    sink: &str,
    dir: &std::path::Path,
) -> (f64, f64) {
    use std::time::Duration;
    while metric(api, "sluice_events_in_total", "out").unwrap_or(0) < n {
        assert!(started.elapsed() < Duration::from_secs(300), "messages missing");
        std::thread::sleep(Duration::from_millis(2));
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(child.id());
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(child.wait().unwrap().code(), Some(0), "sluice exit");
    if sink == "file" {
        assert_eq!(count_lines(&dir.join("out.ndjson")), n, "one line per message");
    }
    (n as f64 / secs, cpu)
}
