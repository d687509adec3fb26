//! S3 sink benchmark: the corpus files (tail, `stop_at_eof`) → `s3` sink (zstd by
//! default) → moto's S3 server on loopback, started here (`pip install 'moto[server]'`).
//!
//! ```text
//! cargo build --release -p sluice-pipeline -p sluice-benches
//! target/release/e2e-bench --runs 1          # generates the 1 GiB corpus once
//! target/release/s3-bench [--runs 3] [--corpus target/bench-data/seed7-1G] [--compression zstd|gzip|none] [--moto PATH]
//! ```
//! Objects are partitioned by source (`{source}/{instance}-{seq}`, seven open objects,
//! 64 MiB each before compression). Prints the median wall time, input MB/s, sluice's
//! CPU seconds (read + encode + compress + upload) and input MB/s per core, and checks
//! that the objects hold every line of the input.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "util.rs"]
mod util;
use util::{arg, corpus_args, corpus_files, free_port, run_sluice};

fn http(port: u16, method: &str, path: &str) -> (u16, Vec<u8>) {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("moto");
    // moto answers signed requests only; it does not check the signature.
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: AWS4-HMAC-SHA256 Credential=bench/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let head_end = resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let status = String::from_utf8_lossy(&resp[..head_end]).split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, resp[head_end..].to_vec())
}

fn xml_values(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    xml.split(&open).skip(1).filter_map(|s| s.split_once(&close).map(|(v, _)| v.to_string())).collect()
}

fn main() {
    let (root, corpus, sluice, runs) = corpus_args();
    let compression = arg("--compression", "zstd");
    let moto = arg("--moto", "moto_server");
    let Some(files) = corpus_files(&corpus) else { return };
    let input: u64 = files.iter().map(|f| std::fs::metadata(f).unwrap().len()).sum();
    let lines: u64 =
        files.iter().map(|f| std::fs::read(f).unwrap().iter().filter(|&&b| b == b'\n').count() as u64).sum();
    let out = root.join("target/bench-out/s3");
    let ext = match compression.as_str() {
        "zstd" => ".zst",
        "gzip" => ".gz",
        _ => "",
    };
    let mut times = Vec::new();
    let mut cpus = Vec::new();
    let mut stored = 0u64;
    for run in 0..runs {
        // A fresh server each run: moto keeps objects in memory.
        let port = free_port();
        let mut server = Command::new(&moto)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {moto} ({e}): pip install 'moto[server]'"));
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto did not listen");
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(http(port, "PUT", "/bench").0, 200);
        let _ = std::fs::remove_dir_all(&out);
        std::fs::create_dir_all(&out).unwrap();
        let cfg = format!(
            "data_dir = \"{0}/data\"\n[api]\nenabled = false\n[sources.corpus]\ntype = \"file\"\ninclude = [\"{1}/*.log\"]\nstop_at_eof = true\n[sinks.s3]\ntype = \"s3\"\ninputs = [\"corpus\"]\nbucket = \"bench\"\nendpoint = \"http://127.0.0.1:{port}\"\ncompression = \"{compression}\"\nkey_template = \"{{source}}/{{instance}}-{{seq}}.ndjson{ext}\"\n",
            out.display(),
            corpus.display()
        );
        std::fs::write(out.join("bench.toml"), cfg).unwrap();
        let (secs, cpu) = run_sluice(
            &sluice,
            &out.join("bench.toml"),
            &[("AWS_ACCESS_KEY_ID", "bench"), ("AWS_SECRET_ACCESS_KEY", "bench")],
        );
        times.push(secs);
        cpus.push(cpu);
        // Every line of the input is in the objects (checked on the first run).
        let body = String::from_utf8(http(port, "GET", "/bench?list-type=2&max-keys=1000").1).unwrap();
        let keys = xml_values(&body, "Key");
        stored = xml_values(&body, "Size").iter().map(|s| s.parse::<u64>().unwrap()).sum();
        if run == 0 {
            let mut events = 0u64;
            for k in &keys {
                let (status, data) = http(port, "GET", &format!("/bench/{k}"));
                assert_eq!(status, 200, "{k}");
                let raw = match compression.as_str() {
                    "zstd" => zstd::decode_all(&data[..]).unwrap(),
                    "gzip" => {
                        use std::io::Read;
                        let mut v = Vec::new();
                        flate2::read::MultiGzDecoder::new(&data[..]).read_to_end(&mut v).unwrap();
                        v
                    }
                    _ => data,
                };
                events += raw.iter().filter(|&&b| b == b'\n').count() as u64;
            }
            assert_eq!(events, lines, "events in the objects vs lines of input");
            println!("run 1: {} objects, {events} events = every input line", keys.len());
        }
        let _ = server.kill();
        let _ = server.wait();
    }
    // moto's CPU is counted once it is waited for: measure sluice's alone.
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    cpus.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let (t, c) = (times[times.len() / 2], cpus[cpus.len() / 2]);
    let mb = input as f64 / 1e6;
    println!(
        "tail -> s3 ({compression}): median {t:.3} s (min {:.3}, max {:.3}), {:.0} MB/s of input; sluice CPU {c:.2} s (min {:.2}, max {:.2}) = {:.0} MB/s per core; {:.0} MB stored per run (NDJSON compressed {:.1}:1 against the input)",
        times[0],
        times[times.len() - 1],
        mb / t,
        cpus[0],
        cpus[cpus.len() - 1],
        mb / c,
        stored as f64 / 1e6,
        input as f64 / stored.max(1) as f64
    );
    let _ = std::io::stdout().flush();
}
