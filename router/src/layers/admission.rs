//! Load shedding per connection: a call beyond its connection's `concurrency_per_connection` is refused at once
//! with RESOURCE_EXHAUSTED (`ErrorInfo` reason `SHED`, the limit and its capacity; `RetryInfo`), before any
//! work, instead of queueing without bound. It sits inside the observing layers, so a shed call is spanned, timed
//! and logged like any other; `switchyard.calls.shed` counts it (`connection`). The server-wide limit is
//! `[limits] max_in_flight`, admitted with the tenant's quotas (`Engine::admit`, counted there as `server`).
//! Health and reflection are never shed: a probe must tell an overloaded server from a dead one.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::{Either, Ready, ready};
use tower::{Layer, Service};

use super::observed_rpc;
use crate::error::RouterError;
use crate::listen::Connection;
use crate::metrics::SharedMetrics;

/// Sheds calls beyond a connection's limit.
#[derive(Clone)]
pub struct Admission {
    per_connection: usize,
    metrics: SharedMetrics,
}

impl Admission {
    /// At most `per_connection` calls in flight on one connection.
    pub fn new(per_connection: usize, metrics: SharedMetrics) -> Self {
        Self {
            per_connection,
            metrics,
        }
    }

    /// The refusal of a call over the limit (the call itself is already counted).
    fn exceeded(&self, connection: &Connection) -> Option<RouterError> {
        if connection.calls() <= self.per_connection {
            return None;
        }
        self.metrics.shed("connection");
        Some(RouterError::Shed {
            limit: "connection",
            capacity: self.per_connection,
        })
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
