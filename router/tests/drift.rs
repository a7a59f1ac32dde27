//! Drift monitoring in the built gateway: a drifting stream is logged (once per signal) and shown on the admin
//! port; a broken reference profile stops the start with its file and reason. (The statistics against scipy,
//! on replayed Telco and CLINC150 streams, are in `evals/tests/drift.rs`.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use support::{Gateway, TempDir, config, request, telco_record};

const FAST_DRIFT: &str = "\n[drift]\nmin_samples = 20\nevaluate_every = \"100ms\"\n";

#[tokio::test]
async fn a_drifting_stream_is_logged_once_per_signal_and_shown_on_the_admin_port() {
    let gateway = Gateway::start_logging(&(config("http://127.0.0.1:1/v1", "1s") + FAST_DRIFT)).await;
    let (status, body) = gateway.admin_get("/drift").await;
    assert_eq!(status, 200, "{body}");
    let before: serde_json::Value = serde_json::from_str(&body).unwrap();
    let scorer = |report: &serde_json::Value| {
        report["models"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["model"] == "churn-scorer")
            .cloned()
            .unwrap()
    };
    assert_eq!(scorer(&before)["samples"], 0);
    assert_eq!(scorer(&before)["judged"], false);

    // One customer, scored 30 times: every field sits in one bin, far from the training spread.
    let mut client = gateway.client().await;
    for _ in 0..30 {
        client.route(request("", Some(telco_record()))).await.unwrap();
    }
    let mut logs = String::new();
    for _ in 0..50 {
        logs = gateway.logs();
        if logs.contains("input drift detected") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let lines: Vec<&str> = logs.lines().filter(|l| l.contains("input drift detected")).collect();
    assert!(
        lines.iter().any(|l| l.contains("churn-scorer") && l.contains("tenure")),
        "{logs}"
    );
    // Later evaluations find the same drift and stay quiet.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let again = gateway.logs();
    let tenure = |text: &str| {
        text.lines()
            .filter(|l| l.contains("input drift detected") && l.contains("churn-scorer") && l.contains("\"tenure\""))
            .count()
    };
    assert_eq!(tenure(&again), 1, "{again}");

    let (_, body) = gateway.admin_get("/drift").await;
    let after = scorer(&serde_json::from_str(&body).unwrap());
    assert_eq!(after["samples"], 30);
    assert_eq!(after["judged"], true);
    let drifted: Vec<&str> = after["drifted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        drifted.contains(&"tenure") && drifted.contains(&"contract"),
        "{drifted:?}"
    );
    let tenure = after["signals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "tenure")
        .unwrap();
    let current: u64 = tenure["bins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["current"].as_u64().unwrap())
        .sum();
    assert_eq!(current, 30, "every request is in one tenure bin: {tenure}");
}

#[test]
fn a_broken_reference_profile_stops_the_start_with_its_file_and_reason() {
    let dir = TempDir::new();
    let models = support::repo().join("classical/models/churn-scorer/1.0.0");
    std::fs::copy(models.join("model.onnx"), dir.0.join("model.onnx")).unwrap();
    let mut profile: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(models.join("reference_profile.json")).unwrap()).unwrap();
    profile["signals"][0]["reference"] = serde_json::json!([1]);
    let broken = dir.0.join("reference_profile.json");
    std::fs::write(&broken, profile.to_string()).unwrap();
    let text = config("http://127.0.0.1:1/v1", "1s").replace(
        &models.join("model.onnx").display().to_string(),
        &dir.0.join("model.onnx").display().to_string(),
    );
    let stderr = support::serve_fails(&text);
    assert!(stderr.contains(&broken.display().to_string()), "{stderr}");
    assert!(stderr.contains("1 reference counts for 2 bins"), "{stderr}");
}
