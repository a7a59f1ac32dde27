//! The LLM path under faults, against a scriptable fake backend: status, message, retries (the fake's request
//! count), circuit state, fallbacks, degradation, backpressure, deadlines and cancellation.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use support::{
    FAST_RETRIES, FakeLlm, Fault, Gateway, assert_status, config, fast_gateway, free_port, request, stream_events,
    stream_failure, telco_record, with_backend_settings, with_secondary,
};
use switchyard_proto::v1::route_event::Event;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_types::StatusExt;

async fn start_gateway(fake: &FakeLlm, settings: &str) -> Gateway {
    fast_gateway(&fake.base_url(), "3s", settings).await
}

#[tokio::test]
async fn retryable_failures_are_retried_then_answered() {
    let fake = FakeLlm::start(vec![Fault::Status(503, None), Fault::Status(502, None), Fault::Ok]).await;
    let gateway = start_gateway(&fake, "max_attempts = 3").await;
    let mut client = gateway.client().await;
    let response = client
        .route(request("tell me a joke", None))
        .await
        .unwrap()
        .into_inner();
    let generation = response.generation.unwrap();
    assert_eq!(generation.text, "fake answer");
    assert_eq!(generation.attempts, 3);
    assert_eq!(fake.count(), 3);
    assert_eq!(response.backends[0].circuit, "closed");
}

#[tokio::test]
async fn non_retryable_statuses_fail_at_once_naming_the_backend() {
    let fake = FakeLlm::start(vec![Fault::Status(500, None)]).await;
    let gateway = start_gateway(&fake, "max_attempts = 3").await;
    let status = gateway
        .client()
        .await
        .route(request("tell me a joke", None))
        .await
        .unwrap_err();
    assert_status(&status, Code::Unavailable, "llm backend local answered HTTP 500");
    assert_eq!(fake.count(), 1, "500 is not retried");
}

#[tokio::test]
async fn rate_limiting_honours_retry_after() {
    let fake = FakeLlm::start(vec![Fault::Status(429, Some(1)), Fault::Ok]).await;
    let settings = "base_backoff = \"20ms\"\nmax_backoff = \"5s\"\nmax_attempts = 2";
    let gateway = Gateway::start(&with_backend_settings(&config(&fake.base_url(), "3s"), settings)).await;
    let started = Instant::now();
    let response = gateway
        .client()
        .await
        .route(request("tell me a joke", None))
        .await
        .unwrap()
        .into_inner();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited for Retry-After: {:?}",
        started.elapsed()
    );
    assert_eq!(response.generation.unwrap().attempts, 2);
    assert_eq!(fake.count(), 2);
}

#[tokio::test]
async fn connection_refused_is_unavailable_after_retries_and_opens_the_circuit() {
    let url = format!("http://127.0.0.1:{}/v1", free_port());
    let text = with_backend_settings(
        &config(&url, "3s"),
        &format!("{FAST_RETRIES}\nmax_attempts = 2\nbreaker_failures = 2\nbreaker_open_for = \"60s\""),
    );
    let gateway = Gateway::start(&text).await;
    let mut client = gateway.client().await;
    let status = client.route(request("tell me a joke", None)).await.unwrap_err();
    assert_status(&status, Code::Unavailable, "llm backend local unreachable");
    // Two consecutive failures opened the circuit: the next call fails fast without trying.
    let started = Instant::now();
    let status = client.route(request("tell me a joke", None)).await.unwrap_err();
    assert_status(&status, Code::Unavailable, "circuit open");
    assert!(started.elapsed() < Duration::from_millis(500));
    // A client can act on it without parsing the message: wait this long, for this backend.
    let wait = status.get_details_retry_info().unwrap().retry_delay.unwrap();
    assert!(
        wait > Duration::from_secs(59) && wait <= Duration::from_secs(60),
        "{wait:?}"
    );
    let info = status.get_details_error_info().unwrap();
    assert_eq!(
        (info.reason.as_str(), info.metadata["backend"].as_str()),
        ("CIRCUIT_OPEN", "local")
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        gateway.health("switchyard.backend.local").await,
        ServingStatus::NotServing
    );
    assert_eq!(
        gateway.health("switchyard.v1.Router").await,
        ServingStatus::Serving,
        "scores still served"
    );
}

