//! The `sluice` subcommands, one module each: [`run`], [`validate`], [`templates`]
//! (`templates mine`), [`sampling`] (`sampling off|on|status`) and [`test`] (the
//! configuration's `[[tests]]`).

pub mod run;
pub mod sampling;
pub mod templates;
pub mod test;
pub mod validate;

use sluice_config::Config;
use std::process::ExitCode;

/// The configuration used when `--config` is not given: the bundled quickstart
/// (tails examples/quickstart/logs/*.log relative to the working directory).
const EMBEDDED: &str = include_str!("../../../examples/quickstart/sluice.toml");
const EMBEDDED_NAME: &str = "<embedded quickstart config>";

/// Read and check the configuration (the embedded quickstart without a path); errors
/// are printed, one located diagnostic a line, and become exit status 2.
pub fn load(path: Option<&str>) -> Result<Config, ExitCode> {
    let (name, text) = match path {
        Some(p) => match std::fs::read_to_string(p) {
            Ok(t) => (p.to_string(), t),
            Err(e) => {
                eprintln!("{p}: cannot read configuration: {e}");
                return Err(ExitCode::from(2));
            }
        },
        None => (EMBEDDED_NAME.to_string(), EMBEDDED.to_string()),
    };
    let env = |k: &str| std::env::var(k).ok();
    Config::parse(&name, &text, &env).map_err(|errs| {
        for d in errs.0 {
            eprintln!("{d}");
        }
        ExitCode::from(2)
    })
}
