//! Typed views of the `metadata_props` that `classical/training/` writes into every model file.

use std::path::{Path, PathBuf};

use ort::session::Session;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::ClassicalError;
use crate::schema::{FeatureSchema, FeatureSpec};

/// Which model this is, as recorded by the training pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelIdentity {
    /// `switchyard.model_name`, e.g. `request-classifier`.
    pub name: String,
    /// `switchyard.model_version`, e.g. `1.0.0`.
    pub version: String,
    /// `switchyard.training_data_sha256`: what the model was trained on.
    pub training_data_sha256: String,
    /// `switchyard.training_command`: how to reproduce it.
    pub training_command: String,
}

impl std::fmt::Display for ModelIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.name, self.version)
    }
}

/// One classifier label and the group a routing policy can match instead of the label.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LabelInfo {
    /// The label, e.g. `balance`, `oos` or `churn_explain`.
    pub label: String,
    /// Its group: a CLINC150 domain, `oos`, or `customer_record`.
    pub group: String,
}

/// Reads and parses metadata entries of one model file, naming the file and key in every error.
pub(crate) struct MetadataReader<'a> {
    path: &'a Path,
    session: &'a Session,
}

impl<'a> MetadataReader<'a> {
    pub(crate) fn new(path: &'a Path, session: &'a Session) -> Self {
        Self { path, session }
    }

    fn error(&self, key: &str, reason: impl Into<String>) -> ClassicalError {
        ClassicalError::Metadata {
            path: PathBuf::from(self.path),
            key: key.to_owned(),
            reason: reason.into(),
        }
    }

    /// The raw string value of `key`.
    pub(crate) fn string(&self, key: &str) -> Result<String, ClassicalError> {
        let metadata = self.session.metadata().map_err(|e| self.error(key, e.to_string()))?;
        metadata.custom(key).ok_or_else(|| self.error(key, "missing"))
    }

    /// `key`'s value parsed as JSON into `T`.
    pub(crate) fn json<T: DeserializeOwned>(&self, key: &str) -> Result<T, ClassicalError> {
        serde_json::from_str(&self.string(key)?)
            .map_err(|e| self.error(key, format!("not valid JSON for its type: {e}")))
    }

    /// The model's identity entries.
    pub(crate) fn identity(&self) -> Result<ModelIdentity, ClassicalError> {
        Ok(ModelIdentity {
            name: self.string("switchyard.model_name")?,
            version: self.string("switchyard.model_version")?,
            training_data_sha256: self.string("switchyard.training_data_sha256")?,
            training_command: self.string("switchyard.training_command")?,
        })
    }

    /// Fails unless `switchyard.model_kind` is `expected`, so a scorer file is never loaded as a classifier.
    pub(crate) fn expect_kind(&self, expected: &str) -> Result<(), ClassicalError> {
        let kind = self.string("switchyard.model_kind")?;
        if kind == expected {
            Ok(())
        } else {
            Err(self.error("switchyard.model_kind", format!("is {kind:?}, expected {expected:?}")))
        }
    }

    /// A probability threshold in [0, 1].
    pub(crate) fn threshold(&self, key: &str) -> Result<f32, ClassicalError> {
        let value: f64 = self.json(key)?;
        if (0.0..=1.0).contains(&value) {
            Ok(value as f32)
        } else {
            Err(self.error(key, format!("{value} is not a probability")))
        }
    }

    /// The scorer's feature schema, checked against the session's actual inputs.
    pub(crate) fn feature_schema(&self) -> Result<FeatureSchema, ClassicalError> {
        const KEY: &str = "switchyard.feature_schema";
        let specs: Vec<FeatureSpec> = self.json(KEY)?;
        let inputs: Vec<&str> = self.session.inputs().iter().map(|i| i.name()).collect();
        let declared: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        if inputs != declared {
            return Err(self.error(
                KEY,
                format!("declares {declared:?} but the graph's inputs are {inputs:?}"),
            ));
        }
        Ok(FeatureSchema::new(specs))
    }
}
