//! What the engine answers: routing, predictions, generations, whole or streamed.

use std::sync::Arc;

use llm::ChatCompletion;

use super::accounting::GenerationStream;
use super::shadow::ShadowPlan;
use crate::policy::{Classified, Decision, Policy};

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
    /// The encoder's name and version, when the request escalated to the cascade's second tier.
    pub encoder: Option<(String, String)>,
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
    /// How a hybrid explanation was made and checked (hybrid targets with the check on).
    pub explanation: Option<super::ExplanationReport>,
    /// Present for reject targets, and for targets that fail open to a refusal.
    pub rejection: Option<String>,
    /// Why the answer is not the target's full answer (score only, or a refusal), when it is not.
    pub degraded: Option<String>,
    /// The target's LLM backends and their circuit state.
    pub backends: Vec<BackendState>,
    /// The shadow to run in the background, when the decision mirrors this request.
    pub shadow: Option<ShadowPlan>,
}

/// A request after everything but the LLM call: what a stream sends first.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Classification and decision.
    pub routing: Routing,
    /// Present for classical and hybrid targets.
    pub prediction: Option<Prediction>,
    /// What a hybrid target's explanation must agree with.
    pub grounds: Option<crate::explanation::Grounds>,
    /// The model set that answered (the LLM leg renders the record with its schema).
    pub models: std::sync::Arc<super::ServingModels>,
}

/// The LLM leg of a streamed answer.
pub struct StreamLeg {
    /// Present for reject targets, and for targets that fail open to a refusal.
    pub rejection: Option<String>,
    /// The LLM stream (llm and hybrid targets, unless degraded).
    pub generation: Option<GenerationStream>,
    /// Why the answer is not the target's full answer (score only, or a refusal), when it is not.
    pub degraded: Option<String>,
    /// The shadow to run in the background, when the decision mirrors this request.
    pub shadow: Option<ShadowPlan>,
}
