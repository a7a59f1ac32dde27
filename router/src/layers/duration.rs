//! `rpc.server.call.duration` of every Router and Open Inference Protocol call, from its arrival to its last byte (a stream's whole length), by
//! method, status and the target decided.

use std::sync::Arc;

use tokio::time::Instant;
use tonic::Code;

use super::{CallNotes, CallObserver, observed_rpc};
use crate::metrics::SharedMetrics;

/// Records each call's duration.
#[derive(Clone)]
pub struct RpcDuration(pub SharedMetrics);

/// One call being timed.
pub struct Timed {
    metrics: SharedMetrics,
    method: &'static str,
    started: Instant,
    notes: Arc<CallNotes>,
}

impl CallObserver for RpcDuration {
    type Call = Timed;

    fn begin(&self, request: &mut http::Request<tonic::body::Body>) -> Option<Timed> {
        let method = observed_rpc(request.uri().path())?.qualified;
        Some(Timed {
            metrics: self.0.clone(),
            method,
            started: Instant::now(),
            notes: CallNotes::of(request.extensions_mut()),
        })
    }

    fn end(call: Timed, code: Code, message: &str) {
        let target = call.notes.lock().target.clone();
        call.metrics
            .rpc(call.method, (code, message), &target, call.started.elapsed());
    }
}
