//! The admin HTTP port: `/metrics` (Prometheus text), `/healthz` (the process answers), `/readyz` (models
//! loaded and not draining).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use crate::metrics::SharedMetrics;

#[derive(Clone)]
struct AdminState {
    metrics: SharedMetrics,
    ready: Arc<AtomicBool>,
}

/// The admin router; `ready` flips to true once the models are loaded and back to false while draining.
pub fn router(metrics: SharedMetrics, ready: Arc<AtomicBool>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readiness))
        .with_state(AdminState { metrics, ready })
}

async fn metrics_text(State(state): State<AdminState>) -> Result<String, (StatusCode, String)> {
    state
        .metrics
        .encode()
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

async fn readiness(State(state): State<AdminState>) -> (StatusCode, &'static str) {
    if state.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}
