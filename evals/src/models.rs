//! `models`: the classifier and the scorer through the gateway's own runtime (`classical`), on the versioned
//! datasets, and the check that the numbers reproduce the training pipeline's `metrics.json`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use classical::{ChurnScorer, OnnxRuntime, RequestClassifier};
use serde::Serialize;

use crate::EvalError;
use crate::datasets::{Datasets, LabelledRecord, LabelledText, RecordPhrasing, file_sha256};
use crate::metrics::{self, BinaryCounts, LabelScores, ReliabilityBin};
use crate::thresholds::{ThresholdFolds, threshold_folds};

/// Requests per ONNX run while evaluating.
const BATCH: usize = 256;

/// Calibration bins (as the training pipeline).
const BINS: usize = 10;

/// Everything `models` measured.
#[derive(Debug, Serialize)]
pub struct ModelsReport {
    /// The classifier on CLINC150 validation.
    pub classifier: ClassifierReport,
    /// The scorer on the Telco test split.
    pub scorer: ScorerReport,
    /// Each number `metrics.json` also records, ours beside its.
    pub reproduction: Vec<Reproduced>,
    /// The classifier cascade the gateway config sets up, when it sets one up.
    pub cascade: Option<crate::cascade::CascadeReport>,
}

/// The classifier's numbers.
#[derive(Debug, Serialize)]
pub struct ClassifierReport {
    /// Model name and version.
    pub model: String,
    /// The model file's sha256.
    pub sha256: String,
    /// The out-of-scope threshold in the model's metadata.
    pub threshold: f64,
    /// The CLINC150 paper's protocol rows: without a threshold (`oos-train`) and with the model's.
    pub protocol: Vec<ProtocolRow>,
    /// Calibration of the top label's probability on in-scope validation.
    pub ece_top_label: f64,
    /// Its reliability diagram.
    pub reliability: Vec<ReliabilityBin>,
    /// Per-label scores at the shipped threshold (in-scope and `oos` texts).
    pub per_label: BTreeMap<String, LabelScores>,
    /// Macro-averaged F1 over the labels present.
    pub macro_f1: f64,
    /// (true group, predicted group) → count at the shipped threshold.
    pub confusion_by_group: Vec<(String, String, usize)>,
    /// Plain requests (no record) the classifier sent to record labels: share of all validation texts.
    pub plain_to_record: f64,
    /// The out-of-scope threshold chosen by 5-fold cross-validation over CLINC150 validation: how well the
    /// threshold-choosing rule transfers to texts it was not chosen on.
    pub threshold_folds: ThresholdFolds,
    /// Record requests routed to the right record label, by kind of phrasing and label (sent with a record).
    pub record_routing: Vec<RoutingRow>,
    /// All held-out phrasings (templates and openers), both labels.
    pub record_routing_held_out: f64,
    /// The held-out phrasings sent without a record that landed on a record label anyway.
    pub held_out_without_record_to_record: f64,
}

/// Record routing for one kind of phrasing and label.
#[derive(Debug, Serialize)]
pub struct RoutingRow {
    /// `held_out` (templates and openers together), `held_out_template`, `held_out_opener`, `independent`,
    /// `independent_v2`, `independent_v3`, and `all_independent` (the three human-written sets together).
    pub kind: String,
    /// The true label.
    pub label: String,
    /// Requests.
    pub requests: usize,
    /// Share decided as `label` (at the shipped threshold).
    pub accuracy: f64,
}

/// One row of the CLINC150 paper's table 2 protocol.
#[derive(Debug, Serialize)]
pub struct ProtocolRow {
    /// `oos-train` or `oos-train+threshold`.
    pub name: String,
    /// The threshold applied.
    pub threshold: f64,
    /// In-scope accuracy (an `oos` answer to an in-scope text is wrong).
    pub in_scope_accuracy: f64,
    /// Share of out-of-scope texts answered `oos`.
    pub oos_recall: f64,
}