#[tokio::test]
async fn a_failed_primary_falls_back_to_the_secondary() {
    let secondary = FakeLlm::start(vec![Fault::Ok]).await;
    let primary_url = format!("http://127.0.0.1:{}/v1", free_port());
    let text = with_secondary(
        &with_backend_settings(
            &config(&primary_url, "3s"),
            &format!("{FAST_RETRIES}\nmax_attempts = 1"),
        ),
        &secondary.base_url(),
    );
    let gateway = Gateway::start(&text).await;
    let response = gateway
        .client()
        .await
        .route(request("tell me a joke", None))
        .await
        .unwrap()
        .into_inner();
    let generation = response.generation.unwrap();
    assert_eq!(generation.backend, "secondary");
    assert_eq!(generation.failed_backends, vec!["local".to_owned()]);
    assert_eq!(response.backends.len(), 2);
    let events = stream_events(&mut gateway.client().await, request("tell me a joke", None)).await;
    let Some(Event::Summary(summary)) = events.last() else {
        panic!("{events:?}")
    };
    assert_eq!(summary.backend, "secondary");
    assert_eq!(summary.failed_backends, vec!["local".to_owned()]);
}

#[tokio::test]
async fn hybrid_degrades_to_the_score_when_allowed() {
    let url = format!("http://127.0.0.1:{}/v1", free_port());
    let base = with_backend_settings(&config(&url, "3s"), &format!("{FAST_RETRIES}\nmax_attempts = 1"));
    let degrading = base.replace(
        "[targets.retention]\n",
        "[targets.retention]\non_unavailable = \"score_only\"\n",
    );
    let gateway = Gateway::start(&degrading).await;
    let mut client = gateway.client().await;
    let hybrid = request("why is this customer likely to leave?", Some(telco_record()));
    let response = client.route(hybrid.clone()).await.unwrap().into_inner();
    assert!(response.degraded, "{response:?}");
    assert!(
        response.degraded_reason.contains("llm backend local"),
        "{}",
        response.degraded_reason
    );
    assert!(response.prediction.is_some() && response.generation.is_none());
    let events = stream_events(&mut client, hybrid.clone()).await;
    assert!(matches!(events.get(1), Some(Event::Prediction(_))), "{events:?}");
    let Some(Event::Summary(summary)) = events.last() else {
        panic!("{events:?}")
    };
    assert!(summary.degraded && summary.finish_reason == "degraded");
    // Without the flag, the same failure is an error.
    let strict = Gateway::start(&base).await;
    let status = strict.client().await.route(hybrid).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
}

