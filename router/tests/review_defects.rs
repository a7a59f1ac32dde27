//! The request-path defects the review found (issue 12), each through the public gRPC surface against a
//! scriptable fake backend: a cancelled half-open probe, callers' deadlines and the circuit, accounting of
//! streams that end badly, bounds on upstream bytes, the caller's `max_tokens` ceiling, and hybrid streams that
//! send the score before the LLM answers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use support::{
    FakeLlm, Fault, Gateway, assert_status, fast_gateway, free_port, request, sample, stream_events, stream_failure,
    telco_record,
};
use switchyard_proto::v1::route_event::Event;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

async fn start_gateway(fake: &FakeLlm, settings: &str) -> Gateway {
    fast_gateway(&fake.base_url(), "10s", settings).await
}

#[tokio::test]
async fn a_stream_reader_leaving_during_the_half_open_probe_does_not_wedge_the_circuit() {
    let fake = FakeLlm::start(vec![
        Fault::Status(503, None),
        Fault::SlowFirstToken(Duration::from_secs(5)),
        Fault::Ok,
    ])
    .await;
    let gateway = start_gateway(
        &fake,
        "max_attempts = 1\nbreaker_failures = 1\nbreaker_open_for = \"200ms\"",
    )
    .await;
    let mut client = gateway.client().await;
    let status = client.route(request("tell me a joke", None)).await.unwrap_err();
    assert_status(&status, Code::Unavailable, "HTTP 503");
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The probe: a stream whose reader leaves while the backend is still silent.
    let mut reader = gateway.client().await;
    let probe = tokio::spawn(async move {
        let mut stream = reader.route_stream(request("tell me a joke", None)).await?.into_inner();
        while stream.message().await?.is_some() {}
        Ok::<_, tonic::Status>(())
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(fake.count(), 2, "the probe reached the backend");
    probe.abort();
    assert!(probe.await.unwrap_err().is_cancelled());
    tokio::time::sleep(Duration::from_millis(200)).await;

    // The next call probes again (and closes the circuit) instead of being refused with "retry in 0s".
    let response = client
        .route(request("tell me a joke", None))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.generation.unwrap().text, "fake answer");
    assert_eq!(fake.count(), 3);
    assert_eq!(response.backends[0].circuit, "closed");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(gateway.health("switchyard.backend.local").await, ServingStatus::Serving);
}

#[tokio::test]
async fn a_callers_short_deadline_never_opens_the_circuit_for_everyone() {
    let fake = FakeLlm::start(vec![
        Fault::Delay(Duration::from_secs(2)),
        Fault::Delay(Duration::from_secs(2)),
        Fault::Ok,
    ])
    .await;
    let gateway = start_gateway(
        &fake,
        "max_attempts = 1\nbreaker_failures = 1\nbreaker_open_for = \"60s\"",
    )
    .await;
    let mut client = gateway.client().await;
    for _ in 0..2 {
        let mut hurried = tonic::Request::new(request("tell me a joke", None));
        hurried.metadata_mut().insert("grpc-timeout", "300m".parse().unwrap());
        let status = client.route(hurried).await.unwrap_err();
        assert_status(&status, Code::DeadlineExceeded, "local");
    }
    // One backend failure would have opened the circuit; the callers' deadlines are not the backend's.
    let response = client
        .route(request("tell me a joke", None))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.generation.unwrap().text, "fake answer");
    assert_eq!(response.backends[0].circuit, "closed");
}

#[tokio::test]
async fn streams_that_fail_midway_or_lose_their_reader_are_accounted() {
    let fake = FakeLlm::start(vec![Fault::DisconnectMidStream, Fault::Endless]).await;
    let prices = "input_price_per_mtok = 1000000.0\noutput_price_per_mtok = 1000000.0";
    let gateway = start_gateway(&fake, &format!("max_attempts = 1\n{prices}")).await;
    let mut client = gateway.client().await;
    let (_, before) = gateway.admin_get("/metrics").await;

    let (events, status) = stream_failure(&mut client, request("tell me a joke", None)).await;
    assert_eq!(events.iter().filter(|e| matches!(e, Event::Delta(_))).count(), 2);
    assert_eq!(status.code(), Code::Unavailable);

    let mut stream = client
        .route_stream(request("tell me a joke", None))
        .await
        .unwrap()
        .into_inner();
    let mut deltas = 0;
    while deltas < 3 {
        if let Some(Event::Delta(_)) = stream.message().await.unwrap().unwrap().event {
            deltas += 1;
        }
    }
    drop(stream);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (_, after) = gateway.admin_get("/metrics").await;
    let delta = |metric: &str, labels: &[&str]| sample(&after, metric, labels) - sample(&before, metric, labels);
    let operations = "gen_ai_client_operation_duration_seconds_count";
    assert_eq!(delta(operations, &["error_type=\"protocol\""]), 1.0, "{after}");
    assert_eq!(delta(operations, &["error_type=\"cancelled\""]), 1.0, "{after}");
    assert_eq!(
        delta("gen_ai_client_token_usage_count", &["gen_ai_token_type=\"output\""]),
        0.0,
        "neither stream reported usage: estimates are not token usage"
    );
    assert!(
        delta("switchyard_llm_cost_total", &["switchyard_target=\"assistant\""]) > 0.0,
        "both streams cost something: {after}"
    );
}