/// The scorer's numbers.
#[derive(Debug, Serialize)]
pub struct ScorerReport {
    /// Model name and version.
    pub model: String,
    /// The model file's sha256.
    pub sha256: String,
    /// The decision threshold in the model's metadata.
    pub threshold: f64,
    /// Test customers.
    pub rows: usize,
    /// Their churn rate.
    pub positive_rate: f64,
    /// ROC-AUC.
    pub roc_auc: f64,
    /// Average precision (the PR-AUC scikit-learn reports).
    pub pr_auc: f64,
    /// Brier score.
    pub brier: f64,
    /// Expected calibration error.
    pub ece: f64,
    /// Reliability diagram.
    pub reliability: Vec<ReliabilityBin>,
    /// Decisions at the model's threshold.
    pub at_threshold: ThresholdRow,
    /// Decisions at thresholds 0.1 … 0.9.
    pub thresholds: Vec<ThresholdRow>,
    /// By contract type, tenure band and internet service.
    pub slices: Vec<SliceRow>,
    /// (score, churned) per test customer, for the curves.
    #[serde(skip)]
    pub scored: Vec<(f64, bool)>,
}

/// Decisions at one threshold.
#[derive(Debug, Serialize)]
pub struct ThresholdRow {
    /// The threshold (flag when score ≥ threshold).
    pub threshold: f64,
    /// Counts.
    pub counts: BinaryCounts,
    /// Precision.
    pub precision: f64,
    /// Recall.
    pub recall: f64,
    /// F1.
    pub f1: f64,
    /// Share of customers flagged.
    pub flagged: f64,
}

/// One slice of the test customers.
#[derive(Debug, Serialize)]
pub struct SliceRow {
    /// `contract`, `tenure` or `internetservice`.
    pub by: String,
    /// The slice's value (a tenure band such as `0-12`).
    pub value: String,
    /// Customers.
    pub rows: usize,
    /// Their churn rate.
    pub positive_rate: f64,
    /// Mean predicted probability.
    pub mean_predicted: f64,
    /// ROC-AUC within the slice (`None` when it has one class).
    pub roc_auc: Option<f64>,
    /// Recall at the model's threshold (`None` without positives).
    pub recall: Option<f64>,
}

/// One number both we and `metrics.json` report.
#[derive(Debug, Serialize)]
pub struct Reproduced {
    /// What it is (`metrics.json` key path).
    pub key: String,
    /// Ours (as a fraction; percentages converted).
    pub ours: f64,
    /// `metrics.json`'s (as a fraction).
    pub recorded: f64,
}

impl Reproduced {
    /// |ours − recorded|.
    pub fn difference(&self) -> f64 {
        (self.ours - self.recorded).abs()
    }
}

/// The model files a run evaluates.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    /// The request classifier's ONNX file.
    pub classifier: PathBuf,
    /// The churn scorer's ONNX file.
    pub scorer: PathBuf,
}

/// Runs both models on their datasets and checks the numbers against each model's `metrics.json`.
pub fn evaluate(runtime: &OnnxRuntime, files: &ModelFiles, datasets: &Datasets) -> Result<ModelsReport, EvalError> {
    let mut classifier = RequestClassifier::load(runtime, &files.classifier)?;
    let clinc = datasets.clinc150_val()?;
    let phrasings = datasets.record_phrasings()?;
    let classifier_report = evaluate_classifier(&mut classifier, &files.classifier, &clinc, &phrasings)?;
    let mut scorer = ChurnScorer::load(runtime, &files.scorer)?;
    let telco = datasets.telco_test(&scorer.info().schema)?;
    let scorer_report = evaluate_scorer(&mut scorer, &files.scorer, &telco)?;
    let mut reproduction = reproduce_classifier(&classifier_report, &metrics_json(&files.classifier)?)?;
    reproduction.extend(reproduce_scorer(&scorer_report, &metrics_json(&files.scorer)?)?);
    Ok(ModelsReport {
        classifier: classifier_report,
        scorer: scorer_report,
        reproduction,
        cascade: None,
    })
}

