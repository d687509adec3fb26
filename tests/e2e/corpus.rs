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
    let Some(shared) = shared_dir() else {
        eprintln!("SKIP: ../shared is absent; corpus tests need ../shared/corpus/gen_legacy_logs.py");
        return None;
    };
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus");
    let truth = dir.path().join("truth");
    let st = std::process::Command::new("python3")
        .arg(shared.join("corpus/gen_legacy_logs.py"))
        .args(["--seed", "11", "--requests", requests, "--incident", "0.5,0.2", "--out"])
        .arg(&corpus)
        .arg("--truth")
        .arg(&truth)
        .output()
        .unwrap();
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
    let cfg = std::fs::read_to_string(repo_dir().join("examples/corpus/sluice.toml")).unwrap().replace("stop_at_eof = false", "stop_at_eof = true");
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
    let mut events = HashMap::new();
    for svc in SERVICES {
        let text = std::fs::read_to_string(out.join(format!("{svc}.ndjson"))).unwrap_or_default();
        events.insert(svc.to_string(), text.lines().map(|l| serde_json::from_str(l).unwrap()).collect());
    }
    Some((dir, events))
}

#[test]
fn corpus_parses_every_record_of_all_seven_services() {
    let Some((dir, events)) = run_corpus_config("4000") else { return };
    let mut failures = Vec::new();
    let mut total = 0;
    for svc in SERVICES {
        let offsets = line_offsets(&dir.path().join(format!("corpus/{svc}.log")));
        let by_offset: HashMap<u64, &serde_json::Value> = events[svc].iter().map(|e| (e["offset"].as_u64().unwrap(), e)).collect();
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
    assert!(failures.is_empty(), "{} of {total} records wrong; first: {:#?}", failures.len(), &failures[..failures.len().min(15)]);
    eprintln!("corpus: all {total} records have the truth's event, fields and level");
}
