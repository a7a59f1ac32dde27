//! The models that serve, as one set swapped whole: the inference pool (classifier, cascade, scorer), the drift
//! monitor for their versions, and the candidate versions run in their shadow. A reload resolves the sources
//! again (re-reading the config file, so a pinned version can be changed without a restart), loads and checks the
//! new set off the request path, warms it, then swaps it in atomically; requests in flight finish on the set they
//! started with, and a set that fails any step is refused while the running one stays.

use std::path::PathBuf;
use std::sync::Arc;

use classical::InferencePool;
use classical::metadata::ModelIdentity;

use super::Engine;
use super::candidate::Candidate;
use crate::config::{Config, Resolved};
use crate::drift::DriftMonitor;
use crate::error::LoadError;
use crate::metrics::SharedMetrics;

/// The sidecar a registry export writes beside a model: the MLflow run that made it.
pub const MLFLOW_RUN_FILE: &str = "mlflow_run.json";

/// One serving model: what it is and where it was loaded from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ModelVersion {
    /// The model's name (from its metadata).
    pub name: String,
    /// Its version (from its metadata; equal to its version directory's name when it comes from a repository).
    pub version: String,
    /// The file.
    pub file: PathBuf,
    /// The MLflow run that made it, when it was exported from the registry.
    pub mlflow: Option<MlflowRun>,
}

/// Where a model version came from in the MLflow registry (`classical/training/registry.py export`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlflowRun {
    /// The training run.
    pub run_id: String,
    /// The registered model's name.
    pub registered_model: String,
    /// The registered model version (the registry's own numbering).
    pub registered_version: String,
    /// The alias it was exported by (`champion`, `challenger`), if any.
    pub alias: Option<String>,
    /// The tracking server or store it was exported from.
    pub tracking_uri: String,
}

impl ModelVersion {
    /// The model at `file` with `identity`, and its registry sidecar if one lies beside it.
    pub fn read(identity: &ModelIdentity, file: &std::path::Path) -> Result<Self, LoadError> {
        let sidecar = file.with_file_name(MLFLOW_RUN_FILE);
        let mlflow = match std::fs::read_to_string(&sidecar) {
            Ok(text) => Some(serde_json::from_str(&text).map_err(|e| LoadError::ModelSet {
                file: sidecar.clone(),
                reason: e.to_string(),
            })?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                return Err(LoadError::ModelSet {
                    file: sidecar,
                    reason: e.to_string(),
                });
            }
        };
        Ok(Self {
            name: identity.name.clone(),
            version: identity.version.clone(),
            file: file.to_path_buf(),
            mlflow,
        })
    }
}

/// The serving set.
pub struct ServingModels {
    /// Classifier (and cascade) and scorer sessions on their worker threads.
    pub pool: InferencePool,
    /// Drift against these versions' reference profiles (a new set starts a new window).
    pub drift: DriftMonitor,
    /// The classifier that serves.
    pub classifier: ModelVersion,
    /// The scorer that serves.
    pub scorer: ModelVersion,
    /// Candidate versions scored in the serving ones' shadow, when configured.
    pub candidate: Option<Candidate>,
    /// What the sources resolved to, to tell an unchanged reload.
    resolved: (Resolved, Resolved),
}

impl std::fmt::Debug for ServingModels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServingModels")
            .field("classifier", &self.classifier)
            .field("scorer", &self.scorer)
            .finish_non_exhaustive()
    }
}

/// What a model reload did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum ModelReload {
    /// A new set serves.
    Applied {
        /// The versions replaced (`name version`).
        from: Vec<String>,
        /// The versions now serving.
        to: Vec<String>,
    },
    /// The sources resolve to what already serves.
    Unchanged,
    /// The new set failed a step; the running one stays.
    Rejected {
        /// Why.
        reason: String,
    },
}

impl ModelReload {
    /// `applied`, `unchanged` or `rejected`, for metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Applied { .. } => "applied",
            Self::Unchanged => "unchanged",
            Self::Rejected { .. } => "rejected",
        }
    }
}

impl ServingModels {
    /// Loads the set `config` names now (blocking: sessions are created here). Checks each model's metadata
    /// against its version directory, and the reference profiles against the models.
    pub fn load(config: &Config, metrics: &SharedMetrics) -> Result<Self, LoadError> {
        let (pool_config, classifier, scorer) = config.models.resolve().map_err(|reason| LoadError::ModelSet {
            file: config.file.clone(),
            reason,
        })?;
        let runtime = super::runtime(config)?;
        let pool = InferencePool::start(&runtime, &pool_config, Some(metrics.batch_observer()))?;
        let classifier_version = version_of(&pool.classifier().identity, &classifier)?;
        let scorer_version = version_of(&pool.scorer().identity, &scorer)?;
        let drift = DriftMonitor::load(
            &config.drift,
            (&pool_config.scorer, &pool.scorer().schema),
            &pool_config.classifier,
        )?;
        let candidate = Candidate::load(&runtime, &pool_config, &classifier, &scorer)?;
        Ok(Self {
            pool,
            drift,
            classifier: classifier_version,
            scorer: scorer_version,
            candidate,
            resolved: (classifier, scorer),
        })
    }