/// The top label and its probability of every text, sent with a record or not.
fn classify_all(
    classifier: &mut RequestClassifier,
    texts: &[&str],
    has_record: bool,
) -> Result<Vec<(String, f64)>, EvalError> {
    let mut out = Vec::with_capacity(texts.len());
    for chunk in texts.chunks(BATCH) {
        let requests: Vec<(&str, bool)> = chunk.iter().map(|t| (*t, has_record)).collect();
        for classification in classifier.classify_batch(&requests)? {
            // The first of equally probable labels, as numpy's argmax (`top` keeps the labels' order on ties).
            let best = classification.top(1).into_iter().next();
            out.push(best.map_or((String::new(), 0.0), |(label, p)| (label.label.clone(), f64::from(p))));
        }
    }
    Ok(out)
}

fn evaluate_classifier(
    classifier: &mut RequestClassifier,
    path: &Path,
    texts: &[LabelledText],
    phrasings: &[RecordPhrasing],
) -> Result<ClassifierReport, EvalError> {
    let info = classifier.info().clone();
    let oos = info.out_of_scope_label.as_str();
    let threshold = f64::from(info.out_of_scope_threshold);
    let plain: Vec<&str> = texts.iter().map(|t| t.text.as_str()).collect();
    let top = classify_all(classifier, &plain, false)?;
    let decide = |(label, p): &(String, f64), t: f64| if *p < t { oos.to_owned() } else { label.clone() };
    let in_scope: Vec<usize> = (0..texts.len()).filter(|&i| texts[i].label != oos).collect();
    let out_of_scope: Vec<usize> = (0..texts.len()).filter(|&i| texts[i].label == oos).collect();
    let share = |rows: &[usize], hit: &dyn Fn(usize) -> bool| {
        rows.iter().filter(|&&i| hit(i)).count() as f64 / rows.len().max(1) as f64
    };
    let protocol = [("oos-train", 0.0), ("oos-train+threshold", threshold)]
        .into_iter()
        .map(|(name, t)| ProtocolRow {
            name: name.to_owned(),
            threshold: t,
            in_scope_accuracy: share(&in_scope, &|i| decide(&top[i], t) == texts[i].label),
            oos_recall: share(&out_of_scope, &|i| decide(&top[i], t) == oos),
        })
        .collect();
    let truth: Vec<&str> = texts.iter().map(|t| t.label.as_str()).collect();
    let threshold_folds = threshold_folds(&truth, &top, oos);
    let outcomes: Vec<bool> = in_scope.iter().map(|&i| top[i].0 == texts[i].label).collect();
    let confidences: Vec<f64> = in_scope.iter().map(|&i| top[i].1).collect();
    let shipped: Vec<String> = top.iter().map(|t| decide(t, threshold)).collect();
    let pairs: Vec<(&str, &str)> = texts
        .iter()
        .zip(&shipped)
        .map(|(t, p)| (t.label.as_str(), p.as_str()))
        .collect();
    let per_label = metrics::per_label(&pairs);
    let macro_f1 = per_label.values().map(|s| s.f1).sum::<f64>() / per_label.len().max(1) as f64;
    let groups: BTreeMap<&str, &str> = info
        .labels
        .iter()
        .map(|l| (l.label.as_str(), l.group.as_str()))
        .collect();
    let group = |label: &str| groups.get(label).copied().unwrap_or("unknown");
    let confusion_by_group = metrics::confusion(pairs.iter().map(|(t, p)| (group(t), group(p))))
        .into_iter()
        .map(|((t, p), n)| (t, p, n))
        .collect();
    let record_group = info
        .labels
        .iter()
        .find(|l| l.label == "churn_score")
        .map_or("customer_record", |l| l.group.as_str());
    let plain_to_record = shipped.iter().filter(|p| group(p) == record_group).count() as f64 / texts.len() as f64;

    let phrased: Vec<&str> = phrasings.iter().map(|p| p.text.as_str()).collect();
    let with_record: Vec<String> = classify_all(classifier, &phrased, true)?
        .iter()
        .map(|t| decide(t, threshold))
        .collect();
    let held_out = |p: &RecordPhrasing| p.kind.starts_with("held_out");
    let mut record_routing = Vec::new();
    let mut labels: Vec<&str> = phrasings.iter().map(|p| p.label.as_str()).collect();
    labels.sort_unstable();
    labels.dedup();
    let mut kinds: Vec<&str> = phrasings.iter().map(|p| p.kind.as_str()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    for kind in std::iter::once("held_out").chain(kinds) {
        for &label in &labels {
            let members: Vec<usize> = (0..phrasings.len())
                .filter(|&i| phrasings[i].label == label)
                .filter(|&i| {
                    if kind == "held_out" {
                        held_out(&phrasings[i])
                    } else {
                        phrasings[i].kind == kind
                    }
                })
                .collect();
            record_routing.push(RoutingRow {
                kind: kind.to_owned(),
                label: label.to_owned(),
                requests: members.len(),
                accuracy: share(&members, &|i| with_record[i] == phrasings[i].label),
            });
        }
    }
    // Every human-written set together: the sample a 99 % claim is judged on (300 per label).
    for &label in &labels {
        let members: Vec<usize> = (0..phrasings.len())
            .filter(|&i| phrasings[i].label == label && phrasings[i].kind.starts_with("independent"))
            .collect();
        record_routing.push(RoutingRow {
            kind: "all_independent".to_owned(),
            label: label.to_owned(),
            requests: members.len(),
            accuracy: share(&members, &|i| with_record[i] == phrasings[i].label),
        });
    }
    let held_out_rows: Vec<usize> = (0..phrasings.len()).filter(|&i| held_out(&phrasings[i])).collect();
    let record_routing_held_out = share(&held_out_rows, &|i| with_record[i] == phrasings[i].label);
    let held_out_texts: Vec<&str> = held_out_rows.iter().map(|&i| phrasings[i].text.as_str()).collect();
    let without_record = classify_all(classifier, &held_out_texts, false)?;
    let held_out_without_record_to_record = without_record
        .iter()
        .filter(|t| group(&decide(t, threshold)) == record_group)
        .count() as f64
        / held_out_texts.len().max(1) as f64;
    Ok(ClassifierReport {
        model: info.identity.to_string(),
        sha256: file_sha256(path)?,
        threshold,
        protocol,
        ece_top_label: metrics::expected_calibration_error(&outcomes, &confidences, BINS).unwrap_or(0.0),
        reliability: metrics::reliability(&outcomes, &confidences, BINS),
        per_label,
        macro_f1,
        confusion_by_group,
        plain_to_record,
        threshold_folds,
        record_routing,
        record_routing_held_out,
        held_out_without_record_to_record,
    })
}

fn evaluate_scorer(scorer: &mut ChurnScorer, path: &Path, rows: &[LabelledRecord]) -> Result<ScorerReport, EvalError> {
    let info = scorer.info().clone();
    let mut valid = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        valid.push(info.schema.validate(&row.record).map_err(|errors| EvalError::Dataset {
            name: "telco-test".to_owned(),
            reason: format!("row {}: {}", i + 1, classical::schema::FieldError::join(&errors)),
        })?);
    }
    let mut scores = Vec::with_capacity(rows.len());
    for chunk in valid.chunks(BATCH) {
        scores.extend(scorer.score_batch(chunk)?.into_iter().map(|s| f64::from(s.probability)));
    }
    let labels: Vec<bool> = rows.iter().map(|r| r.churned).collect();
    let threshold = f64::from(info.decision_threshold);
    let at = |t: f64| {
        let counts = BinaryCounts::of(&labels, scores.iter().map(|&s| s >= t));
        ThresholdRow {
            threshold: t,
            precision: counts.precision(),
            recall: counts.recall(),
            f1: counts.f1(),
            flagged: (counts.tp + counts.fp) as f64 / labels.len().max(1) as f64,
            counts,
        }
    };
    let unavailable = |what: &str| EvalError::Dataset {
        name: "telco-test".to_owned(),
        reason: format!("{what} is undefined (one class only)"),
    };
    Ok(ScorerReport {
        model: info.identity.to_string(),
        sha256: file_sha256(path)?,
        threshold,
        rows: rows.len(),
        positive_rate: labels.iter().filter(|&&l| l).count() as f64 / labels.len().max(1) as f64,
        roc_auc: metrics::roc_auc(&labels, &scores).ok_or_else(|| unavailable("ROC-AUC"))?,
        pr_auc: metrics::average_precision(&labels, &scores).ok_or_else(|| unavailable("PR-AUC"))?,
        brier: metrics::brier(&labels, &scores).ok_or_else(|| unavailable("Brier"))?,
        ece: metrics::expected_calibration_error(&labels, &scores, BINS).ok_or_else(|| unavailable("ECE"))?,
        reliability: metrics::reliability(&labels, &scores, BINS),
        at_threshold: at(threshold),
        thresholds: (1..10).map(|i| at(f64::from(i) / 10.0)).collect(),
        slices: slices(rows, &scores, threshold),
        scored: scores.iter().copied().zip(labels.iter().copied()).collect(),
    })
}

