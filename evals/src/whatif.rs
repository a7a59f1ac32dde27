//! `whatif`: one labelled request set through two policy files, offline (the classifier runs, no backend is
//! called): the route mix, the share routed to the right kind of target, the LLM calls, tokens and cost each
//! policy implies, and exactly which requests change route. How an operator sees what a policy edit does before
//! it ships.

use std::collections::BTreeMap;
use std::path::Path;

use classical::{CascadeClassifier, ClassifierInfo, Tier};
use serde::{Deserialize, Serialize};
use switchyard::config::Config;
use switchyard::config::Prices;
use switchyard::policy::{Attempt, Facts, Policy, PromptInput};

use crate::EvalError;
use crate::requests::LabelledRequest;

/// Where one request goes under one policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Route {
    /// The target.
    pub target: String,
    /// Its kind.
    pub kind: String,
    /// The rule that decided (`-` for abstain or the default).
    pub rule: String,
    /// Estimated prompt tokens (the rendered prompt, about four characters a token); 0 without an LLM call.
    pub input_tokens: u32,
    /// The output ceiling (the target's `max_tokens`); 0 without an LLM call.
    pub output_tokens: u32,
    /// Cost at the primary backend's prices.
    pub cost: f64,
}

/// One policy's totals over the set.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PolicySummary {
    /// The policy file.
    pub file: String,
    /// Its version (content hash).
    pub version: String,
    /// Requests per target.
    pub route_mix: BTreeMap<String, usize>,
    /// Requests per deciding rule (`-`: abstain or the default target).
    pub rule_mix: BTreeMap<String, usize>,
    /// Share routed to the kind of target that serves it right.
    pub right_kind: f64,
    /// Share that calls an LLM.
    pub llm_share: f64,
    /// Estimated prompt tokens, all requests.
    pub input_tokens: u64,
    /// Output token ceiling, all requests.
    pub output_tokens: u64,
    /// Cost at the configured (or given) prices.
    pub cost: f64,
}

/// One request whose route changed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Changed {
    /// The request's id.
    pub id: String,
    /// The classifier's label for it.
    pub label: String,
    /// The kind that serves it right.
    pub expected_kind: String,
    /// Under the baseline.
    pub baseline: Route,
    /// Under the candidate.
    pub candidate: Route,
}

/// A what-if comparison.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WhatIf {
    /// Requests replayed.
    pub requests: usize,
    /// The baseline's totals.
    pub baseline: PolicySummary,
    /// The candidate's totals.
    pub candidate: PolicySummary,
    /// (baseline target, candidate target) → requests, for the requests that changed.
    pub transitions: BTreeMap<String, usize>,
    /// Every request whose route changed.
    pub changed: Vec<Changed>,
}

/// Replays `requests` through both policies. `prices` are per backend; the classifier (the cascade, when the
/// config has one) runs once per request.
pub fn compare(
    classifier: &mut CascadeClassifier,
    schema: &classical::schema::FeatureSchema,
    (baseline_file, baseline): (&Path, &Policy),
    (candidate_file, candidate): (&Path, &Policy),
    prices: &BTreeMap<String, Prices>,
    requests: &[LabelledRequest],
) -> Result<WhatIf, EvalError> {
    let mut classified = Vec::with_capacity(requests.len());
    for chunk in requests.chunks(256) {
        let batch: Vec<(&str, bool)> = chunk.iter().map(|r| (r.text.as_str(), r.record.is_some())).collect();
        for classification in classifier.classify_batch(&batch, |_| {}) {
            let classification = classification?;
            let (label, confidence) = classification.decided();
            let margin = classical::Classification::margin(&classification.top(2));
            classified.push((
                label.label.clone(),
                label.group.clone(),
                confidence,
                margin,
                classification.tier,
            ));
        }
    }
    let route = |policy: &Policy,
                 request: &LabelledRequest,
                 c: &(String, String, f32, f32, Tier)|
     -> Result<Route, EvalError> {
        let facts = Facts {
            label: &c.0,
            group: &c.1,
            confidence: c.2,
            margin: c.3,
            tenant: "",
            has_record: request.record.is_some(),
            tier: c.4,
            text_bytes: request.text.len(),
            request_id: &request.id,
            force_target: None,
        };
        let decision = policy.decide(&facts).map_err(|e| EvalError::Dataset {
            name: request.id.clone(),
            reason: e.to_string(),
        })?;
        let target = &decision.target;
        let (input_tokens, output_tokens, cost) = match target.backends.first() {
            None => (0, 0, 0.0),
            Some(backend) => {
                let prompt = PromptInput {
                    text: &request.text,
                    tenant: "",
                    max_tokens: None,
                    temperature: None,
                    record: request.record.as_ref().map(|r| (schema, r)),
                    prediction: None,
                    grounds: None,
                };
                let chars = policy
                    .prompts
                    .render(target, &prompt, Attempt::First)
                    .map(|r| r.prompt_chars())
                    .unwrap_or(request.text.chars().count());
                let input = u32::try_from(chars.div_ceil(4)).unwrap_or(u32::MAX);
                let price = prices.get(backend).copied().unwrap_or_default();
                (input, target.max_tokens, price.cost(input, target.max_tokens))
            }
        };
        Ok(Route {
            target: target.name.clone(),
            kind: target.kind.as_str().to_owned(),
            rule: decision.rule.clone().unwrap_or_else(|| "-".to_owned()),
            input_tokens,
            output_tokens,
            cost,
        })
    };
    let mut baseline_routes = Vec::with_capacity(requests.len());
    let mut candidate_routes = Vec::with_capacity(requests.len());
    for (request, c) in requests.iter().zip(&classified) {
        baseline_routes.push(route(baseline, request, c)?);
        candidate_routes.push(route(candidate, request, c)?);
    }
    let summary = |file: &Path, policy: &Policy, routes: &[Route]| {
        let (mut route_mix, mut rule_mix) = (BTreeMap::new(), BTreeMap::new());
        for r in routes {
            *route_mix.entry(r.target.clone()).or_insert(0) += 1;
            *rule_mix.entry(r.rule.clone()).or_insert(0) += 1;
        }
        let n = routes.len().max(1) as f64;
        PolicySummary {
            file: file.display().to_string(),
            version: policy.version.clone(),
            route_mix,
            rule_mix,
            right_kind: requests
                .iter()
                .zip(routes)
                .filter(|(q, r)| q.expected_kind.as_str() == r.kind)
                .count() as f64
                / n,
            llm_share: routes.iter().filter(|r| r.output_tokens > 0).count() as f64 / n,
            input_tokens: routes.iter().map(|r| u64::from(r.input_tokens)).sum(),
            output_tokens: routes.iter().map(|r| u64::from(r.output_tokens)).sum(),
            cost: routes.iter().map(|r| r.cost).sum(),
        }
    };
    let mut transitions = BTreeMap::new();
    let mut changed = Vec::new();
    for ((request, c), (b, k)) in requests
        .iter()
        .zip(&classified)
        .zip(baseline_routes.iter().zip(&candidate_routes))
    {
        if b.target != k.target {
            *transitions.entry(format!("{} -> {}", b.target, k.target)).or_insert(0) += 1;
            changed.push(Changed {
                id: request.id.clone(),
                label: c.0.clone(),
                expected_kind: request.expected_kind.as_str().to_owned(),
                baseline: b.clone(),
                candidate: k.clone(),
            });
        }
    }
    Ok(WhatIf {
        requests: requests.len(),
        baseline: summary(baseline_file, baseline, &baseline_routes),
        candidate: summary(candidate_file, candidate, &candidate_routes),
        transitions,
        changed,
    })
}

