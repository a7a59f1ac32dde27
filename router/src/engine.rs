//! The request path: validate, classify, decide, then score and/or generate.

use std::collections::BTreeMap;
use std::sync::Arc;

use classical::schema::ValidRecord;
use classical::{InferencePool, OnnxRuntime};
use futures::stream::BoxStream;
use llm::{ChatBackend, ChatCompletion, LlmError, StreamEvent};
use tracing::instrument;

use crate::config::Config;
use crate::error::RouterError;
use crate::policy::{Classified, Decision, Policy, RequestFacts, Target, TargetKind};
use crate::prompt;
use crate::request::RouteInput;

/// How many labels a decision reports.
const TOP_LABELS: usize = 5;

/// The loaded models, the policy and the LLM backends: everything a request needs.
pub struct Engine {
    pool: InferencePool,
    policy: Policy,
    backends: BTreeMap<String, ChatBackend>,
    max_text_bytes: usize,
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
#[derive(Debug, Clone, PartialEq)]
pub struct Routing {
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
}

/// An LLM's whole answer, with the backend that gave it.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// Backend name in config.
    pub backend: String,
    /// The completion.
    pub completion: ChatCompletion,
}

/// What `Route` answers.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Classification and decision.
    pub routing: Routing,
    /// Present for classical and hybrid targets.
    pub prediction: Option<Prediction>,
    /// Present for llm and hybrid targets.
    pub generation: Option<Generation>,
    /// Present for reject targets.
    pub rejection: Option<String>,
}

/// The first half of a streamed answer: routing and prediction are known, text is still to come.
pub struct StreamStart {
    /// Classification and decision.
    pub routing: Routing,
    /// Present for classical and hybrid targets.
    pub prediction: Option<Prediction>,
    /// Present for reject targets.
    pub rejection: Option<String>,
    /// The LLM's events and the backend producing them (llm and hybrid targets).
    pub generation: Option<(String, BoxStream<'static, Result<StreamEvent, LlmError>>)>,
}

impl Engine {
    /// Loads the ONNX Runtime and the models (blocking: call from a blocking context) and builds the backends.
    pub fn load(config: &Config) -> Result<Self, RouterError> {
        let runtime = match &config.models.onnx_runtime {
            Some(path) => OnnxRuntime::load(path)?,
            None => OnnxRuntime::from_env()?,
        };
        let pool = InferencePool::start(&runtime, &config.models.pool)?;
        let backends = config
            .backends
            .iter()
            .map(|(name, backend)| Ok((name.clone(), ChatBackend::new(backend.clone())?)))
            .collect::<Result<_, LlmError>>()?;
        Ok(Self {
            pool,
            policy: config.policy.clone(),
            backends,
            max_text_bytes: config.server.max_text_bytes,
        })
    }

    /// Classifies and decides, without dispatching.
    #[instrument(skip_all, fields(request_id = %input.request_id))]
    pub async fn explain(&self, input: &RouteInput) -> Result<Routing, RouterError> {
        self.check_limits(input)?;
        if let Some(record) = &input.record {
            self.validate_record(record)?;
        }
        self.classify_and_decide(input).await
    }

    /// Classifies, decides, and dispatches, waiting for the whole answer.
    #[instrument(skip_all, fields(request_id = %input.request_id))]
    pub async fn route(&self, input: &RouteInput) -> Result<Outcome, RouterError> {
        let prepared = self.prepare(input).await?;
        let generation = match prepared.backend {
            None => None,
            Some(backend) => {
                let request = self.llm_request(&prepared.routing.decision.target, input, prepared.prediction.as_ref());
                let completion = backend.complete(&request).await?;
                Some(Generation {
                    backend: backend.name().to_owned(),
                    completion,
                })
            }
        };
        Ok(Outcome {
            routing: prepared.routing,
            prediction: prepared.prediction,
            generation,
            rejection: prepared.rejection,
        })
    }

    /// Classifies, decides, scores, and opens the LLM stream (when the target has one).
    #[instrument(skip_all, fields(request_id = %input.request_id))]
    pub async fn route_stream(&self, input: &RouteInput) -> Result<StreamStart, RouterError> {
        let prepared = self.prepare(input).await?;
        let generation = match prepared.backend {
            None => None,
            Some(backend) => {
                let request = self.llm_request(&prepared.routing.decision.target, input, prepared.prediction.as_ref());
                Some((backend.name().to_owned(), backend.stream(&request).await?))
            }
        };
        Ok(StreamStart {
            routing: prepared.routing,
            prediction: prepared.prediction,
            rejection: prepared.rejection,
            generation,
        })
    }

    /// Everything up to the LLM call: validation, classification, decision, scoring, the backend to call.
    async fn prepare(&self, input: &RouteInput) -> Result<Prepared<'_>, RouterError> {
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
            Some(self.score(record).await?)
        } else {
            None
        };
        let rejection = (target.kind == TargetKind::Reject).then(|| target.message.clone());
        let backend = match target.kind {
            TargetKind::Llm | TargetKind::Hybrid => Some(self.backend(target)?),
            TargetKind::Classical | TargetKind::Reject => None,
        };
        Ok(Prepared {
            routing,
            prediction,
            rejection,
            backend,
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
        let classification = self.pool.classify(&input.text, input.record.is_some()).await?;
        let (decided, confidence) = classification.decided();
        let classified = Classified {
            label: decided.label.clone(),
            group: decided.group.clone(),
            confidence,
        };
        let top_labels = classification
            .top(TOP_LABELS)
            .into_iter()
            .map(|(l, p)| LabelScore {
                label: l.label.clone(),
                group: l.group.clone(),
                probability: p,
            })
            .collect();
        let decision = self.policy.decide(
            &classified,
            RequestFacts {
                force_target: input.force_target.as_deref(),
            },
        )?;
        tracing::debug!(label = %classified.label, confidence, target = %decision.target.name, "decided");
        let identity = &self.pool.classifier().identity;
        Ok(Routing {
            classified,
            top_labels,
            classifier: (identity.name.clone(), identity.version.clone()),
            decision,
        })
    }

    async fn score(&self, record: ValidRecord) -> Result<Prediction, RouterError> {
        let score = self.pool.score(record).await?;
        let info = self.pool.scorer();
        Ok(Prediction {
            model: info.identity.name.clone(),
            version: info.identity.version.clone(),
            score: score.probability,
            churn: score.churn,
            threshold: info.decision_threshold,
        })
    }

    fn llm_request(&self, target: &Target, input: &RouteInput, prediction: Option<&Prediction>) -> llm::ChatRequest {
        match (target.kind, prediction, &input.record) {
            (TargetKind::Hybrid, Some(prediction), Some(record)) => {
                prompt::hybrid(target, input, &self.pool.scorer().schema, record, prediction)
            }
            _ => prompt::chat(target, input),
        }
    }

    fn backend(&self, target: &Target) -> Result<&ChatBackend, RouterError> {
        target
            .backend
            .as_ref()
            .and_then(|b| self.backends.get(b))
            .ok_or_else(|| RouterError::Policy(crate::policy::PolicyError::UnknownTarget(target.name.clone())))
    }
}

/// The request after everything but the LLM call.
struct Prepared<'a> {
    routing: Routing,
    prediction: Option<Prediction>,
    rejection: Option<String>,
    backend: Option<&'a ChatBackend>,
}

/// Shared handle to the engine once it is loaded.
pub type SharedEngine = Arc<tokio::sync::OnceCell<Engine>>;
