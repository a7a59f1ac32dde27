//! The in-process floor: one ONNX run of each model through `ort`, at batch 1 and batched, on the shipped
//! models and real inputs (CLINC150 validation questions; Telco test customers from the scorer's fixtures).
//! `evals/bench/run.sh` runs it and reports the time per row beside the gateway's per-request numbers.

// Bench code: a failure is the bench failing, so expect/panic are the point here.
#![allow(clippy::expect_used, clippy::panic, missing_docs)]

use std::hint::black_box;

use classical::{ChurnScorer, Int8Products, RequestClassifier, RequestEncoder};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

// The shipped model paths and the fixture readers the tests use.
#[allow(dead_code)]
#[path = "../tests/common/mod.rs"]
mod common;

use common::{CLASSIFIER, ENCODER, SCORER, model_file, read_json, record, runtime};

const BATCHES: [usize; 2] = [1, 32];

/// The first 32 CLINC150 validation questions.
fn questions() -> Vec<String> {
    let clinc = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/clinc150/clinc150_train_val.json");
    let data = read_json(&clinc);
    data["val"]
        .as_array()
        .expect("val")
        .iter()
        .take(32)
        .map(|item| item[0].as_str().expect("text").to_owned())
        .collect()
}

fn classifier(c: &mut Criterion) {
    let texts = questions();
    let mut model = RequestClassifier::load(&runtime(), &model_file(CLASSIFIER, "model.onnx")).expect("classifier");
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
    let mut model = ChurnScorer::load(&runtime(), &model_file(SCORER, "model.onnx")).expect("scorer");
    let fixtures = read_json(&model_file(SCORER, "parity_fixtures.json"));
    let cases = fixtures["cases"].as_array().expect("cases");
    let records: Vec<_> = cases
        .iter()
        .cycle()
        .take(32)
        .map(|case| {
            model
                .info()
                .schema
                .validate(&record(&case["features"]))
                .expect("valid record")
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

/// The encoder one request per run, as the cascade runs it, with the served exact int8 products and with the CPU's
/// own kernel: the cost of exactness on this machine (the same kernel where the CPU has VNNI).
fn encoder(c: &mut Criterion) {
    let texts = questions();
    let path = model_file(ENCODER, "model.onnx");
    let mut group = c.benchmark_group("encoder");
    group.throughput(Throughput::Elements(texts.len() as u64));
    for (name, products) in [("exact", Int8Products::Exact), ("native", Int8Products::Native)] {
        let mut model = RequestEncoder::load_with(&runtime(), &path, products).expect("encoder");
        group.bench_function(BenchmarkId::new("batch-1-x32", name), |b| {
            b.iter(|| {
                for text in &texts {
                    black_box(model.probabilities(&[(text.as_str(), false)]).expect("ran"));
                }
            });
        });
    }
    group.finish();
}

criterion_group!(benches, classifier, scorer, encoder);
criterion_main!(benches);
