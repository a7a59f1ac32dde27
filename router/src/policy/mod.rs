//! The routing policy: targets, ordered rules, splits, shadows, tenants. Read from its own file
//! (`file.rs` is its shape, `compile.rs` checks it), held by a hot-reloadable store (`store.rs`).
//! [`Policy::decide`] is pure: the same facts give the same decision, with every step of it recorded.

mod compile;
mod conditions;
mod file;
pub mod prompt;
mod split;
mod store;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use compile::{PolicyContext, PolicyFileError, compile, json_schema};
pub use conditions::{Band, Conditions};
pub use prompt::{Attempt, PromptError, PromptInput, Prompts, ScoreFacts};
pub use store::{PolicyStore, ReloadOutcome, watch};

/// What a target does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    /// Score the attached record with the churn scorer.
    Classical,
    /// Answer with an LLM backend.
    Llm,
    /// Score the record, then have an LLM explain the score.
    Hybrid,
    /// Refuse with a configured message.
    Reject,
}

impl TargetKind {
    /// `classical`, `llm`, `hybrid` or `reject`, as in the policy file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Classical => "classical",
            Self::Llm => "llm",
            Self::Hybrid => "hybrid",
            Self::Reject => "reject",
        }
    }

    /// Whether the target reads the customer record.
    pub fn needs_record(self) -> bool {
        matches!(self, Self::Classical | Self::Hybrid)
    }
}

/// What a target with LLM backends answers when none of them can.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnUnavailable {
    /// Fail closed: the caller gets the backend's error (UNAVAILABLE, DEADLINE_EXCEEDED, ...).
    Error,
    /// Fail open (hybrid targets): the score alone, flagged degraded.
    ScoreOnly,
    /// Fail open: this refusal, flagged degraded.
    Reject(String),
}

/// A named destination.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// Its name in the policy.
    pub name: String,
    /// What it does.
    pub kind: TargetKind,
    /// The LLM backends to try in order: the primary, then its fallbacks (llm and hybrid targets).
    pub backends: Vec<String>,
    /// The remote scorer that scores its records (classical and hybrid targets; `None`: the in-process model).
    pub scorer: Option<String>,
    /// What to answer when every backend fails.
    pub on_unavailable: OnUnavailable,
    /// System message template (llm and hybrid targets).
    pub system_prompt: String,
    /// User message template of the stricter retry (hybrid targets; empty otherwise).
    pub retry_prompt: String,
    /// User message template (llm and hybrid targets).
    pub user_prompt: String,
    /// Largest rendered prompt (system + user), in characters.
    pub max_prompt_chars: usize,
    /// Output token limit: the default, and the ceiling of what a caller may ask for.
    pub max_tokens: u32,
    /// Default temperature (`None`: the backend's).
    pub temperature: Option<f32>,
    /// The refusal (reject targets).
    pub message: String,
}

/// Which request property keeps a caller on the same side of a split or shadow draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StickyBy {
    /// The tenant (requests without one fall back to their request id).
    Tenant,
    /// The request id.
    RequestId,
}

impl StickyBy {
    /// `tenant` or `request_id`, as in the policy file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tenant => "tenant",
            Self::RequestId => "request_id",
        }
    }
}

/// One side of a split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arm {
    /// The target.
    pub target: String,
    /// Its share, in percent (the arms of a split sum to 100).
    pub weight: u32,
}

/// What a matching rule does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Route to this target.
    Target(String),
    /// Route to one of these targets, by weight.
    Split(Vec<Arm>),
}

/// Mirror a share of a rule's traffic to a second target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shadow {
    /// The target mirrored to.
    pub target: String,
    /// Share of the rule's requests mirrored, in percent.
    pub percent: u32,
}

/// One rule: requests matching `when` get `action`.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Its name, reported in decisions.
    pub name: String,
    /// What it matches.
    pub when: Conditions,
    /// Where matches go.
    pub action: Action,
    /// Mirroring, if any.
    pub shadow: Option<Shadow>,
    /// What keeps split and shadow draws sticky.
    pub sticky_by: StickyBy,
}

