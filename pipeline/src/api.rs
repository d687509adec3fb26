//! The admin HTTP API: health, Prometheus metrics, status. Loopback by default; with
//! `[api] token` set, every request needs `Authorization: Bearer TOKEN`.

use crate::controls::{Controls, SamplingChange};
use crate::topology::Shared;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;

#[derive(Clone)]
pub struct ApiState {
    pub shared: Arc<Shared>,
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
    if st.shared.ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        let waiting: Vec<String> = st.shared.stats.iter().filter(|s| !s.is_started()).map(|s| s.name.clone()).collect();
        (StatusCode::SERVICE_UNAVAILABLE, format!("starting: {}\n", waiting.join(", "))).into_response()
    }
}

async fn metrics(State(st): State<ApiState>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], st.prometheus.render()).into_response()
}

async fn status(State(st): State<ApiState>) -> Response {
    let components: Vec<_> = st.shared.stats.iter().map(|s| s.snapshot()).collect();
    Json(serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_secs": st.started.elapsed().as_secs(),
        "ready": st.shared.ready(),
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
