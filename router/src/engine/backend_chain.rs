//! The LLM leg: walking a target's backend chain, failing open as the target says, and accounting for usage and
//! cost.

use llm::{ChatCompletion, ChatRequest, GuardedBackend, LlmError};
use opentelemetry::KeyValue;
use tokio::time::Instant;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::{BackendState, Engine, Generation};
use crate::error::RouterError;
use crate::policy::{OnUnavailable, Target};
use crate::telemetry::names::{EVENT_FALLBACK, FALLBACK_FROM, FALLBACK_TO, ROUTE_DEGRADED};

/// A target that could not get an LLM answer but fails open.
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
            let elapsed = started.elapsed().as_secs_f64();
            let mut attributes = llm_attributes(name, backend.model());
            match result {
                Ok(value) => {
                    if C::STREAMING {
                        self.metrics.llm_first_token.record(elapsed, &attributes[2..]);
                    } else {
                        self.metrics.llm_duration.record(elapsed, &attributes);
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
                    attributes.push(KeyValue::new("error.type", error.kind()));
                    self.metrics.llm_duration.record(elapsed, &attributes);
                    tracing::warn!(backend = %name, kind = error.kind(), attempts = report.attempts, "llm backend failed");
                    failed.push(name.clone());
                    last = Some(error);
                    if deadline.is_some_and(|at| Instant::now() >= at) {
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
        last.map(Err)
            .ok_or_else(|| RouterError::Policy(crate::policy::PolicyError::UnknownTarget(target.name.clone())))
    }

    /// Every backend failed: a target that fails open answers with its score or its refusal; otherwise the last
    /// error reaches the caller.
    pub(super) fn degrade(&self, target: &Target, scored: bool, last: LlmError) -> Result<Degraded, RouterError> {
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

    /// Fills in usage (estimated at ~4 characters a token when the backend sent none), prices it, and adds the
    /// cost to the target's running total.
    pub(super) fn account(
        &self,
        target: &Target,
        backend: &str,
        request: &ChatRequest,
        mut completion: ChatCompletion,
        attempts: u32,
        failed_backends: Vec<String>,
    ) -> Generation {
        let usage_estimated = completion.usage.is_none();
        let usage = *completion.usage.get_or_insert_with(|| llm::Usage {
            input_tokens: estimate_tokens(request.prompt_chars()),
            output_tokens: estimate_tokens(completion.text.chars().count()),
        });
        let cost = self
            .prices
            .get(backend)
            .copied()
            .unwrap_or_default()
            .cost(usage.input_tokens, usage.output_tokens);
        self.record_usage(&target.name, backend, usage, cost);
        Generation {
            backend: backend.to_owned(),
            completion,
            attempts,
            failed_backends,
            cost,
            usage_estimated,
        }
    }

    /// Records a call's tokens and cost (the cost counter is the per-target running total).
    pub fn record_usage(&self, target: &str, backend: &str, usage: llm::Usage, cost: f64) {
        let backend = KeyValue::new("switchyard.backend", backend.to_owned());
        for (kind, tokens) in [("input", usage.input_tokens), ("output", usage.output_tokens)] {
            self.metrics.llm_tokens.record(
                u64::from(tokens),
                &[KeyValue::new("gen_ai.token.type", kind), backend.clone()],
            );
        }
        self.metrics
            .llm_cost
            .add(cost, &[KeyValue::new("switchyard.target", target.to_owned())]);
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

/// `gen_ai.operation.name`, `gen_ai.request.model`, then `switchyard.backend` (the last alone labels per-backend
/// measurements that are not operations).
pub fn llm_attributes(backend: &str, model: &str) -> Vec<KeyValue> {
    vec![
        KeyValue::new("gen_ai.operation.name", "chat"),
        KeyValue::new("gen_ai.request.model", model.to_owned()),
        KeyValue::new("switchyard.backend", backend.to_owned()),
    ]
}

/// Tokens for `chars` characters when the backend reports none (about four characters a token in English).
pub fn estimate_tokens(chars: usize) -> u32 {
    u32::try_from(chars.div_ceil(4)).unwrap_or(u32::MAX)
}
