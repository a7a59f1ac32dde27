//! `cascade`: each classifier tier and the cascade on all labelled requests the models never trained on, the
//! cascade's bars chosen by cross-validation for a target escalation share, and the served path checked against
//! the simulation that chose them.
//!
//! The requests: CLINC150 validation (in-scope and out-of-scope, no record) and every record phrasing (held-out
//! templates and openers, the three independent sets; sent with a record). Each tier runs once per request; a
//! setting of the bars is then replayed from those outputs with the gateway's own rules
//! ([`classical::CascadeBars::clears`] and [`classical::CascadeBars::escalated`]). A setting is chosen on four
//! folds and measured on the fifth (stratified by label), so the reported numbers and their spread are for bars
//! that never saw the requests they are measured on; the setting to ship is then chosen on all of them.

use std::collections::BTreeMap;
use std::time::Instant;

use classical::{CascadeBars, CascadeClassifier, ClassifierInfo, RequestClassifier, RequestEncoder, Tier};
use serde::Serialize;

use crate::EvalError;
use crate::datasets::{LabelledText, RecordPhrasing};

/// Requests per ONNX run while evaluating.
const BATCH: usize = 64;
/// Weights of the linear model in escalated answers that the search tries (and rows precompute).
pub(crate) const WEIGHT_GRID: [f32; 4] = [0.0, 0.2, 0.4, 0.6];

mod kernels;
mod markdown;
mod search;

pub use kernels::{DifferingDecision, KernelComparison, KernelRun, compare as compare_kernels};
pub use markdown::{markdown, tiers as tiers_markdown};
/// What kind of labelled request a row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    InScope,
    OutOfScope,
    Record,
}

/// One labelled request and what each tier said about it.
struct Row {
    kind: Kind,
    /// The phrasing set for record requests (`held_out_template`, `independent_v3`, ...), else the CLINC split.
    set: String,
    truth: usize,
    /// The linear model's top label, its probability and the top-2 margin.
    linear: (usize, f32, f32),
    /// The escalated answer's top label and probability, per weight of [`WEIGHT_GRID`].
    escalated: Vec<(usize, f32)>,
    /// The encoder alone: top label and probability.
    encoder: (usize, f32),
}

/// The labels and the linear tier's fixed threshold.
struct Context {
    oos: usize,
    linear_threshold: f32,
    labels: Vec<String>,
}

/// One setting's results on a set of rows.
#[derive(Debug, Clone, Copy, Serialize, Default)]
pub struct Outcome {
    /// CLINC150 in-scope accuracy, %.
    pub in_scope_accuracy: f64,
    /// CLINC150 out-of-scope recall, %.
    pub oos_recall: f64,
    /// Record requests decided as their label, %.
    pub record_accuracy: f64,
    /// Requests that escalated to the encoder, %.
    pub escalated: f64,
}

/// One fold: the bars chosen on the other folds and what they did here.
#[derive(Debug, Serialize)]
pub struct Fold {
    /// The chosen setting.
    pub bars: CascadeBars,
    /// Measured on this fold.
    pub outcome: Outcome,
}

/// A row of the tiers table.
#[derive(Debug, Serialize)]
pub struct TierRow {
    /// `linear`, `encoder`, `cascade`.
    pub name: String,
    /// Out-of-scope threshold applied (the cascade: to escalated answers).
    pub threshold: f32,
    /// All labelled requests.
    pub all: Outcome,
    /// Record routing by phrasing set, %.
    pub record_sets: BTreeMap<String, f64>,
    /// Plain CLINC150 questions decided as a record label, %.
    pub plain_to_record: f64,
}

/// Classification latency per request, run alone on one thread, µs.
#[derive(Debug, Serialize)]
pub struct Latency {
    /// Requests the linear tier answered: p50, p99.
    pub linear: (f64, f64),
    /// Requests that escalated: p50, p99.
    pub escalated: (f64, f64),
    /// All requests: p50, p99.
    pub all: (f64, f64),
}

/// How the bars were chosen (the `cascade` command).
#[derive(Debug, Serialize)]
pub struct Search {
    /// The escalation share the bars were chosen for, %.
    pub target_escalation: f64,
    /// Per fold: bars chosen elsewhere, measured here.
    pub folds: Vec<Fold>,
    /// Mean and standard deviation over folds of each measure.
    pub fold_mean: Outcome,
    /// See `fold_mean`.
    pub fold_sd: Outcome,
    /// The setting chosen on all requests: what to ship.
    pub chosen: CascadeBars,
}

