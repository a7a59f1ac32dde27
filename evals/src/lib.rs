//! Switchyard's evaluation harness: whether a model or policy change is better, where it fails, and whether it
//! passes the gates, measured through the gateway's own runtime code (`classical`), never a second
//! implementation. A crate apart from the gateway so its reporting never weighs on the request path.

pub mod cascade;
pub mod datasets;
pub mod e2e;
pub mod faithfulness;
pub mod gates;
pub mod html;
pub mod metrics;
pub mod models;
pub mod report;
pub mod requests;
pub mod svg;
pub mod thresholds;
pub mod whatif;

use std::path::{Path, PathBuf};

/// Why an eval could not run.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A file could not be read or written.
    #[error("{path}: {reason}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        reason: String,
    },
    /// A dataset is missing, changed (sha256) or malformed.
    #[error("dataset {name}: {reason}")]
    Dataset {
        /// The dataset's name in the manifest.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A model's recorded metrics could not be read.
    #[error("{path}: {reason}")]
    Recorded {
        /// The `metrics.json`.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The gates file is invalid or names something not measured.
    #[error("{path}: {reason}")]
    Gates {
        /// The gates file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A policy file is invalid (file, line, key and reason).
    #[error("{0}")]
    Policy(String),
    /// The gateway's config is invalid.
    #[error("{0}")]
    Config(String),
    /// The gateway could not be reached or a replay task failed.
    #[error("gateway {addr}: {reason}")]
    Gateway {
        /// Its address.
        addr: String,
        /// What failed.
        reason: String,
    },
    /// The ONNX Runtime or a model failed.
    #[error(transparent)]
    Model(#[from] classical::ClassicalError),
}

impl EvalError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, error: &std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            reason: error.to_string(),
        }
    }
}
