//! One backend behind its guards: a concurrency limit with a bounded wait queue, a circuit breaker, deadlines
//! (the caller's and the time to first token), and retries with exponential backoff, full jitter and a budget.
//!
//! Only the backend's own failures reach its breaker. A call the caller's deadline cuts short (or leaves no time
//! to make) fails with `DeadlineExceeded` and teaches the breaker nothing; a call the caller abandons drops its
//! breaker permit, which releases a half-open probe.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use tracing::Instrument;

use crate::breaker::{BreakerConfig, CircuitBreaker, CircuitState, Verdict};
use crate::telemetry::ChatSpan;
use crate::{ChatBackend, ChatCompletion, ChatRequest, LlmError, StreamEvent};

/// How one backend is guarded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GuardConfig {
    /// Requests in flight at once.
    pub max_concurrent: usize,
    /// Requests that may wait for a slot; beyond it, `Overloaded`.
    pub max_queued: usize,
    /// Limit for the first token (streams) or the response headers (whole answers).
    pub first_token_timeout: Duration,
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    /// First backoff; doubles per retry, capped by `max_backoff`, fully jittered.
    pub base_backoff: Duration,
    /// Largest backoff (and largest honoured `Retry-After`).
    pub max_backoff: Duration,
    /// Retries allowed per successful first attempt, so retries cannot multiply load (e.g. 0.2 = 20 %).
    pub retry_budget_ratio: f64,
    /// Circuit breaker settings.
    pub breaker: BreakerConfig,
}

/// What a guarded call did, whatever its result: for responses, logs and traces.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallReport {
    /// Attempts made (0 when refused before any).
    pub attempts: u32,
}

/// A streamed answer whose first event has arrived.
pub struct OpenStream {
    /// The events, starting with the first one received; holds the concurrency slot until dropped.
    pub events: BoxStream<'static, Result<StreamEvent, LlmError>>,
}

/// Retry tokens: each first attempt deposits `ratio`, each retry withdraws one; capped so a burst of
/// successes cannot bank unlimited retries.
#[derive(Debug)]
struct RetryBudget {
    ratio: f64,
    tokens: Mutex<f64>,
}

const BUDGET_CAP: f64 = 10.0;

impl RetryBudget {
    fn deposit(&self) {
        let mut t = self.tokens.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *t = (*t + self.ratio).min(BUDGET_CAP);
    }

