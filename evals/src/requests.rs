//! The labelled request set the policy what-if and the end-to-end evals replay: what a request is, which kind of
//! target serves it right, and which label the classifier should give it.

use std::collections::BTreeMap;

use classical::schema::{FeatureSchema, FeatureValue};
use switchyard::policy::TargetKind;

use crate::EvalError;
use crate::datasets::Datasets;

/// One labelled request.
#[derive(Debug, Clone)]
pub struct LabelledRequest {
    /// A stable id (`clinc-17`, `record-3`, `record-only-5`), also the split draws' sticky key.
    pub id: String,
    /// The text.
    pub text: String,
    /// The attached record, if any.
    pub record: Option<BTreeMap<String, FeatureValue>>,
    /// The kind of target that serves it right: `llm` for a question, `classical` for a score request (or a
    /// record alone), `hybrid` for an explanation request.
    pub expected_kind: TargetKind,
    /// The label it should get: the CLINC150 intent (or `oos`), or the record label.
    pub expected_label: String,
}

/// The standard set: every CLINC150 validation text (a question: `llm`), every record phrasing with a test
/// customer attached (`classical` or `hybrid` by label), and `record_only` test customers without text
/// (`classical`, label `churn_score`).
pub fn request_set(
    datasets: &Datasets,
    schema: &FeatureSchema,
    record_only: usize,
) -> Result<Vec<LabelledRequest>, EvalError> {
    let customers = datasets.telco_test(schema)?;
    let mut requests = Vec::new();
    for (i, row) in datasets.clinc150_val()?.into_iter().enumerate() {
        requests.push(LabelledRequest {
            id: format!("clinc-{i}"),
            text: row.text,
            record: None,
            expected_kind: TargetKind::Llm,
            expected_label: row.label,
        });
    }
    for (i, phrasing) in datasets.record_phrasings()?.into_iter().enumerate() {
        let expected_kind = if phrasing.label == "churn_explain" {
            TargetKind::Hybrid
        } else {
            TargetKind::Classical
        };
        requests.push(LabelledRequest {
            id: format!("record-{i}"),
            text: phrasing.text,
            record: customers.get(i % customers.len().max(1)).map(|c| c.record.clone()),
            expected_kind,
            expected_label: phrasing.label,
        });
    }
    for (i, customer) in customers.iter().take(record_only).enumerate() {
        requests.push(LabelledRequest {
            id: format!("record-only-{i}"),
            text: String::new(),
            record: Some(customer.record.clone()),
            expected_kind: TargetKind::Classical,
            expected_label: "churn_score".to_owned(),
        });
    }
    Ok(requests)
}

/// `limit` requests spread evenly over `requests` (every kind represented), or all of them.
pub fn spread(requests: &[LabelledRequest], limit: Option<usize>) -> Vec<LabelledRequest> {
    match limit {
        Some(n) if n < requests.len() && n > 0 => (0..n).map(|i| requests[i * requests.len() / n].clone()).collect(),
        _ => requests.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn request(id: usize) -> LabelledRequest {
        LabelledRequest {
            id: id.to_string(),
            text: String::new(),
            record: None,
            expected_kind: TargetKind::Llm,
            expected_label: String::new(),
        }
    }

    #[test]
    fn a_spread_sample_reaches_across_the_whole_set() {
        let all: Vec<LabelledRequest> = (0..100).map(request).collect();
        let ids: Vec<String> = spread(&all, Some(4)).into_iter().map(|r| r.id).collect();
        assert_eq!(ids, ["0", "25", "50", "75"]);
        assert_eq!(spread(&all, None).len(), 100);
        assert_eq!(spread(&all, Some(500)).len(), 100);
    }
}
