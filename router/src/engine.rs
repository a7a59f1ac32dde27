//! The request path: validate, classify, decide, then score and/or generate.

use std::collections::BTreeMap;
use std::sync::Arc;

use classical::schema::ValidRecord;
use classical::{InferencePool, OnnxRuntime};
use futures::stream::BoxStream;
use llm::{ChatBackend, ChatCompletion, ChatRequest, GuardedBackend, LlmError, StreamEvent};
use tokio::time::Instant;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::config::{Config, Prices};
use crate::error::RouterError;
use crate::metrics::SharedMetrics;
use crate::policy::{
    Classified, Decision, Facts, OnUnavailable, Policy, PolicyContext, PolicyStore, Target, TargetKind,
};
use crate::request::RouteInput;
use crate::telemetry::names::*;
use crate::telemetry::spans;
use opentelemetry::KeyValue;

/// How many labels a decision reports.
const TOP_LABELS: usize = 5;

/// The loaded models, the policy and the LLM backends: everything a request needs.
pub struct Engine {
    pool: InferencePool,
    policy: Arc<PolicyStore>,
    backends: BTreeMap<String, Arc<GuardedBackend>>,
    prices: BTreeMap<String, Prices>,
    max_text_bytes: usize,
    metrics: SharedMetrics,
    /// Content capture on spans: the byte cap, `None` when off.
    capture_content: Option<usize>,
    /// Bounds the shadows in flight.
    shadows: Arc<tokio::sync::Semaphore>,
}

/// One label with its probability and group.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelScore {
    /// The label.
    pub label: String,
    /// Its group.
    pub group: String,
    /// Its probability.
    pub probability: f32,
}

/// Classification and decision for one request: what `Explain` returns.
#[derive(Debug, Clone)]
pub struct Routing {
    /// The policy that decided; the rest of the request uses its targets and prompts.
    pub policy: Arc<Policy>,
    /// The decided label, group and confidence.
    pub classified: Classified,
    /// The most probable labels, best first.
    pub top_labels: Vec<LabelScore>,
    /// Classifier name and version.
    pub classifier: (String, String),
    /// The policy's decision.
    pub decision: Decision,
}

/// The churn scorer's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// Model name.
    pub model: String,
    /// Model version.
    pub version: String,
    /// Calibrated churn probability.
    pub score: f32,
    /// `score >= threshold`.
    pub churn: bool,
    /// The model's decision threshold.
    pub threshold: f32,
    /// The fields that move the score most, largest first (hybrid targets only).
    pub top_features: Vec<classical::Influence>,
}

/// How many field influences a prediction reports.
const TOP_FEATURES: usize = 5;

/// An LLM's whole answer, with the backend that gave it and what it took.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// Backend name in config.
    pub backend: String,
    /// The completion (usage filled in, estimated when the backend sent none).
    pub completion: ChatCompletion,
    /// Attempts on the answering backend.
    pub attempts: u32,
    /// Backends that failed before this one answered.
    pub failed_backends: Vec<String>,
    /// Cost from the backend's prices.
    pub cost: f64,
    /// Whether the token counts are estimates.
    pub usage_estimated: bool,
}

/// An LLM stream that produced its first event, with what it took to open it.
pub struct OpenedStream {
    /// Backend name in config.
    pub backend: String,
    /// The model asked of it.
    pub model: String,
    /// The events (the first included).
    pub events: BoxStream<'static, Result<StreamEvent, LlmError>>,
    /// Attempts on the answering backend.
    pub attempts: u32,
    /// Backends that failed before this one answered.
    pub failed_backends: Vec<String>,
    /// The backend's prices, for the summary's cost.
    pub prices: Prices,
    /// Prompt size in characters, for estimating input tokens when the backend sends no usage.
    pub prompt_chars: usize,
    /// When the call to the answering backend started.
    pub started: Instant,
}

/// A backend of the chosen target and its circuit state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendState {
    /// Backend name.
    pub name: String,
    /// `closed`, `open` or `half_open`.
    pub circuit: &'static str,
}

