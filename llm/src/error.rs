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
    /// The backend refused for rate limiting (HTTP 429).
    #[error("llm backend {backend} is rate limiting (retry after {retry_after:?})")]
    RateLimited {
        /// The backend's name.
        backend: String,
        /// `Retry-After`, when the backend sent one.
        retry_after: Option<Duration>,
    },
    /// The backend answered with an HTTP error status (other than 429).
    #[error("llm backend {backend} answered HTTP {status}: {body}")]
    Upstream {
        /// The backend's name.
        backend: String,
        /// The HTTP status code.
        status: u16,
        /// The start of the response body.
        body: String,
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
            | Self::RateLimited { backend, .. }
            | Self::Upstream { backend, .. }
            | Self::Protocol { backend, .. } => backend,
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
                detail: chain(error),
            }
        } else {
            Self::Protocol {
                backend: backend.to_owned(),
                detail: chain(error),
            }
        }
    }
}

/// An error and its sources, one line.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}
