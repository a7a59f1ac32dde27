//! The LLM leg: walking a target's backend chain and failing open as the target says.

use llm::{ChatCompletion, ChatRequest, GuardedBackend, LlmError};
use opentelemetry::KeyValue;
use tokio::time::Instant;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::{BackendState, Engine};
use crate::error::RouterError;
use crate::policy::{OnUnavailable, Target};
use crate::telemetry::names::{EVENT_FALLBACK, FALLBACK_FROM, FALLBACK_TO, ROUTE_DEGRADED};

/// A target that could not get an LLM answer but fails open.
#[derive(Debug)]
pub(super) struct Degraded {
    pub(super) reason: String,
    pub(super) rejection: Option<String>,
}

/// One call of one backend: what a request's LLM leg asks of each backend in its chain.
pub(super) trait BackendCall {
    /// What the backend gives back.
    type Output;

    /// Whether the call ends at the first event of a stream (its duration is then the time to first token)
    /// rather than with the whole answer.
    const STREAMING: bool;

    /// Sends `request` to `backend`, retrying within its guard until `deadline`.
    fn call<'a>(
        &self,
        backend: &'a GuardedBackend,
        request: &'a ChatRequest,
        deadline: Option<Instant>,
    ) -> impl Future<Output = (Result<Self::Output, LlmError>, llm::CallReport)> + Send + 'a;
}

/// The whole completion.
pub(super) struct Complete;

impl BackendCall for Complete {
    type Output = ChatCompletion;
    const STREAMING: bool = false;

    fn call<'a>(
        &self,
        backend: &'a GuardedBackend,
        request: &'a ChatRequest,
        deadline: Option<Instant>,
    ) -> impl Future<Output = (Result<ChatCompletion, LlmError>, llm::CallReport)> + Send + 'a {
        backend.complete(request, deadline)
    }
}

/// The stream, open once its first event arrived.
pub(super) struct Stream;

impl BackendCall for Stream {
    type Output = llm::OpenStream;
    const STREAMING: bool = true;

    fn call<'a>(
        &self,
        backend: &'a GuardedBackend,
        request: &'a ChatRequest,
        deadline: Option<Instant>,
    ) -> impl Future<Output = (Result<llm::OpenStream, LlmError>, llm::CallReport)> + Send + 'a {
        backend.stream(request, deadline)
    }
}

/// The first answer of a backend chain.
pub(super) struct Answer<T> {
    pub(super) backend: String,
    pub(super) value: T,
    pub(super) attempts: u32,
    pub(super) failed: Vec<String>,
    pub(super) started: Instant,
}

impl Engine {
    /// Walks the target's backend chain (primary, then fallbacks) until one answers, the chain ends, or the
    /// caller's deadline passes. `Ok(Err(last))` carries the last backend's error when none answered.
    /// `call` sends `request` to one backend.
    pub(super) async fn first_answer<C: BackendCall>(
        &self,
        target: &Target,
        request: &ChatRequest,
        deadline: Option<Instant>,
        call: C,
    ) -> Result<Result<Answer<C::Output>, LlmError>, RouterError> {
        let mut failed = Vec::new();
        let mut last = None;
        for name in &target.backends {
            let backend = self.backend(target, name)?;
            let started = Instant::now();
            let (result, report) = call.call(backend, request, deadline).await;
            match result {
                Ok(value) => {
                    let labels = self.llm_labels(name);
                    if C::STREAMING {
                        self.metrics.first_chunk(&labels, started.elapsed());
                    } else {
                        self.metrics.llm_call(&labels, started.elapsed(), None);
                    }
                    return Ok(Ok(Answer {
                        backend: name.clone(),
                        value,
                        attempts: report.attempts,
                        failed,
                        started,
                    }));
                }
                Err(error) => {
                    self.metrics
                        .llm_call(&self.llm_labels(name), started.elapsed(), Some(error.kind()));
                    tracing::warn!(backend = %name, kind = error.kind(), attempts = report.attempts, "llm backend failed");
                    failed.push(name.clone());
                    let out_of_time = matches!(error, LlmError::DeadlineExceeded { .. })
                        || deadline.is_some_and(|at| Instant::now() >= at);
                    last = Some(error);
                    // No time left: the next backend would not be called anyway.
                    if out_of_time {
                        break;
                    }
                    if let Some(next) = target.backends.iter().skip_while(|b| *b != name).nth(1) {
                        tracing::Span::current().add_event(
                            EVENT_FALLBACK,
                            vec![
                                KeyValue::new(FALLBACK_FROM, name.clone()),
                                KeyValue::new(FALLBACK_TO, next.clone()),
                            ],
                        );
                    }
                }
            }
        }
        last.map(Err).ok_or_else(|| RouterError::MissingBackend {
            target: target.name.clone(),
            backend: "(none)".to_owned(),
        })
    }

    pub(super) fn backend_states(&self, target: &Target) -> Vec<BackendState> {
        target
            .backends
            .iter()
            .filter_map(|name| {
                self.backends.get(name).map(|b| BackendState {
                    name: name.clone(),
                    circuit: b.circuit().as_str(),
                })
            })
            .collect()
    }
}

/// Every backend failed: a target that fails open answers with its score or its refusal; otherwise the last
/// error reaches the caller.
pub(super) fn degrade(target: &Target, scored: bool, last: LlmError) -> Result<Degraded, RouterError> {
    let degraded = match &target.on_unavailable {
        OnUnavailable::ScoreOnly if scored => Degraded {
            reason: format!("no LLM answer ({last}); score only"),
            rejection: None,
        },
        OnUnavailable::Reject(message) => Degraded {
            reason: format!("no LLM answer ({last}); refused"),
            rejection: Some(message.clone()),
        },
        OnUnavailable::ScoreOnly | OnUnavailable::Error => return Err(last.into()),
    };
    tracing::Span::current().set_attribute(ROUTE_DEGRADED, degraded.reason.clone());
    Ok(degraded)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::policy::TargetKind;

    fn target(on_unavailable: OnUnavailable) -> Target {
        Target {
            name: "explain".into(),
            kind: TargetKind::Hybrid,
            backends: vec!["local".into()],
            scorer: None,
            on_unavailable,
            system_prompt: String::new(),
            user_prompt: String::new(),
            retry_prompt: String::new(),
            max_prompt_chars: 100,
            max_tokens: 10,
            temperature: None,
            message: String::new(),
        }
    }

    fn down() -> LlmError {
        LlmError::Connect {
            backend: "local".into(),
            detail: "refused".into(),
        }
    }

    #[test]
    fn a_target_fails_open_only_as_it_says() {
        let score_only = target(OnUnavailable::ScoreOnly);
        let degraded = degrade(&score_only, true, down()).unwrap();
        assert!(degraded.rejection.is_none());
        assert!(degraded.reason.contains("llm backend local unreachable") && degraded.reason.ends_with("score only"));
        // Score only without a score is no answer at all: the error.
        let error = degrade(&score_only, false, down()).unwrap_err();
        assert_eq!(error.code(), tonic::Code::Unavailable);

        let refusing = target(OnUnavailable::Reject("later".into()));
        assert_eq!(
            degrade(&refusing, false, down()).unwrap().rejection.as_deref(),
            Some("later")
        );

        let strict = target(OnUnavailable::Error);
        assert!(matches!(
            degrade(&strict, true, down()),
            Err(RouterError::Llm(LlmError::Connect { .. }))
        ));
    }
}
