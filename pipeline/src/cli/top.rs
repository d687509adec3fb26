//! `sluice top`: a live view of a running sluice from its admin API: per component,
//! events in and out per second, drops (by reason), parse errors, bytes not yet read
//! (lag), sink retries; and the state of every sampling stage.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct Args {
    /// Seconds between refreshes.
    #[arg(long, default_value_t = 2.0)]
    interval: f64,
    /// Print one frame (rates over one interval) and exit, without clearing the screen.
    #[arg(long)]
    once: bool,
    #[command(flatten)]
    api: super::ApiArgs,
}

fn fetch(api: &super::ApiArgs, path: &str) -> Result<serde_json::Value, String> {
    let resp = api.get("top", path, Some(Duration::from_secs(5)))?;
    resp.json().map_err(|e| format!("sluice top: {path}: {e}"))
}

pub fn main(args: Args) -> ExitCode {
    let every = Duration::from_secs_f64(args.interval.max(0.1));
    let mut last: Option<(Instant, serde_json::Value)> = None;
    loop {
        let status = match fetch(&args.api, "/api/v1/status") {
            Ok(s) => s,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(1);
            }
        };
        let sampling = fetch(&args.api, "/api/v1/sampling").unwrap_or_default();
        let now = Instant::now();
        if let Some((then, before)) = &last {
            let frame = render(before, &status, &sampling, now.duration_since(*then).as_secs_f64());
            if args.once {
                print!("{frame}");
                return ExitCode::SUCCESS;
            }
            // Home and clear, then the frame.
            print!("\x1b[H\x1b[2J{frame}");
            use std::io::Write;
            let _ = std::io::stdout().flush();
        }
        last = Some((now, status));
        std::thread::sleep(every);
    }
}

fn num(v: &serde_json::Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or(0)
}

fn dropped(v: &serde_json::Value) -> u64 {
    v["events_dropped"].as_object().map(|m| m.values().filter_map(|x| x.as_u64()).sum()).unwrap_or(0)
}

fn human_bytes(b: u64) -> String {
    match b {
        b if b >= 1 << 30 => format!("{:.1}G", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1}M", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1}K", b as f64 / 1024.0),
        b => format!("{b}"),
    }
}

/// One frame: the rates between two status snapshots `secs` apart.
pub fn render(before: &serde_json::Value, now: &serde_json::Value, sampling: &serde_json::Value, secs: f64) -> String {
    let prev: HashMap<&str, &serde_json::Value> = before["components"]
        .as_array()
        .map(|a| a.iter().map(|c| (c["name"].as_str().unwrap_or(""), c)).collect())
        .unwrap_or_default();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "sluice {}  up {}s  {}",
        now["version"].as_str().unwrap_or("?"),
        num(now, "uptime_secs"),
        if now["ready"].as_bool().unwrap_or(false) { "ready" } else { "STARTING" }
    );
    let _ = writeln!(
        s,
        "{:<22} {:<9} {:<10} {:>10} {:>10} {:>9} {:>9} {:>8} {:>8}",
        "COMPONENT", "KIND", "TYPE", "IN/s", "OUT/s", "DROPPED", "PARSEERR", "LAG", "RETRIES"
    );
    for c in now["components"].as_array().into_iter().flatten() {
        let name = c["name"].as_str().unwrap_or("?");
        let p = prev.get(name).copied().unwrap_or(&serde_json::Value::Null);
        let rate = |k: &str| num(c, k).saturating_sub(num(p, k)) as f64 / secs.max(1e-3);
        let drops = dropped(c);
        let reasons = c["events_dropped"]
            .as_object()
            .map(|m| m.iter().map(|(r, n)| format!("{r}={n}")).collect::<Vec<_>>().join(","))
            .unwrap_or_default();
        let opt = |k: &str| c.get(k).and_then(|v| v.as_u64());
        let _ = writeln!(
            s,
            "{:<22} {:<9} {:<10} {:>10.0} {:>10.0} {:>9} {:>9} {:>8} {:>8}{}",
            name,
            c["kind"].as_str().unwrap_or(""),
            c["type"].as_str().unwrap_or(""),
            rate("events_in"),
            rate("events_out"),
            drops,
            opt("parse_errors").map_or("-".to_string(), |n| n.to_string()),
            opt("unread_bytes").map_or("-".to_string(), human_bytes),
            opt("sink_retries").map_or("-".to_string(), |n| n.to_string()),
            if reasons.is_empty() { String::new() } else { format!("  ({reasons})") }
        );
    }
    let stages = sampling["stages"].as_array().cloned().unwrap_or_default();
    for st in stages {
        let name = st["stage"].as_str().unwrap_or("?");
        if st["sampling"].as_bool().unwrap_or(true) {
            let _ = writeln!(s, "sampling {name}: on");
        } else {
            let _ = writeln!(
                s,
                "sampling {name}: OFF until {} (reason: {})",
                st["bypass_until"].as_str().unwrap_or("further notice"),
                st["reason"].as_str().unwrap_or("")
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rates_drops_lag_and_sampling() {
        let before = json!({"components": [{"name": "app", "kind": "source", "type": "file", "events_in": 0, "events_out": 100, "events_dropped": {}, "unread_bytes": 0}]});
        let now = json!({"version": "0.1.0", "uptime_secs": 9, "ready": true, "components": [
            {"name": "app", "kind": "source", "type": "file", "events_in": 0, "events_out": 300, "events_dropped": {}, "unread_bytes": 3_145_728},
            {"name": "s", "kind": "transform", "type": "sample", "events_in": 200, "events_out": 20, "events_dropped": {"sampled": 180}, "parse_errors": 0}
        ]});
        let sampling = json!({"stages": [{"stage": "s", "sampling": false, "bypass_until": "2026-11-30T05:00:00Z", "reason": "INC-1"}]});
        let f = render(&before, &now, &sampling, 2.0);
        let lines: Vec<&str> = f.lines().collect();
        assert!(lines[0].starts_with("sluice 0.1.0  up 9s  ready"), "{f}");
        assert!(lines[2].starts_with("app") && lines[2].contains(" 100 ") && lines[2].contains("3.0M"), "{f}");
        assert!(lines[3].contains("(sampled=180)") && lines[3].contains(" 180 "), "{f}");
        assert_eq!(lines[4], "sampling s: OFF until 2026-11-30T05:00:00Z (reason: INC-1)");
    }
}
