//! The classifier cascade through the gateway: which tier answered is in the decision, on the span and in the
//! metrics, policy rules can match on it, and a cascade config that cannot work is refused at start.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use support::{Gateway, TempDir, config, free_port, repo, request, telco_record, with_policy, write_config};

/// Bars that escalate part of ordinary traffic, whatever the shipped config says.
const CASCADE: &str = r#"
[models.cascade]
encoder = "ENCODER"
min_confidence = 0.9
min_margin = 0.5
linear_weight = 0.2
out_of_scope_threshold = 0.4
"#;

/// The test config, with [`CASCADE`] appended to its `[models]` table and a policy rule on the tier.
fn cascade_config() -> String {
    let encoder = repo().join("classical/models/request-encoder/1.0.0/model.onnx");
    let base = config(&format!("http://127.0.0.1:{}/v1", free_port()), "2s");
    let base = base.replace(
        "[policy]",
        &format!(
            "{}\n[policy]",
            CASCADE.replace("ENCODER", &encoder.display().to_string())
        ),
    );
    let (policy, _) = base.split_once(support::POLICY_END).unwrap();
    with_policy(
        &base,
        &policy.replacen(
            "[[rules]]",
            "[[rules]]\nname = \"unsure-plain\"\ntier = \"encoder\"\nhas_record = false\ntarget = \"refuse\"\n\n[[rules]]",
            1,
        ),
    )
}

#[tokio::test]
async fn the_decision_says_which_tier_answered_and_rules_can_match_on_it() {
    let gateway = Gateway::start(&cascade_config()).await;
    let mut client = gateway.client().await;
    let runtime = classical::OnnxRuntime::from_env().unwrap();
    let models = repo().join("classical/models");
    let mut linear =
        classical::RequestClassifier::load(&runtime, &models.join("request-classifier/1.1.0/model.onnx")).unwrap();
    let bars = classical::CascadeBars {
        min_confidence: 0.9,
        min_margin: 0.5,
        linear_weight: 0.2,
        out_of_scope_threshold: 0.4,
    };
    let texts = [
        "what is my checking account balance",
        "is it going to rain tomorrow in boston",
        "hmm, not sure",
        "can you tell me something about this",
        "book a table for two tonight",
    ];
    let mut seen = std::collections::BTreeSet::new();
    for text in texts {
        let decision = client.explain(request(text, None)).await.unwrap().into_inner();
        let expected = if bars.linear_answers(&linear.classify(text, false).unwrap()) {
            "linear"
        } else {
            "encoder"
        };
        assert_eq!(decision.tier, expected, "{text}");
        seen.insert(decision.tier.clone());
        if expected == "encoder" {
            let encoder = decision
                .encoder
                .as_ref()
                .expect("an escalated decision names the encoder");
            assert_eq!(
                (encoder.name.as_str(), encoder.version.as_str()),
                ("request-encoder", "1.0.0")
            );
            assert_eq!(decision.rule, "unsure-plain", "{text}: {}", decision.reason);
            assert!(decision.reason.contains("tier encoder"), "{}", decision.reason);
        } else {
            assert!(decision.encoder.is_none());
            assert_ne!(decision.rule, "unsure-plain");
        }
    }
    assert_eq!(seen.len(), 2, "the texts must exercise both tiers: {seen:?}");
    // A bare record: the linear model's start-up answer, never escalated.
    let bare = client
        .explain(request("", Some(telco_record())))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((bare.tier.as_str(), bare.label.as_str()), ("linear", "churn_score"));

    let (status, metrics) = gateway.admin_get("/metrics").await;
    assert_eq!(status, 200);
    for tier in ["linear", "encoder"] {
        let line = metrics
            .lines()
            .find(|l| {
                l.starts_with("switchyard_classifier_duration_seconds_count")
                    && l.contains(&format!("switchyard_classifier_tier=\"{tier}\""))
            })
            .unwrap_or_else(|| panic!("no classifier duration for tier {tier}:\n{metrics}"));
        let count: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(count >= 1.0, "{line}");
    }
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("switchyard_inference_batch_size_count") && l.contains("encoder")),
        "encoder runs are counted with their batch sizes"
    );
}

fn load(text: &str) -> String {
    let dir = TempDir::new();
    let path = write_config(&dir.0, text);
    switchyard::config::Config::load(&path)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default()
}

#[test]
fn a_cascade_that_cannot_work_is_refused_naming_the_key() {
    let good = cascade_config();
    assert_eq!(load(&good), "", "the test's cascade config is valid");
    let missing = good.replace("request-encoder/1.0.0/model.onnx", "request-encoder/9.9.9/model.onnx");
    assert!(load(&missing).contains("models.cascade.encoder"), "{}", load(&missing));
    let bad_bar = good.replace("min_margin = 0.5", "min_margin = 1.5");
    assert!(
        load(&bad_bar).contains("models.cascade.min_margin"),
        "{}",
        load(&bad_bar)
    );
    let unknown = good.replace(
        "out_of_scope_threshold = 0.4",
        "out_of_scope_threshold = 0.4\nthreshold = 0.3",
    );
    assert!(load(&unknown).contains("threshold"), "{}", load(&unknown));
    let bad_tier = good.replace("tier = \"encoder\"", "tier = \"bert\"");
    let dir = TempDir::new();
    let path = write_config(&dir.0, &bad_tier);
    let config = switchyard::config::Config::load(&path).unwrap();
    let error = switchyard::engine::Engine::check_policy(&config)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(error.contains("tier") && error.contains("bert"), "{error}");
}
