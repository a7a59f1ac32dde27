//! The spans of one request: a SERVER span per RPC that continues the caller's trace (W3C `traceparent`,
//! `tracestate` and `baggage` from the gRPC metadata), and its children `classify`, `route.decide` and `score`.
//! The LLM leg's `chat {model}` CLIENT span is the `llm` crate's.

use opentelemetry::propagation::Extractor;
use opentelemetry::trace::Status;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::names::{
    ERROR_TYPE, POLICY_VERSION, REQUEST_ID, RPC_GRPC_STATUS_CODE, RPC_METHOD, RPC_SERVICE, RPC_SYSTEM, TENANT,
};

/// Opens the SERVER span of one call to `method`, as a child of the caller's span when the metadata carries one.
/// Its request id, tenant and policy version are `tracing` fields (recorded as they become known), so they are
/// span attributes and also in every log line written during the request.
pub fn server(service: &str, method: &str, headers: &http::HeaderMap) -> tracing::Span {
    let span = tracing::info_span!(
        target: "switchyard::rpc",
        "rpc",
        otel.name = %format!("{service}/{method}"),
        otel.kind = "server",
        { REQUEST_ID } = tracing::field::Empty,
        { TENANT } = tracing::field::Empty,
        { POLICY_VERSION } = tracing::field::Empty,
    );
    let parent =
        opentelemetry::global::get_text_map_propagator(|propagator| propagator.extract(&HeaderExtractor(headers)));
    // Fails only when no OpenTelemetry layer is installed, and then there is no trace to continue.
    let _ = span.set_parent(parent);
    span.set_attribute(RPC_SYSTEM, "grpc");
    span.set_attribute(RPC_SERVICE, service.to_owned());
    span.set_attribute(RPC_METHOD, method.to_owned());
    span
}

/// Opens a child span of the current one, named `name` (one of the `SPAN_*` names).
pub fn child(name: &'static str) -> tracing::Span {
    tracing::info_span!(target: "switchyard::engine", "step", otel.name = name)
}

/// Opens a span whose OpenTelemetry parent is `parent` but which has no `tracing` parent, for background work
/// that outlives the request (a `tracing` child would hold its parent open, stretching the SERVER span).
pub fn detached_child(name: &'static str, parent: opentelemetry::Context) -> tracing::Span {
    let span = tracing::info_span!(target: "switchyard::engine", parent: None, "step", otel.name = name);
    let _ = span.set_parent(parent);
    span
}

/// Records the call's gRPC status on its SERVER span. Every failure gets `error.type` (the code's name); the span
/// status is ERROR only for codes that mean the server failed (the OpenTelemetry gRPC conventions), not for
/// requests the caller got wrong.
pub fn record_status(span: &tracing::Span, code: tonic::Code, message: &str) {
    span.set_attribute(RPC_GRPC_STATUS_CODE, code as i64);
    if code == tonic::Code::Ok {
        return;
    }
    span.set_attribute(ERROR_TYPE, code_name(code));
    if matches!(
        code,
        tonic::Code::Unknown
            | tonic::Code::DeadlineExceeded
            | tonic::Code::Unimplemented
            | tonic::Code::Internal
            | tonic::Code::Unavailable
            | tonic::Code::DataLoss
    ) {
        span.set_status(Status::error(message.to_owned()));
    }
}

/// Marks a child span failed: `error.type` is the failure's kind.
pub fn record_failure(span: &tracing::Span, kind: &'static str, message: String) {
    span.set_attribute(ERROR_TYPE, kind);
    span.set_status(Status::error(message));
}

/// The gRPC code's canonical name (`UNAVAILABLE`, `DEADLINE_EXCEEDED`, ...).
fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Reads W3C propagation fields from the request headers (gRPC's ASCII metadata).
struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}
