use super::*;
use bytes::Bytes;
use sluice_event::{Origin, OriginInfo};

fn ev(i: usize, trace: Option<String>, level: &str) -> Event {
    thread_local!(static INFO: Arc<OriginInfo> = OriginInfo::new("s", None));
    let info = INFO.with(|i| i.clone());
    let mut e = Event::from_line(
        Bytes::from(format!("line {i}")),
        Timestamp::from_secs(1_795_000_000 + i as i64 / 1000),
        Origin { info, offset: i as u64 },
    );
    e.fields.insert("level", Value::from(level));
    if let Some(t) = trace {
        e.fields.insert("trace_id", Value::from(t.as_str()));
    }
    e
}

fn cfg(name: &str, t: &str) -> Sample {
    toml::from_str::<SampleConfig>(t).unwrap().compile(name).unwrap()
}

fn run(s: &mut Sample, events: Vec<Event>) -> Vec<Event> {
    let mut got = Vec::new();
    for chunk in events.chunks(1000) {
        s.process(Batch::new(chunk.to_vec()), &mut |_: Option<&str>, b: Batch| got.extend(b.events));
    }
    s.finish(&mut |_: Option<&str>, b: Batch| got.extend(b.events));
    got
}

#[test]
fn keep_ratio_and_trace_consistency() {
    let n = 200_000;
    // 20,000 traces of 10 info lines each.
    let events: Vec<Event> = (0..n).map(|i| ev(i, Some(format!("{:032x}", i / 10)), "info")).collect();
    let got = run(&mut cfg("t1", "rate = 10"), events.clone());
    let ratio = got.len() as f64 / n as f64;
    // 20,000 independent trace decisions at p = 0.1: sd of the trace count is ~42.
    assert!((ratio - 0.1).abs() < 0.0065, "kept {ratio}");
    let mut per_trace: HashMap<String, usize> = HashMap::new();
    for e in &got {
        *per_trace.entry(e.fields.get("trace_id").unwrap().as_str().unwrap().to_string()).or_default() += 1;
        assert_eq!(e.fields.get("sample_rate"), Some(&Value::Int(10)));
    }
    assert!(per_trace.values().all(|&c| c == 10), "all lines of a trace share a decision");
    // A second instance decides identically.
    let again = run(&mut cfg("t2", "rate = 10"), events);
    assert_eq!(
        got.iter().map(|e| e.origin.offset).collect::<Vec<_>>(),
        again.iter().map(|e| e.origin.offset).collect::<Vec<_>>()
    );
    // Without a key: per event, still about 10%.
    let loose: Vec<Event> = (0..100_000).map(|i| ev(i, None, "info")).collect();
    let r = run(&mut cfg("t3", "rate = 0.1"), loose).len() as f64 / 100_000.0;
    assert!((r - 0.1).abs() < 0.006, "{r}");
}

#[test]
fn warn_and_rules() {
    let events = vec![ev(0, None, "warn"), ev(1, None, "error"), ev(2, Some("x".into()), "debug")];
    let got = run(&mut cfg("t4", "rate = 1000000\nrules = [{ when = { level = \"debug\" }, rate = 1 }]"), events);
    assert_eq!(got.len(), 3, "warn+ kept by default, debug kept by rule");
    assert!(got.iter().all(|e| e.fields.get("sample_rate").is_none()));
    assert!(toml::from_str::<SampleConfig>("rate = 0").unwrap().compile("t5").is_err());
    assert!(toml::from_str::<SampleConfig>("rate = 1.5").unwrap().compile("t6").is_err());
}

#[test]
fn tail_keeps_whole_error_traces() {
    let mut events = Vec::new();
    for t in 0..1000 {
        for j in 0..5 {
            let level = if t % 50 == 0 && j == 3 { "error" } else { "info" };
            events.push(ev(t * 5 + j, Some(format!("trace-{t}")), level));
        }
    }
    let mut s = cfg("t7", "rate = 1000000\nkeep_level_at_least = \"none\"\ntail = { window = \"10s\", keep_if = { level_at_least = \"error\" } }");
    let got = run(&mut s, events);
    // 20 error traces, all 5 lines each (including the 3 before the error).
    assert_eq!(got.len(), 100, "{}", got.len());
    let mut per: HashMap<String, usize> = HashMap::new();
    for e in &got {
        *per.entry(e.fields.get("trace_id").unwrap().as_str().unwrap().to_string()).or_default() += 1;
    }
    assert!(per.values().all(|&c| c == 5));
    assert!(per.keys().all(|k| k.trim_start_matches("trace-").parse::<usize>().unwrap() % 50 == 0));
}

#[test]
fn drops_are_reported() {
    let mut s = cfg("t11", "rate = 1000000\nkeep_level_at_least = \"none\"");
    let events: Vec<Event> = (0..100).map(|i| ev(i, None, "info")).collect();
    let o = s.process(Batch::new(events), &mut |_: Option<&str>, _b: Batch| {});
    assert!(o.dropped >= 95 && o.reason == "sampled", "{o:?}");
}

#[test]
fn tail_limits_decide_early_and_shutdown_flushes() {
    let mut s =
        cfg("t8", "rate = 1\ntail = { window = \"1h\", keep_if = { level_at_least = \"error\" }, max_traces = 10 }");
    let events: Vec<Event> = (0..100).map(|i| ev(i, Some(format!("t{i}")), "info")).collect();
    let mut got = Vec::new();
    s.process(Batch::new(events), &mut |_: Option<&str>, b: Batch| got.extend(b.events));
    assert_eq!(got.len(), 90, "overflow decided early, 10 still held");
    s.finish(&mut |_: Option<&str>, b: Batch| got.extend(b.events));
    assert_eq!(got.len(), 100, "held traces flushed at shutdown");
}

#[test]
fn switch_bypasses_and_expires() {
    let mut s = cfg("t9", "rate = 1000000\nkeep_level_at_least = \"none\"");
    let c = s.switch().clone();
    c.bypass(Some(Timestamp(Timestamp::now().0 + 200_000_000)), "INC-1", "test");
    assert!(!c.state().sampling);
    let events: Vec<Event> = (0..100).map(|i| ev(i, None, "info")).collect();
    assert_eq!(run(&mut s, events.clone()).len(), 100);
    std::thread::sleep(Duration::from_millis(250));
    assert!(run(&mut s, events).len() < 5);
    assert!(c.state().sampling, "expired by itself");
    assert!(c.take_changed(), "the change is marked for the runtime to save");
    assert!(!c.take_changed());
}

#[test]
fn auto_bypass_trips_on_error_ratio() {
    let mut s = cfg("t10", "rate = 1000000\nkeep_level_at_least = \"none\"\nauto_bypass = { when_error_ratio_above = 0.05, over = \"1m\", for = \"15m\" }");
    // 1000 calm events, then 20% errors.
    let calm: Vec<Event> = (0..1000).map(|i| ev(i, None, "info")).collect();
    run(&mut s, calm);
    assert!(s.switch().state().sampling);
    let storm: Vec<Event> = (1000..2000).map(|i| ev(i, None, if i % 5 == 0 { "error" } else { "info" })).collect();
    run(&mut s, storm);
    let st = s.switch().state();
    assert!(!st.sampling && st.by == "auto_bypass" && st.reason.contains("error ratio"), "{st:?}");
}
