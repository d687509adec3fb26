//! The kafka source against a real Kafka-protocol broker: `tansu` (built with
//! `cargo install tansu --locked --features dynostore`; `.ci/run` installs it under
//! `$HOME/.cache/sluice/tansu`), started per test on a free loopback port with its
//! memory storage. Test data is produced with librdkafka (rdkafka). Without tansu the
//! tests skip with a message, unless SLUICE_REQUIRE_TOOLS is set (CI sets it).

use crate::harness::*;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;
use std::collections::HashMap;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn tansu_bin() -> Option<PathBuf> {
    let cached: Vec<PathBuf> =
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/sluice/tansu/bin/tansu")).into_iter().collect();
    find_tool("tansu", &cached, "cargo install tansu --locked --features dynostore --root ~/.cache/sluice/tansu")
}

/// A tansu broker on a free loopback port, killed when dropped.
struct Broker {
    child: Child,
    port: u16,
    bin: PathBuf,
}

impl Broker {
    fn start() -> Option<Broker> {
        let bin = tansu_bin()?;
        let port = free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(&bin)
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tansu");
        let b = Broker { child, port, bin };
        assert!(
            wait_until(Duration::from_secs(20), || TcpStream::connect(("127.0.0.1", port)).is_ok()),
            "tansu did not listen"
        );
        Some(b)
    }

