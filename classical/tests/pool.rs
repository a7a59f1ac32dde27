//! The inference pool: answers match the models run directly, and a full queue is refused, not waited on.

// Test code: a failed expectation is the test failing, so unwrap/expect/panic are the point here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(dead_code)]
mod common;

use futures::future::join_all;

use classical::{BatchConfig, ClassicalError, InferencePool, PoolConfig, RequestClassifier};
use common::{CLASSIFIER, SCORER, model_file, read_json, record, runtime};

fn pool(workers: usize, queue_capacity: usize) -> InferencePool {
    let config = PoolConfig {
        classifier: model_file(CLASSIFIER, "model.onnx"),
        scorer: model_file(SCORER, "model.onnx"),
        workers,
        queue_capacity,
        classifier_batch: BatchConfig::default(),
        scorer_batch: BatchConfig::default(),
        cascade: None,
    };
    InferencePool::start(&runtime(), &config, None).expect("pool starts")
}

#[tokio::test]
async fn pool_answers_match_direct_inference() {
    let pool = pool(2, 16);
    let mut direct = RequestClassifier::load(&runtime(), &model_file(CLASSIFIER, "model.onnx")).unwrap();
    for (text, record) in [
        ("what is my balance", false),
        ("why would they leave?", true),
        ("", true),
    ] {
        let pooled = pool.classify(text, record).await.unwrap();
        assert_eq!(
            pooled.probabilities,
            direct.classify(text, record).unwrap().probabilities
        );
    }
    let fixtures = read_json(&model_file(SCORER, "parity_fixtures.json"));
    let case = &fixtures["cases"][0];
    let valid = pool.scorer().schema.validate(&record(&case["features"])).unwrap();
    let score = pool.score(valid).await.unwrap();
    assert!((score.probability - case["probability"].as_f64().unwrap() as f32).abs() <= 1e-5);
}

#[tokio::test]
async fn a_full_queue_is_refused_as_overloaded_and_the_pool_recovers() {
    let pool = pool(1, 1);
    let long = "please tell me my account balance ".repeat(300);
    let burst: Vec<_> = (0..64)
        .map(|_| {
            let pool = pool.clone();
            let text = long.clone();
            tokio::spawn(async move { pool.classify(&text, false).await })
        })
        .collect();
    let mut overloaded = 0;
    let mut answered = 0;
    for task in burst {
        match task.await.unwrap() {
            Ok(_) => answered += 1,
            Err(ClassicalError::Overloaded { capacity }) => {
                assert_eq!(capacity, 1);
                overloaded += 1;
            }
            Err(other) => panic!("unexpected error {other}"),
        }
    }
    assert!(answered >= 1, "some requests are served");
    assert!(
        overloaded >= 1,
        "a burst beyond one worker and one queue slot is refused ({answered} answered)"
    );
    assert!(
        pool.classify("what is my balance", false).await.is_ok(),
        "the pool serves again after the burst"
    );
}

/// Every batch size the pool reported, by model.
#[derive(Default)]
struct Batches(std::sync::Mutex<Vec<(classical::Model, usize)>>);

impl Batches {
    fn largest(&self, model: classical::Model) -> usize {
        let seen = self.0.lock().unwrap();
        seen.iter()
            .filter(|(m, _)| *m == model)
            .map(|(_, n)| *n)
            .max()
            .unwrap_or(0)
    }

    fn total(&self, model: classical::Model) -> usize {
        let seen = self.0.lock().unwrap();
        seen.iter().filter(|(m, _)| *m == model).map(|(_, n)| *n).sum()
    }
}

