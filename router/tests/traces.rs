//! Distributed traces end to end: the gateway exports OTLP to an in-process receiver; a caller's `traceparent`
//! continues through the SERVER span, `classify`, `route.decide`, `score` and the LLM `chat` span, and reaches
//! the LLM backend (a fake one here, which records the headers it gets; the real llama-server is traced in
//! `llm_real.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use support::otlp::{Received, named};
use support::{FakeLlm, Fault, Gateway, OtlpReceiver, config, request, stream_events, telco_record};
use switchyard_proto::v1::RouteRequest;

const ROUTE: &str = "switchyard.v1.Router/Route";

/// A caller's trace: fresh ids, sampled.
struct Caller {
    trace_id: String,
    span_id: String,
}

impl Caller {
    fn new() -> Self {
        Self {
            trace_id: uuid::Uuid::new_v4().simple().to_string(),
            span_id: uuid::Uuid::new_v4().simple().to_string()[..16].to_owned(),
        }
    }

    /// `message` with this caller's `traceparent`, a vendor's `tracestate` and a `baggage` entry in its metadata.
    fn request(&self, message: RouteRequest) -> tonic::Request<RouteRequest> {
        let mut request = tonic::Request::new(message);
        let metadata = request.metadata_mut();
        metadata.insert(
            "traceparent",
            format!("00-{}-{}-01", self.trace_id, self.span_id).parse().unwrap(),
        );
        metadata.insert("tracestate", TRACESTATE.parse().unwrap());
        metadata.insert("baggage", "caller.team=retention".parse().unwrap());
        request
    }
}

/// The caller's vendor entries in W3C `tracestate`: opaque to the gateway, carried along its trace unchanged.
const TRACESTATE: &str = "callervendor=opaque-7,other@tenant=x1";

/// Waits for the caller's trace with its SERVER span named `server` and `count` spans in all.
async fn trace(receiver: &OtlpReceiver, caller: &Caller, server: &str, count: usize) -> Vec<Received> {
    receiver
        .trace(&caller.trace_id, |spans| {
            spans.len() >= count && spans.iter().any(|s| s.span.name == server)
        })
        .await
}

/// The SERVER span: the caller's span is its parent; the RPC attributes of the conventions (v1.44); the given
/// status (by name).
fn assert_server(spans: &[Received], caller: &Caller, name: &str, code: &str) -> String {
    let server = named(spans, name);
    assert_eq!(server.span.kind, SpanKind::Server as i32);
    assert_eq!(server.parent_id(), caller.span_id, "the caller's span is the parent");
    assert_eq!(server.span.trace_state, TRACESTATE, "the caller's tracestate is kept");
    assert_eq!(server.str("rpc.system.name").as_deref(), Some("grpc"));
    assert_eq!(
        server.str("rpc.method").as_deref(),
        Some(name),
        "fully qualified, as the span's name"
    );
    assert_eq!(server.str("rpc.response.status_code").as_deref(), Some(code));
    for deprecated in ["rpc.system", "rpc.service", "rpc.grpc.status_code"] {
        assert!(server.attr(deprecated).is_none(), "{deprecated} is deprecated");
    }
    assert_eq!(server.str("server.address").as_deref(), Some("127.0.0.1"));
    assert!(server.int("server.port").is_some_and(|p| p > 0));
    assert_eq!(server.str("network.peer.address").as_deref(), Some("127.0.0.1"));
    assert!(server.int("network.peer.port").is_some_and(|p| p > 0));
    assert!(!server.str("switchyard.request.id").unwrap().is_empty());
    assert_eq!(server.resource_str("service.name").as_deref(), Some("switchyard"));
    assert!(server.resource_str("service.version").is_some());
    assert!(server.resource_str("service.instance.id").is_some());
    server.span_id()
}

fn assert_child(spans: &[Received], name: &str, parent: &str) -> Received {
    let span = named(spans, name).clone();
    assert_eq!(span.parent_id(), parent, "{name} is a child of the SERVER span");
    assert_eq!(span.span.kind, SpanKind::Internal as i32);
    span
}