/// Each tier and a cascade setting on every labelled request, and the served path checked against the replay.
#[derive(Debug, Serialize)]
pub struct CascadeReport {
    /// Labelled requests.
    pub requests: usize,
    /// The cascade's setting measured.
    pub bars: CascadeBars,
    /// Each tier and the cascade.
    pub tiers: Vec<TierRow>,
    /// Requests on which the served path (`CascadeClassifier`) and the replay disagreed: must be 0.
    pub served_disagreements: usize,
    /// Per-request latency through `CascadeClassifier`.
    pub latency: Latency,
    /// How the setting was chosen, when this run chose it.
    pub search: Option<Search>,
    /// The machine and, where its own int8 kernel is not exact, the cascade on both kernels.
    pub kernels: Option<KernelComparison>,
}

/// Both tiers' outputs on every labelled request the models never trained on.
pub struct Prepared {
    requests: Vec<(String, bool)>,
    rows: Vec<Row>,
    context: Context,
    encoder_threshold: f32,
    /// Each encoder run, one request alone, µs.
    encoder_us: Vec<f64>,
}

/// Runs each tier once over CLINC150 validation (no record) and every record phrasing (with a record).
pub fn prepare(
    linear: &mut RequestClassifier,
    encoder: &mut RequestEncoder,
    clinc: &[LabelledText],
    phrasings: &[RecordPhrasing],
) -> Result<Prepared, EvalError> {
    let info = linear.info().clone();
    let index = |label: &str| info.labels.iter().position(|l| l.label == label);
    let oos = index(&info.out_of_scope_label).unwrap_or_default();
    let mut labelled: Vec<(&str, bool, usize, Kind, String)> = Vec::new();
    for t in clinc {
        let truth = index(&t.label).ok_or_else(|| unknown(&t.label))?;
        let kind = if truth == oos { Kind::OutOfScope } else { Kind::InScope };
        labelled.push((&t.text, false, truth, kind, "clinc150_val".to_owned()));
    }
    for p in phrasings {
        let truth = index(&p.label).ok_or_else(|| unknown(&p.label))?;
        labelled.push((&p.text, true, truth, Kind::Record, p.kind.clone()));
    }
    let (rows, encoder_us) = tier_outputs(linear, encoder, &info, &labelled)?;
    Ok(Prepared {
        requests: labelled.iter().map(|(t, r, ..)| ((*t).to_owned(), *r)).collect(),
        rows,
        context: Context {
            oos,
            linear_threshold: info.out_of_scope_threshold,
            labels: info.labels.iter().map(|l| l.label.clone()).collect(),
        },
        encoder_threshold: encoder.info().out_of_scope_threshold,
        encoder_us,
    })
}

/// Chooses the bars for at most `target_escalation` % escalated, cross-validated (see [`search`]).
pub fn choose_bars(prepared: &Prepared, target_escalation: f64) -> Search {
    let (folds, chosen) = search::cross_validate(&prepared.rows, &prepared.context, target_escalation);
    let (fold_mean, fold_sd) = search::spread(&folds);
    Search {
        target_escalation,
        folds,
        fold_mean,
        fold_sd,
        chosen,
    }
}

