//! The `sluice` command.

use clap::{Parser, Subcommand};
use sluice_config::{Config, Kind};
use sluice_pipeline::{api, registry, topology};
use std::process::ExitCode;
use std::time::Duration;

mod mine;

/// The configuration used when `--config` is not given: the bundled quickstart
/// (tails examples/quickstart/logs/*.log relative to the working directory).
const EMBEDDED: &str = include_str!("../../examples/quickstart/sluice.toml");
const EMBEDDED_NAME: &str = "<embedded quickstart config>";

#[derive(Parser)]
#[command(name = "sluice", version, about = "Log-stream processing pipeline: tail, parse, enrich, mask, sample, ship.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a pipeline until its input ends or SIGTERM/SIGINT (then drain and exit 0).
    Run {
        /// TOML configuration file. Without it, the embedded quickstart config runs:
        /// it tails examples/quickstart/logs/*.log and writes NDJSON under ./out/.
        #[arg(short, long, value_name = "FILE")]
        config: Option<String>,
        /// Start with sampling off in every sample stage (for this run).
        #[arg(long)]
        no_sampling: bool,
    },
    /// Switch sampling off during an incident, back on, or show its state (through the
    /// admin API of a running sluice).
    Sampling {
        #[command(subcommand)]
        action: SamplingAction,
        /// Admin API base URL.
        #[arg(long, global = true, default_value = "http://127.0.0.1:9598")]
        api: String,
        /// Bearer token, if the API requires one.
        #[arg(long, global = true, env = "SLUICE_API_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
    /// Learn printf templates from logs (see `sluice templates mine --help`).
    Templates {
        #[command(subcommand)]
        action: TemplatesAction,
    },
    /// Check a configuration: exit 0 with a one-line summary, or 2 with the errors.
    Validate {
        /// TOML configuration file (default: the embedded quickstart config).
        #[arg(short, long, value_name = "FILE")]
        config: Option<String>,
    },
}

#[derive(Subcommand)]
enum TemplatesAction {
    /// Read logs (files, or standard input), print the learned templates with counts
    /// and an example each, most frequent first.
    Mine {
        /// Header format to strip first, in the `parse` stage's language, e.g.
        /// "{timestamp} {level} [{logger}] {message}" or a preset (syslog, json, ...).
        /// Lines that do not fit are mined whole.
        #[arg(long, value_name = "FORMAT")]
        format: Option<String>,
        /// strftime layout of {timestamp} in --format (default: recognised).
        #[arg(long, value_name = "LAYOUT")]
        timestamp_format: Option<String>,
        /// Also write the templates as a file `parse` loads with `templates_file`.
        #[arg(long, value_name = "OUT")]
        toml: Option<std::path::PathBuf>,
        /// Instead of the summary, print one NDJSON object per input line, in order:
        /// the template_id and template of the final template the line belongs to.
        #[arg(long)]
        per_line: bool,
        /// Distinct words at one position before templates differing only there merge.
        #[arg(long, default_value_t = 4)]
        min_distinct: usize,
        /// Templates kept in memory (least recently seen forgotten beyond).
        #[arg(long, default_value_t = 100_000)]
        max_templates: usize,
        /// Extra variable pattern (a regex); may be repeated.
        #[arg(long = "mask", value_name = "REGEX")]
        masks: Vec<String>,
        /// Templates printed in the summary.
        #[arg(long, default_value_t = 50)]
        top: usize,
        /// Log files (default: standard input).
        files: Vec<std::path::PathBuf>,
    },
}

