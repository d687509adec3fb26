//! File source at scale: idle cost and latency with many quiet files.
//!
//! ```text
//! cargo build --release -p sluice-pipeline -p sluice-benches
//! target/release/files-bench [--files 10000] [--seconds 60] [--probes 50] [--watch true|false|default] [--warmup 2]
//! ```
//! Creates `--files` files of 20 lines, starts sluice (file source → NDJSON file) and
//! waits until everything is read (and `--warmup` seconds more). Then, for `--seconds`,
//! the files stay quiet: prints the CPU seconds sluice used (as % of one core). Then,
//! over another `--seconds`, `--probes` single lines are appended to random files at
//! even intervals: prints the write-to-output latency of the probes (p50, p99, max),
//! found by polling the output every 0.5 ms.

use std::io::{Read, Seek, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "util.rs"]
mod util;
use util::{arg, cpu_seconds};

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let sluice = PathBuf::from(arg("--sluice", root.join("target/release/sluice").to_str().unwrap()));
    let files: usize = arg("--files", "10000").parse().unwrap();
    let seconds: f64 = arg("--seconds", "60").parse().unwrap();
    let probes: usize = arg("--probes", "50").parse().unwrap();
    let watch = arg("--watch", "true");
    let dir = root.join("target/bench-out/files");
    let _ = std::fs::remove_dir_all(&dir);
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    for i in 0..files {
        let text: String = (0..20).map(|j| format!("file {i} line {j}\n")).collect();
        std::fs::write(logs.join(format!("f{i:05}.log")), text).unwrap();
    }
    let out = dir.join("out.ndjson");
    // `--watch default` leaves the option out (for builds that predate it).
    let watch_line = if watch == "default" { String::new() } else { format!("watch = {watch}\n") };
    let cfg = format!(
        "data_dir = \"{0}/data\"\n[api]\nenabled = false\n[sources.app]\ntype = \"file\"\ninclude = [\"{1}/*.log\"]\n{watch_line}\
         [sinks.out]\ntype = \"file\"\ninputs = [\"app\"]\npath = \"{2}\"\n",
        dir.display(),
        logs.display(),
        out.display()
    );
    std::fs::write(dir.join("bench.toml"), cfg).unwrap();
    /// Kills sluice when the driver ends, panics included.
    struct Guard(std::process::Child);
    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let child = Command::new(&sluice)
        .args(["run", "--config"])
        .arg(dir.join("bench.toml"))
        .env("SLUICE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sluice");
    let pid = child.id();
    let child = Guard(child);
    let want = (files * 20) as u64;
    let t0 = Instant::now();
    let lines = |p: &PathBuf| std::fs::read(p).map(|b| b.iter().filter(|&&c| c == b'\n').count() as u64).unwrap_or(0);
    while lines(&out) < want {
        assert!(t0.elapsed() < Duration::from_secs(300), "catch-up took over 5 min");
        std::thread::sleep(Duration::from_millis(100));
    }
    let catch_up = t0.elapsed();
    let open_fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0);
    // `--warmup 70` starts the window after close_idle (1 min) closed the quiet files.
    let warmup: f64 = arg("--warmup", "2").parse().unwrap();
    std::thread::sleep(Duration::from_secs_f64(warmup));
    let open_at_window = std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0);
    // The quiet window, with probes.
    let mut reader = std::fs::File::open(&out).unwrap();
    let mut pos = reader.seek(std::io::SeekFrom::End(0)).unwrap();
    // Quiet: nothing is written for `--seconds`.
    let q0 = cpu_seconds(pid);
    std::thread::sleep(Duration::from_secs_f64(seconds));
    let quiet_cpu = cpu_seconds(pid) - q0;
    // Then the probes, over another `--seconds`.
    let cpu0 = cpu_seconds(pid);
    let w0 = Instant::now();
    let gap = Duration::from_secs_f64(seconds / probes.max(1) as f64);
    let mut lat = Vec::new();
    let mut state = 0x9e3779b97f4a7c15u64;
    let mut buf = Vec::new();
    for n in 0..probes {
        std::thread::sleep(gap.saturating_sub(Duration::from_millis(1)));
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let f = logs.join(format!("f{:05}.log", state as usize % files));
        let marker = format!("probe {n} end");
        let sent = Instant::now();
        writeln!(std::fs::OpenOptions::new().append(true).open(&f).unwrap(), "{marker}").unwrap();
        loop {
            buf.clear();
            reader.seek(std::io::SeekFrom::Start(pos)).unwrap();
            reader.read_to_end(&mut buf).unwrap();
            if let Some(i) = buf.windows(marker.len()).position(|w| w == marker.as_bytes()) {
                lat.push(sent.elapsed());
                let nl = buf[i..].iter().position(|&c| c == b'\n').map_or(buf.len(), |k| i + k + 1);
                pos += nl as u64;
                break;
            }
            assert!(sent.elapsed() < Duration::from_secs(30), "probe {n} not delivered in 30 s");
            std::thread::sleep(Duration::from_micros(500));
        }
    }
    let window = w0.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu0;
    drop(child);
    lat.sort();
    let q = |p: f64| lat[((lat.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1000.0;
    println!(
        "{files} files (watch = {watch}): catch-up {:.1} s; {open_fds} descriptors open after it, {open_at_window} when the quiet window starts ({warmup} s later); quiet {seconds} s: sluice CPU {quiet_cpu:.2} s = {:.2}% of a core; then {} probes in {window:.0} s: CPU {cpu:.2} s ({:.1} ms per delivered line, checkpoint fsyncs included), latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        catch_up.as_secs_f64(),
        quiet_cpu / seconds * 100.0,
        lat.len(),
        cpu * 1000.0 / lat.len().max(1) as f64,
        q(0.5),
        q(0.99),
        q(1.0),
    );
}
