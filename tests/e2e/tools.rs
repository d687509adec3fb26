//! Operator tools: `sluice test`, `sluice tap`, `sluice top`, completions and the man
//! page, run as a user runs them.

use crate::harness::*;

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
        let (code, out, err) = run_test(&["--config", cfg.to_str().unwrap()], &[("S3_BUCKET", "examples")]);
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
