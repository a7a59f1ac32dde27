//! The engine in-process (no gateway binary, no gRPC): real models and policy, a scriptable fake LLM, and the
//! metrics it records. What the request path decides and accounts, tested where it lives.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use llm::LlmError;
use support::{FakeLlm, Fault, TempDir, config, request, sample, telco_record, with_backend_settings};
use switchyard::config::Config;
use switchyard::engine::{Engine, GenerationEvent, GenerationStream};
use switchyard::error::RouterError;
use switchyard::metrics::{Metrics, SharedMetrics};
use switchyard::request::RouteInput;
use tokio::time::Instant;

/// Prices that make the arithmetic plain: one unit per input token, two per output token.
const PRICES: &str = "input_price_per_mtok = 1000000.0\noutput_price_per_mtok = 2000000.0";

async fn engine(fake: &FakeLlm) -> (Arc<Engine>, SharedMetrics, TempDir) {
    let dir = TempDir::new();
    let path = support::write_config(&dir.0, &with_backend_settings(&config(&fake.base_url(), "5s"), PRICES));
    let config = Config::load(&path).unwrap();
    let metrics: SharedMetrics = Arc::new(Metrics::standalone().unwrap());
    let loading = metrics.clone();
    let engine = tokio::task::spawn_blocking(move || Engine::load(&config, loading))
        .await
        .unwrap()
        .unwrap();
    (Arc::new(engine), metrics, dir)
}

/// The LLM stream of a text-only request (routed to the `assistant` target).
async fn open(engine: &Engine, text: &str) -> GenerationStream {
    let question = input(text, false);
    let prepared = engine.prepare(&question, None).await.unwrap();
    assert_eq!(prepared.routing.decision.target.name, "assistant");
    let leg = engine.open_stream(&prepared, &question, None).await.unwrap();
    leg.generation.unwrap()
}

fn input(text: &str, record: bool) -> RouteInput {
    RouteInput::try_from(request(text, record.then(telco_record))).unwrap()
}

#[tokio::test]
async fn a_record_alone_is_scored_without_calling_an_llm() {
    let fake = FakeLlm::start(vec![Fault::Ok]).await;
    let (engine, _, _dir) = engine(&fake).await;
    let outcome = engine.route(&input("", true), None).await.unwrap();
    assert_eq!(outcome.routing.decision.target.name, "churn");
    let prediction = outcome.prediction.unwrap();
    assert!(prediction.score > 0.0 && prediction.score < 1.0);
    assert!(
        prediction.top_features.is_empty(),
        "attributions are for hybrid targets"
    );
    assert!(outcome.generation.is_none() && outcome.rejection.is_none() && outcome.degraded.is_none());
    assert_eq!(fake.count(), 0);
}

#[tokio::test]
async fn a_finished_stream_reports_its_usage_and_cost_once() {
    let fake = FakeLlm::start(vec![Fault::Ok]).await;
    let (engine, metrics, _dir) = engine(&fake).await;
    let mut stream = open(&engine, "tell me a joke").await;
    let mut text = String::new();
    let summary = loop {
        match stream.next().await.unwrap().unwrap() {
            GenerationEvent::Delta(delta) => text.push_str(&delta),
            GenerationEvent::End(summary) => break summary,
        }
    };
    assert_eq!(text, "fake answer");
    assert_eq!((summary.usage.input_tokens, summary.usage.output_tokens), (3, 2));
    assert!(!summary.usage_estimated);
    assert!((summary.cost - (3.0 + 2.0 * 2.0)).abs() < 1e-9, "{}", summary.cost);
    assert_eq!(summary.finish_reason, "stop");
    assert!(stream.next().await.is_none(), "nothing after the end");
    drop(stream);
    let exposed = metrics.encode().unwrap();
    let operations = sample(&exposed, "gen_ai_client_operation_duration_seconds_count", &[]);
    assert_eq!(operations, 1.0, "accounted once, not again on drop: {exposed}");
    let cost = sample(
        &exposed,
        "switchyard_llm_cost_total",
        &["switchyard_target=\"assistant\""],
    );
    assert!((cost - 7.0).abs() < 1e-9, "{exposed}");
}

#[tokio::test]
async fn an_abandoned_stream_is_accounted_as_cancelled_with_estimated_usage() {
    let fake = FakeLlm::start(vec![Fault::Endless]).await;
    let (engine, metrics, _dir) = engine(&fake).await;
    let mut stream = open(&engine, "tell me a joke").await;
    for _ in 0..3 {
        assert!(matches!(stream.next().await, Some(Ok(GenerationEvent::Delta(_)))));
    }
    drop(stream);
    let exposed = metrics.encode().unwrap();
    let cancelled = sample(
        &exposed,
        "gen_ai_client_operation_duration_seconds_count",
        &["error_type=\"cancelled\""],
    );
    assert_eq!(cancelled, 1.0, "{exposed}");
    // The backend reported no usage: the estimate (15 characters, about 4 tokens) is charged and priced, but
    // never recorded as `gen_ai.client.token.usage` (the GenAI conventions forbid estimated counts there).
    let output = sample(
        &exposed,
        "gen_ai_client_token_usage_sum",
        &["gen_ai_token_type=\"output\""],
    );
    assert_eq!(output, 0.0, "{exposed}");
}

#[tokio::test]
async fn no_time_left_means_no_llm_call_and_the_callers_deadline_is_named() {
    let fake = FakeLlm::start(vec![Fault::Ok]).await;
    let (engine, _, _dir) = engine(&fake).await;
    let question = input("tell me a joke", false);
    let error = engine.route(&question, Some(Instant::now())).await.unwrap_err();
    assert!(
        matches!(&error, RouterError::Llm(LlmError::DeadlineExceeded { backend, .. }) if backend == "local"),
        "{error:?}"
    );
    assert_eq!(error.code(), tonic::Code::DeadlineExceeded);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(fake.count(), 0);
    // The backend is untouched by the caller's lack of time.
    let outcome = engine.route(&question, None).await.unwrap();
    assert_eq!(outcome.backends[0].circuit, "closed");
    assert_eq!(outcome.generation.unwrap().completion.text, "fake answer");
}