/// `classify` and `route.decide` with their attributes; returns the decision's target kind.
fn assert_decision(spans: &[Received], server: &str, label: &str, target: &str, kind: &str) {
    let classify = assert_child(spans, "classify", server);
    assert_eq!(
        classify.str("switchyard.classifier.model").as_deref(),
        Some("request-classifier")
    );
    assert_eq!(classify.str("switchyard.classifier.version").as_deref(), Some("1.1.0"));
    assert_eq!(classify.str("switchyard.classifier.label").as_deref(), Some(label));
    assert!(classify.str("switchyard.classifier.label_group").is_some());
    let confidence = classify.double("switchyard.classifier.confidence").unwrap();
    let margin = classify.double("switchyard.classifier.margin").unwrap();
    assert!(confidence > 0.0 && confidence <= 1.0 && (0.0..=confidence).contains(&margin));
    assert!(classify.double("switchyard.classifier.duration_ms").unwrap() >= 0.0);
    let decide = assert_child(spans, "route.decide", server);
    let version = decide.str("switchyard.policy.version").unwrap();
    assert!(
        !version.is_empty() && version.chars().all(|c| c.is_ascii_hexdigit()),
        "{version}"
    );
    assert_eq!(decide.str("switchyard.route.target").as_deref(), Some(target));
    assert_eq!(decide.str("switchyard.route.target_kind").as_deref(), Some(kind));
    assert!(!decide.str("switchyard.route.reason").unwrap().is_empty());
}

/// The `score` span; `explained` (hybrid) scores also run one occluded copy of the record per attributed field.
fn assert_score(spans: &[Received], server: &str, explained: bool) {
    let score = assert_child(spans, "score", server);
    assert_eq!(score.str("switchyard.scorer.model").as_deref(), Some("churn-scorer"));
    assert_eq!(score.str("switchyard.scorer.version").as_deref(), Some("1.0.0"));
    let p = score.double("switchyard.scorer.score").unwrap();
    assert!(p > 0.0 && p < 1.0);
    let rows = score.int("switchyard.scorer.batch_size").unwrap();
    if explained {
        assert!(rows > 1, "the record and its occluded copies: {rows}");
    } else {
        assert_eq!(rows, 1);
    }
}

/// The `chat smollm2` CLIENT span under the SERVER span, with the GenAI attributes of the fake's answer.
fn assert_chat(spans: &[Received], server: &str, fake: &FakeLlm) -> Received {
    let chat = named(spans, "chat smollm2").clone();
    assert_eq!(chat.span.kind, SpanKind::Client as i32);
    assert_eq!(chat.parent_id(), server);
    assert_eq!(chat.str("gen_ai.operation.name").as_deref(), Some("chat"));
    assert_eq!(chat.str("gen_ai.provider.name").as_deref(), Some("openai"));
    assert_eq!(chat.str("gen_ai.request.model").as_deref(), Some("smollm2"));
    assert_eq!(chat.int("gen_ai.request.max_tokens"), Some(24));
    assert_eq!(chat.double("gen_ai.request.temperature"), Some(0.0));
    assert_eq!(chat.int("gen_ai.usage.input_tokens"), Some(3));
    assert_eq!(chat.int("gen_ai.usage.output_tokens"), Some(2));
    assert_eq!(chat.str("server.address").as_deref(), Some("127.0.0.1"));
    assert_eq!(chat.int("server.port"), Some(i64::from(fake.port)));
    assert_eq!(chat.str("switchyard.backend").as_deref(), Some("local"));
    match chat.attr("gen_ai.response.finish_reasons") {
        Some(Value::ArrayValue(array)) => assert_eq!(array.values.len(), 1, "{array:?}"),
        other => panic!("finish reasons: {other:?}"),
    }
    assert!(chat.attr("error.type").is_none());
    chat
}

/// The backend got the caller's trace, with the chat span as parent, and the caller's tracestate and baggage.
fn assert_propagated(fake: &FakeLlm, request: usize, caller: &Caller, chat: &Received) {
    let traceparent = fake
        .header(request, "traceparent")
        .expect("traceparent sent to the backend");
    assert_eq!(traceparent, format!("00-{}-{}-01", caller.trace_id, chat.span_id()));
    assert_eq!(fake.header(request, "tracestate").as_deref(), Some(TRACESTATE));
    assert_eq!(
        fake.header(request, "baggage").as_deref(),
        Some("caller.team=retention")
    );
}

