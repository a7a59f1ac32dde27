//! Taking connections off a listening socket: at most `max_connections` open at once (a newcomer beyond it is
//! refused in its protocol's words and closed), and an accept that fails for want of a resource (descriptors,
//! memory) waits before the next try instead of spinning on the backlog.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The first wait after a failed accept; each further failure doubles it...
const FIRST_BACKOFF: Duration = Duration::from_millis(5);
/// ...up to this.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// What a connection refused at the limit is told before it is closed.
#[derive(Debug, Clone, Copy)]
pub enum Refusal {
    /// HTTP/2's server preface (an empty SETTINGS) and a GOAWAY with `ENHANCE_YOUR_CALM`: a gRPC client reports
    /// UNAVAILABLE and tries again (another replica, or later).
    Http2,
    /// An HTTP/1.1 `503` with `Retry-After: 1`.
    Http1,
    /// Nothing: TLS, whose client expects a handshake first.
    Close,
}

/// Debug text of the GOAWAY.
const GOAWAY_DEBUG: &[u8] = b"connection limit";

impl Refusal {
    fn bytes(self) -> Vec<u8> {
        match self {
            Self::Http2 => {
                // SETTINGS: length 0, type 4, no flags, stream 0.
                let mut frames = vec![0, 0, 0, 4, 0, 0, 0, 0, 0];
                let length = 8 + GOAWAY_DEBUG.len();
                // GOAWAY: type 7, stream 0; last stream id 0; ENHANCE_YOUR_CALM (0xb).
                frames.extend_from_slice(&[0, 0, length as u8, 7, 0, 0, 0, 0, 0]);
                frames.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0x0b]);
                frames.extend_from_slice(GOAWAY_DEBUG);
                frames
            }
            Self::Http1 => b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\nconnection: close\r\n\
                content-type: text/plain\r\ncontent-length: 17\r\n\r\nconnection limit\n"
                .to_vec(),
            Self::Close => Vec::new(),
        }
    }
}

/// One accepted connection and its place under the limit (given back when dropped).
pub(super) struct Accepted {
    pub(super) stream: TcpStream,
    pub(super) remote: SocketAddr,
    pub(super) permit: OwnedSemaphorePermit,
}

/// A listening socket with its connection limit.
pub(super) struct Gate {
    listener: TcpListener,
    open: Arc<Semaphore>,
    refusal: Vec<u8>,
    backoff: Duration,
}

impl Gate {
    /// Accepts on `listener`, at most `max_connections` open at once.
    pub(super) fn new(listener: TcpListener, max_connections: usize, refusal: Refusal) -> Self {
        Self {
            listener,
            open: Arc::new(Semaphore::new(max_connections)),
            refusal: refusal.bytes(),
            backoff: FIRST_BACKOFF,
        }
    }

    /// The limit's permits: once all are back, every connection has closed.
    pub(super) fn permits(&self) -> Arc<Semaphore> {
        self.open.clone()
    }

    /// The next connection under the limit; `refused` is called for each one turned away.
    pub(super) async fn accept(&mut self, mut refused: impl FnMut()) -> Accepted {
        loop {
            let (stream, remote) = match self.listener.accept().await {
                Ok(accepted) => {
                    self.backoff = FIRST_BACKOFF;
                    accepted
                }
                // The client gave up between its SYN and our accept: nothing to wait for.
                Err(error) if is_per_connection(&error) => continue,
                // Out of descriptors or memory: the pending connection stays in the backlog, so trying again at
                // once would only spin. Wait, longer each time, for connections to close.
                Err(error) => {
                    tracing::warn!(%error, wait = ?self.backoff, "accept failed; waiting before the next");
                    tokio::time::sleep(self.backoff).await;
                    self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            };
            match self.open.clone().try_acquire_owned() {
                Ok(permit) => {
                    if let Err(error) = stream.set_nodelay(true) {
                        tracing::debug!(%error, "cannot set tcp_nodelay on an accepted connection");
                    }
                    return Accepted { stream, remote, permit };
                }
                Err(_) => {
                    // A fresh socket's send buffer is empty: the refusal fits without waiting; if it does not,
                    // the close alone says it.
                    let _ = stream.try_write(&self.refusal);
                    refused();
                }
            }
        }
    }
}

/// An accept error about that one connection, not the server.
fn is_per_connection(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::ConnectionRefused
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use tokio::io::AsyncReadExt;

    use super::*;

    #[tokio::test]
    async fn beyond_the_limit_a_connection_is_told_go_away_and_closed() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut gate = Gate::new(listener, 1, Refusal::Http2);
        let _first = TcpStream::connect(addr).await.unwrap();
        let held = gate.accept(|| panic!("the first connection was refused")).await;
        assert!(
            held.stream.nodelay().unwrap(),
            "TCP_NODELAY is off on an accepted connection"
        );

        let mut second = TcpStream::connect(addr).await.unwrap();
        let mut refusals = 0;
        let third = TcpStream::connect(addr).await.unwrap();
        // The second is refused; the gate then waits on the third, which the held permit also refuses... until
        // the first closes and the third gets its place.
        let accept = gate.accept(|| refusals += 1);
        let accepted = tokio::time::timeout(Duration::from_millis(500), accept).await;
        assert!(
            accepted.is_err(),
            "a connection was accepted beyond max_connections = 1"
        );
        let mut answer = Vec::new();
        second.read_to_end(&mut answer).await.unwrap();
        assert_eq!(answer, Refusal::Http2.bytes());
        assert_eq!(answer[12], 7, "the second frame is a GOAWAY");
        assert!(refusals >= 1);
        drop((held, third));
    }

    #[test]
    fn the_refusals_are_well_formed() {
        let http2 = Refusal::Http2.bytes();
        let goaway_length = usize::from(http2[11]);
        assert_eq!(http2.len(), 9 + 9 + goaway_length);
        assert!(http2.ends_with(GOAWAY_DEBUG));
        let http1 = String::from_utf8(Refusal::Http1.bytes()).unwrap();
        let (head, body) = http1.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
    }
}
