//! The churn scorer: a validated customer record → calibrated churn probability.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use ort::session::Session;

use crate::metadata::{MetadataReader, ModelIdentity};
use crate::schema::{FeatureKind, FeatureSchema, FeatureValue, InputValue, ValidRecord};
use crate::{ClassicalError, OnnxRuntime, tensors};

/// The scorer's description, shared by every session loaded from the same file.
#[derive(Debug)]
pub struct ScorerInfo {
    /// Name, version and provenance.
    pub identity: ModelIdentity,
    /// The fields a record must carry.
    pub schema: FeatureSchema,
    /// At or above this probability the record is labelled as churn.
    pub decision_threshold: f32,
}

/// One session of the churn scorer. `score` needs `&mut self`: give each worker its own.
pub struct ChurnScorer {
    session: Session,
    info: Arc<ScorerInfo>,
    name: String,
}

/// How much one field moves a record's score: the record's probability minus its probability with this field
/// set to the typical customer's value (positive: the field raises the churn risk).
#[derive(Debug, Clone, PartialEq)]
pub struct Influence {
    /// The field.
    pub feature: String,
    /// Probability change attributed to the field's value.
    pub delta: f32,
}

/// The scorer's output for one record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChurnScore {
    /// Calibrated probability of churn.
    pub probability: f32,
    /// `probability >= decision_threshold`.
    pub churn: bool,
}

impl ChurnScorer {
    /// Loads the model at `path` and reads its feature schema and threshold from the file's metadata.
    pub fn load(runtime: &OnnxRuntime, path: &Path) -> Result<Self, ClassicalError> {
        let session = runtime.session(path)?;
        let reader = MetadataReader::new(path, &session);
        reader.expect_kind("churn_scorer")?;
        let info = ScorerInfo {
            identity: reader.identity()?,
            schema: reader.feature_schema()?,
            decision_threshold: reader.threshold("switchyard.decision_threshold")?,
        };
        let name = info.identity.to_string();
        Ok(Self {
            session,
            info: Arc::new(info),
            name,
        })
    }

    /// The model's description.
    pub fn info(&self) -> &Arc<ScorerInfo> {
        &self.info
    }

    /// Validates `record` against the schema (every bad field reported) and scores it.
    pub fn score(&mut self, record: &BTreeMap<String, FeatureValue>) -> Result<ChurnScore, ClassicalError> {
        let valid = self
            .info
            .schema
            .validate(record)
            .map_err(ClassicalError::InvalidFeatures)?;
        self.score_valid(&valid)
    }

    /// Scores one already validated record.
    pub fn score_valid(&mut self, record: &ValidRecord) -> Result<ChurnScore, ClassicalError> {
        let mut scores = self.score_batch(std::slice::from_ref(record))?;
        scores.pop().ok_or_else(|| ClassicalError::Inference {
            model: self.name.clone(),
            reason: "empty output".into(),
        })
    }

    /// Per-field influences on `probability` (this record's score), largest first, by occlusion: each field in
    /// turn is set to the typical customer's value and the record re-scored, all in one batched run. Fields already
    /// at the typical value, or without one in the model file, are left out.
    pub fn influences(&mut self, record: &ValidRecord, probability: f32) -> Result<Vec<Influence>, ClassicalError> {
        let (names, variants): (Vec<String>, Vec<ValidRecord>) =
            occlusions(&self.info.schema, record).into_iter().unzip();
        if variants.is_empty() {
            return Ok(Vec::new());
        }
        let scores = self.score_batch(&variants)?;
        Ok(influences(
            probability,
            names.into_iter().zip(scores.into_iter().map(|s| s.probability)),
        ))
    }

    /// Scores already validated records in one run.
    pub fn score_batch(&mut self, records: &[ValidRecord]) -> Result<Vec<ChurnScore>, ClassicalError> {
        let mut inputs = Vec::with_capacity(self.info.schema.features().len());
        for (column, spec) in self.info.schema.features().iter().enumerate() {
            // Validation put a value of the spec's kind in every column, so the other arm never matches.
            let tensor = match spec.kind {
                FeatureKind::String { .. } => {
                    let texts: Vec<String> = records
                        .iter()
                        .map(|r| match &r.0[column] {
                            InputValue::Text(t) => t.clone(),
                            InputValue::Number(_) => String::new(),
                        })
                        .collect();
                    tensors::strings(&texts, &self.name)?
                }
                FeatureKind::Number { .. } | FeatureKind::Integer { .. } => {
                    let numbers: Vec<f32> = records
                        .iter()
                        .map(|r| match &r.0[column] {
                            InputValue::Number(n) => *n,
                            InputValue::Text(_) => f32::NAN,
                        })
                        .collect();
                    tensors::floats(numbers, &self.name)?
                }
            };
            inputs.push((spec.name.clone(), tensor));
        }
        let rows = tensors::run_probabilities(&mut self.session, inputs, records.len(), 2, &self.name)?;
        Ok(rows
            .into_iter()
            .map(|p| ChurnScore {
                probability: p[1],
                churn: p[1] >= self.info.decision_threshold,
            })
            .collect())
    }
}

/// The occluded copies of `record` that attribution scores: for each field with a typical value (in the schema)
/// that the record does not already hold, the record with that field set to it, named by the field.
pub fn occlusions(schema: &FeatureSchema, record: &ValidRecord) -> Vec<(String, ValidRecord)> {
    let mut out = Vec::new();
    for (column, spec) in schema.features().iter().enumerate() {
        let Some(reference) = spec.reference_input() else {
            continue;
        };
        if record.0.get(column) == Some(&reference) {
            continue;
        }
        let mut variant = record.clone();
        variant.0[column] = reference;
        out.push((spec.name.clone(), variant));
    }
    out
}

/// Per-field influences from a record's probability and the probabilities of its [`occlusions`], largest first:
/// the record's probability minus its occluded copy's.
pub fn influences(probability: f32, occluded: impl IntoIterator<Item = (String, f32)>) -> Vec<Influence> {
    let mut influences: Vec<Influence> = occluded
        .into_iter()
        .map(|(feature, p)| Influence {
            feature,
            delta: probability - p,
        })
        .collect();
    influences.sort_by(|a, b| b.delta.abs().total_cmp(&a.delta.abs()));
    influences
}