/// Requests the classifier is unsure about go to a fallback target, before any rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Abstain {
    /// Confidence below which the classifier's label is not trusted.
    pub below: f32,
    /// Where those requests go.
    pub target: String,
}

/// Per-tenant settings.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Tenant {
    /// Targets this tenant's requests may force with `force_target`.
    pub allow_force_target: Vec<String>,
    /// Overrides the policy's abstain threshold.
    pub abstain_below: Option<f32>,
    /// Evaluated before the policy's rules.
    pub rules: Vec<Rule>,
    /// What the tenant may do besides routing, when callers are authenticated.
    pub permissions: Permissions,
}

/// What an authenticated tenant may do besides `Route` and `RouteStream` (all false unless its
/// `[tenants.<name>]` says so; with authentication off every caller may do everything).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Permissions {
    /// Call `Explain`.
    pub explain: bool,
    /// See rule evaluations in responses.
    pub evaluations: bool,
    /// Use server reflection.
    pub reflection: bool,
}

impl Permissions {
    /// Every permission: a caller when authentication is off.
    pub const ALL: Self = Self {
        explain: true,
        evaluations: true,
        reflection: true,
    };
}

impl Policy {
    /// What `tenant` (authenticated) may do: its `[tenants.<name>]` permissions, or none.
    pub fn permissions(&self, tenant: &str) -> Permissions {
        self.tenants.get(tenant).map(|t| t.permissions).unwrap_or_default()
    }
}

/// The whole policy, checked. Targets and rules reference each other only by names that exist.
#[derive(Debug)]
pub struct Policy {
    /// Content hash of the file it came from.
    pub version: String,
    /// Targets by name.
    pub targets: BTreeMap<String, Arc<Target>>,
    /// Where requests go when no rule matches.
    pub default_target: String,
    /// Low-confidence handling.
    pub abstain: Option<Abstain>,
    /// Rules, first match wins (after the tenant's own).
    pub rules: Vec<Rule>,
    /// Tenants by name.
    pub tenants: BTreeMap<String, Tenant>,
    /// The targets' prompt templates, compiled.
    pub prompts: Prompts,
    /// How hybrid explanations are checked.
    pub explanations: Explanations,
}

/// How hybrid targets' explanations are held to their score (`[explanations]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Explanations {
    /// Enforce, observe or skip the check.
    pub mode: CheckMode,
    /// One stricter retry when the first answer fails and the deadline allows.
    pub retry: bool,
    /// Where the band `elevated` starts, as a fraction of the scorer's threshold.
    pub elevated_from: f32,
    /// An explanation must name one of this many strongest fields.
    pub top_fields: usize,
    /// How prose may name each field; the first is what prompts say.
    pub field_names: crate::explanation::FieldNames,
}

impl Explanations {
    /// What an explanation of a score (with its `threshold`) must agree with, by these settings: its band, and
    /// the strongest of `influences` with the ways prose names them (`record`: their values).
    pub fn grounds(
        &self,
        (score, threshold): (f32, f32),
        influences: &[classical::Influence],
        record: Option<&std::collections::BTreeMap<String, classical::schema::FeatureValue>>,
    ) -> crate::explanation::Grounds {
        crate::explanation::Grounds::new(
            (score, threshold, self.elevated_from),
            influences,
            self.top_fields,
            record,
            &self.field_names,
        )
    }
}

impl Default for Explanations {
    fn default() -> Self {
        Self {
            mode: CheckMode::Enforce,
            retry: true,
            elevated_from: 0.5,
            top_fields: 3,
            field_names: crate::explanation::FieldNames::new(),
        }
    }
}

/// What the check of a hybrid explanation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckMode {
    /// A failing explanation is retried, else replaced by the template.
    Enforce,
    /// The verdict is reported; the text is left alone.
    Observe,
    /// No check.
    Off,
}

/// The classifier's verdict, as the policy sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Classified {
    /// The decided label.
    pub label: String,
    /// The label's group.
    pub group: String,
    /// The top probability.
    pub confidence: f32,
    /// Top probability minus the second's.
    pub margin: f32,
    /// The classifier cascade's tier that answered.
    pub tier: classical::Tier,
}

