//! The call's deadline: the caller's `grpc-timeout` or the server's `request_timeout`, whichever is sooner. A
//! call still unanswered then is answered DEADLINE_EXCEEDED (its work dropped), inside the observing layers, so
//! the access line, the duration metric and the span all see the code the caller sees.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tower::{Layer, Service};

use crate::error::{DeadlineSetter, RouterError};

/// Bounds every call by the sooner of the caller's deadline and `request_timeout`.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    request_timeout: Duration,
}

impl Deadline {
    /// Calls without a shorter deadline of their own end within `request_timeout`.
    pub fn new(request_timeout: Duration) -> Self {
        Self { request_timeout }
    }
}

impl<S> Layer<S> for Deadline {
    type Service = DeadlineService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        DeadlineService {
            inner,
            request_timeout: self.request_timeout,
        }
    }
}

/// The service a [`Deadline`] makes.
#[derive(Debug, Clone)]
pub struct DeadlineService<S> {
    inner: S,
    request_timeout: Duration,
}

impl<S, B> Service<http::Request<tonic::body::Body>> for DeadlineService<S>
where
    S: Service<http::Request<tonic::body::Body>, Response = http::Response<B>>,
    B: Default,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = DeadlineFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let (after, set_by) = match grpc_timeout(request.headers()) {
            Some(caller) if caller < self.request_timeout => (caller, DeadlineSetter::Caller),
            _ => (self.request_timeout, DeadlineSetter::Server),
        };
        DeadlineFuture {
            inner: self.inner.call(request),
            sleep: tokio::time::sleep(after),
            after,
            set_by,
        }
    }
}

pin_project! {
    /// The call's answer, or DEADLINE_EXCEEDED once its deadline passes.
    pub struct DeadlineFuture<F> {
        #[pin]
        inner: F,
        #[pin]
        sleep: Sleep,
        after: Duration,
        set_by: DeadlineSetter,
    }
}

impl<F, B, E> Future for DeadlineFuture<F>
where
    F: Future<Output = Result<http::Response<B>, E>>,
    B: Default,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(answer) = this.inner.poll(cx) {
            return Poll::Ready(answer);
        }
        ready!(this.sleep.poll(cx));
        let error = RouterError::DeadlineExceeded {
            after: *this.after,
            set_by: *this.set_by,
        };
        Poll::Ready(Ok(tonic::Status::from(error).into_http()))
    }
}

/// The caller's timeout from the `grpc-timeout` header (`<up to 8 digits><unit>`, unit one of H M S m u n).
pub fn grpc_timeout(headers: &http::HeaderMap) -> Option<Duration> {
    let value = headers.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount.saturating_mul(3600)),
        "M" => Duration::from_secs(amount.saturating_mul(60)),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use tonic::Code;

    use super::*;

    fn headers(timeout: &str) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        headers.insert("grpc-timeout", timeout.parse().unwrap());
        headers
    }

    #[test]
    fn grpc_timeout_reads_every_unit_and_refuses_the_malformed() {
        assert_eq!(grpc_timeout(&headers("1u")), Some(Duration::from_micros(1)));
        assert_eq!(grpc_timeout(&headers("250m")), Some(Duration::from_millis(250)));
        assert_eq!(grpc_timeout(&headers("2H")), Some(Duration::from_secs(7200)));
        assert_eq!(grpc_timeout(&headers("7n")), Some(Duration::from_nanos(7)));
        for bad in ["", "m", "10", "123456789S", "1x", "-1S"] {
            assert_eq!(grpc_timeout(&headers(bad)), None, "{bad:?}");
        }
        assert_eq!(grpc_timeout(&http::HeaderMap::new()), None);
    }

    /// A handler that never answers.
    #[derive(Clone)]
    struct Never;
    impl Service<http::Request<tonic::body::Body>> for Never {
        type Response = http::Response<tonic::body::Body>;
        type Error = std::convert::Infallible;
        type Future = std::future::Pending<Result<Self::Response, Self::Error>>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, _: http::Request<tonic::body::Body>) -> Self::Future {
            std::future::pending()
        }
    }

    fn status(response: &http::Response<tonic::body::Body>) -> (Code, String) {
        let status = tonic::Status::from_header_map(response.headers()).unwrap();
        (status.code(), status.message().to_owned())
    }

    #[tokio::test(start_paused = true)]
    async fn the_sooner_deadline_answers_deadline_exceeded_naming_who_set_it() {
        let mut service = Deadline::new(Duration::from_secs(5)).layer(Never);
        let mut request = http::Request::new(tonic::body::Body::empty());
        request.headers_mut().insert("grpc-timeout", "1u".parse().unwrap());
        let (code, message) = status(&service.call(request).await.unwrap());
        assert_eq!(code, Code::DeadlineExceeded);
        assert!(message.contains("caller"), "{message}");

        let started = tokio::time::Instant::now();
        let request = http::Request::new(tonic::body::Body::empty());
        let (code, message) = status(&service.call(request).await.unwrap());
        assert_eq!(code, Code::DeadlineExceeded);
        assert!(message.contains("request_timeout"), "{message}");
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }
}
