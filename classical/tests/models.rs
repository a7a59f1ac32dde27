//! The shipped model files describe themselves: the gateway can run from the file alone.

// Test code: a failed expectation is the test failing, so unwrap/expect/panic are the point here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(dead_code)]
mod common;

use std::collections::BTreeMap;

use classical::schema::{FeatureKind, FeatureValue};
use classical::{ChurnScorer, ClassicalError, RequestClassifier};
use common::{CLASSIFIER, SCORER, model_file, read_json, record, runtime};

fn scorer() -> ChurnScorer {
    ChurnScorer::load(&runtime(), &model_file(SCORER, "model.onnx")).expect("scorer loads")
}

fn classifier() -> RequestClassifier {
    RequestClassifier::load(&runtime(), &model_file(CLASSIFIER, "model.onnx")).expect("classifier loads")
}

fn fixture_record() -> BTreeMap<String, FeatureValue> {
    let fixtures = read_json(&model_file(SCORER, "parity_fixtures.json"));
    record(&fixtures["cases"][0]["features"])
}

#[test]
fn classifier_metadata_has_labels_groups_and_threshold() {
    let classifier = classifier();
    let info = classifier.info();
    assert_eq!(info.identity.name, "request-classifier");
    assert_eq!(info.identity.training_data_sha256.len(), 64);
    // 150 CLINC intents + oos + at least the two record labels.
    assert!(info.labels.len() >= 153, "{} labels", info.labels.len());
    let group_of = |label: &str| info.labels.iter().find(|l| l.label == label).map(|l| l.group.as_str());
    assert_eq!(group_of("churn_score"), Some("customer_record"));
    assert_eq!(group_of("churn_explain"), Some("customer_record"));
    assert_eq!(group_of("oos"), Some("oos"));
    assert_eq!(group_of("balance"), Some("banking"));
    assert!(info.out_of_scope_threshold > 0.0 && info.out_of_scope_threshold < 1.0);
}

#[test]
fn classifier_routes_record_requests_and_plain_questions() {
    let mut classifier = classifier();
    let label = |c: &mut RequestClassifier, text: &str, record: bool| {
        c.classify(text, record).expect("classifies").decided().0.label.clone()
    };
    assert_eq!(label(&mut classifier, "", true), "churn_score");
    assert_eq!(
        label(&mut classifier, "what is the churn probability of this customer", true),
        "churn_score"
    );
    assert_eq!(
        label(&mut classifier, "why is this customer likely to leave?", true),
        "churn_explain"
    );
    assert_eq!(
        label(&mut classifier, "what is my checking account balance", false),
        "balance"
    );
    let balance = classifier
        .classify("what is my checking account balance", false)
        .expect("classifies");
    let top = balance.top(5);
    assert_eq!(top.len(), 5);
    assert!(top.windows(2).all(|w| w[0].1 >= w[1].1), "top labels are sorted");
}

#[test]
fn scorer_schema_lists_raw_csv_columns_without_the_identifier() {
    let scorer = scorer();
    let names: Vec<&str> = scorer
        .info()
        .schema
        .features()
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    assert_eq!(names.len(), 19);
    assert!(!names.contains(&"customerid") && !names.contains(&"churn"));
    let contract = scorer
        .info()
        .schema
        .features()
        .iter()
        .find(|f| f.name == "contract")
        .expect("contract");
    match &contract.kind {
        FeatureKind::String { categories, reference } => {
            assert!(categories.contains(&"Month-to-month".to_owned()));
            assert_eq!(
                reference.as_deref(),
                Some("Month-to-month"),
                "the most frequent contract"
            );
        }
        other => panic!("contract is categorical, got {other:?}"),
    }
    let threshold = scorer.info().decision_threshold;
    assert!(threshold > 0.0 && threshold < 1.0);
}

#[test]
fn scorer_reports_every_bad_field_at_once() {
    let mut scorer = scorer();
    let mut bad = fixture_record();
    bad.insert("tenure".into(), FeatureValue::Number(f64::NAN));
    bad.insert("monthlycharges".into(), FeatureValue::Number(99_999.0));
    bad.insert("contract".into(), FeatureValue::Text("Weekly".into()));
    bad.insert("gender".into(), FeatureValue::Number(1.0));
    bad.insert("shoe_size".into(), FeatureValue::Number(42.0));
    bad.remove("partner");
    let err = scorer.score(&bad).expect_err("invalid record is refused");
    let ClassicalError::InvalidFeatures(fields) = &err else {
        panic!("expected InvalidFeatures, got {err:?}")
    };
    let named: Vec<&str> = fields.iter().map(|f| f.field.as_str()).collect();
    for field in ["tenure", "monthlycharges", "contract", "gender", "shoe_size", "partner"] {
        assert!(named.contains(&field), "{field} missing from {err}");
    }
    let message = err.to_string();
    assert!(
        message.contains("not a finite number") && message.contains("unknown feature") && message.contains("missing")
    );
    // The scorer still works for the next, valid record.
    assert!(scorer.score(&fixture_record()).is_ok());
}

#[test]
fn blank_total_charges_is_accepted_only_where_the_schema_allows_null() {
    let mut scorer = scorer();
    let mut record = fixture_record();
    record.insert("tenure".into(), FeatureValue::Number(0.0));
    record.insert("totalcharges".into(), FeatureValue::Text(" ".into()));
    let blank = scorer
        .score(&record)
        .expect("blank totalcharges is imputed in the graph");
    record.insert("totalcharges".into(), FeatureValue::Null);
    assert_eq!(
        scorer.score(&record).expect("null totalcharges").probability,
        blank.probability
    );
    record.insert("monthlycharges".into(), FeatureValue::Null);
    let err = scorer.score(&record).expect_err("monthlycharges is not nullable");
    assert!(err.to_string().contains("monthlycharges: must not be null"), "{err}");
}

#[test]
fn wrong_model_kind_is_refused_with_file_and_key() {
    let err = RequestClassifier::load(&runtime(), &model_file(SCORER, "model.onnx"))
        .err()
        .expect("refused");
    let message = err.to_string();
    assert!(
        message.contains("switchyard.model_kind") && message.contains("model.onnx"),
        "{message}"
    );
}

#[test]
fn influences_are_occlusion_deltas_largest_first() {
    let mut scorer = scorer();
    let record = fixture_record();
    let valid = scorer.info().schema.validate(&record).unwrap();
    let probability = scorer.score(&record).unwrap().probability;
    let influences = scorer.influences(&valid, probability).unwrap();
    assert!(!influences.is_empty());
    assert!(
        influences.windows(2).all(|w| w[0].delta.abs() >= w[1].delta.abs()),
        "{influences:?}"
    );
    // Each delta is the score change when that one field takes the typical customer's value.
    let top = &influences[0];
    let spec = scorer
        .info()
        .schema
        .features()
        .iter()
        .find(|f| f.name == top.feature)
        .unwrap()
        .clone();
    let reference = match spec.kind {
        FeatureKind::String { reference, .. } => FeatureValue::Text(reference.unwrap()),
        FeatureKind::Number { reference, .. } | FeatureKind::Integer { reference, .. } => {
            FeatureValue::Number(reference.unwrap())
        }
    };
    let mut swapped = record.clone();
    swapped.insert(top.feature.clone(), reference);
    let expected = probability - scorer.score(&swapped).unwrap().probability;
    assert!((top.delta - expected).abs() < 1e-6, "{} vs {expected}", top.delta);
}
