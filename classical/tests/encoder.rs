//! The request encoder in Rust against what the training pipeline computed in Python: the same token ids (the
//! `tokenizers` crate reading the shipped `tokenizer.json`, against Python's `tokenizers`), the same int8
//! probabilities (ONNX Runtime through `ort`, against Python's onnxruntime), one request per run.

// Test code: a failed expectation is the test failing, so unwrap/expect/panic are the point here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(dead_code)]
mod common;

use classical::{RequestClassifier, RequestEncoder};
use common::{CLASSIFIER, ENCODER, model_file, read_json, runtime};

/// How far a probability may move between CPUs. The served sessions' int8 products are exact on every CPU
/// (`classical::kernels`, held by `tests/int8.rs`), so what differs is the float kernels' summation order (AVX2 +
/// FMA against AVX-512): ~1e-7 (measured: 2.4e-7 on an AVX2-only EPYC against these fixtures, which Python's
/// onnxruntime wrote with its default kernels where they were exact, i.e. with VNNI). The dynamic quantizer can
/// turn such a difference into a one-step change of one activation's u8 code when it falls on a rounding
/// boundary, which moves a probability by more than the float error itself: allow 1e-3. Decisions must not move
/// at all: every fixture's top label leads by more than [`DECISION_MARGIN`].
const TOLERANCE: f32 = 1e-3;
/// Fixtures' smallest lead of the top label over the second: twice the tolerance, so a decision flip is an error.
const DECISION_MARGIN: f32 = 2.0 * TOLERANCE;

fn top_two(probabilities: &[f32]) -> ((usize, f32), f32) {
    let mut best = (0, f32::MIN);
    let mut second = f32::MIN;
    for (i, &p) in probabilities.iter().enumerate() {
        if p > best.1 {
            second = best.1;
            best = (i, p);
        } else if p > second {
            second = p;
        }
    }
    (best, second)
}

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
/// batched run's answers depend on the batch: `cascade.rs`). The decision exactly, the probabilities within
/// [`TOLERANCE`], on any x86-64 CPU.
#[test]
fn decisions_and_probabilities_are_pythons_for_each_request_alone() {
    println!("machine: {}", classical::kernels::machine_summary());
    let mut encoder = RequestEncoder::load(&runtime(), &model_file(ENCODER, "model.onnx")).expect("encoder loads");
    let mut worst_overall = 0.0_f32;
    for (text, has_record, _, expected) in cases() {
        let got = encoder
            .probabilities(&[(&text, has_record)])
            .expect("runs")
            .pop()
            .expect("one row");
        let ((expected_label, expected_top), expected_second) = top_two(&expected);
        assert!(
            expected_top - expected_second > DECISION_MARGIN,
            "{text:?}: a fixture this close to a tie cannot pin a decision"
        );
        let ((label, _), _) = top_two(&got);
        assert_eq!(label, expected_label, "{text:?}: the decided label moved");
        let worst = got
            .iter()
            .zip(&expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0_f32, f32::max);
        assert!(worst <= TOLERANCE, "{text:?}: max |Δp| {worst}");
        worst_overall = worst_overall.max(worst);
    }
    println!("max |Δp| over the fixtures: {worst_overall:e}");
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
