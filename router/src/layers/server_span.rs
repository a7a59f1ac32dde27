//! The SERVER span of every Router and Open Inference Protocol call (named `{service}/{method}`): continues the caller's trace from the request headers, is the span the
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
        Some(spans::server(rpc.service, rpc.method, request.headers()))
    }

    fn span(call: &tracing::Span) -> Option<tracing::Span> {
        Some(call.clone())
    }

    fn end(span: tracing::Span, code: Code, message: &str) {
        spans::record_status(&span, code, message);
    }
}