/// What `Route` answers.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Classification and decision.
    pub routing: Routing,
    /// Present for classical and hybrid targets.
    pub prediction: Option<Prediction>,
    /// Present for llm and hybrid targets.
    pub generation: Option<Generation>,
    /// Present for reject targets, and for targets that fail open to a refusal.
    pub rejection: Option<String>,
    /// Why the answer is not the target's full answer (score only, or a refusal), when it is not.
    pub degraded: Option<String>,
    /// The target's LLM backends and their circuit state.
    pub backends: Vec<BackendState>,
    /// The shadow to run in the background, when the decision mirrors this request.
    pub shadow: Option<ShadowPlan>,
}

/// A mirrored request's second target, run after the answer without affecting it.
#[derive(Debug, Clone)]
pub struct ShadowPlan {
    /// The rule that mirrors.
    pub rule: String,
    /// The shadow target.
    pub target: Arc<Target>,
    /// The policy it belongs to (for its prompts).
    pub policy: Arc<Policy>,
}

/// What a primary or shadow answer amounted to, for agreement: the churn verdict, whether text was generated,
/// whether it was a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AnswerShape {
    /// `Some(score >= threshold)` when scored.
    pub churn: Option<bool>,
    /// Whether an LLM answered.
    pub generated: bool,
    /// Whether the answer was a refusal.
    pub rejected: bool,
}

impl AnswerShape {
    /// Same churn verdict (where both scored), and both generated or refused alike.
    pub fn agrees_with(&self, other: &Self) -> bool {
        let verdicts = match (self.churn, other.churn) {
            (Some(a), Some(b)) => a == b,
            (a, b) => a.is_none() == b.is_none(),
        };
        verdicts && self.generated == other.generated && self.rejected == other.rejected
    }
}

/// How long a shadow may take; it is dropped after that.
const SHADOW_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Shadows in flight at once; beyond it, a mirrored request's shadow is skipped (and counted).
const MAX_SHADOWS: usize = 16;

/// The first half of a streamed answer: routing and prediction are known, text is still to come.
pub struct StreamStart {
    /// Classification and decision.
    pub routing: Routing,
    /// Present for classical and hybrid targets.
    pub prediction: Option<Prediction>,
    /// Present for reject targets.
    pub rejection: Option<String>,
    /// The LLM stream (llm and hybrid targets, unless degraded).
    pub generation: Option<OpenedStream>,
    /// Why the answer is not the target's full answer (score only, or a refusal), when it is not.
    pub degraded: Option<String>,
    /// The shadow to run in the background, when the decision mirrors this request.
    pub shadow: Option<ShadowPlan>,
}

/// A target that could not get an LLM answer but fails open.
struct Degraded {
    reason: String,
    rejection: Option<String>,
}

impl Engine {
    /// Loads the ONNX Runtime and the models (blocking: call from a blocking context), the policy (checked
    /// against the backends and the classifier's labels) and builds the backends.
    pub fn load(config: &Config, metrics: SharedMetrics) -> Result<Self, RouterError> {
        let pool = InferencePool::start(&runtime(config)?, &config.models.pool)?;
        let context = policy_context(config, &pool.classifier().labels);
        let policy = Arc::new(PolicyStore::load(&config.policy.file, context)?);
        let backends = config
            .backends
            .iter()
            .map(|(name, (backend, guard))| {
                Ok((
                    name.clone(),
                    Arc::new(GuardedBackend::new(ChatBackend::new(backend.clone())?, *guard)),
                ))
            })
            .collect::<Result<_, LlmError>>()?;
        Ok(Self {
            pool,
            policy,
            backends,
            prices: config.prices.clone(),
            max_text_bytes: config.server.max_text_bytes,
            metrics,
            capture_content: config.telemetry.capture_content,
            shadows: Arc::new(tokio::sync::Semaphore::new(MAX_SHADOWS)),
        })
    }

