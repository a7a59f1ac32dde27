//! The metrics, as pure functions over labels and scores, each defined as the reference libraries define it
//! (scikit-learn for ROC-AUC, average precision and Brier; equal-width bins for calibration, as the training
//! pipeline's `reliability_table`), so a Rust run reproduces the training pipeline's `metrics.json`.

use std::collections::BTreeMap;

/// Area under the ROC curve for binary `labels` (true = positive) and `scores`: the probability that a random
/// positive scores above a random negative, ties counting one half (the Mann–Whitney U statistic, as
/// scikit-learn's `roc_auc_score`). `None` when either class is absent.
pub fn roc_auc(labels: &[bool], scores: &[f64]) -> Option<f64> {
    let positives = labels.iter().filter(|&&l| l).count();
    let negatives = labels.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    // Mid-ranks over the sorted scores (ties share the average of their ranks).
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut rank_sum_positive = 0.0;
    let mut start = 0;
    while start < order.len() {
        let mut end = start;
        while end + 1 < order.len() && scores[order[end + 1]] == scores[order[start]] {
            end += 1;
        }
        let mid_rank = (start + end) as f64 / 2.0 + 1.0;
        rank_sum_positive += order[start..=end].iter().filter(|&&i| labels[i]).count() as f64 * mid_rank;
        start = end + 1;
    }
    let (p, n) = (positives as f64, negatives as f64);
    Some((rank_sum_positive - p * (p + 1.0) / 2.0) / (p * n))
}

/// Average precision (scikit-learn's `average_precision_score`): the sum over distinct score thresholds, highest
/// first, of precision at the threshold times the gain in recall. `None` without positives.
pub fn average_precision(labels: &[bool], scores: &[f64]) -> Option<f64> {
    let positives = labels.iter().filter(|&&l| l).count();
    if positives == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut true_positives, mut seen, mut recall_before, mut sum) = (0usize, 0usize, 0.0, 0.0);
    let mut i = 0;
    while i < order.len() {
        // Every sample tied at this score crosses the threshold together.
        let score = scores[order[i]];
        while i < order.len() && scores[order[i]] == score {
            true_positives += usize::from(labels[order[i]]);
            seen += 1;
            i += 1;
        }
        let recall = true_positives as f64 / positives as f64;
        let precision = true_positives as f64 / seen as f64;
        sum += (recall - recall_before) * precision;
        recall_before = recall;
    }
    Some(sum)
}

/// The ROC curve: (false positive rate, true positive rate) at every distinct threshold, from (0, 0) to (1, 1).
/// Empty when either class is absent.
pub fn roc_points(labels: &[bool], scores: &[f64]) -> Vec<(f64, f64)> {
    let positives = labels.iter().filter(|&&l| l).count() as f64;
    let negatives = labels.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return Vec::new();
    }
    let mut points = vec![(0.0, 0.0)];
    for (tp, fp) in cumulative_at_thresholds(labels, scores) {
        points.push((fp as f64 / negatives, tp as f64 / positives));
    }
    points
}

/// The precision–recall curve: (recall, precision) at every distinct threshold, highest first. Empty without
/// positives.
pub fn pr_points(labels: &[bool], scores: &[f64]) -> Vec<(f64, f64)> {
    let positives = labels.iter().filter(|&&l| l).count() as f64;
    if positives == 0.0 {
        return Vec::new();
    }
    cumulative_at_thresholds(labels, scores)
        .into_iter()
        .map(|(tp, fp)| (tp as f64 / positives, tp as f64 / (tp + fp).max(1) as f64))
        .collect()
}

/// (true positives, false positives) flagged at each distinct score, highest score first.
fn cumulative_at_thresholds(labels: &[bool], scores: &[f64]) -> Vec<(usize, usize)> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut tp, mut fp, mut out, mut i) = (0, 0, Vec::new(), 0);
    while i < order.len() {
        let score = scores[order[i]];
        while i < order.len() && scores[order[i]] == score {
            if labels[order[i]] {
                tp += 1;
            } else {
                fp += 1;
            }
            i += 1;
        }
        out.push((tp, fp));
    }
    out
}

/// Mean squared difference between the predicted probability and the outcome. `None` when empty.
pub fn brier(labels: &[bool], probabilities: &[f64]) -> Option<f64> {
    if labels.is_empty() {
        return None;
    }
    let sum: f64 = labels
        .iter()
        .zip(probabilities)
        .map(|(&l, &p)| (p - f64::from(u8::from(l))).powi(2))
        .sum();
    Some(sum / labels.len() as f64)
}

/// One equal-width bin of a reliability diagram.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ReliabilityBin {
    /// Lower edge.
    pub lower: f64,
    /// Upper edge (inclusive for the last bin).
    pub upper: f64,
    /// Samples whose probability falls in the bin.
    pub count: usize,
    /// Their mean predicted probability (`None` when empty).
    pub mean_predicted: Option<f64>,
    /// The share of them that were positive (`None` when empty).
    pub observed_rate: Option<f64>,
}

