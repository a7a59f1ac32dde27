//! The gateway's two ports (gRPC and admin), served by hand with hyper so every connection is bounded: how many
//! may be open (`accept`: beyond the limit a newcomer is refused politely; accept errors back off), how long a
//! client may stay silent, idle or connected at all, and how long its headers may take (`connection`). tonic's
//! and axum's own servers have no connection limit, idle or handshake timeout, and spin on a failed accept.
//!
//! Every accepted socket gets `TCP_NODELAY`: a unary gRPC answer leaves as several small writes (headers,
//! message, trailers), and with Nagle's algorithm the last one waits for the client's delayed ACK (~40 ms on
//! Linux) on every call.

mod accept;
mod connection;
mod hold;

use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::Service;

pub use accept::Refusal;
pub use connection::{CloseReason, Connection};

use crate::metrics::SharedMetrics;

/// Where a port is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Accepting and serving.
    Serving,
    /// No longer accepting; every connection told to go away, its calls in flight finishing.
    Draining,
    /// Every connection closed now, calls in flight or not.
    Closed,
}

/// What one port's connections may hold and how long they live.
#[derive(Debug, Clone, Copy)]
pub struct PortLimits {
    /// Connections open at once; a newcomer beyond is refused.
    pub max_connections: usize,
    /// A connection that has sent no byte by then (or not finished its TLS handshake) is dropped.
    pub handshake_timeout: Duration,
    /// A connection with no call for this long is told to go away.
    pub idle_timeout: Duration,
    /// Its maximum age (less up to 10 % jitter), then the grace for its calls in flight.
    pub max_connection_age: Option<(Duration, Duration)>,
    /// HTTP/1: a request's headers must have arrived within this (and a kept-alive connection's next ones).
    pub header_read_timeout: Option<Duration>,
    /// HTTP/2 streams open at once per connection.
    pub max_concurrent_streams: u32,
    /// HTTP/2 PING after this long without a frame, and the connection closed if it is not answered within the
    /// second.
    pub keepalive: Option<(Duration, Duration)>,
    /// HTTP/2 only (gRPC); otherwise HTTP/1.1 as well.
    pub http2_only: bool,
}

/// Which port, for the metrics and the logs.
#[derive(Debug, Clone, Copy)]
pub enum Port {
    /// The gRPC port.
    Grpc,
    /// The admin HTTP port.
    Admin,
}

impl Port {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Grpc => "grpc",
            Self::Admin => "admin",
        }
    }
}

/// Serves `service` on `listener` (over TLS with `tls`) until `phase` leaves [`Phase::Serving`]; returns once
/// every connection has closed.
#[allow(clippy::too_many_arguments)]
pub async fn serve<S, B>(
    port: Port,
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: PortLimits,
    service: S,
    metrics: SharedMetrics,
    mut phase: watch::Receiver<Phase>,
) where
    S: Service<http::Request<Incoming>, Response = http::Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let refusal = match (&tls, limits.http2_only) {
        (Some(_), _) => Refusal::Close,
        (None, true) => Refusal::Http2,
        (None, false) => Refusal::Http1,
    };
    let mut gate = accept::Gate::new(listener, limits.max_connections, refusal);
    let permits = gate.permits();
    let builder = Arc::new(builder(&limits));
    loop {
        let accepted = tokio::select! {
            accepted = gate.accept(|| metrics.connection_closed(port.as_str(), "refused")) => accepted,
            changed = phase.changed() => {
                if changed.is_err() || *phase.borrow_and_update() != Phase::Serving {
                    break;
                }
                continue;
            }
        };
        let (builder, service, metrics, phase) = (builder.clone(), service.clone(), metrics.clone(), phase.clone());
        let tls = tls.clone();
        tokio::spawn(async move {
            let accept::Accepted { stream, remote, permit } = accepted;
            metrics.connection_opened(port.as_str());
            let reason = match tls {
                None => {
                    let connection = Arc::new(Connection::new(remote, None));
                    connection::serve(&builder, stream, service, connection, &limits, phase).await
                }
                Some(acceptor) => match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => {
                        let certificates = stream
                            .get_ref()
                            .1
                            .peer_certificates()
                            .map(|chain| chain.iter().map(|c| c.clone().into_owned()).collect());
                        let connection = Arc::new(Connection::new(remote, certificates));
                        connection::serve(&builder, stream, service, connection, &limits, phase).await
                    }
                    Ok(Err(error)) => {
                        // A port scanner is not an event.
                        tracing::debug!(%error, %remote, "tls handshake failed");
                        CloseReason::Silent
                    }
                    Err(_) => CloseReason::Silent,
                },
            };
            metrics.connection_closed(port.as_str(), reason.as_str());
            drop(permit);
        });
    }
    // The listening socket closes here: the kernel stops completing handshakes for this port.
    drop(gate);
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = permits.acquire_many(all).await;
}

/// The HTTP protocol settings for one port's connections.
fn builder(limits: &PortLimits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    if limits.http2_only {
        builder = builder.http2_only();
    }
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let mut http2 = builder.http2();
    http2
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_concurrent_streams);
    if let Some((interval, timeout)) = limits.keepalive {
        http2.keep_alive_interval(interval).keep_alive_timeout(timeout);
    }
    builder
}
