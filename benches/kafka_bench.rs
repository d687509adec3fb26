//! Kafka benchmark: messages/s the kafka source consumes from a local broker into a
//! blackhole and into an NDJSON file.
//!
//! ```text
//! cargo install tansu --locked --features dynostore      # a Kafka-protocol broker
//! cargo build --release -p sluice-pipeline -p sluice-benches
//! target/release/kafka-bench [--runs 3] [--messages 2000000] [--size 200] [--tansu PATH] [--options k=v,k=v]
//! ```
//! Starts tansu (memory storage) on a free loopback port, creates a topic with 4
//! partitions, produces N messages of S bytes once with librdkafka, then for each run
//! and sink starts sluice with a new consumer group (reading from the earliest offset)
//! and times from sluice's start until its sink has received every message (read from
//! `/metrics`); the file must then hold one line per message. Prints the median
//! messages/s and sluice's CPU seconds. Exits 0 with SKIP when tansu is not found.

use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "util.rs"]
mod util;
use util::{arg, finish_run, free_port, rate_summary, sink_config};

fn main() {
    let cached = std::env::var("HOME").map(|h| format!("{h}/.cache/sluice/tansu/bin/tansu")).unwrap_or_default();
    let tansu = PathBuf::from(arg("--tansu", &cached));
    if !tansu.is_file() {
        println!("SKIP: tansu not found at {} (cargo install tansu --locked --features dynostore)", tansu.display());
        return;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let sluice = PathBuf::from(arg("--sluice", root.join("target/release/sluice").to_str().unwrap()));
    let runs: usize = arg("--runs", "3").parse().unwrap();
    let n: u64 = arg("--messages", "2000000").parse().unwrap();
    let size: usize = arg("--size", "200").parse().unwrap();
    // Extra librdkafka consumer options, `k=v,k=v`.
    let options: String = arg("--options", "")
        .split(',')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').expect("--options k=v,k=v");
            format!("\"{k}\" = \"{v}\", ")
        })
        .collect();
    let options = format!("librdkafka_options = {{ {} }}", options.trim_end_matches(", "));
    let port = free_port();
    let url = format!("tcp://127.0.0.1:{port}");
    let mut broker = Command::new(&tansu)
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
            "--storage-engine",
            "memory://tansu/",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("tansu");
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t.elapsed() < Duration::from_secs(20), "tansu did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    let st = Command::new(&tansu)
        .args(["topic", "create", "bench", "--partitions", "4", "--broker", &url])
        .status()
        .unwrap();
    assert!(st.success());
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", format!("127.0.0.1:{port}"))
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .unwrap();
    let filler = "x".repeat(size.saturating_sub(40));
    let t = Instant::now();
    for i in 0..n {
        let payload = format!("<14>Nov 30 10:00:00 web app: request {i:010} {filler}");
        let part = (i % 4) as i32;
        while let Err((e, _)) = producer.send(BaseRecord::<(), _>::to("bench").partition(part).payload(&payload)) {
            assert!(e.to_string().contains("Queue full"), "produce: {e}");
            producer.poll(Duration::from_millis(5));
        }
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(120)).unwrap();
    println!("produced {n} messages of {size} bytes in {:.1} s", t.elapsed().as_secs_f64());

    let out = root.join("target/bench-out/kafka");
    for sink in ["blackhole", "file"] {
        let mut rates = Vec::new();
        let mut cpus = Vec::new();
        for run in 0..runs {
            let _ = std::fs::remove_dir_all(&out);
            std::fs::create_dir_all(&out).unwrap();
            let api = free_port();
            let sink_cfg = sink_config(sink, &out);
            let cfg = format!(
                "data_dir = \"{0}/data\"\n[api]\naddress = \"127.0.0.1:{api}\"\n[sources.k]\ntype = \"kafka\"\nbootstrap_servers = \"127.0.0.1:{port}\"\ntopics = [\"bench\"]\ngroup_id = \"bench-{sink}-{run}\"\nauto_offset_reset = \"earliest\"\n{options}\n[sinks.out]\ninputs = [\"k\"]\n{sink_cfg}\n",
                out.display()
            );
            std::fs::write(out.join("bench.toml"), cfg).unwrap();
            let t = Instant::now();
            let child = Command::new(&sluice)
                .args(["run", "--config"])
                .arg(out.join("bench.toml"))
                .env("SLUICE_LOG", "warn")
                .stdout(Stdio::null())
                .spawn()
                .expect("sluice");
            let (rate, cpu) = finish_run(child, api, n, t, sink, &out);
            rates.push(rate);
            cpus.push(cpu);
        }
        println!(
            "kafka (4 partitions, {size}-byte messages) -> {sink}: {} for {n} messages (start-up and group join included)",
            rate_summary(rates, cpus)
        );
    }
    let _ = broker.kill();
    let _ = broker.wait();
}