    /// Checks `config`'s policy file against its backends and the classifier's labels, starting nothing
    /// (blocking: loads the classifier to read its labels).
    pub fn check_policy(config: &Config) -> Result<Arc<Policy>, RouterError> {
        let classifier = classical::RequestClassifier::load(&runtime(config)?, &config.models.pool.classifier)?;
        let context = policy_context(config, &classifier.info().labels);
        Ok(PolicyStore::load(&config.policy.file, context)?.current())
    }

    /// Inferences waiting for a worker now.
    pub fn queue_depth(&self) -> usize {
        self.pool.queue_depth()
    }

    /// The instruments.
    pub fn metrics(&self) -> &SharedMetrics {
        &self.metrics
    }

    /// The policy store (for reloads).
    pub fn policy(&self) -> &Arc<PolicyStore> {
        &self.policy
    }

    /// Every backend with its guards (for health).
    pub fn backends(&self) -> &BTreeMap<String, Arc<GuardedBackend>> {
        &self.backends
    }

    /// Classifies and decides, without dispatching.
    pub async fn explain(&self, input: &RouteInput) -> Result<Routing, RouterError> {
        self.check_limits(input)?;
        if let Some(record) = &input.record {
            self.validate_record(record)?;
        }
        self.classify_and_decide(input).await
    }

    /// Classifies, decides, and dispatches, waiting for the whole answer; LLM calls end by `deadline`.
    pub async fn route(&self, input: &RouteInput, deadline: Option<Instant>) -> Result<Outcome, RouterError> {
        let prepared = self.prepare(input).await?;
        let target = prepared.routing.decision.target.clone();
        let mut generation = None;
        let mut degraded = None;
        let mut rejection = prepared.rejection;
        if !target.backends.is_empty() {
            let request = self.llm_request(&prepared.routing.policy, &target, input, prepared.prediction.as_ref())?;
            match self
                .first_answer(&target, deadline, false, |backend| backend.complete(&request, deadline))
                .await?
            {
                Ok(answer) => {
                    generation = Some(self.account(
                        &target,
                        &answer.backend,
                        &request,
                        answer.value,
                        answer.attempts,
                        answer.failed,
                    ))
                }
                Err(last) => {
                    let fallback = self.degrade(&target, prepared.prediction.is_some(), last)?;
                    degraded = Some(fallback.reason);
                    rejection = rejection.or(fallback.rejection);
                }
            }
        }
        Ok(Outcome {
            backends: self.backend_states(&target),
            shadow: shadow_plan(&prepared.routing),
            routing: prepared.routing,
            prediction: prepared.prediction,
            generation,
            rejection,
            degraded,
        })
    }

    /// Classifies, decides, scores, and opens the LLM stream (when the target has one) by `deadline`.
    pub async fn route_stream(
        &self,
        input: &RouteInput,
        deadline: Option<Instant>,
    ) -> Result<StreamStart, RouterError> {
        let prepared = self.prepare(input).await?;
        let target = prepared.routing.decision.target.clone();
        let mut generation = None;
        let mut degraded = None;
        let mut rejection = prepared.rejection;
        if !target.backends.is_empty() {
            let request = self.llm_request(&prepared.routing.policy, &target, input, prepared.prediction.as_ref())?;
            let prompt_chars = request.messages.iter().map(|m| m.content.chars().count()).sum();
            match self
                .first_answer(&target, deadline, true, |backend| backend.stream(&request, deadline))
                .await?
            {
                Ok(answer) => {
                    generation = Some(OpenedStream {
                        prices: self.prices.get(&answer.backend).copied().unwrap_or_default(),
                        model: self.backend(&target, &answer.backend)?.model().to_owned(),
                        backend: answer.backend,
                        events: answer.value.events,
                        attempts: answer.attempts,
                        failed_backends: answer.failed,
                        prompt_chars,
                        started: answer.started,
                    })
                }
                Err(last) => {
                    let fallback = self.degrade(&target, prepared.prediction.is_some(), last)?;
                    degraded = Some(fallback.reason);
                    rejection = rejection.or(fallback.rejection);
                }
            }
        }
        Ok(StreamStart {
            shadow: shadow_plan(&prepared.routing),
            routing: prepared.routing,
            prediction: prepared.prediction,
            rejection,
            generation,
            degraded,
        })
    }

