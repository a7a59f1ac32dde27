//! Holding a hybrid answer to its score: the LLM's explanation is checked; under `enforce` a failing one is
//! retried once with the target's stricter prompt when the deadline allows, else replaced by the template built
//! from the attributions. Streams are checked by their [`GenerationStream`](super::GenerationStream) as they go.

use std::time::Duration;

use tokio::time::Instant;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::accounting::Payer;
use super::backend_chain::Complete;
use super::{Engine, Generation, Prepared};
use crate::error::RouterError;
use crate::explanation::{Grounds, PromptText, Source, Verdict};
use crate::policy::{Attempt, CheckMode, Explanations};
use crate::request::RouteInput;
use crate::telemetry::names::{EXPLANATION_BAND, EXPLANATION_SOURCE, EXPLANATION_VERDICT};

/// How a hybrid answer's explanation was made and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ExplanationReport {
    /// Where the text the caller gets came from.
    pub source: Source,
    /// The band of the score.
    pub band: crate::explanation::Band,
    /// The first LLM answer's verdict.
    pub first_verdict: Verdict,
    /// The retry's verdict, when there was one.
    pub retry_verdict: Option<Verdict>,
    /// The fields an explanation had to name one of.
    pub top_fields: Vec<String>,
    /// For a stream whose text failed: the explanation to show instead of what was streamed.
    pub replacement: Option<String>,
    /// For a stream whose text failed: none of it had been sent (a retry may still answer unseen).
    pub nothing_streamed: bool,
}

impl ExplanationReport {
    /// A report of `grounds` with the first verdict; the source follows from it.
    pub(super) fn new(grounds: &Grounds, first_verdict: Verdict, source: Source) -> Self {
        Self {
            source,
            band: grounds.band,
            first_verdict,
            retry_verdict: None,
            top_fields: grounds.top_fields.iter().map(|f| f.field.clone()).collect(),
            replacement: None,
            nothing_streamed: false,
        }
    }

    /// Records the outcome on the current span and in the metrics.
    pub(super) fn record(&self, metrics: &crate::metrics::Metrics, target: &str) {
        let span = tracing::Span::current();
        span.set_attribute(EXPLANATION_SOURCE, self.source.as_str());
        span.set_attribute(EXPLANATION_BAND, self.band.as_str());
        span.set_attribute(
            EXPLANATION_VERDICT,
            self.retry_verdict.unwrap_or(self.first_verdict).as_str(),
        );
        metrics.explanation(target, self.source.as_str());
    }
}

impl Engine {
    /// Checks a hybrid answer's explanation; under `enforce`, retries or replaces a failing one. The retry is
    /// made only when the time left before `deadline` is at least what the first answer took.
    pub(super) async fn hold_to_score(
        &self,
        prepared: &Prepared,
        input: &RouteInput,
        deadline: Option<Instant>,
        payer: &Payer,
        (mut generation, took, prompt): (Generation, Duration, Option<PromptText>),
    ) -> Result<(Generation, Option<ExplanationReport>), RouterError> {
        let (Some(grounds), Some(prompt), policy) = (&prepared.grounds, prompt, &prepared.routing.policy) else {
            return Ok((generation, None));
        };
        let Explanations { mode, retry, .. } = policy.explanations;
        if mode == CheckMode::Off {
            return Ok((generation, None));
        }
        let target = &prepared.routing.decision.target;
        let first = grounds.check_answer(&generation.completion.text, &prompt);
        self.metrics.explanation_check(&target.name, "first", first.as_str());
        if first.passed() || mode == CheckMode::Observe {
            let report = ExplanationReport::new(grounds, first, Source::Llm);
            report.record(&self.metrics, &target.name);
            return Ok((generation, Some(report)));
        }
        let mut report = ExplanationReport::new(grounds, first, Source::Template);
        if retry && let Some((second, verdict)) = self.retry(prepared, input, deadline, payer, took).await? {
            report.retry_verdict = Some(verdict);
            generation = combined(generation, second, verdict.passed());
            if verdict.passed() {
                report.source = Source::LlmRetried;
            }
        }
        if report.source == Source::Template {
            generation.completion.text = grounds.template();
        }
        report.record(&self.metrics, &target.name);
        Ok((generation, Some(report)))
    }

    /// Settles a checked stream's explanation once the stream ended: when the check stopped it before any of its
    /// text was sent and the policy retries, the stricter retry as a whole answer, which replaces the template
    /// when it passes (its usage and cost are added to `summary`). Records the outcome; returns the retry's text to
    /// send before the summary.
    pub async fn settle_stream(
        &self,
        prepared: &Prepared,
        input: &RouteInput,
        deadline: Option<Instant>,
        summary: &mut super::StreamSummary,
    ) -> Result<Option<String>, RouterError> {
        let target = &prepared.routing.decision.target.name;
        let Some(report) = summary.explanation.as_mut() else {
            return Ok(None);
        };
        let policy = &prepared.routing.policy;
        let mut text = None;
        if report.nothing_streamed && report.source == Source::Template && policy.explanations.retry {
            let payer = self.payer(policy, input);
            if let Some((second, verdict)) = self.retry(prepared, input, deadline, &payer, summary.elapsed).await? {
                report.retry_verdict = Some(verdict);
                let usage = second.completion.usage.unwrap_or_default();
                summary.usage.input_tokens += usage.input_tokens;
                summary.usage.output_tokens += usage.output_tokens;
                summary.cost += second.cost;
                if verdict.passed() {
                    report.source = Source::LlmRetried;
                    report.replacement = None;
                    text = Some(second.completion.text);
                }
            }
        }
        report.record(&self.metrics, target);
        Ok(text)
    }