#[tokio::test]
async fn a_slow_first_token_times_out_as_deadline_exceeded() {
    let fake = FakeLlm::start(vec![Fault::SlowFirstToken(Duration::from_secs(3))]).await;
    let gateway = start_gateway(&fake, "max_attempts = 1\nfirst_token_timeout = \"300ms\"").await;
    let started = Instant::now();
    let (events, status) = stream_failure(&mut gateway.client().await, request("tell me a joke", None)).await;
    assert!(matches!(events.as_slice(), [Event::Decision(_)]), "{events:?}");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(status.message().contains("local"));
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn the_callers_deadline_bounds_the_upstream_call() {
    let fake = FakeLlm::start(vec![Fault::Delay(Duration::from_secs(5))]).await;
    let gateway = start_gateway(&fake, "max_attempts = 3").await;
    // The header alone (no client-side timer), so the answer comes from the server.
    let mut request = tonic::Request::new(request("tell me a joke", None));
    request.metadata_mut().insert("grpc-timeout", "400m".parse().unwrap());
    let started = Instant::now();
    let status = gateway.client().await.route(request).await.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn mid_stream_faults_reach_the_caller_after_the_text_so_far() {
    for (fault, code) in [
        (Fault::DisconnectMidStream, Code::Unavailable),
        (Fault::StallMidStream, Code::DeadlineExceeded),
    ] {
        let fake = FakeLlm::start(vec![fault.clone()]).await;
        // request_timeout (the whole exchange) ends the stall.
        let text = with_backend_settings(
            &config(&fake.base_url(), "1s"),
            &format!("{FAST_RETRIES}\nmax_attempts = 3"),
        );
        let gateway = Gateway::start(&text).await;
        let mut stream = gateway
            .client()
            .await
            .route_stream(request("tell me a joke", None))
            .await
            .unwrap()
            .into_inner();
        let mut deltas = 0;
        let status = loop {
            match stream.message().await {
                Ok(Some(event)) => deltas += usize::from(matches!(event.event, Some(Event::Delta(_)))),
                Ok(None) => panic!("{fault:?}: the stream ended without an error"),
                Err(status) => break status,
            }
        };
        assert_eq!(deltas, 2, "{fault:?}: the text before the fault arrived");
        assert_eq!(status.code(), code, "{fault:?}: {status:?}");
        assert!(status.message().contains("local"));
        assert_eq!(fake.count(), 1, "{fault:?}: no retry after the first token");
    }
}

#[tokio::test]
async fn malformed_and_oversized_replies_are_protocol_errors() {
    let fake = FakeLlm::start(vec![Fault::MalformedSse]).await;
    let gateway = start_gateway(&fake, "max_attempts = 1").await;
    let (_, status) = stream_failure(&mut gateway.client().await, request("tell me a joke", None)).await;
    assert_status(&status, Code::Unavailable, "protocol error");

    let fake = FakeLlm::start(vec![Fault::Huge(50 << 20)]).await;
    let gateway = start_gateway(&fake, "max_attempts = 1\nmax_response_bytes = 1048576").await;
    let status = gateway
        .client()
        .await
        .route(request("tell me a joke", None))
        .await
        .unwrap_err();
    assert_status(&status, Code::Unavailable, "reply larger than 1048576 bytes");
    // The gateway is unharmed.
    assert!(
        gateway
            .client()
            .await
            .route(request("", Some(telco_record())))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn a_backend_at_its_limit_refuses_beyond_its_queue() {
    let fake = FakeLlm::start(vec![Fault::Delay(Duration::from_millis(800))]).await;
    let gateway = start_gateway(&fake, "max_attempts = 1\nmax_concurrent = 1\nmax_queued = 0").await;
    let mut first = gateway.client().await;
    let busy = tokio::spawn(async move { first.route(request("tell me a joke", None)).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let status = gateway
        .client()
        .await
        .route(request("tell me another", None))
        .await
        .unwrap_err();
    assert_status(&status, Code::ResourceExhausted, "llm backend local overloaded");
    assert!(busy.await.unwrap().is_ok(), "the request in flight is unaffected");
}

#[tokio::test]
async fn cancelling_a_stream_drops_the_upstream_request_at_once() {
    let fake = FakeLlm::start(vec![Fault::Endless]).await;
    let gateway = start_gateway(&fake, "max_attempts = 1").await;
    let mut stream = gateway
        .client()
        .await
        .route_stream(request("tell me a joke", None))
        .await
        .unwrap()
        .into_inner();
    let mut deltas = 0;
    while deltas < 5 {
        if let Some(Event::Delta(_)) = stream.message().await.unwrap().unwrap().event {
            deltas += 1;
        }
    }
    let cancelled = Instant::now();
    drop(stream);
    let deadline = Instant::now() + Duration::from_secs(5);
    let closed = loop {
        if let Some(at) = *fake.closed_at.lock().unwrap() {
            break at;
        }
        assert!(Instant::now() < deadline, "the backend never saw the connection close");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let lag = closed.saturating_duration_since(cancelled);
    assert!(
        lag < Duration::from_millis(100),
        "backend saw the close {lag:?} after the cancel"
    );
}

#[tokio::test]
async fn prompts_come_from_the_targets_templates_with_record_and_prediction() {
    let fake = FakeLlm::start(vec![Fault::Ok]).await;
    let custom = config(&fake.base_url(), "3s").replace(
        "[targets.assistant]\n",
        "[targets.assistant]\nsystem_prompt = \"You help tenant {{ tenant }}.\"\nuser_prompt = \"Q: {{ text }}\"\n",
    );
    let gateway = Gateway::start(&custom).await;
    let mut client = gateway.client().await;
    let hybrid = request("why is this customer likely to leave?", Some(telco_record()));
    let response = client.route(hybrid).await.unwrap().into_inner();
    let prediction = response.prediction.unwrap();
    let score = prediction.score;
    // Hybrid predictions carry the fields that move the score most, largest first.
    let top = &prediction.top_features;
    assert!(!top.is_empty() && top.len() <= 5, "{top:?}");
    assert!(top.windows(2).all(|w| w[0].delta.abs() >= w[1].delta.abs()), "{top:?}");
    let body: serde_json::Value = serde_json::from_str(&fake.bodies.lock().unwrap()[0]).unwrap();
    let user = body["messages"][1]["content"].as_str().unwrap();
    // The default hybrid prompt: the question, then the facts (the band and the score, the strongest fields with
    // the record's values and their direction), then the instruction and the answer's opening.
    let expected = [
        "Question about a customer: why is this customer likely to leave?".to_owned(),
        format!("this customer leaves is high ({score:.2})"),
        format!("Main factors: {} (", top[0].feature),
        "tenure (2) raises it".to_owned(),
        format!(
            "must begin: \"The risk of leaving is high, mainly because of the {} (",
            top[0].feature
        ),
    ];
    for part in &expected {
        assert!(user.contains(part.as_str()), "{part:?} in {user}");
    }
    assert_eq!(body["messages"][0]["role"], "system");
    assert_eq!(body["temperature"], 0.0);
    assert_eq!(body["max_tokens"], 24);

    let plain = switchyard_proto::v1::RouteRequest {
        tenant: "acme".into(),
        ..request("tell me a joke", None)
    };
    client.route(plain).await.unwrap();
    let body: serde_json::Value = serde_json::from_str(&fake.bodies.lock().unwrap()[1]).unwrap();
    assert_eq!(body["messages"][0]["content"], "You help tenant acme.");
    assert_eq!(body["messages"][1]["content"], "Q: tell me a joke");

    // A prompt over the target's limit is refused before any backend call.
    let small = config(&fake.base_url(), "3s")
        .replace("[targets.assistant]\n", "[targets.assistant]\nmax_prompt_chars = 100\n");
    let gateway = Gateway::start(&small).await;
    let before = fake.count();
    let status = gateway
        .client()
        .await
        .route(request(&"why ".repeat(40), None))
        .await
        .unwrap_err();
    assert_status(&status, Code::InvalidArgument, "over its limit of 100");
    assert_eq!(fake.count(), before);
}

#[tokio::test]
async fn faults_leak_no_connections_or_threads() {
    let script = vec![
        Fault::Ok,
        Fault::Status(500, None),
        Fault::DisconnectMidStream,
        Fault::StallMidStream,
        Fault::MalformedSse,
        Fault::Huge(8 << 20),
        Fault::SlowFirstToken(Duration::from_secs(3)),
        Fault::Ok,
    ];
    let fake = FakeLlm::start(script).await;
    let text = with_backend_settings(
        &config(&fake.base_url(), "1s"),
        &format!(
            "{FAST_RETRIES}\nmax_attempts = 1\nfirst_token_timeout = \"500ms\"\nmax_response_bytes = 1048576\nbreaker_failures = 100"
        ),
    );
    let gateway = Gateway::start(&text).await;
    let mut client = gateway.client().await;
    client.route(request("warm up", None)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (sockets, threads) = (gateway.open_sockets(), gateway.threads());
    for i in 0..6 {
        let outcome = if i % 2 == 0 {
            client.route(request("tell me a joke", None)).await.map(|_| ())
        } else {
            match client.route_stream(request("tell me a joke", None)).await {
                Ok(stream) => {
                    let mut stream = stream.into_inner();
                    loop {
                        match stream.message().await {
                            Ok(Some(_)) => continue,
                            Ok(None) => break Ok(()),
                            Err(status) => break Err(status),
                        }
                    }
                }
                Err(status) => Err(status),
            }
        };
        assert!(outcome.is_err(), "fault {i} surfaced as an error");
    }
    client.route(request("still fine?", None)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        gateway.open_sockets() <= sockets,
        "sockets {} -> {}",
        sockets,
        gateway.open_sockets()
    );
    // Tokio's blocking pool may keep an idle thread or two for a few seconds; anything beyond that is a leak.
    assert!(
        gateway.threads() <= threads + 2,
        "threads {} -> {}",
        threads,
        gateway.threads()
    );
}

#[tokio::test]
async fn the_retry_budget_caps_retries_under_sustained_failure() {
    // No deposits (ratio 0): only the bucket's initial 10 retries exist, however many requests fail.
    let fake = FakeLlm::start(vec![Fault::Status(503, None)]).await;
    let gateway = start_gateway(
        &fake,
        "max_attempts = 2\nretry_budget_ratio = 0.0\nbreaker_failures = 1000",
    )
    .await;
    let mut client = gateway.client().await;
    for _ in 0..14 {
        let status = client.route(request("tell me a joke", None)).await.unwrap_err();
        assert_eq!(status.code(), Code::Unavailable);
    }
    assert_eq!(
        fake.count(),
        14 + 10,
        "14 first attempts and exactly 10 budgeted retries"
    );
}

#[tokio::test]
async fn requests_beyond_the_per_connection_limit_are_shed() {
    let fake = FakeLlm::start(vec![Fault::Delay(Duration::from_millis(800))]).await;
    let text = config(&fake.base_url(), "3s").replace(
        "max_text_bytes = 32768",
        "max_text_bytes = 32768\nconcurrency_per_connection = 1",
    );
    let gateway = Gateway::start(&text).await;
    let client = gateway.client().await;
    let mut first = client.clone();
    let busy = tokio::spawn(async move { first.route(request("tell me a joke", None)).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let status = client
        .clone()
        .route(request("tell me another", None))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(busy.await.unwrap().is_ok(), "the request in flight is unaffected");
    assert!(
        client.clone().route(request("", Some(telco_record()))).await.is_ok(),
        "served again once free"
    );
}