#[tokio::test]
async fn upstream_bytes_are_bounded_on_streams_error_bodies_and_silences() {
    // All of a stream's bytes count against max_response_bytes.
    let fake = FakeLlm::start(vec![Fault::Endless]).await;
    let gateway = start_gateway(&fake, "max_attempts = 1\nmax_response_bytes = 4096").await;
    let started = Instant::now();
    let (events, status) = stream_failure(&mut gateway.client().await, request("tell me a joke", None)).await;
    assert_status(&status, Code::Unavailable, "reply larger than 4096 bytes");
    assert!(events.iter().any(|e| matches!(e, Event::Delta(_))), "{events:?}");
    assert!(started.elapsed() < Duration::from_secs(10));

    // An error body is read only as far as its quote needs.
    let fake = FakeLlm::start(vec![Fault::HugeError(64 << 20)]).await;
    let gateway = start_gateway(&fake, "max_attempts = 1").await;
    let status = gateway
        .client()
        .await
        .route(request("tell me a joke", None))
        .await
        .unwrap_err();
    assert_status(&status, Code::Unavailable, "answered HTTP 500");
    assert!(
        status.message().len() < 1000,
        "{} bytes of message",
        status.message().len()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let written = fake.error_bytes_written.load(std::sync::atomic::Ordering::SeqCst);
    assert!(written < 16 << 20, "{written} bytes of the error body were taken");

    // A silence between tokens longer than inter_token_timeout ends the stream (request_timeout is 10 s).
    let fake = FakeLlm::start(vec![Fault::StallMidStream]).await;
    let gateway = start_gateway(&fake, "max_attempts = 1\ninter_token_timeout = \"300ms\"").await;
    let started = Instant::now();
    let (events, status) = stream_failure(&mut gateway.client().await, request("tell me a joke", None)).await;
    assert_eq!(events.iter().filter(|e| matches!(e, Event::Delta(_))).count(), 2);
    assert_status(&status, Code::DeadlineExceeded, "local");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
}

#[tokio::test]
async fn the_targets_max_tokens_is_the_ceiling_of_what_a_caller_asks() {
    let fake = FakeLlm::start(vec![Fault::Ok]).await;
    let gateway = start_gateway(&fake, "").await;
    let mut client = gateway.client().await;
    for (asked, sent) in [(Some(5000), 24), (Some(10), 10), (None, 24)] {
        let mut ask = request("tell me a joke", None);
        ask.max_tokens = asked;
        client.route(ask).await.unwrap();
        let bodies = fake.bodies.lock().unwrap();
        let body: serde_json::Value = serde_json::from_str(bodies.last().unwrap()).unwrap();
        assert_eq!(body["max_tokens"], sent, "asked {asked:?}");
    }
}

#[tokio::test]
async fn a_hybrid_stream_sends_decision_and_score_before_the_llm_and_keeps_them_when_it_fails() {
    let fake = FakeLlm::start(vec![Fault::SlowFirstToken(Duration::from_secs(2))]).await;
    let gateway = start_gateway(&fake, "max_attempts = 1").await;
    let hybrid = request("why is this customer likely to leave?", Some(telco_record()));
    let started = Instant::now();
    let mut stream = gateway
        .client()
        .await
        .route_stream(hybrid.clone())
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap().event;
    let second = stream.message().await.unwrap().unwrap().event;
    assert!(matches!(first, Some(Event::Decision(_))), "{first:?}");
    assert!(matches!(second, Some(Event::Prediction(_))), "{second:?}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "the score did not wait for the first token: {:?}",
        started.elapsed()
    );
    while stream.message().await.unwrap().is_some() {}

    // With the backend gone and no score_only, the score still reaches the caller before the error.
    let url = format!("http://127.0.0.1:{}/v1", free_port());
    let down = fast_gateway(&url, "3s", "max_attempts = 1").await;
    let (events, status) = stream_failure(&mut down.client().await, hybrid).await;
    assert!(
        matches!(events.as_slice(), [Event::Decision(_), Event::Prediction(_)]),
        "{events:?}"
    );
    assert_status(&status, Code::Unavailable, "llm backend local");
    // And a stream that succeeds still ends with its summary.
    let events = stream_events(&mut gateway.client().await, request("", Some(telco_record()))).await;
    assert!(matches!(events.last(), Some(Event::Summary(_))), "{events:?}");
}
