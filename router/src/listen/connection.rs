//! One accepted connection, from its first byte to its close: the HTTP protocol (hyper), what the connection
//! holds ([`Connection`], in every request's extensions), and the four ways the server ends it: silent (no byte
//! within the handshake timeout: dropped), idle (no call for the idle timeout: GOAWAY), old (its maximum age:
//! GOAWAY, then the grace), and the server draining (GOAWAY, then whatever the shutdown grace leaves).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use pin_project_lite::pin_project;
use rustls::pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;
use tokio::time::Instant;
use tower::Service;

use super::hold::{HoldBody, HoldFuture};
use super::{Phase, PortLimits};

/// Longest a connection told to go away while idle (nothing in flight) may take to close: only the GOAWAY is
/// left to write, so a peer that does not take it within this never reads at all.
const IDLE_CLOSE: Duration = Duration::from_secs(1);

/// One client connection, as the request's layers see it (in each request's extensions).
#[derive(Debug)]
pub struct Connection {
    /// The client's address.
    pub remote: SocketAddr,
    /// The certificate chain the client presented over TLS (mTLS), leaf first.
    pub peer_certificates: Option<Vec<CertificateDer<'static>>>,
    /// Requests open on this connection (a stream counts until its last byte).
    calls: AtomicUsize,
    /// When the connection was accepted.
    accepted: Instant,
    /// When its last request ended, in milliseconds after `accepted`.
    last_call_ended_ms: AtomicU64,
    /// Whether the client has sent a byte.
    spoke: AtomicBool,
}

impl Connection {
    /// A connection accepted now.
    pub(super) fn new(remote: SocketAddr, peer_certificates: Option<Vec<CertificateDer<'static>>>) -> Self {
        Self {
            remote,
            peer_certificates,
            calls: AtomicUsize::new(0),
            accepted: Instant::now(),
            last_call_ended_ms: AtomicU64::new(0),
            spoke: AtomicBool::new(false),
        }
    }

    /// Requests open on this connection now.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::Relaxed)
    }

    /// A request begins; it ends when the guard is dropped.
    fn open_call(self: &Arc<Self>) -> OpenCall {
        self.calls.fetch_add(1, Ordering::Relaxed);
        OpenCall(self.clone())
    }

    /// What the connection's clock says at `now`.
    fn verdict(&self, now: Instant, limits: &PortLimits) -> Verdict {
        if !self.spoke.load(Ordering::Relaxed) {
            let by = self.accepted + limits.handshake_timeout;
            if now >= by {
                return Verdict::Silent;
            }
            return Verdict::CheckAt(by.min(self.accepted + limits.idle_timeout));
        }
        if self.calls() > 0 {
            return Verdict::CheckAt(now + limits.idle_timeout);
        }
        let ended = Duration::from_millis(self.last_call_ended_ms.load(Ordering::Relaxed));
        let idle_until = self.accepted + ended + limits.idle_timeout;
        if now >= idle_until {
            Verdict::Idle
        } else {
            Verdict::CheckAt(idle_until)
        }
    }
}

/// What a connection's clock says.
enum Verdict {
    /// Not a byte within the handshake timeout: drop it.
    Silent,
    /// No request for the idle timeout: tell it to go away.
    Idle,
    /// Fine; look again then.
    CheckAt(Instant),
}

/// One open request; dropped when it ends.
pub(super) struct OpenCall(Arc<Connection>);

impl Drop for OpenCall {
    fn drop(&mut self) {
        let connection = &self.0;
        if connection.calls.fetch_sub(1, Ordering::Relaxed) == 1 {
            let since = u64::try_from(connection.accepted.elapsed().as_millis()).unwrap_or(u64::MAX);
            connection.last_call_ended_ms.store(since, Ordering::Relaxed);
        }
    }
}

/// Around the port's service, per connection: puts the [`Connection`] in each request and counts its requests.
#[derive(Clone)]
pub(super) struct Tracked<S> {
    inner: S,
    connection: Arc<Connection>,
}

impl<S, B> Service<http::Request<Incoming>> for Tracked<S>
where
    S: Service<http::Request<Incoming>, Response = http::Response<B>>,
{
    type Response = http::Response<HoldBody<B, OpenCall>>;
    type Error = S::Error;
    type Future = HoldFuture<S::Future, OpenCall>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Incoming>) -> Self::Future {
        let call = self.connection.open_call();
        request.extensions_mut().insert(self.connection.clone());
        HoldFuture::new(self.inner.call(request), call)
    }
}

pin_project! {
    /// The connection's socket, noting the client's first byte.
    pub(super) struct Watched<IO> {
        #[pin]
        io: IO,
        connection: Arc<Connection>,
    }
}

impl<IO: AsyncRead> AsyncRead for Watched<IO> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let polled = this.io.poll_read(cx, buf);
        if buf.filled().len() > before {
            this.connection.spoke.store(true, Ordering::Relaxed);
        }
        polled
    }
}

