//! The SERVER span of every Router and Open Inference Protocol call (named by the fully qualified method): continues the caller's trace from the request headers, is the span the
//! handler (and a stream's forwarding task) runs in, and records the call's final status when it ends.

use tonic::Code;

use super::{CallObserver, observed_rpc};
use crate::telemetry::spans;

/// Opens and ends the SERVER span.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerSpan;

impl CallObserver for ServerSpan {
    type Call = tracing::Span;

    fn begin(&self, request: &mut http::Request<tonic::body::Body>) -> Option<tracing::Span> {
        let rpc = observed_rpc(request.uri().path())?;
        Some(spans::server(rpc.qualified, request.headers(), origin(request)))
    }

    fn span(call: &tracing::Span) -> Option<tracing::Span> {
        Some(call.clone())
    }

    fn end(span: tracing::Span, code: Code, message: &str) {
        spans::record_status(&span, code, message);
    }
}

/// The host and port the caller addressed (the URI's authority, else the `host` header) and the caller's own
/// address (from the connection, plain or TLS).
fn origin(request: &http::Request<tonic::body::Body>) -> spans::CallOrigin {
    let authority = request.uri().authority().cloned().or_else(|| {
        request
            .headers()
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.parse::<http::uri::Authority>().ok())
    });
    let peer = request
        .extensions()
        .get::<std::sync::Arc<crate::listen::Connection>>()
        .map(|connection| connection.remote);
    spans::CallOrigin {
        server: authority.map(|a| (a.host().to_owned(), a.port_u16())),
        peer,
    }
}
