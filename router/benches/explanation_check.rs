//! The cost of holding a hybrid answer to its score: `Grounds::check` on the 60 real SmolLM2 answers of
//! `tests/data/explanation_labels.jsonl` (whole answers; alone, and with the echo check against a prompt of the
//! default's shape, as the gateway runs it), and the stream gate fed the same texts a word at a time,
//! each beside a baseline measured in the same run: one lower-casing pass over the same text (the least any
//! reading of it costs). Target: the check ≤ 50 µs per answer (docs/hybrid.md). Run: `cargo bench -p switchyard
//! --bench explanation_check`.

// Bench code: a failure is the bench failing, so expect/panic are the point here.
#![allow(clippy::expect_used, clippy::panic, missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use switchyard::explanation::{Grounds, PromptText, SentenceGate};

#[path = "../tests/labelled/mod.rs"]
mod labelled;

/// Each labelled answer with its grounds.
fn answers() -> Vec<(Grounds, String)> {
    labelled::answers().into_iter().map(|l| (l.grounds, l.text)).collect()
}

/// A prompt of the default's shape and length for `grounds` (what the echo check reads).
fn prompt(grounds: &Grounds) -> PromptText {
    let factors: Vec<String> = grounds
        .top_fields
        .iter()
        .map(|f| format!("{} ({}) {} it", f.name, f.value, f.direction()))
        .collect();
    let band = grounds.band.as_str();
    PromptText::new(&format!(
        "Question about a customer: Why will this customer leave?\nFacts from the churn model: the risk that this \
         customer leaves is {band} ({:.2}). Main factors: {}.\nIn two sentences, explain the risk with the main \
         factors, then suggest one retention action.\nYour answer must begin: \"The risk of leaving is {band}\".",
        grounds.score,
        factors.join(", ")
    ))
}

fn check(c: &mut Criterion) {
    let answers = answers();
    let mut group = c.benchmark_group("explanation");
    group.throughput(Throughput::Elements(answers.len() as u64));
    group.bench_function("baseline_lowercase", |b| {
        b.iter(|| {
            for (_, text) in &answers {
                black_box(text.to_lowercase());
            }
        });
    });
    group.bench_function("check", |b| {
        b.iter(|| {
            for (grounds, text) in &answers {
                black_box(grounds.check(text));
            }
        });
    });
    let prompted: Vec<(Grounds, String, PromptText)> =
        answers.iter().map(|(g, t)| (g.clone(), t.clone(), prompt(g))).collect();
    group.bench_function("check_with_prompt", |b| {
        b.iter(|| {
            for (grounds, text, prompt) in &prompted {
                black_box(grounds.check_answer(text, prompt));
            }
        });
    });
    group.bench_function("stream_gate", |b| {
        b.iter(|| {
            for (grounds, text, prompt) in &prompted {
                let mut gate = SentenceGate::new(grounds.clone(), prompt.clone());
                for word in text.split_inclusive(' ') {
                    black_box(gate.push(word));
                }
                black_box(gate.finish()).ok();
            }
        });
    });
    group.finish();
}

criterion_group!(benches, check);
criterion_main!(benches);
