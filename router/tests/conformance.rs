//! Telemetry conformance: every span and metric the gateway emits, checked against the OpenTelemetry semantic
//! conventions it follows. The tables below are taken from `open-telemetry/semantic-conventions` at **v1.44.0**
//! (`docs/rpc/rpc-spans.md`, `docs/rpc/grpc.md`, `docs/rpc/rpc-metrics.md`) and, for GenAI, **v1.41.1**
//! (`docs/gen-ai/gen-ai-spans.md`, `docs/gen-ai/gen-ai-metrics.md`, the last published there). A deprecated name,
//! a missing required attribute, a wrong type or unit, other bucket boundaries, or a name of Switchyard's own
//! outside `switchyard.*` fails the test. Spans and metrics come from the in-process OTLP receiver and `/metrics`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use support::otlp::Received;
use support::{FakeLlm, Fault, Gateway, OtlpReceiver, config, request, stream_events, telco_record};

/// The schema URL the tracer and meter carry.
const SCHEMA_URL: &str = "https://opentelemetry.io/schemas/1.44.0";

/// An attribute's expected type.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Str,
    Int,
    Double,
    Bool,
    StrArray,
}

/// Deprecated names that must never appear (renamed, or removed by the conventions).
const DEPRECATED: &[&str] = &[
    "rpc.system",
    "rpc.service",
    "rpc.grpc.status_code",
    "switchyard.llm.streaming",
    "gen_ai.system",
    "gen_ai.prompt",
    "gen_ai.completion",
];

/// Attribute names from the conventions that Switchyard may set (everything else must be `switchyard.*`).
const CONVENTION_ATTRIBUTES: &[(&str, Kind)] = &[
    ("rpc.system.name", Kind::Str),
    ("rpc.method", Kind::Str),
    ("rpc.response.status_code", Kind::Str),
    ("error.type", Kind::Str),
    ("server.address", Kind::Str),
    ("server.port", Kind::Int),
    ("network.peer.address", Kind::Str),
    ("network.peer.port", Kind::Int),
    ("gen_ai.operation.name", Kind::Str),
    ("gen_ai.provider.name", Kind::Str),
    ("gen_ai.request.model", Kind::Str),
    ("gen_ai.request.max_tokens", Kind::Int),
    ("gen_ai.request.temperature", Kind::Double),
    ("gen_ai.request.stream", Kind::Bool),
    ("gen_ai.response.model", Kind::Str),
    ("gen_ai.response.id", Kind::Str),
    ("gen_ai.response.finish_reasons", Kind::StrArray),
    ("gen_ai.response.time_to_first_chunk", Kind::Double),
    ("gen_ai.usage.input_tokens", Kind::Int),
    ("gen_ai.usage.output_tokens", Kind::Int),
    ("gen_ai.input.messages", Kind::Str),
    ("gen_ai.output.messages", Kind::Str),
    ("gen_ai.token.type", Kind::Str),
];

/// Required attributes per span kind: the SERVER span (RPC, gRPC) and the `chat` CLIENT span (GenAI).
const SERVER_REQUIRED: &[&str] = &["rpc.system.name", "rpc.method", "rpc.response.status_code"];
const CHAT_REQUIRED: &[&str] = &["gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.request.model"];

/// The gRPC codes that count as the server's errors (v1.44 `grpc.md`): `error.type` on exactly these.
const SERVER_ERRORS: &[&str] = &[
    "UNKNOWN",
    "DEADLINE_EXCEEDED",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
];

/// The conventions' metrics: name, unit, required attributes, advised bucket boundaries.
const METRICS: &[(&str, &str, &[&str], &[f64])] = &[
    (
        "rpc.server.call.duration",
        "s",
        &["rpc.system.name", "rpc.method", "rpc.response.status_code"],
        &[
            0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
        ],
    ),
    (
        "gen_ai.client.operation.duration",
        "s",
        &["gen_ai.operation.name", "gen_ai.provider.name"],
        &[
            0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
        ],
    ),
    (
        "gen_ai.client.token.usage",
        "{token}",
        &["gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.token.type"],
        &[
            1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0,
            67108864.0,
        ],
    ),
    (
        "gen_ai.client.operation.time_to_first_chunk",
        "s",
        &["gen_ai.operation.name", "gen_ai.provider.name"],
        &[
            0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
        ],
    ),
];

