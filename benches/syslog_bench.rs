//! Syslog benchmark: syslog-ng's `loggen` sends messages over TCP to sluice's syslog
//! source, which writes NDJSON to a file (or a blackhole).
//!
//! ```text
//! cargo build --release -p sluice-pipeline -p sluice-benches
//! target/release/syslog-bench [--runs 5] [--messages 1000000] [--connections 2] [--size 200] [--sink file|blackhole]
//! ```
//! Each run starts sluice, runs `loggen --inet --stream --number N --rate 100000000
//! --size S --active-connections C` (N messages per connection, as fast as sluice takes
//! them: TCP flow control paces loggen), and times from loggen's start until sluice's
//! sink has received every message (read from `/metrics`). Then sluice is stopped with
//! SIGTERM and, for the file sink, the output must hold one line per message. Prints
//! the median messages/s and sluice's CPU seconds (user + system) per run; loggen runs
//! on the same two cores. Exits 0 with SKIP when loggen is not installed.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "util.rs"]
mod util;
use util::{arg, finish_run, free_port, rate_summary, sink_config};

fn main() {
    if Command::new("loggen").arg("--help").stdout(Stdio::null()).stderr(Stdio::null()).status().is_err() {
        println!("SKIP: loggen is not installed (Debian package syslog-ng-core)");
        return;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let sluice = PathBuf::from(arg("--sluice", root.join("target/release/sluice").to_str().unwrap()));
    let runs: usize = arg("--runs", "5").parse().unwrap();
    let per_conn: u64 = arg("--messages", "1000000").parse().unwrap();
    let conns: u64 = arg("--connections", "2").parse().unwrap();
    let size = arg("--size", "200");
    let sink = arg("--sink", "file");
    let total = per_conn * conns;
    let out = root.join("target/bench-out/syslog");
    let mut rates = Vec::new();
    let mut cpus = Vec::new();
    for _ in 0..runs {
        let _ = std::fs::remove_dir_all(&out);
        std::fs::create_dir_all(&out).unwrap();
        let (api, port) = (free_port(), free_port());
        let sink_cfg = sink_config(&sink, &out);
        let cfg = format!(
            "data_dir = \"{0}/data\"\n[api]\naddress = \"127.0.0.1:{api}\"\n[sources.syslog]\ntype = \"syslog\"\nmode = \"tcp\"\naddress = \"127.0.0.1:{port}\"\n[sinks.out]\ninputs = [\"syslog\"]\n{sink_cfg}\n",
            out.display()
        );
        std::fs::write(out.join("bench.toml"), cfg).unwrap();
        let child = Command::new(&sluice)
            .args(["run", "--config"])
            .arg(out.join("bench.toml"))
            .env("SLUICE_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("sluice");
        let ready = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(ready.elapsed() < Duration::from_secs(20), "sluice did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        // The probe connection above counts as a (empty) connection; nothing is sent.
        let t = Instant::now();
        let st = Command::new("loggen")
            .args(["--inet", "--stream", "--quiet", "--rate", "100000000", "--size", &size])
            .args(["--number", &per_conn.to_string(), "--active-connections", &conns.to_string()])
            .args(["127.0.0.1", &port.to_string()])
            .status()
            .expect("loggen");
        assert!(st.success(), "loggen failed");
        let (rate, cpu) = finish_run(child, api, total, t, &sink, &out);
        rates.push(rate);
        cpus.push(cpu);
    }
    println!(
        "syslog tcp (loggen, {conns} connections, {size}-byte messages) -> {sink}: {} for {total} messages",
        rate_summary(rates, cpus)
    );
}