/// The slices reported: contract type, tenure band, internet service.
const SLICES: [&str; 3] = ["contract", "tenure", "internetservice"];

/// The slice of `row` along `by`: the field's text, or for tenure its band (0-12, 13-24, 25-48, 49+ months).
fn slice_of(by: &str, row: &LabelledRecord) -> String {
    use classical::schema::FeatureValue;
    match (by, row.record.get(by)) {
        ("tenure", Some(FeatureValue::Number(n))) => match *n {
            n if n <= 12.0 => "0-12",
            n if n <= 24.0 => "13-24",
            n if n <= 48.0 => "25-48",
            _ => "49+",
        }
        .to_owned(),
        (_, Some(FeatureValue::Text(t))) => t.clone(),
        _ => "(blank)".to_owned(),
    }
}

/// The scorer by contract type, tenure band and internet service.
fn slices(rows: &[LabelledRecord], scores: &[f64], threshold: f64) -> Vec<SliceRow> {
    let mut out = Vec::new();
    for by in SLICES {
        let mut members: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, row) in rows.iter().enumerate() {
            members.entry(slice_of(by, row)).or_default().push(i);
        }
        for (value, indices) in members {
            let labels: Vec<bool> = indices.iter().map(|&i| rows[i].churned).collect();
            let slice_scores: Vec<f64> = indices.iter().map(|&i| scores[i]).collect();
            let counts = BinaryCounts::of(&labels, slice_scores.iter().map(|&s| s >= threshold));
            let positives = labels.iter().filter(|&&l| l).count();
            out.push(SliceRow {
                by: by.to_owned(),
                value,
                rows: indices.len(),
                positive_rate: positives as f64 / indices.len() as f64,
                mean_predicted: slice_scores.iter().sum::<f64>() / indices.len() as f64,
                roc_auc: metrics::roc_auc(&labels, &slice_scores),
                recall: (positives > 0).then(|| counts.recall()),
            });
        }
    }
    out
}

