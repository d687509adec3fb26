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
