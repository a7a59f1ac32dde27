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
