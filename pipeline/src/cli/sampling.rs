//! `sluice sampling off|on|status`: the incident switch, through the admin API of a
//! running sluice.

use clap::Subcommand;
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
    #[command(flatten)]
    api: super::ApiArgs,
}

#[derive(Subcommand)]
enum Action {
    /// Pass every event (no sampling) for a while, e.g. `--for 30m --reason INC-4211`.
    Off {
        #[arg(long = "for", value_name = "DURATION")]
        for_: String,
        #[arg(long)]
        reason: String,
        /// Only this sample stage (default: all).
        #[arg(long)]
        stage: Option<String>,
    },
    /// Sample again now.
    On {
        #[arg(long)]
        stage: Option<String>,
    },
    /// Show each stage's state and expiry.
    Status,
}

pub fn main(args: Args) -> ExitCode {
    let Args { action, api: super::ApiArgs { api, token } } = args;
    let api = api.as_str();
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build().expect("http client");
    let url = format!("{}/api/v1/sampling", api.trim_end_matches('/'));
    let who = format!(
        "{}@{}",
        std::env::var("USER").unwrap_or_else(|_| "unknown".into()),
        std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default()
    );
    let req = match &action {
        Action::Status => client.get(&url),
        Action::Off { for_, reason, stage } => client
            .put(&url)
            .json(&serde_json::json!({ "enabled": false, "for": for_, "reason": reason, "stage": stage, "by": who })),
        Action::On { stage } => {
            client.put(&url).json(&serde_json::json!({ "enabled": true, "stage": stage, "by": who }))
        }
    };
    let req = match token.filter(|t| !t.is_empty()) {
        Some(t) => req.bearer_auth(t),
        None => req,
    };
    let resp = match req.send() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sluice sampling: cannot reach the admin API at {api}: {e}");
            return ExitCode::from(1);
        }
    };
    let status = resp.status();
    let body = resp.text().unwrap_or_default();
    if status.as_u16() == 401 {
        eprintln!("sluice sampling: unauthorized: give --token or set SLUICE_API_TOKEN");
        return ExitCode::from(1);
    }
    if !status.is_success() {
        eprintln!("sluice sampling: {status}: {}", body.trim());
        return ExitCode::from(1);
    }
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let stages = v["stages"].as_array().cloned().unwrap_or_default();
    if stages.is_empty() {
        println!("no sample stages");
    }
    for s in stages {
        let name = s["stage"].as_str().unwrap_or("?");
        if s["sampling"].as_bool().unwrap_or(true) {
            println!("{name}: sampling on");
        } else {
            let until = s["bypass_until"].as_str().unwrap_or("further notice");
            println!(
                "{name}: sampling OFF until {until} (reason: {}; by {})",
                s["reason"].as_str().unwrap_or(""),
                s["by"].as_str().unwrap_or("")
            );
        }
    }
    ExitCode::SUCCESS
}
