//! The policy file's shape as serde reads it (unknown keys refused) and as the JSON Schema describes it
//! (`docs/policy.schema.json`, generated from these types by `switchyard schema`). `compile.rs` checks it.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

/// A Switchyard routing policy.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// The policy format's version: 1.
    #[schemars(range(min = 1, max = 1))]
    pub schema_version: u32,
    /// Where requests go when no rule matches.
    pub default_target: String,
    /// Requests the classifier is unsure about go to a fallback target, before any rule.
    #[serde(default)]
    pub abstain: Option<AbstainFile>,
    /// Named destinations.
    pub targets: BTreeMap<String, TargetFile>,
    /// Ordered rules; the first whose conditions all hold decides.
    #[serde(default)]
    pub rules: Vec<RuleFile>,
    /// Per-tenant settings: forcible targets, threshold overrides, rules evaluated before the policy's.
    #[serde(default)]
    pub tenants: BTreeMap<String, TenantFile>,
    /// How hybrid targets' explanations are held to their score.
    #[serde(default)]
    pub explanations: Option<ExplanationsFile>,
}

/// What a hybrid explanation is checked for, and what happens when it fails.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExplanationsFile {
    /// `enforce` (default): a failing explanation is retried or replaced; `observe`: the verdict is reported and
    /// the text left alone; `off`: no check.
    #[serde(default)]
    pub check: Option<CheckModeFile>,
    /// One retry with the stricter `retry_prompt` when the first answer fails and the deadline allows
    /// (default true).
    #[serde(default)]
    pub retry: Option<bool>,
    /// Where the band `elevated` starts, as a fraction of the scorer's threshold, in (0, 1) (default 0.5).
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub elevated_from: Option<f32>,
    /// An explanation must name one of the score's this many strongest fields, 1 to 5 (default 3).
    #[serde(default)]
    #[schemars(range(min = 1, max = 5))]
    pub top_fields: Option<usize>,
    /// How prose may name each record field; the first name is what prompts and templates say (default: the
    /// field's own name, underscores as spaces).
    #[serde(default)]
    pub field_names: BTreeMap<String, Vec<String>>,
}

/// How hybrid explanations are checked.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckModeFile {
    /// Retry or replace a failing explanation.
    Enforce,
    /// Report the verdict, change nothing.
    Observe,
    /// No check.
    Off,
}

/// Low-confidence fallback.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AbstainFile {
    /// Confidence (top label probability) below which the label is not trusted, in (0, 1].
    #[schemars(range(min = 0.0, max = 1.0))]
    pub below: f32,
    /// Where those requests go.
    pub target: String,
}

/// What a target does.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum KindFile {
    /// Score the attached record with the churn scorer.
    Classical,
    /// Answer with an LLM backend.
    Llm,
    /// Score the record, then have an LLM explain the score.
    Hybrid,
    /// Refuse with `message`.
    Reject,
}

/// What a target with LLM backends answers when none of them can.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnUnavailableFile {
    /// Fail closed: the backend's error reaches the caller.
    Error,
    /// Fail open (hybrid only): the score alone, flagged degraded.
    ScoreOnly,
    /// Fail open: `unavailable_message` as a refusal, flagged degraded.
    Reject,
}

/// A named destination.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetFile {
    /// What it does.
    pub kind: KindFile,
    /// The LLM backend (a `[backends.<name>]` of the main config); llm and hybrid targets.
    #[serde(default)]
    pub backend: Option<String>,
    /// Backends tried in order when the primary fails.
    #[serde(default)]
    pub fallbacks: Vec<String>,
    /// A remote scorer (a `[scorers.<name>]` of the main config) for classical and hybrid targets; default: the
    /// in-process model.
    #[serde(default)]
    pub scorer: Option<String>,
    /// When every backend fails (default `error`).
    #[serde(default)]
    pub on_unavailable: Option<OnUnavailableFile>,
    /// The refusal when `on_unavailable = "reject"`.
    #[serde(default)]
    pub unavailable_message: Option<String>,
    /// System message template (minijinja).
    #[serde(default)]
    pub system_prompt: Option<String>,
    /// User message template (minijinja).
    #[serde(default)]
    pub user_prompt: Option<String>,
    /// User message template of the stricter retry after an explanation failed its check (hybrid targets).
    #[serde(default)]
    pub retry_prompt: Option<String>,
    /// Largest rendered prompt, in characters (default 16000).
    #[serde(default)]
    pub max_prompt_chars: Option<usize>,
    /// Default output token limit (default 256).
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// Default temperature, in [0, 2] (default: the backend's).
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 2.0))]
    pub temperature: Option<f32>,
    /// The refusal (reject targets).
    #[serde(default)]
    pub message: Option<String>,
}