/// Compiles a policy file against the config's backends and the classifier's labels, as the gateway does
/// (`switchyard::engine::policy_context`).
pub fn load_policy(path: &Path, config: &Config, classifier: &ClassifierInfo) -> Result<Policy, EvalError> {
    let text = std::fs::read_to_string(path).map_err(|e| EvalError::io(path, &e))?;
    let context = switchyard::engine::policy_context(config, &classifier.labels);
    switchyard::policy::compile(path, &text, &context).map_err(|e| EvalError::Policy(e.to_string()))
}

/// The comparison as Markdown: the cost/quality table, the route mix, the transitions and the first changed
/// requests.
pub fn markdown(whatif: &WhatIf, requests: &[LabelledRequest]) -> String {
    use std::fmt::Write as _;
    let mut md = format!(
        "# Policy what-if\n\n{} labelled requests, classified once, decided by each policy offline.\n\n",
        whatif.requests
    );
    md.push_str(
        "| policy | version | right kind % | LLM calls % | prompt tokens (est.) | output tokens (ceiling) | cost |\n",
    );
    md.push_str("|---|---|---|---|---|---|---|\n");
    for (name, s) in [("baseline", &whatif.baseline), ("candidate", &whatif.candidate)] {
        let _ = writeln!(
            md,
            "| {name} ({}) | {} | {:.2} | {:.2} | {} | {} | {:.4} |",
            s.file,
            s.version,
            100.0 * s.right_kind,
            100.0 * s.llm_share,
            s.input_tokens,
            s.output_tokens,
            s.cost
        );
    }
    md.push_str("\n| target | baseline | candidate |\n|---|---|---|\n");
    let mut targets: Vec<&String> = whatif
        .baseline
        .route_mix
        .keys()
        .chain(whatif.candidate.route_mix.keys())
        .collect();
    targets.sort();
    targets.dedup();
    for t in targets {
        let _ = writeln!(
            md,
            "| {t} | {} | {} |",
            whatif.baseline.route_mix.get(t).unwrap_or(&0),
            whatif.candidate.route_mix.get(t).unwrap_or(&0)
        );
    }
    let _ = writeln!(
        md,
        "\n{} requests change route:\n\n| from -> to | requests |\n|---|---|",
        whatif.changed.len()
    );
    for (transition, n) in &whatif.transitions {
        let _ = writeln!(md, "| {transition} | {n} |");
    }
    let texts: BTreeMap<&str, &str> = requests.iter().map(|r| (r.id.as_str(), r.text.as_str())).collect();
    md.push_str("\n| request | label | right kind | baseline | candidate | text |\n|---|---|---|---|---|---|\n");
    for c in whatif.changed.iter().take(25) {
        let text: String = texts
            .get(c.id.as_str())
            .copied()
            .unwrap_or("")
            .chars()
            .take(60)
            .collect();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} ({}) | {} ({}) | {} |",
            c.id,
            c.label,
            c.expected_kind,
            c.baseline.target,
            c.baseline.rule,
            c.candidate.target,
            c.candidate.rule,
            text.replace('|', "/")
        );
    }
    md
}
