//! The crate's one error type.

use std::path::PathBuf;

use crate::schema::FieldError;

/// Everything that can go wrong loading or running a classical model.
#[derive(Debug, thiserror::Error)]
pub enum ClassicalError {
    /// The ONNX Runtime shared library could not be loaded or initialised.
    #[error("onnx runtime unavailable ({path}): {reason}")]
    Runtime {
        /// The library path that was tried.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// A model file could not be opened as an ONNX Runtime session.
    #[error("cannot load model {path}: {reason}")]
    ModelLoad {
        /// The model file.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// A model's `metadata_props` entry is missing or malformed.
    #[error("model {path}: metadata key {key}: {reason}")]
    Metadata {
        /// The model file.
        path: PathBuf,
        /// The metadata key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A model's reference profile (for drift monitoring) cannot be read or is inconsistent.
    #[error("reference profile {path}: {reason}")]
    Profile {
        /// The profile file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A customer record does not match the scorer's feature schema; every bad field is listed.
    #[error("invalid features: {}", FieldError::join(.0))]
    InvalidFeatures(Vec<FieldError>),
    /// The inference queue is full: the service is at capacity.
    #[error("inference queue full ({capacity} waiting): try again later")]
    Overloaded {
        /// The queue's capacity.
        capacity: usize,
    },
    /// ONNX Runtime failed while running a loaded model.
    #[error("inference failed in {model}: {reason}")]
    Inference {
        /// `name version` of the model.
        model: String,
        /// What failed.
        reason: String,
    },
}
