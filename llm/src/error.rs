//! The crate's one error type: a closed taxonomy of LLM failures, each naming the backend.

use std::time::Duration;

/// Why a call to an LLM backend failed. Every variant names the backend (its name in config).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LlmError {
    /// No connection could be made (refused, DNS, TLS).
    #[error("llm backend {backend} unreachable: {detail}")]
    Connect {
        /// The backend's name.
        backend: String,
        /// What the transport said.
        detail: String,
    },
    /// The backend did not answer within the configured time.
    #[error("llm backend {backend} timed out after {after:?}")]
    Timeout {
        /// The backend's name.
        backend: String,
        /// The limit that was hit.
        after: Duration,
    },
    /// The caller's deadline ended the call (or left no time to make it): the caller's limit, not the backend's
    /// failure, so it never counts against the backend's circuit.
    #[error("deadline exceeded waiting for llm backend {backend} after {after:?}")]
    DeadlineExceeded {
        /// The backend's name.
        backend: String,
        /// How long the call had run (zero when it was not made).
        after: Duration,
    },
    /// The backend's reply (a whole body, all of a stream) went over `max_response_bytes`.
    #[error("llm backend {backend} reply larger than {limit} bytes")]
    TooLarge {
        /// The backend's name.
        backend: String,
        /// The configured cap.
        limit: usize,
    },
    /// The backend refused for rate limiting (HTTP 429).
    #[error("llm backend {backend} is rate limiting (retry after {retry_after:?})")]
    RateLimited {
        /// The backend's name.
        backend: String,
        /// `Retry-After`, when the backend sent one.
        retry_after: Option<Duration>,
    },
    /// The backend answered with an HTTP error status (other than 429).
    /// The body is kept for a debugger, never shown: an upstream error may echo the prompt.
    #[error("llm backend {backend} answered HTTP {status}")]
    Upstream {
        /// The backend's name.
        backend: String,
        /// The HTTP status code.
        status: u16,
        /// The start of the response body.
        body: String,
    },
    /// The backend's circuit breaker is open: recent calls failed, so this one was not attempted.
    #[error("llm backend {backend} circuit open after repeated failures; retry in {retry_in:?}")]
    CircuitOpen {
        /// The backend's name.
        backend: String,
        /// Time until the breaker lets a probe through.
        retry_in: Duration,
    },
    /// The backend is at its concurrency limit and its wait queue is full.
    #[error("llm backend {backend} overloaded: {in_flight} in flight and {queued} queued")]
    Overloaded {
        /// The backend's name.
        backend: String,
        /// Requests in flight (the limit).
        in_flight: usize,
        /// Requests waiting (the queue bound).
        queued: usize,
    },
    /// The backend's answer could not be understood (bad JSON, broken stream, an error event).
    #[error("llm backend {backend} protocol error: {detail}")]
    Protocol {
        /// The backend's name.
        backend: String,
        /// What was wrong.
        detail: String,
    },
}

impl LlmError {
    /// The backend this error is about.
    pub fn backend(&self) -> &str {
        match self {
            Self::Connect { backend, .. }
            | Self::Timeout { backend, .. }
            | Self::DeadlineExceeded { backend, .. }
            | Self::TooLarge { backend, .. }
            | Self::RateLimited { backend, .. }
            | Self::Upstream { backend, .. }
            | Self::CircuitOpen { backend, .. }
            | Self::Overloaded { backend, .. }
            | Self::Protocol { backend, .. } => backend,
        }
    }

    /// Whether another attempt could succeed: connect errors, the backend's timeouts, 429 and 502/503/504.
    /// Other statuses, protocol errors, an oversized reply, the caller's deadline, an open circuit and local
    /// overload are not retried.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Connect { .. } | Self::Timeout { .. } | Self::RateLimited { .. } => true,
            Self::Upstream { status, .. } => matches!(status, 502..=504),
            Self::DeadlineExceeded { .. }
            | Self::TooLarge { .. }
            | Self::CircuitOpen { .. }
            | Self::Overloaded { .. }
            | Self::Protocol { .. } => false,
        }
    }

    /// Whether this failure says the backend is unhealthy (counts against its circuit breaker): connect errors,
    /// its configured timeouts, 429, 5xx and protocol errors. The caller's deadline, client-side refusals
    /// (overload, open circuit), an oversized reply (the request asked for too much) and 4xx answers other
    /// than 429 do not.
    pub fn is_backend_failure(&self) -> bool {
        match self {
            Self::Connect { .. } | Self::Timeout { .. } | Self::RateLimited { .. } | Self::Protocol { .. } => true,
            Self::Upstream { status, .. } => *status >= 500,
            Self::DeadlineExceeded { .. }
            | Self::TooLarge { .. }
            | Self::CircuitOpen { .. }
            | Self::Overloaded { .. } => false,
        }
    }

    /// How long the caller should wait before trying again, when the error says: an open circuit's remaining
    /// time, or a rate limit's `Retry-After`.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::CircuitOpen { retry_in, .. } => Some(*retry_in),
            Self::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// A stable, lowercase name of the error kind (for logs, metrics, `error.type`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Connect { .. } => "connect",
            Self::Timeout { .. } => "timeout",
            Self::DeadlineExceeded { .. } => "deadline_exceeded",
            Self::TooLarge { .. } => "response_too_large",
            Self::RateLimited { .. } => "rate_limited",
            Self::Upstream { status, .. } if *status >= 500 => "upstream_5xx",
            Self::Upstream { .. } => "upstream_4xx",
            Self::CircuitOpen { .. } => "circuit_open",
            Self::Overloaded { .. } => "overloaded",
            Self::Protocol { .. } => "protocol",
        }
    }

    /// Classifies a transport error from reqwest.
    pub(crate) fn from_transport(backend: &str, error: &reqwest::Error, timeout: Duration) -> Self {
        if error.is_timeout() {
            Self::Timeout {
                backend: backend.to_owned(),
                after: timeout,
            }
        } else if error.is_connect() {
            Self::Connect {
                backend: backend.to_owned(),
                detail: error_chain(error),
            }
        } else {
            Self::Protocol {
                backend: backend.to_owned(),
                detail: error_chain(error),
            }
        }
    }
}

/// An error and its sources on one line (a transport error's own text is often only "error sending request").
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}
