//! The request encoder in Rust against what the training pipeline computed in Python: the same token ids (the
//! `tokenizers` crate reading the shipped `tokenizer.json`, against Python's `tokenizers`), the same int8
//! probabilities (ONNX Runtime through `ort`, against Python's onnxruntime), one request per run.

// Test code: a failed expectation is the test failing, so unwrap/expect/panic are the point here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(dead_code)]
mod common;

use classical::{RequestClassifier, RequestEncoder};
use common::{CLASSIFIER, ENCODER, model_file, read_json, runtime};

/// int8 kernels may sum in a different order on another CPU: close, not bit-identical.
const TOLERANCE: f32 = 1e-4;

fn cases() -> Vec<(String, bool, Vec<i64>, Vec<f32>)> {
    let fixtures = read_json(&model_file(ENCODER, "parity_fixtures.json"));
    fixtures["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|c| {
            (
                c["text"].as_str().expect("text").to_owned(),
                c["has_record"].as_bool().expect("has_record"),
                c["input_ids"]
                    .as_array()
                    .expect("ids")
                    .iter()
                    .map(|v| v.as_i64().expect("id"))
                    .collect(),
                c["probabilities"]
                    .as_array()
                    .expect("probabilities")
                    .iter()
                    .map(|v| v.as_f64().expect("p") as f32)
                    .collect(),
            )
        })
        .collect()
}

#[test]
fn token_ids_are_pythons_and_long_texts_are_cut_at_max_tokens() {
    let encoder = RequestEncoder::load(&runtime(), &model_file(ENCODER, "model.onnx")).expect("encoder loads");
    let max_tokens = encoder.info().max_tokens;
    let cases = cases();
    assert!(
        cases.iter().any(|(t, ..)| t.is_empty()),
        "fixtures must include an empty text"
    );
    assert!(
        cases.iter().any(|(t, ..)| !t.is_ascii()),
        "fixtures must include non-ASCII text"
    );
    assert!(
        cases.iter().any(|(t, ..)| t.len() >= 10_000),
        "fixtures must include a 10 kB text"
    );
    assert!(cases.iter().any(|(_, r, ..)| *r) && cases.iter().any(|(_, r, ..)| !*r));
    for (text, has_record, ids, _) in &cases {
        let batch = encoder.tokenize(&[(text, *has_record)]).expect("tokenizes");
        assert_eq!(&batch.input_ids, ids, "{text:?} (record {has_record})");
        assert!(batch.width <= max_tokens, "{text:?}: {} tokens", batch.width);
        assert!(
            batch.attention_mask.iter().all(|&m| m == 1),
            "a lone text has no padding"
        );
    }
    // A batch pads to its longest text, never to a fixed length.
    let requests: Vec<(&str, bool)> = vec![("hi", false), ("what is the balance in my checking account", false)];
    let batch = encoder.tokenize(&requests).expect("tokenizes");
    let lone = encoder.tokenize(&requests[1..]).expect("tokenizes");
    assert_eq!(batch.width, lone.width);
    assert!(batch.width < max_tokens);
    assert_eq!(
        batch.attention_mask[..batch.width].iter().sum::<i64>(),
        3,
        "[CLS] hi [SEP], then padding"
    );
}

/// One request per run, as the cascade runs the encoder (its int8 activation scales are computed per run, so a
/// batched run's answers depend on the batch: `cascade.rs`).
#[test]
fn probabilities_are_pythons_for_each_request_alone() {
    let mut encoder = RequestEncoder::load(&runtime(), &model_file(ENCODER, "model.onnx")).expect("encoder loads");
    for (text, has_record, _, expected) in cases() {
        let got = encoder
            .probabilities(&[(&text, has_record)])
            .expect("runs")
            .pop()
            .expect("one row");
        let worst = got
            .iter()
            .zip(&expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0_f32, f32::max);
        assert!(worst <= TOLERANCE, "{text:?}: max |Δp| {worst}");
    }
}

#[test]
fn the_encoder_has_the_linear_classifiers_labels_in_order() {
    let encoder = RequestEncoder::load(&runtime(), &model_file(ENCODER, "model.onnx")).expect("encoder loads");
    let linear = RequestClassifier::load(&runtime(), &model_file(CLASSIFIER, "model.onnx")).expect("loads");
    assert_eq!(encoder.info().labels, linear.info().labels);
    assert!(encoder.info().identity.training_command.contains("train_encoder.sh"));
}

#[test]
fn a_classifier_file_is_not_an_encoder() {
    let error = RequestEncoder::load(&runtime(), &model_file(CLASSIFIER, "model.onnx"))
        .err()
        .expect("refused");
    assert!(error.to_string().contains("switchyard.model_kind"), "{error}");
}
