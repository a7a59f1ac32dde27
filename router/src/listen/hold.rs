//! Holding something for exactly as long as a call lasts: a guard taken when the request arrives and dropped
//! when its response body ends (or is dropped: the caller left), so a count of calls "in flight" includes a
//! stream's whole length, not only its handler: a connection's open calls, which its idle clock and shedding
//! read.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

pin_project! {
    /// The inner service's future, holding `G`; the response's body takes it over.
    pub struct HoldFuture<F, G> {
        #[pin]
        inner: F,
        guard: Option<G>,
    }
}

impl<F, G> HoldFuture<F, G> {
    /// Holds `guard` while `inner` runs, then in the body of its response.
    pub fn new(inner: F, guard: G) -> Self {
        Self {
            inner,
            guard: Some(guard),
        }
    }
}

impl<F, G, B, E> Future for HoldFuture<F, G>
where
    F: Future<Output = Result<http::Response<B>, E>>,
{
    type Output = Result<http::Response<HoldBody<B, G>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = ready!(this.inner.poll(cx));
        let guard = this.guard.take();
        Poll::Ready(response.map(|response| response.map(|inner| HoldBody { inner, guard })))
    }
}

pin_project! {
    /// A response body holding `G` until it ends or is dropped.
    pub struct HoldBody<B, G> {
        #[pin]
        inner: B,
        guard: Option<G>,
    }
}

impl<B: Body, G> Body for HoldBody<B, G> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if let Poll::Ready(None | Some(Err(_))) = &polled {
            // The call is over: release what it held without waiting for the body to be dropped.
            this.guard.take();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http_body_util::BodyExt;

    use super::*;

    struct Counted(Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn the_guard_lives_until_the_body_ends() {
        let open = Arc::new(AtomicUsize::new(1));
        let response = async { Ok::<_, ()>(http::Response::new(http_body_util::Full::new(bytes::Bytes::from("ab")))) };
        let response = HoldFuture::new(response, Counted(open.clone())).await.unwrap();
        assert_eq!(open.load(Ordering::SeqCst), 1, "released before the body was read");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"ab");
        assert_eq!(open.load(Ordering::SeqCst), 0, "held after the body ended");
    }

    #[tokio::test]
    async fn a_dropped_future_or_body_releases_the_guard() {
        let open = Arc::new(AtomicUsize::new(2));
        let pending = std::future::pending::<Result<http::Response<http_body_util::Empty<bytes::Bytes>>, ()>>();
        drop(HoldFuture::new(pending, Counted(open.clone())));
        assert_eq!(open.load(Ordering::SeqCst), 1);
        let response = async { Ok::<_, ()>(http::Response::new(http_body_util::Empty::<bytes::Bytes>::new())) };
        let response = HoldFuture::new(response, Counted(open.clone())).await.unwrap();
        drop(response);
        assert_eq!(open.load(Ordering::SeqCst), 0);
    }
}
