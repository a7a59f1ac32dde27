//! Routing policy v1: named targets, ordered rules from label or label group to a target, a minimum confidence
//! per rule with a fallback below it, a default target. `decide` is pure: same inputs, same decision.

use std::collections::BTreeMap;

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
    /// `classical`, `llm`, `hybrid` or `reject`, as in config.
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

/// A named destination.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// Its name in config.
    pub name: String,
    /// What it does.
    pub kind: TargetKind,
    /// The LLM backends to try in order: the primary, then its fallbacks (llm and hybrid targets).
    pub backends: Vec<String>,
    /// A hybrid target answers with the score alone, flagged as degraded, when every backend fails.
    pub degrade_to_score: bool,
    /// System message template (llm and hybrid targets).
    pub system_prompt: String,
    /// User message template (llm and hybrid targets).
    pub user_prompt: String,
    /// Largest rendered prompt (system + user), in characters.
    pub max_prompt_chars: usize,
    /// Default output token limit.
    pub max_tokens: u32,
    /// Default temperature (`None`: the backend's).
    pub temperature: Option<f32>,
    /// The refusal (reject targets).
    pub message: String,
}

/// What a rule matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Matcher {
    /// One classifier label.
    Label(String),
    /// Every label of a group (a CLINC150 domain, `oos`, `customer_record`).
    Group(String),
}

/// One rule: matching requests go to `target` when confident enough, else to `fallback`.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Its name, reported in decisions.
    pub name: String,
    /// What it matches.
    pub matcher: Matcher,
    /// Below this confidence, the fallback applies.
    pub min_confidence: f32,
    /// Where confident matches go.
    pub target: String,
    /// Where unconfident matches go (`None`: the policy's default target).
    pub fallback: Option<String>,
}

/// The whole policy. References between targets and rules were checked when config was validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Content hash of the config that defined it.
    pub version: String,
    /// Targets by name.
    pub targets: BTreeMap<String, Target>,
    /// Rules, first match wins.
    pub rules: Vec<Rule>,
    /// Where requests go when no rule matches.
    pub default_target: String,
    /// Targets a request may force with `force_target`.
    pub allow_force_target: Vec<String>,
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
}

/// Facts about the request the policy may use besides the classification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestFacts<'a> {
    /// The target the caller asked for, if any.
    pub force_target: Option<&'a str>,
}

/// The policy's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The chosen target.
    pub target: Target,
    /// The rule that fired (`None`: default target or forced).
    pub rule: Option<String>,
    /// Why, in words.
    pub reason: String,
    /// The policy's version.
    pub policy_version: String,
}

/// Why the policy refused to decide.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// `force_target` named a target the policy does not let requests force.
    #[error("force_target {0:?} is not allowed by the policy")]
    ForceNotAllowed(String),
    /// A rule or the default names a target that does not exist (config validation prevents this).
    #[error("policy references unknown target {0:?}")]
    UnknownTarget(String),
}

impl Policy {
    /// Decides where a classified request goes.
    pub fn decide(&self, classified: &Classified, facts: RequestFacts<'_>) -> Result<Decision, PolicyError> {
        if let Some(forced) = facts.force_target.filter(|f| !f.is_empty()) {
            if !self.allow_force_target.iter().any(|t| t == forced) {
                return Err(PolicyError::ForceNotAllowed(forced.to_owned()));
            }
            return self.decision(forced, None, format!("target {forced:?} forced by the request"));
        }
        for rule in &self.rules {
            let matched = match &rule.matcher {
                Matcher::Label(label) => *label == classified.label,
                Matcher::Group(group) => *group == classified.group,
            };
            if !matched {
                continue;
            }
            let what = match &rule.matcher {
                Matcher::Label(label) => format!("label {label:?}"),
                Matcher::Group(group) => format!("group {group:?}"),
            };
            if classified.confidence >= rule.min_confidence {
                let reason = format!(
                    "rule {:?}: {what} matched with confidence {:.2} >= {:.2}",
                    rule.name, classified.confidence, rule.min_confidence
                );
                return self.decision(&rule.target, Some(rule.name.clone()), reason);
            }
            let fallback = rule.fallback.as_deref().unwrap_or(&self.default_target);
            let reason = format!(
                "rule {:?}: {what} matched but confidence {:.2} < {:.2}: fallback {fallback:?}",
                rule.name, classified.confidence, rule.min_confidence
            );
            return self.decision(fallback, Some(rule.name.clone()), reason);
        }
        let reason = format!(
            "no rule matched label {:?} (group {:?}): default target {:?}",
            classified.label, classified.group, self.default_target
        );
        self.decision(&self.default_target, None, reason)
    }

