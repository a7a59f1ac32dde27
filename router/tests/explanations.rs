//! Hybrid explanations held to their score, through the gRPC surface, with a scripted backend: a contradicting
//! answer retried and replaced, the deadline that leaves no time for a retry, a stream cut before its failing
//! sentence, `observe` leaving the text alone, and the metrics per outcome. The real model's answers are held to
//! the same check by the evals (`evals/tests/faithfulness.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use support::{FakeLlm, Fault, Gateway, config, n, s, sample, stream_events, telco_record};
use switchyard_proto::v1::route_event::Event;
use switchyard_proto::v1::{RouteRequest, RouteResponse};

/// A customer the scorer rates high (month-to-month, fiber, two months in).
fn high() -> prost_types::Struct {
    telco_record()
}

/// A customer the scorer rates low (two-year contract, seventy months in).
fn low() -> prost_types::Struct {
    let mut record = telco_record();
    record.fields.insert("tenure".into(), n(70.0));
    record.fields.insert("contract".into(), s("Two year"));
    record.fields.insert("totalcharges".into(), n(6500.0));
    record
}

/// The text a stream's deltas add up to.
fn text_of(events: &[Event]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Delta(d) => Some(d.text.as_str()),
            _ => None,
        })
        .collect()
}

/// The summary that ends a stream.
fn summary(events: &[Event]) -> &switchyard_proto::v1::Summary {
    match events.last() {
        Some(Event::Summary(summary)) => summary,
        other => panic!("a stream ends with its summary: {other:?}"),
    }
}

fn ask(question: &str, record: prost_types::Struct) -> RouteRequest {
    RouteRequest {
        text: question.into(),
        features: Some(record),
        ..Default::default()
    }
}

async fn start(script: Vec<Fault>, check: &str) -> (Gateway, FakeLlm) {
    let llm = FakeLlm::start(script).await;
    let text = config(&llm.base_url(), "5s").replace("check = \"off\"", &format!("check = \"{check}\""));
    (Gateway::start(&text).await, llm)
}

async fn route(gateway: &Gateway, request: RouteRequest) -> RouteResponse {
    gateway.client().await.route(request).await.unwrap().into_inner()
}

#[tokio::test]
async fn a_contradicting_answer_is_retried_with_the_stricter_prompt_and_the_retry_is_kept_when_it_passes() {
    let (gateway, llm) = start(
        vec![
            Fault::Says("This customer is safe: their tenure keeps them."),
            Fault::Says("Two months of tenure put this customer at high risk of leaving."),
        ],
        "enforce",
    )
    .await;
    let answer = route(&gateway, ask("why is this customer safe?", high())).await;
    let explanation = answer.explanation.unwrap();
    assert_eq!(explanation.source, "llm_retried", "{explanation:?}");
    assert_eq!(explanation.band, "high");
    assert_eq!(
        (explanation.first_verdict.as_str(), explanation.retry_verdict.as_str()),
        ("contradicts_band", "faithful")
    );
    assert!(
        explanation.top_fields.contains(&"tenure".to_owned()),
        "{:?}",
        explanation.top_fields
    );
    let generation = answer.generation.unwrap();
    assert_eq!(
        generation.text,
        "Two months of tenure put this customer at high risk of leaving."
    );
    assert_eq!(
        (generation.input_tokens, generation.output_tokens),
        (6, 4),
        "both calls are paid for"
    );
    assert_eq!(llm.count(), 2);
    let retry = llm.bodies.lock().unwrap()[1].clone();
    assert!(
        retry.contains("Begin your answer with exactly this sentence"),
        "the retry prompt: {retry}"
    );
    assert!(retry.contains("risk of leaving as high"), "{retry}");
}

#[tokio::test]
async fn when_the_retry_fails_too_the_answer_is_the_template_built_from_the_attributions() {
    let (gateway, llm) = start(
        vec![Fault::Says("They are likely to leave because of the contract.")],
        "enforce",
    )
    .await;
    let answer = route(&gateway, ask("why will this customer leave?", low())).await;
    let explanation = answer.explanation.unwrap();
    assert_eq!(explanation.source, "template");
    assert_eq!(explanation.band, "low");
    assert_eq!(explanation.first_verdict, "contradicts_band");
    assert_eq!(explanation.retry_verdict, "contradicts_band");
    let score = answer.prediction.unwrap().score;
    let text = answer.generation.unwrap().text;
    assert!(
        text.starts_with(&format!(
            "The churn model puts this customer's probability of leaving at {score:.2}, which is low."
        )),
        "{text}"
    );
    assert!(text.contains("the contract (Two year) lowers it by"), "{text}");
    assert!(!text.contains("likely to leave"), "{text}");
    assert_eq!(llm.count(), 2);

    let (_, metrics) = gateway.admin_get("/metrics").await;
    let template = [
        "switchyard_target=\"retention\"",
        "switchyard_explanation_source=\"template\"",
    ];
    assert_eq!(
        sample(&metrics, "switchyard_explanations_total", &template),
        1.0,
        "{metrics}"
    );
    let checks = ["switchyard_explanation_verdict=\"contradicts_band\""];
    assert_eq!(sample(&metrics, "switchyard_explanation_checks_total", &checks), 2.0);
}

