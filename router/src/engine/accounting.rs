//! What an LLM call used and cost, accounted by the engine once for every way a call ends: a whole answer, or a
//! stream that finishes, fails midway, or whose reader leaves. Usage the backend did not report is estimated
//! (about four characters a token), and says so.

use std::sync::Arc;

use futures::StreamExt;
use futures::stream::BoxStream;
use llm::{ChatCompletion, ChatRequest, LlmError, StreamEvent, Usage};
use tokio::time::Instant;

use super::backend_chain::Answer;
use super::explanation::{ExplanationReport, StreamCheck, StreamStep};
use super::{Engine, Generation};
use crate::config::Prices;
use crate::error::RouterError;
use crate::metrics::{LlmLabels, SharedMetrics};
use crate::policy::Target;
use crate::quota::Quotas;

/// `error.type` of a stream whose reader left before it ended.
const CANCELLED: &str = "cancelled";

impl Engine {
    /// Accounts for a whole answer: fills in usage (estimated when the backend sent none), prices it, and records
    /// tokens, cost (per target) and nothing else (its duration was recorded when it arrived).
    pub(super) fn account(
        &self,
        target: &Target,
        payer: &Payer,
        request: &ChatRequest,
        answer: Answer<ChatCompletion>,
    ) -> Generation {
        let mut completion = answer.value;
        let usage_estimated = completion.usage.is_none();
        let usage = *completion.usage.get_or_insert_with(|| Usage {
            input_tokens: estimate_tokens(request.prompt_chars()),
            output_tokens: estimate_tokens(completion.text.chars().count()),
        });
        let cost = self
            .prices
            .get(&answer.backend)
            .copied()
            .unwrap_or_default()
            .cost(usage.input_tokens, usage.output_tokens);
        let labels = self.llm_labels(&answer.backend);
        payer.pay(&self.metrics, &target.name, &labels, (usage, usage_estimated), cost);
        Generation {
            backend: answer.backend,
            completion,
            attempts: answer.attempts,
            failed_backends: answer.failed,
            cost,
            usage_estimated,
        }
    }
}

/// Who pays for a call: the tenant charged against its LLM token budget, and its name as a metric label.
#[derive(Debug, Clone)]
pub(super) struct Payer {
    pub(super) tenant: String,
    /// The tenant when the policy or the limits name it, else `other`: a label with a bounded set of values.
    pub(super) label: String,
    pub(super) quotas: Arc<Quotas>,
}

impl Payer {
    /// Charges the tenant's token budget and records cost, and tokens when the backend reported them (`usage`
    /// with whether it is an estimate).
    fn pay(&self, metrics: &SharedMetrics, target: &str, call: &LlmLabels, usage: (Usage, bool), cost: f64) {
        let (usage, estimated) = usage;
        self.quotas.charge_tokens(
            &self.tenant,
            u64::from(usage.input_tokens) + u64::from(usage.output_tokens),
        );
        metrics.llm_usage(target, &self.label, call, usage, estimated, cost);
    }
}

/// What a stream's accounting needs to know.
pub(super) struct Meter {
    /// Who pays.
    pub(super) payer: Payer,
    pub(super) metrics: SharedMetrics,
    /// The target the request went to (cost is kept per target).
    pub(super) target: String,
    /// The backend as the GenAI metrics label it.
    pub(super) labels: LlmLabels,
    pub(super) prices: Prices,
    /// Prompt size, for estimating input tokens when the backend reports none.
    pub(super) prompt_chars: usize,
}

/// How a stream ended well: what the caller's summary says.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamSummary {
    /// The backend that answered.
    pub backend: String,
    /// The model the backend says answered (empty when it did not say).
    pub model: String,
    /// Why generation stopped.
    pub finish_reason: String,
    /// Token counts (estimated when `usage_estimated`).
    pub usage: Usage,
    /// Whether the counts are estimates.
    pub usage_estimated: bool,
    /// Cost from the backend's prices.
    pub cost: f64,
    /// Attempts on the answering backend.
    pub attempts: u32,
    /// Backends that failed before this one answered.
    pub failed_backends: Vec<String>,
    /// A hybrid explanation's check: its verdict, and the replacement when the streamed text failed.
    pub explanation: Option<ExplanationReport>,
    /// From the stream's start to its end.
    pub elapsed: std::time::Duration,
}

/// One item of a generation stream.
#[derive(Debug, Clone, PartialEq)]
pub enum GenerationEvent {
    /// The next piece of text.
    Delta(String),
    /// The stream ended well; the last item.
    End(StreamSummary),
}