/// A one-worker pool whose every ONNX run is noted in the returned `Batches`.
fn observed_pool(queue_capacity: usize, batch: BatchConfig) -> (InferencePool, std::sync::Arc<Batches>) {
    let batches = std::sync::Arc::new(Batches::default());
    let seen = batches.clone();
    let observer: classical::BatchObserver = std::sync::Arc::new(move |model, size| {
        seen.0.lock().unwrap().push((model, size));
    });
    let config = PoolConfig {
        classifier: model_file(CLASSIFIER, "model.onnx"),
        scorer: model_file(SCORER, "model.onnx"),
        workers: 1,
        queue_capacity,
        classifier_batch: batch,
        scorer_batch: batch,
        cascade: None,
    };
    let pool = InferencePool::start(&runtime(), &config, Some(observer)).unwrap();
    (pool, batches)
}

#[tokio::test]
async fn concurrent_requests_run_in_batches_and_answer_exactly_as_unbatched_runs() {
    let batch = BatchConfig {
        max_size: 16,
        max_wait: std::time::Duration::from_millis(2),
    };
    let (pool, batches) = observed_pool(256, batch);

    let classifier_cases = read_json(&model_file(CLASSIFIER, "parity_fixtures.json"));
    let texts: Vec<(String, bool)> = classifier_cases["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["text"].as_str().unwrap().to_owned(),
                c["has_record"].as_bool().unwrap(),
            )
        })
        .collect();
    let scorer_cases = read_json(&model_file(SCORER, "parity_fixtures.json"));
    let records: Vec<_> = scorer_cases["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| pool.scorer().schema.validate(&record(&c["features"])).unwrap())
        .collect();

    // All submitted in one poll, so they queue behind the worker's first run and are gathered together.
    let classified = join_all(texts.iter().map(|(text, flag)| pool.classify(text, *flag))).await;
    let scored = join_all(records.iter().map(|r| pool.score_explained(r.clone()))).await;

    let mut classifier = RequestClassifier::load(&runtime(), &model_file(CLASSIFIER, "model.onnx")).unwrap();
    for ((text, flag), batched) in texts.iter().zip(classified) {
        let alone = classifier.classify(text, *flag).unwrap().probabilities;
        let batched = batched.unwrap().probabilities;
        let worst = alone
            .iter()
            .zip(&batched)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0_f32, f32::max);
        assert!(worst <= 1e-6, "{text:?}: batched differs from alone by {worst}");
    }
    let mut scorer = classical::ChurnScorer::load(&runtime(), &model_file(SCORER, "model.onnx")).unwrap();
    for (record, batched) in records.iter().zip(scored) {
        let (score, influences) = batched.unwrap();
        let alone = scorer.score_valid(record).unwrap();
        assert!((alone.probability - score.probability).abs() <= 1e-6);
        let alone_influences = scorer.influences(record, alone.probability).unwrap();
        assert_eq!(alone_influences.len(), influences.len());
        for (a, b) in alone_influences.iter().zip(&influences) {
            assert_eq!(a.feature, b.feature);
            assert!((a.delta - b.delta).abs() <= 1e-6);
        }
    }

    let with_text = texts.iter().filter(|(t, _)| !t.trim().is_empty()).count();
    assert!(with_text > 1);
    assert_eq!(
        batches.total(classical::Model::Classifier),
        with_text,
        "every request with text ran exactly once (text-free ones need no run)"
    );
    assert_eq!(batches.total(classical::Model::Scorer), records.len());
    assert!(
        batches.largest(classical::Model::Classifier) > 1,
        "concurrent requests were batched"
    );
    assert!(batches.largest(classical::Model::Classifier) <= 16, "max_size holds");
    assert!(batches.largest(classical::Model::Scorer) > 1);
}

#[tokio::test]
async fn a_request_without_text_gets_the_model_s_own_answer_without_a_run() {
    let (pool, batches) = observed_pool(4, BatchConfig::default());
    let mut direct = RequestClassifier::load(&runtime(), &model_file(CLASSIFIER, "model.onnx")).unwrap();
    for (text, record) in [("", true), ("", false), (" \t\n ", true), ("\u{00a0}", false)] {
        let pooled = pool.classify(text, record).await.unwrap();
        assert_eq!(
            pooled.probabilities,
            direct.classify(text, record).unwrap().probabilities,
            "{text:?}"
        );
    }
    assert_eq!(
        batches.total(classical::Model::Classifier),
        0,
        "no ONNX run after start-up"
    );
    pool.classify("what is my balance", false).await.unwrap();
    assert_eq!(
        batches.total(classical::Model::Classifier),
        1,
        "a request with text still runs the model"
    );
}

