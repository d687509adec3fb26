//! Delivery under faults: sink buffers (memory and disk, `when_full`), one failing sink
//! beside healthy ones, a disk buffer across `kill -9`.

use crate::harness::*;
use crate::loki::Receiver;
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

/// `n` JSON lines, `event <i>` each, in `dir/logs/app.log`.
fn write_log(dir: &Path, name: &str, n: usize) -> std::path::PathBuf {
    let p = dir.join("logs");
    std::fs::create_dir_all(&p).unwrap();
    let mut text = String::with_capacity(n * 80);
    for i in 0..n {
        text.push_str(&format!("{{\"level\":\"info\",\"service\":\"{name}\",\"message\":\"{name} event {i}\"}}\n"));
    }
    let f = p.join(format!("{name}.log"));
    std::fs::write(&f, text).unwrap();
    f
}

/// Count of each Loki line's `message` member.
fn loki_messages(rx: &Receiver) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for e in rx.entries() {
        let v: serde_json::Value = serde_json::from_str(&e.2).unwrap();
        *m.entry(v["message"].as_str().unwrap().to_string()).or_default() += 1;
    }
    m
}

fn loki_sink(name: &str, input: &str, port: u16, extra: &str) -> String {
    format!(
        "[sinks.{name}]\ntype = \"loki\"\ninputs = [\"{input}\"]\nendpoint = \"http://127.0.0.1:{port}\"\nlabels = {{ service = \"{{service}}\" }}\nbatch_max_wait = \"100ms\"\n{extra}\n"
    )
}

#[test]
fn disk_buffer_delivers_after_kill9_what_the_source_had_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let n = 3000;
    let log = write_log(dir.path(), "app", n);
    let port = free_port();
    let cfg = format!(
        "{}[pipeline]\nbatch_max_events = 100\n[sources.app]\ntype = \"file\"\ninclude = [\"{}\"]\n[transforms.p]\ntype = \"parse\"\ninputs = [\"app\"]\nformat = \"json\"\n{}",
        header(dir.path(), None),
        log.display(),
        loki_sink("loki", "p", port, "buffer = { type = \"disk\", max_bytes = \"64MiB\" }")
    );
    // Loki is down: the events can only be on disk when the source checkpoints them.
    let s = Sluice::start(dir.path(), &cfg);
    let size = std::fs::metadata(&log).unwrap().len();
    let cp = dir.path().join("data/checkpoints/app.json");
    let at_end = || std::fs::read_to_string(&cp).is_ok_and(|c| c.contains(&format!("\"offset\": {size}")));
    assert!(wait_until(Duration::from_secs(30), at_end), "source acknowledged by the disk buffer\n{}", s.stderr());
    s.kill9();
    let buffered = std::fs::read_dir(dir.path().join("data/buffers/loki")).unwrap().count();
    assert!(buffered >= 1, "segment files on disk");
    // Loki comes back; the restarted sluice has nothing left to read from the file: all
    // it delivers comes from the disk buffer.
    let rx = Receiver::start(port, vec![]);
    let mut s = Sluice::start(dir.path(), &cfg);
    let all = || loki_messages(&rx).len() == n;
    assert!(wait_until(Duration::from_secs(60), all), "{} of {n} delivered\n{}", loki_messages(&rx).len(), s.stderr());
    assert_eq!(s.terminate(Duration::from_secs(30)), 0, "{}", s.stderr());
    let got = loki_messages(&rx);
    for i in 0..n {
        assert!(got.contains_key(&format!("app event {i}")), "event {i} lost");
    }
    let dups: usize = got.values().map(|c| c - 1).sum();
    eprintln!("disk buffer across kill -9: {n} events, 0 lost, {dups} duplicated");
    // Delivered: the buffer forgot them (at most the segment being written remains).
    let left: u64 = std::fs::read_dir(dir.path().join("data/buffers/loki"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "seg"))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert_eq!(left, 0, "delivered segments are deleted");
}

/// Two sinks share one source: a file sink and a Loki sink whose endpoint is down.
fn shared_source_config(dir: &Path, log: &Path, api: u16, port: u16, buffer: &str) -> String {
    format!(
        "{}[pipeline]\nbatch_max_events = 100\ndrain_timeout = \"2s\"\n[sources.app]\ntype = \"file\"\ninclude = [\"{}\"]\n[transforms.p]\ntype = \"parse\"\ninputs = [\"app\"]\nformat = \"json\"\n[sinks.out]\ntype = \"file\"\ninputs = [\"p\"]\npath = \"{}/out/events.ndjson\"\n{}",
        header(dir, Some(api)),
        log.display(),
        dir.display(),
        loki_sink("loki", "p", port, buffer)
    )
}

#[test]
fn a_failing_sink_with_drop_newest_does_not_hold_back_its_neighbour() {
    let dir = tempfile::tempdir().unwrap();
    let n = 20_000;
    let log = write_log(dir.path(), "app", n);
    let (api, port) = (free_port(), free_port());
    let buffer = "buffer = { type = \"memory\", max_events = 500, when_full = \"drop_newest\" }";
    let mut s = Sluice::start(dir.path(), &shared_source_config(dir.path(), &log, api, port, buffer));
    let out = dir.path().join("out");
    let all = || message_counts(&out).len() == n;
    assert!(wait_until(Duration::from_secs(30), all), "the file sink got everything\n{}", s.stderr());
    let dropped = metric(api, "sluice_events_dropped_total", "loki");
    assert!(dropped >= (n / 2) as f64, "the Loki sink's drops are counted: {dropped}");
    s.terminate(Duration::from_secs(20));
}

#[test]
fn a_failing_sink_with_block_holds_back_sinks_sharing_its_source_and_no_others() {
    let dir = tempfile::tempdir().unwrap();
    let n = 20_000;
    let log = write_log(dir.path(), "app", n);
    let other = write_log(dir.path(), "other", n);
    let (api, port) = (free_port(), free_port());
    let mut cfg = shared_source_config(dir.path(), &log, api, port, "buffer = { type = \"memory\", max_events = 500 }");
    // A second source with its own file sink: independent of the failing one.
    cfg.push_str(&format!(
        "[sources.other]\ntype = \"file\"\ninclude = [\"{}\"]\n[sinks.other_out]\ntype = \"file\"\ninputs = [\"other\"]\npath = \"{}/other/events.ndjson\"\n",
        other.display(),
        dir.path().display()
    ));
    let mut s = Sluice::start(dir.path(), &cfg);
    let other_out = dir.path().join("other");
    let lines = |d: &Path| read_events(d).len();
    assert!(
        wait_until(Duration::from_secs(30), || lines(&other_out) == n),
        "a sink on another source is not held back\n{}",
        s.stderr()
    );
    std::thread::sleep(Duration::from_secs(2));
    let shared = lines(&dir.path().join("out"));
    assert!(shared < n / 2, "block: the file sink sharing the source waits with the failing sink ({shared} of {n})");
    assert_eq!(metric(api, "sluice_events_dropped_total", "loki"), 0.0, "block drops nothing");
    // The failing sink comes back: everything flows, nothing was lost.
    let rx = Receiver::start(port, vec![]);
    assert!(
        wait_until(Duration::from_secs(60), || lines(&dir.path().join("out")) == n && loki_messages(&rx).len() == n),
        "both sinks complete once Loki is back\n{}",
        s.stderr()
    );
    s.terminate(Duration::from_secs(20));
}
