//! `sluice test`: run the `[[tests]]` of a configuration (or of `--tests FILE`).
//!
//! Each test builds the pipeline afresh (stages keep state), feeds its lines into the
//! named component, runs every stage downstream of it in this process, and collects the
//! events that reach the sinks (without running the sinks). Stages that hold events
//! back (tail sampling, multiline parsing) are finished at the end, as on shutdown. An
//! event that several sinks would receive through one output counts once.

use sluice_config::cases::TestCase;
use sluice_config::{Config, Kind};
use sluice_event::{Batch, Event, Origin, OriginInfo, Timestamp, Value};
use sluice_pipeline::registry::{self, Built};
use sluice_transforms::Transform;
use std::collections::{HashMap, VecDeque};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// TOML configuration file (default: the embedded quickstart config).
    #[arg(short, long, value_name = "FILE")]
    config: Option<String>,
    /// Run the `[[tests]]` of this file instead of the configuration's own.
    #[arg(long, value_name = "FILE")]
    tests: Option<String>,
}

/// Exit 0 when every test passes, 1 when one fails, 2 on a configuration error.
pub fn main(args: Args) -> ExitCode {
    let mut cfg = match super::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let tests = match &args.tests {
        None => std::mem::take(&mut cfg.tests),
        Some(path) => {
            let text = match std::fs::read_to_string(path) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("{path}: cannot read tests: {e}");
                    return ExitCode::from(2);
                }
            };
            let env = |k: &str| std::env::var(k).ok();
            match Config::parse_tests(path, &text, &env) {
                Ok(t) => t,
                Err(errs) => {
                    for d in errs.0 {
                        eprintln!("{d}");
                    }
                    return ExitCode::from(2);
                }
            }
        }
    };
    if tests.is_empty() {
        eprintln!("{}: no [[tests]] to run", args.tests.as_deref().unwrap_or(cfg.file()));
        return ExitCode::from(2);
    }
    for t in &tests {
        if !cfg.components.iter().any(|c| c.name == t.input.component && c.kind != Kind::Sink) {
            eprintln!("{}: `{}`: no source or transform named `{}`", t.location, t.name, t.input.component);
            return ExitCode::from(2);
        }
    }
    // Stages that keep state (learned templates, the sampling switch) keep it in a
    // throwaway directory, never in the configuration's data_dir.
    let scratch = std::env::temp_dir().join(format!("sluice-test-{}", std::process::id()));
    cfg.data_dir = scratch.clone();
    let mut failed = 0;
    for t in &tests {
        let result = run_case(&cfg, t);
        match result {
            Err(errs) => {
                for d in errs {
                    eprintln!("{d}");
                }
                let _ = std::fs::remove_dir_all(&scratch);
                return ExitCode::from(2);
            }
            Ok(got) => {
                let problems = check(t, &got);
                if problems.is_empty() {
                    println!("ok    {}", t.name);
                } else {
                    failed += 1;
                    println!("FAIL  {}  ({})", t.name, t.location);
                    for p in &problems {
                        println!("      {p}");
                    }
                    for (i, e) in got.iter().enumerate() {
                        let mut line = Vec::new();
                        sluice_event::ndjson::encode_event(&mut line, e);
                        print!("      got event {}: {}", i + 1, String::from_utf8_lossy(&line));
                    }
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    println!("{} tests: {} passed, {failed} failed", tests.len(), tests.len() - failed);
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Build the pipeline, feed the test's lines and return the events reaching the sinks.
pub fn run_case(cfg: &Config, t: &TestCase) -> Result<Vec<Event>, Vec<sluice_config::Diagnostic>> {
    let built = registry::build_all(cfg)?;
    let mut transforms: HashMap<String, Box<dyn Transform>> = HashMap::new();
    for (c, b) in built {
        if let Built::Transform(x) = b {
            transforms.insert(c.name.clone(), x);
        }
    }
    // (producer, output) -> consumers, and whether a sink reads it.
    let mut consumers: HashMap<(String, Option<String>), Vec<String>> = HashMap::new();
    let mut to_sink: HashMap<(String, Option<String>), bool> = HashMap::new();
    for c in &cfg.components {
        for i in &c.inputs {
            let key = (i.component.clone(), i.output.clone());
            if c.kind == Kind::Sink {
                to_sink.insert(key, true);
            } else {
                consumers.entry(key).or_default().push(c.name.clone());
            }
        }
    }
    let start = &t.input.component;
    let origin = OriginInfo::new(&upstream_source(cfg, start), None);
    let mut offset = 0u64;
    let events: Vec<Event> = t
        .input
        .lines
        .iter()
        .map(|l| {
            let e = Event::from_line(l.clone().into(), Timestamp::now(), Origin { info: origin.clone(), offset });
            offset += l.len() as u64 + 1;
            e
        })
        .collect();
    let mut got = Vec::new();
    let mut queue: Queue = VecDeque::new();
    let run = |queue: &mut Queue, transforms: &mut HashMap<String, Box<dyn Transform>>, got: &mut Vec<Event>| {
        while let Some((producer, output, batch)) = queue.pop_front() {
            let key = (producer, output);
            if to_sink.get(&key).copied().unwrap_or(false) {
                got.extend(batch.events.iter().cloned());
            }
            for name in consumers.get(&key).into_iter().flatten() {
                let t = transforms.get_mut(name).expect("consumers are transforms");
                t.process(batch.fan_out_clone(), &mut into(queue, name));
            }
        }
    };
    let batch = Batch::new(events);
    match transforms.get_mut(start) {
        Some(t) => {
            t.process(batch, &mut into(&mut queue, start));
        }
        None => queue.push_back((start.clone(), None, batch)),
    }
    run(&mut queue, &mut transforms, &mut got);
    // Finish the stages downstream of the input, upstream first, as on shutdown.
    for name in downstream_order(cfg, start) {
        if let Some(t) = transforms.get_mut(&name) {
            t.finish(&mut into(&mut queue, &name));
        }
        run(&mut queue, &mut transforms, &mut got);
    }
    Ok(got)
}

/// Batches emitted and not yet delivered: (producer, output, batch).
type Queue = VecDeque<(String, Option<String>, Batch)>;

/// An emitter that queues what `producer` emits.
fn into<'a>(queue: &'a mut Queue, producer: &'a str) -> impl FnMut(Option<&str>, Batch) + 'a {
    move |o, b| queue.push_back((producer.to_string(), o.map(str::to_string), b))
}

/// The source feeding `name` (its own name if it is one): what `{source}` reads.
fn upstream_source(cfg: &Config, name: &str) -> String {
    let mut seen = vec![name.to_string()];
    let mut i = 0;
    while i < seen.len() {
        if let Some(c) = cfg.component(&seen[i]) {
            if c.kind == Kind::Source {
                return c.name.clone();
            }
            for input in &c.inputs {
                if !seen.contains(&input.component) {
                    seen.push(input.component.clone());
                }
            }
        }
        i += 1;
    }
    name.to_string()
}

/// `start` and every transform downstream of it, each after all of its inputs that are
/// downstream of `start`.
fn downstream_order(cfg: &Config, start: &str) -> Vec<String> {
    let mut reach = vec![start.to_string()];
    let mut i = 0;
    while i < reach.len() {
        for c in &cfg.components {
            if c.kind == Kind::Transform && c.inputs.iter().any(|x| x.component == reach[i]) && !reach.contains(&c.name)
            {
                reach.push(c.name.clone());
            }
        }
        i += 1;
    }
    let mut order: Vec<String> = Vec::new();
    while order.len() < reach.len() {
        let before = order.len();
        for n in &reach {
            if order.contains(n) {
                continue;
            }
            let ready = cfg.component(n).is_none_or(|c| {
                c.inputs
                    .iter()
                    .all(|x| !reach.contains(&x.component) || x.component == *n || order.contains(&x.component))
            });
            if ready || n == start {
                order.push(n.clone());
            }
        }
        if order.len() == before {
            break; // the graph check refuses cycles; never loop
        }
    }
    order
}

/// What is wrong with `got` against the test's expectations (empty: it passes).
pub fn check(t: &TestCase, got: &[Event]) -> Vec<String> {
    let mut problems = Vec::new();
    if t.expect_none {
        if !got.is_empty() {
            problems.push(format!("expected no event, got {}", got.len()));
        }
        return problems;
    }
    let expect = t.expect.as_deref().unwrap_or_default();
    for (i, want) in expect.iter().enumerate() {
        let Some(e) = got.get(i) else { break };
        for (k, v) in want {
            match (k.as_str(), v) {
                ("absent", toml::Value::Array(names)) => {
                    for n in names {
                        let n = n.as_str().unwrap_or_default();
                        if let Some(actual) = actual(e, n) {
                            problems.push(format!("event {}: `{n}`: expected absent, got {}", i + 1, json(&actual)));
                        }
                    }
                }
                ("matches", toml::Value::Table(m)) => {
                    for (field, pattern) in m {
                        let pattern = pattern.as_str().unwrap_or_default();
                        match regex::Regex::new(pattern) {
                            Err(err) => problems.push(format!("event {}: `matches.{field}`: bad regex: {err}", i + 1)),
                            Ok(re) => match actual(e, field) {
                                Some(serde_json::Value::String(s)) if re.is_match(&s) => {}
                                Some(other) => problems.push(format!(
                                    "event {}: `{field}`: expected to match /{pattern}/, got {}",
                                    i + 1,
                                    json(&other)
                                )),
                                None => problems.push(format!(
                                    "event {}: `{field}`: expected to match /{pattern}/, but it is absent",
                                    i + 1
                                )),
                            },
                        }
                    }
                }
                _ => {
                    let want_json = serde_json::to_value(v).unwrap_or_default();
                    match actual(e, k) {
                        Some(a) if json_eq(&want_json, &a) => {}
                        Some(a) => problems.push(format!(
                            "event {}: `{k}`: expected {}, got {}",
                            i + 1,
                            json(&want_json),
                            json(&a)
                        )),
                        None => problems.push(format!(
                            "event {}: `{k}`: expected {}, but it is absent",
                            i + 1,
                            json(&want_json)
                        )),
                    }
                }
            }
        }
    }
    if got.len() != expect.len() {
        problems.push(format!("expected {} event(s), got {}", expect.len(), got.len()));
    }
    problems
}

/// A field of the event as JSON; `message`, `timestamp` and `source` when no field has
/// that name.
fn actual(e: &Event, name: &str) -> Option<serde_json::Value> {
    if let Some(v) = e.fields.get(name) {
        return Some(value_json(v));
    }
    match name {
        "message" => Some(serde_json::Value::String(e.message().to_string())),
        "timestamp" => Some(serde_json::Value::String(e.timestamp.to_rfc3339())),
        _ => e.meta(name).map(|m| serde_json::Value::String(m.to_string())),
    }
}

fn value_json(v: &Value) -> serde_json::Value {
    let mut out = Vec::new();
    sluice_event::ndjson::write_value(&mut out, v);
    serde_json::from_slice(&out).unwrap_or(serde_json::Value::Null)
}

fn json(v: &serde_json::Value) -> String {
    v.to_string()
}

/// Equal, with numbers compared by value (`2` equals `2.0`).
fn json_eq(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value as J;
    match (a, b) {
        (J::Number(x), J::Number(y)) => x.as_f64() == y.as_f64(),
        (J::Array(x), J::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q)),
        (J::Object(x), J::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> Config {
        Config::parse("t.toml", text, &|_| None).unwrap()
    }

    const PIPE: &str = "[sources.app]\ntype = \"stdin\"\n\
        [transforms.p]\ntype = \"parse\"\ninputs = [\"app\"]\nformat = \"{level} {message}\"\n\
        templates = [{ event = \"login\", pattern = \"user {user} logged in from {ip}\" }]\n\
        [transforms.keep]\ntype = \"filter\"\ninputs = [\"p\"]\nwhen = { level = \"info\" }\n\
        [sinks.a]\ntype = \"console\"\ninputs = [\"keep\"]\n[sinks.b]\ntype = \"blackhole\"\ninputs = [\"keep\"]\n";

    fn case(cfg: &Config, extra: &str) -> TestCase {
        let text = format!("{PIPE}[[tests]]\nname = \"t\"\n{extra}\n");
        let c = Config::parse("t.toml", &text, &|_| None).unwrap();
        assert_eq!(c.components.len(), cfg.components.len());
        c.tests.into_iter().next().unwrap()
    }

    #[test]
    fn runs_from_the_component_to_the_sinks_once_per_output() {
        let c = cfg(PIPE);
        let t = case(
            &c,
            "input = { component = \"app\", lines = [\"info user bob logged in from 10.0.0.1\", \"debug noise\", \"info other\"] }\n\
             expect = [{ event = \"login\", user = \"bob\", absent = [\"parse_error\"], matches = { ip = '^10\\.' } }, { message = \"other\", source = \"app\" }]",
        );
        let got = run_case(&c, &t).unwrap();
        assert_eq!(got.len(), 2, "two sinks read `keep`: each event counts once");
        assert_eq!(check(&t, &got), Vec::<String>::new());
        // From the middle of the pipeline: lines fed into `p` go on to `keep`.
        let t = case(&c, "input = { component = \"p\", lines = [\"debug x\"] }\nexpect_none = true");
        assert_eq!(check(&t, &run_case(&c, &t).unwrap()), Vec::<String>::new());
    }

    #[test]
    fn failures_say_what_differs() {
        let c = cfg(PIPE);
        let t = case(
            &c,
            "input = { component = \"app\", lines = [\"info user bob logged in from 10.0.0.1\"] }\n\
             expect = [{ event = \"login\", user = \"alice\", absent = [\"ip\"], matches = { user = '^a' }, missing = 1 }, { event = \"x\" }]",
        );
        let got = run_case(&c, &t).unwrap();
        let p = check(&t, &got);
        assert_eq!(
            p,
            [
                "event 1: `user`: expected \"alice\", got \"bob\"",
                "event 1: `ip`: expected absent, got \"10.0.0.1\"",
                "event 1: `user`: expected to match /^a/, got \"bob\"",
                "event 1: `missing`: expected 1, but it is absent",
                "expected 2 event(s), got 1",
            ]
        );
        let t = case(&c, "input = { component = \"app\", lines = [\"info hi\"] }\nexpect_none = true");
        assert_eq!(check(&t, &run_case(&c, &t).unwrap()), ["expected no event, got 1"]);
    }

    #[test]
    fn numbers_compare_by_value() {
        assert!(json_eq(&serde_json::json!(2), &serde_json::json!(2.0)));
        assert!(!json_eq(&serde_json::json!("2"), &serde_json::json!(2)));
    }
}