/// The `metrics.json` beside a model file.
fn metrics_json(model: &Path) -> Result<serde_json::Value, EvalError> {
    let path = model.with_file_name("metrics.json");
    let text = std::fs::read_to_string(&path).map_err(|e| EvalError::io(&path, &e))?;
    serde_json::from_str(&text).map_err(|e| EvalError::Recorded {
        path,
        reason: e.to_string(),
    })
}

/// The number at `key` (a `/`-separated path) in `json`, divided by `scale` (100 for percentages).
fn recorded(json: &serde_json::Value, key: &str, scale: f64) -> Result<f64, EvalError> {
    json.pointer(&format!("/{key}"))
        .and_then(serde_json::Value::as_f64)
        .map(|v| v / scale)
        .ok_or_else(|| EvalError::Recorded {
            path: PathBuf::from("metrics.json"),
            reason: format!("no number at {key}"),
        })
}

fn reproduce_classifier(report: &ClassifierReport, json: &serde_json::Value) -> Result<Vec<Reproduced>, EvalError> {
    let mut out = Vec::new();
    for row in &report.protocol {
        for (field, ours) in [
            ("in_scope_accuracy", row.in_scope_accuracy),
            ("oos_recall", row.oos_recall),
        ] {
            let key = format!("clinc150_val/{}/{field}", row.name);
            out.push(Reproduced {
                recorded: recorded(json, &key, 100.0)?,
                key: format!("classifier {key}"),
                ours,
            });
        }
    }
    out.push(Reproduced {
        key: "classifier calibration_val_top_label/ece_10_bins".to_owned(),
        ours: report.ece_top_label,
        recorded: recorded(json, "calibration_val_top_label/ece_10_bins", 1.0)?,
    });
    let recorded_routing = [
        ("held_out", "record_requests/routing_accuracy_pct"),
        (
            "independent",
            "record_requests/independent_phrasings_routing_accuracy_pct",
        ),
        (
            "independent_v2",
            "record_requests/independent_v2_phrasings_routing_accuracy_pct",
        ),
    ];
    for (kind, key) in recorded_routing {
        for row in report.record_routing.iter().filter(|r| r.kind == kind) {
            let key = format!("{key}/{}", row.label);
            out.push(Reproduced {
                recorded: recorded(json, &key, 100.0)?,
                key: format!("classifier {key}"),
                ours: row.accuracy,
            });
        }
    }
    out.push(Reproduced {
        key: "classifier record_requests/routing_accuracy_pct_overall".to_owned(),
        ours: report.record_routing_held_out,
        recorded: recorded(json, "record_requests/routing_accuracy_pct_overall", 100.0)?,
    });
    out.push(Reproduced {
        key: "classifier record_requests/plain_questions_sent_to_record_labels_pct".to_owned(),
        ours: report.plain_to_record,
        recorded: recorded(json, "record_requests/plain_questions_sent_to_record_labels_pct", 100.0)?,
    });
    out.push(Reproduced {
        key: "classifier record_requests/held_out_phrasings_without_record_sent_to_record_labels_pct".to_owned(),
        ours: report.held_out_without_record_to_record,
        recorded: recorded(
            json,
            "record_requests/held_out_phrasings_without_record_sent_to_record_labels_pct",
            100.0,
        )?,
    });
    out.push(Reproduced {
        key: "classifier threshold/value".to_owned(),
        ours: report.threshold,
        recorded: recorded(json, "threshold/value", 1.0)?,
    });
    Ok(out)
}

fn reproduce_scorer(report: &ScorerReport, json: &serde_json::Value) -> Result<Vec<Reproduced>, EvalError> {
    let at = &report.at_threshold;
    let pairs = [
        ("test/roc_auc", report.roc_auc),
        ("test/pr_auc", report.pr_auc),
        ("test/brier", report.brier),
        ("test/ece_10_bins", report.ece),
        ("test/at_threshold/precision", at.precision),
        ("test/at_threshold/recall", at.recall),
        ("test/at_threshold/f1", at.f1),
        ("test/at_threshold/confusion_matrix/tp", at.counts.tp as f64),
        ("test/at_threshold/confusion_matrix/fp", at.counts.fp as f64),
        ("test/at_threshold/confusion_matrix/tn", at.counts.tn as f64),
        ("test/at_threshold/confusion_matrix/fn", at.counts.fn_ as f64),
        ("threshold/value", report.threshold),
    ];
    pairs
        .into_iter()
        .map(|(key, ours)| {
            Ok(Reproduced {
                recorded: recorded(json, key, 1.0)?,
                key: format!("scorer {key}"),
                ours,
            })
        })
        .collect()
}
