//! Choosing the cascade's bars: a grid over (confidence, margin, weight), the out-of-scope threshold by the
//! training pipeline's rule, cross-validated over stratified folds.

use std::collections::BTreeMap;

use classical::CascadeBars;

use super::{Context, Fold, Kind, Outcome, Row, Setting, WEIGHT_GRID, outcome};

/// Folds for choosing the bars.
const FOLDS: usize = 5;
/// Largest in-scope accuracy given up for out-of-scope recall (the training pipeline's threshold rule).
const MAX_IN_SCOPE_LOSS: f64 = 0.0025;
/// The bars' grid.
const CONFIDENCE_GRID: [f32; 12] = [0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.97, 0.99];
const MARGIN_GRID: [f32; 9] = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8];
/// Out-of-scope thresholds tried: 0.00 … 0.90.
const THRESHOLD_STEPS: usize = 91;

/// The best setting on `rows` whose escalation share is at most `target` (%): for each (confidence, margin,
/// weight), the out-of-scope threshold by the training pipeline's rule (the highest on the 0.01 grid that keeps
/// in-scope accuracy within 0.25 points of no threshold); then the setting with the most in-scope and record
/// requests right, the lower escalation share on a tie.
fn choose(rows: &[&Row], context: &Context, target: f64) -> CascadeBars {
    let mut best: Option<(usize, usize, CascadeBars)> = None;
    for &min_confidence in &CONFIDENCE_GRID {
        for &min_margin in &MARGIN_GRID {
            let bars = CascadeBars {
                min_confidence,
                min_margin,
                linear_weight: 0.0,
                out_of_scope_threshold: 0.0,
            };
            let escalates: Vec<bool> = rows.iter().map(|r| !bars.clears(r.linear.1, r.linear.2)).collect();
            let escalated = escalates.iter().filter(|&&e| e).count();
            if 100.0 * escalated as f64 / rows.len().max(1) as f64 > target {
                continue;
            }
            for (w, &linear_weight) in WEIGHT_GRID.iter().enumerate() {
                let (threshold, right) = best_threshold(rows, &escalates, w, context);
                let candidate = CascadeBars {
                    min_confidence,
                    min_margin,
                    linear_weight,
                    out_of_scope_threshold: threshold,
                };
                let better = match &best {
                    None => true,
                    Some((r, e, _)) => right > *r || (right == *r && escalated < *e),
                };
                if better {
                    best = Some((right, escalated, candidate));
                }
            }
        }
    }
    best.map_or(
        CascadeBars {
            min_confidence: 0.0,
            min_margin: 0.0,
            linear_weight: 0.0,
            out_of_scope_threshold: context.linear_threshold,
        },
        |(_, _, bars)| bars,
    )
}

/// The pipeline's threshold rule for escalated answers at weight index `w`, and the in-scope plus record
/// requests right at that threshold. A row is right at every threshold up to some step (or at none), so counts
/// per step come from one pass, not a replay per step.
fn best_threshold(rows: &[&Row], escalates: &[bool], w: usize, context: &Context) -> (f32, usize) {
    let step = |t: usize| t as f32 / 100.0;
    // Rows right at every threshold step up to the index (in-scope CLINC, record).
    let mut last_right = [vec![0usize; THRESHOLD_STEPS], vec![0usize; THRESHOLD_STEPS]];
    let mut in_scope = 0usize;
    for (row, &escalate) in rows.iter().zip(escalates) {
        let slot = match row.kind {
            Kind::OutOfScope => continue,
            Kind::InScope => 0,
            Kind::Record => 1,
        };
        in_scope += usize::from(slot == 0);
        let right_until = if escalate {
            let (label, p) = row.escalated[w];
            (label == row.truth)
                .then(|| (0..THRESHOLD_STEPS).rev().find(|&t| p >= step(t)))
                .flatten()
        } else {
            let (label, p, _) = row.linear;
            (label == row.truth && p >= context.linear_threshold).then_some(THRESHOLD_STEPS - 1)
        };
        if let Some(t) = right_until {
            last_right[slot][t] += 1;
        }
    }
    // Right at step t: rows whose last right step is t or later.
    let at_least = |v: &[usize]| -> Vec<usize> {
        let mut out = vec![0; v.len()];
        let mut running = 0;
        for t in (0..v.len()).rev() {
            running += v[t];
            out[t] = running;
        }
        out
    };
    let (right_in, right_record) = (at_least(&last_right[0]), at_least(&last_right[1]));
    let accuracy = |t: usize| right_in[t] as f64 / in_scope.max(1) as f64;
    let chosen = (0..THRESHOLD_STEPS)
        .rev()
        .find(|&t| accuracy(t) >= accuracy(0) - MAX_IN_SCOPE_LOSS)
        .unwrap_or(0);
    (step(chosen), right_in[chosen] + right_record[chosen])
}

/// Each label's rows dealt round-robin over the folds.
fn stratified_folds(rows: &[Row]) -> Vec<usize> {
    let mut seen: BTreeMap<(usize, bool), usize> = BTreeMap::new();
    rows.iter()
        .map(|row| {
            let n = seen.entry((row.truth, row.kind == Kind::Record)).or_insert(0);
            *n += 1;
            (*n - 1) % FOLDS
        })
        .collect()
}

pub(super) fn spread(folds: &[Fold]) -> (Outcome, Outcome) {
    let stats = |f: &dyn Fn(&Outcome) -> f64| {
        let values: Vec<f64> = folds.iter().map(|fold| f(&fold.outcome)).collect();
        let n = values.len().max(1) as f64;
        let mean = values.iter().sum::<f64>() / n;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
        (mean, var.sqrt())
    };
    let (a, b, c, d) = (
        stats(&|o| o.in_scope_accuracy),
        stats(&|o| o.oos_recall),
        stats(&|o| o.record_accuracy),
        stats(&|o| o.escalated),
    );
    (
        Outcome {
            in_scope_accuracy: a.0,
            oos_recall: b.0,
            record_accuracy: c.0,
            escalated: d.0,
        },
        Outcome {
            in_scope_accuracy: a.1,
            oos_recall: b.1,
            record_accuracy: c.1,
            escalated: d.1,
        },
    )
}

/// Bars chosen on four folds and measured on the fifth, for each fold; then the bars chosen on every row.
pub(super) fn cross_validate(rows: &[Row], context: &Context, target: f64) -> (Vec<Fold>, CascadeBars) {
    let fold_of = stratified_folds(rows);
    let folds = (0..FOLDS)
        .map(|fold| {
            let held: Vec<&Row> = rows
                .iter()
                .zip(&fold_of)
                .filter(|(_, f)| **f == fold)
                .map(|(r, _)| r)
                .collect();
            let fit: Vec<&Row> = rows
                .iter()
                .zip(&fold_of)
                .filter(|(_, f)| **f != fold)
                .map(|(r, _)| r)
                .collect();
            let bars = choose(&fit, context, target);
            Fold {
                bars,
                outcome: outcome(&held, context, Setting::Cascade(bars)),
            }
        })
        .collect();
    let all: Vec<&Row> = rows.iter().collect();
    (folds, choose(&all, context, target))
}
