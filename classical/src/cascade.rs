//! The classifier cascade: the linear model answers when it is sure, the encoder decides when it is not.
//!
//! The linear model (TF-IDF, ~10 µs) runs on every request. Its answer stands when its calibrated top probability
//! and its top-2 margin both clear their bars; otherwise the request escalates to the encoder (a fine-tuned
//! transformer, ~1 ms), whose probabilities, optionally blended with the linear model's, decide. The bars are
//! chosen offline by `switchyard-evals cascade` for a target escalation share, and the same functions here decide
//! both in the gateway and in that command, so what the evals measured is what serves.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::{
    ClassicalError, Classification, ClassifierInfo, EncoderInfo, OnnxRuntime, RequestClassifier, RequestEncoder,
};

/// Which tier of the cascade answered a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    /// The linear model's answer stood.
    Linear,
    /// The request escalated; the encoder (blended with the linear model by `linear_weight`) decided.
    Encoder,
}

impl Tier {
    /// A short stable name for spans, metrics and policy rules.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Linear => "linear",
            Self::Encoder => "encoder",
        }
    }

    /// Parses [`Tier::as_str`]'s names.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "linear" => Some(Self::Linear),
            "encoder" => Some(Self::Encoder),
            _ => None,
        }
    }
}

/// When a request escalates and how the escalated answer is formed.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct CascadeBars {
    /// The linear model's top probability must reach this for its answer to stand.
    pub min_confidence: f32,
    /// ... and its top-2 margin this.
    pub min_margin: f32,
    /// Escalated answers: `linear_weight × linear + (1 − linear_weight) × encoder` (0: the encoder alone).
    pub linear_weight: f32,
    /// Escalated answers whose top probability is below this are out of scope.
    pub out_of_scope_threshold: f32,
}

impl CascadeBars {
    /// Checks that every value is a probability.
    pub fn validate(&self) -> Result<(), String> {
        for (name, value) in [
            ("min_confidence", self.min_confidence),
            ("min_margin", self.min_margin),
            ("linear_weight", self.linear_weight),
            ("out_of_scope_threshold", self.out_of_scope_threshold),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(format!("{name} = {value} is not in [0, 1]"));
            }
        }
        Ok(())
    }

    /// Whether the linear model's answer stands (no escalation).
    pub fn linear_answers(&self, linear: &Classification) -> bool {
        let top = linear.top(2);
        let confidence = top.first().map_or(0.0, |(_, p)| *p);
        self.clears(confidence, Classification::margin(&top))
    }

    /// The bar itself, on a top probability and top-2 margin: what [`CascadeBars::linear_answers`] decides by
    /// (and what `switchyard-evals cascade` sweeps without re-ranking every label).
    pub fn clears(&self, confidence: f32, margin: f32) -> bool {
        confidence >= self.min_confidence && margin >= self.min_margin
    }

    /// The escalated answer from the linear model's classification and the encoder's probabilities (same label
    /// order, checked when the pool starts).
    pub fn escalated(&self, linear: &Classification, encoder: &[f32]) -> Classification {
        let w = self.linear_weight;
        let blended = linear
            .probabilities
            .iter()
            .zip(encoder)
            .map(|(l, e)| w * l + (1.0 - w) * e)
            .collect();
        linear.escalated(blended, self.out_of_scope_threshold)
    }
}

/// The encoder tier of the pool: where the model is, its bars and how its runs are batched.
#[derive(Debug, Clone)]
pub struct CascadeConfig {
    /// The encoder's `.onnx` file (its `tokenizer.json` beside it).
    pub encoder: PathBuf,
    /// When to escalate and how to decide then.
    pub bars: CascadeBars,
}

/// Fails unless the encoder's labels are the linear classifier's, in the same order: the cascade blends and
/// decides column by column.
fn check_same_labels(linear: &ClassifierInfo, encoder: &EncoderInfo, path: &Path) -> Result<(), ClassicalError> {
    if linear.labels == encoder.labels {
        return Ok(());
    }
    Err(ClassicalError::Metadata {
        path: path.to_path_buf(),
        key: "switchyard.labels".to_owned(),
        reason: format!(
            "{} labels differ from the classifier {}'s ({} vs {})",
            encoder.identity,
            linear.identity,
            encoder.labels.len(),
            linear.labels.len()
        ),
    })
}

