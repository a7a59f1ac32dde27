//! The in-process floor: one ONNX run of each model through `ort`, at batch 1 and batched, on the shipped
//! models and real inputs (CLINC150 validation questions; Telco test customers from the scorer's fixtures).
//! `evals/bench/run.sh` runs it and reports the time per row beside the gateway's per-request numbers.

// Bench code: a failure is the bench failing, so expect/panic are the point here.
#![allow(clippy::expect_used, clippy::panic, missing_docs)]

use std::hint::black_box;
use std::path::{Path, PathBuf};

use classical::{ChurnScorer, OnnxRuntime, RequestClassifier};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

const BATCHES: [usize; 2] = [1, 32];

fn crate_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn json(relative: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(crate_path(relative)).expect("readable");
    serde_json::from_str(&text).expect("JSON")
}

fn runtime() -> OnnxRuntime {
    OnnxRuntime::from_env().expect("ORT_DYLIB_PATH names libonnxruntime 1.31 (deploy/setup/onnxruntime.sh)")
}

fn classifier(c: &mut Criterion) {
    let data = json("data/clinc150/clinc150_train_val.json");
    let texts: Vec<String> = data["val"]
        .as_array()
        .expect("val")
        .iter()
        .take(32)
        .map(|item| item[0].as_str().expect("text").to_owned())
        .collect();
    let path = crate_path("models/request-classifier/1.1.0/model.onnx");
    let mut model = RequestClassifier::load(&runtime(), &path).expect("classifier");
    let mut group = c.benchmark_group("classifier");
    for batch in BATCHES {
        let requests: Vec<(&str, bool)> = texts.iter().take(batch).map(|t| (t.as_str(), false)).collect();
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_with_input(BenchmarkId::new("batch", batch), &requests, |b, requests| {
            b.iter(|| black_box(model.classify_batch(requests).expect("classified")));
        });
    }
    group.finish();
}

fn scorer(c: &mut Criterion) {
    let path = crate_path("models/churn-scorer/1.0.0/model.onnx");
    let mut model = ChurnScorer::load(&runtime(), &path).expect("scorer");
    let fixtures = json("models/churn-scorer/1.0.0/parity_fixtures.json");
    let cases = fixtures["cases"].as_array().expect("cases");
    let records: Vec<_> = cases
        .iter()
        .cycle()
        .take(32)
        .map(|case| {
            let record = case["features"]
                .as_object()
                .expect("features")
                .iter()
                .map(|(k, v)| (k.clone(), feature(v)))
                .collect();
            model.info().schema.validate(&record).expect("valid record")
        })
        .collect();
    let mut group = c.benchmark_group("scorer");
    for batch in BATCHES {
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_with_input(BenchmarkId::new("batch", batch), &records[..batch], |b, records| {
            b.iter(|| black_box(model.score_batch(records).expect("scored")));
        });
    }
    group.finish();
}

fn feature(value: &serde_json::Value) -> classical::schema::FeatureValue {
    use classical::schema::FeatureValue;
    match value {
        serde_json::Value::Null => FeatureValue::Null,
        serde_json::Value::Bool(b) => FeatureValue::Bool(*b),
        serde_json::Value::Number(n) => FeatureValue::Number(n.as_f64().expect("finite")),
        serde_json::Value::String(s) => FeatureValue::Text(s.clone()),
        other => panic!("unsupported fixture value {other}"),
    }
}

criterion_group!(benches, classifier, scorer);
criterion_main!(benches);
