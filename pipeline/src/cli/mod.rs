//! The `sluice` subcommands, one module each: [`run`], [`validate`], [`templates`]
//! (`templates mine`), [`sampling`] (`sampling off|on|status`) and [`test`] (the
//! configuration's `[[tests]]`).

pub mod pseudonym;
pub mod run;
pub mod sampling;
pub mod tap;
pub mod templates;
pub mod test;
pub mod top;
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
    load_quiet(path).map_err(|errs| {
        for d in errs {
            eprintln!("{d}");
        }
        ExitCode::from(2)
    })
}

/// [`load`] returning the messages instead of printing them (a reload answers with them).
pub fn load_quiet(path: Option<&str>) -> Result<Config, Vec<String>> {
    let (name, text) = match path {
        Some(p) => match std::fs::read_to_string(p) {
            Ok(t) => (p.to_string(), t),
            Err(e) => return Err(vec![format!("{p}: cannot read configuration: {e}")]),
        },
        None => (EMBEDDED_NAME.to_string(), EMBEDDED.to_string()),
    };
    let env = |k: &str| std::env::var(k).ok();
    Config::parse(&name, &text, &env).map_err(|errs| errs.0.iter().map(|d| d.to_string()).collect())
}

/// Where the admin API of a running sluice is (`sluice sampling`, `tap`, `top`).
#[derive(clap::Args, Clone)]
pub struct ApiArgs {
    /// Admin API base URL.
    #[arg(long, global = true, env = "SLUICE_API_URL", default_value = "http://127.0.0.1:9598")]
    pub api: String,
    /// Bearer token, if the API requires one.
    #[arg(long, global = true, env = "SLUICE_API_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

impl ApiArgs {
    /// `GET {api}{path}`; errors are one line for the user (`what` names the command).
    pub fn get(
        &self,
        what: &str,
        path: &str,
        timeout: Option<std::time::Duration>,
    ) -> Result<reqwest::blocking::Response, String> {
        let client = reqwest::blocking::Client::builder().timeout(timeout).build().map_err(|e| e.to_string())?;
        let mut req = client.get(format!("{}{path}", self.api.trim_end_matches('/')));
        if let Some(t) = self.token.as_deref().filter(|t| !t.is_empty()) {
            req = req.bearer_auth(t);
        }
        let resp = req.send().map_err(|e| format!("sluice {what}: cannot reach the admin API at {}: {e}", self.api))?;
        let status = resp.status();
        if status.as_u16() == 401 {
            return Err(format!("sluice {what}: unauthorized: give --token or set SLUICE_API_TOKEN"));
        }
        if !status.is_success() {
            let body = resp.text().unwrap_or_default();
            return Err(format!("sluice {what}: {status}: {}", body.trim()));
        }
        Ok(resp)
    }
}
