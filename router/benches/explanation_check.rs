//! The cost of holding a hybrid answer to its score: `Grounds::check` on the 60 real SmolLM2 answers of
//! `tests/data/explanation_labels.jsonl` (whole answers), and the stream gate fed the same texts a word at a time,
//! each beside a baseline measured in the same run: one lower-casing pass over the same text (the least any
//! reading of it costs). Target: the check ≤ 50 µs per answer (docs/hybrid.md). Run: `cargo bench -p switchyard
//! --bench explanation_check`.

// Bench code: a failure is the bench failing, so expect/panic are the point here.
#![allow(clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::BTreeMap;
use std::hint::black_box;

use classical::schema::FeatureValue;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use switchyard::explanation::{Grounds, SentenceGate};

/// Each labelled answer with its grounds.
fn answers() -> Vec<(Grounds, String)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let policy = std::fs::read_to_string(root.join("../deploy/config/policy.toml")).expect("policy");
    let context = switchyard::policy::PolicyContext {
        backends: ["local".to_owned()].into(),
        ..Default::default()
    };
    let explanations = switchyard::policy::compile(std::path::Path::new("policy.toml"), &policy, &context)
        .expect("compiles")
        .explanations;
    let text = std::fs::read_to_string(root.join("tests/data/explanation_labels.jsonl")).expect("answers");
    text.lines()
        .map(|line| {
            let case: serde_json::Value = serde_json::from_str(line).expect("json");
            let record: BTreeMap<String, FeatureValue> = case["record"]
                .as_object()
                .expect("record")
                .iter()
                .map(|(k, v)| {
                    let value = match v {
                        serde_json::Value::Number(n) => FeatureValue::Number(n.as_f64().expect("number")),
                        serde_json::Value::String(s) => FeatureValue::Text(s.clone()),
                        _ => FeatureValue::Null,
                    };
                    (k.clone(), value)
                })
                .collect();
            let influences: Vec<classical::Influence> = case["top_features"]
                .as_array()
                .expect("features")
                .iter()
                .map(|f| classical::Influence {
                    feature: f["feature"].as_str().expect("feature").to_owned(),
                    delta: f["delta"].as_f64().expect("delta") as f32,
                })
                .collect();
            let grounds = Grounds::new(
                (
                    case["score"].as_f64().expect("score") as f32,
                    case["threshold"].as_f64().expect("threshold") as f32,
                    explanations.elevated_from,
                ),
                &influences,
                explanations.top_fields,
                Some(&record),
                &explanations.field_names,
            );
            (grounds, case["text"].as_str().expect("text").to_owned())
        })
        .collect()
}

fn check(c: &mut Criterion) {
    let answers = answers();
    let mut group = c.benchmark_group("explanation");
    group.throughput(Throughput::Elements(answers.len() as u64));
    group.bench_function("baseline_lowercase", |b| {
        b.iter(|| {
            for (_, text) in &answers {
                black_box(text.to_lowercase());
            }
        });
    });
    group.bench_function("check", |b| {
        b.iter(|| {
            for (grounds, text) in &answers {
                black_box(grounds.check(text));
            }
        });
    });
    group.bench_function("stream_gate", |b| {
        b.iter(|| {
            for (grounds, text) in &answers {
                let mut gate = SentenceGate::new(grounds.clone(), switchyard::explanation::PromptText::default());
                for word in text.split_inclusive(' ') {
                    black_box(gate.push(word));
                }
                black_box(gate.finish()).ok();
            }
        });
    });
    group.finish();
}

criterion_group!(benches, check);
criterion_main!(benches);
