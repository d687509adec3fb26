//! `sluice templates mine`: the summary, `--toml` (loadable by `parse`), `--per-line`,
//! and grouping accuracy on the eight shared Loghub sets.

use crate::harness::*;
use sluice_parsers::mining::grouping_accuracy;
use std::collections::HashMap;
use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

fn mine(args: &[&str], stdin: &[u8]) -> (String, String) {
    let mut c = sluice()
        .args(["templates", "mine"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = c.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = c.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    (String::from_utf8(out.stdout).unwrap(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Lines of a small legacy service: four message kinds, one with a user name.
fn service_lines() -> Vec<String> {
    let users = ["alice", "bob", "carol", "dave", "erin", "frank"];
    let mut v = Vec::new();
    for i in 0..300u32 {
        let ts = format!("2026-11-21 10:{:02}:{:02},{:03}", i / 60 % 60, i % 60, i % 1000);
        v.push(match i % 5 {
            0 | 1 => format!("{ts} INFO [pay] Payment failed for user {}: Card declined", 1000 + i),
            2 => format!(
                "{ts} WARN [pay] Retrying charge for payment pay_{:08x} (attempt {} of 3) after {}ms",
                i * 7919,
                i % 3 + 1,
                100 * i
            ),
            3 => format!(
                "{ts} INFO [pay] Session opened for {} from 10.0.{}.{}:{}",
                users[i as usize % users.len()],
                i % 7,
                i % 250,
                40000 + i
            ),
            _ => format!(
                "{ts} ERROR [pay] Gateway bank-gw timed out after 30000ms request_id={:016x}",
                u64::from(i) * 0x9e37_79b9
            ),
        });
    }
    v
}

#[test]
fn mine_prints_templates_and_writes_a_templates_file_parse_loads() {
    let dir = tempfile::tempdir().unwrap();
    let lines = service_lines();
    let log = dir.path().join("pay.log");
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    let toml = dir.path().join("pay-templates.toml");
    let format = "{timestamp} {level} [{logger}] {message}";
    let out = sluice().args(["templates", "mine", "--format", format, "--toml"]).arg(&toml).arg(&log).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    // Most frequent first, with counts and an example each.
    let rows: Vec<&str> = stdout.lines().filter(|l| !l.trim_start().starts_with("e.g.")).collect();
    assert_eq!(rows.len(), 4, "{stdout}");
    assert!(rows[0].trim_start().starts_with("120  Payment failed for user <*>: Card declined"), "{stdout}");
    let counts: Vec<u64> = rows.iter().map(|r| r.split_whitespace().next().unwrap().parse().unwrap()).collect();
    assert_eq!(counts, [120, 60, 60, 60]);
    assert!(stdout.contains("Session opened for <*> from <*>"), "six user names are a variable: {stdout}");
    assert!(stdout.contains("e.g. Payment failed for user 1000: Card declined"), "{stdout}");
    // The templates file: readable names, loadable by `parse`, and it names every line.
    let t = std::fs::read_to_string(&toml).unwrap();
    assert!(
        t.contains("event = \"payment_failed_for_user\"")
            && t.contains("pattern = \"Payment failed for user {user}: Card declined\""),
        "{t}"
    );
    let cfg = format!(
        "{}[sources.f]\ntype = \"file\"\ninclude = [\"{}\"]\nstop_at_eof = true\n[transforms.p]\ntype = \"parse\"\ninputs = [\"f\"]\nformat = \"{format}\"\ntemplates_file = \"{}\"\n[sinks.o]\ntype = \"file\"\ninputs = [\"p\"]\npath = \"{}/out.ndjson\"\n",
        header(dir.path(), None),
        log.display(),
        toml.display(),
        dir.path().join("out").display()
    );
    let mut s = Sluice::start(dir.path(), &cfg);
    assert_eq!(s.wait_exit(Duration::from_secs(30)), 0, "{}", s.stderr());
    let events = read_events(&dir.path().join("out"));
    assert_eq!(events.len(), lines.len());
    let mut by_event: HashMap<String, usize> = HashMap::new();
    for e in &events {
        assert!(e.get("parse_error").is_none(), "{e}");
        *by_event
            .entry(e["event"].as_str().unwrap_or_else(|| panic!("a mined template names every line: {e}")).to_string())
            .or_default() += 1;
    }
    assert_eq!(by_event["payment_failed_for_user"], 120, "{by_event:?}");
    assert_eq!(by_event.len(), 4, "{by_event:?}");
    let retry = events.iter().find(|e| e["event"] == "retrying_charge_for_payment").unwrap();
    assert!(retry["attempt"].is_string() && retry["payment"].as_str().unwrap().len() == 8, "{retry}");
}

/// A raw syslog file mixing RFC 3164 and RFC 5424 lines: without `--format`, the syslog
/// header is recognised (and said), so one message kind is one template whichever header
/// it came with; `--format none` mines whole lines, where the two headers split it; lines
/// of no preset or known layout are mined whole, and nothing is said; log4j's layout is
/// one of the known ones.
#[test]
fn mine_detects_a_preset_header_or_mines_whole_lines() {
    let mut lines = Vec::new();
    for i in 0..200u32 {
        let (user, ip, port) = (["root", "admin", "git", "oracle", "test"][i as usize % 5], i % 250, 1024 + i * 7);
        lines.push(if i % 3 == 0 {
            format!(
                "<38>1 2026-11-21T01:{:02}:{:02}.000Z auth-{} sshd {} - - Failed password for {user} from 203.0.113.{ip} port {port} ssh2",
                i / 60,
                i % 60,
                i % 3,
                3000 + i
            )
        } else {
            format!(
                "<38>Nov 21 01:{:02}:{:02} auth-{} sshd[{}]: Failed password for {user} from 203.0.113.{ip} port {port} ssh2",
                i / 60,
                i % 60,
                i % 3,
                3000 + i
            )
        });
    }
    let input = lines.join("\n") + "\n";
    let (out, err) = mine(&[], input.as_bytes());
    assert!(err.contains("200 of the first 200 lines have `syslog` headers"), "{err}");
    assert!(out.trim_start().starts_with("200  Failed password for <*> from <*> port <*> ssh2"), "{out}");
    let (whole, err) = mine(&["--format", "none"], input.as_bytes());
    assert!(!err.contains("headers"), "{err}");
    let rows: Vec<&str> = whole.lines().filter(|l| !l.trim_start().starts_with("e.g.")).collect();
    assert_eq!(rows.len(), 2, "whole lines: one template per header kind: {whole}");
    // Python logging lines: the lenient syslog header does not count without a program name.
    let (_, err) = mine(&[], (service_lines().join("\n") + "\n").as_bytes());
    assert!(!err.contains("headers"), "{err}");
    // A layout's placeholders would take any words: without a timestamp there, no header.
    let no_time: String = (0..50).map(|i| format!("worker-{i} INFO app.Main: started job {i}\n")).collect();
    let (_, err) = mine(&[], no_time.as_bytes());
    assert!(!err.contains("headers"), "{err}");
    // log4j's `%d %p [%t] %c: %m`: thread names of one or several words no longer split
    // a message kind (whole lines, each word count is another template).
    let threads = ["main", "RMCommunicator Allocator", "IPC Server handler 3 on 8020", "pool-1-thread-2"];
    let log4j: String = (0..100u32)
        .map(|i| {
            format!(
                "2026-11-21 01:00:{:02},{:03} {} [{}] org.acme.ipc.Client: Address change detected. Old: db-{} New: db-{}\n",
                i % 60,
                i,
                ["INFO", "WARN"][i as usize % 2],
                threads[i as usize % 4],
                i,
                i + 1
            )
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let toml = dir.path().join("t.toml");
    let (out, err) = mine(&["--toml", toml.to_str().unwrap()], log4j.as_bytes());
    assert!(err.contains("have `{timestamp} {level} [{thread}] {logger}: {message}` headers"), "{err}");
    // The templates file says which header its patterns follow, ready for `parse`.
    let t = std::fs::read_to_string(&toml).unwrap();
    assert!(t.contains("format = \"{timestamp} {level} [{thread}] {logger}: {message}\""), "{t}");
    // Files mined together each get their own header: syslog, then log4j.
    let (a, b) = (dir.path().join("auth.log"), dir.path().join("app.log"));
    std::fs::write(&a, &input).unwrap();
    std::fs::write(&b, &log4j).unwrap();
    let both = sluice().args(["templates", "mine"]).arg(&a).arg(&b).output().unwrap();
    let (stdout, err) = (String::from_utf8_lossy(&both.stdout), String::from_utf8_lossy(&both.stderr));
    assert!(err.contains("auth.log: 200 of the first 200 lines have `syslog` headers"), "{err}");
    assert!(err.contains("app.log: 100 of the first 100 lines have `{timestamp} {level} [{thread}]"), "{err}");
    assert!(stdout.contains("200  Failed password for") && stdout.contains("100  Address change detected"), "{stdout}");
    let rows: Vec<&str> = out.lines().filter(|l| !l.trim_start().starts_with("e.g.")).collect();
    assert_eq!(rows, ["      100  Address change detected. Old: db-<*> New: db-<*>"], "{out}");
}

#[test]
fn per_line_gives_each_line_its_final_template_with_stable_ids() {
    let lines = service_lines();
    let input = lines.join("\n") + "\n";
    let (out, _) = mine(&["--per-line", "--format", "{timestamp} {level} [{logger}] {message}"], input.as_bytes());
    let rows: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), lines.len(), "one object per input line");
    // The first session lines were mined before the user column generalised; they still
    // get the final template.
    let session: Vec<&serde_json::Value> =
        rows.iter().enumerate().filter(|(i, _)| i % 5 == 3).map(|(_, r)| r).collect();
    assert!(session.iter().all(|r| r["template"] == "Session opened for <*> from <*>"), "{:?}", session[0]);
    assert!(session.windows(2).all(|w| w[0]["template_id"] == w[1]["template_id"]));
    // Stable ids: another process, the lines in reverse order, gives the same ids.
    let mut rev = lines.clone();
    rev.reverse();
    let (out2, _) = mine(
        &["--per-line", "--format", "{timestamp} {level} [{logger}] {message}"],
        (rev.join("\n") + "\n").as_bytes(),
    );
    let mut ids1: Vec<String> = rows.iter().map(|r| r["template_id"].as_str().unwrap().to_string()).collect();
    let mut ids2: Vec<String> = out2
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["template_id"].as_str().unwrap().to_string())
        .collect();
    ids1.sort();
    ids1.dedup();
    ids2.sort();
    ids2.dedup();
    assert_eq!(ids1, ids2);
}

/// Minimal CSV reader (quoted fields, doubled quotes) for the Loghub files.
fn csv_rows(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, '\r') => {}
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}

/// The `Content` column of one shared Loghub 2k set and its true `EventId` per line.
fn loghub_set(shared: &std::path::Path, set: &str) -> (Vec<String>, Vec<String>) {
    let text = std::fs::read_to_string(shared.join(format!("loghub/{set}/{set}_2k.log_structured.csv"))).unwrap();
    let rows = csv_rows(&text);
    let head = &rows[0];
    let content = head.iter().position(|h| h == "Content").unwrap();
    let event = head.iter().position(|h| h == "EventId").unwrap();
    let (lines, truth): (Vec<String>, Vec<String>) =
        rows[1..].iter().map(|r| (r[content].clone(), r[event].clone())).unzip();
    assert_eq!(lines.len(), 2000, "{set}");
    (lines, truth)
}

/// The eight shared Loghub sets, fed the Content column, one configuration (the
/// defaults) for all. Issue target: average ≥ 0.95; each set is also held to what it
/// scored when this test was written (minus 0.01), so no set silently regresses.
#[test]
fn loghub_grouping_accuracy() {
    let Some(shared) = shared_dir() else {
        eprintln!("SKIP: ../shared is absent; the Loghub accuracy test needs ../shared/loghub");
        return;
    };
    let floors = [
        ("HDFS", 0.998),
        ("Hadoop", 0.994),
        ("Spark", 0.944),
        ("BGL", 1.0),
        ("HPC", 0.990),
        ("Linux", 0.935),
        ("Mac", 0.949),
        ("OpenStack", 1.0),
    ];
    let mut sum = 0.0;
    let mut report = Vec::new();
    for (set, floor) in floors {
        let (lines, truth) = loghub_set(&shared, set);
        let (out, _) = mine(&["--per-line"], (lines.join("\n") + "\n").as_bytes());
        let pred: Vec<String> = out
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["template_id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(pred.len(), lines.len(), "{set}");
        let ga = grouping_accuracy(&pred, &truth);
        report.push(format!("{set} {ga:.3}"));
        assert!(ga >= floor - 0.01, "{set}: grouping accuracy {ga:.3} fell below {floor} − 0.01");
        sum += ga;
    }
    let avg = sum / floors.len() as f64;
    eprintln!("Loghub grouping accuracy: {} — average {avg:.4}", report.join(", "));
    assert!(avg >= 0.95, "average grouping accuracy {avg:.4} < 0.95: {report:?}");
}

/// `mine_unknown` in `parse`: unmatched messages get template_id, template and params;
/// the learned templates are saved in data_dir and reloaded by the next run.
#[test]
fn parse_mines_unknown_messages_and_reloads_learned_templates() {
    let dir = tempfile::tempdir().unwrap();
    let users = ["alice", "bob", "carol", "dave", "erin"];
    let mut first = String::new();
    for i in 0..50 {
        first.push_str(&format!("2026-11-21 10:00:{:02} INFO health check ok\n", i % 60));
        first.push_str(&format!(
            "2026-11-21 10:00:{:02} INFO Session opened for {} from 10.1.2.{}\n",
            i % 60,
            users[i % 5],
            i
        ));
        first.push_str(&format!(
            "2026-11-21 10:00:{:02} WARN Payment failed for user {}: Card declined\n",
            i % 60,
            100 + i
        ));
    }
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::write(logs.join("a.log"), &first).unwrap();
    let cfg = |out: &str| {
        format!(
            "{}[sources.f]\ntype = \"file\"\ninclude = [\"{}/*.log\"]\nstop_at_eof = true\n[transforms.p]\ntype = \"parse\"\ninputs = [\"f\"]\nformat = \"{{timestamp}} {{level}} {{message}}\"\ntemplates = [{{ event = \"health_check_ok\", pattern = \"health check ok\" }}]\nmine_unknown = true\n[sinks.o]\ntype = \"file\"\ninputs = [\"p\"]\npath = \"{}\"\n",
            header(dir.path(), None),
            logs.display(),
            dir.path().join(out).join("out.ndjson").display()
        )
    };
    let mut s = Sluice::start(dir.path(), &cfg("out1"));
    assert_eq!(s.wait_exit(Duration::from_secs(30)), 0, "{}", s.stderr());
    let events = read_events(&dir.path().join("out1"));
    assert_eq!(events.len(), 150);
    let declared: Vec<_> = events.iter().filter(|e| e["event"] == "health_check_ok").collect();
    assert_eq!(declared.len(), 50);
    assert!(declared.iter().all(|e| e.get("template").is_none()), "declared templates win");
    let failed: Vec<_> =
        events.iter().filter(|e| e["message"].as_str().unwrap().starts_with("Payment failed")).collect();
    assert!(failed.iter().all(|e| e["template"] == "Payment failed for user <*>: Card declined"), "{}", failed[0]);
    assert_eq!(failed[7]["params"], serde_json::json!(["107"]));
    let id = failed[0]["template_id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 16);
    assert!(failed.iter().all(|e| e["template_id"] == id.as_str()));
    let sessions: Vec<_> = events.iter().filter(|e| e["message"].as_str().unwrap().starts_with("Session")).collect();
    let last = sessions.last().unwrap();
    assert_eq!(last["template"], "Session opened for <*> from <*>", "{last}");
    assert_eq!(last["params"], serde_json::json!(["erin", "10.1.2.49"]));
    let merged_id = last["template_id"].as_str().unwrap().to_string();
    // Saved: texts, counts, ids and the ids the merged template replaced; no lines.
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("data/templates/p.json")).unwrap()).unwrap();
    let ts = saved["templates"].as_array().unwrap();
    let merged = ts.iter().find(|t| t["id"] == merged_id.as_str()).unwrap_or_else(|| panic!("{saved}"));
    assert_eq!(merged["template"], "Session opened for <*> from <*>");
    assert!(merged["aliases"].as_array().unwrap().len() >= 4, "{merged}");
    let file_text = saved.to_string();
    assert!(
        !file_text.contains("alice") && !file_text.contains("10.1.2."),
        "no example lines in the saved state: {file_text}"
    );

    // Second run, one new session line of a new user: the reloaded template takes it
    // (a fresh miner would learn `Session opened for zoe from <*>`).
    std::fs::write(logs.join("b.log"), "2026-11-21 11:00:00 INFO Session opened for zoe from 10.9.9.9\n").unwrap();
    let mut s = Sluice::start(dir.path(), &cfg("out2"));
    assert_eq!(s.wait_exit(Duration::from_secs(30)), 0, "{}", s.stderr());
    let events = read_events(&dir.path().join("out2"));
    assert_eq!(events.len(), 1, "only the new file is read: {events:?}");
    assert_eq!(events[0]["template_id"], merged_id.as_str(), "{}", events[0]);
    assert_eq!(events[0]["params"], serde_json::json!(["zoe", "10.9.9.9"]));
}

/// A progress line on stderr when it is a terminal (through `script`, which gives the
/// command a pseudo-terminal), and none when it is not.
#[test]
fn progress_line_only_on_a_terminal() {
    if tool("script", "bsdutils").is_none() {
        return;
    }
    // Input that arrives slowly: the progress line is printed at most 4 times a second.
    let cmd = format!("sh -c '{{ seq 1 70000 | sed s/^/req_line/; sleep 0.6; seq 1 70000 | sed s/^/req_line/; }} | {BIN} templates mine > /dev/null'");
    let out = std::process::Command::new("script").args(["-qec", &cmd, "/dev/null"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("\r131072 lines"), "{text:?}");
    assert!(text.contains("\n140000 lines, "), "the summary follows on its own line: {text:?}");
    let (_, stderr) = mine(&[], "a 1\nb 2\n".repeat(100_000).as_bytes());
    assert!(!stderr.contains('\r'), "no progress line when stderr is not a terminal: {stderr:?}");
}

/// The inline path: a `parse` stage with `mine_unknown` labels each line with the
/// template it had when the line went out (streaming, first occurrence), where
/// `templates mine --per-line` gives each line its final template. Measured on the
/// eight shared Loghub sets through the real pipeline (file → parse → file); each set
/// is held to what it scored when this test was written (minus 0.01).
#[test]
fn loghub_grouping_accuracy_inline() {
    let Some(shared) = shared_dir() else {
        eprintln!("SKIP: ../shared is absent; the inline Loghub accuracy test needs ../shared/loghub");
        return;
    };
    let floors = [
        ("HDFS", 0.998),
        ("Hadoop", 0.989),
        ("Spark", 0.944),
        ("BGL", 0.989),
        ("HPC", 0.966),
        ("Linux", 0.874),
        ("Mac", 0.863),
        ("OpenStack", 0.989),
    ];
    let mut sum = 0.0;
    let mut report = Vec::new();
    for (set, floor) in floors {
        let (lines, truth) = loghub_set(&shared, set);
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        std::fs::write(logs.join("a.log"), lines.join("\n") + "\n").unwrap();
        let out = dir.path().join("out");
        let cfg = format!(
            "{}[sources.f]\ntype = \"file\"\ninclude = [\"{}/a.log\"]\nstop_at_eof = true\n[transforms.p]\ntype = \"parse\"\ninputs = [\"f\"]\nmine_unknown = true\n[sinks.o]\ntype = \"file\"\ninputs = [\"p\"]\npath = \"{}/out.ndjson\"\n",
            header(dir.path(), None),
            logs.display(),
            out.display()
        );
        let mut s = Sluice::start(dir.path(), &cfg);
        assert_eq!(s.wait_exit(Duration::from_secs(60)), 0, "{}", s.stderr());
        let events = read_events(&out);
        assert_eq!(events.len(), lines.len(), "{set}");
        let pred: Vec<String> =
            events.iter().map(|e| e["template_id"].as_str().unwrap_or("none").to_string()).collect();
        let ga = grouping_accuracy(&pred, &truth);
        report.push(format!("{set} {ga:.3}"));
        assert!(ga >= floor - 0.01, "{set}: inline grouping accuracy {ga:.3} fell below {floor} − 0.01");
        sum += ga;
    }
    let avg = sum / floors.len() as f64;
    eprintln!("Loghub grouping accuracy, inline (first occurrence): {} — average {avg:.4}", report.join(", "));
}
