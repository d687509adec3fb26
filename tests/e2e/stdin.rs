use crate::harness::*;
use base64::Engine as _;
use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

/// `cat input | sluice run`: every line arrives, bad bytes are kept and marked, the
/// process drains and exits 0 at end of input.
#[test]
fn stdin_to_file_drains_and_keeps_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let cfg = format!(
        "{}[sources.in]\ntype = \"stdin\"\n[sinks.f]\ntype = \"file\"\ninputs = [\"in\"]\npath = \"{}/{{source}}.ndjson\"\n",
        header(dir.path(), None),
        out.display()
    );
    let cfg_path = dir.path().join("sluice.toml");
    std::fs::write(&cfg_path, cfg).unwrap();

    let big: Vec<u8> = (0..3 * 1024 * 1024).map(|i| b'a' + (i % 26) as u8).collect();
    let mut input = Vec::new();
    input.extend_from_slice(b"first line\n");
    input.extend_from_slice(b"bad utf8 \xff\xfe\xc3( here\n");
    input.extend_from_slice(b"nul\0byte\0line\n");
    input.extend_from_slice(&big);
    input.push(b'\n');
    input.extend_from_slice(b"windows line\r\n");
    input.extend_from_slice(b"{\"json\": \"with \\\"quotes\\\"\", \"t\": \"\\t\"}\n");
    input.extend_from_slice(b"last line without newline");

    let mut child = sluice()
        .args(["run", "--config", cfg_path.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let outp = child.wait_with_output().unwrap();
    assert_eq!(outp.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&outp.stderr));

    let ev = read_events(&out);
    let msgs: Vec<&str> = ev.iter().map(|e| e["message"].as_str().unwrap()).collect();
    assert_eq!(ev.len(), 3 + 3 + 3, "events: {:?}", msgs.iter().map(|m| &m[..m.len().min(30)]).collect::<Vec<_>>());
    assert_eq!(msgs[0], "first line");
    assert_eq!(ev[0]["source"], "in");
    assert_eq!(ev[0]["offset"], 0);
    assert!(ev[0]["timestamp"].as_str().unwrap().ends_with('Z'));

    // Invalid UTF-8: lossy message, marked, raw bytes preserved exactly.
    assert_eq!(msgs[1], "bad utf8 \u{fffd}\u{fffd}\u{fffd}( here");
    assert_eq!(ev[1]["invalid_utf8"], true);
    let raw = base64::engine::general_purpose::STANDARD.decode(ev[1]["raw_base64"].as_str().unwrap()).unwrap();
    assert_eq!(raw, b"bad utf8 \xff\xfe\xc3( here");
    assert_eq!(ev[1]["offset"], 11);

    // NUL bytes pass through (JSON \u0000) and are marked.
    assert_eq!(msgs[2], "nul\0byte\0line");
    assert_eq!(ev[2]["contains_nul"], true);

    // The 3 MiB line: three marked parts of 1 MiB, nothing lost.
    for (k, e) in ev[3..6].iter().enumerate() {
        assert_eq!(e["split_part"], (k + 1) as u64);
        assert_eq!(e["split_last"], k == 2);
        assert_eq!(e["message"].as_str().unwrap().len(), 1 << 20);
    }
    let joined: String = ev[3..6].iter().map(|e| e["message"].as_str().unwrap()).collect();
    assert_eq!(joined.as_bytes(), &big[..]);

    assert_eq!(msgs[6], "windows line");
    assert_eq!(msgs[7], "{\"json\": \"with \\\"quotes\\\"\", \"t\": \"\\t\"}");
    assert_eq!(msgs[8], "last line without newline");
    assert_eq!(ev[8]["no_newline"], true);
}

#[test]
fn stdin_to_console_writes_ndjson_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "{}[sources.in]\ntype = \"stdin\"\n[sinks.c]\ntype = \"console\"\ninputs = [\"in\"]\n",
        header(dir.path(), None)
    );
    let cfg_path = dir.path().join("sluice.toml");
    std::fs::write(&cfg_path, cfg).unwrap();
    let mut child = sluice()
        .args(["run", "--config", cfg_path.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut stdin = child.stdin.take().unwrap();
        for i in 0..1000 {
            writeln!(stdin, "Payment failed for user {i}: Card declined").unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 1000);
    assert_eq!(lines[999]["message"], "Payment failed for user 999: Card declined");
    // sluice's own logs are JSON on stderr, never mixed into stdout.
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.lines().all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()), "{stderr}");
    let _ = Duration::from_secs(0);
}
