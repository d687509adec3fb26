//! `sluice tap COMPONENT`: the events leaving a component of a running sluice, as
//! NDJSON on stdout (through the admin API; the pipeline never waits for the reader).

use std::io::{BufRead, BufReader, Write};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// A source or transform of the running configuration.
    component: String,
    /// Stop after this many events (default: until interrupted).
    #[arg(long, short = 'n')]
    limit: Option<u64>,
    #[command(flatten)]
    api: super::ApiArgs,
}

pub fn main(args: Args) -> ExitCode {
    let path = match args.limit {
        Some(n) => format!("/api/v1/tap/{}?limit={n}", args.component),
        None => format!("/api/v1/tap/{}", args.component),
    };
    let resp = match args.api.get("tap", &path, None) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut seen = 0u64;
    for line in BufReader::new(resp).lines() {
        let Ok(line) = line else { break };
        if let Some(n) = line.strip_prefix("{\"sluice_tap_dropped\":").and_then(|r| r.strip_suffix('}')) {
            eprintln!("sluice tap: {n} events not shown (this reader was slower than the pipeline)");
            continue;
        }
        if writeln!(out, "{line}").is_err() {
            break; // stdout closed (`| head`)
        }
        seen += 1;
        if args.limit.is_some_and(|l| seen >= l) {
            break;
        }
    }
    let _ = out.flush();
    ExitCode::SUCCESS
}