#[tokio::test]
async fn classical_llm_and_hybrid_requests_continue_the_callers_trace() {
    let receiver = OtlpReceiver::grpc().await;
    let fake = FakeLlm::start(vec![Fault::Ok]).await;
    let gateway = Gateway::start_traced(&config(&fake.base_url(), "5s"), &receiver.endpoint(), "").await;
    let mut client = gateway.client().await;

    // Classical: a record with no text is scored; no LLM call.
    let caller = Caller::new();
    client
        .route(caller.request(request("", Some(telco_record()))))
        .await
        .unwrap();
    let spans = trace(&receiver, &caller, ROUTE, 4).await;
    let server = assert_server(&spans, &caller, ROUTE, "OK");
    assert_decision(&spans, &server, "churn_score", "churn", "classical");
    assert_score(&spans, &server, false);
    assert_eq!(spans.len(), 4, "no chat span: {spans:#?}");
    assert_eq!(fake.count(), 0);

    // LLM: a plain question.
    let caller = Caller::new();
    client
        .route(caller.request(request("what is the capital of france?", None)))
        .await
        .unwrap();
    let spans = trace(&receiver, &caller, ROUTE, 4).await;
    let server = assert_server(&spans, &caller, ROUTE, "OK");
    assert_decision(&spans, &server, "oos", "assistant", "llm");
    let chat = assert_chat(&spans, &server, &fake);
    assert_eq!(chat.str("gen_ai.response.model").as_deref(), Some("fake"));
    assert_eq!(chat.int("switchyard.llm.attempts"), Some(1));
    assert!(spans.iter().all(|s| s.span.name != "score"));
    assert_propagated(&fake, 0, &caller, &chat);

    // Hybrid: a question about a record: score, then the LLM.
    let caller = Caller::new();
    client
        .route(caller.request(request("why is this customer likely to leave?", Some(telco_record()))))
        .await
        .unwrap();
    let spans = trace(&receiver, &caller, ROUTE, 5).await;
    let server = assert_server(&spans, &caller, ROUTE, "OK");
    assert_decision(&spans, &server, "churn_explain", "retention", "hybrid");
    assert_score(&spans, &server, true);
    let chat = assert_chat(&spans, &server, &fake);
    assert_propagated(&fake, 1, &caller, &chat);
    // The children happen inside the SERVER span, in order.
    let at = |name: &str| named(&spans, name).span.start_time_unix_nano;
    let server_span = &named(&spans, ROUTE).span;
    assert!(server_span.start_time_unix_nano <= at("classify"));
    assert!(
        at("classify") <= at("route.decide") && at("route.decide") <= at("score") && at("score") <= at("chat smollm2")
    );
    assert!(named(&spans, "chat smollm2").span.end_time_unix_nano <= server_span.end_time_unix_nano);

    // Streamed hybrid: the chat span carries a first-token event and lasts until the stream ends.
    let caller = Caller::new();
    let mut stream = client
        .route_stream(caller.request(request(
            "what should we do to keep this customer?",
            Some(telco_record()),
        )))
        .await
        .unwrap()
        .into_inner();
    while stream.message().await.unwrap().is_some() {}
    let stream_name = "switchyard.v1.Router/RouteStream";
    let spans = trace(&receiver, &caller, stream_name, 5).await;
    let server = assert_server(&spans, &caller, stream_name, "OK");
    let chat = assert_chat(&spans, &server, &fake);
    assert_eq!(chat.events(), vec!["switchyard.llm.first_token".to_owned()]);
    assert!(
        chat.span.events[0]
            .attributes
            .iter()
            .any(|kv| kv.key == "switchyard.llm.time_to_first_token_ms")
    );
    assert_eq!(chat.attr("gen_ai.request.stream"), Some(Value::BoolValue(true)));
    assert!(
        chat.double("gen_ai.response.time_to_first_chunk")
            .is_some_and(|s| s > 0.0 && s < 5.0)
    );
    assert!(chat.attr("switchyard.llm.streaming").is_none(), "the old name is gone");
    assert_propagated(&fake, 2, &caller, &chat);
    assert!(chat.span.end_time_unix_nano <= named(&spans, stream_name).span.end_time_unix_nano);
}

