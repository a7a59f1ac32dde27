//! The request path: validate, classify, decide, then score and/or generate.

mod accounting;
mod answer;
mod backend_chain;
mod candidate;
mod explanation;
mod gauges;
mod models;
mod score;
mod shadow;

pub use accounting::{GenerationEvent, GenerationStream, StreamSummary};
pub use answer::{BackendState, Generation, LabelScore, Outcome, Prediction, Prepared, Routing, StreamLeg};
pub use explanation::ExplanationReport;
pub use models::{MlflowRun, ModelReload, ModelVersion, ServingModels, watch as watch_models};
pub use shadow::ShadowPlan;

use backend_chain::{Answer, BackendCall, Complete, Stream};
use score::validate_record;
use shadow::{MAX_SHADOWS, shadow_plan};

use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use classical::OnnxRuntime;
use llm::{ChatBackend, ChatRequest, GuardedBackend, LlmError};
use tokio::time::Instant;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::config::{Config, Prices};
use crate::error::{LoadError, RouterError};
use crate::metrics::SharedMetrics;
use crate::policy::{
    Attempt, CheckMode, Classified, Facts, Policy, PolicyContext, PolicyStore, PromptInput, ScoreFacts, Target,
    TargetKind,
};
use crate::quota::Quotas;
use crate::remote::RemoteScorer;
use crate::request::RouteInput;
use crate::telemetry::names::*;
use crate::telemetry::spans;

/// How many field influences a prediction reports.
const TOP_FEATURES: usize = 5;

/// How many labels a decision reports.
const TOP_LABELS: usize = 5;

/// The loaded models, the policy and the LLM backends: everything a request needs.
pub struct Engine {
    /// The serving models, swapped whole by a reload.
    models: ArcSwap<ServingModels>,
    /// The config file, re-read by a model reload.
    config_file: std::path::PathBuf,
    /// One model reload at a time.
    model_reload: tokio::sync::Mutex<()>,
    policy: Arc<PolicyStore>,
    backends: BTreeMap<String, Arc<GuardedBackend>>,
    prices: BTreeMap<String, Prices>,
    max_text_bytes: usize,
    metrics: SharedMetrics,
    /// Content capture on spans: the byte cap, `None` when off.
    capture_content: Option<usize>,
    /// Bounds the shadows in flight.
    shadows: Arc<tokio::sync::Semaphore>,
    /// Per-tenant quotas (rate and in-flight at admission, LLM tokens here).
    quotas: Arc<Quotas>,
    /// Remote churn scorers by name (targets with `scorer = "<name>"`).
    scorers: BTreeMap<String, Arc<RemoteScorer>>,
}

impl Engine {
    /// Loads the ONNX Runtime and the models (blocking: call from a blocking context), the policy (checked
    /// against the backends and the classifier's labels) and builds the backends.
    pub fn load(config: &Config, metrics: SharedMetrics) -> Result<Self, LoadError> {
        let models = ServingModels::load(config, &metrics)?;
        let mut context = policy_context(config, &models.pool.classifier().labels);
        context.fields = Some(
            models
                .pool
                .scorer()
                .schema
                .features()
                .iter()
                .map(|f| f.name.clone())
                .collect(),
        );
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
        let scorers = config
            .scorers
            .iter()
            .map(|(name, remote)| Ok((name.clone(), Arc::new(RemoteScorer::new(remote.clone())?))))
            .collect::<Result<_, LoadError>>()?;
        Ok(Self {
            models: ArcSwap::from_pointee(models),
            config_file: config.file.clone(),
            model_reload: tokio::sync::Mutex::new(()),
            policy,
            backends,
            prices: config.prices.clone(),
            max_text_bytes: config.server.max_text_bytes,
            metrics,
            capture_content: config.telemetry.capture_content,
            shadows: Arc::new(tokio::sync::Semaphore::new(MAX_SHADOWS)),
            quotas: Arc::new(Quotas::new(config.limits.clone())),
            scorers,
        })
    }