fn kind_of(value: &Value) -> Kind {
    match value {
        Value::StringValue(_) => Kind::Str,
        Value::IntValue(_) => Kind::Int,
        Value::DoubleValue(_) => Kind::Double,
        Value::BoolValue(_) => Kind::Bool,
        Value::ArrayValue(_) => Kind::StrArray,
        other => panic!("unexpected attribute value {other:?}"),
    }
}

/// Checks one attribute set: no deprecated name, conventional names with their types, the rest `switchyard.*`.
fn check_attributes(what: &str, attributes: &[(String, Option<Value>)]) {
    for (key, value) in attributes {
        assert!(!DEPRECATED.contains(&key.as_str()), "{what}: deprecated {key}");
        match CONVENTION_ATTRIBUTES.iter().find(|(name, _)| name == key) {
            Some((_, kind)) => {
                let value = value.as_ref().unwrap_or_else(|| panic!("{what}: {key} has no value"));
                assert_eq!(kind_of(value), *kind, "{what}: {key} has the wrong type");
            }
            None => assert!(
                key.starts_with("switchyard."),
                "{what}: {key} is neither a convention's nor switchyard.*"
            ),
        }
    }
}

fn span_attributes(span: &Received) -> Vec<(String, Option<Value>)> {
    span.span
        .attributes
        .iter()
        .map(|kv| (kv.key.clone(), kv.value.clone().and_then(|v| v.value)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_span_and_metric_follows_the_conventions() {
    let receiver = OtlpReceiver::grpc().await;
    let fake = FakeLlm::start(vec![Fault::Ok, Fault::Ok, Fault::Status(500, None)]).await;
    let gateway = Gateway::start_traced(
        &(config(&fake.base_url(), "5s")
            .replace("request_timeout = \"5s\"", "request_timeout = \"5s\"\nmax_attempts = 1")),
        &receiver.endpoint(),
        "metrics = true\nmetrics_interval = \"200ms\"\ncapture_content = true",
    )
    .await;
    let mut client = gateway.client().await;
    // A score, an LLM answer, a stream, an explanation, a bad request, a failing backend, an inference call.
    client.route(request("", Some(telco_record()))).await.unwrap();
    client.route(request("tell me a joke", None)).await.unwrap();
    stream_events(&mut client, request("tell me a joke", None)).await;
    client.explain(request("what is my bank balance", None)).await.unwrap();
    client.route(request("", None)).await.unwrap_err();
    let failed = client.route(request("tell me a story", None)).await.unwrap_err();
    assert_eq!(failed.code(), tonic::Code::Unavailable);
    let mut v2 = switchyard_proto::inference::grpc_inference_service_client::GrpcInferenceServiceClient::new(
        gateway.channel().await,
    );
    v2.server_ready(switchyard_proto::inference::ServerReadyRequest {})
        .await
        .unwrap();
    // The calls the server ends itself: a deadline already past (DEADLINE_EXCEEDED, the server's failure to
    // answer in time), and bytes that are no protobuf message (INTERNAL, as gRPC servers answer it, but the
    // caller's garbage: no error.type).
    let question = prost::Message::encode_to_vec(&request("tell me a joke", None));
    let expired = support::raw_call(&gateway, "/switchyard.v1.Router/Route", &question, Some("0m")).await;
    assert_eq!(expired.code(), tonic::Code::DeadlineExceeded, "{expired:?}");
    let garbage = support::raw_call(&gateway, "/switchyard.v1.Router/Route", &[0xff; 7], None).await;
    assert_eq!(garbage.code(), tonic::Code::Internal, "{garbage:?}");
    assert!(
        garbage.message().starts_with("failed to decode Protobuf message"),
        "{garbage:?}"
    );

    // Spans.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let spans = loop {
        let spans = receiver.all_spans();
        let servers = spans.iter().filter(|s| s.span.kind == SpanKind::Server as i32).count();
        let chats = spans.iter().filter(|s| s.span.name.starts_with("chat ")).count();
        if servers >= 9 && chats >= 3 {
            break spans;
        }
        assert!(std::time::Instant::now() < deadline, "spans missing: {spans:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut internal_without_error_type = 0;
    for span in &spans {
        let what = format!("span {}", span.span.name);
        assert_eq!(span.schema_url, SCHEMA_URL, "{what}: schema URL");
        let attributes = span_attributes(span);
        check_attributes(&what, &attributes);
        let has = |key: &str| attributes.iter().any(|(k, _)| k == key);
        let string = |key: &str| span.str(key);
        if span.span.kind == SpanKind::Server as i32 {
            for key in SERVER_REQUIRED {
                assert!(has(key), "{what}: missing required {key}");
            }
            assert_eq!(string("rpc.system.name").as_deref(), Some("grpc"));
            assert_eq!(
                string("rpc.method"),
                Some(span.span.name.clone()),
                "{what}: named by its method"
            );
            let code = string("rpc.response.status_code").unwrap();
            if code == "INTERNAL" && !has("error.type") {
                // The undecodable message: the one INTERNAL that is the caller's.
                internal_without_error_type += 1;
                continue;
            }
            assert_eq!(
                has("error.type"),
                SERVER_ERRORS.contains(&code.as_str()),
                "{what}: error.type exactly on server errors ({code})"
            );
        }
        if span.span.name.starts_with("chat ") {
            assert_eq!(span.span.kind, SpanKind::Client as i32);
            for key in CHAT_REQUIRED {
                assert!(has(key), "{what}: missing required {key}");
            }
            assert!(has("server.address"), "{what}: server.address recommended and known");
        }
    }
    assert_eq!(
        internal_without_error_type, 1,
        "only the undecodable message is an INTERNAL without error.type"
    );
    assert!(
        spans.iter().any(
            |s| s.str("rpc.response.status_code").as_deref() == Some("DEADLINE_EXCEEDED")
                && s.str("error.type").as_deref() == Some("DEADLINE_EXCEEDED")
        ),
        "the expired deadline is spanned with its code"
    );
    assert!(
        spans
            .iter()
            .any(|s| s.span.name == "inference.GRPCInferenceService/ServerReady"),
        "inference calls are spanned"
    );
    assert!(
        spans
            .iter()
            .any(|s| s.span.name.starts_with("chat ") && s.attr("gen_ai.request.stream").is_some()),
        "a stream says so"
    );

    // Metrics over OTLP: the conventions' instruments as the tables say; every other name Switchyard's own.
    let names: Vec<&str> = METRICS.iter().map(|(name, ..)| *name).collect();
    let metrics = receiver.metrics_with(&names).await;
    for (schema_url, metric) in &metrics {
        let what = format!("metric {}", metric.name);
        assert_eq!(schema_url, SCHEMA_URL, "{what}: schema URL");
        assert!(
            !["rpc.server.duration", "switchyard.llm.time_to_first_token"].contains(&metric.name.as_str()),
            "{what}: deprecated"
        );
        let Some((_, unit, required, boundaries)) = METRICS.iter().find(|(name, ..)| *name == metric.name) else {
            assert!(
                metric.name.starts_with("switchyard."),
                "{what}: neither a convention's nor switchyard.*"
            );
            continue;
        };
        assert_eq!(metric.unit, *unit, "{what}: unit");
        let Some(Data::Histogram(histogram)) = &metric.data else {
            panic!("{what}: not a histogram");
        };
        assert!(!histogram.data_points.is_empty(), "{what}: no points");
        for point in &histogram.data_points {
            assert_eq!(point.explicit_bounds, *boundaries, "{what}: bucket boundaries");
            let attributes: Vec<(String, Option<Value>)> = point
                .attributes
                .iter()
                .map(|kv| (kv.key.clone(), kv.value.clone().and_then(|v| v.value)))
                .collect();
            check_attributes(&what, &attributes);
            for key in *required {
                assert!(
                    attributes.iter().any(|(k, _)| k == key),
                    "{what}: missing required {key}"
                );
            }
        }
    }

    // The same names on the Prometheus endpoint, and none of the old ones.
    let (_, text) = gateway.admin_get("/metrics").await;
    assert!(text.contains("rpc_server_call_duration_seconds_bucket{"), "{text}");
    assert!(text.contains("gen_ai_client_operation_time_to_first_chunk_seconds_bucket{"));
    for old in [
        "rpc_server_duration",
        "switchyard_llm_time_to_first_token",
        "rpc_grpc_status_code",
        "rpc_service=",
    ] {
        assert!(!text.contains(old), "{old} still exported");
    }
}
