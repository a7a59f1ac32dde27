//! The cascade per int8 kernel on the machine that runs the evals: the products the gateway serves (exact on
//! every CPU) against the CPU's own default kernel, request by request. On a CPU whose default u8 × s8 kernel
//! saturates (x86 with AVX2 or AVX-512, no VNNI) both run; elsewhere the CPU's kernel is the exact one and only it
//! runs. Each run carries a digest of every decision, so reports from two machines show at a glance whether they
//! decided every request alike.

use classical::{InstructionSets, Int8Products, Tier};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{Kind, Outcome, Prepared, Setting, decide, outcome, percentiles};
use classical::CascadeBars;

/// Requests listed in the markdown when kernels disagree (all are in the JSON).
const LISTED: usize = 20;

/// One kernel's cascade on every labelled request.
#[derive(Debug, Serialize)]
pub struct KernelRun {
    /// The kernel, e.g. `u8×u8 AVX2 (exact; session.x64quantprecision)`.
    pub kernel: String,
    /// Whether the gateway serves it.
    pub served: bool,
    /// The cascade at the measured bars.
    pub cascade: Outcome,
    /// The encoder alone, one request per run: p50, p99 in µs.
    pub encoder_us: (f64, f64),
    /// SHA-256 over every request's decided label and tier, in request order.
    pub decisions_sha256: String,
}

/// A request the two kernels decided differently.
#[derive(Debug, Serialize)]
pub struct DifferingDecision {
    /// The request text.
    pub text: String,
    /// `in_scope`, `out_of_scope` or `record`.
    pub kind: &'static str,
    /// The right label.
    pub truth: String,
    /// The served kernel's decision, `label (tier)`.
    pub served: String,
    /// The CPU's own kernel's decision.
    pub native: String,
}

/// The cascade on this machine per int8 kernel.
#[derive(Debug, Serialize)]
pub struct KernelComparison {
    /// CPU model, instruction sets and the served kernel.
    pub machine: String,
    /// The instruction sets ONNX Runtime dispatches on.
    pub instruction_sets: InstructionSets,
    /// The served kernel first, then the CPU's own where it differs.
    pub runs: Vec<KernelRun>,
    /// Requests whose encoder top label differs between the kernels (whether or not they escalate).
    pub encoder_labels_differing: usize,
    /// Cascade decisions that differ between the kernels.
    pub differing: Vec<DifferingDecision>,
    /// Of those, how many each kernel decided right: served, the CPU's own.
    pub differing_right: (usize, usize),
}

/// Compares the served run with the CPU's own kernel's run of the same requests (`None` when it is the same kernel).
pub fn compare(served: &Prepared, native: Option<&Prepared>, bars: CascadeBars) -> KernelComparison {
    let sets = InstructionSets::detect();
    let mut runs = vec![run(served, &Int8Products::Exact.kernel(&sets), true, bars)];
    let (mut differing, mut encoder_labels_differing, mut differing_right) = (Vec::new(), 0, (0, 0));
    if let Some(native) = native {
        runs.push(run(native, &Int8Products::Native.kernel(&sets), false, bars));
        let context = &served.context;
        for (((text, _), a), b) in served.requests.iter().zip(&served.rows).zip(&native.rows) {
            encoder_labels_differing += usize::from(a.encoder.0 != b.encoder.0);
            let (decided_a, decided_b) = (
                decide(a, context, Setting::Cascade(bars)),
                decide(b, context, Setting::Cascade(bars)),
            );
            if decided_a != decided_b {
                differing_right.0 += usize::from(decided_a.0 == a.truth);
                differing_right.1 += usize::from(decided_b.0 == b.truth);
                let name = |(label, tier): (usize, Tier)| format!("{} ({})", context.labels[label], tier.as_str());
                differing.push(DifferingDecision {
                    text: text.clone(),
                    kind: kind_name(a.kind),
                    truth: context.labels[a.truth].clone(),
                    served: name(decided_a),
                    native: name(decided_b),
                });
            }
        }
    }
    KernelComparison {
        machine: classical::kernels::machine_summary(),
        instruction_sets: sets,
        runs,
        encoder_labels_differing,
        differing,
        differing_right,
    }
}

fn run(prepared: &Prepared, kernel: &str, served: bool, bars: CascadeBars) -> KernelRun {
    let rows: Vec<&super::Row> = prepared.rows.iter().collect();
    let mut digest = Sha256::new();
    for row in &rows {
        let (label, tier) = decide(row, &prepared.context, Setting::Cascade(bars));
        digest.update(prepared.context.labels[label].as_bytes());
        digest.update([0, tier.as_str().as_bytes()[0], b'\n']);
    }
    let mut encoder_us = prepared.encoder_us.clone();
    KernelRun {
        kernel: kernel.to_owned(),
        served,
        cascade: outcome(&rows, &prepared.context, Setting::Cascade(bars)),
        encoder_us: percentiles(&mut encoder_us),
        decisions_sha256: crate::datasets::hex(&digest.finalize()),
    }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::InScope => "in_scope",
        Kind::OutOfScope => "out_of_scope",
        Kind::Record => "record",
    }
}

/// The comparison as a markdown section.
pub fn markdown(comparison: &KernelComparison) -> String {
    use std::fmt::Write as _;
    let mut md = format!(
        "### Int8 kernels on this machine\n\nMachine: {}. The gateway's int8 products are exact on every CPU \
         (`classical/src/kernels.rs`); where this CPU's own u8 × s8 kernel saturates, it is measured beside them \
         on the same requests.\n\n",
        comparison.machine
    );
    md.push_str(
        "| int8 kernel | served | CLINC150 in-scope % | OOS recall % | record requests right % | escalated % | \
         encoder alone p50 / p99 µs | decisions sha256 |\n|---|---|---|---|---|---|---|---|\n",
    );
    for r in &comparison.runs {
        let o = &r.cascade;
        let _ = writeln!(
            md,
            "| {} | {} | {:.2} | {:.2} | {:.2} | {:.1} | {:.0} / {:.0} | `{}` |",
            r.kernel,
            if r.served { "yes" } else { "no" },
            o.in_scope_accuracy,
            o.oos_recall,
            o.record_accuracy,
            o.escalated,
            r.encoder_us.0,
            r.encoder_us.1,
            &r.decisions_sha256[..16]
        );
    }
    if comparison.runs.len() < 2 {
        md.push_str("\nThis CPU's own int8 kernel is exact: it is the served one.\n");
        return md;
    }
    let _ = writeln!(
        md,
        "\nThe encoder's top label differs between the kernels on {} requests; the cascade's decision on {}, of \
         which the served kernel decides {} right and this CPU's own kernel {}{}",
        comparison.encoder_labels_differing,
        comparison.differing.len(),
        comparison.differing_right.0,
        comparison.differing_right.1,
        if comparison.differing.is_empty() { ".\n" } else { ":\n" }
    );
    if !comparison.differing.is_empty() {
        md.push_str(
            "| request | kind | right label | served (exact) | this CPU's own kernel |\n|---|---|---|---|---|\n",
        );
        for d in comparison.differing.iter().take(LISTED) {
            let text: String = d.text.chars().take(70).collect();
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} |",
                text.replace('|', "\\|"),
                d.kind,
                d.truth,
                d.served,
                d.native
            );
        }
        if comparison.differing.len() > LISTED {
            let _ = writeln!(md, "\n… and {} more in the JSON.", comparison.differing.len() - LISTED);
        }
    }
    md
}
