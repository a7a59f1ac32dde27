//! The hand-labelled real answers of `tests/data/explanation_labels.jsonl`, with the grounds each was written
//! for under the default policy's `[explanations]` (shared by `explanation_labels.rs` and the check's bench).

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::BTreeMap;

use classical::schema::FeatureValue;
use switchyard::explanation::Grounds;

/// One labelled answer.
pub struct Labelled {
    /// The Telco customer.
    pub id: String,
    /// What it must agree with.
    pub grounds: Grounds,
    /// The model's answer.
    pub text: String,
    /// The verdict a reader gives it.
    pub label: String,
}

#[derive(serde::Deserialize)]
struct Line {
    id: String,
    score: f32,
    threshold: f32,
    top_features: Vec<Feature>,
    record: BTreeMap<String, serde_json::Value>,
    text: String,
    label: String,
}

#[derive(serde::Deserialize)]
struct Feature {
    feature: String,
    delta: f32,
}

/// Every labelled answer, in file order.
pub fn answers() -> Vec<Labelled> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let policy = std::fs::read_to_string(root.join("../deploy/config/policy.toml")).unwrap();
    let context = switchyard::policy::PolicyContext {
        backends: ["local".to_owned()].into(),
        ..Default::default()
    };
    let explanations = switchyard::policy::compile(std::path::Path::new("policy.toml"), &policy, &context)
        .unwrap()
        .explanations;
    let text = std::fs::read_to_string(root.join("tests/data/explanation_labels.jsonl")).unwrap();
    text.lines()
        .map(|line| {
            let line: Line = serde_json::from_str(line).unwrap();
            let record: BTreeMap<String, FeatureValue> =
                line.record.iter().map(|(k, v)| (k.clone(), value(v))).collect();
            let influences: Vec<classical::Influence> = line
                .top_features
                .iter()
                .map(|f| classical::Influence {
                    feature: f.feature.clone(),
                    delta: f.delta,
                })
                .collect();
            Labelled {
                grounds: explanations.grounds((line.score, line.threshold), &influences, Some(&record)),
                id: line.id,
                text: line.text,
                label: line.label,
            }
        })
        .collect()
}

fn value(v: &serde_json::Value) -> FeatureValue {
    match v {
        serde_json::Value::Number(n) => FeatureValue::Number(n.as_f64().unwrap()),
        serde_json::Value::String(s) => FeatureValue::Text(s.clone()),
        serde_json::Value::Bool(b) => FeatureValue::Bool(*b),
        _ => FeatureValue::Null,
    }
}
