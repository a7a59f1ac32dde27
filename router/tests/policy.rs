//! The routing policy in a running gateway: hot reload under load (file changes, a Kubernetes ConfigMap volume's
//! update, and SIGHUP), shadows that never slow the primary, targets that fail open, and `Explain` /
//! `switchyard explain` showing every step.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sha2::{Digest, Sha256};
use support::otlp::named;
use support::{FakeLlm, Fault, Gateway, OtlpReceiver, config, request, sample, telco_record, with_policy};
use switchyard_proto::v1::RouteRequest;

/// A policy whose every answer names its version: requests go to a reject target whose message is `v{n}`.
fn versioned(n: usize) -> String {
    format!(
        "schema_version = 1\ndefault_target = \"answer\"\n\n[targets.answer]\nkind = \"reject\"\nmessage = \"v{n}\"\n"
    )
}

/// Broken versions, each wrong in a different way (syntax, reference, range, unknown key).
fn broken(n: usize) -> String {
    match (n / 2) % 4 {
        0 => format!("{}\n[[rules]\nname = \"oops\"\n", versioned(n)),
        1 => versioned(n).replace("default_target = \"answer\"", "default_target = \"missing\""),
        2 => format!("{}\n[abstain]\nbelow = 1.5\ntarget = \"answer\"\n", versioned(n)),
        _ => versioned(n).replace("kind = \"reject\"", "kind = \"reject\"\ncolour = \"red\""),
    }
}

