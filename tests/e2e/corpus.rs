//! Parse accuracy on the shared corpus: every record of all seven services gets the
//! truth's event, fields and level. Skipped (with a message) where ../shared is absent.

use crate::harness::*;
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

const SERVICES: [&str; 7] = ["payments", "orders", "gateway", "access", "auth", "cart", "search"];

fn line_offsets(path: &Path) -> Vec<u64> {
    let data = std::fs::read(path).unwrap();
    let mut v = vec![0u64];
    for (i, b) in data.iter().enumerate() {
        if *b == b'\n' {
            v.push(i as u64 + 1);
        }
    }
    v
}

/// Generate the shared corpus with truth files under `dir`; returns (corpus, truth).
fn gen_corpus(
    shared: &Path,
    dir: &Path,
    seed: &str,
    requests: &str,
    incident: &str,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let (corpus, truth) = (dir.join("corpus"), dir.join("truth"));
    let st = std::process::Command::new("python3")
        .arg(shared.join("corpus/gen_legacy_logs.py"))
        .args(["--seed", seed, "--requests", requests, "--incident", incident, "--out"])
        .arg(&corpus)
        .arg("--truth")
        .arg(&truth)
        .output()
        .unwrap();
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
    (corpus, truth)
}

/// Same value: strings compare as text; a typed number compares numerically.
fn same(got: &serde_json::Value, want: &str) -> bool {
    match got {
        serde_json::Value::String(s) => s == want,
        serde_json::Value::Number(n) => want.parse::<f64>().ok() == n.as_f64(),
        _ => false,
    }
}

/// Run the example corpus config over a generated corpus (with an incident window, so
/// failures, retries and stack traces are present) and compare with the truth files.
pub fn run_corpus_config(requests: &str) -> Option<(tempfile::TempDir, HashMap<String, Vec<serde_json::Value>>)> {
    run_corpus_config_with(requests, "0.5,0.2", |c| c).map(|(d, e, _)| (d, e))
}

/// The same, with the example config rewritten by `edit` first.
pub fn run_corpus_config_with(
    requests: &str,
    incident: &str,
    edit: impl FnOnce(String) -> String,
) -> Option<(tempfile::TempDir, HashMap<String, Vec<serde_json::Value>>, String)> {
    let Some(shared) = shared_dir() else {
        eprintln!("SKIP: ../shared is absent; corpus tests need ../shared/corpus/gen_legacy_logs.py");
        return None;
    };
    let dir = tempfile::tempdir().unwrap();
    let (corpus, _truth) = gen_corpus(&shared, dir.path(), "11", requests, incident);
    let cfg = std::fs::read_to_string(repo_dir().join("examples/corpus/sluice.toml"))
        .unwrap()
        .replace("stop_at_eof = false", "stop_at_eof = true");
    let cfg = edit(without_example_sampling(cfg));
    let out = dir.path().join("out");
    let env = [
        ("CORPUS_DIR", corpus.display().to_string()),
        ("OUT_DIR", out.display().to_string()),
        ("DATA_DIR", dir.path().join("data").display().to_string()),
        ("SLUICE_EXAMPLES", repo_dir().join("examples").display().to_string()),
        ("SLUICE_API_ADDRESS", format!("127.0.0.1:{}", free_port())),
    ];
    let mut s = Sluice::start_with_env(dir.path(), &cfg, &env);
    assert_eq!(s.wait_exit(Duration::from_secs(120)), 0, "{}", s.stderr());
    let stderr = s.stderr();
    let mut events = HashMap::new();
    for svc in SERVICES {
        let text = std::fs::read_to_string(out.join(format!("{svc}.ndjson"))).unwrap_or_default();
        events.insert(svc.to_string(), text.lines().map(|l| serde_json::from_str(l).unwrap()).collect());
    }
    Some((dir, events, stderr))
}

const ALL_PARSES: &str = "inputs = [\"payments_parse\", \"orders_parse\", \"gateway_parse\", \"access_parse\", \"auth_parse\", \"cart_parse\", \"search_parse\"]";

