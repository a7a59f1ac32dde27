//! What a `models` run measured, as the flat `section.measure` map gates check, and as Markdown.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::models::ModelsReport;

/// The gated measurements: `classifier.*`, `scorer.*` and `reproduction.difference` (the largest).
pub fn measurements(report: &ModelsReport) -> BTreeMap<String, f64> {
    let classifier = &report.classifier;
    let shipped = classifier.protocol.iter().find(|r| r.threshold == classifier.threshold);
    let scorer = &report.scorer;
    let mut out = BTreeMap::from([
        ("classifier.ece".to_owned(), classifier.ece_top_label),
        ("classifier.plain_to_record".to_owned(), classifier.plain_to_record),
        ("classifier.macro_f1".to_owned(), classifier.macro_f1),
        (
            "classifier.record_routing".to_owned(),
            classifier.record_routing_held_out,
        ),
        (
            "classifier.record_routing_independent".to_owned(),
            classifier
                .record_routing
                .iter()
                .filter(|r| r.kind.starts_with("independent"))
                .map(|r| r.accuracy * r.requests as f64)
                .sum::<f64>()
                / classifier
                    .record_routing
                    .iter()
                    .filter(|r| r.kind.starts_with("independent"))
                    .map(|r| r.requests as f64)
                    .sum::<f64>()
                    .max(1.0),
        ),
        ("scorer.roc_auc".to_owned(), scorer.roc_auc),
        ("scorer.pr_auc".to_owned(), scorer.pr_auc),
        ("scorer.brier".to_owned(), scorer.brier),
        ("scorer.ece".to_owned(), scorer.ece),
        (
            "reproduction.difference".to_owned(),
            report.reproduction.iter().map(|r| r.difference()).fold(0.0, f64::max),
        ),
    ]);
    if let Some(row) = shipped {
        out.insert("classifier.in_scope_accuracy".to_owned(), row.in_scope_accuracy);
        out.insert("classifier.oos_recall".to_owned(), row.oos_recall);
    }
    if let Some(cascade) = &report.cascade {
        out.extend(crate::cascade::measurements(cascade));
    }
    out
}

/// The CLINC150 paper's table 2 ("full" data) rows, for comparison: (protocol, model, in-scope accuracy %,
/// OOS recall %).
pub const PAPER_TABLE2: [(&str, &str, f64, f64); 6] = [
    ("oos-train", "SVM", 91.0, 14.5),
    ("oos-train", "MLP", 93.5, 47.4),
    ("oos-train", "BERT", 96.9, 40.3),
    ("oos-threshold", "SVM", 88.2, 18.0),
    ("oos-threshold", "MLP", 93.4, 49.1),
    ("oos-threshold", "BERT", 96.2, 52.3),
];