/// The version a policy text gets (the first 6 bytes of its SHA-256, in hex).
fn version_of(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Replaces the policy file atomically (write, then rename), as deployment tools do.
fn replace_file(path: &std::path::Path, text: &str) {
    let staging = path.with_extension("toml.new");
    std::fs::write(&staging, text).unwrap();
    std::fs::rename(&staging, path).unwrap();
}

/// Publishes `text` as a ConfigMap volume's `policy.toml` the way the kubelet's atomic writer does: the file is
/// a symlink through `..data`, which is swapped (rename over) to a new timestamped directory; the old one goes.
fn kubelet_publish(volume: &std::path::Path, text: &str, n: usize) {
    let generation = format!("..2026_11_29_00_00_{n:02}.000000001");
    std::fs::create_dir(volume.join(&generation)).unwrap();
    std::fs::write(volume.join(&generation).join("policy.toml"), text).unwrap();
    let previous = std::fs::read_link(volume.join("..data")).ok();
    std::os::unix::fs::symlink(&generation, volume.join("..data_tmp")).unwrap();
    std::fs::rename(volume.join("..data_tmp"), volume.join("..data")).unwrap();
    if !volume.join("policy.toml").exists() {
        std::os::unix::fs::symlink("..data/policy.toml", volume.join("policy.toml")).unwrap();
    }
    if let Some(previous) = previous {
        std::fs::remove_dir_all(volume.join(previous)).unwrap();
    }
}

#[tokio::test]
async fn a_kubernetes_configmap_update_is_reloaded_without_a_restart() {
    let fake = FakeLlm::start(vec![Fault::Ok]).await;
    let volume = support::TempDir::new();
    kubelet_publish(&volume.0, &versioned(1), 1);
    let path = volume.0.join("policy.toml");
    let text = config(&fake.base_url(), "2s").replace(
        "[policy]\nfile = \"policy.toml\"",
        &format!("[policy]\nfile = \"{}\"", path.display()),
    );
    let gateway = Gateway::start(&text).await;
    let client = gateway.client().await;
    let served = || {
        let mut client = client.clone();
        async move {
            let response = client.route(request("hi", None)).await.unwrap().into_inner();
            response.decision.unwrap().policy_version
        }
    };
    assert_eq!(served().await, version_of(&versioned(1)));
    // Two updates in a row: the watch must survive the first swap of `..data`.
    for n in [2, 3] {
        kubelet_publish(&volume.0, &versioned(n), n);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while served().await != version_of(&versioned(n)) {
            assert!(
                std::time::Instant::now() < deadline,
                "ConfigMap update {n} never took effect"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test]
async fn fifty_rewrites_under_load_lose_no_request_and_never_mix_or_apply_invalid_versions() {
    let fake = FakeLlm::start(vec![Fault::Ok]).await;
    let gateway = Gateway::start_logging(&with_policy(&config(&fake.base_url(), "3s"), &versioned(0))).await;
    let path = gateway.policy_path();
    let valid: BTreeMap<String, String> = (0..=50)
        .step_by(2)
        .map(|n| (version_of(&versioned(n)), format!("v{n}")))
        .collect();
    let invalid: BTreeSet<String> = (1..50).step_by(2).map(|n| version_of(&broken(n))).collect();

    // Four clients send requests without pause until the rewrites are done.
    let done = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (mut client, done) = (gateway.client().await, done.clone());
        clients.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            while !done.load(Ordering::SeqCst) {
                let response = client.route(request("hello there", None)).await;
                let response = response.expect("no request fails during reloads").into_inner();
                let version = response.decision.unwrap().policy_version;
                seen.push((version, response.rejection.unwrap().reason));
            }
            seen
        }));
    }
    for n in 1..=50 {
        tokio::time::sleep(Duration::from_millis(120)).await;
        replace_file(&path, &if n % 2 == 0 { versioned(n) } else { broken(n) });
    }
    // The last version (valid) takes effect.
    let mut client = gateway.client().await;
    let last = version_of(&versioned(50));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while client
        .route(request("hi", None))
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap()
        .policy_version
        != last
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the last version never took effect"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    done.store(true, Ordering::SeqCst);

    let mut answered = 0;
    let mut versions = BTreeSet::new();
    for client in clients {
        for (version, message) in client.await.unwrap() {
            answered += 1;
            assert!(!invalid.contains(&version), "an invalid version took effect: {version}");
            // Every answer is wholly of one valid version: its message is that version's.
            assert_eq!(
                valid.get(&version),
                Some(&message),
                "version {version} answered {message}"
            );
            versions.insert(version);
        }
    }
    assert!(answered > 100, "{answered} requests");
    assert!(
        versions.len() >= 5,
        "reloads happened under load: {} versions seen",
        versions.len()
    );

    let (_, metrics) = gateway.admin_get("/metrics").await;
    let rejected = sample(&metrics, "switchyard_policy_reloads_total", &["result=\"rejected\""]);
    let applied = sample(&metrics, "switchyard_policy_reloads_total", &["result=\"applied\""]);
    assert!(
        rejected >= 5.0 && applied >= 5.0,
        "rejected {rejected}, applied {applied}"
    );
    let info = format!("switchyard_policy_version=\"{last}\"");
    assert_eq!(sample(&metrics, "switchyard_policy_info", &[info.as_str()]), 1.0);
    // A refused reload is logged with the file, the line, the key and the reason.
    let logs = gateway.logs();
    let refused: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["message"] == "policy reload refused; the running policy stays")
        .collect();
    assert!(!refused.is_empty(), "{logs}");
    assert!(
        refused.iter().any(|l| l["key"] == "default_target"
            && l["line"] == 2
            && l["file"].as_str().unwrap().ends_with("policy.toml")),
        "{refused:#?}"
    );
    assert!(
        refused
            .iter()
            .any(|l| l["key"] == "abstain.below" && l["reason"].as_str().unwrap().contains("1.5"))
    );
    // The access log names the version of every decision.
    assert!(
        logs.lines()
            .any(|l| l.contains("\"policy_version\"") && l.contains("switchyard::access"))
    );
}

#[tokio::test]
async fn sighup_reloads_when_the_file_is_not_watched() {
    let fake = FakeLlm::start(vec![Fault::Ok]).await;
    let text = with_policy(&config(&fake.base_url(), "3s"), &versioned(1))
        .replace("file = \"policy.toml\"", "file = \"policy.toml\"\nwatch = false");
    let gateway = Gateway::start(&text).await;
    let mut client = gateway.client().await;
    let version = |response: switchyard_proto::v1::RouteResponse| response.decision.unwrap().policy_version;
    replace_file(&gateway.policy_path(), &versioned(2));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = version(client.route(request("hi", None)).await.unwrap().into_inner());
    assert_eq!(
        before,
        version_of(&versioned(1)),
        "not watched: the change waits for SIGHUP"
    );
    gateway.hangup();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let now = version(client.route(request("hi", None)).await.unwrap().into_inner());
        if now == version_of(&versioned(2)) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "SIGHUP did not reload");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A policy that mirrors every plain question to a slow second backend.
