//! `cascade.md`, and the cascade section of `models.md`: the tiers beside the paper, the folds, the served-path
//! check and the config block to ship.

use std::fmt::Write as _;

use super::{CascadeReport, Search};

/// The CLINC150 paper's Table 2 (full data) rows the tiers stand beside: (model, in-scope %, OOS recall %).
const PAPER: [(&str, f64, f64); 4] = [
    ("BERT (oos-train)", 96.9, 40.3),
    ("BERT (oos-threshold)", 96.2, 52.3),
    ("MLP (oos-train)", 93.5, 47.4),
    ("SVM (oos-train)", 91.0, 14.5),
];

/// The whole `cascade` report: the tiers, how the bars were chosen, and the config block to ship.
pub fn markdown(report: &CascadeReport, command: &str) -> String {
    let mut md = String::from("# Classifier cascade\n\n");
    let _ = writeln!(md, "Command: `{command}`.\n");
    md.push_str(&tiers(report));
    if let Some(search) = &report.search {
        md.push_str(&folds(search));
    }
    let c = &report.bars;
    let _ = writeln!(
        md,
        "## To ship (`[models.cascade]` in the gateway config)\n\n```toml\n# chosen by: {command}\n\
         min_confidence = {}\nmin_margin = {}\nlinear_weight = {}\nout_of_scope_threshold = {}\n```",
        c.min_confidence, c.min_margin, c.linear_weight, c.out_of_scope_threshold
    );
    md
}

/// Each tier and the cascade beside the paper, record routing per set, and the served-path check.
pub fn tiers(report: &CascadeReport) -> String {
    let mut md = String::new();
    let b = &report.bars;
    let _ = writeln!(
        md,
        "{} labelled requests the models never trained on: CLINC150 validation (in-scope and out-of-scope, no \
         record) and every record phrasing (held-out templates and openers, three independent sets; with a \
         record). Cascade: the linear answer stands at confidence ≥ {} and margin ≥ {}; escalated answers blend \
         {} × linear + {} × encoder, out of scope below {}.\n",
        report.requests,
        b.min_confidence,
        b.min_margin,
        b.linear_weight,
        1.0 - b.linear_weight,
        b.out_of_scope_threshold
    );
    md.push_str(
        "| classifier | OOS threshold | CLINC150 in-scope accuracy % | OOS recall % | record requests right % | \
         escalated % | plain → record label % |\n|---|---|---|---|---|---|---|\n",
    );
    for t in &report.tiers {
        let _ = writeln!(
            md,
            "| {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} | {:.3} |",
            t.name,
            t.threshold,
            t.all.in_scope_accuracy,
            t.all.oos_recall,
            t.all.record_accuracy,
            t.all.escalated,
            t.plain_to_record
        );
    }
    for (name, in_scope, oos) in PAPER {
        let _ = writeln!(md, "| paper: {name} | | {in_scope} | {oos} | | | |");
    }
    md.push_str("\nRecord routing by phrasing set, % decided as the right record label:\n\n| set |");
    for t in &report.tiers {
        let _ = write!(md, " {} |", t.name);
    }
    let _ = writeln!(md, "\n|---|{}", "---|".repeat(report.tiers.len()));
    if let Some(first) = report.tiers.first() {
        for set in first.record_sets.keys() {
            let _ = write!(md, "| {set} |");
            for t in &report.tiers {
                let _ = write!(md, " {:.2} |", t.record_sets.get(set).copied().unwrap_or_default());
            }
            md.push('\n');
        }
    }
    let l = &report.latency;
    let _ = writeln!(
        md,
        "\nServed path: `CascadeClassifier` with these bars disagreed with the replay on {} of {} requests. \
         Per request, alone on one thread (µs, p50 / p99): linear tier {:.0} / {:.0}, escalated {:.0} / {:.0}, \
         all {:.0} / {:.0}.\n",
        report.served_disagreements,
        report.requests,
        l.linear.0,
        l.linear.1,
        l.escalated.0,
        l.escalated.1,
        l.all.0,
        l.all.1
    );
    if let Some(kernels) = &report.kernels {
        md.push_str(&super::kernels::markdown(kernels));
        md.push('\n');
    }
    md
}

fn folds(search: &Search) -> String {
    let mut md = format!(
        "## Bars chosen on four folds, measured on the fifth (at most {:.0} % escalated)\n\n",
        search.target_escalation
    );
    md.push_str(
        "| fold | min_confidence | min_margin | linear_weight | OOS threshold | in-scope % | OOS recall % | \
         records % | escalated % |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for (i, f) in search.folds.iter().enumerate() {
        let (b, o) = (&f.bars, &f.outcome);
        let _ = writeln!(
            md,
            "| {} | {:.2} | {:.2} | {:.1} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} |",
            i + 1,
            b.min_confidence,
            b.min_margin,
            b.linear_weight,
            b.out_of_scope_threshold,
            o.in_scope_accuracy,
            o.oos_recall,
            o.record_accuracy,
            o.escalated
        );
    }
    let (m, s) = (&search.fold_mean, &search.fold_sd);
    let _ = writeln!(
        md,
        "| mean ± sd | | | | | {:.2} ± {:.2} | {:.2} ± {:.2} | {:.2} ± {:.2} | {:.1} ± {:.1} |\n",
        m.in_scope_accuracy,
        s.in_scope_accuracy,
        m.oos_recall,
        s.oos_recall,
        m.record_accuracy,
        s.record_accuracy,
        m.escalated,
        s.escalated
    );
    md
}