/// The request classifier as served: the linear model, and the encoder tier when the cascade is on. One value
/// per worker (each owns its sessions); the gateway's pool and the evals both classify through it.
pub struct CascadeClassifier {
    linear: RequestClassifier,
    encoder: Option<EncoderTier>,
}

impl CascadeClassifier {
    /// Loads the linear model and, with `cascade`, the encoder (whose labels must be the linear model's).
    pub fn load(
        runtime: &OnnxRuntime,
        classifier: &Path,
        cascade: Option<&CascadeConfig>,
    ) -> Result<Self, ClassicalError> {
        let linear = RequestClassifier::load(runtime, classifier)?;
        let encoder = match cascade {
            Some(cascade) => {
                let encoder = RequestEncoder::load(runtime, &cascade.encoder)?;
                check_same_labels(linear.info(), encoder.info(), &cascade.encoder)?;
                Some(EncoderTier {
                    encoder,
                    bars: cascade.bars,
                })
            }
            None => None,
        };
        Ok(Self { linear, encoder })
    }

    /// The linear model: its labels, groups, threshold and identity (the encoder's labels are the same).
    pub fn linear(&mut self) -> &mut RequestClassifier {
        &mut self.linear
    }

    /// The encoder's description and the bars, when the cascade is on.
    pub fn encoder(&self) -> Option<(&Arc<EncoderInfo>, CascadeBars)> {
        self.encoder.as_ref().map(|tier| (tier.encoder.info(), tier.bars))
    }

    /// Classifies a batch through the cascade, one answer per request in order: the linear model in one run
    /// (a failed run is retried request by request), then the encoder for each request it is unsure of, alone;
    /// `observe` hears of every encoder run and its size.
    pub fn classify_batch(
        &mut self,
        requests: &[(&str, bool)],
        observe: impl Fn(usize),
    ) -> Vec<Result<Classification, ClassicalError>> {
        let mut answers: Vec<Result<Classification, ClassicalError>> = match self.linear.classify_batch(requests) {
            Ok(answers) if answers.len() == requests.len() => answers.into_iter().map(Ok).collect(),
            _ => requests
                .iter()
                .map(|(text, has_record)| self.linear.classify(text, *has_record))
                .collect(),
        };
        if let Some(tier) = &mut self.encoder {
            tier.escalate(requests, &mut answers, observe);
        }
        answers
    }
}

/// A worker's encoder session and the bars it escalates by.
struct EncoderTier {
    encoder: RequestEncoder,
    bars: CascadeBars,
}

impl EncoderTier {
    /// Replaces the linear answers that do not clear the bars with escalated ones, running the encoder on one
    /// request at a time: the int8 graph quantises its activations with a scale computed over the whole run, so
    /// in a batched run a request's answer would depend on the other requests in it (measured: 17 of 5,707
    /// decisions changed between batches of 64 and single runs). `observe` hears of each run. A request the
    /// encoder cannot run keeps its linear answer (logged): a valid, if less sure, classification, where
    /// refusing the request would be worse.
    fn escalate(
        &mut self,
        requests: &[(&str, bool)],
        answers: &mut [Result<Classification, ClassicalError>],
        observe: impl Fn(usize),
    ) {
        for (request, answer) in requests.iter().zip(answers.iter_mut()) {
            let Ok(linear) = answer else { continue };
            if self.bars.linear_answers(linear) {
                continue;
            }
            observe(1);
            let row = self
                .encoder
                .probabilities(std::slice::from_ref(request))
                .and_then(|mut rows| rows.pop().ok_or_else(|| self.empty()));
            match row {
                Ok(row) => *answer = Ok(self.bars.escalated(linear, &row)),
                Err(error) => tracing::warn!(%error, "encoder failed; the linear answer stands"),
            }
        }
    }

    fn empty(&self) -> ClassicalError {
        ClassicalError::Inference {
            model: self.encoder.info().identity.to_string(),
            reason: "empty output".to_owned(),
        }
    }
}