    /// `name version` of each serving model, classifier first.
    pub fn versions(&self) -> Vec<String> {
        [&self.classifier, &self.scorer]
            .iter()
            .map(|m| format!("{} {}", m.name, m.version))
            .collect()
    }

    /// Runs a classification and a score through the new set before it serves, so the first requests do not
    /// pay for the sessions' first runs.
    async fn warm(&self) -> Result<(), LoadError> {
        self.pool.classify("warm up", false).await?;
        if let Some(record) = self.pool.scorer().schema.typical_record() {
            self.pool.score(record).await?;
        }
        Ok(())
    }
}

/// The model's identity, checked against the version directory it was found in.
fn version_of(identity: &ModelIdentity, resolved: &Resolved) -> Result<ModelVersion, LoadError> {
    if let Some(directory) = &resolved.version
        && *directory != identity.version
    {
        return Err(LoadError::ModelSet {
            file: resolved.file.clone(),
            reason: format!(
                "the model's metadata says version {}, its directory {directory}",
                identity.version
            ),
        });
    }
    ModelVersion::read(identity, &resolved.file)
}

impl Engine {
    /// The serving set now. Hold the `Arc` for the whole request.
    pub fn models(&self) -> Arc<ServingModels> {
        self.models.load_full()
    }

    /// Re-reads the config file and swaps in the models its sources name now, if they changed and the new set
    /// loads, fits the policy and warms up. One reload at a time.
    pub async fn reload_models(&self) -> ModelReload {
        let _one_at_a_time = self.model_reload.lock().await;
        let outcome = self.try_reload().await.unwrap_or_else(|error| ModelReload::Rejected {
            reason: error.to_string(),
        });
        self.metrics.model_reload(outcome.as_str());
        match &outcome {
            ModelReload::Applied { from, to } => tracing::info!(?from, ?to, "models reloaded"),
            ModelReload::Unchanged => tracing::debug!("models unchanged"),
            ModelReload::Rejected { reason } => {
                tracing::error!(%reason, "model reload refused; the running models stay");
            }
        }
        outcome
    }

    async fn try_reload(&self) -> Result<ModelReload, LoadError> {
        let config = Config::load(&self.config_file).map_err(|e| LoadError::ModelSet {
            file: self.config_file.clone(),
            reason: e.to_string(),
        })?;
        let current = self.models();
        let (_, classifier, scorer) = config.models.resolve().map_err(|reason| LoadError::ModelSet {
            file: config.file.clone(),
            reason,
        })?;
        if (&classifier, &scorer) == (&current.resolved.0, &current.resolved.1) {
            return Ok(ModelReload::Unchanged);
        }
        let metrics = self.metrics.clone();
        let loaded = tokio::task::spawn_blocking(move || ServingModels::load(&config, &metrics))
            .await
            .map_err(|e| LoadError::ModelSet {
                file: self.config_file.clone(),
                reason: format!("loading task failed: {e}"),
            })??;
        // The policy must still compile against the new classifier's labels (rules name labels and groups).
        let labels = super::label_map(&loaded.pool.classifier().labels);
        self.policy.check_labels(&labels)?;
        loaded.warm().await?;
        let from = current.versions();
        let to = loaded.versions();
        self.models.store(Arc::new(loaded));
        self.policy.set_labels(labels);
        Ok(ModelReload::Applied { from, to })
    }
}

/// Reloads the models on SIGHUP, and when `watch` is on, whenever the config file or a model source changes
/// (a version directory added or removed; checked every second). Runs until the process ends.
pub async fn watch(engine: &Engine, config: &Config) {
    let (nudge, mut nudges) = tokio::sync::mpsc::channel::<()>(1);
    if config.models.watch {
        let files = vec![
            config.file.clone(),
            config.models.classifier.watched().to_path_buf(),
            config.models.scorer.watched().to_path_buf(),
        ];
        let nudge = nudge.clone();
        tokio::spawn(crate::reload::on_change(files, move || {
            // Full means a reload is already pending.
            let _ = nudge.try_send(());
        }));
    }
    #[cfg(unix)]
    tokio::spawn(async move {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(mut hangups) => {
                while hangups.recv().await.is_some() {
                    let _ = nudge.try_send(());
                }
            }
            Err(error) => tracing::error!(%error, "cannot listen for SIGHUP"),
        }
    });
    while nudges.recv().await.is_some() {
        engine.reload_models().await;
    }
}