    /// Asks each remote scorer's server whether its model takes the scorer's schema: one that does not stops the
    /// start; one that cannot be reached yet is logged (its breaker handles it when requests come).
    pub async fn check_scorers(&self) -> Result<(), LoadError> {
        let models = self.models();
        for scorer in self.scorers.values() {
            if !scorer.check(&models.pool.scorer().schema).await? {
                tracing::warn!(scorer = %scorer.name(), url = %scorer.url(), "remote scorer not reachable yet");
            }
        }
        Ok(())
    }

    /// Every circuit breaker: the LLM backends' and the remote scorers'.
    pub fn circuits(&self) -> Vec<(String, llm::CircuitState)> {
        let backends = self.backends.iter().map(|(name, b)| (name.clone(), b.circuit()));
        let scorers = self.scorers.iter().map(|(name, s)| (name.clone(), s.circuit()));
        backends.chain(scorers).collect()
    }

    /// The longest request text accepted, in bytes.
    pub fn max_text_bytes(&self) -> usize {
        self.max_text_bytes
    }

    /// Per-tenant quotas.
    pub fn quotas(&self) -> &Quotas {
        &self.quotas
    }

    /// Admits a call of `tenant` under the server's and the tenant's limits (held until the admission drops); a
    /// call refused at the server's `limits.max_in_flight` is counted as shed (`switchyard.calls.shed`, `server`).
    pub fn admit(&self, tenant: &str) -> Result<crate::quota::Admission, RouterError> {
        self.quotas.admit(tenant).map_err(|refused| {
            if matches!(refused, crate::quota::QuotaError::Server { .. }) {
                self.metrics.shed("server");
            }
            RouterError::from(refused)
        })
    }

    /// Who pays for `input`'s LLM calls. The metric label is the tenant when the policy or the limits name it,
    /// else `other`: without authentication a caller may name any tenant, and a label must not grow with them.
    fn payer(&self, policy: &Policy, input: &RouteInput) -> accounting::Payer {
        let tenant = &input.tenant;
        let named = policy.tenants.contains_key(tenant) || self.quotas.names(tenant);
        accounting::Payer {
            tenant: tenant.clone(),
            label: if named { tenant.clone() } else { "other".to_owned() },
            quotas: self.quotas.clone(),
        }
    }

    /// Checks `config`'s policy file against its backends and the classifier's labels, starting nothing
    /// (blocking: loads the classifier to read its labels).
    pub fn check_policy(config: &Config) -> Result<Arc<Policy>, LoadError> {
        let classifier = classical::RequestClassifier::load(&runtime(config)?, &config.models.pool.classifier)?;
        let context = policy_context(config, &classifier.info().labels);
        Ok(PolicyStore::load(&config.policy.file, context)?.current())
    }

    /// Inferences waiting for a worker now.
    pub fn queue_depth(&self) -> usize {
        self.models().pool.queue_depth()
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
        let models = self.models();
        if let Some(record) = &input.record {
            validate_record(&models, record)?;
        }
        self.classify_and_decide(&models, input).await
    }

    /// Classifies, decides, and dispatches, waiting for the whole answer; LLM calls end by `deadline`.
    pub async fn route(&self, input: &RouteInput, deadline: Option<Instant>) -> Result<Outcome, RouterError> {
        let prepared = self.prepare(input, deadline).await?;
        let payer = self.payer(&prepared.routing.policy, input);
        let leg = self
            .llm_leg(&prepared, input, deadline, Complete, |target, request, answer| {
                let took = answer.started.elapsed();
                // Only a hybrid answer is checked against its prompt: other answers skip reading it.
                let prompt = prepared.grounds.as_ref().map(|_| explanation::prompt_text(request));
                Ok((self.account(target, &payer, request, answer), took, prompt))
            })
            .await?;
        let (generation, explanation) = match leg.generation {
            Some(answer) => {
                let (generation, report) = self.hold_to_score(&prepared, input, deadline, &payer, answer).await?;
                (Some(generation), report)
            }
            None => (None, None),
        };
        Ok(Outcome {
            backends: self.backend_states(&prepared.routing.decision.target),
            shadow: shadow_plan(&prepared, generation.is_some(), leg.rejection.is_some()),
            routing: prepared.routing,
            prediction: prepared.prediction,
            generation,
            explanation,
            rejection: leg.rejection,
            degraded: leg.degraded,
        })
    }

