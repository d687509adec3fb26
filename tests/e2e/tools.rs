//! Operator tools: `sluice test`, `sluice tap`, `sluice top`, completions and the man
//! page, run as a user runs them.

use crate::harness::*;
use std::time::Duration;

fn run_test(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = sluice().arg("test").args(args).envs(env.iter().copied()).current_dir(repo_dir()).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every example configuration ships tests, and they pass.
#[test]
fn every_example_config_passes_its_tests() {
    let mut examples: Vec<_> = std::fs::read_dir(repo_dir().join("examples"))
        .unwrap()
        .flatten()
        .map(|e| e.path().join("sluice.toml"))
        .filter(|p| p.exists())
        .collect();
    examples.sort();
    assert!(examples.len() >= 3, "{examples:?}");
    for cfg in examples {
        let (code, out, err) = run_test(
            &["--config", cfg.to_str().unwrap()],
            &[("S3_BUCKET", "examples"), ("SLUICE_MASK_KEY", "example-key")],
        );
        assert_eq!(code, 0, "{}:\n{out}{err}", cfg.display());
        let summary = out.lines().last().unwrap_or_default();
        assert!(
            summary.ends_with("passed, 0 failed") && !summary.starts_with("0 tests"),
            "{}: {summary}",
            cfg.display()
        );
    }
    // Without --config: the embedded quickstart and its tests.
    let (code, out, err) = run_test(&[], &[]);
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn a_failing_test_shows_what_differs_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("sluice.toml");
    std::fs::write(
        &cfg,
        "[sources.app]\ntype = \"stdin\"\n[transforms.p]\ntype = \"parse\"\ninputs = [\"app\"]\nformat = \"{level} {message}\"\n\
         templates = [{ event = \"login\", pattern = \"user {user} logged in\" }]\n\
         [sinks.out]\ntype = \"console\"\ninputs = [\"p\"]\n\
         [[tests]]\nname = \"login parsed\"\ninput = { component = \"p\", lines = [\"info user bob logged in\"] }\n\
         expect = [{ event = \"login\", user = \"alice\" }]\n\
         [[tests]]\nname = \"noise\"\ninput = { component = \"app\", lines = [\"debug x\"] }\nexpect_none = true\n",
    )
    .unwrap();
    let (code, out, _) = run_test(&["--config", cfg.to_str().unwrap()], &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("FAIL  login parsed  ({}:12)", cfg.display())), "{out}");
    assert!(out.contains("      event 1: `user`: expected \"alice\", got \"bob\""), "{out}");
    assert!(out.contains("got event 1: {"), "{out}");
    assert!(out.contains("FAIL  noise") && out.contains("expected no event, got 1"), "{out}");
    assert!(out.ends_with("2 tests: 0 passed, 2 failed\n"), "{out}");

    // --tests FILE: tests kept apart from the configuration.
    let tests = dir.path().join("tests.toml");
    std::fs::write(
        &tests,
        "[[tests]]\nname = \"login parsed\"\ninput = { component = \"p\", lines = [\"info user bob logged in\"] }\n\
         expect = [{ event = \"login\", user = \"bob\", level = \"info\" }]\n",
    )
    .unwrap();
    let (code, out, err) = run_test(&["--config", cfg.to_str().unwrap(), "--tests", tests.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out, "ok    login parsed\n1 tests: 1 passed, 0 failed\n");

    // A test of a component that does not exist is a configuration error, located.
    std::fs::write(
        &tests,
        "[[tests]]\nname = \"x\"\ninput = { component = \"nope\", lines = [] }\nexpect_none = true\n",
    )
    .unwrap();
    let (code, _, err) = run_test(&["--config", cfg.to_str().unwrap(), "--tests", tests.to_str().unwrap()], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("no source or transform named `nope`"), "{err}");
    let bad = std::fs::read_to_string(&cfg).unwrap().replace("expect_none = true", "");
    std::fs::write(&cfg, bad).unwrap();
    let (code, _, err) = run_test(&["--config", cfg.to_str().unwrap()], &[]);
    assert_eq!(code, 2);
    assert!(err.contains(":15:1: `tests[1]` (\"noise\") needs `expect"), "{err}");
}

/// `sluice tap` shows the events leaving a stage while the pipeline delivers them all;
/// `sluice top --once` shows the components.
#[test]
fn tap_streams_a_stage_and_top_shows_the_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let api = free_port();
    let out = dir.path().join("out.ndjson");
    let cfg = format!(
        "{}[sources.app]\ntype = \"file\"\ninclude = [\"{}/*.log\"]\npoll_interval = \"10ms\"\n\
         [transforms.p]\ntype = \"parse\"\ninputs = [\"app\"]\nformat = \"{{level}} {{message}}\"\n\
         templates = [{{ event = \"done\", pattern = \"request {{n:int}} done\" }}]\n\
         [sinks.out]\ntype = \"file\"\ninputs = [\"p\"]\npath = \"{}\"\n",
        header(dir.path(), Some(api)),
        logs.display(),
        out.display()
    );
    let mut s = Sluice::start(dir.path(), &cfg);
    assert!(wait_until(Duration::from_secs(20), || http_get(api, "/health/ready", None).is_some_and(|(c, _)| c == 200)));
    let url = format!("http://127.0.0.1:{api}");
    // A writer keeps the pipeline busy while the tap listens.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (stop2, file) = (stop.clone(), logs.join("a.log"));
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        let mut f = std::fs::File::create(file).unwrap();
        let mut n = 0u64;
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            for _ in 0..50 {
                writeln!(f, "info request {n} done").unwrap();
                n += 1;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        n
    });
    let tap = sluice().args(["tap", "p", "--limit", "25", "--api", &url]).output().unwrap();
    assert!(tap.status.success(), "{}", String::from_utf8_lossy(&tap.stderr));
    let lines: Vec<serde_json::Value> =
        String::from_utf8(tap.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 25);
    assert!(lines.iter().all(|e| e["event"] == "done" && e["n"].is_i64() && e["level"] == "info"), "{lines:?}");

    let top = sluice().args(["top", "--once", "--interval", "0.5"]).env("SLUICE_API_URL", &url).output().unwrap();
    let frame = String::from_utf8_lossy(&top.stdout).into_owned();
    assert!(top.status.success(), "{}", String::from_utf8_lossy(&top.stderr));
    for want in ["COMPONENT", "IN/s", "app ", "p ", "out "] {
        assert!(frame.contains(want), "{want:?} missing from\n{frame}");
    }
    let p_line = frame.lines().find(|l| l.starts_with("p ")).unwrap();
    let out_rate: f64 = p_line.split_whitespace().nth(4).unwrap().parse().unwrap();
    assert!(out_rate > 0.0, "events flow through p: {p_line}");

    // Errors say what exists.
    let bad = sluice().args(["tap", "nope", "--api", &url]).output().unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no source or transform named `nope` (there are: app, p)"));
    let sink = sluice().args(["tap", "out", "--api", &url]).output().unwrap();
    assert!(String::from_utf8_lossy(&sink.stderr).contains("`out` is a sink"));

    // Tapping changed nothing downstream: every line written reaches the file, once.
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = writer.join().unwrap();
    assert!(wait_until(Duration::from_secs(20), || count_lines(&out) >= written), "{}", s.stderr());
    assert_eq!(s.terminate(Duration::from_secs(20)), 0);
    assert_eq!(count_lines(&out), written);
}

