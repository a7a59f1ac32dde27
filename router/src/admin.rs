//! The admin HTTP port: `/metrics` (Prometheus text, encoded on the blocking pool, one encoding shared by the
//! scrapes waiting for it), `/healthz` (the process answers), `/readyz` (models
//! loaded and not draining), `/drift` (the drift table: every watched model's signals compared now, as JSON),
//! `/models` (what serves, and candidates) and `POST /models/reload` (reload the models now; the outcome as JSON).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::routing::{get, post};

use crate::engine::SharedEngine;
use crate::metrics::SharedMetrics;

#[derive(Clone)]
struct AdminState {
    metrics: SharedMetrics,
    exposition: Arc<Exposition>,
    ready: Arc<AtomicBool>,
    engine: SharedEngine,
}

/// The Prometheus text, encoded off the async workers (on the blocking pool: gathering walks every series), one
/// encoding at a time. Every scrape gets an encoding begun after it arrived (never stale numbers), and the
/// scrapes waiting together share the next one: a flood of N scrapes costs about two encodings, not N.
struct Exposition {
    /// The last encoding: when it began, and its text.
    latest: tokio::sync::Mutex<Option<(Instant, Arc<str>)>>,
}

impl Exposition {
    async fn text(&self, metrics: &SharedMetrics) -> Result<Arc<str>, String> {
        let arrived = Instant::now();
        // Scrapes that arrive during an encoding wait for it (asynchronously) rather than start their own.
        let mut latest = self.latest.lock().await;
        if let Some((began, text)) = latest.as_ref()
            && *began >= arrived
        {
            return Ok(text.clone());
        }
        let began = Instant::now();
        let metrics = metrics.clone();
        let text: Arc<str> = tokio::task::spawn_blocking(move || metrics.encode())
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?
            .into();
        *latest = Some((began, text.clone()));
        Ok(text)
    }
}

/// The admin router; `ready` flips to true once the models are loaded and back to false while draining;
/// `engine` is read once loaded.
pub fn router(metrics: SharedMetrics, ready: Arc<AtomicBool>, engine: SharedEngine) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readiness))
        .route("/drift", get(drift))
        .route("/models", get(models))
        .route("/models/reload", post(reload_models))
        .with_state(AdminState {
            metrics,
            exposition: Arc::new(Exposition {
                latest: tokio::sync::Mutex::new(None),
            }),
            ready,
            engine,
        })
}

/// A JSON answer.
type Json = ([(header::HeaderName, &'static str); 1], String);

/// The engine, or 503 while the models load.
fn loaded(state: &AdminState) -> Result<&crate::engine::Engine, (StatusCode, String)> {
    state
        .engine
        .get()
        .ok_or((StatusCode::SERVICE_UNAVAILABLE, "models not loaded\n".to_owned()))
}

fn json(body: String) -> Json {
    ([(header::CONTENT_TYPE, "application/json")], body)
}

/// Compares the drift window with the references now (the gauges show the last timed evaluation).
async fn drift(State(state): State<AdminState>) -> Result<Json, (StatusCode, String)> {
    let report = loaded(&state)?.models().drift.report();
    let body = serde_json::to_string_pretty(&report).map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(json(body))
}

async fn metrics_text(State(state): State<AdminState>) -> Result<String, (StatusCode, String)> {
    state
        .exposition
        .text(&state.metrics)
        .await
        .map(|text| text.to_string())
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e))
}

async fn readiness(State(state): State<AdminState>) -> (StatusCode, &'static str) {
    if state.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

/// The serving models and candidates, as JSON.
async fn models(State(state): State<AdminState>) -> Result<Json, (StatusCode, String)> {
    let models = loaded(&state)?.models();
    let candidate = models.candidate.as_ref();
    let body = serde_json::json!({
        "classifier": models.classifier,
        "scorer": models.scorer,
        "candidates": {
            "classifier": candidate.and_then(|c| c.classifier.as_ref()),
            "scorer": candidate.and_then(|c| c.scorer.as_ref()),
        },
    });
    Ok(json(body.to_string()))
}

/// Reloads the models now (as SIGHUP does) and answers with the outcome: 200 when applied or unchanged, 409
/// when refused (the running models stay).
async fn reload_models(State(state): State<AdminState>) -> Result<(StatusCode, Json), (StatusCode, String)> {
    let outcome = loaded(&state)?.reload_models().await;
    let status = match outcome {
        crate::engine::ModelReload::Rejected { .. } => StatusCode::CONFLICT,
        _ => StatusCode::OK,
    };
    let body = serde_json::to_string(&outcome).map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok((status, json(body)))
}
