//! Loki sink benchmark: the corpus files (tail, `stop_at_eof`) → `loki` sink → a local
//! receiver that reads every request and answers 204.
//!
//! ```text
//! cargo build --release -p sluice-pipeline -p sluice-benches
//! target/release/e2e-bench --runs 1          # generates the 1 GiB corpus once
//! target/release/loki-bench [--runs 3] [--corpus target/bench-data/seed7-1G] [--encoding protobuf|json]
//! ```
//! Labels are `{service="{source}"}` (seven streams), the line is the event as JSON.
//! Prints the median wall time, input MB/s, and sluice's CPU seconds; MB/s per core is
//! input bytes over CPU seconds.

use std::io::{BufRead, BufReader, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[path = "util.rs"]
mod util;
use util::{arg, corpus_args, corpus_files, free_port, run_sluice};

fn receiver(port: u16, bytes: Arc<AtomicU64>) {
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let bytes = bytes.clone();
            std::thread::spawn(move || {
                let mut w = conn.try_clone().unwrap();
                let mut r = BufReader::new(conn);
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut len = 0usize;
                    loop {
                        let mut h = String::new();
                        r.read_line(&mut h).unwrap();
                        let h = h.trim_end();
                        if h.is_empty() {
                            break;
                        }
                        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0u8; len];
                    r.read_exact(&mut body).unwrap();
                    bytes.fetch_add(len as u64, Ordering::Relaxed);
                    if w.write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n").is_err() {
                        return;
                    }
                }
            });
        }
    });
}

fn main() {
    let (root, corpus, sluice, runs) = corpus_args();
    let encoding = arg("--encoding", "protobuf");
    let Some(files) = corpus_files(&corpus) else { return };
    let input: u64 = files.iter().map(|f| std::fs::metadata(f).unwrap().len()).sum();
    let port = free_port();
    let pushed = Arc::new(AtomicU64::new(0));
    receiver(port, pushed.clone());
    let out = root.join("target/bench-out/loki");
    let mut times = Vec::new();
    let mut cpus = Vec::new();
    for _ in 0..runs {
        let _ = std::fs::remove_dir_all(&out);
        std::fs::create_dir_all(&out).unwrap();
        let cfg = format!(
            "data_dir = \"{0}/data\"\n[api]\nenabled = false\n[sources.corpus]\ntype = \"file\"\ninclude = [\"{1}/*.log\"]\nstop_at_eof = true\n[sinks.loki]\ntype = \"loki\"\ninputs = [\"corpus\"]\nendpoint = \"http://127.0.0.1:{port}\"\nencoding = \"{encoding}\"\nlabels = {{ service = \"{{source}}\" }}\n",
            out.display(),
            corpus.display()
        );
        std::fs::write(out.join("bench.toml"), cfg).unwrap();
        let (secs, cpu) = run_sluice(&sluice, &out.join("bench.toml"), &[]);
        times.push(secs);
        cpus.push(cpu);
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    cpus.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let (t, c) = (times[times.len() / 2], cpus[cpus.len() / 2]);
    let mb = input as f64 / 1e6;
    println!(
        "tail -> loki ({encoding}): median {t:.3} s (min {:.3}, max {:.3}), {:.0} MB/s of input; sluice CPU {c:.2} s = {:.0} MB/s per core; {:.0} MB pushed per run",
        times[0],
        times[times.len() - 1],
        mb / t,
        mb / c,
        pushed.load(Ordering::Relaxed) as f64 / 1e6 / runs as f64
    );
    let _ = std::io::stdout().flush();
}
