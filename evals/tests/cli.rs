//! `switchyard-evals` as CI runs it: the gates pass on the committed models, a violated gate fails the command
//! with a table naming it, and `models` writes a report whose numbers reproduce `metrics.json`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn evals(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_switchyard-evals"))
        .arg("--root")
        .arg(root())
        .args(args)
        .output()
        .unwrap()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("switchyard-evals-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_committed_models_pass_their_gates() {
    let out = evals(&["gate"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.contains("| reproduction.max_difference |") && stdout.contains("gates pass"),
        "{stdout}"
    );
}

#[test]
fn a_violated_gate_fails_the_command_and_is_named() {
    let dir = temp_dir("gates");
    let gates = dir.join("gates.toml");
    std::fs::write(&gates, "[scorer]\nmin_roc_auc = 0.99\nmax_brier = 0.5\n").unwrap();
    let out = evals(&["gate", "--gates", gates.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("| scorer.min_roc_auc | 0.880"), "{stdout}");
    assert!(
        stdout.contains("FAIL") && stdout.contains("failed: scorer.min_roc_auc"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("failed: scorer.max_brier"),
        "only the violated gate fails: {stdout}"
    );

    // A gate on something nothing measures is refused (exit 2), not passed.
    std::fs::write(&gates, "[scorer]\nmin_rocauc = 0.5\n").unwrap();
    let out = evals(&["gate", "--gates", gates.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing measures scorer.rocauc"));
}

#[test]
fn the_models_report_reproduces_metrics_json_and_records_its_provenance() {
    let dir = temp_dir("report");
    let out = evals(&["models", "--out", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("models.json")).unwrap()).unwrap();
    let reproduced = json["report"]["reproduction"].as_array().unwrap();
    assert!(reproduced.len() >= 18, "{reproduced:?}");
    for row in reproduced {
        let (ours, recorded) = (row["ours"].as_f64().unwrap(), row["recorded"].as_f64().unwrap());
        assert!((ours - recorded).abs() <= 1e-4, "{row}");
    }
    let provenance = &json["provenance"];
    for key in [
        "classifier",
        "scorer",
        "dataset clinc150-val",
        "dataset telco-test",
        "commit",
        "date",
    ] {
        assert!(
            provenance[key].as_str().is_some_and(|v| !v.is_empty()),
            "{key} in {provenance}"
        );
    }
    let markdown = std::fs::read_to_string(dir.join("models.md")).unwrap();
    assert!(
        markdown.contains("| oos-train | paper: BERT | 96.9 | 40.3 |"),
        "{markdown}"
    );
}

#[test]
fn whatif_on_policies_differing_by_one_rule_reports_exactly_the_requests_that_rule_moves() {
    let dir = temp_dir("whatif");
    let out = evals(&[
        "whatif",
        "--baseline",
        "deploy/config/policy.toml",
        "--candidate",
        "evals/whatif/refuse-out-of-scope.toml",
        "--input-price",
        "1.0",
        "--output-price",
        "2.0",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("whatif.json")).unwrap()).unwrap();
    let decided_by_rule = |policy: &str| json[policy]["rule_mix"]["out-of-scope"].as_u64().unwrap();
    let changed = json["changed"].as_array().unwrap();
    // The edited rule decides the same requests in both; every one of them, and nothing else, changes route.
    assert!(decided_by_rule("baseline") > 0);
    assert_eq!(decided_by_rule("baseline"), decided_by_rule("candidate"));
    assert_eq!(changed.len() as u64, decided_by_rule("baseline"));
    for request in changed {
        assert_eq!(request["baseline"]["rule"], "out-of-scope", "{request}");
        assert_eq!(
            (
                request["baseline"]["target"].as_str(),
                request["candidate"]["target"].as_str()
            ),
            (Some("assistant"), Some("refuse"))
        );
        assert_eq!(request["label"], "oos");
    }
    assert_eq!(
        json["transitions"].as_object().unwrap().len(),
        1,
        "{}",
        json["transitions"]
    );
    // A refused question costs nothing: the candidate saves exactly the moved requests' LLM cost.
    let saved: f64 = changed.iter().map(|r| r["baseline"]["cost"].as_f64().unwrap()).sum();
    let (old, new) = (
        json["baseline"]["cost"].as_f64().unwrap(),
        json["candidate"]["cost"].as_f64().unwrap(),
    );
    assert!(
        saved > 0.0 && ((old - new) - saved).abs() < 1e-9,
        "{old} - {new} vs {saved}"
    );
    // The same policy on both sides changes nothing.
    let same = evals(&[
        "whatif",
        "--baseline",
        "deploy/config/policy.toml",
        "--candidate",
        "deploy/config/policy.toml",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(
        String::from_utf8_lossy(&same.stdout).starts_with("0 of "),
        "{}",
        String::from_utf8_lossy(&same.stdout)
    );
}
