//! Nothing a caller sends or a backend answers leaks with content capture off: secrets are planted in every input
//! (request text, record values, API keys, an upstream error body, the generated text) and every output is
//! searched for them: the gateway's log, its metrics, every exported span, and every status it answered.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use prost_types::Value;
use support::{FakeLlm, Fault, Gateway, OtlpReceiver, TempDir, config, n, request, s, telco_record};
use switchyard_proto::v1::RouteRequest;
use tonic_types::StatusExt;

const KEY: &str = "sk-SECRET-KEY-4f9a0c7e2b5d8136";
const WRONG_KEY: &str = "sk-SECRET-WRONG-0d3e9b";
const TEXT: &str = "SECRET-TEXT-77c1";
const CATEGORY: &str = "SECRET-CAT-9f3";
/// A record value that is valid (so the record is scored) and appears nowhere else.
const CHARGES: f64 = 73.123_456_7;
const CHARGES_TEXT: &str = "73.1234567";
/// The fake backend's answer and its error body.
const GENERATED: &str = "fake answer";
const UPSTREAM_BODY: &str = "injected failure";

fn with_key(message: RouteRequest, key: &str) -> tonic::Request<RouteRequest> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    request
}

fn field(message: &mut RouteRequest, name: &str, value: Value) {
    message.features.as_mut().unwrap().fields.insert(name.to_owned(), value);
}

/// A gateway requiring `KEY` (tenant `ops`), traced to `receiver`, its backend at `llm`.
async fn start(dir: &TempDir, llm: &FakeLlm, receiver: &OtlpReceiver) -> Gateway {
    let keys = dir.0.join("keys.toml");
    std::fs::write(
        &keys,
        format!(
            "[[keys]]\ntenant = \"ops\"\nsha256 = \"{}\"\n",
            switchyard::auth::hash_key(KEY)
        ),
    )
    .unwrap();
    let text = format!(
        "{}\n[auth]\nmode = \"required\"\nkeys_file = \"{}\"\n",
        config(&llm.base_url(), "5s").replace("[backends.local]\n", "[backends.local]\nmax_attempts = 1\n"),
        keys.display()
    );
    Gateway::start_traced(&text, &receiver.endpoint(), "").await
}

#[tokio::test]
async fn no_request_content_key_or_upstream_body_reaches_logs_metrics_spans_or_statuses() {
    let receiver = OtlpReceiver::grpc().await;
    let (dir, failing_dir) = (TempDir::new(), TempDir::new());
    let llm = FakeLlm::start(vec![Fault::Ok]).await;
    let failing = FakeLlm::start(vec![Fault::Status(500, None)]).await;
    let gateway = start(&dir, &llm, &receiver).await;
    let broken = start(&failing_dir, &failing, &receiver).await;
    let mut statuses = Vec::new();

    let mut client = gateway.client().await;
    // An LLM answer (generated text comes back to the caller and nowhere else), streamed and whole.
    let question = request(&format!("{TEXT} what is the capital of france?"), None);
    let answer = client
        .route(with_key(question.clone(), KEY))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.generation.unwrap().text, GENERATED, "the caller gets the answer");
    let mut stream = client
        .route_stream(with_key(question.clone(), KEY))
        .await
        .unwrap()
        .into_inner();
    let mut streamed = String::new();
    while let Some(event) = stream.message().await.unwrap() {
        if let Some(switchyard_proto::v1::route_event::Event::Delta(delta)) = event.event {
            streamed.push_str(&delta.text);
        }
    }
    assert!(streamed.contains("fake"), "the stream carried the answer: {streamed:?}");
    // A hybrid request with a planted record value, and one with a record that fails validation.
    let mut hybrid = request(&format!("{TEXT} why would this customer leave?"), Some(telco_record()));
    field(&mut hybrid, "monthlycharges", n(CHARGES));
    assert!(
        client
            .route(with_key(hybrid.clone(), KEY))
            .await
            .unwrap()
            .into_inner()
            .prediction
            .is_some()
    );
    let mut invalid = hybrid.clone();
    field(&mut invalid, "contract", s(CATEGORY));
    field(&mut invalid, "tenure", n(CHARGES));
    statuses.push(client.route(with_key(invalid, KEY)).await.unwrap_err());
    // A wrong key, no key, and a body naming another tenant.
    statuses.push(client.route(with_key(question.clone(), WRONG_KEY)).await.unwrap_err());
    statuses.push(client.route(tonic::Request::new(question.clone())).await.unwrap_err());
    let claimed = RouteRequest {
        tenant: "someone-else".into(),
        ..question.clone()
    };
    statuses.push(client.route(with_key(claimed, KEY)).await.unwrap_err());
    // The backend fails with a body: the caller learns the status, not the body.
    let mut failing_client = broken.client().await;
    statuses.push(failing_client.route(with_key(question.clone(), KEY)).await.unwrap_err());
    assert!(
        statuses.last().unwrap().message().contains("HTTP 500"),
        "{:?}",
        statuses.last()
    );

    // Let the batch exporters flush (100 ms schedule in the harness).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let spans = receiver.all_spans();
    assert!(spans.len() >= 10, "spans arrived: {}", spans.len());
    let mut outputs: Vec<(String, String)> = vec![
        ("gateway log".to_owned(), gateway.logs()),
        ("failing gateway log".to_owned(), broken.logs()),
        ("metrics".to_owned(), gateway.admin_get("/metrics").await.1),
        ("failing metrics".to_owned(), broken.admin_get("/metrics").await.1),
    ];
    for span in &spans {
        outputs.push((format!("span {}", span.span.name), span.all_text()));
    }
    for status in &statuses {
        let details = status.get_error_details();
        outputs.push((
            format!("status {:?}", status.code()),
            format!("{} {details:?}", status.message()),
        ));
    }
    for secret in [KEY, WRONG_KEY, TEXT, CATEGORY, CHARGES_TEXT, GENERATED, UPSTREAM_BODY] {
        for (name, text) in &outputs {
            assert!(!text.contains(secret), "{secret:?} leaked into the {name}: {text}");
        }
    }
    // The checks looked at something real: the spans and logs carry the requests' structure.
    assert!(
        outputs.iter().any(|(_, t)| t.contains("churn_explain")),
        "decisions are recorded"
    );
}