    fn servers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn create_topic(&self, name: &str, partitions: u32) {
        let st = Command::new(&self.bin)
            .args(["topic", "create", name, "--partitions", &partitions.to_string()])
            .args(["--broker", &format!("tcp://127.0.0.1:{}", self.port)])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "tansu topic create failed");
    }

    /// Produce `range` as `msg-N` with key `key-N`, partition N % partitions.
    fn produce(&self, topic: &str, range: std::ops::Range<u64>, partitions: u64) {
        self.produce_with(topic, range.map(|i| (i, (i % partitions) as i32, format!("msg-{i}").into_bytes())));
    }

    fn produce_with(&self, topic: &str, msgs: impl Iterator<Item = (u64, i32, Vec<u8>)>) {
        let p: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", self.servers())
            .set("message.max.bytes", "10000000")
            .set("linger.ms", "5")
            .set("queue.buffering.max.messages", "1000000")
            .create()
            .unwrap();
        for (i, part, payload) in msgs {
            let key = format!("key-{i}");
            loop {
                match p.send(BaseRecord::to(topic).partition(part).key(&key).payload(&payload)) {
                    Ok(()) => break,
                    Err((e, _)) => {
                        assert!(
                            matches!(
                                e,
                                rdkafka::error::KafkaError::MessageProduction(
                                    rdkafka::types::RDKafkaErrorCode::QueueFull
                                )
                            ),
                            "produce: {e}"
                        );
                        p.poll(Duration::from_millis(10));
                    }
                }
            }
            p.poll(Duration::ZERO);
        }
        p.flush(Duration::from_secs(60)).expect("flush");
    }

    fn signal(&self, sig: i32) {
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn kafka_config(dir: &Path, out: &Path, api: Option<u16>, b: &Broker, topic: &str, group: &str, extra: &str) -> String {
    format!(
        "{}[pipeline]\nbatch_max_events = 2000\n[sources.k]\ntype = \"kafka\"\nbootstrap_servers = \"{}\"\ntopics = [\"{topic}\"]\ngroup_id = \"{group}\"\nauto_offset_reset = \"earliest\"\ncommit_interval = \"200ms\"\nlibrdkafka_options = {{ \"session.timeout.ms\" = \"6000\", \"heartbeat.interval.ms\" = \"500\", \"max.poll.interval.ms\" = \"10000\" }}\n{extra}\n[sinks.f]\ntype = \"file\"\ninputs = [\"k\"]\npath = \"{}/out.ndjson\"\n",
        header(dir, api),
        b.servers(),
        out.display()
    )
}

fn counts(out: &Path) -> HashMap<String, usize> {
    message_counts(out)
}

fn expected(range: std::ops::Range<u64>) -> Vec<String> {
    range.map(|i| format!("msg-{i}")).collect()
}

fn assert_all(counts: &HashMap<String, usize>, want: &[String], exactly_once: bool) -> usize {
    let missing: Vec<&String> = want.iter().filter(|m| !counts.contains_key(*m)).collect();
    assert!(missing.is_empty(), "{} messages lost, e.g. {:?}", missing.len(), &missing[..missing.len().min(3)]);
    let dups: usize = counts.values().map(|c| c - 1).sum();
    if exactly_once {
        assert_eq!(dups, 0, "duplicates in a clean run");
    }
    dups
}

#[test]
fn hundred_thousand_messages_exactly_once_and_offsets_committed() {
    let _disk = disk_heavy();
    let Some(b) = Broker::start() else { return };
    b.create_topic("logs", 4);
    b.produce("logs", 0..100_000, 4);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let api = free_port();
    let cfg = kafka_config(dir.path(), &out, Some(api), &b, "logs", "g1", "");
    let mut s = Sluice::start(dir.path(), &cfg);
    assert!(wait_until(Duration::from_secs(60), || counts(&out).len() >= 100_000), "{}", s.stderr());
    // Commit and lag metrics are exported (lag from librdkafka's statistics, every 5 s):
    // every partition caught up.
    let metrics = http_get(api, "/metrics", None).unwrap().1;
    assert!(metrics.contains("sluice_kafka_commits_total{component=\"k\"}"), "{metrics}");
    let lag_lines = || {
        let m = http_get(api, "/metrics", None).map(|r| r.1).unwrap_or_default();
        m.lines().filter(|l| l.starts_with("sluice_kafka_consumer_lag{")).map(str::to_string).collect::<Vec<_>>()
    };
    assert!(
        wait_until(Duration::from_secs(20), || lag_lines().len() == 4 && lag_lines().iter().all(|l| l.ends_with(" 0"))),
        "lag: {:?}",
        lag_lines()
    );
    assert_eq!(s.terminate(Duration::from_secs(30)), 0, "{}", s.stderr());
    assert_all(&counts(&out), &expected(0..100_000), true);
    let ev = read_events(&out);
    let e = ev.iter().find(|e| e["message"] == "msg-7").unwrap();
    assert_eq!(
        (e["kafka_topic"].as_str(), e["kafka_partition"].as_i64(), e["kafka_key"].as_str()),
        (Some("logs"), Some(3), Some("key-7"))
    );
    assert!(e["kafka_offset"].is_i64());

    // The offsets were committed: a restart reads only what is new.
    b.produce("logs", 100_000..100_100, 4);
    let mut s = Sluice::start(dir.path(), &cfg);
    assert!(wait_until(Duration::from_secs(60), || counts(&out).len() >= 100_100), "{}", s.stderr());
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(s.terminate(Duration::from_secs(30)), 0);
    assert_all(&counts(&out), &expected(0..100_100), true);
}

#[test]
fn kill9_mid_stream_and_restart_loses_nothing() {
    let _disk = disk_heavy();
    let Some(b) = Broker::start() else { return };
    b.create_topic("logs", 4);
    b.produce("logs", 0..100_000, 4);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let cfg = kafka_config(dir.path(), &out, None, &b, "logs", "g1", "");
    for _ in 0..2 {
        let s = Sluice::start(dir.path(), &cfg);
        let seen = counts(&out).len();
        wait_until(Duration::from_secs(30), || counts(&out).len() > seen + 10_000);
        s.kill9();
    }
    let mut s = Sluice::start(dir.path(), &cfg);
    assert!(wait_until(Duration::from_secs(60), || counts(&out).len() >= 100_000), "{}", s.stderr());
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(s.terminate(Duration::from_secs(30)), 0);
    let dups = assert_all(&counts(&out), &expected(0..100_000), false);
    eprintln!("kafka kill -9: 2 kills, {dups} duplicates of 100000");
}

#[test]
fn two_instances_share_the_partitions_and_sample_alike() {
    let _disk = disk_heavy();
    let Some(b) = Broker::start() else { return };
    b.create_topic("logs", 4);
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let outs: Vec<PathBuf> = dirs.iter().map(|d| d.path().join("out")).collect();
    // Head sampling keyed on the message key, 1 in 4, after the source.
    let sample = "[transforms.s]\ntype = \"sample\"\ninputs = [\"k\"]\nrate = 4\nkey_field = \"kafka_key\"\nkeep_level_at_least = \"none\"\n";
    let cfg = |i: usize| {
        kafka_config(dirs[i].path(), &outs[i], None, &b, "logs", "shared", sample)
            .replace("inputs = [\"k\"]\npath", "inputs = [\"s\"]\npath")
    };
    let mut a = Sluice::start(dirs[0].path(), &cfg(0));
    b.produce("logs", 0..40_000, 4);
    std::thread::sleep(Duration::from_secs(2));
    // The second instance joins mid-stream: the group rebalances; the rest is produced
    // once it has its partitions, in steps, so that both instances consume.
    let mut c = Sluice::start(dirs[1].path(), &cfg(1));
    assert!(
        wait_until(Duration::from_secs(60), || c.stderr().contains("partitions assigned")),
        "the second instance got no partitions: {}",
        c.stderr()
    );
    for step in 0..6 {
        b.produce("logs", 40_000 + step * 10_000..50_000 + step * 10_000, 4);
        std::thread::sleep(Duration::from_millis(300));
    }
    let keep: Vec<String> = (0..100_000u64)
        .filter(|i| sluice_transforms::sample::keeps(format!("key-{i}").as_bytes(), 0.25))
        .map(|i| format!("msg-{i}"))
        .collect();
    let union = || {
        let mut u = counts(&outs[0]);
        for (k, v) in counts(&outs[1]) {
            *u.entry(k).or_default() += v;
        }
        u
    };
    assert!(wait_until(Duration::from_secs(90), || union().len() >= keep.len()), "{} of {}", union().len(), keep.len());
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(a.terminate(Duration::from_secs(30)), 0);
    assert_eq!(c.terminate(Duration::from_secs(30)), 0);
    let u = union();
    let dups = assert_all(&u, &keep, false);
    assert_eq!(u.len(), keep.len(), "exactly the messages whose key the hash keeps, in both instances together");
    let (na, nc) = (counts(&outs[0]).len(), counts(&outs[1]).len());
    assert!(na > 0 && nc > 0, "both instances consumed: {na} and {nc}");
    assert!(dups < keep.len() / 4, "duplicates only around the rebalance: {dups}");
    eprintln!("two instances: {na} + {nc} kept messages, {dups} duplicates");
}

#[test]
fn broker_unreachable_for_20s_loses_nothing() {
    let Some(b) = Broker::start() else { return };
    b.create_topic("logs", 4);
    b.produce("logs", 0..30_000, 4);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    // librdkafka's default session timeout (45 s) outlasts the outage: the consumer keeps
    // its partitions and carries on where it was.
    let cfg = kafka_config(dir.path(), &out, None, &b, "logs", "g1", "").replace(
        "\"session.timeout.ms\" = \"6000\", \"heartbeat.interval.ms\" = \"500\", \"max.poll.interval.ms\" = \"10000\"",
        "\"heartbeat.interval.ms\" = \"500\"",
    );
    assert!(!cfg.contains("session.timeout.ms"));
    let mut s = Sluice::start(dir.path(), &cfg);
    assert!(wait_until(Duration::from_secs(60), || counts(&out).len() >= 30_000), "{}", s.stderr());
    // The broker stops answering (SIGSTOP: its memory storage would not survive a restart).
    b.signal(libc::SIGSTOP);
    std::thread::sleep(Duration::from_secs(20));
    b.signal(libc::SIGCONT);
    b.produce("logs", 30_000..60_000, 4);
    assert!(
        wait_until(Duration::from_secs(90), || counts(&out).len() >= 60_000),
        "{} of 60000; {}",
        counts(&out).len(),
        s.stderr()
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(s.terminate(Duration::from_secs(30)), 0);
    assert_all(&counts(&out), &expected(0..60_000), false);
}

#[test]
fn bad_payloads_are_kept_and_marked() {
    let Some(b) = Broker::start() else { return };
    b.create_topic("raw", 1);
    let big: Vec<u8> = (0..5 * 1024 * 1024).map(|i| b'a' + (i % 26) as u8).collect();
    let msgs = vec![
        (0, 0, b"bad utf8 \xff\xfe here".to_vec()),
        (1, 0, Vec::new()),
        (2, 0, b"nul\0byte".to_vec()),
        (3, 0, big.clone()),
        (4, 0, b"after".to_vec()),
    ];
    b.produce_with("raw", msgs.into_iter());
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let cfg = kafka_config(dir.path(), &out, None, &b, "raw", "g1", "");
    let mut s = Sluice::start(dir.path(), &cfg);
    assert!(
        wait_until(Duration::from_secs(60), || read_events(&out).iter().any(|e| e["message"] == "after")),
        "{}",
        s.stderr()
    );
    assert_eq!(s.terminate(Duration::from_secs(30)), 0);
    let ev = read_events(&out);
    assert_eq!(ev[0]["invalid_utf8"], true);
    assert_eq!(ev[1]["message"], "");
    assert_eq!(ev[2]["contains_nul"], true);
    // 5 MiB in 1 MiB parts (max_message_bytes), marked, nothing lost.
    let parts: Vec<&serde_json::Value> = ev.iter().filter(|e| e["kafka_offset"] == 3).collect();
    assert_eq!(parts.len(), 5);
    let joined: String = parts.iter().map(|e| e["message"].as_str().unwrap()).collect();
    assert_eq!(joined.as_bytes(), &big[..]);
    assert_eq!(parts[4]["split_last"], true);
    assert_eq!(ev.last().unwrap()["message"], "after");
}
