//! The spans of one request: a SERVER span per RPC that continues the caller's trace (W3C `traceparent`,
//! `tracestate` and `baggage` from the gRPC metadata), and its children `classify`, `route.decide` and `score`.
//! The LLM leg's `chat {model}` CLIENT span is the `llm` crate's.

use opentelemetry::propagation::Extractor;
use opentelemetry::trace::Status;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::names::{
    ERROR_TYPE, NETWORK_PEER_ADDRESS, NETWORK_PEER_PORT, POLICY_VERSION, REQUEST_ID, RPC_METHOD,
    RPC_RESPONSE_STATUS_CODE, RPC_SYSTEM_NAME, SERVER_ADDRESS, SERVER_PORT, TENANT,
};

/// Where a call came in: the host and port the caller addressed (`:authority`), and its own address.
#[derive(Debug, Clone, Default)]
pub struct CallOrigin {
    /// `server.address` and `server.port`.
    pub server: Option<(String, Option<u16>)>,
    /// `network.peer.address` and `network.peer.port`.
    pub peer: Option<std::net::SocketAddr>,
}

/// Opens the SERVER span of one call to `method` (fully qualified: `switchyard.v1.Router/Route`), as a child of
/// the caller's span when the metadata carries one. Its request id, tenant and policy version are `tracing` fields
/// (recorded as they become known), so they are span attributes and also in every log line written during the
/// request.
pub fn server(method: &'static str, headers: &http::HeaderMap, origin: CallOrigin) -> tracing::Span {
    let span = tracing::info_span!(
        target: "switchyard::rpc",
        "rpc",
        otel.name = method,
        otel.kind = "server",
        { REQUEST_ID } = tracing::field::Empty,
        { TENANT } = tracing::field::Empty,
        { POLICY_VERSION } = tracing::field::Empty,
    );
    let parent =
        opentelemetry::global::get_text_map_propagator(|propagator| propagator.extract(&HeaderExtractor(headers)));
    // Fails only when no OpenTelemetry layer is installed, and then there is no trace to continue.
    let _ = span.set_parent(parent);
    span.set_attribute(RPC_SYSTEM_NAME, "grpc");
    span.set_attribute(RPC_METHOD, method);
    if let Some((host, port)) = origin.server {
        span.set_attribute(SERVER_ADDRESS, host);
        if let Some(port) = port {
            span.set_attribute(SERVER_PORT, i64::from(port));
        }
    }
    if let Some(peer) = origin.peer {
        span.set_attribute(NETWORK_PEER_ADDRESS, peer.ip().to_string());
        span.set_attribute(NETWORK_PEER_PORT, i64::from(peer.port()));
    }
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

/// Records the call's gRPC status on its SERVER span: `rpc.response.status_code` always (the code's name); for
/// a failure of the server's own ([`server_error_type`]), `error.type` and an ERROR span status. A request the
/// caller got wrong is not the server's error (the OpenTelemetry gRPC conventions, v1.44).
pub fn record_status(span: &tracing::Span, code: tonic::Code, message: &str) {
    span.set_attribute(RPC_RESPONSE_STATUS_CODE, code_name(code));
    if let Some(error_type) = server_error_type(code, message) {
        span.set_attribute(ERROR_TYPE, error_type);
        span.set_status(Status::error(message.to_owned()));
    }
}

/// `error.type` of a call that ended with `code` and `message`: the code's name when the server failed, `None`
/// when it did not (OK, or the caller's mistake). A message the server could not decode answers INTERNAL, as
/// tonic, grpc-go and grpc-java do, but the garbage is the caller's: no `error.type`, so the alerts on the
/// server's error ratio do not fire on it (the metric keeps it apart: INTERNAL without `error.type`).
pub fn server_error_type(code: tonic::Code, message: &str) -> Option<&'static str> {
    let undecodable = code == tonic::Code::Internal && is_undecodable(message);
    (is_server_error(code) && !undecodable).then(|| code_name(code))
}

/// The messages tonic answers for a request it cannot decode: a malformed protobuf message, a malformed gRPC
/// frame, a body cut short, a compressed message it cannot decompress.
fn is_undecodable(message: &str) -> bool {
    const PREFIXES: [&str; 4] = [
        "failed to decode Protobuf message",
        "protocol error: received message with",
        "Unexpected EOF decoding stream",
        "Error decompressing",
    ];
    PREFIXES.iter().any(|prefix| message.starts_with(prefix))
}

/// The gRPC codes a server's span and metrics count as its own errors: UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED,
/// INTERNAL, UNAVAILABLE, DATA_LOSS.
fn is_server_error(code: tonic::Code) -> bool {
    matches!(
        code,
        tonic::Code::Unknown
            | tonic::Code::DeadlineExceeded
            | tonic::Code::Unimplemented
            | tonic::Code::Internal
            | tonic::Code::Unavailable
            | tonic::Code::DataLoss
    )
}

/// Marks a child span failed: `error.type` is the failure's kind.
pub fn record_failure(span: &tracing::Span, kind: &'static str, message: String) {
    span.set_attribute(ERROR_TYPE, kind);
    span.set_status(Status::error(message));
}

/// The gRPC code's canonical name (`UNAVAILABLE`, `DEADLINE_EXCEEDED`, ...).
pub fn code_name(code: tonic::Code) -> &'static str {
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
