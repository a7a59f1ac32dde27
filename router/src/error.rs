//! The router's errors: [`RouterError`] for requests, [`LoadError`] for start-up, and the one place a request
//! error becomes a gRPC status ([`RouterError::code`] and `From<RouterError> for Status`).
//!
//! A status keeps its human message and carries rich details (`google.rpc` via `tonic-types`) so clients can act
//! without parsing text: `ErrorInfo` always (a stable `reason`, domain `switchyard`, the backend or model as
//! metadata), `BadRequest` with one field violation per bad field, `RetryInfo` when waiting helps (rate limited,
//! circuit open, overloaded).

use std::collections::HashMap;
use std::time::Duration;

use classical::ClassicalError;
use classical::schema::FieldError;
use llm::LlmError;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

use crate::policy::{PolicyError, PolicyFileError, PromptError};
use crate::remote::RemoteScorerError;

/// `ErrorInfo.domain` of every Switchyard status.
pub const ERROR_DOMAIN: &str = "switchyard";

/// How long a caller refused by a full inference queue should wait before trying again.
const OVERLOADED_RETRY: Duration = Duration::from_millis(100);

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    /// A request field is malformed or out of bounds.
    #[error("{field}: {reason}")]
    InvalidArgument {
        /// The field (`text`, `features.tenure`, `temperature`, ...).
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// A target's prompt could not be made (a template failed, or the prompt is over its limit).
    #[error(transparent)]
    Prompt(#[from] PromptError),
    /// The models are still loading.
    #[error("not ready: the models are still loading")]
    NotReady,
    /// An Open Inference Protocol call names a model (or version) this gateway does not serve.
    #[error("unknown model {name:?} version {version:?}: served are {served}")]
    UnknownModel {
        /// The name asked for.
        name: String,
        /// The version asked for (empty: any).
        version: String,
        /// What is served, as `name (version)` pairs.
        served: String,
    },
    /// The tenant is over one of its quotas.
    #[error(transparent)]
    Quota(#[from] crate::quota::QuotaError),
    /// The authenticated caller may not do this (a body naming another tenant, `Explain` not allowed).
    #[error("not permitted: {0}")]
    NotPermitted(&'static str),
    /// The policy refused (a forced target it does not allow).
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// A target names a backend (or remote scorer) the engine does not have (the policy is checked against
    /// them at load, so this is a bug, not a request error).
    #[error("target {target} names backend {backend}, which is not configured")]
    MissingBackend {
        /// The target.
        target: String,
        /// The backend it names.
        backend: String,
    },
    /// The classifier or scorer failed, or the inference queue is full.
    #[error(transparent)]
    Classical(#[from] ClassicalError),
    /// An LLM backend failed.
    #[error(transparent)]
    Llm(#[from] LlmError),
    /// A remote scorer failed.
    #[error(transparent)]
    Remote(#[from] RemoteScorerError),
    /// The call was not answered by its deadline (the caller's, or the server's `request_timeout`).
    #[error("deadline exceeded: no answer within {after:?} ({})", set_by.describe())]
    DeadlineExceeded {
        /// How long the call had.
        after: Duration,
        /// Whose deadline it was.
        set_by: DeadlineSetter,
    },
    /// Refused before any work: the call would exceed a concurrency limit.
    #[error("overloaded: more than {capacity} calls in flight on this {limit}; try again shortly")]
    Shed {
        /// `connection` (`concurrency_per_connection`).
        limit: &'static str,
        /// The limit.
        capacity: usize,
    },
    /// A shadow target did not answer within its time limit.
    #[error("shadow target {target} did not answer within {after:?}")]
    ShadowTimedOut {
        /// The shadow target.
        target: String,
        /// The limit.
        after: Duration,
    },
}

/// Whose deadline a call exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadlineSetter {
    /// The caller's `grpc-timeout`.
    Caller,
    /// The server's `request_timeout`.
    Server,
}

impl DeadlineSetter {
    fn describe(self) -> &'static str {
        match self {
            Self::Caller => "the caller's grpc-timeout",
            Self::Server => "the server's request_timeout",
        }
    }
}

/// Why the gateway could not start: models, policy or backends.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The ONNX Runtime or a model could not be loaded.
    #[error(transparent)]
    Models(#[from] ClassicalError),
    /// The policy file is invalid.
    #[error(transparent)]
    Policy(#[from] PolicyFileError),
    /// A backend's HTTP client could not be built.
    #[error(transparent)]
    Backend(#[from] LlmError),
    /// The model set a config names cannot serve: a source does not resolve, a model's metadata contradicts its
    /// version directory, or a reload's step failed.
    #[error("models: {file}: {reason}")]
    ModelSet {
        /// The file at fault (the config, or a model).
        file: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A remote scorer's endpoint is unusable, or its model does not take the scorer's schema.
    #[error(transparent)]
    Remote(#[from] RemoteScorerError),
}

impl RouterError {
    /// An invalid-argument error.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The one table: this error's gRPC code and its stable kind (`error.type` on spans, `ErrorInfo.reason`
    /// upper-cased, the shadow outcome label).
    pub fn classify(&self) -> (Code, &'static str) {
        match self {
            Self::InvalidArgument { .. } => (Code::InvalidArgument, "invalid_argument"),
            Self::Prompt(PromptError::TooLong { .. }) => (Code::InvalidArgument, "prompt_too_long"),
            Self::Prompt(PromptError::Render { .. }) => (Code::Internal, "prompt"),
            Self::NotReady => (Code::Unavailable, "not_ready"),
            Self::UnknownModel { .. } => (Code::NotFound, "unknown_model"),
            Self::NotPermitted(_) => (Code::PermissionDenied, "not_permitted"),
            Self::Quota(e) => (Code::ResourceExhausted, e.kind()),
            Self::Policy(PolicyError::ForceNotAllowed { .. }) => (Code::PermissionDenied, "force_not_allowed"),
            Self::Policy(PolicyError::UnknownTarget(_)) => (Code::Internal, "unknown_target"),
            Self::MissingBackend { .. } => (Code::Internal, "missing_backend"),
            Self::Classical(ClassicalError::InvalidFeatures(_)) => (Code::InvalidArgument, "invalid_features"),
            Self::Classical(ClassicalError::Overloaded { .. }) => (Code::ResourceExhausted, "overloaded"),
            Self::Classical(
                ClassicalError::Runtime { .. }
                | ClassicalError::ModelLoad { .. }
                | ClassicalError::Metadata { .. }
                | ClassicalError::Profile { .. }
                | ClassicalError::Inference { .. },
            ) => (Code::Internal, "inference"),
            Self::ShadowTimedOut { .. } => (Code::DeadlineExceeded, "timeout"),
            Self::DeadlineExceeded { .. } => (Code::DeadlineExceeded, "deadline_exceeded"),
            Self::Shed { .. } => (Code::ResourceExhausted, "shed"),
            Self::Llm(e) => (llm_code(e), e.kind()),
            Self::Remote(RemoteScorerError::Unavailable { .. } | RemoteScorerError::Mismatch { .. }) => {
                (Code::Unavailable, "scorer_unavailable")
            }
            Self::Remote(RemoteScorerError::CircuitOpen { .. }) => (Code::Unavailable, "circuit_open"),
            Self::Remote(RemoteScorerError::Timeout { .. }) => (Code::DeadlineExceeded, "timeout"),
            Self::Remote(RemoteScorerError::BadAnswer { .. }) => (Code::Internal, "scorer_bad_answer"),
        }
    }

    /// The gRPC code for this error.
    pub fn code(&self) -> Code {
        self.classify().0
    }

    /// A short, stable name for the failure (the LLM ones are `LlmError::kind`).
    pub fn kind(&self) -> &'static str {
        self.classify().1
    }

    /// The bad fields, one violation each.
    fn violations(&self) -> Vec<FieldViolation> {
        match self {
            Self::InvalidArgument { field, reason } => vec![FieldViolation::new(field, reason)],
            Self::Prompt(error @ PromptError::TooLong { .. }) => vec![FieldViolation::new("text", error.to_string())],
            Self::Classical(ClassicalError::InvalidFeatures(fields)) => fields
                .iter()
                .map(|f| FieldViolation::new(format!("features.{}", f.field), &f.reason))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// How long to wait before trying again, where waiting helps.
    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Llm(e @ LlmError::CircuitOpen { .. }) => e.retry_after(),
            Self::Llm(e @ LlmError::RateLimited { .. }) => Some(e.retry_after().unwrap_or(Duration::from_secs(1))),
            Self::Llm(LlmError::Overloaded { .. })
            | Self::Classical(ClassicalError::Overloaded { .. })
            | Self::Shed { .. } => Some(OVERLOADED_RETRY),
            Self::Quota(e) => Some(e.retry_after()),
            Self::Remote(RemoteScorerError::CircuitOpen { retry_after, .. }) => Some(*retry_after),
            _ => None,
        }
    }

    /// What the error is about, for `ErrorInfo.metadata`.
    fn subject(&self) -> HashMap<String, String> {
        let mut metadata = HashMap::new();
        match self {
            Self::Llm(e) => {
                metadata.insert("backend".to_owned(), e.backend().to_owned());
            }
            Self::Remote(
                RemoteScorerError::Unavailable { scorer, .. }
                | RemoteScorerError::CircuitOpen { scorer, .. }
                | RemoteScorerError::Timeout { scorer, .. }
                | RemoteScorerError::BadAnswer { scorer, .. }
                | RemoteScorerError::Mismatch { scorer, .. },
            ) => {
                metadata.insert("scorer".to_owned(), scorer.clone());
            }
            Self::MissingBackend { target, backend } => {
                metadata.insert("target".to_owned(), target.clone());
                metadata.insert("backend".to_owned(), backend.clone());
            }
            Self::Prompt(PromptError::Render { target, .. } | PromptError::TooLong { target, .. })
            | Self::ShadowTimedOut { target, .. }
            | Self::Policy(PolicyError::ForceNotAllowed { target, .. } | PolicyError::UnknownTarget(target)) => {
                metadata.insert("target".to_owned(), target.clone());
            }
            Self::Classical(ClassicalError::InvalidFeatures(_)) => {
                metadata.insert("model".to_owned(), "scorer".to_owned());
            }
            Self::Classical(ClassicalError::Overloaded { capacity }) => {
                metadata.insert("queue_capacity".to_owned(), capacity.to_string());
            }
            Self::Shed { limit, capacity } => {
                metadata.insert("limit".to_owned(), (*limit).to_owned());
                metadata.insert("capacity".to_owned(), capacity.to_string());
            }
            Self::DeadlineExceeded { set_by, .. } => {
                let by = match set_by {
                    DeadlineSetter::Caller => "caller",
                    DeadlineSetter::Server => "server",
                };
                metadata.insert("set_by".to_owned(), by.to_owned());
            }
            _ => {}
        }
        metadata
    }
}

/// The gRPC code of an LLM failure.
fn llm_code(error: &LlmError) -> Code {
    match error {
        LlmError::Timeout { .. } | LlmError::DeadlineExceeded { .. } => Code::DeadlineExceeded,
        LlmError::Connect { .. }
        | LlmError::RateLimited { .. }
        | LlmError::Protocol { .. }
        | LlmError::TooLarge { .. }
        | LlmError::CircuitOpen { .. } => Code::Unavailable,
        LlmError::Overloaded { .. } => Code::ResourceExhausted,
        LlmError::Upstream { status, .. } if *status >= 500 => Code::Unavailable,
        LlmError::Upstream { .. } => Code::Internal,
    }
}

impl From<RouterError> for Status {
    fn from(error: RouterError) -> Self {
        let (code, kind) = error.classify();
        let message = match &error {
            // Name every bad field, each under `features.`.
            RouterError::Classical(ClassicalError::InvalidFeatures(fields)) => {
                let named: Vec<FieldError> = fields
                    .iter()
                    .map(|f| FieldError {
                        field: format!("features.{}", f.field),
                        reason: f.reason.clone(),
                    })
                    .collect();
                format!("invalid features: {}", FieldError::join(&named))
            }
            other => other.to_string(),
        };
        let mut details = ErrorDetails::new();
        details.set_error_info(kind.to_ascii_uppercase(), ERROR_DOMAIN, error.subject());
        let violations = error.violations();
        if !violations.is_empty() {
            details.set_bad_request(violations);
        }
        if let Some(delay) = error.retry_after() {
            details.set_retry_info(Some(delay));
        }
        Status::with_error_details(code, message, details)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn every_failure_maps_to_its_status_and_names_the_culprit() {
        let llm = |e: LlmError| Status::from(RouterError::Llm(e));
        let connect = llm(LlmError::Connect {
            backend: "local".into(),
            detail: "refused".into(),
        });
        assert_eq!(connect.code(), Code::Unavailable);
        assert!(connect.message().contains("local"));
        let info = connect.get_details_error_info().unwrap();
        assert_eq!((info.reason.as_str(), info.domain.as_str()), ("CONNECT", ERROR_DOMAIN));
        assert_eq!(info.metadata["backend"], "local");
        let timeout = llm(LlmError::Timeout {
            backend: "local".into(),
            after: Duration::from_secs(1),
        });
        assert_eq!(timeout.code(), Code::DeadlineExceeded);
        let callers = llm(LlmError::DeadlineExceeded {
            backend: "local".into(),
            after: Duration::ZERO,
        });
        assert_eq!(callers.code(), Code::DeadlineExceeded);
        let upstream = llm(LlmError::Upstream {
            backend: "b".into(),
            status: 503,
            body: String::new(),
        });
        assert_eq!(upstream.code(), Code::Unavailable);
        let big = llm(LlmError::TooLarge {
            backend: "b".into(),
            limit: 10,
        });
        assert_eq!(big.code(), Code::Unavailable);
        let features = Status::from(RouterError::Classical(ClassicalError::InvalidFeatures(vec![
            FieldError {
                field: "tenure".into(),
                reason: "missing".into(),
            },
            FieldError {
                field: "contract".into(),
                reason: "unknown category".into(),
            },
        ])));
        assert_eq!(features.code(), Code::InvalidArgument);
        assert!(
            features.message().contains("features.tenure: missing"),
            "{}",
            features.message()
        );
        let fields: Vec<String> = features
            .get_details_bad_request()
            .unwrap()
            .field_violations
            .into_iter()
            .map(|v| v.field)
            .collect();
        assert_eq!(fields, ["features.tenure", "features.contract"]);
        let full = Status::from(RouterError::Classical(ClassicalError::Overloaded { capacity: 4 }));
        assert_eq!(full.code(), Code::ResourceExhausted);
        assert!(full.get_details_retry_info().is_some());
        let forced = Status::from(RouterError::Policy(PolicyError::ForceNotAllowed {
            target: "x".into(),
            tenant: "t".into(),
        }));
        assert_eq!(forced.code(), Code::PermissionDenied);
        let missing = Status::from(RouterError::MissingBackend {
            target: "t".into(),
            backend: "gone".into(),
        });
        assert_eq!(missing.code(), Code::Internal);
        assert!(missing.message().contains("backend gone"), "{}", missing.message());
    }

    #[test]
    fn waiting_helps_only_where_retry_info_says_so() {
        let open = Status::from(RouterError::Llm(LlmError::CircuitOpen {
            backend: "local".into(),
            retry_in: Duration::from_secs(7),
        }));
        assert_eq!(
            open.get_details_retry_info().unwrap().retry_delay,
            Some(Duration::from_secs(7))
        );
        let limited = Status::from(RouterError::Llm(LlmError::RateLimited {
            backend: "local".into(),
            retry_after: Some(Duration::from_secs(3)),
        }));
        assert_eq!(
            limited.get_details_retry_info().unwrap().retry_delay,
            Some(Duration::from_secs(3))
        );
        let invalid = Status::from(RouterError::invalid("temperature", "3 is outside [0, 2]"));
        assert!(invalid.get_details_retry_info().is_none());
        assert_eq!(
            invalid.get_details_bad_request().unwrap().field_violations[0].field,
            "temperature"
        );
    }
}
