//! Cross-cutting work on every `switchyard.v1.Router` call, as tower layers composed in `server.rs`'s one
//! `ServiceBuilder`: the SERVER span and its status (`server_span`), `rpc.server.duration` (`duration`), the
//! access line (`access`), and authentication (`auth`). The handlers keep only the RPC's own work; they note what the layers report (request
//! id, tenant, decision) in the call's [`CallNotes`].
//!
//! Each layer is a [`CallObserver`] run by [`ObserveLayer`]: it begins when the request arrives and ends once,
//! with the call's final gRPC status, when the response ends: at once for an error answered in the headers, at
//! the trailers for a unary answer or a stream, or when the caller goes away (`CANCELLED`).

mod access;
mod auth;
mod duration;
mod notes;
mod observe;
mod server_span;

pub use access::AccessLog;
pub use auth::{Authenticate, AuthenticateService, UNAUTHENTICATED};
pub use duration::RpcDuration;
pub use notes::{CallNotes, Notes};
pub use observe::{CallObserver, ObserveFuture, ObserveLayer, ObserveService, ObservedBody};
pub use server_span::ServerSpan;

/// The path prefix of the calls these layers observe (health and reflection pass through untouched).
pub const ROUTER_PATH: &str = "/switchyard.v1.Router/";

/// The method of a Router call (`Route`, `RouteStream`, `Explain`, or `unknown` for a name the service does not
/// have: a bounded set, fit for a metric label), from its path; `None` for other services.
pub fn router_method(path: &str) -> Option<&'static str> {
    Some(match path.strip_prefix(ROUTER_PATH)? {
        "Route" => "Route",
        "RouteStream" => "RouteStream",
        "Explain" => "Explain",
        _ => "unknown",
    })
}

#[cfg(test)]
mod tests {
    use super::router_method;

    #[test]
    fn only_router_calls_are_observed_and_their_method_names_are_bounded() {
        assert_eq!(router_method("/switchyard.v1.Router/RouteStream"), Some("RouteStream"));
        assert_eq!(router_method("/switchyard.v1.Router/DropTables"), Some("unknown"));
        assert_eq!(router_method("/grpc.health.v1.Health/Check"), None);
    }
}