impl<IO: AsyncWrite> AsyncWrite for Watched<IO> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.project().io.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().io.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.project().io.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// Why the server ended a connection (`reason` on `switchyard.connections.closed`); `Client` when the client did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The client closed it (or it failed).
    Client,
    /// No byte within the handshake timeout (or a TLS handshake failed or took longer).
    Silent,
    /// No call for the idle timeout.
    Idle,
    /// Its maximum age.
    MaxAge,
    /// The server is shutting down.
    Drain,
}

impl CloseReason {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Silent => "silent",
            Self::Idle => "idle",
            Self::MaxAge => "max_age",
            Self::Drain => "drain",
        }
    }
}

/// Serves one connection until it ends; says who ended it.
pub(super) async fn serve<IO, S, B>(
    builder: &auto::Builder<TokioExecutor>,
    io: IO,
    service: S,
    connection: Arc<Connection>,
    limits: &PortLimits,
    mut phase: watch::Receiver<Phase>,
) -> CloseReason
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Service<http::Request<Incoming>, Response = http::Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let io = TokioIo::new(Watched {
        io,
        connection: connection.clone(),
    });
    let service = TowerToHyperService::new(Tracked {
        inner: service,
        connection: connection.clone(),
    });
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let old_at = limits.max_connection_age.map(|(age, _)| Instant::now() + jittered(age));
    let mut check_at = connection.accepted + limits.handshake_timeout.min(limits.idle_timeout);
    let reason = loop {
        tokio::select! {
            served = conn.as_mut() => {
                if let Err(error) = served {
                    tracing::debug!(%error, remote = %connection.remote, "connection failed");
                }
                return CloseReason::Client;
            }
            () = tokio::time::sleep_until(check_at) => match connection.verdict(Instant::now(), limits) {
                Verdict::Silent => return CloseReason::Silent,
                Verdict::Idle => break CloseReason::Idle,
                Verdict::CheckAt(at) => check_at = at,
            },
            () = sleep_until_some(old_at) => break CloseReason::MaxAge,
            changed = phase.changed() => match changed.map(|()| *phase.borrow_and_update()) {
                Ok(Phase::Serving) => {}
                Ok(Phase::Draining) => break CloseReason::Drain,
                Ok(Phase::Closed) | Err(_) => return CloseReason::Drain,
            },
        }
    };
    // GOAWAY: the client opens no new stream here; those in flight may finish.
    conn.as_mut().graceful_shutdown();
    let grace = match reason {
        CloseReason::Idle => Some(IDLE_CLOSE),
        CloseReason::MaxAge => limits.max_connection_age.map(|(_, grace)| grace),
        _ => None,
    };
    tokio::select! {
        _ = conn.as_mut() => {}
        () = sleep_until_some(grace.map(|grace| Instant::now() + grace)) => {
            tracing::debug!(remote = %connection.remote, reason = reason.as_str(), "grace over: connection closed");
        }
        () = closed(&mut phase) => {}
    }
    reason
}

/// Sleeps until `at`; never wakes for `None`.
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Resolves once the port is closed (the shutdown grace is over).
async fn closed(phase: &mut watch::Receiver<Phase>) {
    if phase.wait_for(|phase| *phase == Phase::Closed).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// `age` less up to 10 %: connections accepted together (a client fleet's restart) do not all go away at once.
fn jittered(age: Duration) -> Duration {
    age.mul_f64(1.0 - fastrand::f64() * 0.1)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn limits() -> PortLimits {
        PortLimits {
            max_connections: 8,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connection_age: None,
            header_read_timeout: None,
            max_concurrent_streams: 8,
            keepalive: None,
            http2_only: true,
        }
    }

    fn connection() -> Arc<Connection> {
        Arc::new(Connection::new("127.0.0.1:1".parse().unwrap(), None))
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_that_never_speaks_is_silent_after_the_handshake_timeout() {
        let connection = connection();
        let limits = limits();
        assert!(matches!(
            connection.verdict(Instant::now(), &limits),
            Verdict::CheckAt(_)
        ));
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(matches!(connection.verdict(Instant::now(), &limits), Verdict::Silent));
    }

    #[tokio::test(start_paused = true)]
    async fn idle_counts_from_the_last_call_and_never_while_one_is_open() {
        let connection = connection();
        connection.spoke.store(true, Ordering::Relaxed);
        let limits = limits();
        tokio::time::advance(Duration::from_secs(50)).await;
        let call = connection.open_call();
        assert_eq!(connection.calls(), 1);
        tokio::time::advance(Duration::from_secs(100)).await;
        assert!(matches!(
            connection.verdict(Instant::now(), &limits),
            Verdict::CheckAt(_)
        ));
        drop(call);
        assert_eq!(connection.calls(), 0);
        tokio::time::advance(Duration::from_secs(59)).await;
        assert!(matches!(
            connection.verdict(Instant::now(), &limits),
            Verdict::CheckAt(_)
        ));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(matches!(connection.verdict(Instant::now(), &limits), Verdict::Idle));
    }
}
