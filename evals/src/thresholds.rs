//! How well the out-of-scope threshold rule transfers: chosen on some folds of validation, measured on the others.

use std::collections::BTreeMap;

use serde::Serialize;

/// The threshold rule cross-validated: on each fold, the threshold chosen on the other folds (the training
/// pipeline's rule: the highest threshold on a 0.01 grid up to 0.90 that keeps in-scope accuracy within 0.25
/// points of no threshold), measured on the fold.
#[derive(Debug, Serialize)]
pub struct ThresholdFolds {
    /// Per fold: (threshold chosen elsewhere, in-scope accuracy here, OOS recall here).
    pub folds: Vec<(f64, f64, f64)>,
    /// Mean and standard deviation of the in-scope accuracy over folds.
    pub in_scope_accuracy: (f64, f64),
    /// Mean and standard deviation of the OOS recall over folds.
    pub oos_recall: (f64, f64),
}

/// Folds for the threshold's cross-validation.
const FOLDS: usize = 5;

/// Largest in-scope accuracy given up for out-of-scope recall when choosing a threshold (the pipeline's).
const MAX_IN_SCOPE_LOSS: f64 = 0.0025;

/// The pipeline's rule on `rows` (indices into `truth`/`top`): the highest threshold on the 0.01 grid (0 … 0.90)
/// whose in-scope accuracy stays within [`MAX_IN_SCOPE_LOSS`] of no threshold.
pub(crate) fn choose_threshold(rows: &[usize], truth: &[&str], top: &[(String, f64)], oos: &str) -> f64 {
    let in_scope: Vec<usize> = rows.iter().copied().filter(|&i| truth[i] != oos).collect();
    let accuracy = |t: f64| {
        in_scope
            .iter()
            .filter(|&&i| (if top[i].1 < t { oos } else { top[i].0.as_str() }) == truth[i])
            .count() as f64
            / in_scope.len().max(1) as f64
    };
    let base = accuracy(0.0);
    (0..=90)
        .map(|i| f64::from(i) / 100.0)
        .filter(|&t| accuracy(t) >= base - MAX_IN_SCOPE_LOSS)
        .fold(0.0, f64::max)
}

/// Cross-validates the threshold rule over stratified folds (each label's texts dealt round-robin).
pub(crate) fn threshold_folds(truth: &[&str], top: &[(String, f64)], oos: &str) -> ThresholdFolds {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    let fold_of: Vec<usize> = truth
        .iter()
        .map(|label| {
            let n = seen.entry(label).or_insert(0);
            *n += 1;
            (*n - 1) % FOLDS
        })
        .collect();
    let folds: Vec<(f64, f64, f64)> = (0..FOLDS)
        .map(|fold| {
            let (held, fit): (Vec<usize>, Vec<usize>) = (0..truth.len()).partition(|&i| fold_of[i] == fold);
            let t = choose_threshold(&fit, truth, top, oos);
            let decide = |i: usize| if top[i].1 < t { oos } else { top[i].0.as_str() };
            let in_scope: Vec<usize> = held.iter().copied().filter(|&i| truth[i] != oos).collect();
            let out: Vec<usize> = held.iter().copied().filter(|&i| truth[i] == oos).collect();
            let accuracy =
                in_scope.iter().filter(|&&i| decide(i) == truth[i]).count() as f64 / in_scope.len().max(1) as f64;
            let recall = out.iter().filter(|&&i| decide(i) == oos).count() as f64 / out.len().max(1) as f64;
            (t, accuracy, recall)
        })
        .collect();
    let spread = |values: Vec<f64>| {
        let mean = values.iter().sum::<f64>() / values.len().max(1) as f64;
        let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (values.len().max(2) - 1) as f64;
        (mean, variance.sqrt())
    };
    ThresholdFolds {
        in_scope_accuracy: spread(folds.iter().map(|f| f.1).collect()),
        oos_recall: spread(folds.iter().map(|f| f.2).collect()),
        folds,
    }
}

impl ThresholdFolds {
    /// One sentence for the reports.
    pub fn sentence(&self) -> String {
        format!(
            "Threshold rule, {FOLDS}-fold cross-validated on validation (chosen on the other folds, measured on each): \
             thresholds {}; in-scope accuracy {:.2} ± {:.2} %, OOS recall {:.1} ± {:.1} % (mean ± sd over folds).",
            self.folds
                .iter()
                .map(|f| format!("{:.2}", f.0))
                .collect::<Vec<_>>()
                .join(", "),
            100.0 * self.in_scope_accuracy.0,
            100.0 * self.in_scope_accuracy.1,
            100.0 * self.oos_recall.0,
            100.0 * self.oos_recall.1
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn the_threshold_rule_keeps_accuracy_within_its_allowance_and_folds_hold_out_every_label() {
        // In-scope "a" texts: confident except one at 0.3; out-of-scope texts at 0.2 and 0.4.
        let truth = ["a", "a", "a", "a", "oos", "oos"];
        let top: Vec<(String, f64)> = [("a", 0.9), ("a", 0.8), ("a", 0.3), ("a", 0.95), ("a", 0.2), ("a", 0.4)]
            .iter()
            .map(|(l, p)| ((*l).to_owned(), *p))
            .collect();
        let all: Vec<usize> = (0..6).collect();
        // No in-scope loss allowed beyond 0.25 points: the highest threshold keeping all four "a" right is 0.30.
        assert_eq!(choose_threshold(&all, &truth, &top, "oos"), 0.3);
        let folds = threshold_folds(&truth, &top, "oos");
        assert_eq!(folds.folds.len(), FOLDS);
        assert!(folds.folds.iter().all(|(t, _, _)| (0.0..=0.9).contains(t)));
    }
}