#[tokio::test]
async fn no_retry_when_the_deadline_leaves_less_than_the_first_answer_took() {
    let (gateway, llm) = start(vec![Fault::Delay(Duration::from_millis(600))], "enforce").await;
    let mut request = tonic::Request::new(ask("why will this customer leave?", low()));
    request.set_timeout(Duration::from_millis(1000));
    let answer = gateway.client().await.route(request).await.unwrap().into_inner();
    let explanation = answer.explanation.unwrap();
    assert_eq!(
        (
            explanation.source.as_str(),
            explanation.first_verdict.as_str(),
            explanation.retry_verdict.as_str()
        ),
        ("template", "no_top_field", ""),
        "\"fake answer\" names no field; 0.4 s left is less than the 0.6 s it took"
    );
    assert_eq!(llm.count(), 1);
}

#[tokio::test]
async fn a_stream_stops_before_its_failing_sentence_and_ends_with_the_replacement() {
    let (gateway, _llm) = start(
        vec![Fault::Says(
            "The two-year contract matters here. They are likely to leave soon. Call them.",
        )],
        "enforce",
    )
    .await;
    let events = stream_events(&mut gateway.client().await, ask("why will this customer leave?", low())).await;
    let streamed = text_of(&events);
    assert_eq!(
        streamed, "The two-year contract matters here.",
        "the failing sentence is never sent"
    );
    let explanation = summary(&events).explanation.clone().unwrap();
    assert_eq!(
        (explanation.source.as_str(), explanation.first_verdict.as_str()),
        ("template", "contradicts_band")
    );
    assert!(
        explanation.replacement.contains("which is low"),
        "{}",
        explanation.replacement
    );

    // A stream that passes is released whole, sentence by sentence, and says so.
    let (gateway, _llm) = start(
        vec![Fault::Says(
            "The two-year contract keeps the risk low. Thank them for staying.",
        )],
        "enforce",
    )
    .await;
    let events = stream_events(&mut gateway.client().await, ask("why will this customer leave?", low())).await;
    let streamed = text_of(&events);
    assert_eq!(
        streamed,
        "The two-year contract keeps the risk low. Thank them for staying."
    );
    let explanation = summary(&events).explanation.clone().unwrap();
    assert_eq!(
        (explanation.source.as_str(), explanation.replacement.as_str()),
        ("llm", "")
    );
}

#[tokio::test]
async fn a_stream_that_fails_before_sending_anything_is_answered_by_the_retry() {
    let (gateway, llm) = start(
        vec![
            Fault::Says("They are likely to leave soon. Call them."),
            Fault::Says("The two-year contract keeps their risk of leaving low."),
        ],
        "enforce",
    )
    .await;
    let events = stream_events(&mut gateway.client().await, ask("why will this customer leave?", low())).await;
    let streamed: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            Event::Delta(d) => Some(d.text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        streamed,
        ["The two-year contract keeps their risk of leaving low."],
        "only the retry is sent"
    );
    let summary = summary(&events);
    let explanation = summary.explanation.clone().unwrap();
    assert_eq!(
        (
            explanation.source.as_str(),
            explanation.first_verdict.as_str(),
            explanation.retry_verdict.as_str()
        ),
        ("llm_retried", "contradicts_band", "faithful")
    );
    assert!(explanation.replacement.is_empty());
    // The cut stream sent no usage (its counts are estimated from the prompt and the text seen); the retry's
    // reported 3 in and 2 out are added to them.
    assert!(
        summary.usage_estimated && summary.input_tokens > 3 && summary.output_tokens > 2,
        "{summary:?}"
    );
    assert_eq!(llm.count(), 2);
}

#[tokio::test]
async fn observe_reports_the_verdict_and_leaves_the_text_alone() {
    let (gateway, llm) = start(
        vec![Fault::Says("They are likely to leave because of the contract.")],
        "observe",
    )
    .await;
    let answer = route(&gateway, ask("why will this customer leave?", low())).await;
    let explanation = answer.explanation.unwrap();
    assert_eq!(
        (explanation.source.as_str(), explanation.first_verdict.as_str()),
        ("llm", "contradicts_band")
    );
    assert_eq!(
        answer.generation.unwrap().text,
        "They are likely to leave because of the contract."
    );
    assert_eq!(llm.count(), 1, "observe never retries");
}