#[derive(Subcommand)]
enum SamplingAction {
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

fn sampling_cli(action: SamplingAction, api: &str, token: Option<String>) -> ExitCode {
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build().expect("http client");
    let url = format!("{}/api/v1/sampling", api.trim_end_matches('/'));
    let who = format!(
        "{}@{}",
        std::env::var("USER").unwrap_or_else(|_| "unknown".into()),
        std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default()
    );
    let req = match &action {
        SamplingAction::Status => client.get(&url),
        SamplingAction::Off { for_, reason, stage } => client
            .put(&url)
            .json(&serde_json::json!({ "enabled": false, "for": for_, "reason": reason, "stage": stage, "by": who })),
        SamplingAction::On { stage } => {
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

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SLUICE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_current_span(false)
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn load(path: Option<&str>) -> Result<Config, ExitCode> {
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate { config } => {
            let cfg = match load(config.as_deref()) {
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
        Command::Sampling { action, api, token } => sampling_cli(action, &api, token),
        Command::Templates {
            action:
                TemplatesAction::Mine {
                    format,
                    timestamp_format,
                    toml,
                    per_line,
                    min_distinct,
                    max_templates,
                    masks,
                    top,
                    files,
                },
        } => mine::run(mine::Options {
            format,
            timestamp_format,
            toml,
            per_line,
            min_distinct,
            max_templates,
            masks,
            top,
            files,
        }),
        Command::Run { config, no_sampling } => {
            init_logging();
            let cfg = match load(config.as_deref()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            // Before building: components register their own metrics when built.
            // Histogram buckets of log-derived metrics must be known to the exporter.
            let mut builder = metrics_exporter_prometheus::PrometheusBuilder::new();
            for c in cfg.components.iter().filter(|c| c.type_name == "metrics") {
                if let Ok(m) = cfg.decode::<sluice_transforms::metrics::MetricsConfig>(c) {
                    for (name, buckets) in m.histogram_buckets() {
                        builder = match builder
                            .set_buckets_for_metric(metrics_exporter_prometheus::Matcher::Full(name.clone()), &buckets)
                        {
                            Ok(b) => b,
                            Err(e) => {
                                eprintln!("{}: histogram `{name}`: {e}", cfg.file());
                                return ExitCode::from(2);
                            }
                        };
                    }
                }
            }
            let prometheus = match builder.install_recorder() {
                Ok(h) => h,
                Err(e) => {
                    eprintln!("sluice: cannot install the metrics recorder: {e}");
                    return ExitCode::from(1);
                }
            };
            let built = match registry::build_all(&cfg) {
                Ok(b) => b,
                Err(errs) => {
                    for d in errs {
                        eprintln!("{d}");
                    }
                    return ExitCode::from(2);
                }
            };
            sluice_pipeline::sampling::restore(&cfg.data_dir);
            if no_sampling {
                sluice_pipeline::sampling::bypass_all_for_this_run();
            }
            match run(cfg, built, prometheus) {
                Ok(code) => code,
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "sluice failed");
                    eprintln!("sluice: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

fn run(
    cfg: Config,
    built: Vec<(sluice_config::Component, registry::Built)>,
    prometheus: metrics_exporter_prometheus::PrometheusHandle,
) -> anyhow::Result<ExitCode> {
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().thread_name("sluice-rt").build()?;
    rt.block_on(async move {
        // Bind the API first so a taken port is reported before anything is read.
        let listener = if cfg.api.enabled {
            let l = tokio::net::TcpListener::bind(&cfg.api.address)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {} ([api] address): {e}", cfg.api.address))?;
            Some(l)
        } else {
            None
        };
        let mut running = topology::start(&cfg, built)?;
        if let Some(listener) = listener {
            let state = api::ApiState {
                shared: running.shared.clone(),
                prometheus: prometheus.clone(),
                token: cfg.api.token.clone().filter(|t| !t.is_empty()).map(Into::into),
                started: std::time::Instant::now(),
            };
            let addr = listener.local_addr()?;
            tracing::info!(address = %addr, auth = state.token.is_some(), "admin API listening");
            tokio::spawn(async move {
                let app = api::router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
                if let Err(e) = axum::serve(listener, app).await {
                    tracing::error!(error = %e, "admin API stopped");
                }
            });
        }
        let upkeep = prometheus.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                upkeep.run_upkeep();
            }
        });
        let data_dir = cfg.data_dir.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                sluice_pipeline::sampling::save_if_changed(&data_dir);
            }
        });
        tracing::info!(components = running.shared.stats.len(), "pipeline started");
        let drained = running.wait(shutdown_signal(), Duration::from_secs(cfg.pipeline.drain_timeout_secs)).await;
        let failed = running.failed.clone();
        tokio::task::spawn_blocking(move || running.finish(drained)).await?;
        sluice_pipeline::sampling::save_if_changed(&cfg.data_dir);
        if failed.load(std::sync::atomic::Ordering::Relaxed) {
            tracing::error!("a component failed; exiting with status 1");
            Ok(ExitCode::from(1))
        } else if drained {
            tracing::info!("pipeline drained; checkpoints written; exiting");
            Ok(ExitCode::SUCCESS)
        } else {
            Ok(ExitCode::from(1))
        }
    })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => tracing::info!(signal = "SIGTERM", "signal received"),
        _ = int.recv() => tracing::info!(signal = "SIGINT", "signal received"),
    }
}
