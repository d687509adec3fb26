//! `sluice run`: build the pipeline, serve the admin API, run until the input ends or
//! SIGTERM/SIGINT, then drain.

use sluice_config::Config;
use sluice_event::store::Store;
use sluice_pipeline::controls::Controls;
use sluice_pipeline::{api, registry, topology};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    /// TOML configuration file. Without it, the embedded quickstart config runs:
    /// it tails examples/quickstart/logs/*.log and writes NDJSON under ./out/.
    #[arg(short, long, value_name = "FILE")]
    config: Option<String>,
    /// Start with sampling off in every sample stage (for this run).
    #[arg(long)]
    no_sampling: bool,
}

pub fn main(args: Args) -> ExitCode {
    init_logging();
    let cfg = match super::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    // Components register their metrics when built, so the exporter is installed first,
    // with the settings the stages declare (histogram buckets of log-derived metrics).
    let mut builder = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full("sluice_s3_upload_seconds".into()),
            sluice_sinks::s3::UPLOAD_SECONDS_BUCKETS,
        )
        .expect("static buckets are valid");
    for (name, buckets) in registry::exporter_settings(&cfg).histogram_buckets {
        builder =
            match builder.set_buckets_for_metric(metrics_exporter_prometheus::Matcher::Full(name.clone()), &buckets) {
                Ok(b) => b,
                Err(e) => {
                    eprintln!("{}: histogram `{name}`: {e}", cfg.file());
                    return ExitCode::from(2);
                }
            };
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
    let store = Store::new(&cfg.data_dir);
    let controls = Arc::new(Controls::collect(&built));
    controls.restore(&store);
    if args.no_sampling {
        controls.bypass_all_for_this_run();
    }
    match run(cfg, args.config, built, prometheus, controls, store) {
        Ok(code) => code,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "sluice failed");
            eprintln!("sluice: {e:#}");
            ExitCode::from(1)
        }
    }
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

fn run(
    cfg: Config,
    path: Option<String>,
    built: Vec<(sluice_config::Component, registry::Built)>,
    prometheus: metrics_exporter_prometheus::PrometheusHandle,
    controls: Arc<Controls>,
    store: Store,
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
        let mut running = topology::start(&cfg, built, fd_budget())?;
        let (reload_tx, reload_rx) = tokio::sync::mpsc::channel(4);
        let loader = reloader(path, &cfg, controls.clone());
        if let Some(listener) = listener {
            let state = api::ApiState {
                shared: running.shared.clone(),
                reload: api::Reload { requests: reload_tx.clone(), loader: loader.clone() },
                controls: controls.clone(),
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
        let (saver, saved_in) = (controls.clone(), store.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                saver.save_if_changed(&saved_in);
            }
        });
        tokio::spawn(reload_on_sighup(reload_tx, loader));
        tracing::info!(components = running.shared.load().stats.len(), "pipeline started");
        let drained = running.wait(shutdown_signal(), *cfg.pipeline.drain_timeout, reload_rx).await;
        let failed = running.failed.clone();
        let shared = running.shared.clone();
        tokio::task::spawn_blocking(move || running.finish(drained)).await?;
        // What each stage saw, once, for the operator's record (and benchmarks).
        for s in shared.load().stats.iter().map(|s| s.snapshot()) {
            let dropped: u64 = s.events_dropped.values().sum();
            tracing::info!(target: "sluice::totals", component = %s.name, kind = s.kind, events_in = s.events_in, events_out = s.events_out, dropped, "totals");
        }
        controls.save_if_changed(&store);
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

/// How a reload loads the configuration: read the file again, check it, build every
/// component. Changes only a restart can apply (`[api]`, histogram buckets) are refused
/// here; the topology refuses the others. New sample stages join the controls.
fn reloader(path: Option<String>, cfg: &Config, controls: Arc<Controls>) -> topology::Loader {
    let api = cfg.api.clone();
    let exporter = registry::exporter_settings(cfg);
    Arc::new(move || {
        let cfg = super::load_quiet(path.as_deref())?;
        let mut refused = Vec::new();
        if cfg.api != api {
            refused.push("`[api]` changed: restart sluice to move or secure the admin API".to_string());
        }
        if registry::exporter_settings(&cfg) != exporter {
            refused.push("histogram buckets of a metrics stage changed: restart sluice to apply them".to_string());
        }
        if !refused.is_empty() {
            return Err(refused);
        }
        let built = registry::build_all(&cfg).map_err(|errs| errs.iter().map(|d| d.to_string()).collect::<Vec<_>>())?;
        let switches = Controls::collect(&built);
        let controls = controls.clone();
        Ok(topology::Loaded {
            cfg,
            built,
            applied: Box::new(move |summary: &topology::ReloadSummary| controls.adopt(switches, summary)),
        })
    })
}

/// SIGHUP: reload the configuration (the outcome is logged).
async fn reload_on_sighup(requests: tokio::sync::mpsc::Sender<topology::ReloadRequest>, loader: topology::Loader) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else { return };
    while hup.recv().await.is_some() {
        tracing::info!(signal = "SIGHUP", "reloading the configuration");
        let (answer, _) = tokio::sync::oneshot::channel();
        let req = topology::ReloadRequest { load: loader.clone(), by: "SIGHUP".into(), answer };
        if requests.send(req).await.is_err() {
            return;
        }
    }
}

/// Raise the soft descriptor limit to the hard one, and size the file sources' share.
fn fd_budget() -> Arc<sluice_sources::fds::FdBudget> {
    use sluice_sources::fds::{reserve_for, FdBudget};
    let (before, now) = FdBudget::raise_limit();
    let budget = FdBudget::for_limit(now);
    tracing::info!(
        soft_limit_at_start = before,
        limit = now,
        for_files = budget.capacity(),
        reserved = reserve_for(now),
        "file descriptors"
    );
    metrics::gauge!("sluice_file_descriptors_limit").set(now as f64);
    Arc::new(budget)
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