/// The corpus config with `stage` (a transform reading all parse stages) put in front
/// of the metrics and sampling stages.
fn with_stage(cfg: String, name: &str, body: &str) -> String {
    let signals = format!("[transforms.signals]\ntype = \"metrics\"\n{ALL_PARSES}");
    assert!(cfg.contains(&signals), "the example's `signals` stage reads every parse stage");
    let cfg = cfg.replace(&signals, &format!("[transforms.signals]\ntype = \"metrics\"\ninputs = [\"{name}\"]"));
    format!("{cfg}\n[transforms.{name}]\n{ALL_PARSES}\n{body}\n")
}

/// The example's sampler turned into a pass-through (1 in 1, no auto bypass), so tests
/// see every event.
fn without_example_sampling(cfg: String) -> String {
    let sampler = "rate = 10\nkey_field = \"trace_id\"\nrules = [{ when = { event = \"health_check_ok\" }, rate = 100 }]\nauto_bypass = { when_error_ratio_above = 0.05, over = \"5m\", for = \"30m\" }\n";
    assert!(cfg.contains(sampler), "the example's `sampled` stage");
    cfg.replace(sampler, "rate = 1\n")
}

#[test]
fn corpus_parses_every_record_of_all_seven_services() {
    let Some((dir, events)) = run_corpus_config("4000") else { return };
    let mut failures = Vec::new();
    let mut total = 0;
    for svc in SERVICES {
        let offsets = line_offsets(&dir.path().join(format!("corpus/{svc}.log")));
        let by_offset: HashMap<u64, &serde_json::Value> =
            events[svc].iter().map(|e| (e["offset"].as_u64().unwrap(), e)).collect();
        let truth = std::fs::read_to_string(dir.path().join(format!("truth/{svc}.ndjson"))).unwrap();
        let records: Vec<serde_json::Value> = truth.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(events[svc].len(), records.len(), "{svc}: one event per record (multi-line records folded)");
        for r in &records {
            total += 1;
            let off = offsets[r["line"].as_u64().unwrap() as usize - 1];
            let Some(e) = by_offset.get(&off) else {
                failures.push(format!("{svc} line {}: no event at offset {off}", r["line"]));
                continue;
            };
            if e.get("parse_error").is_some() {
                failures.push(format!("{svc} line {}: parse_error {}", r["line"], e["parse_error"]));
            }
            if e["event"] != r["event"] {
                failures.push(format!("{svc} line {}: event {} != {}", r["line"], e["event"], r["event"]));
            }
            if !r["level"].is_null() && e["level"] != r["level"] {
                failures.push(format!("{svc} line {}: level {} != {}", r["line"], e["level"], r["level"]));
            }
            for (k, v) in r["fields"].as_object().unwrap() {
                let want = v.as_str().unwrap();
                if !e.get(k).is_some_and(|g| same(g, want)) {
                    failures.push(format!("{svc} line {}: field {k} = {:?}, want {want:?}", r["line"], e.get(k)));
                }
            }
        }
        eprintln!("{svc}: {} records checked", records.len());
    }
    assert!(
        failures.is_empty(),
        "{} of {total} records wrong; first: {:#?}",
        failures.len(),
        &failures[..failures.len().min(15)]
    );
    eprintln!("corpus: all {total} records have the truth's event, fields and level");
}