    /// The LLM leg of a streamed request, once [`Engine::prepare`] has answered (its decision and prediction are
    /// already on their way to the caller): opens the stream by `deadline`, or degrades as the target says.
    /// The stream accounts for itself however it ends (see [`GenerationStream`]).
    pub async fn open_stream(
        &self,
        prepared: &Prepared,
        input: &RouteInput,
        deadline: Option<Instant>,
    ) -> Result<StreamLeg, RouterError> {
        let payer = self.payer(&prepared.routing.policy, input);
        let leg = self
            .llm_leg(prepared, input, deadline, Stream, |target, request, answer| {
                let meter = accounting::Meter {
                    payer,
                    metrics: self.metrics.clone(),
                    target: target.name.clone(),
                    labels: self.llm_labels(&answer.backend),
                    prices: self.prices.get(&answer.backend).copied().unwrap_or_default(),
                    prompt_chars: request.prompt_chars(),
                };
                let mode = prepared.routing.policy.explanations.mode;
                let check = prepared
                    .grounds
                    .clone()
                    .filter(|_| mode != CheckMode::Off)
                    .map(|grounds| explanation::StreamCheck::new(grounds, explanation::prompt_text(request), mode));
                Ok(GenerationStream::new(answer, meter, check))
            })
            .await?;
        Ok(StreamLeg {
            shadow: shadow_plan(prepared, leg.generation.is_some(), leg.rejection.is_some()),
            rejection: leg.rejection,
            generation: leg.generation,
            degraded: leg.degraded,
        })
    }

    /// The LLM leg of a prepared request, when its target has backends: builds the request, walks the backend
    /// chain with `call`, and turns the first answer into `G` with `finish`; when no backend answers, degrades
    /// as the target says. A reject target's refusal is its whole leg.
    async fn llm_leg<C: BackendCall, G>(
        &self,
        prepared: &Prepared,
        input: &RouteInput,
        deadline: Option<Instant>,
        call: C,
        finish: impl FnOnce(&Target, &ChatRequest, Answer<C::Output>) -> Result<G, RouterError>,
    ) -> Result<LlmLeg<G>, RouterError> {
        let target = &prepared.routing.decision.target;
        let mut leg = LlmLeg {
            generation: None,
            degraded: None,
            rejection: (target.kind == TargetKind::Reject).then(|| target.message.clone()),
        };
        if target.backends.is_empty() {
            return Ok(leg);
        }
        self.quotas.check_tokens(&input.tenant)?;
        let request = self.llm_request(prepared.ask(), input, Attempt::First)?;
        match self.first_answer(target, &request, deadline, call).await? {
            Ok(answer) => leg.generation = Some(finish(target, &request, answer)?),
            Err(last) => {
                let fallback = backend_chain::degrade(target, prepared.prediction.is_some(), last)?;
                leg.degraded = Some(fallback.reason);
                leg.rejection = leg.rejection.or(fallback.rejection);
            }
        }
        Ok(leg)
    }

