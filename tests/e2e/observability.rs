//! The shipped operations files: deploy/prometheus/alerts.yml (promtool, and a real
//! Prometheus server scraping sluice during a replayed incident) and
//! deploy/grafana/sluice.json (valid, and naming only metrics sluice exports).
//!
//! promtool and prometheus come from Debian's `prometheus` package; without them these
//! tests skip with a message, unless SLUICE_REQUIRE_TOOLS is set (CI sets it).

use crate::harness::*;
use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A program on PATH, or None (a skip) when it is absent outside CI.
fn tool(name: &str) -> Option<PathBuf> {
    crate::harness::tool(name, "prometheus")
}

#[test]
fn shipped_alert_rules_pass_promtool_check_and_unit_tests() {
    let Some(promtool) = tool("promtool") else { return };
    let dir = repo_dir().join("deploy/prometheus");
    for args in [&["check", "rules", "alerts.yml"][..], &["test", "rules", "alerts_test.yml"][..]] {
        let out = std::process::Command::new(&promtool).args(args).current_dir(&dir).output().unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "promtool {args:?}:\n{text}");
        assert!(text.contains("SUCCESS"), "{text}");
    }
    // Every alert the issue asks for is there, with `for:`, a severity and a summary.
    let rules = std::fs::read_to_string(dir.join("alerts.yml")).unwrap();
    let tests = std::fs::read_to_string(dir.join("alerts_test.yml")).unwrap();
    let alerts: Vec<&str> = rules.lines().filter_map(|l| l.trim().strip_prefix("- alert: ")).collect();
    assert_eq!(alerts.len(), 8, "{alerts:?}");
    for a in &alerts {
        assert!(
            tests.contains(&format!("alertname: {a}\n        exp_alerts:\n          - exp_labels")),
            "{a} has a unit test that expects it to fire"
        );
        assert!(
            tests.contains(&format!("alertname: {a}\n        exp_alerts: []")),
            "{a} has a unit test that expects it quiet"
        );
    }
    assert_eq!(rules.matches("\n        for: ").count(), 8);
    assert_eq!(rules.matches("severity: ").count(), 8);
    assert_eq!(rules.matches("summary: ").count(), 8);
}

/// Metric names in a PromQL expression: identifiers that are not functions, keywords,
/// label names or label values.
fn metric_names(expr: &str) -> BTreeSet<String> {
    // Drop quoted strings, label matchers, ranges and grouping lists.
    let mut s = String::new();
    let mut depth_brace = 0;
    let mut depth_bracket = 0;
    let mut quote = None;
    for c in expr.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'' | '`') => quote = Some(c),
            (None, '{') => depth_brace += 1,
            (None, '}') => depth_brace -= 1,
            (None, '[') => depth_bracket += 1,
            (None, ']') => depth_bracket -= 1,
            (None, c) if depth_brace == 0 && depth_bracket == 0 => s.push(c),
            _ => {}
        }
    }
    let mut names = BTreeSet::new();
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut after_grouping = false;
    let mut prev: Option<String> = None;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_alphabetic() || c == b'_' || c == b':' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b':') {
                i += 1;
            }
            let word = &s[start..i];
            let next = s[i..].trim_start().chars().next();
            const KEYWORDS: [&str; 11] = [
                "by",
                "without",
                "and",
                "or",
                "unless",
                "on",
                "ignoring",
                "group_left",
                "group_right",
                "offset",
                "bool",
            ];
            if after_grouping {
                // The label list of by (...) / without (...) / on (...) / ignoring (...).
                if next == Some(')') {
                    after_grouping = false;
                }
            } else if ["by", "without", "on", "ignoring"].contains(&word) {
                // `sum by (…) (…)`: the word before was an aggregation, not a metric.
                if let Some(p) = prev.take() {
                    names.remove(&p);
                }
                after_grouping = true;
                continue;
            } else if next != Some('(') && !KEYWORDS.contains(&word) && !word.starts_with('$') {
                names.insert(word.to_string());
                prev = Some(word.to_string());
                continue;
            }
            prev = None;
        } else if c.is_ascii_digit() || c == b'.' {
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'.') {
                i += 1;
            }
        } else {
            i += 1;
        }
    }
    names
}