/// PII masking on the corpus: recall >= 99.9% per detector (no truth PII value is left in
/// the output), false positives <= 0.1% of records (trace ids, order/payment/request
/// ids, timestamps, durations, ports and other non-PII fields left intact).
#[test]
fn corpus_pii_recall_and_false_positives() {
    let Some((dir, events, _)) =
        run_corpus_config_with("4000", "0.5,0.2", |cfg| with_stage(cfg, "pii", "type = \"mask\"\nskip_fields = []"))
    else {
        return;
    };
    let mut per_type: HashMap<String, (usize, usize)> = HashMap::new();
    let mut fp_records = Vec::new();
    let mut total = 0usize;
    for svc in SERVICES {
        let offsets = line_offsets(&dir.path().join(format!("corpus/{svc}.log")));
        let by_offset: HashMap<u64, &serde_json::Value> =
            events[svc].iter().map(|e| (e["offset"].as_u64().unwrap(), e)).collect();
        let truth = std::fs::read_to_string(dir.path().join(format!("truth/{svc}.ndjson"))).unwrap();
        for l in truth.lines() {
            let r: serde_json::Value = serde_json::from_str(l).unwrap();
            total += 1;
            let off = offsets[r["line"].as_u64().unwrap() as usize - 1];
            let e = by_offset.get(&off).unwrap_or_else(|| panic!("{svc}: no event at {off}"));
            let out = e.to_string();
            let pii: Vec<(String, String)> = r["pii"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| (p["type"].as_str().unwrap().to_string(), p["value"].as_str().unwrap().to_string()))
                .collect();
            for (ty, v) in &pii {
                let slot = per_type.entry(ty.clone()).or_default();
                slot.0 += 1;
                if !out.contains(v.as_str()) && !out.contains(&serde_json::to_string(v).unwrap()[1..v.len() + 1]) {
                    slot.1 += 1;
                }
            }
            // False positives: non-PII values that were altered.
            let mut bad = Vec::new();
            for (k, v) in r["fields"].as_object().unwrap() {
                let v = v.as_str().unwrap();
                if pii.iter().any(|(_, p)| v.contains(p.as_str())) {
                    continue;
                }
                let ok = e.get(k).is_some_and(|g| match g {
                    serde_json::Value::String(s) => s == v,
                    serde_json::Value::Number(n) => v.parse::<f64>().ok() == n.as_f64(),
                    _ => false,
                });
                if !ok {
                    bad.push(format!("{k}: {v:?} -> {:?}", e.get(k)));
                }
            }
            if let Some(t) = r["trace_id"].as_str() {
                if e.get("trace_id").is_some_and(|g| g != t) {
                    bad.push(format!("trace_id {t} -> {}", e["trace_id"]));
                }
            }
            if pii.is_empty()
                && [
                    "[EMAIL]",
                    "[CREDIT_CARD]",
                    "[IPV4]",
                    "[IPV6]",
                    "[PHONE]",
                    "[US_SSN]",
                    "[IBAN]",
                    "[JWT]",
                    "[BEARER]",
                    "[AWS_KEY]",
                    "[SECRET]",
                ]
                .iter()
                .any(|m| out.contains(m))
            {
                bad.push(format!("masked something in a record without PII: {}", e["message"]));
            }
            if !bad.is_empty() {
                fp_records.push(format!("{svc} line {}: {}", r["line"], bad.join("; ")));
            }
        }
    }
    let mut report: Vec<String> = per_type
        .iter()
        .map(|(t, (n, masked))| format!("{t}: {masked}/{n} = {:.4}", *masked as f64 / *n as f64))
        .collect();
    report.sort();
    eprintln!("PII recall per detector: {report:?}; false-positive records: {} of {total}", fp_records.len());
    for (t, (n, masked)) in &per_type {
        assert!(*masked as f64 >= 0.999 * *n as f64, "recall for {t}: {masked}/{n}");
    }
    assert!(per_type.len() >= 7, "the corpus emits 7 PII types: {report:?}");
    assert!(
        fp_records.len() as f64 <= 0.001 * total as f64,
        "{} false-positive records of {total}: {:#?}",
        fp_records.len(),
        &fp_records[..fp_records.len().min(10)]
    );
}