#[tokio::test]
async fn a_failing_backend_marks_the_chat_and_server_spans_with_the_error() {
    let receiver = OtlpReceiver::grpc().await;
    let fake = FakeLlm::start(vec![Fault::Status(503, None)]).await;
    let text = support::with_backend_settings(
        &config(&fake.base_url(), "5s"),
        "max_attempts = 2\nbase_backoff = \"10ms\"\nmax_backoff = \"20ms\"",
    );
    let gateway = Gateway::start_traced(&text, &receiver.endpoint(), "").await;
    let mut client = gateway.client().await;

    let caller = Caller::new();
    let status = client
        .route(caller.request(request("what is the capital of france?", None)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable);
    let spans = trace(&receiver, &caller, ROUTE, 4).await;
    let server = named(&spans, ROUTE);
    assert_eq!(server.str("rpc.response.status_code").as_deref(), Some("UNAVAILABLE"));
    assert_eq!(server.str("error.type").as_deref(), Some("UNAVAILABLE"));
    assert_eq!(server.span.status.as_ref().unwrap().code, StatusCode::Error as i32);
    let chat = named(&spans, "chat smollm2");
    assert_eq!(chat.str("error.type").as_deref(), Some("upstream_5xx"));
    let status = chat.span.status.as_ref().unwrap();
    assert_eq!(status.code, StatusCode::Error as i32);
    assert!(status.message.contains("503"), "{status:?}");
    assert_eq!(chat.int("switchyard.llm.attempts"), Some(2));
    assert_eq!(
        chat.events(),
        vec!["switchyard.llm.retry".to_owned()],
        "one retry, as an event"
    );
    assert_eq!(fake.count(), 2);

    // A request the caller got wrong is not a server error: its code, but neither error.type nor an ERROR status.
    let caller = Caller::new();
    let mut bad = request("hello", None);
    bad.max_tokens = Some(1_000_000);
    let status = client.route(caller.request(bad)).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    let spans = trace(&receiver, &caller, ROUTE, 1).await;
    let server = named(&spans, ROUTE);
    assert_eq!(
        server.str("rpc.response.status_code").as_deref(),
        Some("INVALID_ARGUMENT")
    );
    assert!(server.attr("error.type").is_none());
    assert_ne!(
        server.span.status.as_ref().map_or(0, |s| s.code),
        StatusCode::Error as i32
    );
}

#[tokio::test]
async fn without_content_capture_no_text_or_record_value_reaches_spans_or_logs() {
    let receiver = OtlpReceiver::grpc().await;
    let fake = FakeLlm::start(vec![Fault::Ok]).await;
    let gateway = Gateway::start_traced(&config(&fake.base_url(), "5s"), &receiver.endpoint(), "").await;
    let mut client = gateway.client().await;
    let marker = "zebra-crossing-4471";

    let plain = Caller::new();
    client
        .route(plain.request(request(&format!("tell me about {marker}"), None)))
        .await
        .unwrap();
    let hybrid = Caller::new();
    client
        .route(hybrid.request(request(
            &format!("why might this customer leave {marker}?"),
            Some(telco_record()),
        )))
        .await
        .unwrap();
    let plain_spans = trace(&receiver, &plain, ROUTE, 4).await;
    let mut spans = plain_spans.clone();
    spans.extend(trace(&receiver, &hybrid, ROUTE, 5).await);
    assert!(
        fake.bodies.lock().unwrap().iter().all(|b| b.contains(marker)),
        "the backend did get the text"
    );
    for span in &spans {
        let text = span.all_text();
        assert!(!text.contains(marker), "prompt text in span {}: {text}", span.span.name);
        assert!(
            !text.contains("Month-to-month"),
            "record value in span {}: {text}",
            span.span.name
        );
        assert!(span.attr("gen_ai.input.messages").is_none() && span.attr("switchyard.request.text").is_none());
    }

    // Logs: no content either, and the access line carries the caller's trace id.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let logs = gateway.logs();
    assert!(!logs.contains(marker), "{logs}");
    let access: Vec<serde_json::Value> = logs
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .filter(|line| line["target"] == "switchyard::access")
        .collect();
    assert_eq!(access.len(), 2, "{logs}");
    assert_eq!(access[0]["trace_id"], plain.trace_id.as_str());
    assert_eq!(access[1]["trace_id"], hybrid.trace_id.as_str());
    let server_span = named(&plain_spans, ROUTE);
    assert_eq!(
        access[0]["span_id"],
        server_span.span_id().as_str(),
        "logged in the SERVER span"
    );
}

#[tokio::test]
async fn content_capture_records_text_up_to_the_cap() {
    let receiver = OtlpReceiver::grpc().await;
    let fake = FakeLlm::start(vec![Fault::Ok]).await;
    let gateway = Gateway::start_traced(
        &config(&fake.base_url(), "5s"),
        &receiver.endpoint(),
        "capture_content = true\nmax_content_bytes = 64",
    )
    .await;
    let mut client = gateway.client().await;
    let caller = Caller::new();
    client
        .route(caller.request(request("why is this customer likely to leave?", Some(telco_record()))))
        .await
        .unwrap();
    let spans = trace(&receiver, &caller, ROUTE, 5).await;
    let text = named(&spans, "classify").str("switchyard.request.text").unwrap();
    assert_eq!(text, "why is this customer likely to leave?");
    let features = named(&spans, "score").str("switchyard.scorer.features").unwrap();
    assert!(
        features.starts_with('{') && features.len() <= 64 + '…'.len_utf8(),
        "{features}"
    );
    let chat = named(&spans, "chat smollm2");
    // Each message as {role, parts: [{type: "text", content}]}, each content cut (never the JSON around it).
    let input: serde_json::Value = serde_json::from_str(&chat.str("gen_ai.input.messages").unwrap()).unwrap();
    let messages = input.as_array().unwrap();
    assert!(!messages.is_empty());
    for message in messages {
        assert!(message["role"].is_string(), "{input}");
        let part = &message["parts"][0];
        assert_eq!(part["type"], "text");
        assert!(
            part["content"].as_str().unwrap().len() <= 64 + '…'.len_utf8(),
            "{input}"
        );
    }
    assert!(
        messages
            .iter()
            .any(|m| m["parts"][0]["content"].as_str().unwrap().ends_with('…')),
        "a long prompt is cut: {input}"
    );
    let output: serde_json::Value = serde_json::from_str(&chat.str("gen_ai.output.messages").unwrap()).unwrap();
    assert_eq!(
        output,
        serde_json::json!([{
            "role": "assistant",
            "parts": [{"type": "text", "content": "fake answer"}],
            "finish_reason": "stop"
        }])
    );
}

#[tokio::test]
async fn traces_export_over_otlp_http_too() {
    let receiver = OtlpReceiver::http().await;
    let fake = FakeLlm::start(vec![Fault::Ok]).await;
    let gateway = Gateway::start_traced(
        &config(&fake.base_url(), "5s"),
        &receiver.endpoint(),
        "otlp_protocol = \"http/protobuf\"",
    )
    .await;
    let mut client = gateway.client().await;
    let caller = Caller::new();
    client
        .route(caller.request(request("", Some(telco_record()))))
        .await
        .unwrap();
    let spans = trace(&receiver, &caller, ROUTE, 4).await;
    let server = assert_server(&spans, &caller, ROUTE, "OK");
    assert_score(&spans, &server, false);
}

#[tokio::test]
async fn export_failures_are_counted_and_never_fail_requests() {
    let dead = format!("http://127.0.0.1:{}", support::free_port());
    let fake = FakeLlm::start(vec![Fault::Ok]).await;
    let gateway = Gateway::start_traced(&config(&fake.base_url(), "5s"), &dead, "").await;
    let mut client = gateway.client().await;
    let failures = |metrics: &str| -> u64 {
        metrics
            .lines()
            .find(|l| l.starts_with("switchyard_telemetry_export_failures_total") && l.contains("signal=\"traces\""))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0)
    };
    let before = failures(&gateway.admin_get("/metrics").await.1);
    for _ in 0..3 {
        client.route(request("", Some(telco_record()))).await.unwrap();
        client.route(request("hello there", None)).await.unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (_, metrics) = gateway.admin_get("/metrics").await;
        if failures(&metrics) > before {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no export failure counted:\n{metrics}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // Still serving normally.
    let events = stream_events(&mut client, request("hello again", None)).await;
    assert!(!events.is_empty());
}

#[tokio::test]
async fn a_fallback_shows_as_an_event_and_one_chat_span_per_backend() {
    let receiver = OtlpReceiver::grpc().await;
    let primary = FakeLlm::start(vec![Fault::Status(503, None)]).await;
    let secondary = FakeLlm::start(vec![Fault::Ok]).await;
    let text = support::with_secondary(
        &support::with_backend_settings(&config(&primary.base_url(), "5s"), "max_attempts = 1"),
        &secondary.base_url(),
    );
    let gateway = Gateway::start_traced(&text, &receiver.endpoint(), "").await;
    let mut client = gateway.client().await;
    let caller = Caller::new();
    client
        .route(caller.request(request("what is the capital of france?", None)))
        .await
        .unwrap();
    let spans = trace(&receiver, &caller, ROUTE, 5).await;
    let server = named(&spans, ROUTE);
    assert_eq!(server.events(), vec!["switchyard.route.fallback".to_owned()]);
    let chats: Vec<&Received> = spans.iter().filter(|s| s.span.name == "chat smollm2").collect();
    assert_eq!(chats.len(), 2, "{spans:#?}");
    assert_eq!(
        chats
            .iter()
            .filter(|c| c.str("error.type").as_deref() == Some("upstream_5xx"))
            .count(),
        1
    );
    let answered = chats
        .iter()
        .find(|c| c.str("switchyard.backend").as_deref() == Some("secondary"))
        .unwrap();
    assert!(answered.attr("error.type").is_none());
    assert_eq!(
        secondary.header(0, "traceparent"),
        Some(format!("00-{}-{}-01", caller.trace_id, answered.span_id()))
    );
}

#[tokio::test]
async fn metrics_are_pushed_over_otlp_when_enabled() {
    let receiver = OtlpReceiver::grpc().await;
    let fake = FakeLlm::start(vec![Fault::Ok]).await;
    let gateway = Gateway::start_traced(
        &config(&fake.base_url(), "5s"),
        &receiver.endpoint(),
        "metrics = true\nmetrics_interval = \"200ms\"",
    )
    .await;
    let mut client = gateway.client().await;
    client.route(request("hello there", None)).await.unwrap();
    client.route(request("", Some(telco_record()))).await.unwrap();
    let names = receiver
        .metrics_export_with(&[
            "rpc.server.call.duration",
            "switchyard.decisions",
            "gen_ai.client.operation.duration",
            "gen_ai.client.token.usage",
            "switchyard.score.duration",
        ])
        .await;
    assert!(
        names.iter().any(|n| n == "switchyard.telemetry.export_failures"),
        "{names:?}"
    );
}

#[tokio::test]
async fn the_standard_otel_environment_variables_configure_export() {
    let receiver = OtlpReceiver::http().await;
    let fake = FakeLlm::start(vec![Fault::Ok]).await;
    let endpoint = receiver.endpoint();
    let gateway = Gateway::start_with_env(
        &config(&fake.base_url(), "5s"),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_SERVICE_NAME", "switchyard-canary"),
            ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=test"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    )
    .await;
    let mut client = gateway.client().await;
    let caller = Caller::new();
    client
        .route(caller.request(request("", Some(telco_record()))))
        .await
        .unwrap();
    let spans = trace(&receiver, &caller, ROUTE, 4).await;
    let server = named(&spans, ROUTE);
    assert_eq!(
        server.resource_str("service.name").as_deref(),
        Some("switchyard-canary")
    );
    assert_eq!(
        server.resource_str("deployment.environment.name").as_deref(),
        Some("test")
    );

    // A caller that did not sample its trace is followed: nothing is exported for it.
    let unsampled = Caller::new();
    let mut message = tonic::Request::new(request("", Some(telco_record())));
    message.metadata_mut().insert(
        "traceparent",
        format!("00-{}-{}-00", unsampled.trace_id, unsampled.span_id)
            .parse()
            .unwrap(),
    );
    client.route(message).await.unwrap();
    let sampled = Caller::new();
    client
        .route(sampled.request(request("", Some(telco_record()))))
        .await
        .unwrap();
    trace(&receiver, &sampled, ROUTE, 4).await;
    assert!(receiver.all().iter().all(|s| s.trace_id() != unsampled.trace_id));
}
