#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::Path;

use proptest::prelude::*;

use super::*;

/// A policy using every rule feature, compiled against a small label set.
const POLICY: &str = r#"
schema_version = 1
default_target = "chat"

[abstain]
below = 0.2
target = "unsure"

[targets.churn]
kind = "classical"
[targets.explain]
kind = "hybrid"
backend = "local"
on_unavailable = "score_only"
[targets.chat]
kind = "llm"
backend = "local"
[targets.chat-canary]
kind = "llm"
backend = "local"
on_unavailable = "reject"
unavailable_message = "try again later"
[targets.unsure]
kind = "llm"
backend = "local"
[targets.refuse]
kind = "reject"
message = "no"
[targets.long]
kind = "reject"
message = "too long"

[[rules]]
name = "confident-score"
labels = ["churn_score"]
min_confidence = 0.6
has_record = true
target = "churn"

[[rules]]
name = "close-call"
groups = ["customer_record"]
max_margin = 0.1
target = "explain"

[[rules]]
name = "records"
groups = ["customer_record"]
target = "explain"
shadow = { target = "churn", percent = 100 }

[[rules]]
name = "vip-banking"
groups = ["banking"]
tenants = ["vip"]
target = "chat"

[[rules]]
name = "banking"
groups = ["banking"]
min_confidence = 0.5
max_confidence = 0.9
target = "refuse"

[[rules]]
name = "long-text"
min_text_bytes = 1000
target = "long"

[[rules]]
name = "escalated-oos"
labels = ["oos"]
tier = "encoder"
target = "refuse"

[[rules]]
name = "canary"
labels = ["weather"]
split = [{ target = "chat", weight = 90 }, { target = "chat-canary", weight = 10 }]
sticky_by = "tenant"

[tenants.acme]
allow_force_target = ["churn"]
abstain_below = 0.5

[[tenants.acme.rules]]
name = "acme-weather"
labels = ["weather"]
target = "refuse"
"#;

fn labels() -> BTreeMap<String, String> {
    [
        ("churn_score", "customer_record"),
        ("churn_explain", "customer_record"),
        ("balance", "banking"),
        ("transfer", "banking"),
        ("weather", "utility"),
        ("oos", "oos"),
    ]
    .into_iter()
    .map(|(l, g)| (l.to_owned(), g.to_owned()))
    .collect()
}

fn context() -> PolicyContext {
    PolicyContext {
        backends: ["local".to_owned()].into_iter().collect(),
        scorers: ["remote".to_owned()].into_iter().collect(),
        labels: Some(labels()),
        fields: None,
    }
}

fn policy() -> Policy {
    compile(Path::new("policy.toml"), POLICY, &context()).unwrap()
}

/// A request: label (group from the label set), confidence, margin; record and text length and tenant via the
/// builder methods.
#[derive(Clone)]
struct Req {
    label: &'static str,
    confidence: f32,
    margin: f32,
    tenant: &'static str,
    has_record: bool,
    tier: classical::Tier,
    text_bytes: usize,
    request_id: String,
    force: Option<&'static str>,
}

fn req(label: &'static str, confidence: f32, margin: f32) -> Req {
    Req {
        label,
        confidence,
        margin,
        tenant: "",
        has_record: false,
        tier: classical::Tier::Linear,
        text_bytes: 20,
        request_id: "r-1".to_owned(),
        force: None,
    }
}

impl Req {
    fn tenant(mut self, tenant: &'static str) -> Self {
        self.tenant = tenant;
        self
    }
    fn record(mut self) -> Self {
        self.has_record = true;
        self
    }
    fn escalated(mut self) -> Self {
        self.tier = classical::Tier::Encoder;
        self
    }
    fn text(mut self, bytes: usize) -> Self {
        self.text_bytes = bytes;
        self
    }
    fn force(mut self, target: &'static str) -> Self {
        self.force = Some(target);
        self
    }
    fn decide(&self, policy: &Policy) -> Result<Decision, PolicyError> {
        let group = labels()[self.label].clone();
        policy.decide(&Facts {
            label: self.label,
            group: &group,
            confidence: self.confidence,
            margin: self.margin,
            tenant: self.tenant,
            has_record: self.has_record,
            tier: self.tier,
            text_bytes: self.text_bytes,
            request_id: &self.request_id,
            force_target: self.force,
        })
    }
}