/// Everything the policy may look at.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// The decided label.
    pub label: &'a str,
    /// Its group.
    pub group: &'a str,
    /// The top probability.
    pub confidence: f32,
    /// Top probability minus the second's.
    pub margin: f32,
    /// The caller's tenant (may be empty).
    pub tenant: &'a str,
    /// Whether a record is attached.
    pub has_record: bool,
    /// The classifier cascade's tier that answered.
    pub tier: classical::Tier,
    /// Length of the text in bytes.
    pub text_bytes: usize,
    /// The request id (a sticky key).
    pub request_id: &'a str,
    /// The target the caller asked for, if any.
    pub force_target: Option<&'a str>,
}

/// One step of a decision: a rule (or the abstain check) and whether it matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    /// The rule's name (`abstain` for the abstain check).
    pub rule: String,
    /// `policy`, or `tenant <name>` for a tenant's own rules and threshold.
    pub scope: String,
    /// Whether it matched.
    pub matched: bool,
    /// Why (not).
    pub detail: String,
}

/// The draw of a split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitDraw {
    /// The sticky key's kind.
    pub sticky_by: StickyBy,
    /// The request's bucket in [0, 10000).
    pub bucket: u32,
    /// The arms.
    pub arms: Vec<Arm>,
    /// The arm the bucket fell in.
    pub chosen: String,
}

/// The draw of a shadow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShadowDraw {
    /// The shadow target.
    pub target: String,
    /// Share mirrored, in percent.
    pub percent: u32,
    /// The request's bucket in [0, 10000); mirrored when below `percent * 100`.
    pub bucket: u32,
    /// Whether this request is mirrored.
    pub mirrored: bool,
}

/// The policy's answer, with how it was reached.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The chosen target.
    pub target: Arc<Target>,
    /// The rule that fired (`None`: abstain, default target or forced).
    pub rule: Option<String>,
    /// Why, in words.
    pub reason: String,
    /// The policy's version.
    pub policy_version: String,
    /// Every step evaluated, in order.
    pub evaluations: Vec<Evaluation>,
    /// The split draw, when the rule splits.
    pub split: Option<SplitDraw>,
    /// The shadow draw, when the rule mirrors.
    pub shadow: Option<ShadowDraw>,
}

/// Why the policy refused to decide.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// `force_target` named a target the policy does not let this tenant force.
    #[error("force_target {target:?} is not allowed for tenant {tenant:?} by the policy")]
    ForceNotAllowed {
        /// The target asked for.
        target: String,
        /// The caller's tenant.
        tenant: String,
    },
    /// A name that does not exist (the policy's checks prevent this).
    #[error("policy references unknown target {0:?}")]
    UnknownTarget(String),
}

impl Policy {
    /// Decides where a classified request goes: a forced target (if the tenant may force it), else the abstain
    /// check, else the tenant's rules then the policy's, first match wins, else the default target.
    pub fn decide(&self, facts: &Facts<'_>) -> Result<Decision, PolicyError> {
        let tenant = self.tenants.get(facts.tenant);
        let tenant_scope = format!("tenant {}", facts.tenant);
        if let Some(forced) = facts.force_target.filter(|f| !f.is_empty()) {
            if !tenant.is_some_and(|t| t.allow_force_target.iter().any(|a| a == forced)) {
                return Err(PolicyError::ForceNotAllowed {
                    target: forced.to_owned(),
                    tenant: facts.tenant.to_owned(),
                });
            }
            let reason = format!(
                "target {forced:?} forced by the request (allowed for tenant {:?})",
                facts.tenant
            );
            return self.decision(forced, None, reason, Vec::new());
        }

        let mut evaluations = Vec::new();
        if let Some(abstain) = &self.abstain {
            let (below, scope) = match tenant.and_then(|t| t.abstain_below) {
                Some(below) => (below, tenant_scope.clone()),
                None => (abstain.below, "policy".to_owned()),
            };
            let matched = facts.confidence < below;
            let comparison = if matched { "<" } else { ">=" };
            evaluations.push(Evaluation {
                rule: "abstain".to_owned(),
                scope,
                matched,
                detail: format!("confidence {:.3} {comparison} {below}", facts.confidence),
            });
            if matched {
                let reason = format!(
                    "abstained: confidence {:.3} < {below}: fallback {:?}",
                    facts.confidence, abstain.target
                );
                return self.decision(&abstain.target, None, reason, evaluations);
            }
        }

        let tenant_rules = tenant.map(|t| t.rules.as_slice()).unwrap_or_default();
        let scoped = tenant_rules
            .iter()
            .map(|r| (r, tenant_scope.as_str()))
            .chain(self.rules.iter().map(|r| (r, "policy")));
        for (rule, scope) in scoped {
            match rule.when.check(facts) {
                Err(why) => evaluations.push(Evaluation {
                    rule: rule.name.clone(),
                    scope: scope.to_owned(),
                    matched: false,
                    detail: why,
                }),
                Ok(held) => {
                    evaluations.push(Evaluation {
                        rule: rule.name.clone(),
                        scope: scope.to_owned(),
                        matched: true,
                        detail: held.clone(),
                    });
                    return self.apply(rule, scope, held, facts, evaluations);
                }
            }
        }
        let reason = format!(
            "no rule matched label {:?} (group {:?}): default target {:?}",
            facts.label, facts.group, self.default_target
        );
        self.decision(&self.default_target, None, reason, evaluations)
    }

