//! The two models Switchyard serves over the Open Inference Protocol, as tensors: what they take and give
//! (`ModelMetadata`), and one inference over decoded input columns (`ModelInfer`), through the same inference
//! pool, schema validation and drift counting as the Router path.

use std::collections::BTreeMap;

use classical::schema::FeatureValue;
use classical::{InferencePool, schema::FeatureKind};
use switchyard_proto::inference::model_metadata_response::TensorMetadata;

use super::tensors::{Column, Input, Output, field_error};
use crate::engine::{Engine, ServingModels};
use crate::error::RouterError;
use crate::request::check_model_string;

/// The most rows one infer call may carry: work per call stays bounded, like a Router call's.
pub const MAX_ROWS: usize = 1024;

/// The platform both models report: ONNX models run by ONNX Runtime, as Triton names it.
pub const PLATFORM: &str = "onnxruntime_onnx";

/// A model the protocol can address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// The churn scorer: a record's fields in, its churn probability out.
    Scorer,
    /// The request classifier as the gateway runs it (the cascade when configured): text in, probabilities out.
    Classifier,
}

impl Served {
    /// The model named `name` at `version` (empty: the one served).
    pub fn find(pool: &InferencePool, name: &str, version: &str) -> Result<Self, RouterError> {
        let candidates = [
            (Self::Scorer, identity(pool, Self::Scorer)),
            (Self::Classifier, identity(pool, Self::Classifier)),
        ];
        candidates
            .iter()
            .find(|(_, (n, v))| n == name && (version.is_empty() || v == version))
            .map(|(served, _)| *served)
            .ok_or_else(|| RouterError::UnknownModel {
                name: name.to_owned(),
                version: version.to_owned(),
                served: candidates
                    .iter()
                    .map(|(_, (n, v))| format!("{n} ({v})"))
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// The model's name and version.
    pub fn identity(self, pool: &InferencePool) -> (String, String) {
        identity(pool, self)
    }

    /// Its inputs and outputs; a dimension of any size is -1.
    pub fn tensors(self, pool: &InferencePool) -> (Vec<TensorMetadata>, Vec<TensorMetadata>) {
        let meta = |name: &str, datatype: &str, shape: Vec<i64>| TensorMetadata {
            name: name.to_owned(),
            datatype: datatype.to_owned(),
            shape,
        };
        match self {
            Self::Scorer => (
                pool.scorer()
                    .schema
                    .features()
                    .iter()
                    .map(|spec| {
                        let datatype = match spec.kind {
                            FeatureKind::String { .. } => "BYTES",
                            FeatureKind::Number { .. } | FeatureKind::Integer { .. } => "FP32",
                        };
                        meta(&spec.name, datatype, vec![-1, 1])
                    })
                    .collect(),
                vec![meta(PROBABILITY, "FP32", vec![-1, 1]), meta(CHURN, "BOOL", vec![-1, 1])],
            ),
            Self::Classifier => {
                let labels = i64::try_from(pool.classifier().labels.len()).unwrap_or(i64::MAX);
                (
                    vec![meta(TEXT, "BYTES", vec![-1, 1]), meta(HAS_RECORD, "BOOL", vec![-1, 1])],
                    vec![
                        meta(PROBABILITIES, "FP32", vec![-1, labels]),
                        meta(LABEL, "BYTES", vec![-1, 1]),
                    ],
                )
            }
        }
    }

    /// Runs the model of the serving set `models` on `inputs`; every output, in the metadata's order.
    pub async fn infer(
        self,
        engine: &Engine,
        models: &ServingModels,
        inputs: Vec<Input>,
    ) -> Result<Vec<Output>, RouterError> {
        let (expected, _) = self.tensors(&models.pool);
        let mut by_name: BTreeMap<String, Input> = BTreeMap::new();
        for input in inputs {
            if !expected.iter().any(|t| t.name == input.name) {
                return Err(field_error(&input.name, "not an input of this model"));
            }
            if by_name.contains_key(&input.name) {
                return Err(field_error(&input.name, "sent twice"));
            }
            by_name.insert(input.name.clone(), input);
        }
        let rows = rows(&by_name)?;
        match self {
            Self::Scorer => score(models, &by_name, rows).await,
            Self::Classifier => classify(engine, models, &by_name, rows).await,
        }
    }
}

const PROBABILITY: &str = "probability";
const CHURN: &str = "churn";
const TEXT: &str = "text";
const HAS_RECORD: &str = "has_record";
const PROBABILITIES: &str = "probabilities";
const LABEL: &str = "label";

fn identity(pool: &InferencePool, served: Served) -> (String, String) {
    let identity = match served {
        Served::Scorer => &pool.scorer().identity,
        Served::Classifier => &pool.classifier().identity,
    };
    (identity.name.clone(), identity.version.clone())
}

/// The rows every input agrees on (1 to [`MAX_ROWS`]).
fn rows(inputs: &BTreeMap<String, Input>) -> Result<usize, RouterError> {
    let mut rows = None;
    for input in inputs.values() {
        let n = input.rows()?;
        match rows {
            Some(m) if m != n => {
                return Err(field_error(
                    &input.name,
                    &format!("{n} rows where another input has {m}"),
                ));
            }
            _ => rows = Some(n),
        }
    }
    match rows {
        None => Err(RouterError::invalid("inputs", "no input tensors")),
        Some(0) => Err(RouterError::invalid("inputs", "no rows")),
        Some(n) if n > MAX_ROWS => Err(RouterError::invalid(
            "inputs",
            format!("{n} rows; at most {MAX_ROWS} per call"),
        )),
        Some(n) => Ok(n),
    }
}

async fn score(
    models: &ServingModels,
    inputs: &BTreeMap<String, Input>,
    rows: usize,
) -> Result<Vec<Output>, RouterError> {
    let schema = &models.pool.scorer().schema;
    let mut records = vec![BTreeMap::new(); rows];
    for spec in schema.features() {
        let input = inputs
            .get(&spec.name)
            .ok_or_else(|| field_error(&spec.name, "missing"))?;
        for (row, record) in records.iter_mut().enumerate() {
            record.insert(spec.name.clone(), value(input, row)?);
        }
    }
    let mut valid = Vec::with_capacity(rows);
    for (row, record) in records.iter().enumerate() {
        let checked = schema.validate(record).map_err(|errors| {
            let first = errors
                .first()
                .map(|e| (e.field.as_str(), e.reason.as_str()))
                .unwrap_or(("", ""));
            field_error(first.0, &format!("row {row}: {}", first.1))
        })?;
        valid.push(checked);
    }
    let bins: Vec<_> = valid.iter().map(|r| models.drift.record_bins(r)).collect();
    let scores = futures::future::try_join_all(valid.into_iter().map(|r| models.pool.score(r))).await?;
    for (bins, score) in bins.into_iter().zip(&scores) {
        if let Some(bins) = bins {
            models.drift.observe_scored(bins, score.probability);
        }
    }
    let shape = vec![i64::try_from(rows).unwrap_or(i64::MAX), 1];
    Ok(vec![
        Output {
            name: PROBABILITY,
            shape: shape.clone(),
            column: Column::Number(scores.iter().map(|s| f64::from(s.probability)).collect()),
        },
        Output {
            name: CHURN,
            shape,
            column: Column::Bool(scores.iter().map(|s| s.churn).collect()),
        },
    ])
}

/// Row `row` of a BYTES input as text a model can read: UTF-8 without a NUL.
fn model_text(input: &Input, row: usize, bytes: &[u8]) -> Result<String, RouterError> {
    let text =
        String::from_utf8(bytes.to_vec()).map_err(|_| field_error(&input.name, &format!("row {row}: not UTF-8")))?;
    check_model_string(&format!("inputs.{}", input.name), &text)?;
    Ok(text)
}

/// Row `row` of `input` as a record field's value: BYTES as text (UTF-8), a number as itself (NaN as null), BOOL
/// as a boolean (refused by the schema where it expects something else).
fn value(input: &Input, row: usize) -> Result<FeatureValue, RouterError> {
    Ok(match &input.column {
        Column::Bytes(values) => FeatureValue::Text(model_text(input, row, &values[row])?),
        Column::Number(values) if values[row].is_nan() => FeatureValue::Null,
        Column::Number(values) => FeatureValue::Number(values[row]),
        Column::Bool(values) => FeatureValue::Bool(values[row]),
    })
}

async fn classify(
    engine: &Engine,
    models: &ServingModels,
    inputs: &BTreeMap<String, Input>,
    rows: usize,
) -> Result<Vec<Output>, RouterError> {
    let texts: Vec<String> = match inputs.get(TEXT).map(|i| (i, &i.column)) {
        Some((input, Column::Bytes(values))) => values
            .iter()
            .enumerate()
            .map(|(row, v)| model_text(input, row, v))
            .collect::<Result<_, _>>()?,
        Some((input, _)) => return Err(field_error(&input.name, "expected BYTES")),
        None => return Err(field_error(TEXT, "missing")),
    };
    let flags: Vec<bool> = match inputs.get(HAS_RECORD).map(|i| &i.column) {
        None => vec![false; rows],
        Some(Column::Bool(values)) => values.clone(),
        Some(Column::Number(values)) => values.iter().map(|v| *v != 0.0).collect(),
        Some(Column::Bytes(_)) => return Err(field_error(HAS_RECORD, "expected BOOL")),
    };
    let max = engine.max_text_bytes();
    if let Some((row, text)) = texts.iter().enumerate().find(|(_, t)| t.len() > max) {
        return Err(field_error(
            TEXT,
            &format!("row {row}: {} bytes exceeds the limit of {max} bytes", text.len()),
        ));
    }
    let pool = &models.pool;
    let answers =
        futures::future::try_join_all(texts.iter().zip(&flags).map(|(text, flag)| pool.classify(text, *flag))).await?;
    let mut probabilities = Vec::with_capacity(rows * pool.classifier().labels.len());
    let mut labels = Vec::with_capacity(rows);
    for answer in &answers {
        let (linear, confidence) = answer.linear_decided();
        models.drift.observe_classification(&linear.group, confidence);
        probabilities.extend(answer.probabilities.iter().map(|p| f64::from(*p)));
        labels.push(answer.decided().0.label.clone().into_bytes());
    }
    let rows = i64::try_from(rows).unwrap_or(i64::MAX);
    let width = i64::try_from(pool.classifier().labels.len()).unwrap_or(i64::MAX);
    Ok(vec![
        Output {
            name: PROBABILITIES,
            shape: vec![rows, width],
            column: Column::Number(probabilities),
        },
        Output {
            name: LABEL,
            shape: vec![rows, 1],
            column: Column::Bytes(labels),
        },
    ])
}