/// Tail sampling on the corpus with an incident: every line of every trace that contains
/// an error is kept (lines whose text carries the trace id), while other traces are
/// sampled 1 in 10.
#[test]
fn corpus_tail_sampling_keeps_every_error_trace() {
    let Some((dir, events, _)) = run_corpus_config_with("4000", "0.6,0.1", |cfg| {
        with_stage(cfg, "trial_sampler", "type = \"sample\"\nrate = 10\ntail = { window = \"30s\", keep_if = { level_at_least = \"error\" }, max_traces = 100000 }")
    }) else {
        return;
    };
    // Output lines by (service, offset).
    let mut kept: std::collections::HashSet<(String, u64)> = std::collections::HashSet::new();
    for svc in SERVICES {
        for e in &events[svc] {
            kept.insert((svc.to_string(), e["offset"].as_u64().unwrap()));
        }
    }
    let mut records = Vec::new();
    for svc in SERVICES {
        let offsets = line_offsets(&dir.path().join(format!("corpus/{svc}.log")));
        let truth = std::fs::read_to_string(dir.path().join(format!("truth/{svc}.ndjson"))).unwrap();
        for l in truth.lines() {
            let r: serde_json::Value = serde_json::from_str(l).unwrap();
            let off = offsets[r["line"].as_u64().unwrap() as usize - 1];
            records.push((svc, off, r));
        }
    }
    let error_traces: std::collections::HashSet<String> = records
        .iter()
        .filter(|(_, _, r)| r["level"] == "error" && r["trace_id"].is_string())
        .map(|(_, _, r)| r["trace_id"].as_str().unwrap().to_string())
        .collect();
    assert!(error_traces.len() > 50, "the incident produces error traces: {}", error_traces.len());
    let mut checked = 0;
    let mut missing = Vec::new();
    let mut other = (0usize, 0usize);
    for (svc, off, r) in &records {
        // Only lines whose text carries the trace id can be grouped by it.
        if !matches!(*svc, "payments" | "orders" | "cart" | "search") {
            continue;
        }
        let Some(t) = r["trace_id"].as_str() else { continue };
        let is_kept = kept.contains(&(svc.to_string(), *off));
        if error_traces.contains(t) {
            checked += 1;
            if !is_kept {
                missing.push(format!("{svc} line {} ({})", r["line"], r["event"]));
            }
        } else if r["level"] == "info" {
            other.0 += 1;
            other.1 += is_kept as usize;
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {checked} lines of error traces dropped: {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    let ratio = other.1 as f64 / other.0 as f64;
    eprintln!(
        "tail sampling: {} error traces, all {checked} of their lines kept; other info lines kept {:.3}",
        error_traces.len(),
        ratio
    );
    assert!((0.05..0.16).contains(&ratio), "other traces sampled about 1 in 10: {ratio}");
}

/// auto_bypass switches sampling off by itself inside the incident window (and not
/// before). The corpus carries about one event per second, so a one-minute window holds
/// ~60 events and three ordinary card declines already exceed 5%; a five-minute window
/// gives the ratio a meaningful base here (at production volumes one minute does).
#[test]
fn corpus_auto_bypass_turns_on_inside_the_incident() {
    let Some((dir, _events, stderr)) = run_corpus_config_with("4000", "0.6,0.1", |cfg| {
        with_stage(cfg, "trial_sampler", "type = \"sample\"\nrate = 10\nauto_bypass = { when_error_ratio_above = 0.05, over = \"5m\", for = \"15m\" }")
    }) else {
        return;
    };
    // The incident window in event time: the bank gateway answers 504 only then.
    let text = std::fs::read_to_string(dir.path().join("corpus/gateway.log")).unwrap();
    let times: Vec<String> = text
        .lines()
        .filter(|l| l.contains("returned 504"))
        .map(|l| l[..19].replace('/', "-").replace(' ', "T"))
        .collect();
    let (first, last) = (times.first().unwrap().clone(), times.last().unwrap().clone());
    let audit = stderr
        .lines()
        .find(|l| l.contains("sampling bypass ON"))
        .unwrap_or_else(|| panic!("auto bypass never turned on: {stderr}"));
    assert!(audit.contains("\"by\":\"auto_bypass\""), "{audit}");
    let at = audit.split("ending at ").nth(1).unwrap()[..19].to_string();
    eprintln!("incident {first} .. {last}; auto bypass at {at}");
    assert!(
        at.as_str() >= first.as_str() && at.as_str() <= last.as_str(),
        "auto bypass at {at}, incident {first} .. {last}"
    );
}

/// Log-derived metrics on the corpus (with an incident): scraped counter values equal
/// the counts derived from the truth files.
#[test]
fn corpus_metrics_match_the_truth() {
    let Some(shared) = shared_dir() else {
        eprintln!("SKIP: ../shared is absent; corpus tests need ../shared/corpus/gen_legacy_logs.py");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (corpus, truth) = gen_corpus(&shared, dir.path(), "5", "3000", "0.6,0.1");
    // The example config's own `signals` stage, as shipped (its sampler keeps 1 in 10,
    // after the metrics).
    let cfg = std::fs::read_to_string(repo_dir().join("examples/corpus/sluice.toml")).unwrap();
    let port = free_port();
    let out = dir.path().join("out");
    let env = [
        ("CORPUS_DIR", corpus.display().to_string()),
        ("OUT_DIR", out.display().to_string()),
        ("DATA_DIR", dir.path().join("data").display().to_string()),
        ("SLUICE_EXAMPLES", repo_dir().join("examples").display().to_string()),
        ("SLUICE_API_ADDRESS", format!("127.0.0.1:{port}")),
    ];
    // Truth-derived counts.
    let mut records = 0usize;
    let mut retries: HashMap<String, u64> = HashMap::new();
    let mut statuses: HashMap<String, u64> = HashMap::new();
    let mut failures = 0u64;
    for svc in SERVICES {
        for l in std::fs::read_to_string(truth.join(format!("{svc}.ndjson"))).unwrap().lines() {
            let r: serde_json::Value = serde_json::from_str(l).unwrap();
            records += 1;
            match (svc, r["event"].as_str().unwrap()) {
                ("orders", "retry") => {
                    *retries.entry(r["fields"]["operation"].as_str().unwrap().to_string()).or_default() += 1
                }
                ("gateway", "upstream_response") => {
                    *statuses.entry(r["fields"]["status"].as_str().unwrap().to_string()).or_default() += 1
                }
                ("payments", "payment_failed") => failures += 1,
                _ => {}
            }
        }
    }
    let mut s = Sluice::start_with_env(dir.path(), &cfg, &env);
    let done = wait_until(Duration::from_secs(60), || {
        http_get(port, "/api/v1/status", None).is_some_and(|(_, b)| {
            let st: serde_json::Value = serde_json::from_str(&b).unwrap_or_default();
            st["components"].as_array().is_some_and(|c| {
                c.iter().any(|x| x["name"] == "signals" && x["events_out"].as_u64() == Some(records as u64))
            })
        })
    });
    assert!(done, "all {records} records through; stderr: {}", s.stderr());
    let (_, m) = http_get(port, "/metrics", None).unwrap();
    let value = |series: &str| -> u64 {
        m.lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap() as u64)
            .unwrap_or(0)
    };
    assert!(m.contains("# HELP operation_retries_total Retries logged by the services"), "{m}");
    for (op, n) in &retries {
        // Summed over the `reason` label.
        let prefix = format!("operation_retries_total{{source=\"orders\",operation=\"{op}\",");
        let sum: f64 = m
            .lines()
            .filter(|l| l.starts_with(&prefix))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum();
        assert_eq!(sum as u64, *n, "retries of {op}");
    }
    assert!(statuses.get("504").copied().unwrap_or(0) > 10, "the incident has 504s: {statuses:?}");
    for (status, n) in &statuses {
        assert_eq!(
            value(&format!("gateway_responses_total{{upstream=\"bank-gw\",status=\"{status}\"}}")),
            *n,
            "status {status}"
        );
    }
    assert_eq!(value("payment_failures_total"), failures);
    let all: f64 = m
        .lines()
        .filter(|l| l.starts_with("log_events_total{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(all as usize, records, "log_events_total counts every record once, before sampling");
    let total: u64 = statuses.values().sum();
    assert_eq!(value("upstream_duration_seconds_count{upstream=\"bank-gw\"}"), total);
    assert_eq!(value("upstream_duration_seconds_bucket{upstream=\"bank-gw\",le=\"+Inf\"}"), total);
    let timeouts = value("upstream_duration_seconds_bucket{upstream=\"bank-gw\",le=\"30\"}")
        - value("upstream_duration_seconds_bucket{upstream=\"bank-gw\",le=\"5\"}");
    assert_eq!(timeouts, statuses["504"], "the 30 s timeouts land in the (5, 30] bucket");
    eprintln!("metrics: retries {retries:?}, statuses {statuses:?}, payment failures {failures}");
    assert_eq!(s.terminate(Duration::from_secs(20)), 0);
}