fn count_lines(p: &std::path::Path) -> u64 {
    std::fs::read(p).map(|b| b.iter().filter(|&&c| c == b'\n').count() as u64).unwrap_or(0)
}

/// The shipped unit file passes `systemd-analyze verify` without a warning (with the
/// built binary in place of /usr/local/bin/sluice and the generated man page).
#[test]
fn systemd_unit_verifies_and_man_page_and_completions_generate() {
    let man = sluice().arg("man").output().unwrap();
    assert!(man.status.success());
    let page = String::from_utf8(man.stdout).unwrap();
    assert!(page.starts_with(".ie \\n(.g .ds Aq") || page.contains(".TH sluice 1"), "{}", &page[..200.min(page.len())]);
    for section in
        ["SLUICE RUN", "SLUICE TEST", "SLUICE TAP", "SLUICE TOP", "SLUICE SAMPLING", "EXIT STATUS", "SLUICE_API_TOKEN"]
    {
        assert!(page.contains(section), "man page lacks {section}");
    }
    let comp = sluice().args(["completions", "bash"]).output().unwrap();
    let script = String::from_utf8(comp.stdout).unwrap();
    assert!(script.contains("_sluice()") && script.contains("tap") && script.contains("--limit"), "bash completion");
    let check = std::process::Command::new("bash").args(["-n", "-c", &script]).output().unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));

    let Some(analyze) = tool("systemd-analyze", "systemd") else { return };
    let dir = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(repo_dir().join("deploy/systemd/sluice.service"))
        .unwrap()
        .replace("/usr/local/bin/sluice", BIN);
    std::fs::write(dir.path().join("sluice.service"), unit).unwrap();
    std::fs::create_dir_all(dir.path().join("man/man1")).unwrap();
    std::fs::write(dir.path().join("man/man1/sluice.1"), &page).unwrap();
    let v = std::process::Command::new(analyze)
        .args(["verify", dir.path().join("sluice.service").to_str().unwrap()])
        .env("MANPATH", dir.path().join("man"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&v.stderr);
    assert!(v.status.success() && err.trim().is_empty(), "systemd-analyze verify: {err}");
}

/// The README's `[[tests]]` example is the quickstart's own (so it runs, and passes).
#[test]
fn readme_test_example_is_part_of_the_quickstart() {
    let readme = std::fs::read_to_string(repo_dir().join("README.md")).unwrap();
    let quick = std::fs::read_to_string(repo_dir().join("examples/quickstart/sluice.toml")).unwrap();
    let start = readme.find("<!-- partial: two of the quickstart's tests").expect("the example");
    let block = &readme[start..];
    let block = &block[block.find("```toml\n").unwrap() + 8..];
    let block = &block[..block.find("```").unwrap()];
    for test in block.split("\n\n") {
        assert!(quick.contains(test.trim()), "not in the quickstart:\n{test}");
    }
}