    fn decision(&self, target: &str, rule: Option<String>, reason: String) -> Result<Decision, PolicyError> {
        let target = self
            .targets
            .get(target)
            .ok_or_else(|| PolicyError::UnknownTarget(target.to_owned()))?;
        Ok(Decision {
            target: target.clone(),
            rule,
            reason,
            policy_version: self.version.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn target(name: &str, kind: TargetKind) -> Target {
        Target {
            name: name.to_owned(),
            kind,
            backends: Vec::new(),
            degrade_to_score: false,
            system_prompt: String::new(),
            user_prompt: String::new(),
            max_prompt_chars: 1000,
            max_tokens: 16,
            temperature: None,
            message: String::new(),
        }
    }

    fn policy() -> Policy {
        let targets = [
            target("churn", TargetKind::Classical),
            target("explain", TargetKind::Hybrid),
            target("chat", TargetKind::Llm),
            target("refuse", TargetKind::Reject),
        ]
        .into_iter()
        .map(|t| (t.name.clone(), t))
        .collect();
        Policy {
            version: "v1".to_owned(),
            targets,
            rules: vec![
                Rule {
                    name: "score".into(),
                    matcher: Matcher::Label("churn_score".into()),
                    min_confidence: 0.5,
                    target: "churn".into(),
                    fallback: Some("explain".into()),
                },
                Rule {
                    name: "records".into(),
                    matcher: Matcher::Group("customer_record".into()),
                    min_confidence: 0.0,
                    target: "explain".into(),
                    fallback: None,
                },
                Rule {
                    name: "banking".into(),
                    matcher: Matcher::Group("banking".into()),
                    min_confidence: 0.6,
                    target: "refuse".into(),
                    fallback: None,
                },
            ],
            default_target: "chat".to_owned(),
            allow_force_target: vec!["churn".into()],
        }
    }

    fn classified(label: &str, group: &str, confidence: f32) -> Classified {
        Classified {
            label: label.into(),
            group: group.into(),
            confidence,
        }
    }

    fn decide(c: &Classified, force: Option<&str>) -> Result<Decision, PolicyError> {
        policy().decide(c, RequestFacts { force_target: force })
    }

    #[test]
    fn decisions_cover_label_group_fallback_default_and_force() {
        // (classification, force_target, expected target, expected rule)
        let cases = [
            (
                classified("churn_score", "customer_record", 0.9),
                None,
                "churn",
                Some("score"),
            ),
            (
                classified("churn_score", "customer_record", 0.4),
                None,
                "explain",
                Some("score"),
            ),
            (
                classified("churn_explain", "customer_record", 0.3),
                None,
                "explain",
                Some("records"),
            ),
            (classified("balance", "banking", 0.9), None, "refuse", Some("banking")),
            (classified("balance", "banking", 0.5), None, "chat", Some("banking")),
            (classified("weather", "utility", 0.99), None, "chat", None),
            (classified("weather", "utility", 0.99), Some("churn"), "churn", None),
            (classified("weather", "utility", 0.99), Some(""), "chat", None),
        ];
        for (c, force, want_target, want_rule) in cases {
            let d = decide(&c, force).unwrap();
            assert_eq!(d.target.name, want_target, "{c:?} force {force:?}: {}", d.reason);
            assert_eq!(d.rule.as_deref(), want_rule, "{c:?}");
            assert_eq!(d.policy_version, "v1");
            assert!(!d.reason.is_empty());
        }
    }

    #[test]
    fn low_confidence_reason_names_rule_and_threshold() {
        let d = decide(&classified("churn_score", "customer_record", 0.4), None).unwrap();
        assert!(
            d.reason.contains("\"score\"") && d.reason.contains("0.40 < 0.50"),
            "{}",
            d.reason
        );
    }

    #[test]
    fn forcing_a_target_not_listed_is_refused() {
        let err = decide(&classified("weather", "utility", 0.9), Some("refuse")).unwrap_err();
        assert_eq!(err, PolicyError::ForceNotAllowed("refuse".into()));
        let err = decide(&classified("weather", "utility", 0.9), Some("nope")).unwrap_err();
        assert_eq!(err, PolicyError::ForceNotAllowed("nope".into()));
    }
}
