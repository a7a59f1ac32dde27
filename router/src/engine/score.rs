//! Scoring a record: in-process through the inference pool, or on a remote scorer (the record and, for an
//! explanation, its occluded copies in one call), under the `score` span.

use std::collections::BTreeMap;

use classical::schema::ValidRecord;
use tokio::time::Instant;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::{Engine, Prediction, ServingModels, TOP_FEATURES};
use crate::error::RouterError;
use crate::policy::{Target, TargetKind};
use crate::remote::RemoteScorer;
use crate::telemetry::names::*;
use crate::telemetry::spans;

impl Engine {
    /// Scores a record with `target`'s scorer (in-process, or remote by `deadline`); a hybrid target also gets
    /// the score attributed to the record's fields. `raw` is the record as sent, recorded on the span only with
    /// content capture on.
    pub(super) async fn score(
        &self,
        models: &ServingModels,
        record: ValidRecord,
        raw: Option<&BTreeMap<String, classical::schema::FeatureValue>>,
        target: &Target,
        deadline: Option<Instant>,
    ) -> Result<Prediction, RouterError> {
        let explain = target.kind == TargetKind::Hybrid;
        let span = spans::child(SPAN_SCORE);
        let info = models.pool.scorer();
        span.set_attribute(SCORER_MODEL, info.identity.name.clone());
        span.set_attribute(SCORER_VERSION, info.identity.version.clone());
        span.set_attribute(SCORER_EXPLAINED, explain);
        if let (Some(cap), Some(raw)) = (self.capture_content, raw) {
            span.set_attribute(SCORER_FEATURES, llm::telemetry::truncate(features_json(raw), cap));
        }
        let remote = match &target.scorer {
            Some(name) => Some(self.scorers.get(name).ok_or_else(|| RouterError::MissingBackend {
                target: target.name.clone(),
                backend: name.clone(),
            })?),
            None => None,
        };
        if let Some(remote) = remote {
            span.set_attribute(SCORER_REMOTE, remote.name().to_owned());
            let (host, port) = remote.address();
            span.set_attribute(SERVER_ADDRESS, host);
            if let Some(port) = port {
                span.set_attribute(SERVER_PORT, i64::from(port));
            }
        }
        let started = Instant::now();
        let scored = async {
            match remote {
                Some(remote) => score_remote(models, remote, record, explain, deadline).await,
                None if explain => models.pool.score_explained(record).await.map_err(RouterError::from),
                None => models
                    .pool
                    .score(record)
                    .await
                    .map(|score| (score, Vec::new()))
                    .map_err(RouterError::from),
            }
        }
        .instrument(span.clone())
        .await;
        self.metrics.score(started.elapsed());
        let (score, mut top_features) = match scored {
            Ok(scored) => scored,
            Err(error) => {
                spans::record_failure(&span, error.kind(), error.to_string());
                return Err(error);
            }
        };
        // The record itself, plus one occluded copy per attributed field (run in one batch).
        let rows = 1 + top_features.len();
        span.set_attribute(SCORER_BATCH_SIZE, i64::try_from(rows).unwrap_or(i64::MAX));
        span.set_attribute(SCORER_SCORE, f64::from(score.probability));
        span.set_attribute(SCORER_CHURN, score.churn);
        top_features.truncate(TOP_FEATURES);
        Ok(Prediction {
            model: info.identity.name.clone(),
            version: info.identity.version.clone(),
            score: score.probability,
            churn: score.churn,
            threshold: remote.map_or(info.decision_threshold, |r| r.threshold(info.decision_threshold)),
            top_features,
        })
    }
}

/// `record` checked against the serving scorer's schema.
pub(super) fn validate_record(
    models: &ServingModels,
    record: &BTreeMap<String, classical::schema::FeatureValue>,
) -> Result<ValidRecord, RouterError> {
    models
        .pool
        .scorer()
        .schema
        .validate(record)
        .map_err(|e| classical::ClassicalError::InvalidFeatures(e).into())
}

/// A record scored by a remote scorer, with its occluded copies in the same call when `explain`: the same
/// answer shape as the in-process scorer's.
async fn score_remote(
    models: &ServingModels,
    remote: &RemoteScorer,
    record: ValidRecord,
    explain: bool,
    deadline: Option<Instant>,
) -> Result<(classical::ChurnScore, Vec<classical::Influence>), RouterError> {
    let (names, mut rows): (Vec<String>, Vec<ValidRecord>) = if explain {
        classical::occlusions(&models.pool.scorer().schema, &record)
            .into_iter()
            .unzip()
    } else {
        (Vec::new(), Vec::new())
    };
    rows.insert(0, record);
    let scorer = models.pool.scorer();
    let probabilities = remote.probabilities(&scorer.schema, &rows, deadline).await?;
    let probability = probabilities.first().copied().unwrap_or_default();
    let influences = classical::influences(probability, names.into_iter().zip(probabilities.into_iter().skip(1)));
    let score = classical::ChurnScore {
        probability,
        churn: probability >= remote.threshold(scorer.decision_threshold),
    };
    Ok((score, influences))
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