    /// Runs a mirrored request on its shadow target and records how it compares with the primary answer
    /// (`primary`): agreement, outcome and latency, in metrics and on a `shadow` span under `parent` (the
    /// request's SERVER span). Never fails: it is background work whose result nobody waits for.
    pub async fn shadow(
        &self,
        input: &RouteInput,
        plan: &ShadowPlan,
        primary: AnswerShape,
        parent: opentelemetry::Context,
    ) {
        let span = spans::detached_child(SPAN_SHADOW, parent);
        span.set_attribute(SHADOW_RULE, plan.rule.clone());
        span.set_attribute(SHADOW_TARGET, plan.target.name.clone());
        let labels = [
            KeyValue::new("switchyard.rule", plan.rule.clone()),
            KeyValue::new("switchyard.shadow_target", plan.target.name.clone()),
        ];
        let Ok(_slot) = self.shadows.clone().try_acquire_owned() else {
            self.metrics.shadow_requests.add(
                1,
                &[
                    labels[0].clone(),
                    labels[1].clone(),
                    KeyValue::new("outcome", "dropped"),
                ],
            );
            spans::record_failure(&span, "dropped", format!("more than {MAX_SHADOWS} shadows in flight"));
            return;
        };
        let started = Instant::now();
        let answered = tokio::time::timeout(SHADOW_TIMEOUT, self.shadow_answer(input, plan))
            .instrument(span.clone())
            .await
            .unwrap_or_else(|_| {
                Err(RouterError::Llm(LlmError::Timeout {
                    backend: plan.target.name.clone(),
                    after: SHADOW_TIMEOUT,
                }))
            });
        let elapsed = started.elapsed().as_secs_f64();
        self.metrics.shadow_duration.record(elapsed, &labels);
        match answered {
            Ok(shape) => {
                let agree = shape.agrees_with(&primary);
                span.set_attribute(SHADOW_AGREE, agree);
                self.metrics.shadow_requests.add(
                    1,
                    &[labels[0].clone(), labels[1].clone(), KeyValue::new("outcome", "ok")],
                );
                self.metrics.shadow_agreement.add(
                    1,
                    &[labels[0].clone(), labels[1].clone(), KeyValue::new("agree", agree)],
                );
            }
            Err(error) => {
                spans::record_failure(&span, error.kind(), error.to_string());
                self.metrics.shadow_requests.add(
                    1,
                    &[
                        labels[0].clone(),
                        labels[1].clone(),
                        KeyValue::new("outcome", error.kind()),
                    ],
                );
            }
        }
    }

    /// The shadow target's answer, reduced to its shape.
    async fn shadow_answer(&self, input: &RouteInput, plan: &ShadowPlan) -> Result<AnswerShape, RouterError> {
        let target = &plan.target;
        let mut shape = AnswerShape {
            rejected: target.kind == TargetKind::Reject,
            ..AnswerShape::default()
        };
        let prediction = if target.kind.needs_record() {
            let record = input.record.as_ref().ok_or_else(|| {
                RouterError::invalid("features", format!("shadow target {:?} needs a record", target.name))
            })?;
            let valid = self.validate_record(record)?;
            Some(self.score(valid, None, target.kind == TargetKind::Hybrid).await?)
        } else {
            None
        };
        shape.churn = prediction.as_ref().map(|p| p.churn);
        if !target.backends.is_empty() {
            let request = self.llm_request(&plan.policy, target, input, prediction.as_ref())?;
            let deadline = Some(Instant::now() + SHADOW_TIMEOUT);
            match self
                .first_answer(target, deadline, false, |backend| backend.complete(&request, deadline))
                .await?
            {
                Ok(_) => shape.generated = true,
                Err(last) => return Err(last.into()),
            }
        }
        Ok(shape)
    }