/// Each tier and the cascade at `bars`, and `served` (a `CascadeClassifier` with those bars) run request by
/// request against the replay.
pub fn report(
    prepared: &Prepared,
    bars: CascadeBars,
    served: &mut CascadeClassifier,
    search: Option<Search>,
) -> Result<CascadeReport, EvalError> {
    let context = &prepared.context;
    let mut disagreements = 0;
    let (mut linear_us, mut escalated_us) = (Vec::new(), Vec::new());
    for ((text, has_record), row) in prepared.requests.iter().zip(&prepared.rows) {
        let started = Instant::now();
        let answer = served.classify_batch(&[(text, *has_record)], |_| {}).pop();
        let elapsed = started.elapsed().as_secs_f64() * 1e6;
        let answer = answer.ok_or_else(|| EvalError::Config("no answer".to_owned()))??;
        let (label, _) = answer.decided();
        let (simulated, tier) = decide(row, context, Setting::Cascade(bars));
        if label.label != context.labels[simulated] || answer.tier != tier {
            disagreements += 1;
        }
        match answer.tier {
            Tier::Linear => linear_us.push(elapsed),
            Tier::Encoder => escalated_us.push(elapsed),
        }
    }
    let mut every: Vec<f64> = linear_us.iter().chain(&escalated_us).copied().collect();
    let latency = Latency {
        linear: percentiles(&mut linear_us),
        escalated: percentiles(&mut escalated_us),
        all: percentiles(&mut every),
    };
    let all: Vec<&Row> = prepared.rows.iter().collect();
    let encoder = prepared.encoder_threshold;
    let tiers = vec![
        tier_row("linear", context.linear_threshold, &all, context, Setting::Linear),
        tier_row("encoder", encoder, &all, context, Setting::Encoder(encoder)),
        tier_row(
            "cascade",
            bars.out_of_scope_threshold,
            &all,
            context,
            Setting::Cascade(bars),
        ),
    ];
    Ok(CascadeReport {
        requests: prepared.rows.len(),
        bars,
        tiers,
        served_disagreements: disagreements,
        latency,
        search,
        kernels: None,
    })
}

fn unknown(label: &str) -> EvalError {
    EvalError::Config(format!("label {label:?} is not one of the classifier's"))
}

/// Runs each tier once over every request; also returns each encoder run's time (µs).
fn tier_outputs(
    linear: &mut RequestClassifier,
    encoder: &mut RequestEncoder,
    info: &ClassifierInfo,
    labelled: &[(&str, bool, usize, Kind, String)],
) -> Result<(Vec<Row>, Vec<f64>), EvalError> {
    let mut rows = Vec::with_capacity(labelled.len());
    let mut encoder_us = Vec::with_capacity(labelled.len());
    for chunk in labelled.chunks(BATCH) {
        let batch: Vec<(&str, bool)> = chunk.iter().map(|(t, r, ..)| (*t, *r)).collect();
        let linear_out = linear.classify_batch(&batch)?;
        // One request per encoder run, as the gateway runs it (its int8 activation scales are per run).
        let mut encoder_out = Vec::with_capacity(batch.len());
        for request in &batch {
            let started = Instant::now();
            encoder_out.extend(encoder.probabilities(std::slice::from_ref(request))?);
            encoder_us.push(started.elapsed().as_secs_f64() * 1e6);
        }
        for (((_, _, truth, kind, set), l), e) in chunk.iter().zip(linear_out).zip(encoder_out) {
            let top = l.top(2);
            let label_at = |label: &str| info.labels.iter().position(|x| x.label == label).unwrap_or_default();
            let first = top.first().map_or((0, 0.0), |(label, p)| (label_at(&label.label), *p));
            let margin = classical::Classification::margin(&top);
            let escalated = WEIGHT_GRID
                .iter()
                .map(|&w| {
                    let bars = CascadeBars {
                        min_confidence: 0.0,
                        min_margin: 0.0,
                        linear_weight: w,
                        out_of_scope_threshold: 0.0,
                    };
                    let answer = bars.escalated(&l, &e);
                    answer
                        .top(1)
                        .first()
                        .map_or((0, 0.0), |(label, p)| (label_at(&label.label), *p))
                })
                .collect();
            let encoder_top = e
                .iter()
                .enumerate()
                .fold((0, f32::MIN), |best, (i, &p)| if p > best.1 { (i, p) } else { best });
            rows.push(Row {
                kind: *kind,
                set: set.clone(),
                truth: *truth,
                linear: (first.0, first.1, margin),
                escalated,
                encoder: encoder_top,
            });
        }
    }
    Ok((rows, encoder_us))
}

/// Which decision rule to replay.
#[derive(Debug, Clone, Copy)]
enum Setting {
    Linear,
    Encoder(f32),
    Cascade(CascadeBars),
}

