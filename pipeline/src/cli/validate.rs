//! `sluice validate`: check a configuration without running it.

use sluice_config::{Config, Kind};
use sluice_pipeline::registry;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// TOML configuration file (default: the embedded quickstart config).
    #[arg(short, long, value_name = "FILE")]
    config: Option<String>,
}

/// Exit 0 with a one-line summary of the topology, or 2 with the errors.
pub fn main(args: Args) -> ExitCode {
    let cfg = match super::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Err(errs) = registry::build_all(&cfg) {
        for d in errs {
            eprintln!("{d}");
        }
        return ExitCode::from(2);
    }
    println!("{}", summary(&cfg));
    ExitCode::SUCCESS
}

fn summary(cfg: &Config) -> String {
    let part = |kind: Kind| {
        let items: Vec<String> = cfg
            .components
            .iter()
            .filter(|c| c.kind == kind)
            .map(|c| {
                if c.inputs.is_empty() {
                    format!("{} ({})", c.name, c.type_name)
                } else {
                    let ins: Vec<String> = c.inputs.iter().map(|i| i.to_string()).collect();
                    format!("{} ({}) <- {}", c.name, c.type_name, ins.join("+"))
                }
            })
            .collect();
        format!("{} {}: [{}]", items.len(), kind.table(), items.join(", "))
    };
    format!("{}: ok: {}; {}; {}", cfg.file(), part(Kind::Source), part(Kind::Transform), part(Kind::Sink))
}