    /// Walks the target's backend chain (primary, then fallbacks) until one answers, the chain ends, or the
    /// caller's deadline passes. `Ok(Err(last))` carries the last backend's error when none answered.
    /// `streaming` says what the call's duration measures: the time to the first event (streams) or the whole
    /// operation.
    async fn first_answer<'a, T, F, Fut>(
        &'a self,
        target: &Target,
        deadline: Option<Instant>,
        streaming: bool,
        call: F,
    ) -> Result<Result<Answer<T>, LlmError>, RouterError>
    where
        F: Fn(&'a GuardedBackend) -> Fut,
        Fut: std::future::Future<Output = (Result<T, LlmError>, llm::CallReport)>,
    {
        let mut failed = Vec::new();
        let mut last = None;
        for name in &target.backends {
            let backend = self.backend(target, name)?;
            let started = Instant::now();
            let (result, report) = call(backend).await;
            let elapsed = started.elapsed().as_secs_f64();
            let mut attributes = llm_attributes(name, backend.model());
            match result {
                Ok(value) => {
                    if streaming {
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
    fn degrade(&self, target: &Target, scored: bool, last: LlmError) -> Result<Degraded, RouterError> {
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
    fn account(
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
            input_tokens: estimate_tokens(request.messages.iter().map(|m| m.content.chars().count()).sum()),
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

    fn backend_states(&self, target: &Target) -> Vec<BackendState> {
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

    /// Everything up to the LLM call: validation, classification, decision, scoring.
    async fn prepare(&self, input: &RouteInput) -> Result<Prepared, RouterError> {
        self.check_limits(input)?;
        let valid = input.record.as_ref().map(|r| self.validate_record(r)).transpose()?;
        let routing = self.classify_and_decide(input).await?;
        let target = &routing.decision.target;
        let prediction = if target.kind.needs_record() {
            let record = valid.ok_or_else(|| {
                RouterError::invalid(
                    "features",
                    format!("target {:?} ({:?}) needs a customer record", target.name, target.kind),
                )
            })?;
            Some(
                self.score(record, input.record.as_ref(), target.kind == TargetKind::Hybrid)
                    .await?,
            )
        } else {
            None
        };
        let rejection = (target.kind == TargetKind::Reject).then(|| target.message.clone());
        Ok(Prepared {
            routing,
            prediction,
            rejection,
        })
    }

    fn check_limits(&self, input: &RouteInput) -> Result<(), RouterError> {
        if input.text.len() > self.max_text_bytes {
            return Err(RouterError::invalid(
                "text",
                format!(
                    "{} bytes exceeds the limit of {} bytes",
                    input.text.len(),
                    self.max_text_bytes
                ),
            ));
        }
        Ok(())
    }

    fn validate_record(
        &self,
        record: &BTreeMap<String, classical::schema::FeatureValue>,
    ) -> Result<ValidRecord, RouterError> {
        self.pool
            .scorer()
            .schema
            .validate(record)
            .map_err(|e| classical::ClassicalError::InvalidFeatures(e).into())
    }

    async fn classify_and_decide(&self, input: &RouteInput) -> Result<Routing, RouterError> {
        let span = spans::child(SPAN_CLASSIFY);
        let identity = &self.pool.classifier().identity;
        span.set_attribute(CLASSIFIER_MODEL, identity.name.clone());
        span.set_attribute(CLASSIFIER_VERSION, identity.version.clone());
        if let Some(cap) = self.capture_content {
            span.set_attribute(TEXT, llm::telemetry::truncate(input.text.clone(), cap));
        }
        let started = Instant::now();
        let classification = match self
            .pool
            .classify(&input.text, input.record.is_some())
            .instrument(span.clone())
            .await
        {
            Ok(classification) => classification,
            Err(error) => {
                let error = RouterError::from(error);
                spans::record_failure(&span, error.kind(), error.to_string());
                return Err(error);
            }
        };
        let (decided, confidence) = classification.decided();
        let mut classified = Classified {
            label: decided.label.clone(),
            group: decided.group.clone(),
            confidence,
            margin: 0.0,
        };
        let top_labels: Vec<LabelScore> = classification
            .top(TOP_LABELS)
            .into_iter()
            .map(|(l, p)| LabelScore {
                label: l.label.clone(),
                group: l.group.clone(),
                probability: p,
            })
            .collect();
        let margin = match top_labels.as_slice() {
            [first, second, ..] => first.probability - second.probability,
            [first] => first.probability,
            [] => 0.0,
        };
        classified.margin = margin;
        span.set_attribute(CLASSIFIER_LABEL, classified.label.clone());
        span.set_attribute(CLASSIFIER_LABEL_GROUP, classified.group.clone());
        span.set_attribute(CLASSIFIER_CONFIDENCE, f64::from(confidence));
        span.set_attribute(CLASSIFIER_MARGIN, f64::from(margin));
        span.set_attribute(CLASSIFIER_DURATION_MS, started.elapsed().as_secs_f64() * 1000.0);
        drop(span);

        let span = spans::child(SPAN_DECIDE);
        let policy = self.policy.current();
        span.set_attribute(POLICY_VERSION, policy.version.clone());
        tracing::Span::current().set_attribute(POLICY_VERSION, policy.version.clone());
        let facts = Facts {
            label: &classified.label,
            group: &classified.group,
            confidence: classified.confidence,
            margin: classified.margin,
            tenant: &input.tenant,
            has_record: input.record.is_some(),
            text_bytes: input.text.len(),
            request_id: &input.request_id,
            force_target: input.force_target.as_deref(),
        };
        let decided = span.in_scope(|| policy.decide(&facts));
        let decision = match decided {
            Ok(decision) => decision,
            Err(error) => {
                let error = RouterError::from(error);
                spans::record_failure(&span, error.kind(), error.to_string());
                return Err(error);
            }
        };
        if let Some(rule) = &decision.rule {
            span.set_attribute(ROUTE_RULE, rule.clone());
        }
        span.set_attribute(ROUTE_TARGET, decision.target.name.clone());
        span.set_attribute(ROUTE_TARGET_KIND, decision.target.kind.as_str());
        span.set_attribute(ROUTE_REASON, decision.reason.clone());
        if let Some(split) = &decision.split {
            span.set_attribute(ROUTE_SPLIT_BUCKET, i64::from(split.bucket));
        }
        if let Some(shadow) = &decision.shadow {
            span.set_attribute(ROUTE_SHADOW_MIRRORED, shadow.mirrored);
        }
        drop(span);

        tracing::debug!(label = %classified.label, confidence, target = %decision.target.name, "decided");
        self.metrics.confidence.record(f64::from(confidence), &[]);
        self.metrics.decisions.add(
            1,
            &[
                KeyValue::new("switchyard.label_group", classified.group.clone()),
                KeyValue::new("switchyard.target", decision.target.name.clone()),
            ],
        );
        Ok(Routing {
            policy,
            classified,
            top_labels,
            classifier: (identity.name.clone(), identity.version.clone()),
            decision,
        })
    }

    /// Scores a record; `explain` also attributes the score to the record's fields.
    /// `raw` is the record as sent, recorded on the span only with content capture on.
    async fn score(
        &self,
        record: ValidRecord,
        raw: Option<&BTreeMap<String, classical::schema::FeatureValue>>,
        explain: bool,
    ) -> Result<Prediction, RouterError> {
        let span = spans::child(SPAN_SCORE);
        let info = self.pool.scorer();
        span.set_attribute(SCORER_MODEL, info.identity.name.clone());
        span.set_attribute(SCORER_VERSION, info.identity.version.clone());
        span.set_attribute(SCORER_BATCH_SIZE, 1_i64);
        span.set_attribute(SCORER_EXPLAINED, explain);
        if let (Some(cap), Some(raw)) = (self.capture_content, raw) {
            span.set_attribute(SCORER_FEATURES, llm::telemetry::truncate(features_json(raw), cap));
        }
        let started = Instant::now();
        let scored = async {
            if explain {
                self.pool.score_explained(record).await
            } else {
                self.pool.score(record).await.map(|score| (score, Vec::new()))
            }
        }
        .instrument(span.clone())
        .await;
        self.metrics.score_duration.record(started.elapsed().as_secs_f64(), &[]);
        let (score, mut top_features) = match scored {
            Ok(scored) => scored,
            Err(error) => {
                let error = RouterError::from(error);
                spans::record_failure(&span, error.kind(), error.to_string());
                return Err(error);
            }
        };
        span.set_attribute(SCORER_SCORE, f64::from(score.probability));
        span.set_attribute(SCORER_CHURN, score.churn);
        top_features.truncate(TOP_FEATURES);
        Ok(Prediction {
            model: info.identity.name.clone(),
            version: info.identity.version.clone(),
            score: score.probability,
            churn: score.churn,
            threshold: info.decision_threshold,
            top_features,
        })
    }

    fn llm_request(
        &self,
        policy: &Policy,
        target: &Target,
        input: &RouteInput,
        prediction: Option<&Prediction>,
    ) -> Result<ChatRequest, RouterError> {
        let record = input.record.as_ref().map(|r| (&self.pool.scorer().schema, r));
        policy.prompts.render(target, input, record, prediction)
    }

    fn backend(&self, target: &Target, name: &str) -> Result<&GuardedBackend, RouterError> {
        self.backends
            .get(name)
            .map(Arc::as_ref)
            .ok_or_else(|| RouterError::Policy(crate::policy::PolicyError::UnknownTarget(target.name.clone())))
    }
}

/// The first answer of a backend chain.
struct Answer<T> {
    backend: String,
    value: T,
    attempts: u32,
    failed: Vec<String>,
    started: Instant,
}

/// The ONNX Runtime the config names (else `ORT_DYLIB_PATH`).
fn runtime(config: &Config) -> Result<OnnxRuntime, RouterError> {
    Ok(match &config.models.onnx_runtime {
        Some(path) => OnnxRuntime::load(path)?,
        None => OnnxRuntime::from_env()?,
    })
}

/// What a policy is checked against: the configured backends and the classifier's labels.
fn policy_context(config: &Config, labels: &[classical::metadata::LabelInfo]) -> PolicyContext {
    PolicyContext {
        backends: config.backends.keys().cloned().collect(),
        labels: Some(labels.iter().map(|l| (l.label.clone(), l.group.clone())).collect()),
    }
}

/// The shadow of a decision that mirrors this request.
fn shadow_plan(routing: &Routing) -> Option<ShadowPlan> {
    let draw = routing.decision.shadow.as_ref().filter(|d| d.mirrored)?;
    Some(ShadowPlan {
        rule: routing.decision.rule.clone().unwrap_or_default(),
        target: routing.policy.target(&draw.target)?.clone(),
        policy: routing.policy.clone(),
    })
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

/// The request after everything but the LLM call.
struct Prepared {
    routing: Routing,
    prediction: Option<Prediction>,
    rejection: Option<String>,
}

/// A record as a JSON object, for content capture.
fn features_json(record: &BTreeMap<String, classical::schema::FeatureValue>) -> String {
    use classical::schema::FeatureValue;
    let object: serde_json::Map<String, serde_json::Value> = record
        .iter()
        .map(|(name, value)| {
            let value = match value {
                FeatureValue::Null => serde_json::Value::Null,
                FeatureValue::Bool(b) => serde_json::Value::Bool(*b),
                FeatureValue::Number(n) => serde_json::json!(n),
                FeatureValue::Text(t) => serde_json::Value::String(t.clone()),
            };
            (name.clone(), value)
        })
        .collect();
    serde_json::Value::Object(object).to_string()
}

/// Tokens for `chars` characters when the backend reports none (about four characters a token in English).
pub fn estimate_tokens(chars: usize) -> u32 {
    u32::try_from(chars.div_ceil(4)).unwrap_or(u32::MAX)
}

/// Shared handle to the engine once it is loaded.
pub type SharedEngine = Arc<tokio::sync::OnceCell<Engine>>;
