//! The guides in docs/ are run as written: every ```sh block of docs/on-call.md and
//! docs/onboarding.md runs in bash (`-e -o pipefail`) with `sluice` on PATH, and must
//! succeed; a few outputs are checked too.

use crate::harness::*;
use std::path::Path;
use std::time::Duration;

/// The ```sh blocks of a document, with their first line number.
fn sh_blocks(doc: &str) -> Vec<(usize, String)> {
    let text = std::fs::read_to_string(repo_dir().join(doc)).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim() == "```sh" {
            let start = i + 1;
            let mut j = start;
            while j < lines.len() && lines[j].trim() != "```" {
                j += 1;
            }
            out.push((start + 1, lines[start..j].join("\n") + "\n"));
            i = j;
        }
        i += 1;
    }
    out
}

/// Run each block; returns their outputs. Panics with the block and its output on failure.
fn run_guide(doc: &str, cwd: &Path, env: &[(&str, String)]) -> Vec<String> {
    let bin_dir = Path::new(BIN).parent().unwrap();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let blocks = sh_blocks(doc);
    assert!(!blocks.is_empty(), "{doc} has no sh blocks");
    let mut outputs = Vec::new();
    for (line, block) in blocks {
        let out = std::process::Command::new("bash")
            .args(["-e", "-o", "pipefail", "-c", &block])
            .current_dir(cwd)
            .env("PATH", &path)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .output()
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{doc}:{line}: this block failed:\n{block}\n--- output:\n{text}");
        outputs.push(text);
    }
    outputs
}

#[test]
fn on_call_guide_runs_against_a_running_sluice() {
    if tool("curl", "curl").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let quick = repo_dir().join("examples/quickstart/logs");
    for f in ["payments.log", "orders.log", "cart.log"] {
        std::fs::copy(quick.join(f), logs.join(f)).unwrap();
    }
    let api = free_port();
    let out = dir.path().join("out");
    let env = vec![
        ("SLUICE_MASK_KEY", "guide-key".to_string()),
        ("LOGS_DIR", logs.display().to_string()),
        ("OUT_DIR", out.display().to_string()),
        ("DATA_DIR", dir.path().join("data").display().to_string()),
        ("SLUICE_API_ADDRESS", format!("127.0.0.1:{api}")),
        ("SLUICE_API_URL", format!("http://127.0.0.1:{api}")),
    ];
    let cfg = std::fs::read_to_string(repo_dir().join("examples/oncall/sluice.toml")).unwrap();
    let mut s = Sluice::start_with_env(dir.path(), &cfg, &env);
    assert!(
        wait_until(Duration::from_secs(30), || out.join("payments.ndjson").exists()
            && http_get(api, "/health/ready", None).is_some_and(|(c, _)| c == 200)),
        "{}",
        s.stderr()
    );
    // The services keep logging while on-call works.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (stop2, src, dst) = (stop.clone(), quick.join("payments.log"), logs.join("payments.log"));
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        let lines: Vec<String> = std::fs::read_to_string(src).unwrap().lines().map(str::to_string).collect();
        let mut f = std::fs::OpenOptions::new().append(true).open(dst).unwrap();
        for l in lines.iter().cycle() {
            if stop2.load(std::sync::atomic::Ordering::Relaxed) {
                break;
            }
            writeln!(f, "{l}").unwrap();
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    let outputs = run_guide("docs/on-call.md", dir.path(), &env);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    assert_eq!(s.terminate(Duration::from_secs(30)), 0, "{}", s.stderr());

    let all = outputs.join("\n");
    assert!(outputs[0].contains("COMPONENT") && outputs[0].contains("payments_parse"), "{}", outputs[0]);
    assert!(outputs[1].contains("sampled: sampling OFF until") && outputs[1].contains("INC-4211"), "{}", outputs[1]);
    assert!(outputs[2].contains("payment_failures_total"), "{}", outputs[2]);
    let pseudonym = outputs[3].lines().next().unwrap();
    assert!(pseudonym.starts_with("email:") && pseudonym.len() == "email:".len() + 12, "{all}");
    assert!(outputs[3].lines().skip(1).all(|l| l.contains(pseudonym) && !l.contains("ana.silva56")), "{}", outputs[3]);
    assert!(outputs[3].lines().count() >= 3, "the customer's lines were found: {}", outputs[3]);
    assert_eq!(outputs[4].lines().count(), 5, "{}", outputs[4]);
    assert!(outputs[5].trim_end().ends_with("sampled: sampling on"), "{}", outputs[5]);
}

#[test]
fn onboarding_guide_goes_from_raw_lines_to_passing_tests() {
    let dir = tempfile::tempdir().unwrap();
    let env = vec![("LOGS_DIR", repo_dir().join("examples/quickstart/logs").display().to_string())];
    let outputs = run_guide("docs/onboarding.md", dir.path(), &env);
    assert!(outputs[0].contains("Payment failed for user <*>"), "{}", outputs[0]);
    assert!(outputs[1].contains("pattern = \"Payment pay_{payment} succeeded in {duration}\""), "{}", outputs[1]);
    assert!(outputs[3].contains("2 tests: 2 passed, 0 failed") && outputs[3].contains(": ok:"), "{}", outputs[3]);
}