#[test]
fn every_rule_feature_decides_as_written() {
    let policy = policy();
    // (what is exercised, request, expected target, expected rule)
    let cases: Vec<(&str, Req, &str, Option<&str>)> = vec![
        (
            "label + confidence + record",
            req("churn_score", 0.9, 0.8).record(),
            "churn",
            Some("confident-score"),
        ),
        (
            "record condition fails",
            req("churn_score", 0.9, 0.8),
            "explain",
            Some("records"),
        ),
        (
            "confidence below the band",
            req("churn_score", 0.55, 0.3).record(),
            "explain",
            Some("records"),
        ),
        (
            "margin band (close call)",
            req("churn_explain", 0.5, 0.05).record(),
            "explain",
            Some("close-call"),
        ),
        ("group", req("churn_explain", 0.7, 0.5), "explain", Some("records")),
        (
            "tenant condition",
            req("balance", 0.7, 0.5).tenant("vip"),
            "chat",
            Some("vip-banking"),
        ),
        (
            "confidence band inside",
            req("balance", 0.7, 0.5),
            "refuse",
            Some("banking"),
        ),
        (
            "confidence band upper end is exclusive",
            req("balance", 0.9, 0.85),
            "chat",
            None,
        ),
        (
            "text length",
            req("oos", 0.6, 0.2).text(1000),
            "long",
            Some("long-text"),
        ),
        ("text length below", req("oos", 0.6, 0.2).text(999), "chat", None),
        ("abstain", req("balance", 0.15, 0.01), "unsure", None),
        (
            "tenant abstain override",
            req("balance", 0.4, 0.1).tenant("acme"),
            "unsure",
            None,
        ),
        (
            "tenant rules first",
            req("weather", 0.8, 0.6).tenant("acme"),
            "refuse",
            Some("acme-weather"),
        ),
        ("default", req("oos", 0.6, 0.2), "chat", None),
        (
            "tier: the encoder answered",
            req("oos", 0.6, 0.2).escalated(),
            "refuse",
            Some("escalated-oos"),
        ),
        (
            "forced, allowed for the tenant",
            req("oos", 0.6, 0.2).tenant("acme").force("churn"),
            "churn",
            None,
        ),
        ("empty force is no force", req("oos", 0.6, 0.2).force(""), "chat", None),
    ];
    for (what, request, target, rule) in cases {
        let decision = request.decide(&policy).unwrap();
        assert_eq!(decision.target.name, target, "{what}: {}", decision.reason);
        assert_eq!(decision.rule.as_deref(), rule, "{what}: {}", decision.reason);
        assert_eq!(decision.policy_version, policy.version);
        assert!(!decision.reason.is_empty());
    }
}

#[test]
fn forcing_needs_the_tenant_and_the_target_listed() {
    let policy = policy();
    for (tenant, target) in [("acme", "chat"), ("other", "churn"), ("", "churn")] {
        let error = req("oos", 0.6, 0.2)
            .tenant(tenant)
            .force(target)
            .decide(&policy)
            .unwrap_err();
        assert_eq!(
            error,
            PolicyError::ForceNotAllowed {
                target: target.to_owned(),
                tenant: tenant.to_owned()
            }
        );
    }
}