    /// Everything up to the LLM call: validation, classification, decision, scoring (a remote scorer's call ends
    /// by `deadline`). A stream sends its result at once, before [`Engine::open_stream`].
    pub async fn prepare(&self, input: &RouteInput, deadline: Option<Instant>) -> Result<Prepared, RouterError> {
        self.check_limits(input)?;
        let models = self.models();
        let valid = input.record.as_ref().map(|r| validate_record(&models, r)).transpose()?;
        let routing = self.classify_and_decide(&models, input).await?;
        let target = &routing.decision.target;
        let prediction = if target.kind.needs_record() {
            let record = valid.ok_or_else(|| {
                RouterError::invalid(
                    "features",
                    format!("target {:?} ({:?}) needs a customer record", target.name, target.kind),
                )
            })?;
            // Counted here, not in `score`, so a mirrored request's shadow does not count its record twice.
            let bins = models.drift.record_bins(&record);
            let candidate = models
                .candidate
                .as_ref()
                .filter(|c| c.scorer.is_some())
                .map(|c| (c, record.clone()));
            let prediction = self
                .score(&models, record, input.record.as_ref(), target, deadline)
                .await?;
            if let Some(bins) = bins {
                models.drift.observe_scored(bins, prediction.score);
            }
            if let Some((candidate, record)) = candidate {
                candidate.shadow_score(&self.metrics, record, prediction.score, prediction.threshold);
            }
            Some(prediction)
        } else {
            None
        };
        let grounds = grounds(&routing.policy, target, prediction.as_ref(), input);
        Ok(Prepared {
            routing,
            prediction,
            grounds,
            models,
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

    async fn classify_and_decide(&self, models: &ServingModels, input: &RouteInput) -> Result<Routing, RouterError> {
        let span = spans::child(SPAN_CLASSIFY);
        let identity = &models.pool.classifier().identity;
        span.set_attribute(CLASSIFIER_MODEL, identity.name.clone());
        span.set_attribute(CLASSIFIER_VERSION, identity.version.clone());
        if let Some(cap) = self.capture_content {
            span.set_attribute(TEXT, llm::telemetry::truncate(input.text.clone(), cap));
        }
        let started = Instant::now();
        let classification = match models
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
        let (linear, linear_confidence) = classification.linear_decided();
        models.drift.observe_classification(&linear.group, linear_confidence);
        if let Some(candidate) = &models.candidate {
            candidate.shadow_classification(&self.metrics, &input.text, input.record.is_some(), &linear.label);
        }
        let (decided, confidence) = classification.decided();
        let mut classified = Classified {
            label: decided.label.clone(),
            group: decided.group.clone(),
            confidence,
            margin: 0.0,
            tier: classification.tier,
        };
        let top = classification.top(TOP_LABELS);
        let margin = classical::Classification::margin(&top);
        let top_labels: Vec<LabelScore> = top
            .into_iter()
            .map(|(l, p)| LabelScore {
                label: l.label.clone(),
                group: l.group.clone(),
                probability: p,
            })
            .collect();
        classified.margin = margin;
        span.set_attribute(CLASSIFIER_LABEL, classified.label.clone());
        span.set_attribute(CLASSIFIER_LABEL_GROUP, classified.group.clone());
        span.set_attribute(CLASSIFIER_CONFIDENCE, f64::from(confidence));
        span.set_attribute(CLASSIFIER_MARGIN, f64::from(margin));
        span.set_attribute(CLASSIFIER_TIER, classification.tier.as_str());
        let encoder = match (classification.tier, models.pool.encoder()) {
            (classical::Tier::Encoder, Some((info, _))) => {
                span.set_attribute(CLASSIFIER_ENCODER, info.identity.to_string());
                Some((info.identity.name.clone(), info.identity.version.clone()))
            }
            _ => None,
        };
        let elapsed = started.elapsed();
        span.set_attribute(CLASSIFIER_DURATION_MS, elapsed.as_secs_f64() * 1000.0);
        self.metrics.classify(classification.tier, elapsed);
        drop(span);

        let span = spans::child(SPAN_DECIDE);
        let policy = self.policy.current();
        span.set_attribute(POLICY_VERSION, policy.version.clone());
        // On the SERVER span (the current one here): an attribute, and a field of every later log line.
        tracing::Span::current().record(POLICY_VERSION, policy.version.as_str());
        let facts = Facts {
            label: &classified.label,
            group: &classified.group,
            confidence: classified.confidence,
            margin: classified.margin,
            tenant: &input.tenant,
            has_record: input.record.is_some(),
            tier: classified.tier,
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
        self.metrics
            .decision(&classified.group, &decision.target.name, confidence);
        Ok(Routing {
            policy,
            classified,
            top_labels,
            classifier: (identity.name.clone(), identity.version.clone()),
            encoder,
            decision,
        })
    }

    /// The chat request of `ask`'s `attempt`.
    fn llm_request(&self, ask: Ask<'_>, input: &RouteInput, attempt: Attempt) -> Result<ChatRequest, RouterError> {
        let Ask {
            models,
            policy,
            target,
            prediction,
            grounds,
        } = ask;
        let prompt = PromptInput {
            text: &input.text,
            tenant: &input.tenant,
            max_tokens: input.max_tokens,
            temperature: input.temperature,
            record: input.record.as_ref().map(|r| (&models.pool.scorer().schema, r)),
            prediction: prediction.map(|p| ScoreFacts {
                model: &p.model,
                version: &p.version,
                score: p.score,
                threshold: p.threshold,
                churn: p.churn,
                top_features: &p.top_features,
            }),
            grounds,
        };
        policy
            .prompts
            .render(target, &prompt, attempt)
            .map_err(RouterError::from)
    }

    /// How the GenAI metrics label calls to the backend `name` (its provider, model and server from config).
    fn llm_labels(&self, name: &str) -> crate::metrics::LlmLabels {
        let backend = self.backends.get(name);
        let (host, port) = backend.map(|b| b.address()).unwrap_or_default();
        crate::metrics::LlmLabels {
            backend: name.to_owned(),
            provider: backend.map(|b| b.provider().to_owned()).unwrap_or_default(),
            model: backend.map(|b| b.model().to_owned()).unwrap_or_default(),
            server: (host.map(str::to_owned), port),
        }
    }

    fn backend(&self, target: &Target, name: &str) -> Result<&GuardedBackend, RouterError> {
        self.backends
            .get(name)
            .map(Arc::as_ref)
            .ok_or_else(|| RouterError::MissingBackend {
                target: target.name.clone(),
                backend: name.to_owned(),
            })
    }
}

/// The ONNX Runtime the config names (else `ORT_DYLIB_PATH`).
fn runtime(config: &Config) -> Result<OnnxRuntime, LoadError> {
    Ok(match &config.models.onnx_runtime {
        Some(path) => OnnxRuntime::load(path)?,
        None => OnnxRuntime::from_env()?,
    })
}

/// What a policy is checked against: the configured backends and scorers, and the classifier's labels.
pub fn policy_context(config: &Config, labels: &[classical::metadata::LabelInfo]) -> PolicyContext {
    PolicyContext {
        backends: config.backends.keys().cloned().collect(),
        scorers: config.scorers.keys().cloned().collect(),
        labels: Some(label_map(labels)),
        fields: None,
    }
}

/// Label → group, as policies are checked against.
fn label_map(labels: &[classical::metadata::LabelInfo]) -> BTreeMap<String, String> {
    labels.iter().map(|l| (l.label.clone(), l.group.clone())).collect()
}

/// What a hybrid target's explanation must agree with: the prediction's band and strongest fields.
fn grounds(
    policy: &Policy,
    target: &Target,
    prediction: Option<&Prediction>,
    input: &RouteInput,
) -> Option<crate::explanation::Grounds> {
    let prediction = prediction.filter(|_| target.kind == TargetKind::Hybrid)?;
    Some(policy.explanations.grounds(
        (prediction.score, prediction.threshold),
        &prediction.top_features,
        input.record.as_ref(),
    ))
}

/// What a chat request is made from.
#[derive(Clone, Copy)]
struct Ask<'a> {
    models: &'a ServingModels,
    policy: &'a Policy,
    target: &'a Target,
    prediction: Option<&'a Prediction>,
    grounds: Option<&'a crate::explanation::Grounds>,
}

impl Prepared {
    /// What its chat requests are made from.
    fn ask(&self) -> Ask<'_> {
        Ask {
            models: &self.models,
            policy: &self.routing.policy,
            target: &self.routing.decision.target,
            prediction: self.prediction.as_ref(),
            grounds: self.grounds.as_ref(),
        }
    }
}

/// What a request's LLM leg came to: the answer, or how the target degraded without one.
struct LlmLeg<G> {
    generation: Option<G>,
    degraded: Option<String>,
    /// The refusal answered instead: a reject target's, or the one a target fails open to.
    rejection: Option<String>,
}

/// Shared handle to the engine once it is loaded.
pub type SharedEngine = Arc<tokio::sync::OnceCell<Engine>>;