fn cascade_pool(bars: classical::CascadeBars) -> InferencePool {
    let config = PoolConfig {
        classifier: model_file(CLASSIFIER, "model.onnx"),
        scorer: model_file(SCORER, "model.onnx"),
        workers: 1,
        queue_capacity: 64,
        classifier_batch: BatchConfig::default(),
        scorer_batch: BatchConfig::default(),
        cascade: Some(classical::CascadeConfig {
            encoder: model_file(common::ENCODER, "model.onnx"),
            bars,
        }),
    };
    InferencePool::start(&runtime(), &config, None).expect("pool starts")
}

#[tokio::test]
async fn the_cascade_escalates_what_the_linear_model_is_unsure_of_and_blends_as_configured() {
    let bars = classical::CascadeBars {
        min_confidence: 0.9,
        min_margin: 0.5,
        linear_weight: 0.25,
        out_of_scope_threshold: 0.3,
    };
    let pool = cascade_pool(bars);
    let mut linear = RequestClassifier::load(&runtime(), &model_file(CLASSIFIER, "model.onnx")).unwrap();
    let mut encoder = classical::RequestEncoder::load(&runtime(), &model_file(common::ENCODER, "model.onnx")).unwrap();
    let requests = [
        ("what is my checking account balance", false),
        ("how do i dig into what drives this customer", true),
        ("is it going to rain tomorrow", false),
        ("tell me something", false),
        ("what do you get for this one", true),
        ("book me a table for two at an italian place", false),
        ("hmm", false),
    ];
    // All at once: batched on the worker for the linear model, the unsure ones then run on the encoder alone.
    let answers = join_all(requests.iter().map(|(t, r)| pool.classify(t, *r))).await;
    let mut tiers = std::collections::BTreeSet::new();
    for ((text, record), answer) in requests.iter().zip(answers) {
        let answer = answer.unwrap();
        let alone = linear.classify(text, *record).unwrap();
        tiers.insert(answer.tier);
        if bars.linear_answers(&alone) {
            assert_eq!(answer.tier, classical::Tier::Linear, "{text}");
            assert_eq!(answer.probabilities, alone.probabilities, "{text}");
            assert_eq!(answer.threshold(), linear.info().out_of_scope_threshold);
        } else {
            assert_eq!(answer.tier, classical::Tier::Encoder, "{text}");
            let e = encoder.probabilities(&[(text, *record)]).unwrap().pop().unwrap();
            for ((got, l), e) in answer.probabilities.iter().zip(&alone.probabilities).zip(&e) {
                assert!(
                    (got - (0.25 * l + 0.75 * e)).abs() < 1e-4,
                    "{text}: {got} vs blend of {l} and {e}"
                );
            }
            assert_eq!(answer.threshold(), 0.3);
        }
    }
    assert_eq!(tiers.len(), 2, "these requests must exercise both tiers: {tiers:?}");
    // A bare record never reaches a worker: the linear model's start-up answer.
    assert_eq!(pool.classify("", true).await.unwrap().tier, classical::Tier::Linear);
    assert_eq!(pool.encoder().map(|(_, b)| *b), Some(bars));
}

#[tokio::test]
async fn with_bars_at_zero_the_linear_model_always_answers() {
    let pool = cascade_pool(classical::CascadeBars {
        min_confidence: 0.0,
        min_margin: 0.0,
        linear_weight: 0.0,
        out_of_scope_threshold: 0.5,
    });
    for text in ["hmm", "what is my balance", "why would this customer leave"] {
        assert_eq!(pool.classify(text, false).await.unwrap().tier, classical::Tier::Linear);
    }
}