#[test]
fn promql_metric_name_extraction() {
    let n = metric_names(
        r#"histogram_quantile(0.99, sum by (upstream, le) (rate(upstream_duration_seconds_bucket{a="b{c}"}[5m]))) > 5 and on (x) sluice_up offset 5m"#,
    );
    assert_eq!(n.into_iter().collect::<Vec<_>>(), ["sluice_up", "upstream_duration_seconds_bucket"]);
    let n = metric_names("max by (stage) (sluice_sampling_bypass) == 1");
    assert_eq!(n.into_iter().collect::<Vec<_>>(), ["sluice_sampling_bypass"]);
    let n = metric_names(
        r#"topk(10, sum by (source, event) (rate(log_events_total{source=~"$source"}[$__rate_interval]))) / 1e3"#,
    );
    assert_eq!(n.into_iter().collect::<Vec<_>>(), ["log_events_total"]);
}

/// Names on a /metrics page, with the _bucket/_sum/_count series of histograms.
fn exported_names(page: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for l in page.lines() {
        if let Some(rest) = l.strip_prefix("# TYPE ") {
            let mut it = rest.split(' ');
            let (name, kind) = (it.next().unwrap(), it.next().unwrap_or(""));
            names.insert(name.to_string());
            if kind == "histogram" || kind == "summary" {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{suffix}"));
                }
            }
        } else if !l.starts_with('#') && !l.is_empty() {
            names.insert(l.split(['{', ' ']).next().unwrap().to_string());
        }
    }
    names
}

/// Run the example corpus config (its metrics and sampler) on the bundled sample logs,
/// and check every metric named by the dashboard and the alert rules is on /metrics.
#[test]
fn dashboard_and_alerts_name_only_metrics_sluice_exports() {
    let repo = repo_dir();
    let dash: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo.join("deploy/grafana/sluice.json")).unwrap())
            .expect("the dashboard is valid JSON");
    assert!(dash["title"].is_string() && dash["uid"].is_string());
    let mut wanted: BTreeSet<String> = BTreeSet::new();
    let mut exprs = 0;
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().into_iter().flatten() {
            let e = t["expr"].as_str().unwrap();
            let names = metric_names(e);
            assert!(!names.is_empty(), "{e}");
            wanted.extend(names);
            exprs += 1;
        }
    }
    for v in dash["templating"]["list"].as_array().unwrap() {
        if let Some(d) = v["definition"].as_str() {
            // label_values(METRIC, LABEL)
            let inner = d.trim_start_matches("label_values(").split(',').next().unwrap();
            wanted.extend(metric_names(inner));
        }
    }
    assert!(exprs >= 15, "{exprs} queries");
    // The alert rules' expressions: the indented block after `expr:`.
    let rules = std::fs::read_to_string(repo.join("deploy/prometheus/alerts.yml")).unwrap();
    let mut lines = rules.lines().peekable();
    while let Some(l) = lines.next() {
        if let Some(rest) = l.trim().strip_prefix("expr:") {
            let mut e = rest.trim().trim_start_matches('|').to_string();
            while let Some(n) = lines.peek() {
                if n.trim().is_empty() || n.trim_start().starts_with("for:") || n.trim_start().starts_with('#') {
                    break;
                }
                e.push(' ');
                e.push_str(n.trim());
                lines.next();
            }
            wanted.extend(metric_names(&e));
        }
    }
    for golden in [
        "log_events_total",
        "operation_retries_total",
        "gateway_responses_total",
        "upstream_duration_seconds_bucket",
        "sluice_events_dropped_total",
        "sluice_file_unread_bytes",
        "sluice_sampling_bypass",
    ] {
        assert!(wanted.contains(golden), "{golden} is used: {wanted:?}");
    }

    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let env = [
        ("OUT_DIR", dir.path().join("out").display().to_string()),
        ("DATA_DIR", dir.path().join("data").display().to_string()),
        ("SLUICE_EXAMPLES", repo.join("examples").display().to_string()),
        ("CORPUS_DIR", repo.join("examples/quickstart/logs").display().to_string()),
        ("SLUICE_API_ADDRESS", format!("127.0.0.1:{port}")),
    ];
    let cfg = std::fs::read_to_string(repo.join("examples/corpus/sluice.toml")).unwrap();
    let mut s = Sluice::start_with_env(dir.path(), &cfg, &env);
    let mut missing = wanted.clone();
    let ok = wait_until(Duration::from_secs(30), || {
        if let Some((200, page)) = http_get(port, "/metrics", None) {
            let have = exported_names(&page);
            missing = wanted.iter().filter(|w| !have.contains(*w)).cloned().collect();
        }
        missing.is_empty()
    });
    assert!(ok, "named by the dashboard or alerts but not exported: {missing:?}; stderr: {}", s.stderr());
    assert_eq!(s.terminate(Duration::from_secs(20)), 0);
}

