//! The gateway's listening sockets. Every accepted connection gets `TCP_NODELAY`.
//!
//! A unary gRPC answer leaves as several small writes (headers, message, trailers); with Nagle's algorithm on,
//! the last one waits for the client's delayed ACK (~40 ms on Linux) on every call. tonic's builder sets the
//! option only on listeners it binds itself, and Switchyard binds its own (to report the bound address), so it is
//! set here, for the gRPC port and the admin port alike.

use std::net::SocketAddr;

use axum::serve::{ListenerExt, TapIo};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::TcpIncoming;

/// The gRPC port's accepted connections, each with `TCP_NODELAY` on.
pub fn grpc_incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true))
}

/// Longest a client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Handshakes finished and waiting for the server to take them.
const HANDSHAKES_QUEUED: usize = 64;

/// The gRPC port's connections over TLS, each with `TCP_NODELAY` on. Handshakes run in their own tasks, so a
/// slow or silent client never holds up the others; one that fails or takes longer than 10 s is dropped (logged
/// at debug: a port scanner is not an event).
pub fn tls_incoming(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
) -> ReceiverStream<std::io::Result<TlsStream<TcpStream>>> {
    let (sender, receiver) = tokio::sync::mpsc::channel(HANDSHAKES_QUEUED);
    tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    continue;
                }
            };
            if sender.is_closed() {
                return;
            }
            let mut stream = stream;
            set_nodelay(&mut stream);
            let (acceptor, sender) = (acceptor.clone(), sender.clone());
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => {
                        let _ = sender.send(Ok(tls)).await;
                    }
                    Ok(Err(error)) => tracing::debug!(%error, "tls handshake failed"),
                    Err(_) => tracing::debug!("tls handshake timed out"),
                }
            });
        }
    });
    ReceiverStream::new(receiver)
}

/// The admin port's accepted connections, each with `TCP_NODELAY` on.
pub fn admin_listener(listener: TcpListener) -> TapIo<TcpListener, fn(&mut TcpStream)> {
    listener.tap_io(set_nodelay as fn(&mut TcpStream))
}

/// The admin port's connections over TLS (handshakes as on the gRPC port: in their own tasks, bounded in time).
pub struct AdminTlsListener {
    handshakes: ReceiverStream<std::io::Result<TlsStream<TcpStream>>>,
    local: SocketAddr,
}

impl AdminTlsListener {
    /// Serves TLS with `acceptor` on `listener`.
    pub fn new(listener: TcpListener, acceptor: tokio_rustls::TlsAcceptor) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        Ok(Self {
            handshakes: tls_incoming(listener, acceptor),
            local,
        })
    }
}

impl axum::serve::Listener for AdminTlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.handshakes.next().await {
                Some(Ok(stream)) => {
                    let peer = stream.get_ref().0.peer_addr().unwrap_or(self.local);
                    return (stream, peer);
                }
                Some(Err(error)) => tracing::debug!(%error, "admin connection failed"),
                // The accept loop only ends with the process.
                None => std::future::pending::<()>().await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

fn set_nodelay(stream: &mut TcpStream) {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "cannot set tcp_nodelay on an accepted connection");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use axum::serve::Listener;

    use super::*;

    async fn loopback() -> (TcpListener, std::net::SocketAddr) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        (listener, addr)
    }

    #[tokio::test]
    async fn the_grpc_port_accepts_connections_with_nodelay_on() {
        let (listener, addr) = loopback().await;
        let mut incoming = grpc_incoming(listener);
        let _client = TcpStream::connect(addr).await.unwrap();
        let accepted = incoming.next().await.unwrap().unwrap();
        assert!(
            accepted.nodelay().unwrap(),
            "TCP_NODELAY is off on an accepted gRPC connection"
        );
    }

    #[tokio::test]
    async fn the_admin_port_accepts_connections_with_nodelay_on() {
        let (listener, addr) = loopback().await;
        let mut admin = admin_listener(listener);
        let _client = TcpStream::connect(addr).await.unwrap();
        let (accepted, _) = admin.accept().await;
        assert!(
            accepted.nodelay().unwrap(),
            "TCP_NODELAY is off on an accepted admin connection"
        );
    }

    #[tokio::test]
    async fn a_plain_listener_would_leave_nodelay_off() {
        // The guard above means something only if the default differs: an accepted socket starts with Nagle on.
        let (listener, addr) = loopback().await;
        let _client = TcpStream::connect(addr).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        assert!(!accepted.nodelay().unwrap());
    }
}
