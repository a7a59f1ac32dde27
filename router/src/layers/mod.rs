//! Cross-cutting work on every `switchyard.v1.Router` and Open Inference Protocol call, as tower layers composed
//! in `server.rs`'s one `ServiceBuilder`: the SERVER span and its status (`server_span`),
//! `rpc.server.call.duration` (`duration`), the access line (`access`), load shedding (`admission`), the call's
//! deadline (`deadline`) and authentication (`auth`). The handlers keep only the RPC's own work; they note what
//! the layers report (request id, tenant, decision) in the call's [`CallNotes`].
//!
//! The observing layers are [`CallObserver`]s run by [`ObserveLayer`]: each begins when the request arrives and
//! ends once, with the call's final gRPC status, when the response ends: at once for an error answered in the
//! headers, at the trailers for a unary answer or a stream, or when the caller goes away (`CANCELLED`). Every
//! layer that can end a call itself (shedding, the deadline, authentication) sits inside them, so no call the
//! server ends escapes the access log or the duration metric.

mod access;
mod admission;
mod auth;
mod deadline;
mod duration;
mod notes;
mod observe;
mod server_span;

pub use access::AccessLog;
pub use admission::{Admission, AdmissionService};
pub use auth::{Authenticate, AuthenticateService, UNAUTHENTICATED};
pub use deadline::{Deadline, DeadlineFuture, DeadlineService, grpc_timeout};
pub use duration::RpcDuration;
pub use notes::{CallNotes, Notes};
pub use observe::{CallObserver, ObserveFuture, ObserveLayer, ObserveService, ObservedBody};
pub use server_span::ServerSpan;

/// The path prefix of Router calls.
pub const ROUTER_PATH: &str = "/switchyard.v1.Router/";

/// The path prefix of Open Inference Protocol calls.
pub const INFERENCE_PATH: &str = "/inference.GRPCInferenceService/";

/// An observed call's service and method: bounded sets, fit for metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rpc {
    /// `switchyard.v1.Router` or `inference.GRPCInferenceService`.
    pub service: &'static str,
    /// The method, or `unknown` for a name the service does not have.
    pub method: &'static str,
    /// `service/method` (OpenTelemetry's fully qualified `rpc.method`), or `_OTHER` for an unknown method.
    pub qualified: &'static str,
}

/// Every method observed, fully qualified.
const METHODS: &[&str] = &[
    "switchyard.v1.Router/Route",
    "switchyard.v1.Router/RouteStream",
    "switchyard.v1.Router/Explain",
    "inference.GRPCInferenceService/ServerLive",
    "inference.GRPCInferenceService/ServerReady",
    "inference.GRPCInferenceService/ModelReady",
    "inference.GRPCInferenceService/ServerMetadata",
    "inference.GRPCInferenceService/ModelMetadata",
    "inference.GRPCInferenceService/ModelInfer",
];

/// The Router or Open Inference Protocol call at `path`; `None` for other services (health and reflection pass
/// through the layers untouched).
pub fn observed_rpc(path: &str) -> Option<Rpc> {
    let service = if path.starts_with(ROUTER_PATH) {
        "switchyard.v1.Router"
    } else if path.starts_with(INFERENCE_PATH) {
        "inference.GRPCInferenceService"
    } else {
        return None;
    };
    let known = METHODS.iter().find(|m| path.strip_prefix('/') == Some(**m));
    Some(match known {
        Some(qualified) => Rpc {
            service,
            method: qualified.rsplit('/').next().unwrap_or(qualified),
            qualified,
        },
        None => Rpc {
            service,
            method: "unknown",
            qualified: "_OTHER",
        },
    })
}

#[cfg(test)]
mod tests {
    use super::observed_rpc;

    #[test]
    fn router_and_inference_calls_are_observed_and_their_method_names_are_bounded() {
        let method = |path| observed_rpc(path).map(|rpc| rpc.method);
        assert_eq!(method("/switchyard.v1.Router/RouteStream"), Some("RouteStream"));
        assert_eq!(method("/switchyard.v1.Router/DropTables"), Some("unknown"));
        assert_eq!(method("/inference.GRPCInferenceService/ModelInfer"), Some("ModelInfer"));
        assert_eq!(
            method("/inference.GRPCInferenceService/RepositoryIndex"),
            Some("unknown")
        );
        assert_eq!(
            observed_rpc("/inference.GRPCInferenceService/ServerLive").map(|rpc| (rpc.service, rpc.qualified)),
            Some((
                "inference.GRPCInferenceService",
                "inference.GRPCInferenceService/ServerLive"
            ))
        );
        assert_eq!(
            observed_rpc("/switchyard.v1.Router/DropTables").map(|rpc| rpc.qualified),
            Some("_OTHER")
        );
        assert_eq!(observed_rpc("/grpc.health.v1.Health/Check"), None);
    }
}