#[test]
fn evaluations_say_why_each_rule_matched_or_not() {
    let policy = policy();
    let decision = req("balance", 0.7, 0.5).decide(&policy).unwrap();
    let steps: Vec<(&str, bool)> = decision
        .evaluations
        .iter()
        .map(|e| (e.rule.as_str(), e.matched))
        .collect();
    assert_eq!(
        steps,
        vec![
            ("abstain", false),
            ("confident-score", false),
            ("close-call", false),
            ("records", false),
            ("vip-banking", false),
            ("banking", true),
        ]
    );
    let vip = &decision.evaluations[4];
    assert_eq!(vip.detail, r#"tenant "" not in ["vip"]"#);
    assert_eq!(decision.evaluations[0].detail, "confidence 0.700 >= 0.2");
    assert!(
        decision.evaluations[5]
            .detail
            .contains("confidence 0.700 in [0.5, 0.9)")
    );
    let acme = req("weather", 0.8, 0.6).tenant("acme").decide(&policy).unwrap();
    assert_eq!(acme.evaluations[0].scope, "tenant acme");
    assert_eq!(acme.evaluations[0].detail, "confidence 0.800 >= 0.5");
    assert_eq!(acme.evaluations[1].scope, "tenant acme");
}

#[test]
fn a_split_draws_by_its_sticky_key_and_a_shadow_mirrors_its_share() {
    let policy = policy();
    let decision = req("weather", 0.8, 0.6).tenant("globex").decide(&policy).unwrap();
    let draw = decision.split.clone().expect("the canary rule splits");
    assert_eq!(draw.sticky_by, StickyBy::Tenant);
    assert_eq!(draw.chosen, decision.target.name);
    assert_eq!(draw.chosen, split::choose(&draw.arms, draw.bucket));
    assert_eq!(draw.bucket, split::bucket("canary", "globex"));
    // Sticky by tenant: the request id does not matter.
    for id in ["a", "b", "c", "d"] {
        let mut again = req("weather", 0.8, 0.6).tenant("globex");
        again.request_id = id.to_owned();
        assert_eq!(again.decide(&policy).unwrap().target.name, decision.target.name);
    }
    // No tenant: the request id is the key.
    let anonymous = req("weather", 0.8, 0.6).decide(&policy).unwrap();
    assert_eq!(anonymous.split.unwrap().bucket, split::bucket("canary", "r-1"));

    let shadowed = req("churn_explain", 0.7, 0.5).decide(&policy).unwrap();
    let shadow = shadowed.shadow.expect("records mirror to churn");
    assert!(shadow.mirrored, "100 percent mirrors everything");
    assert_eq!((shadow.target.as_str(), shadow.percent), ("churn", 100));
}

#[test]
fn targets_fail_open_or_closed_as_configured() {
    let policy = policy();
    assert_eq!(policy.targets["explain"].on_unavailable, OnUnavailable::ScoreOnly);
    assert_eq!(
        policy.targets["chat-canary"].on_unavailable,
        OnUnavailable::Reject("try again later".to_owned())
    );
    assert_eq!(policy.targets["chat"].on_unavailable, OnUnavailable::Error);
}

#[test]
fn unreachable_rules_are_found_through_groups_bands_and_tenants() {
    let check = |rules: &str| {
        let text = format!(
            "schema_version = 1\ndefault_target = \"a\"\n[targets.a]\nkind = \"reject\"\nmessage = \"x\"\n{rules}"
        );
        compile(Path::new("p.toml"), &text, &context())
    };
    let rule = |name: &str, body: &str| format!("[[rules]]\nname = \"{name}\"\n{body}\ntarget = \"a\"\n");
    // (earlier rule, later rule, later is unreachable)
    let cases = [
        ("groups = [\"banking\"]", "labels = [\"balance\"]", true),
        ("labels = [\"balance\"]", "groups = [\"banking\"]", false),
        ("min_confidence = 0.5", "min_confidence = 0.6", true),
        ("min_confidence = 0.6", "min_confidence = 0.5", false),
        ("max_margin = 0.2", "max_margin = 0.1", true),
        ("tenants = [\"a\", \"b\"]", "tenants = [\"a\"]", true),
        ("tenants = [\"a\"]", "labels = [\"balance\"]", false),
        ("has_record = true", "has_record = false", false),
        ("tier = \"encoder\"", "tier = \"linear\"", false),
        ("tier = \"encoder\"", "tier = \"encoder\"\nlabels = [\"balance\"]", true),
        ("min_text_bytes = 10", "min_text_bytes = 10\nmax_text_bytes = 20", true),
        ("", "labels = [\"weather\"]", true),
    ];
    for (earlier, later, unreachable) in cases {
        let result = check(&(rule("first", earlier) + &rule("second", later)));
        match (unreachable, result) {
            (true, Err(e)) => assert!(e.reason.contains("unreachable"), "{earlier} / {later}: {e}"),
            (false, Ok(_)) => {}
            (want, got) => panic!("{earlier} / {later}: want unreachable={want}, got {got:?}"),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the tenant, the same tenant always lands on the same arm, and a request's decision does not
    /// depend on anything but its facts.
    #[test]
    fn split_decisions_are_sticky_per_tenant(tenant in "[a-z]{1,10}", ids in proptest::collection::vec("[a-z0-9]{1,12}", 2..6)) {
        let policy = policy();
        let tenant: &'static str = Box::leak(tenant.into_boxed_str());
        let mut chosen = None;
        for id in ids {
            let mut request = req("weather", 0.8, 0.6).tenant(tenant);
            request.request_id = id;
            let target = request.decide(&policy).unwrap().target.name.clone();
            prop_assert!(target == "chat" || target == "chat-canary" || tenant == "acme");
            if let Some(previous) = &chosen {
                prop_assert_eq!(previous, &target);
            }
            chosen = Some(target);
        }
    }
}

#[test]
fn a_canary_gets_its_share_of_many_tenants() {
    let policy = policy();
    let n = 20_000;
    let canary = (0..n)
        .filter(|i| {
            let tenant: &'static str = Box::leak(format!("tenant-{i}").into_boxed_str());
            req("weather", 0.8, 0.6)
                .tenant(tenant)
                .decide(&policy)
                .unwrap()
                .target
                .name
                == "chat-canary"
        })
        .count();
    // 10 % of 20000 = 2000, standard deviation 42: within 5 of them.
    assert!((1790..=2210).contains(&canary), "{canary}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any text given as a policy file compiles or is refused with a key and a reason (never a panic); so does
    /// the example policy with any one line replaced by arbitrary text.
    #[test]
    fn any_policy_text_compiles_or_is_refused_with_a_key(
        text in ".{0,400}",
        line in 0usize..120,
        replacement in "[ -~]{0,60}",
    ) {
        for candidate in [text.clone(), {
            let mut lines: Vec<&str> = POLICY.lines().collect();
            let at = line % lines.len();
            lines[at] = &replacement;
            lines.join("\n")
        }] {
            if let Err(error) = compile(Path::new("p.toml"), &candidate, &context()) {
                prop_assert!(!error.key.is_empty() && !error.reason.is_empty(), "{error}");
            }
        }
    }
}
