//! One `switchyard::access` log line per Router or Open Inference Protocol call, written inside its SERVER span when the call ends: ids,
//! decision, status and duration; never content.

use std::sync::Arc;

use tokio::time::Instant;
use tonic::Code;

use super::{CallNotes, CallObserver, observed_rpc};

/// Writes the access line.
#[derive(Debug, Clone, Copy, Default)]
pub struct AccessLog;

/// One call to log.
pub struct Logged {
    method: &'static str,
    started: Instant,
    notes: Arc<CallNotes>,
    span: tracing::Span,
}

impl CallObserver for AccessLog {
    type Call = Logged;

    fn begin(&self, request: &mut http::Request<tonic::body::Body>) -> Option<Logged> {
        let method = observed_rpc(request.uri().path())?.method;
        Some(Logged {
            method,
            started: Instant::now(),
            notes: CallNotes::of(request.extensions_mut()),
            span: tracing::Span::current(),
        })
    }

    fn end(call: Logged, code: Code, _message: &str) {
        let _in_span = call.span.enter();
        let notes = call.notes.lock();
        tracing::info!(
            target: "switchyard::access",
            rpc_method = call.method,
            request_id = %notes.request_id,
            tenant = %notes.tenant,
            label = %notes.label,
            route_target = %notes.target,
            rule = %notes.rule,
            policy_version = %notes.policy_version,
            grpc_status = code as i32,
            duration_ms = call.started.elapsed().as_secs_f64() * 1000.0,
            "request"
        );
    }
}
