//! Load shedding: a call beyond its connection's `concurrency_per_connection`, or beyond the port's
//! `max_calls_in_flight`, is refused at once with RESOURCE_EXHAUSTED (`ErrorInfo` reason `SHED` naming the
//! limit, `RetryInfo`), before any work, instead of queueing without bound. It sits inside the observing layers,
//! so a shed call is spanned, timed and logged like any other; `switchyard.calls.shed` counts them by limit.
//! Health and reflection are never shed: a probe must tell an overloaded server from a dead one.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::{Either, Ready, ready};
use tower::{Layer, Service};

use super::observed_rpc;
use crate::error::RouterError;
use crate::listen::Connection;
use crate::metrics::SharedMetrics;

/// Sheds calls beyond the per-connection and per-port limits.
#[derive(Clone)]
pub struct Admission {
    per_connection: usize,
    per_port: usize,
    metrics: SharedMetrics,
}

impl Admission {
    /// At most `per_connection` calls in flight on one connection and `per_port` on the whole port.
    pub fn new(per_connection: usize, per_port: usize, metrics: SharedMetrics) -> Self {
        Self {
            per_connection,
            per_port,
            metrics,
        }
    }

    /// The limit this call would exceed, if any (the call itself is already counted).
    fn exceeded(&self, connection: &Connection) -> Option<RouterError> {
        let (limit, capacity) = if connection.calls() > self.per_connection {
            ("connection", self.per_connection)
        } else if connection.port_calls() > self.per_port {
            ("server", self.per_port)
        } else {
            return None;
        };
        self.metrics.shed(limit);
        Some(RouterError::Shed { limit, capacity })
    }
}

impl<S> Layer<S> for Admission {
    type Service = AdmissionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AdmissionService {
            inner,
            admission: self.clone(),
        }
    }
}

/// The service an [`Admission`] layer makes.
#[derive(Clone)]
pub struct AdmissionService<S> {
    inner: S,
    admission: Admission,
}

impl<S, B> Service<http::Request<tonic::body::Body>> for AdmissionService<S>
where
    S: Service<http::Request<tonic::body::Body>, Response = http::Response<B>>,
    B: Default,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Either<Ready<Result<S::Response, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let refused = observed_rpc(request.uri().path())
            .and_then(|_| request.extensions().get::<Arc<Connection>>())
            .and_then(|connection| self.admission.exceeded(connection));
        match refused {
            Some(error) => Either::Left(ready(Ok(tonic::Status::from(error).into_http()))),
            None => Either::Right(self.inner.call(request)),
        }
    }
}
