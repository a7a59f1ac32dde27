//! The counters of hybrid explanations held to their score (docs/hybrid.md).

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Meter};

/// `switchyard.explanations` and `switchyard.explanation.checks`.
pub(super) struct ExplanationCounters {
    /// By `switchyard.target`, `switchyard.explanation.source`: hybrid answers by where their explanation came from.
    answers: Counter<u64>,
    /// By `switchyard.target`, `switchyard.explanation.attempt`, `switchyard.explanation.verdict`: every check of
    /// an LLM explanation.
    checks: Counter<u64>,
}

impl ExplanationCounters {
    pub(super) fn new(meter: &Meter) -> Self {
        Self {
            answers: meter
                .u64_counter("switchyard.explanations")
                .with_description("Hybrid explanations by target and source (llm, llm_retried, template)")
                .build(),
            checks: meter
                .u64_counter("switchyard.explanation.checks")
                .with_description("Checks of LLM explanations against their score, by target, attempt and verdict")
                .build(),
        }
    }

    pub(super) fn check(&self, target: &str, attempt: &'static str, verdict: &'static str) {
        self.checks.add(
            1,
            &[
                KeyValue::new("switchyard.target", target.to_owned()),
                KeyValue::new("switchyard.explanation.attempt", attempt),
                KeyValue::new("switchyard.explanation.verdict", verdict),
            ],
        );
    }

    pub(super) fn answer(&self, target: &str, source: &'static str) {
        self.answers.add(
            1,
            &[
                KeyValue::new("switchyard.target", target.to_owned()),
                KeyValue::new("switchyard.explanation.source", source),
            ],
        );
    }
}
