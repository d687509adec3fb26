//! The admin HTTP API: health, Prometheus metrics, status, the sampling switch,
//! taps (`GET /api/v1/tap/COMPONENT?limit=N`: the events leaving a component, as
//! NDJSON) and `POST /api/v1/reload` (read the config file again and apply it). Loopback by default; with `[api] token` set, every request needs
//! `Authorization: Bearer TOKEN`.

use crate::controls::{Controls, SamplingChange};
use crate::topology::{Loader, ReloadRequest, Shared};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;

/// How the API asks the runtime for a reload.
#[derive(Clone)]
pub struct Reload {
    pub requests: tokio::sync::mpsc::Sender<ReloadRequest>,
    pub loader: Loader,
}

#[derive(Clone)]
pub struct ApiState {
    pub shared: Arc<arc_swap::ArcSwap<Shared>>,
    pub reload: Reload,
    pub controls: Arc<Controls>,
    pub prometheus: PrometheusHandle,
    pub token: Option<Arc<str>>,
    pub started: std::time::Instant,
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/health/live", get(|| async { "ok\n" }))
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/api/v1/status", get(status))
        .route("/api/v1/sampling", get(sampling_get).put(sampling_put))
        .route("/api/v1/tap/{component}", get(tap))
        .route("/api/v1/reload", axum::routing::post(reload))
        .layer(middleware::from_fn_with_state(state.clone(), auth))
        .with_state(state)
}

async fn auth(State(st): State<ApiState>, req: Request, next: Next) -> Response {
    if let Some(tok) = &st.token {
        let ok = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|given| constant_time_eq(given.as_bytes(), tok.as_bytes()));
        if !ok {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "missing or wrong bearer token\n",
            )
                .into_response();
        }
    }
    next.run(req).await
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn ready(State(st): State<ApiState>) -> Response {
    let shared = st.shared.load();
    if shared.ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        let waiting: Vec<String> = shared.stats.iter().filter(|s| !s.is_started()).map(|s| s.name.clone()).collect();
        (StatusCode::SERVICE_UNAVAILABLE, format!("starting: {}\n", waiting.join(", "))).into_response()
    }
}

async fn metrics(State(st): State<ApiState>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], st.prometheus.render()).into_response()
}

async fn status(State(st): State<ApiState>) -> Response {
    let shared = st.shared.load();
    let components: Vec<_> = shared.stats.iter().map(|s| s.snapshot()).collect();
    Json(serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_secs": st.started.elapsed().as_secs(),
        "ready": shared.ready(),
        "components": components,
    }))
    .into_response()
}

async fn sampling_get(State(st): State<ApiState>) -> Response {
    Json(serde_json::json!({ "stages": st.controls.sampling_states() })).into_response()
}

async fn sampling_put(
    State(st): State<ApiState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    body: axum::body::Bytes,
) -> Response {
    let change: SamplingChange = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("invalid request body: {e}\n")).into_response(),
    };
    match st.controls.apply_sampling(&change, &peer.to_string()) {
        Ok(states) => Json(serde_json::json!({ "stages": states })).into_response(),
        Err(r) => (StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_REQUEST), format!("{r}\n")).into_response(),
    }
}

/// Read the configuration file again and apply it: 200 with what was kept, added,
/// changed and removed, or 400 with the errors (the running configuration stays).
async fn reload(State(st): State<ApiState>, ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>) -> Response {
    let (answer, rx) = tokio::sync::oneshot::channel();
    let req = ReloadRequest { load: st.reload.loader.clone(), by: format!("api client {peer}"), answer };
    if st.reload.requests.send(req).await.is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, "the pipeline is stopping\n").into_response();
    }
    match rx.await {
        Ok(Ok(summary)) => Json(serde_json::json!({ "reloaded": true, "components": summary })).into_response(),
        Ok(Err(errors)) => {
            (StatusCode::BAD_REQUEST, Json(serde_json::json!({ "reloaded": false, "errors": errors }))).into_response()
        }
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "the pipeline is stopping\n").into_response(),
    }
}

#[derive(serde::Deserialize)]
struct TapQuery {
    /// Stop after this many events.
    limit: Option<u64>,
}

/// Batches a tap may hold for a slow reader before it drops (and counts) events.
const TAP_BUFFER: usize = 8;

/// Stream the events leaving `component` as NDJSON. A reader slower than the pipeline
/// loses events (never the pipeline: it does not wait); a line
/// `{"sluice_tap_dropped":N}` says how many before the next delivered ones.
async fn tap(
    State(st): State<ApiState>,
    axum::extract::Path(component): axum::extract::Path<String>,
    axum::extract::Query(q): axum::extract::Query<TapQuery>,
) -> Response {
    use std::sync::atomic::{AtomicU64, Ordering};
    let shared = st.shared.load();
    let Some(tap) = shared.taps.get(&component) else {
        if shared.stats.iter().any(|s| s.name == component && s.kind == "sink") {
            let msg = format!("`{component}` is a sink: it has no output; tap one of its inputs\n");
            return (StatusCode::BAD_REQUEST, msg).into_response();
        }
        let mut known: Vec<&str> = shared.taps.keys().map(String::as_str).collect();
        known.sort_unstable();
        let msg = format!("no source or transform named `{component}` (there are: {})\n", known.join(", "));
        return (StatusCode::NOT_FOUND, msg).into_response();
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<axum::body::Bytes>(TAP_BUFFER);
    let dropped = Arc::new(AtomicU64::new(0));
    let counted = dropped.clone();
    tap.listen(Box::new(move |lines, n| match tx.try_send(axum::body::Bytes::copy_from_slice(lines)) {
        Ok(()) => true,
        Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => {
            counted.fetch_add(n as u64, Ordering::Relaxed);
            true
        }
        Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => false,
    }));
    let stream = futures::stream::unfold((rx, q.limit), move |(mut rx, left)| {
        let dropped = dropped.clone();
        async move {
            if left == Some(0) {
                return None;
            }
            let chunk = rx.recv().await?;
            let mut out = Vec::with_capacity(chunk.len() + 32);
            let d = dropped.swap(0, Ordering::Relaxed);
            if d > 0 {
                out.extend_from_slice(format!("{{\"sluice_tap_dropped\":{d}}}\n").as_bytes());
            }
            let left = match left {
                None => {
                    out.extend_from_slice(&chunk);
                    None
                }
                Some(mut left) => {
                    for line in chunk.split_inclusive(|b| *b == b'\n') {
                        if left == 0 {
                            break;
                        }
                        out.extend_from_slice(line);
                        left -= 1;
                    }
                    Some(left)
                }
            };
            Some((Ok::<_, std::convert::Infallible>(axum::body::Bytes::from(out)), (rx, left)))
        }
    });
    ([(header::CONTENT_TYPE, "application/x-ndjson")], axum::body::Body::from_stream(stream)).into_response()
}
