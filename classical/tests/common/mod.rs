//! Helpers shared by the classical crate's integration tests (each test file uses some of them: each includes
//! the module with `#[allow(dead_code)]`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use classical::OnnxRuntime;
use classical::schema::FeatureValue;

/// The request classifier shipped in the repository.
pub const CLASSIFIER: &str = "request-classifier/1.1.0";
/// The request encoder (the cascade's second tier) shipped in the repository.
pub const ENCODER: &str = "request-encoder/1.0.0";
/// The churn scorer shipped in the repository.
pub const SCORER: &str = "churn-scorer/1.0.0";

/// `classical/models/<model>/<file>`.
pub fn model_file(model: &str, file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("models")
        .join(model)
        .join(file)
}

/// The ONNX Runtime named by `ORT_DYLIB_PATH` (the README's test command sets it).
pub fn runtime() -> OnnxRuntime {
    OnnxRuntime::from_env().expect("ORT_DYLIB_PATH must name libonnxruntime 1.31 (deploy/setup/onnxruntime.sh)")
}

/// Reads a JSON file.
pub fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("valid JSON")
}

/// A JSON object as a customer record.
pub fn record(json: &serde_json::Value) -> BTreeMap<String, FeatureValue> {
    json.as_object()
        .expect("a JSON object")
        .iter()
        .map(|(k, v)| {
            let value = match v {
                serde_json::Value::Null => FeatureValue::Null,
                serde_json::Value::Bool(b) => FeatureValue::Bool(*b),
                serde_json::Value::Number(n) => FeatureValue::Number(n.as_f64().expect("finite")),
                serde_json::Value::String(s) => FeatureValue::Text(s.clone()),
                other => panic!("unsupported fixture value {other}"),
            };
            (k.clone(), value)
        })
        .collect()
}
