//! The report as one self-contained HTML page: tables and inline SVG plots, nothing fetched when it is viewed.

use std::fmt::Write as _;

use crate::e2e::E2eReport;
use crate::metrics;
use crate::models::ModelsReport;
use crate::report::PAPER_TABLE2;
use crate::svg;
use crate::whatif::WhatIf;

fn esc(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// An HTML table.
fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = String::from("<table><tr>");
    for h in headers {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr>");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{}</td>", esc(cell));
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
    out
}

fn pct(v: f64) -> String {
    format!("{:.2}", 100.0 * v)
}

/// The page: provenance, the classifier (paper protocol, calibration, confusion by group, record routing), the
/// scorer (ROC, PR, calibration, thresholds, slices), the what-if (when one was run) and the reproduction check.
pub fn page(
    report: &ModelsReport,
    provenance: &[(String, String)],
    whatif: Option<&WhatIf>,
    e2e: Option<&E2eReport>,
) -> String {
    let mut body = String::new();
    body.push_str("<h1>Switchyard evals</h1><ul>");
    for (k, v) in provenance {
        let _ = write!(body, "<li><b>{}</b>: {}</li>", esc(k), esc(v));
    }
    body.push_str("</ul>");

    let c = &report.classifier;
    let _ = write!(
        body,
        "<h2>Request classifier {} on CLINC150 validation</h2>",
        esc(&c.model)
    );
    let mut rows: Vec<Vec<String>> = c
        .protocol
        .iter()
        .map(|r| {
            vec![
                r.name.clone(),
                format!("Switchyard {}", c.model),
                pct(r.in_scope_accuracy),
                pct(r.oos_recall),
            ]
        })
        .collect();
    rows.extend(PAPER_TABLE2.iter().map(|(p, m, a, r)| {
        vec![
            (*p).to_owned(),
            format!("paper: {m}"),
            format!("{a:.1}"),
            format!("{r:.1}"),
        ]
    }));
    body.push_str(&table(
        &["protocol", "model", "in-scope accuracy %", "OOS recall %"],
        &rows,
    ));
    let _ = write!(
        body,
        "<p>Top-label ECE {:.4} · macro F1 {:.4} · plain questions sent to a record label {:.3} %</p>",
        c.ece_top_label,
        c.macro_f1,
        100.0 * c.plain_to_record
    );
    let _ = write!(body, "<p>{}</p>", esc(&c.threshold_folds.sentence()));
    let reliability = |bins: &[metrics::ReliabilityBin]| -> Vec<(f64, f64, usize)> {
        bins.iter()
            .filter_map(|b| Some((b.mean_predicted?, b.observed_rate?, b.count)))
            .collect()
    };
    body.push_str("<div class=\"plots\">");
    body.push_str(&svg::reliability(
        "Classifier: top-label reliability (in-scope validation)",
        &reliability(&c.reliability),
    ));
    let mut groups: Vec<String> = c
        .confusion_by_group
        .iter()
        .flat_map(|(t, d, _)| [t.clone(), d.clone()])
        .collect();
    groups.sort();
    groups.dedup();
    let cells: Vec<Vec<usize>> = groups
        .iter()
        .map(|row| {
            groups
                .iter()
                .map(|column| {
                    c.confusion_by_group
                        .iter()
                        .find(|(t, d, _)| t == row && d == column)
                        .map_or(0, |(_, _, n)| *n)
                })
                .collect()
        })
        .collect();
    body.push_str(&svg::heatmap(
        "Classifier: confusion by label group",
        &groups,
        &groups,
        &cells,
    ));
    body.push_str("</div><h3>Record requests by kind of phrasing (sent with a record)</h3>");
    let rows: Vec<Vec<String>> = c
        .record_routing
        .iter()
        .map(|r| vec![r.kind.clone(), r.label.clone(), r.requests.to_string(), pct(r.accuracy)])
        .collect();
    body.push_str(&table(&["kind", "label", "requests", "routed right %"], &rows));

    let s = &report.scorer;
    let _ = write!(
        body,
        "<h2>Churn scorer {} on the Telco test split</h2><p>{} customers, {:.1} % churned · ROC-AUC {:.4} · PR-AUC {:.4} · Brier {:.4} · ECE {:.4} · threshold {:.2}</p>",
        esc(&s.model),
        s.rows,
        100.0 * s.positive_rate,
        s.roc_auc,
        s.pr_auc,
        s.brier,
        s.ece,
        s.threshold
    );
    let (scores, labels): (Vec<f64>, Vec<bool>) = s.scored.iter().copied().unzip();
    body.push_str("<div class=\"plots\">");
    body.push_str(&svg::curves(
        &format!("Scorer: ROC (AUC {:.3})", s.roc_auc),
        "false positive rate",
        "true positive rate",
        &[("churn scorer", metrics::roc_points(&labels, &scores))],
        true,
    ));
    body.push_str(&svg::curves(
        &format!("Scorer: precision-recall (AP {:.3})", s.pr_auc),
        "recall",
        "precision",
        &[("churn scorer", metrics::pr_points(&labels, &scores))],
        false,
    ));
    body.push_str(&svg::reliability(
        "Scorer: reliability (test split)",
        &reliability(&s.reliability),
    ));
    body.push_str("</div>");
    let rows: Vec<Vec<String>> = s
        .thresholds
        .iter()
        .map(|r| {
            vec![
                format!("{:.1}", r.threshold),
                format!("{:.3}", r.precision),
                format!("{:.3}", r.recall),
                format!("{:.3}", r.f1),
                format!("{:.1}", 100.0 * r.flagged),
            ]
        })
        .collect();
    body.push_str(&table(&["threshold", "precision", "recall", "F1", "flagged %"], &rows));
    let rows: Vec<Vec<String>> = s
        .slices
        .iter()
        .map(|r| {
            vec![
                format!("{} = {}", r.by, r.value),
                r.rows.to_string(),
                format!("{:.1}", 100.0 * r.positive_rate),
                format!("{:.3}", r.mean_predicted),
                r.roc_auc.map_or("-".into(), |a| format!("{a:.3}")),
                r.recall.map_or("-".into(), |a| format!("{a:.3}")),
            ]
        })
        .collect();
    body.push_str(&table(
        &[
            "slice",
            "customers",
            "churn %",
            "mean predicted",
            "ROC-AUC",
            "recall at threshold",
        ],
        &rows,
    ));

    if let Some(w) = whatif {
        let _ = write!(
            body,
            "<h2 id=\"whatif\">Policy what-if ({} labelled requests, offline)</h2>",
            w.requests
        );
        let rows: Vec<Vec<String>> = [("baseline", &w.baseline), ("candidate", &w.candidate)]
            .iter()
            .map(|(name, p)| {
                vec![
                    format!("{name}: {}", p.file),
                    pct(p.right_kind),
                    pct(p.llm_share),
                    p.input_tokens.to_string(),
                    p.output_tokens.to_string(),
                    format!("{:.4}", p.cost),
                ]
            })
            .collect();
        body.push_str(&table(
            &[
                "policy",
                "right kind %",
                "LLM calls %",
                "prompt tokens (est.)",
                "output tokens (ceiling)",
                "cost",
            ],
            &rows,
        ));
        body.push_str("<div class=\"plots\">");
        body.push_str(&svg::scatter(
            "What-if: cost against routing quality",
            "cost of the set",
            "routed to the right kind %",
            &[
                ("baseline", w.baseline.cost, 100.0 * w.baseline.right_kind),
                ("candidate", w.candidate.cost, 100.0 * w.candidate.right_kind),
            ],
        ));
        body.push_str("</div>");
        let rows: Vec<Vec<String>> = w
            .transitions
            .iter()
            .map(|(t, n)| vec![t.clone(), n.to_string()])
            .collect();
        let _ = write!(body, "<p>{} requests change route.</p>", w.changed.len());
        body.push_str(&table(&["from -> to", "requests"], &rows));
    } else {
        body.push_str("<h2>Policy what-if</h2><p>Not run (switchyard-evals whatif writes it).</p>");
    }

    if let Some(e) = e2e {
        let _ = write!(
            body,
            "<h2 id=\"e2e\">End to end ({} requests through {}, {} at a time)</h2><p>Right kind {} % · expected label {} % · answers {} (non-empty {}, finish ok {}, within ceiling {}) · hybrid explanations {} (LLM-written {}, names a top field {}, contradicts the score {})</p>",
            e.requests,
            esc(&e.addr),
            e.concurrency,
            pct(e.route_kind_accuracy),
            pct(e.label_accuracy),
            e.answers,
            e.non_empty,
            e.finish_ok,
            e.within_ceiling,
            e.explanations,
            e.llm_written,
            e.names_top_field,
            e.contradicts
        );
        let rows: Vec<Vec<String>> = e
            .latency
            .iter()
            .map(|t| {
                vec![
                    t.target.clone(),
                    t.requests.to_string(),
                    format!("{:.1}", t.p50_ms),
                    format!("{:.1}", t.p90_ms),
                    format!("{:.1}", t.p99_ms),
                ]
            })
            .collect();
        body.push_str(&table(&["target", "calls", "p50 ms", "p90 ms", "p99 ms"], &rows));
        let rows: Vec<Vec<String>> = e.statuses.iter().map(|(s, n)| vec![s.clone(), n.to_string()]).collect();
        body.push_str(&table(&["status", "calls"], &rows));
        let series: Vec<(&str, Vec<f64>)> = e
            .latency
            .iter()
            .map(|t| (t.target.as_str(), t.latencies_ms.clone()))
            .collect();
        body.push_str("<div class=\"plots\">");
        body.push_str(&svg::histogram(
            "End to end: latency by target",
            "milliseconds (log scale)",
            &series,
        ));
        body.push_str("</div>");
    } else {
        body.push_str("<h2>End to end</h2><p>Not run (switchyard-evals e2e --addr HOST:PORT writes it).</p>");
    }

    body.push_str("<h2>Reproduction of metrics.json through the Rust runtime</h2>");
    let rows: Vec<Vec<String>> = report
        .reproduction
        .iter()
        .map(|r| {
            vec![
                r.key.clone(),
                format!("{:.6}", r.ours),
                format!("{:.6}", r.recorded),
                format!("{:.1e}", r.difference()),
            ]
        })
        .collect();
    body.push_str(&table(&["number", "ours", "metrics.json", "difference"], &rows));
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Switchyard evals</title><style>\
         body{{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}}\
         table{{border-collapse:collapse;margin:1em 0;font-size:13px}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left}}\
         th{{background:#f3f3f3}}.plots{{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}}\
         </style></head><body>{body}</body></html>\n"
    )
}