/// The decided label and tier of `row` under `setting`: the gateway's rules (`Classification::decided` with the
/// answering tier's threshold).
fn decide(row: &Row, context: &Context, setting: Setting) -> (usize, Tier) {
    let threshold = |(label, p): (usize, f32), t: f32| if p < t { context.oos } else { label };
    match setting {
        Setting::Linear => (
            threshold((row.linear.0, row.linear.1), context.linear_threshold),
            Tier::Linear,
        ),
        Setting::Encoder(t) => (threshold(row.encoder, t), Tier::Encoder),
        Setting::Cascade(bars) => {
            if bars.clears(row.linear.1, row.linear.2) {
                (
                    threshold((row.linear.0, row.linear.1), context.linear_threshold),
                    Tier::Linear,
                )
            } else {
                let w = WEIGHT_GRID
                    .iter()
                    .position(|&w| w == bars.linear_weight)
                    .unwrap_or_default();
                (threshold(row.escalated[w], bars.out_of_scope_threshold), Tier::Encoder)
            }
        }
    }
}

fn outcome(rows: &[&Row], context: &Context, setting: Setting) -> Outcome {
    let mut hits = [0usize; 3];
    let mut counts = [0usize; 3];
    let mut escalated = 0;
    for row in rows {
        let (label, tier) = decide(row, context, setting);
        let k = row.kind as usize;
        counts[k] += 1;
        hits[k] += usize::from(label == row.truth);
        escalated += usize::from(tier == Tier::Encoder);
    }
    let pct = |h: usize, n: usize| 100.0 * h as f64 / n.max(1) as f64;
    Outcome {
        in_scope_accuracy: pct(hits[0], counts[0]),
        oos_recall: pct(hits[1], counts[1]),
        record_accuracy: pct(hits[2], counts[2]),
        escalated: pct(escalated, rows.len()),
    }
}

fn tier_row(name: &str, threshold: f32, rows: &[&Row], context: &Context, setting: Setting) -> TierRow {
    let mut sets: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut plain = (0usize, 0usize);
    let record_labels: Vec<usize> = rows
        .iter()
        .filter(|r| r.kind == Kind::Record)
        .map(|r| r.truth)
        .collect();
    for row in rows {
        let (label, _) = decide(row, context, setting);
        if row.kind == Kind::Record {
            let entry = sets.entry(row.set.clone()).or_default();
            entry.0 += usize::from(label == row.truth);
            entry.1 += 1;
        } else {
            plain.0 += usize::from(record_labels.contains(&label));
            plain.1 += 1;
        }
    }
    let pct = |(h, n): (usize, usize)| 100.0 * h as f64 / n.max(1) as f64;
    TierRow {
        name: name.to_owned(),
        threshold,
        all: outcome(rows, context, setting),
        record_sets: sets.into_iter().map(|(k, v)| (k, pct(v))).collect(),
        plain_to_record: pct(plain),
    }
}

fn percentiles(values: &mut [f64]) -> (f64, f64) {
    if values.is_empty() {
        return (0.0, 0.0);
    }
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}

/// The gate's view of a cascade report (fractions, as the other gates): each tier's CLINC150 and record numbers,
/// the share escalated, and the served path's disagreements with the replay.
pub fn measurements(report: &CascadeReport) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for tier in &report.tiers {
        // The cascade's own measures are `cascade.<measure>` (gated); each tier's are `cascade.<tier>_<measure>`.
        let key = |what: &str| match tier.name.as_str() {
            "cascade" => format!("cascade.{what}"),
            other => format!("cascade.{other}_{what}"),
        };
        out.insert(key("in_scope_accuracy"), tier.all.in_scope_accuracy / 100.0);
        out.insert(key("oos_recall"), tier.all.oos_recall / 100.0);
        out.insert(key("record_routing"), tier.all.record_accuracy / 100.0);
        out.insert(key("plain_to_record"), tier.plain_to_record / 100.0);
        let independent: Vec<f64> = tier
            .record_sets
            .iter()
            .filter(|(set, _)| set.starts_with("independent"))
            .map(|(_, v)| *v)
            .collect();
        if let Some(min) = independent.iter().copied().reduce(f64::min) {
            out.insert(key("record_routing_independent_min_set"), min / 100.0);
        }
    }
    if let Some(cascade) = report.tiers.iter().find(|t| t.name == "cascade") {
        out.insert("cascade.escalated".to_owned(), cascade.all.escalated / 100.0);
    }
    out.insert(
        "cascade.served_disagreements".to_owned(),
        report.served_disagreements as f64,
    );
    out
}