    fn withdraw(&self) -> bool {
        let mut t = self.tokens.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if *t >= 1.0 {
            *t -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A backend with its guards. Share it (`Arc`) across requests: the guards are per backend.
#[derive(Debug)]
pub struct GuardedBackend {
    backend: ChatBackend,
    config: GuardConfig,
    slots: std::sync::Arc<Semaphore>,
    waiting: AtomicUsize,
    breaker: CircuitBreaker,
    budget: RetryBudget,
}

impl GuardedBackend {
    /// Wraps `backend`.
    pub fn new(backend: ChatBackend, config: GuardConfig) -> Self {
        Self {
            backend,
            slots: std::sync::Arc::new(Semaphore::new(config.max_concurrent.max(1))),
            waiting: AtomicUsize::new(0),
            breaker: CircuitBreaker::new(config.breaker),
            budget: RetryBudget {
                ratio: config.retry_budget_ratio,
                tokens: Mutex::new(BUDGET_CAP),
            },
            config,
        }
    }

    /// The backend's name in config.
    pub fn name(&self) -> &str {
        self.backend.name()
    }

    /// The model asked for.
    pub fn model(&self) -> &str {
        self.backend.model()
    }

    /// The provider (`gen_ai.provider.name`), from config.
    pub fn provider(&self) -> &str {
        self.backend.provider()
    }

    /// The base URL's host and port.
    pub fn address(&self) -> (Option<&str>, Option<u16>) {
        self.backend.address()
    }

    /// The circuit breaker's state now.
    pub fn circuit(&self) -> CircuitState {
        self.breaker.state()
    }

    /// A whole answer, within `deadline` (the caller's), with retries, under a `chat {model}` span.
    pub async fn complete(
        &self,
        request: &ChatRequest,
        deadline: Option<Instant>,
    ) -> (Result<ChatCompletion, LlmError>, CallReport) {
        let span = self.backend.chat_span(request, false);
        let call = async {
            let mut report = CallReport::default();
            let _slot = match self.acquire(deadline).await {
                Ok(slot) => slot,
                Err(e) => return (Err(e), report),
            };
            // Whole answers are bounded by the backend's request timeout (in the HTTP client) and the caller's
            // deadline.
            let result = self
                .attempts(deadline, &mut report, None, &span, || self.backend.complete(request))
                .await;
            (result, report)
        };
        let (result, report) = call.instrument(span.span().clone()).await;
        span.attempts(report.attempts);
        match &result {
            Ok(completion) => span.complete(completion),
            Err(error) => span.fail(error),
        }
        (result, report)
    }

    /// A streamed answer, opened within `deadline` with retries until the first event arrives; after that,
    /// failures reach the caller (no retry once text may have been shown). The `chat {model}` span lasts until
    /// the stream ends or is dropped.
    pub async fn stream(
        &self,
        request: &ChatRequest,
        deadline: Option<Instant>,
    ) -> (Result<OpenStream, LlmError>, CallReport) {
        let span = self.backend.chat_span(request, true);
        let call = async {
            let mut report = CallReport::default();
            let slot = match self.acquire(deadline).await {
                Ok(slot) => slot,
                Err(e) => return (Err(e), report),
            };
            let name = self.name().to_owned();
            let first_token = Some(self.config.first_token_timeout);
            let opened = self
                .attempts(deadline, &mut report, first_token, &span, || {
                    let name = name.clone();
                    async move {
                        let mut events = self.backend.stream(request).await?;
                        match events.next().await {
                            Some(Ok(first)) => Ok((first, events)),
                            Some(Err(e)) => Err(e),
                            None => Err(LlmError::Protocol {
                                backend: name,
                                detail: "stream ended before any event".into(),
                            }),
                        }
                    }
                })
                .await;
            (opened.map(|opened| (opened, slot)), report)
        };
        let (opened, report) = call.instrument(span.span().clone()).await;
        span.attempts(report.attempts);
        let result = match opened {
            Ok(((first, rest), slot)) => {
                span.first_token();
                Ok(OpenStream {
                    events: traced(futures::stream::once(async move { Ok(first) }).chain(rest), span, slot),
                })
            }
            Err(error) => {
                span.fail(&error);
                Err(error)
            }
        };
        (result, report)
    }

    async fn acquire(&self, deadline: Option<Instant>) -> Result<OwnedSemaphorePermit, LlmError> {
        let started = Instant::now();
        if deadline.is_some_and(|at| started >= at) {
            return Err(self.deadline_exceeded(Duration::ZERO));
        }
        if let Ok(slot) = self.slots.clone().try_acquire_owned() {
            return Ok(slot);
        }
        let waiting = self.waiting.fetch_add(1, Ordering::SeqCst);
        let _leave = Leave(&self.waiting);
        if waiting >= self.config.max_queued {
            return Err(LlmError::Overloaded {
                backend: self.name().to_owned(),
                in_flight: self.config.max_concurrent,
                queued: self.config.max_queued,
            });
        }
        let acquire = self.slots.clone().acquire_owned();
        let slot = match deadline {
            Some(at) => tokio::time::timeout_at(at, acquire)
                .await
                .map_err(|_| self.deadline_exceeded(started.elapsed()))?,
            None => acquire.await,
        };
        slot.map_err(|_| LlmError::Overloaded {
            backend: self.name().to_owned(),
            in_flight: self.config.max_concurrent,
            queued: self.config.max_queued,
        })
    }

    fn deadline_exceeded(&self, after: Duration) -> LlmError {
        LlmError::DeadlineExceeded {
            backend: self.name().to_owned(),
            after,
        }
    }

    /// Runs `attempt` until it succeeds, fails for good, runs out of attempts, budget or time.
    /// `per_attempt` bounds each attempt (the time to first token for streams): hitting it is the backend's
    /// timeout; hitting the caller's `deadline` first is not.
    async fn attempts<T, F, Fut>(
        &self,
        deadline: Option<Instant>,
        report: &mut CallReport,
        per_attempt: Option<Duration>,
        span: &ChatSpan,
        attempt: F,
    ) -> Result<T, LlmError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, LlmError>>,
    {
        let started = Instant::now();
        let mut backoff = self.config.base_backoff;
        loop {
            let remaining = deadline.map(|at| at.saturating_duration_since(Instant::now()));
            // No time left: the call is not made, and the breaker hears nothing of it.
            if remaining == Some(Duration::ZERO) {
                return Err(self.deadline_exceeded(started.elapsed()));
            }
            let permit = self.breaker.admit().map_err(|retry_in| LlmError::CircuitOpen {
                backend: self.name().to_owned(),
                retry_in,
            })?;
            report.attempts += 1;
            if report.attempts == 1 {
                self.budget.deposit();
            }
            let callers_limit = match (per_attempt, remaining) {
                (Some(own), Some(left)) => left < own,
                (None, Some(_)) => true,
                (_, None) => false,
            };
            let limit = match (per_attempt, remaining) {
                (Some(a), Some(r)) => Some(a.min(r)),
                (a, r) => a.or(r),
            };
            let outcome = match limit {
                None => attempt().await,
                Some(limit) => match tokio::time::timeout(limit, attempt()).await {
                    Ok(result) => result,
                    Err(_) if callers_limit => Err(self.deadline_exceeded(started.elapsed())),
                    Err(_) => Err(LlmError::Timeout {
                        backend: self.name().to_owned(),
                        after: limit,
                    }),
                },
            };
            let error = match outcome {
                Ok(value) => {
                    permit.record(Verdict::Healthy);
                    return Ok(value);
                }
                Err(error) => error,
            };
            permit.record(verdict(&error));
            let out_of_time = deadline.is_some_and(|at| Instant::now() >= at);
            if !error.is_retryable() || out_of_time || report.attempts >= self.config.max_attempts {
                return Err(error);
            }
            let mut delay = jitter(backoff, fastrand::f64());
            if let LlmError::RateLimited {
                retry_after: Some(after),
                ..
            } = &error
            {
                delay = delay.max(*after);
            }
            let delay = delay.min(self.config.max_backoff);
            if deadline.is_some_and(|at| Instant::now() + delay >= at) || !self.budget.withdraw() {
                return Err(error);
            }
            span.retry(report.attempts, &error, delay);
            tracing::debug!(
                backend = self.name(),
                kind = error.kind(),
                ?delay,
                attempt = report.attempts,
                "retrying"
            );
            tokio::time::sleep(delay).await;
            backoff = (backoff * 2).min(self.config.max_backoff);
        }
    }
}

/// What a failed attempt says about the backend: its own failures count; the caller's deadline says nothing;
/// any other answer (a 4xx, an oversized reply) shows it is up.
fn verdict(error: &LlmError) -> Verdict {
    match error {
        LlmError::DeadlineExceeded { .. } => Verdict::Unknown,
        error if error.is_backend_failure() => Verdict::Failed,
        _ => Verdict::Healthy,
    }
}

/// The stream's events, recorded on its span as they pass (response model and id, finish reason, usage,
/// captured output, a failure); the span and the concurrency slot are released when the stream is dropped.
fn traced(
    events: impl futures::Stream<Item = Result<StreamEvent, LlmError>> + Send + 'static,
    span: ChatSpan,
    slot: OwnedSemaphorePermit,
) -> BoxStream<'static, Result<StreamEvent, LlmError>> {
    let mut output = span.capture().map(|_| String::new());
    events
        .map(move |event| {
            let _hold: &OwnedSemaphorePermit = &slot;
            match &event {
                Ok(StreamEvent::Delta(text)) => {
                    if let (Some(output), Some(cap)) = (output.as_mut(), span.capture())
                        && output.len() < cap
                    {
                        output.push_str(text);
                    }
                }
                Ok(StreamEvent::Finish {
                    finish_reason,
                    model,
                    id,
                }) => {
                    span.response(model.as_deref(), id.as_deref(), finish_reason);
                    if let Some(output) = &output {
                        span.output(output, finish_reason);
                    }
                }
                Ok(StreamEvent::Usage(usage)) => span.usage(*usage),
                Err(error) => span.fail(error),
            }
            event
        })
        .boxed()
}

/// Decrements the waiting count when a queued request leaves the queue (served, refused or cancelled).
struct Leave<'a>(&'a AtomicUsize);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Full jitter: `unit` (uniform in [0, 1), from a real random source) of `backoff`, so clients that failed
/// together do not retry together.
fn jitter(backoff: Duration, unit: f64) -> Duration {
    backoff.mul_f64(unit.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn jitter_spreads_retries_over_the_whole_backoff() {
        let backoff = Duration::from_secs(1);
        let draws: Vec<Duration> = (0..5000).map(|_| jitter(backoff, fastrand::f64())).collect();
        assert!(draws.iter().all(|d| *d <= backoff));
        // Finer than a thousandth of the backoff (a clock's sub-second digits give at most 1000 values, and none
        // on a clock with microsecond resolution).
        let distinct: BTreeSet<Duration> = draws.iter().copied().collect();
        assert!(distinct.len() > 4900, "{} distinct delays", distinct.len());
        let mean = draws.iter().map(Duration::as_secs_f64).sum::<f64>() / 5000.0;
        assert!((0.45..0.55).contains(&mean), "mean {mean}");
    }
}