/// An open LLM stream that accounts for itself: usage, cost and duration are recorded exactly once, when it
/// ends, fails, or is dropped unfinished (the reader left: `error.type` = `cancelled`, usage estimated from the
/// text seen). Holds the backend's concurrency slot until dropped.
pub struct GenerationStream {
    events: BoxStream<'static, Result<StreamEvent, LlmError>>,
    meter: Meter,
    backend: String,
    attempts: u32,
    failed_backends: Vec<String>,
    started: Instant,
    usage: Option<Usage>,
    output_chars: usize,
    finish_reason: Option<String>,
    response_model: Option<String>,
    accounted: bool,
    /// A hybrid explanation's check.
    check: Option<StreamCheck>,
    /// The summary, after the held-back text is sent.
    queued: Option<GenerationEvent>,
}

impl GenerationStream {
    pub(super) fn new(answer: Answer<llm::OpenStream>, meter: Meter, check: Option<StreamCheck>) -> Self {
        Self {
            events: answer.value.events,
            meter,
            backend: answer.backend,
            attempts: answer.attempts,
            failed_backends: answer.failed,
            started: answer.started,
            usage: None,
            output_chars: 0,
            finish_reason: None,
            response_model: None,
            accounted: false,
            check,
            queued: None,
        }
    }

    /// The next piece of text, the summary once the stream ended well, or the failure that ended it; then `None`.
    /// A hybrid explanation's text comes a checked sentence at a time; one that fails its check ends the stream
    /// early with the replacement in the summary.
    pub async fn next(&mut self) -> Option<Result<GenerationEvent, RouterError>> {
        if let Some(event) = self.queued.take() {
            return Some(Ok(event));
        }
        if self.accounted {
            return None;
        }
        loop {
            match self.events.next().await {
                Some(Ok(StreamEvent::Delta(text))) => {
                    self.output_chars += text.chars().count();
                    let Some(check) = &mut self.check else {
                        return Some(Ok(GenerationEvent::Delta(text)));
                    };
                    match check.push(text) {
                        StreamStep::Send(text) if text.is_empty() => continue,
                        StreamStep::Send(text) => return Some(Ok(GenerationEvent::Delta(text))),
                        StreamStep::Stop(report) => return Some(Ok(GenerationEvent::End(self.ended(Some(report))))),
                    }
                }
                Some(Ok(StreamEvent::Finish {
                    finish_reason, model, ..
                })) => {
                    self.finish_reason = Some(finish_reason);
                    self.response_model = model;
                }
                Some(Ok(StreamEvent::Usage(usage))) => self.usage = Some(usage),
                Some(Err(error)) => {
                    self.account(Some(error.kind()));
                    return Some(Err(error.into()));
                }
                None => {
                    let Some((rest, report)) = self.check.as_mut().map(StreamCheck::finish) else {
                        return Some(Ok(GenerationEvent::End(self.account(None))));
                    };
                    let end = GenerationEvent::End(self.ended(Some(report)));
                    if rest.is_empty() {
                        return Some(Ok(end));
                    }
                    self.queued = Some(end);
                    return Some(Ok(GenerationEvent::Delta(rest)));
                }
            }
        }
    }

    /// Accounts for a stream that ended well or was cut by its check, with the check's report (settled, and
    /// recorded, by [`Engine::settle_stream`]).
    fn ended(&mut self, report: Option<ExplanationReport>) -> StreamSummary {
        let mut summary = self.account(None);
        if let Some(report) = &report {
            self.meter
                .metrics
                .explanation_check(&self.meter.target, "stream", report.first_verdict.as_str());
        }
        summary.explanation = report;
        summary
    }

    /// Records usage, cost and duration (once) and says what they were.
    fn account(&mut self, error: Option<&'static str>) -> StreamSummary {
        self.accounted = true;
        let usage_estimated = self.usage.is_none();
        let usage = self.usage.unwrap_or(Usage {
            input_tokens: estimate_tokens(self.meter.prompt_chars),
            output_tokens: estimate_tokens(self.output_chars),
        });
        let cost = self.meter.prices.cost(usage.input_tokens, usage.output_tokens);
        let metrics = &self.meter.metrics;
        self.meter.payer.pay(
            metrics,
            &self.meter.target,
            &self.meter.labels,
            (usage, usage_estimated),
            cost,
        );
        metrics.llm_call(&self.meter.labels, self.started.elapsed(), error);
        StreamSummary {
            backend: self.backend.clone(),
            model: self.response_model.take().unwrap_or_default(),
            finish_reason: self.finish_reason.take().unwrap_or_default(),
            usage,
            usage_estimated,
            cost,
            attempts: self.attempts,
            failed_backends: std::mem::take(&mut self.failed_backends),
            explanation: None,
            elapsed: self.started.elapsed(),
        }
    }
}

impl Drop for GenerationStream {
    fn drop(&mut self) {
        if !self.accounted {
            self.account(Some(CANCELLED));
        }
    }
}

/// Tokens for `chars` characters when the backend reports none (about four characters a token in English).
pub(super) fn estimate_tokens(chars: usize) -> u32 {
    u32::try_from(chars.div_ceil(4)).unwrap_or(u32::MAX)
}
