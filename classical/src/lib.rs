//! Switchyard's classical models, run in-process with ONNX Runtime through `ort`.
//!
//! Three models, each a self-describing `.onnx` file written by `classical/training/`:
//! - [`RequestClassifier`]: request text plus "is a customer record attached" → calibrated probabilities over
//!   labels, each label with a group.
//! - [`ChurnScorer`]: a raw customer record (CSV column names) → calibrated churn probability.
//! - [`RequestEncoder`]: the classifier's transformer tier (same labels), run only for requests the linear model
//!   is unsure of ([`cascade`]).
//!
//! Beside each model, `reference_profile.json` describes its training-time inputs and outputs for drift
//! monitoring ([`profile`]).
//!
//! Everything a caller needs (labels, groups, feature schema, thresholds, provenance) comes from the file's
//! `metadata_props`, read by [`metadata`]. A [`Session`](ort::session::Session) run needs exclusive access, so
//! each model value owns one session; run several values for parallelism.

mod batch;
pub mod cascade;
mod classifier;
mod encoder;
mod error;
pub mod kernels;
pub mod metadata;
mod pool;
pub mod profile;
mod runtime;
pub mod schema;
mod scorer;
mod tensors;

pub use batch::{BatchConfig, BatchObserver, Model, Scored};
pub use cascade::{CascadeBars, CascadeClassifier, CascadeConfig, Tier};
pub use classifier::{Classification, ClassifierInfo, RequestClassifier, TextNormalization};
pub use encoder::{EncoderInfo, RequestEncoder, TokenBatch};
pub use error::ClassicalError;
pub use kernels::{InstructionSets, Int8Products};
pub use pool::{InferencePool, PoolConfig};
pub use runtime::OnnxRuntime;
pub use scorer::{ChurnScore, ChurnScorer, Influence, ScorerInfo, influences, occlusions};