/// `bins` equal-width bins over [0, 1]; a probability on an inner edge goes to the bin above it, 1.0 to the last
/// (numpy's `digitize` over the inner edges, as the training pipeline bins).
pub fn reliability(outcomes: &[bool], probabilities: &[f64], bins: usize) -> Vec<ReliabilityBin> {
    let bins = bins.max(1);
    // numpy's linspace(0, 1, bins + 1): i × step.
    let edge = |i: usize| i as f64 * (1.0 / bins as f64);
    let mut sums = vec![(0usize, 0.0, 0usize); bins];
    for (&outcome, &p) in outcomes.iter().zip(probabilities) {
        let index = (1..bins).filter(|&i| edge(i) <= p).count();
        let slot = &mut sums[index];
        slot.0 += 1;
        slot.1 += p;
        slot.2 += usize::from(outcome);
    }
    sums.into_iter()
        .enumerate()
        .map(|(i, (count, predicted, positive))| ReliabilityBin {
            lower: edge(i),
            upper: edge(i + 1),
            count,
            mean_predicted: (count > 0).then(|| predicted / count as f64),
            observed_rate: (count > 0).then(|| positive as f64 / count as f64),
        })
        .collect()
}

/// Expected calibration error over `bins` equal-width bins: the bins' |observed − predicted|, weighted by their
/// share of the samples. `None` when empty.
pub fn expected_calibration_error(outcomes: &[bool], probabilities: &[f64], bins: usize) -> Option<f64> {
    if outcomes.is_empty() {
        return None;
    }
    let total = outcomes.len() as f64;
    Some(
        reliability(outcomes, probabilities, bins)
            .iter()
            .filter_map(|b| Some(b.count as f64 / total * (b.observed_rate? - b.mean_predicted?).abs()))
            .sum(),
    )
}

/// Counts of a binary decision against the truth.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct BinaryCounts {
    /// Predicted positive, was positive.
    pub tp: usize,
    /// Predicted positive, was negative.
    pub fp: usize,
    /// Predicted negative, was negative.
    pub tn: usize,
    /// Predicted negative, was positive.
    pub fn_: usize,
}

impl BinaryCounts {
    /// Counts for `predicted` against `truth`.
    pub fn of(truth: &[bool], predicted: impl IntoIterator<Item = bool>) -> Self {
        let mut counts = Self::default();
        for (&t, p) in truth.iter().zip(predicted) {
            match (t, p) {
                (true, true) => counts.tp += 1,
                (false, true) => counts.fp += 1,
                (false, false) => counts.tn += 1,
                (true, false) => counts.fn_ += 1,
            }
        }
        counts
    }

    /// tp / (tp + fp); 0 when nothing was predicted positive (scikit-learn's `zero_division=0`).
    pub fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }

    /// tp / (tp + fn); 0 when there were no positives.
    pub fn recall(&self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }

    /// The harmonic mean of precision and recall; 0 when both are 0.
    pub fn f1(&self) -> f64 {
        ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn_)
    }
}

fn ratio(numerator: usize, denominator: usize) -> f64 {
    if denominator == 0 {
        0.0
    } else {
        numerator as f64 / denominator as f64
    }
}

/// Per-label precision, recall, F1 and support, one-vs-rest, over `(truth, predicted)` pairs.
pub fn per_label(pairs: &[(&str, &str)]) -> BTreeMap<String, LabelScores> {
    let mut labels: Vec<&str> = pairs.iter().flat_map(|(t, p)| [*t, *p]).collect();
    labels.sort_unstable();
    labels.dedup();
    labels
        .into_iter()
        .map(|label| {
            let truth: Vec<bool> = pairs.iter().map(|(t, _)| *t == label).collect();
            let counts = BinaryCounts::of(&truth, pairs.iter().map(|(_, p)| *p == label));
            (
                label.to_owned(),
                LabelScores {
                    precision: counts.precision(),
                    recall: counts.recall(),
                    f1: counts.f1(),
                    support: counts.tp + counts.fn_,
                },
            )
        })
        .collect()
}

/// One label's scores.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct LabelScores {
    /// Of the requests given this label, the share that had it.
    pub precision: f64,
    /// Of the requests that had it, the share given it.
    pub recall: f64,
    /// Harmonic mean of the two.
    pub f1: f64,
    /// Requests that had it.
    pub support: usize,
}

/// The share of pairs whose prediction equals the truth. `None` when empty.
pub fn accuracy<T: PartialEq>(pairs: &[(T, T)]) -> Option<f64> {
    (!pairs.is_empty()).then(|| pairs.iter().filter(|(t, p)| t == p).count() as f64 / pairs.len() as f64)
}