    fn apply(
        &self,
        rule: &Rule,
        scope: &str,
        held: String,
        facts: &Facts<'_>,
        evaluations: Vec<Evaluation>,
    ) -> Result<Decision, PolicyError> {
        let key = match rule.sticky_by {
            StickyBy::Tenant if !facts.tenant.is_empty() => facts.tenant,
            StickyBy::Tenant | StickyBy::RequestId => facts.request_id,
        };
        let (target, split) = match &rule.action {
            Action::Target(target) => (target.clone(), None),
            Action::Split(arms) => {
                let bucket = split::bucket(&rule.name, key);
                let chosen = split::choose(arms, bucket).to_owned();
                let draw = SplitDraw {
                    sticky_by: rule.sticky_by,
                    bucket,
                    arms: arms.clone(),
                    chosen: chosen.clone(),
                };
                (chosen, Some(draw))
            }
        };
        let shadow = rule.shadow.as_ref().map(|shadow| {
            let bucket = split::bucket(&format!("{}/shadow", rule.name), key);
            ShadowDraw {
                target: shadow.target.clone(),
                percent: shadow.percent,
                bucket,
                mirrored: bucket < shadow.percent * 100,
            }
        });
        let mut reason = format!("rule {:?} ({scope}) matched: {held}", rule.name);
        if let Some(draw) = &split {
            reason.push_str(&format!(
                "; split by {} bucket {} -> {:?}",
                draw.sticky_by.as_str(),
                draw.bucket,
                draw.chosen
            ));
        }
        let mut decision = self.decision(&target, Some(rule.name.clone()), reason, evaluations)?;
        decision.split = split;
        decision.shadow = shadow;
        Ok(decision)
    }

    fn decision(
        &self,
        target: &str,
        rule: Option<String>,
        reason: String,
        evaluations: Vec<Evaluation>,
    ) -> Result<Decision, PolicyError> {
        let target = self
            .targets
            .get(target)
            .ok_or_else(|| PolicyError::UnknownTarget(target.to_owned()))?;
        Ok(Decision {
            target: target.clone(),
            rule,
            reason,
            policy_version: self.version.clone(),
            evaluations,
            split: None,
            shadow: None,
        })
    }

    /// A target by name.
    pub fn target(&self, name: &str) -> Option<&Arc<Target>> {
        self.targets.get(name)
    }

    /// One line: version and sizes (for `switchyard validate` and logs).
    pub fn summary(&self) -> String {
        let tenant_rules: usize = self.tenants.values().map(|t| t.rules.len()).sum();
        format!(
            "policy {}: {} targets, {} rules, {} tenants ({} tenant rules), default target {:?}",
            self.version,
            self.targets.len(),
            self.rules.len(),
            self.tenants.len(),
            tenant_rules,
            self.default_target
        )
    }
}

#[cfg(test)]
mod tests;
