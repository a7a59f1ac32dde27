//! The in-process floor: one ONNX run of each model through `ort`, at batch 1 and batched, on the shipped
//! models and real inputs (CLINC150 validation questions; Telco test customers from the scorer's fixtures).
//! `evals/bench/run.sh` runs it and reports the time per row beside the gateway's per-request numbers.

// Bench code: a failure is the bench failing, so expect/panic are the point here.
#![allow(clippy::expect_used, clippy::panic, missing_docs)]

use std::hint::black_box;

use classical::{ChurnScorer, RequestClassifier};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

// The shipped model paths and the fixture readers the tests use.
#[allow(dead_code)]
#[path = "../tests/common/mod.rs"]
mod common;

use common::{CLASSIFIER, SCORER, model_file, read_json, record, runtime};

const BATCHES: [usize; 2] = [1, 32];

fn classifier(c: &mut Criterion) {
    let clinc = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/clinc150/clinc150_train_val.json");
    let data = read_json(&clinc);
    let texts: Vec<String> = data["val"]
        .as_array()
        .expect("val")
        .iter()
        .take(32)
        .map(|item| item[0].as_str().expect("text").to_owned())
        .collect();
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

criterion_group!(benches, classifier, scorer);
criterion_main!(benches);