    /// The stricter retry of a prepared hybrid request, when the time left before `deadline` is at least `took`
    /// (what the first answer took): its accounted answer, or `None` (no time, or no backend answered).
    async fn retry(
        &self,
        prepared: &Prepared,
        input: &RouteInput,
        deadline: Option<Instant>,
        payer: &Payer,
        took: Duration,
    ) -> Result<Option<(Generation, Verdict)>, RouterError> {
        let Some(grounds) = &prepared.grounds else {
            return Ok(None);
        };
        if deadline.is_some_and(|d| d.saturating_duration_since(Instant::now()) < took) {
            return Ok(None);
        }
        let target = &prepared.routing.decision.target;
        let request = self.llm_request(prepared.ask(), input, Attempt::Retry)?;
        let Ok(Ok(answer)) = self.first_answer(target, &request, deadline, Complete).await else {
            return Ok(None);
        };
        let second = self.account(target, payer, &request, answer);
        let verdict = grounds.check_answer(&second.completion.text, &prompt_text(&request));
        self.metrics.explanation_check(&target.name, "retry", verdict.as_str());
        Ok(Some((second, verdict)))
    }
}

/// The user message of `request`, as the echo check reads it.
pub(super) fn prompt_text(request: &llm::ChatRequest) -> PromptText {
    let user = request.messages.iter().rev().find(|m| m.role == "user");
    PromptText::new(user.map_or("", |m| m.content.as_str()))
}

/// Two calls as one generation: the retry's answer when `use_second`, the usage and cost of both.
fn combined(first: Generation, second: Generation, use_second: bool) -> Generation {
    let usage = match (first.completion.usage, second.completion.usage) {
        (Some(a), Some(b)) => Some(llm::Usage {
            input_tokens: a.input_tokens + b.input_tokens,
            output_tokens: a.output_tokens + b.output_tokens,
        }),
        (a, b) => a.or(b),
    };
    let cost = first.cost + second.cost;
    let usage_estimated = first.usage_estimated || second.usage_estimated;
    let mut kept = if use_second { second } else { first };
    kept.completion.usage = usage;
    kept.cost = cost;
    kept.usage_estimated = usage_estimated;
    kept
}

/// A stream's explanation check: under `enforce`, text is released a checked sentence at a time and a failing
/// sentence ends the stream with the template as the replacement; under `observe`, text passes at once and the
/// verdict is only reported.
pub(super) struct StreamCheck {
    gate: crate::explanation::SentenceGate,
    mode: CheckMode,
    /// Under `observe`: the first failing sentence's verdict.
    failed: Option<Verdict>,
}

/// What to do with a piece of a checked stream.
pub(super) enum StreamStep {
    /// Send this text (possibly empty: wait for the rest of the sentence).
    Send(String),
    /// Stop the stream: it failed its check; the report carries the replacement.
    Stop(ExplanationReport),
}

impl StreamCheck {
    /// A check of a stream explaining `grounds`, written for `prompt` (`mode` is not `Off`).
    pub(super) fn new(grounds: Grounds, prompt: PromptText, mode: CheckMode) -> Self {
        Self {
            gate: crate::explanation::SentenceGate::new(grounds, prompt),
            mode,
            failed: None,
        }
    }

    /// Takes the next piece of text.
    pub(super) fn push(&mut self, delta: String) -> StreamStep {
        use crate::explanation::GateStep;
        match (self.mode, self.gate.push(&delta)) {
            (CheckMode::Enforce, GateStep::Release(text)) => StreamStep::Send(text),
            (CheckMode::Enforce, GateStep::Fail(verdict)) => StreamStep::Stop(self.replaced(verdict)),
            (_, step) => {
                if let GateStep::Fail(verdict) = step {
                    self.failed.get_or_insert(verdict);
                }
                StreamStep::Send(delta)
            }
        }
    }

    /// The stream ended: the text still held back (when it passed) and the report.
    pub(super) fn finish(&mut self) -> (String, ExplanationReport) {
        let finished = self.gate.finish();
        if self.mode != CheckMode::Enforce {
            let verdict = self.failed.or(finished.err()).unwrap_or(Verdict::Faithful);
            return (
                String::new(),
                ExplanationReport::new(self.gate.grounds(), verdict, Source::Llm),
            );
        }
        match finished {
            Ok(rest) => (
                rest,
                ExplanationReport::new(self.gate.grounds(), Verdict::Faithful, Source::Llm),
            ),
            Err(verdict) => (String::new(), self.replaced(verdict)),
        }
    }

    fn replaced(&self, verdict: Verdict) -> ExplanationReport {
        let grounds = self.gate.grounds();
        let mut report = ExplanationReport::new(grounds, verdict, Source::Template);
        report.replacement = Some(grounds.template());
        report.nothing_streamed = !self.gate.released_any();
        report
    }
}
