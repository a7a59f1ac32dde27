//! The inference pool: answers match the models run directly, and a full queue is refused, not waited on.

// Test code: a failed expectation is the test failing, so unwrap/expect/panic are the point here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use classical::{ClassicalError, InferencePool, PoolConfig, RequestClassifier};
use common::{CLASSIFIER, SCORER, model_file, read_json, record, runtime};

fn pool(workers: usize, queue_capacity: usize) -> InferencePool {
    let config = PoolConfig {
        classifier: model_file(CLASSIFIER, "model.onnx"),
        scorer: model_file(SCORER, "model.onnx"),
        workers,
        queue_capacity,
    };
    InferencePool::start(&runtime(), &config).expect("pool starts")
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