/// Counts of (truth, predicted) pairs, e.g. by label group: the confusion matrix as a sparse map.
pub fn confusion<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> BTreeMap<(String, String), usize> {
    let mut counts = BTreeMap::new();
    for (t, p) in pairs {
        *counts.entry((t.to_owned(), p.to_owned())).or_insert(0) += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn roc_auc_counts_pairs_and_ties_as_half() {
        // Positives 0.8, 0.4; negatives 0.4, 0.1: pairs (0.8>0.4) (0.8>0.1) (0.4=0.4: half) (0.4>0.1) = 3.5 / 4.
        let labels = [true, false, true, false];
        assert!(close(roc_auc(&labels, &[0.8, 0.4, 0.4, 0.1]).unwrap(), 0.875));
        assert!(close(roc_auc(&[true, false], &[0.9, 0.1]).unwrap(), 1.0));
        assert!(close(roc_auc(&[true, false], &[0.1, 0.9]).unwrap(), 0.0));
        assert!(
            close(roc_auc(&[true, false, true, false], &[0.5; 4]).unwrap(), 0.5),
            "all tied"
        );
        assert_eq!(roc_auc(&[true, true], &[0.2, 0.3]), None, "one class");
        assert_eq!(roc_auc(&[], &[]), None, "empty");
    }

    #[test]
    fn average_precision_steps_over_distinct_thresholds() {
        // Scores 0.9 (+), 0.8 (-), 0.7 (+), 0.1 (-): recall 0.5 at precision 1, then 1.0 at precision 2/3.
        let ap = average_precision(&[true, false, true, false], &[0.9, 0.8, 0.7, 0.1]).unwrap();
        assert!(close(ap, 0.5 * 1.0 + 0.5 * (2.0 / 3.0)));
        // A tie crosses together: 0.5 (+) and 0.5 (-) first give precision 1/2 at recall 1.
        let tied = average_precision(&[true, false, false], &[0.5, 0.5, 0.1]).unwrap();
        assert!(close(tied, 0.5));
        assert_eq!(average_precision(&[false, false], &[0.3, 0.2]), None, "no positives");
        assert_eq!(average_precision(&[], &[]), None);
    }

    #[test]
    fn curves_step_through_distinct_thresholds_and_ties_move_together() {
        let labels = [true, false, true, false];
        let scores = [0.9, 0.5, 0.5, 0.1];
        assert_eq!(
            roc_points(&labels, &scores),
            vec![(0.0, 0.0), (0.0, 0.5), (0.5, 1.0), (1.0, 1.0)]
        );
        assert_eq!(
            pr_points(&labels, &scores),
            vec![(0.5, 1.0), (1.0, 2.0 / 3.0), (1.0, 0.5)]
        );
        assert!(roc_points(&[true, true], &[0.1, 0.2]).is_empty(), "one class");
        assert!(pr_points(&[false], &[0.1]).is_empty(), "no positives");
        assert!(roc_points(&[], &[]).is_empty());
    }

    #[test]
    fn brier_is_the_mean_squared_error() {
        let b = brier(&[true, false], &[0.75, 0.5]).unwrap();
        assert!(close(b, (0.0625 + 0.25) / 2.0));
        assert_eq!(brier(&[], &[]), None);
    }

    #[test]
    fn reliability_bins_are_equal_width_and_the_last_includes_one() {
        let outcomes = [false, true, true, false, true];
        let probabilities = [0.05, 0.15, 0.1, 0.95, 1.0];
        let bins = reliability(&outcomes, &probabilities, 10);
        assert_eq!(bins.len(), 10);
        assert_eq!(bins[0].count, 1);
        assert_eq!(bins[1].count, 2, "0.1 sits on the edge and goes up");
        assert!(close(bins[1].mean_predicted.unwrap(), 0.125));
        assert!(close(bins[1].observed_rate.unwrap(), 1.0));
        assert_eq!(bins[9].count, 2, "1.0 is in the last bin");
        assert_eq!(bins[5].mean_predicted, None);
        // ECE: bin0 |0-0.05|*1/5 + bin1 |1-0.125|*2/5 + bin9 |0.5-0.975|*2/5.
        let ece = expected_calibration_error(&outcomes, &probabilities, 10).unwrap();
        assert!(close(ece, 0.05 / 5.0 + 0.875 * 2.0 / 5.0 + 0.475 * 2.0 / 5.0), "{ece}");
        assert_eq!(expected_calibration_error(&[], &[], 10), None);
    }

    #[test]
    fn precision_recall_and_f1_per_label_with_zero_division_as_zero() {
        let pairs = [("a", "a"), ("a", "b"), ("b", "b"), ("c", "b")];
        let scores = per_label(&pairs);
        assert!(close(scores["a"].precision, 1.0) && close(scores["a"].recall, 0.5));
        assert!(close(scores["a"].f1, 2.0 / 3.0));
        assert!(close(scores["b"].precision, 1.0 / 3.0) && close(scores["b"].recall, 1.0));
        assert_eq!(scores["c"].support, 1);
        assert!(
            close(scores["c"].precision, 0.0) && close(scores["c"].f1, 0.0),
            "never predicted"
        );
        assert!(close(accuracy(&pairs).unwrap(), 0.5));
        assert_eq!(accuracy::<&str>(&[]), None);
        let counts = BinaryCounts::of(&[true, true, false, false], [true, false, true, false]);
        assert_eq!((counts.tp, counts.fn_, counts.fp, counts.tn), (1, 1, 1, 1));
        let groups = confusion([("x", "x"), ("x", "y"), ("x", "y")]);
        assert_eq!(groups[&("x".to_owned(), "y".to_owned())], 2);
    }
}
