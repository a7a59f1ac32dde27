//! The machinery every layer here shares: begin a call, end it once with its final status. No allocation per
//! call beyond the observer's own state: the future and the body are wrapped in place, and the status is read
//! from `grpc-status` directly (its message is decoded only for a failure).

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tonic::Code;
use tower::{Layer, Service};

/// What one layer does around a call.
pub trait CallObserver: Clone + Send + Sync + 'static {
    /// What the layer keeps about a call between its beginning and its end.
    type Call: Send + Unpin + 'static;

    /// A call arrives; `None` leaves it unobserved (not a Router call).
    fn begin(&self, request: &mut http::Request<tonic::body::Body>) -> Option<Self::Call>;

    /// The span the rest of the call runs in (the SERVER span's layer opens one; others keep the current).
    fn span(_call: &Self::Call) -> Option<tracing::Span> {
        None
    }

    /// The call ended with `code` (and `message`, empty when OK).
    fn end(call: Self::Call, code: Code, message: &str);
}

/// Runs a [`CallObserver`] around the inner service.
#[derive(Debug, Clone)]
pub struct ObserveLayer<O>(pub O);

impl<S, O: CallObserver> Layer<S> for ObserveLayer<O> {
    type Service = ObserveService<S, O>;

    fn layer(&self, inner: S) -> Self::Service {
        ObserveService {
            inner,
            observer: self.0.clone(),
        }
    }
}

/// The service an [`ObserveLayer`] makes.
#[derive(Debug, Clone)]
pub struct ObserveService<S, O> {
    inner: S,
    observer: O,
}

impl<S, O, B> Service<http::Request<tonic::body::Body>> for ObserveService<S, O>
where
    S: Service<http::Request<tonic::body::Body>, Response = http::Response<B>>,
    O: CallObserver,
    B: Body<Error = tonic::Status> + Unpin,
{
    type Response = http::Response<ObservedBody<B, O>>;
    type Error = S::Error;
    type Future = ObserveFuture<S::Future, O>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<tonic::body::Body>) -> Self::Future {
        let call = self.observer.begin(&mut request);
        let span = call.as_ref().and_then(O::span);
        // Entered while the inner layers begin, so they see this span as the current one.
        let inner = match &span {
            Some(span) => span.in_scope(|| self.inner.call(request)),
            None => self.inner.call(request),
        };
        ObserveFuture { inner, call, span }
    }
}

pin_project! {
    /// The inner service's future, run in the call's span; ends the call at once when the answer is an error
    /// carried in the headers.
    pub struct ObserveFuture<F, O: CallObserver> {
        #[pin]
        inner: F,
        call: Option<O::Call>,
        span: Option<tracing::Span>,
    }
}

impl<F, O, B, E> Future for ObserveFuture<F, O>
where
    F: Future<Output = Result<http::Response<B>, E>>,
    O: CallObserver,
{
    type Output = Result<http::Response<ObservedBody<B, O>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _entered = this.span.as_ref().map(tracing::Span::enter);
        let response = match ready!(this.inner.poll(cx)) {
            Ok(response) => response,
            Err(error) => {
                if let Some(call) = this.call.take() {
                    O::end(call, Code::Internal, "the service failed");
                }
                return Poll::Ready(Err(error));
            }
        };
        let mut call = this.call.take();
        // An error answered at once carries its status in the headers ("trailers-only").
        if let Some((code, message)) = grpc_status(response.headers())
            && let Some(call) = call.take()
        {
            O::end(call, code, &message);
        }
        Poll::Ready(Ok(response.map(|inner| ObservedBody { inner, call })))
    }
}

/// A response body that ends its call once: at the trailers' `grpc-status`, at its end, or when dropped early
/// (the caller left: `CANCELLED`).
pub struct ObservedBody<B, O: CallObserver> {
    inner: B,
    call: Option<O::Call>,
}

impl<B, O: CallObserver> ObservedBody<B, O> {
    fn end(&mut self, code: Code, message: &str) {
        if let Some(call) = self.call.take() {
            O::end(call, code, message);
        }
    }
}

impl<B: Body<Error = tonic::Status> + Unpin, O: CallObserver> Body for ObservedBody<B, O> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if self.call.is_some() {
            match &polled {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Some((code, message)) = frame.trailers_ref().and_then(grpc_status) {
                        self.end(code, &message);
                    }
                }
                // The body's own failure, e.g. tonic's "client cancelled" when the caller resets the stream.
                Poll::Ready(Some(Err(status))) => self.end(status.code(), status.message()),
                Poll::Ready(None) => self.end(Code::Unknown, "the response ended without a status"),
                Poll::Pending => {}
            }
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

impl<B, O: CallObserver> Drop for ObservedBody<B, O> {
    fn drop(&mut self) {
        self.end(Code::Cancelled, "the caller went away");
    }
}

/// The `grpc-status` (and, for a failure, the decoded `grpc-message`) in `headers`, if present.
fn grpc_status(headers: &http::HeaderMap) -> Option<(Code, Cow<'_, str>)> {
    let code = Code::from_bytes(headers.get("grpc-status")?.as_bytes());
    let message = match headers.get("grpc-message") {
        Some(value) if code != Code::Ok => percent_encoding::percent_decode(value.as_bytes()).decode_utf8_lossy(),
        _ => Cow::Borrowed(""),
    };
    Some((code, message))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn the_status_is_read_from_grpc_status_and_a_failures_message_decoded() {
        let status = tonic::Status::unavailable("llm backend local: 100% down");
        let headers = status.clone().into_http::<tonic::body::Body>().headers().clone();
        let (code, message) = grpc_status(&headers).unwrap();
        assert_eq!(
            (code, message.as_ref()),
            (Code::Unavailable, "llm backend local: 100% down")
        );
        let mut ok = http::HeaderMap::new();
        ok.insert("grpc-status", "0".parse().unwrap());
        assert_eq!(grpc_status(&ok).unwrap().0, Code::Ok);
        assert!(grpc_status(&http::HeaderMap::new()).is_none());
    }
}
