//! Candidate model versions in the serving ones' shadow: a new classifier or scorer version is judged on live
//! traffic before it serves. After a request's own answer, the candidate classifies its text (agreement: the same
//! decided label as the serving linear model's) or scores its record (agreement: the same churn verdict at the
//! serving threshold; the probability difference is recorded too), in the background on its own single worker,
//! with a bound on how many wait; it never affects the request.

use std::sync::Arc;

use classical::schema::ValidRecord;
use classical::{InferencePool, OnnxRuntime, PoolConfig};
use tokio::sync::Semaphore;

use super::models::ModelVersion;
use crate::config::Resolved;
use crate::error::LoadError;
use crate::metrics::{CandidateOutcome, SharedMetrics};

/// Candidate comparisons that may wait or run at once; more are dropped (counted).
const MAX_WAITING: usize = 64;

/// The candidate versions and the pool that runs them.
pub struct Candidate {
    pool: InferencePool,
    /// The candidate classifier, when one is configured.
    pub classifier: Option<ModelVersion>,
    /// The candidate scorer, when one is configured.
    pub scorer: Option<ModelVersion>,
    slots: Arc<Semaphore>,
}

impl Candidate {
    /// The candidates the sources name, in one single-worker pool (a model without a candidate is loaded at its
    /// serving version to fill the pool; the linear classifier alone, as its candidate is compared with the serving
    /// linear model). `None` when neither source names a candidate.
    pub fn load(
        runtime: &OnnxRuntime,
        serving: &PoolConfig,
        classifier: &Resolved,
        scorer: &Resolved,
    ) -> Result<Option<Self>, LoadError> {
        if classifier.candidate.is_none() && scorer.candidate.is_none() {
            return Ok(None);
        }
        let config = PoolConfig {
            classifier: classifier
                .candidate
                .as_ref()
                .map_or(serving.classifier.clone(), |(f, _)| f.clone()),
            scorer: scorer
                .candidate
                .as_ref()
                .map_or(serving.scorer.clone(), |(f, _)| f.clone()),
            workers: 1,
            queue_capacity: MAX_WAITING,
            cascade: None,
            ..serving.clone()
        };
        let pool = InferencePool::start(runtime, &config, None)?;
        let checked = |candidate: &Option<(std::path::PathBuf, String)>,
                       identity: &classical::metadata::ModelIdentity| {
            candidate
                .as_ref()
                .map(|(file, directory)| {
                    if *directory == identity.version {
                        ModelVersion::read(identity, file)
                    } else {
                        Err(LoadError::ModelSet {
                            file: file.clone(),
                            reason: format!(
                                "the candidate's metadata says version {}, its directory {directory}",
                                identity.version
                            ),
                        })
                    }
                })
                .transpose()
        };
        Ok(Some(Self {
            classifier: checked(&classifier.candidate, &pool.classifier().identity)?,
            scorer: checked(&scorer.candidate, &pool.scorer().identity)?,
            pool,
            slots: Arc::new(Semaphore::new(MAX_WAITING)),
        }))
    }

    /// Classifies `text` with the candidate classifier in the background and counts whether it decides
    /// `serving_label`.
    pub fn shadow_classification(&self, metrics: &SharedMetrics, text: &str, has_record: bool, serving_label: &str) {
        let Some(candidate) = &self.classifier else { return };
        let Ok(slot) = self.slots.clone().try_acquire_owned() else {
            metrics.candidate(&candidate.name, &candidate.version, CandidateOutcome::Dropped);
            return;
        };
        let (pool, metrics, candidate) = (self.pool.clone(), metrics.clone(), candidate.clone());
        let (text, serving_label) = (text.to_owned(), serving_label.to_owned());
        tokio::spawn(async move {
            let outcome = match pool.classify(&text, has_record).await {
                Ok(answer) => CandidateOutcome::Compared {
                    agree: answer.decided().0.label == serving_label,
                },
                Err(_) => CandidateOutcome::Failed,
            };
            metrics.candidate(&candidate.name, &candidate.version, outcome);
            drop(slot);
        });
    }

    /// Scores `record` with the candidate scorer in the background and counts whether its verdict at
    /// `threshold` is the serving one's (`probability`), recording the difference.
    pub fn shadow_score(&self, metrics: &SharedMetrics, record: ValidRecord, probability: f32, threshold: f32) {
        let Some(candidate) = &self.scorer else { return };
        let Ok(slot) = self.slots.clone().try_acquire_owned() else {
            metrics.candidate(&candidate.name, &candidate.version, CandidateOutcome::Dropped);
            return;
        };
        let (pool, metrics, candidate) = (self.pool.clone(), metrics.clone(), candidate.clone());
        tokio::spawn(async move {
            let outcome = match pool.score(record).await {
                Ok(score) => {
                    metrics.candidate_delta(&candidate.name, &candidate.version, score.probability - probability);
                    CandidateOutcome::Compared {
                        agree: (score.probability >= threshold) == (probability >= threshold),
                    }
                }
                Err(_) => CandidateOutcome::Failed,
            };
            metrics.candidate(&candidate.name, &candidate.version, outcome);
            drop(slot);
        });
    }
}