/// `YYYY-MM-DD HH:MM:SS` at the start of a line of the payments, orders or gateway log.
fn line_time(l: &str) -> Option<String> {
    let t = l.get(..19)?.replace('/', "-");
    (t.as_bytes()[4] == b'-' && t.as_bytes()[10] == b' ' && t.as_bytes()[..4].iter().all(u8::is_ascii_digit))
        .then_some(t)
}

fn seconds_of(t: &str) -> i64 {
    let h: i64 = t[11..13].parse().unwrap();
    let m: i64 = t[14..16].parse().unwrap();
    let s: i64 = t[17..19].parse().unwrap();
    h * 3600 + m * 60 + s
}

/// Replay a corpus with an incident into tailed files at 120× speed, have a real
/// Prometheus scrape sluice every second and evaluate the shipped rules (windows scaled
/// by the same factor), and see the retry-rate alert quiet before the incident and
/// firing inside it.
#[test]
fn prometheus_fires_the_retry_alert_during_a_replayed_incident() {
    let Some(shared) = shared_dir() else {
        eprintln!("SKIP: ../shared is absent; this test replays ../shared/corpus/gen_legacy_logs.py output");
        return;
    };
    let Some(prometheus) = tool("prometheus") else { return };
    let dir = tempfile::tempdir().unwrap();
    let gen = dir.path().join("gen");
    // 2000 requests from 01:00; the gateway incident covers about 02:00 to 02:50.
    let st = std::process::Command::new("python3")
        .arg(shared.join("corpus/gen_legacy_logs.py"))
        .args(["--seed", "3", "--requests", "2000", "--incident", "0.4,0.3", "--out"])
        .arg(&gen)
        .output()
        .unwrap();
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
    let services = ["payments", "orders", "gateway"];
    // (seconds of day, line) per service; continuation lines take the time before them.
    let mut lines: Vec<Vec<(i64, String)>> = Vec::new();
    for svc in services {
        let text = std::fs::read_to_string(gen.join(format!("{svc}.log"))).unwrap();
        let mut t = 0;
        let mut v = Vec::new();
        for l in text.lines() {
            if let Some(ts) = line_time(l) {
                t = seconds_of(&ts);
            }
            v.push((t, format!("{l}\n")));
        }
        lines.push(v);
    }
    // The incident is where 504s come densely: between its first and last 504 of the
    // dense stretch. Normal 504s are rare, so use the 10th and the 10th-from-last.
    let t504: Vec<i64> = lines[2].iter().filter(|(_, l)| l.contains(" returned 504 ")).map(|(t, _)| *t).collect();
    assert!(t504.len() > 50, "an incident with many 504s: {}", t504.len());
    let incident = (t504[10], t504[t504.len() - 10]);
    eprintln!("incident {}..{} (s of day)", incident.0, incident.1);

    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let port = free_port();
    let env = [
        ("CORPUS_DIR", logs.display().to_string()),
        ("OUT_DIR", dir.path().join("out").display().to_string()),
        ("DATA_DIR", dir.path().join("data").display().to_string()),
        ("SLUICE_EXAMPLES", repo_dir().join("examples").display().to_string()),
        ("SLUICE_API_ADDRESS", format!("127.0.0.1:{port}")),
    ];
    let cfg = std::fs::read_to_string(repo_dir().join("examples/corpus/sluice.toml")).unwrap();
    let mut s = Sluice::start_with_env(dir.path(), &cfg, &env);

    // The shipped rules with every window and `for:` divided by the replay speed (120×):
    // 5m of event time is 2.5 s here; use 10 s windows (20 min of event time) and
    // `for: 5s` (10 min), so a scrape every second gives each window ten samples.
    let rules = std::fs::read_to_string(repo_dir().join("deploy/prometheus/alerts.yml")).unwrap();
    assert!(rules.contains("[5m]") && rules.contains("for: 5m"));
    let rules = rules
        .replace("[5m]", "[10s]")
        .replace("[15m]", "[10s]")
        .replace("for: 5m", "for: 5s")
        .replace("for: 10m", "for: 5s")
        .replace("for: 2h", "for: 60s");
    std::fs::write(dir.path().join("alerts.yml"), rules).unwrap();
    let prom_port = free_port();
    std::fs::write(
        dir.path().join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - alerts.yml\nscrape_configs:\n  - job_name: sluice\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
        ),
    )
    .unwrap();
    let prom_log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _prom = KillOnDrop(
        std::process::Command::new(prometheus)
            .current_dir(dir.path())
            .args([
                "--config.file=prometheus.yml",
                "--storage.tsdb.path=tsdb",
                &format!("--web.listen-address=127.0.0.1:{prom_port}"),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(prom_log)
            .spawn()
            .unwrap(),
    );
    let ready =
        wait_until(Duration::from_secs(30), || http_get(prom_port, "/-/ready", None).is_some_and(|(c, _)| c == 200));
    assert!(
        ready,
        "prometheus ready: {}",
        std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default()
    );
    assert!(
        wait_until(Duration::from_secs(10), || http_get(port, "/health/ready", None).is_some_and(|(c, _)| c == 200))
    );

    // Replay from 01:30 (30 min of normal traffic) to the end of the incident + 5 min.
    const SPEED: i64 = 120;
    let start_t = 5400;
    let end_t = incident.1 + 300;
    let mut files: Vec<std::fs::File> =
        services.iter().map(|s| std::fs::File::create(logs.join(format!("{s}.log"))).unwrap()).collect();
    let mut next = vec![0usize; services.len()];
    // Lines before the start go in at once (history), then in step with the clock.
    let began = Instant::now();
    let mut fired_at: Option<i64> = None;
    let mut quiet_checks = 0;
    let mut last_poll = Instant::now() - Duration::from_secs(1);
    loop {
        let now_t = start_t + (began.elapsed().as_millis() as i64 * SPEED / 1000);
        for (i, f) in files.iter_mut().enumerate() {
            let mut buf = String::new();
            while next[i] < lines[i].len() && lines[i][next[i]].0 <= now_t {
                buf.push_str(&lines[i][next[i]].1);
                next[i] += 1;
            }
            if !buf.is_empty() {
                f.write_all(buf.as_bytes()).unwrap();
            }
        }
        if last_poll.elapsed() >= Duration::from_millis(500) {
            last_poll = Instant::now();
            let firing: Vec<String> = http_get(prom_port, "/api/v1/alerts", None)
                .and_then(|(_, b)| serde_json::from_str::<serde_json::Value>(&b).ok())
                .map(|v| {
                    v["data"]["alerts"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|a| a["state"] == "firing" && a["labels"]["alertname"] == "LogRetryRateHigh")
                        .map(|a| a["labels"]["source"].as_str().unwrap_or("").to_string())
                        .collect()
                })
                .unwrap_or_default();
            // Before the incident (leaving the first window, which holds the history,
            // aside): the retry alert stays quiet.
            if now_t >= start_t + 1200 && now_t < incident.0 {
                assert!(
                    firing.is_empty(),
                    "retry alert firing at {now_t} s, before the incident ({}): {firing:?}",
                    incident.0
                );
                quiet_checks += 1;
            }
            if firing.iter().any(|s| s == "orders") && fired_at.is_none() {
                fired_at = Some(now_t);
                eprintln!("LogRetryRateHigh firing for {firing:?} at {now_t} s of the replay");
            }
        }
        if now_t > end_t || fired_at.is_some_and(|t| now_t > t + 60) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let fired = fired_at.unwrap_or_else(|| panic!("the retry alert never fired; sluice: {}", s.stderr()));
    assert!(quiet_checks >= 10, "{quiet_checks} checks before the incident");
    assert!(
        fired >= incident.0 && fired <= incident.1,
        "fired at {fired} s, inside the incident {}..{}",
        incident.0,
        incident.1
    );
    assert_eq!(s.terminate(Duration::from_secs(20)), 0);
}
