//! The router's one error type, and the one place errors become gRPC statuses.

use classical::ClassicalError;
use classical::schema::FieldError;
use llm::LlmError;
use tonic::{Code, Status};

use crate::policy::PolicyError;

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
    /// A target's prompt template failed to render.
    #[error("prompt of target {target} failed to render: {reason}")]
    Prompt {
        /// The target.
        target: String,
        /// What failed.
        reason: String,
    },
    /// The models are still loading.
    #[error("not ready: the models are still loading")]
    NotReady,
    /// The policy refused (a forced target it does not allow).
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The classifier or scorer failed, or the inference queue is full.
    #[error(transparent)]
    Classical(#[from] ClassicalError),
    /// An LLM backend failed.
    #[error(transparent)]
    Llm(#[from] LlmError),
    /// The policy file is invalid (at start-up; reloads keep the running policy instead).
    #[error(transparent)]
    PolicyFile(#[from] crate::policy::PolicyFileError),
}

impl RouterError {
    /// An invalid-argument error.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// A short name for the failure, for `error.type` on spans (the LLM ones are `LlmError::kind`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::InvalidArgument { .. } => "invalid_argument",
            Self::Prompt { .. } => "prompt",
            Self::NotReady => "not_ready",
            Self::Policy(PolicyError::ForceNotAllowed { .. }) => "force_not_allowed",
            Self::Policy(PolicyError::UnknownTarget(_)) => "unknown_target",
            Self::Classical(ClassicalError::InvalidFeatures(_)) => "invalid_features",
            Self::Classical(ClassicalError::Overloaded { .. }) => "overloaded",
            Self::Classical(_) => "inference",
            Self::Llm(e) => e.kind(),
            Self::PolicyFile(_) => "policy_file",
        }
    }

    /// The gRPC code for this error.
    pub fn code(&self) -> Code {
        match self {
            Self::InvalidArgument { .. } => Code::InvalidArgument,
            Self::NotReady => Code::Unavailable,
            Self::Prompt { .. } | Self::PolicyFile(_) => Code::Internal,
            Self::Policy(PolicyError::ForceNotAllowed { .. }) => Code::PermissionDenied,
            Self::Policy(PolicyError::UnknownTarget(_)) => Code::Internal,
            Self::Classical(e) => match e {
                ClassicalError::InvalidFeatures(_) => Code::InvalidArgument,
                ClassicalError::Overloaded { .. } => Code::ResourceExhausted,
                ClassicalError::Runtime { .. }
                | ClassicalError::ModelLoad { .. }
                | ClassicalError::Metadata { .. }
                | ClassicalError::Inference { .. } => Code::Internal,
            },
            Self::Llm(e) => match e {
                LlmError::Timeout { .. } => Code::DeadlineExceeded,
                LlmError::Connect { .. }
                | LlmError::RateLimited { .. }
                | LlmError::Protocol { .. }
                | LlmError::CircuitOpen { .. } => Code::Unavailable,
                LlmError::Overloaded { .. } => Code::ResourceExhausted,
                LlmError::Upstream { status, .. } if *status >= 500 => Code::Unavailable,
                LlmError::Upstream { .. } => Code::Internal,
            },
        }
    }
}

impl From<RouterError> for Status {
    fn from(error: RouterError) -> Self {
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
        Status::new(error.code(), message)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

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
        let timeout = llm(LlmError::Timeout {
            backend: "local".into(),
            after: Duration::from_secs(1),
        });
        assert_eq!(timeout.code(), Code::DeadlineExceeded);
        let upstream = llm(LlmError::Upstream {
            backend: "b".into(),
            status: 503,
            body: String::new(),
        });
        assert_eq!(upstream.code(), Code::Unavailable);
        let features = Status::from(RouterError::Classical(ClassicalError::InvalidFeatures(vec![
            FieldError {
                field: "tenure".into(),
                reason: "missing".into(),
            },
        ])));
        assert_eq!(features.code(), Code::InvalidArgument);
        assert!(
            features.message().contains("features.tenure: missing"),
            "{}",
            features.message()
        );
        let full = Status::from(RouterError::Classical(ClassicalError::Overloaded { capacity: 4 }));
        assert_eq!(full.code(), Code::ResourceExhausted);
        let forced = Status::from(RouterError::Policy(PolicyError::ForceNotAllowed {
            target: "x".into(),
            tenant: "t".into(),
        }));
        assert_eq!(forced.code(), Code::PermissionDenied);
    }
}
