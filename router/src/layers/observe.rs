//! The machinery every layer here shares: begin a call, end it once with its final status.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use http_body::{Body, Frame, SizeHint};
use tonic::Code;
use tower::{Layer, Service};
use tracing::Instrument;

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
    S: Service<http::Request<tonic::body::Body>, Response = http::Response<B>> + Send,
    S::Future: Send + 'static,
    O: CallObserver,
    B: Body + Unpin + Send + 'static,
{
    type Response = http::Response<ObservedBody<B, O>>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<tonic::body::Body>) -> Self::Future {
        let Some(call) = self.observer.begin(&mut request) else {
            let future = self.inner.call(request);
            return Box::pin(async move {
                Ok(future.await?.map(|body| ObservedBody {
                    inner: body,
                    call: None,
                }))
            });
        };
        let span = O::span(&call).unwrap_or_else(tracing::Span::current);
        // Entered while the inner layers begin, so they see this span as the current one.
        let future = span.in_scope(|| self.inner.call(request));
        Box::pin(
            async move {
                let response = match future.await {
                    Ok(response) => response,
                    Err(error) => {
                        O::end(call, Code::Internal, "the service failed");
                        return Err(error);
                    }
                };
                // An error answered at once carries its status in the headers ("trailers-only").
                if let Some(status) = tonic::Status::from_header_map(response.headers()) {
                    O::end(call, status.code(), status.message());
                    return Ok(response.map(|body| ObservedBody {
                        inner: body,
                        call: None,
                    }));
                }
                Ok(response.map(|body| ObservedBody {
                    inner: body,
                    call: Some(call),
                }))
            }
            .instrument(span),
        )
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

impl<B: Body + Unpin, O: CallObserver> Body for ObservedBody<B, O> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(status) = frame.trailers_ref().and_then(tonic::Status::from_header_map) {
                    self.end(status.code(), status.message());
                }
            }
            Poll::Ready(Some(Err(_))) => self.end(Code::Internal, "the response body failed"),
            Poll::Ready(None) => self.end(Code::Unknown, "the response ended without a status"),
            Poll::Pending => {}
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