/// The report as Markdown: provenance, the paper's protocol, calibration, the scorer's curves as numbers,
/// slices, thresholds, and the reproduction of `metrics.json`.
pub fn markdown(report: &ModelsReport, provenance: &[(String, String)]) -> String {
    let mut md = String::from("# Model evals\n\n");
    for (key, value) in provenance {
        let _ = writeln!(md, "- {key}: {value}");
    }
    let c = &report.classifier;
    let _ = writeln!(
        md,
        "\n## Request classifier ({}, threshold {:.2}) on CLINC150 validation\n",
        c.model, c.threshold
    );
    md.push_str("| protocol | model | in-scope accuracy % | OOS recall % |\n|---|---|---|---|\n");
    for row in &c.protocol {
        let _ = writeln!(
            md,
            "| {} | **Switchyard {}** | **{:.2}** | **{:.2}** |",
            row.name,
            c.model,
            100.0 * row.in_scope_accuracy,
            100.0 * row.oos_recall
        );
    }
    for (protocol, model, accuracy, recall) in PAPER_TABLE2 {
        let _ = writeln!(md, "| {protocol} | paper: {model} | {accuracy:.1} | {recall:.1} |");
    }
    let _ = writeln!(
        md,
        "\nTop-label ECE (10 bins, in-scope): {:.4}. Macro F1 over {} labels at the shipped threshold: {:.4}. \
         Plain questions sent to a record label: {:.3} %.\n",
        c.ece_top_label,
        c.per_label.len(),
        c.macro_f1,
        100.0 * c.plain_to_record
    );
    let _ = writeln!(md, "{}\n", c.threshold_folds.sentence());
    md.push_str("Record requests (sent with a record) routed to the right record label, by kind of phrasing:\n\n");
    md.push_str("| kind | label | requests | accuracy % |\n|---|---|---|---|\n");
    for row in &c.record_routing {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.2} |",
            row.kind,
            row.label,
            row.requests,
            100.0 * row.accuracy
        );
    }
    let _ = writeln!(
        md,
        "\nAll held-out phrasings: {:.2} %. Sent without a record, {:.2} % of them still land on a record label.\n",
        100.0 * c.record_routing_held_out,
        100.0 * c.held_out_without_record_to_record
    );
    md.push_str("Confusion by label group (rows: truth, columns: decided), off-diagonal cells only:\n\n");
    md.push_str("| true group | decided group | requests |\n|---|---|---|\n");
    for (truth, decided, n) in c.confusion_by_group.iter().filter(|(t, d, _)| t != d) {
        let _ = writeln!(md, "| {truth} | {decided} | {n} |");
    }
    let mut worst: Vec<(&String, f64)> = c.per_label.iter().map(|(l, s)| (l, s.f1)).collect();
    worst.sort_by(|a, b| a.1.total_cmp(&b.1));
    md.push_str("\nLowest F1 labels:\n\n| label | precision | recall | F1 | support |\n|---|---|---|---|---|\n");
    for (label, _) in worst.into_iter().take(10) {
        let s = &c.per_label[label];
        let _ = writeln!(
            md,
            "| {label} | {:.3} | {:.3} | {:.3} | {} |",
            s.precision, s.recall, s.f1, s.support
        );
    }

    if let Some(cascade) = &report.cascade {
        md.push_str("\n## Classifier cascade (linear tier, encoder tier, both as the gateway config sets them up)\n\n");
        md.push_str(&crate::cascade::tiers_markdown(cascade));
    }

    let s = &report.scorer;
    let _ = writeln!(
        md,
        "\n## Churn scorer ({}, threshold {:.2}) on the Telco test split ({} customers, {:.1} % churned)\n",
        s.model,
        s.threshold,
        s.rows,
        100.0 * s.positive_rate
    );
    let _ = writeln!(
        md,
        "ROC-AUC {:.4} · PR-AUC (average precision) {:.4} · Brier {:.4} · ECE (10 bins) {:.4}\n",
        s.roc_auc, s.pr_auc, s.brier, s.ece
    );
    md.push_str("| threshold | precision | recall | F1 | flagged % |\n|---|---|---|---|---|\n");
    // The grid, with the shipped threshold marked (and added when it is off the grid).
    let on_grid = s.thresholds.iter().any(|r| (r.threshold - s.threshold).abs() < 1e-6);
    let extra = (!on_grid).then_some(&s.at_threshold);
    for row in s.thresholds.iter().chain(extra) {
        let shipped = if (row.threshold - s.threshold).abs() < 1e-6 {
            " (shipped)"
        } else {
            ""
        };
        let _ = writeln!(
            md,
            "| {:.2}{shipped} | {:.3} | {:.3} | {:.3} | {:.1} |",
            row.threshold,
            row.precision,
            row.recall,
            row.f1,
            100.0 * row.flagged
        );
    }
    md.push_str("\n| slice | customers | churn % | mean predicted | ROC-AUC | recall at threshold |\n");
    md.push_str("|---|---|---|---|---|---|\n");
    for row in &s.slices {
        let _ = writeln!(
            md,
            "| {} = {} | {} | {:.1} | {:.3} | {} | {} |",
            row.by,
            row.value,
            row.rows,
            100.0 * row.positive_rate,
            row.mean_predicted,
            row.roc_auc.map_or("-".to_owned(), |a| format!("{a:.3}")),
            row.recall.map_or("-".to_owned(), |r| format!("{r:.3}")),
        );
    }
    md.push_str("\nReliability (scorer):\n\n| bin | customers | mean predicted | observed |\n|---|---|---|---|\n");
    for bin in &s.reliability {
        let _ = writeln!(
            md,
            "| [{:.1}, {:.1}) | {} | {} | {} |",
            bin.lower,
            bin.upper,
            bin.count,
            bin.mean_predicted.map_or("-".to_owned(), |v| format!("{v:.4}")),
            bin.observed_rate.map_or("-".to_owned(), |v| format!("{v:.4}")),
        );
    }
    md.push_str("\n## Reproduction of metrics.json (through the Rust runtime)\n\n");
    md.push_str("| number | ours | metrics.json | difference |\n|---|---|---|---|\n");
    for r in &report.reproduction {
        let _ = writeln!(
            md,
            "| {} | {:.6} | {:.6} | {:.1e} |",
            r.key,
            r.ours,
            r.recorded,
            r.difference()
        );
    }
    md
}
