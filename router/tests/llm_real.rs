//! End to end against the real local `llama-server` (SmolLM2-135M, temperature 0): plain, hybrid and streamed
//! answers. Structure is asserted, not wording. Each test starts the llama-servers it needs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use support::otlp::named;
use support::{
    Gateway, LlamaServer, OtlpReceiver, config, request, stream_events, telco_record, with_backend_settings,
    with_secondary,
};
use switchyard_proto::v1::{TargetKind, route_event::Event};

/// The real model is CPU-bound on a 2-core machine: tests that run it take turns.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn plain_hybrid_and_streamed_answers_from_a_real_llm() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let llama = LlamaServer::start().await;
    let gateway = Gateway::start(&config(&llama.base_url(), "60s")).await;
    let mut client = gateway.client().await;

    // A plain question without a record: an LLM answer.
    let response = client
        .route(request("what is the capital of france?", None))
        .await
        .unwrap()
        .into_inner();
    let decision = response.decision.unwrap();
    assert_eq!(decision.target_kind(), TargetKind::Llm, "{decision:?}");
    let generation = response.generation.expect("an LLM answer");
    assert_eq!(generation.backend, "local");
    assert!(!generation.text.trim().is_empty());
    assert!(
        generation.input_tokens > 0 && generation.output_tokens > 0,
        "{generation:?}"
    );
    assert!(
        generation.output_tokens <= 24,
        "max_tokens from the target is honoured: {generation:?}"
    );
    assert!(
        ["stop", "length"].contains(&generation.finish_reason.as_str()),
        "{generation:?}"
    );
    assert!(response.prediction.is_none());

    // A question about a record: hybrid, a score and its explanation.
    let response = client
        .route(request("why is this customer likely to leave?", Some(telco_record())))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.decision.unwrap().target_kind(), TargetKind::Hybrid);
    let prediction = response.prediction.expect("a score");
    assert!(prediction.score > 0.0 && prediction.score < 1.0);
    let generation = response.generation.expect("an explanation");
    assert!(!generation.text.trim().is_empty());
    // The band, the score and the strongest fields went into the prompt: far more input tokens than the question.
    assert!(generation.input_tokens > 60, "{generation:?}");

    // Streamed: decision, prediction, deltas, summary; the deltas add up to text.
    let events = stream_events(
        &mut client,
        request("what should we do to keep this customer?", Some(telco_record())),
    )
    .await;
    assert!(matches!(events.first(), Some(Event::Decision(_))), "{events:?}");
    assert!(matches!(events.get(1), Some(Event::Prediction(_))), "{events:?}");
    let text: String = events
        .iter()
        .filter_map(|e| {
            if let Event::Delta(d) = e {
                Some(d.text.as_str())
            } else {
                None
            }
        })
        .collect();
    assert!(!text.trim().is_empty());
    assert!(
        events.iter().filter(|e| matches!(e, Event::Delta(_))).count() > 1,
        "text arrives in pieces"
    );
    let Some(Event::Summary(summary)) = events.last() else {
        panic!("last event is the summary: {events:?}")
    };
    assert_eq!(summary.backend, "local");
    assert!(summary.output_tokens > 0 && summary.input_tokens > 0, "{summary:?}");
    assert!(!summary.finish_reason.is_empty());
}

#[tokio::test]
async fn two_real_backends_fall_back_when_the_primary_is_stopped_mid_test() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let mut primary = LlamaServer::start().await;
    let secondary = LlamaServer::start().await;
    let text = with_secondary(
        &with_backend_settings(&config(&primary.base_url(), "60s"), "max_attempts = 1"),
        &secondary.base_url(),
    );
    let gateway = Gateway::start(&text).await;
    let mut client = gateway.client().await;
    let question = || request("what is the capital of france?", None);

    let before = client
        .route(question())
        .await
        .expect("the primary answers")
        .into_inner()
        .generation
        .unwrap();
    assert_eq!(before.backend, "local");
    assert!(before.failed_backends.is_empty());

    primary.stop();
    let after = client.route(question()).await.unwrap().into_inner().generation.unwrap();
    assert_eq!(after.backend, "secondary");
    assert_eq!(after.failed_backends, vec!["local".to_owned()]);
    assert!(!after.text.trim().is_empty() && after.output_tokens > 0);

    let events = stream_events(&mut client, question()).await;
    let Some(Event::Summary(summary)) = events.last() else {
        panic!("{events:?}")
    };
    assert_eq!(summary.backend, "secondary");
    assert!(
        summary.output_tokens > 0 && !summary.usage_estimated,
        "usage came from the backend: {summary:?}"
    );
}

#[tokio::test]
async fn a_real_hybrid_request_is_one_trace_from_the_caller_to_the_llm() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let llama = LlamaServer::start().await;
    let receiver = OtlpReceiver::grpc().await;
    let gateway = Gateway::start_traced(&config(&llama.base_url(), "60s"), &receiver.endpoint(), "").await;
    let mut client = gateway.client().await;
    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    let caller_span = "00f067aa0ba902b7";
    let mut message = tonic::Request::new(request("why is this customer likely to leave?", Some(telco_record())));
    message.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-{caller_span}-01").parse().unwrap(),
    );
    let response = client.route(message).await.unwrap().into_inner();
    assert!(response.generation.is_some());

    let spans = receiver
        .trace(&trace_id, |spans| {
            spans.iter().any(|s| s.span.name == "switchyard.v1.Router/Route")
        })
        .await;
    let server = named(&spans, "switchyard.v1.Router/Route");
    assert_eq!(server.parent_id(), caller_span);
    for child in ["classify", "route.decide", "score", "chat smollm2"] {
        assert_eq!(named(&spans, child).parent_id(), server.span_id(), "{child}");
    }
    let chat = named(&spans, "chat smollm2");
    assert!(
        chat.str("gen_ai.response.id").unwrap().starts_with("chatcmpl"),
        "llama-server's completion id"
    );
    assert!(chat.int("gen_ai.usage.input_tokens").unwrap() > 60);
    assert!(chat.int("gen_ai.usage.output_tokens").unwrap() > 0);
    assert_eq!(chat.str("gen_ai.response.model").as_deref(), Some("smollm2"));
    assert_eq!(chat.int("server.port"), Some(i64::from(llama.port)));
    // The tree, for the record (`cargo test -- --nocapture`).
    for span in &spans {
        eprintln!(
            "{:<34} span {} parent {} kind {:<8} {:.1} ms",
            span.span.name,
            span.span_id(),
            span.parent_id(),
            ["UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT"][span.span.kind as usize],
            (span.span.end_time_unix_nano - span.span.start_time_unix_nano) as f64 / 1e6
        );
        for kv in &span.span.attributes {
            if let Some(value) = kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                eprintln!("    {} = {value:?}", kv.key);
            }
        }
        for event in &span.span.events {
            eprintln!("    event {}", event.name);
        }
    }
}