/// What keeps a caller on the same side of a split or shadow draw.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StickyByFile {
    /// The tenant (requests without one use their request id).
    Tenant,
    /// The request id.
    RequestId,
}

/// One side of a split.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ArmFile {
    /// The target.
    pub target: String,
    /// Its share in percent; a split's weights sum to 100.
    #[schemars(range(min = 1, max = 100))]
    pub weight: u32,
}

/// Mirror a share of a rule's traffic to a second target, in the background.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShadowFile {
    /// The target mirrored to.
    pub target: String,
    /// Share of the rule's requests mirrored, 1 to 100.
    #[schemars(range(min = 1, max = 100))]
    pub percent: u32,
}

/// A rule: conditions (all must hold; unset ones match anything), then an action.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    /// Reported in decisions; unique within its list.
    pub name: String,
    /// Matches when the decided label is one of these (or its group is one of `groups`).
    #[serde(default)]
    pub labels: Vec<String>,
    /// Matches when the decided label's group is one of these (or the label is one of `labels`).
    #[serde(default)]
    pub groups: Vec<String>,
    /// Lowest top-label probability matched (inclusive).
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub min_confidence: Option<f32>,
    /// Top-label probability matched up to (exclusive).
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub max_confidence: Option<f32>,
    /// Lowest margin (top probability minus the second) matched (inclusive).
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub min_margin: Option<f32>,
    /// Margin matched up to (exclusive).
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub max_margin: Option<f32>,
    /// Matches only these tenants (policy rules only; a tenant's own rules apply to it alone).
    #[serde(default)]
    pub tenants: Vec<String>,
    /// Matches only requests with (true) or without (false) a customer record.
    #[serde(default)]
    pub has_record: Option<bool>,
    /// Matches only requests the classifier cascade's `linear` tier answered, or those it escalated to the
    /// `encoder` tier.
    #[serde(default)]
    #[schemars(regex(pattern = "^(linear|encoder)$"))]
    pub tier: Option<String>,
    /// Shortest text matched, in bytes (inclusive).
    #[serde(default)]
    pub min_text_bytes: Option<usize>,
    /// Text length matched up to, in bytes (exclusive).
    #[serde(default)]
    pub max_text_bytes: Option<usize>,
    /// Route matches here (exactly one of `target` and `split`).
    #[serde(default)]
    pub target: Option<String>,
    /// Route matches to one of these targets by weight (exactly one of `target` and `split`).
    #[serde(default)]
    pub split: Vec<ArmFile>,
    /// What keeps split and shadow draws sticky (default `request_id`).
    #[serde(default)]
    pub sticky_by: Option<StickyByFile>,
    /// Mirror a share of matches to a second target.
    #[serde(default)]
    pub shadow: Option<ShadowFile>,
}

/// One tenant's settings.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantFile {
    /// Targets this tenant's requests may force with `force_target` (others: PERMISSION_DENIED).
    #[serde(default)]
    pub allow_force_target: Vec<String>,
    /// Overrides `abstain.below` for this tenant.
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub abstain_below: Option<f32>,
    /// Evaluated before the policy's rules, for this tenant only.
    #[serde(default)]
    pub rules: Vec<RuleFile>,
    /// With `[auth]` required: may call `Explain` (the decision without dispatching). Default false.
    #[serde(default)]
    pub allow_explain: bool,
    /// With `[auth]` required: responses carry the rule evaluations (`RoutingDecision.evaluations`), which show
    /// the policy's rules. Default false.
    #[serde(default)]
    pub show_evaluations: bool,
    /// With `[auth]` required: may use gRPC server reflection. Default false.
    #[serde(default)]
    pub allow_reflection: bool,
}