const SHADOWED: &str = r#"schema_version = 1
default_target = "assistant"

[targets.assistant]
kind = "llm"
backend = "local"
max_tokens = 24

[targets.assistant-next]
kind = "llm"
backend = "slow"
max_tokens = 24

[[rules]]
name = "questions"
has_record = false
target = "assistant"
shadow = { target = "assistant-next", percent = 100 }
"#;

#[tokio::test]
async fn a_slow_shadow_never_delays_the_answer_and_its_result_shows_in_metrics_and_traces() {
    let primary = FakeLlm::start(vec![Fault::Ok]).await;
    let slow = FakeLlm::start(vec![Fault::Delay(Duration::from_secs(1))]).await;
    let receiver = OtlpReceiver::grpc().await;
    let text = format!(
        "{}\n[backends.slow]\nbase_url = \"{}\"\nmodel = \"smollm2\"\n",
        with_policy(&config(&primary.base_url(), "5s"), SHADOWED),
        slow.base_url()
    );
    let gateway = Gateway::start_traced(&text, &receiver.endpoint(), "").await;
    let mut client = gateway.client().await;
    let shadow_done = |metrics: &str| sample(metrics, "switchyard_shadow_requests_total", &["outcome=\"ok\""]);

    let response = client
        .route(request("what is the capital of france?", None))
        .await
        .unwrap()
        .into_inner();
    // The answer is back while the shadow's backend is still holding its request (it answers after 1 s).
    let (_, metrics) = gateway.admin_get("/metrics").await;
    assert_eq!(response.generation.unwrap().text, "fake answer");
    assert_eq!(shadow_done(&metrics), 0.0, "the answer did not wait for the shadow");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while slow.count() == 0 {
        assert!(std::time::Instant::now() < deadline, "the shadow was never sent");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(primary.count(), 1, "the primary backend got the request once");

    // Then the shadow finishes and is recorded: outcome, agreement, latency.
    let metrics = loop {
        let (_, metrics) = gateway.admin_get("/metrics").await;
        if shadow_done(&metrics) == 1.0 {
            break metrics;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the shadow never finished:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let labels = [
        "switchyard_rule=\"questions\"",
        "switchyard_shadow_target=\"assistant-next\"",
    ];
    assert_eq!(
        sample(
            &metrics,
            "switchyard_shadow_agreement_total",
            &[&labels[..], &["agree=\"true\""]].concat()
        ),
        1.0
    );
    assert_eq!(
        sample(&metrics, "switchyard_shadow_duration_seconds_count", &labels),
        1.0
    );
    assert!(
        sample(&metrics, "switchyard_shadow_duration_seconds_sum", &labels) >= 1.0,
        "it took the backend's second"
    );

    // In the request's trace: a shadow span under the SERVER span, ending after it.
    let spans = loop {
        let spans = receiver.all();
        if spans.iter().any(|s| s.span.name == "shadow") {
            break spans;
        }
        assert!(std::time::Instant::now() < deadline, "no shadow span exported");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let shadow = spans.iter().find(|s| s.span.name == "shadow").unwrap();
    let trace: Vec<_> = spans
        .iter()
        .filter(|s| s.trace_id() == shadow.trace_id())
        .cloned()
        .collect();
    let server = named(&trace, "switchyard.v1.Router/Route");
    assert_eq!(shadow.parent_id(), server.span_id());
    assert_eq!(
        shadow.str("switchyard.shadow.target").as_deref(),
        Some("assistant-next")
    );
    assert_eq!(
        shadow.attr("switchyard.shadow.agree"),
        Some(opentelemetry_proto::tonic::common::v1::any_value::Value::BoolValue(
            true
        ))
    );
    assert!(shadow.span.end_time_unix_nano > server.span.end_time_unix_nano);
}

#[tokio::test]
async fn an_llm_target_can_fail_open_to_a_refusal() {
    let fake = FakeLlm::start(vec![Fault::Status(503, None)]).await;
    let text = support::with_backend_settings(&config(&fake.base_url(), "3s"), "max_attempts = 1").replace(
        "[targets.assistant]\n",
        "[targets.assistant]\non_unavailable = \"reject\"\nunavailable_message = \"The assistant is busy; try again shortly.\"\n",
    );
    let gateway = Gateway::start(&text).await;
    let mut client = gateway.client().await;
    let response = client
        .route(request("tell me a joke", None))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        response.rejection.unwrap().reason,
        "The assistant is busy; try again shortly."
    );
    assert!(
        response.degraded && response.degraded_reason.contains("503"),
        "{}",
        response.degraded_reason
    );
    assert!(response.generation.is_none());
    let events = support::stream_events(&mut client, request("tell me a joke", None)).await;
    assert!(
        events
            .iter()
            .any(|e| matches!(e, switchyard_proto::v1::route_event::Event::Rejection(_))),
        "{events:?}"
    );
}

/// A policy with a canary split and a shadow on records, for `Explain`.
const CANARY: &str = r#"schema_version = 1
default_target = "assistant"

[abstain]
below = 0.3
target = "assistant"

[targets.churn]
kind = "classical"

[targets.assistant]
kind = "llm"
backend = "local"

[targets.assistant-canary]
kind = "llm"
backend = "local"
temperature = 0.0

[targets.retention]
kind = "hybrid"
backend = "local"

[[rules]]
name = "explain-record"
groups = ["customer_record"]
has_record = true
target = "retention"
shadow = { target = "churn", percent = 25 }

[[rules]]
name = "canary"
has_record = false
split = [{ target = "assistant", weight = 90 }, { target = "assistant-canary", weight = 10 }]
sticky_by = "tenant"
"#;

#[tokio::test]
async fn explain_shows_every_rule_the_split_and_the_shadow_draw() {
    let fake = FakeLlm::start(vec![Fault::Ok]).await;
    let gateway = Gateway::start(&with_policy(&config(&fake.base_url(), "3s"), CANARY)).await;
    let mut client = gateway.client().await;

    let hybrid = client
        .explain(request("why is this customer likely to leave?", Some(telco_record())))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(hybrid.target, "retention");
    assert_eq!(hybrid.rule, "explain-record");
    let steps: Vec<(&str, bool)> = hybrid
        .evaluations
        .iter()
        .map(|e| (e.rule.as_str(), e.matched))
        .collect();
    assert_eq!(steps, vec![("abstain", false), ("explain-record", true)]);
    let shadow = hybrid.shadow.unwrap();
    assert_eq!((shadow.target.as_str(), shadow.percent), ("churn", 25));
    assert_eq!(shadow.mirrored, shadow.bucket < 2500);
    assert!(hybrid.margin > 0.0 && hybrid.margin <= hybrid.confidence);
    assert_eq!(fake.count(), 0, "Explain dispatches nothing");

    // The canary: the same tenant always draws the same arm; over many tenants, about one in ten is the canary.
    let mut canary = 0;
    for i in 0..200 {
        let message = RouteRequest {
            tenant: format!("tenant-{i}"),
            ..request("what is my checking account balance", None)
        };
        let first = client.explain(message.clone()).await.unwrap().into_inner();
        let again = client.explain(message).await.unwrap().into_inner();
        assert_eq!(first.target, again.target, "sticky by tenant");
        let split = first.split.unwrap();
        assert_eq!(split.sticky_by, "tenant");
        assert_eq!(split.chosen, first.target);
        assert_eq!(split.arms.len(), 2);
        assert_eq!(first.evaluations.iter().filter(|e| e.matched).count(), 1);
        canary += usize::from(first.target == "assistant-canary");
    }
    assert!((5..=45).contains(&canary), "{canary} of 200 tenants on the canary");

    // The CLI prints the same, for people.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args([
            "explain",
            "--addr",
            &gateway.url(),
            "--text",
            "what is my checking account balance",
        ])
        .args(["--tenant", "tenant-7"])
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for needle in [
        "MATCH canary",
        "split: by tenant bucket",
        "policy ",
        "target: assistant",
        "abstain",
    ] {
        assert!(printed.contains(needle), "want {needle:?} in:\n{printed}");
    }
}
