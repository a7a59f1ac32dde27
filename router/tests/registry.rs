//! The MLflow registry to the gateway: a model version logged as a run and registered
//! (`classical/training/registry.py log`), given the `champion` alias, exported by alias into a model repository
//! (`registry.py export`), and served: the gateway names the run it serves. The variants of
//! `classical/training/experiments/variants.json` log as comparable runs. A local SQLite store, no server.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::process::Command;

use support::{Gateway, TempDir, config};

/// `registry.py` with `args` in the training environment, against the store in `store`.
fn registry_command(store: &TempDir, args: &[&str]) -> std::process::Output {
    let python = support::python_env("SWITCHYARD_TRAINING_PYTHON", "classical/training/requirements.txt");
    Command::new(python)
        .arg("registry.py")
        .args(args)
        .current_dir(support::repo().join("classical/training"))
        .env(
            "MLFLOW_TRACKING_URI",
            format!("sqlite:///{}", store.0.join("mlflow.db").display()),
        )
        .env("SWITCHYARD_CACHE", &store.0)
        .output()
        .unwrap()
}

/// Runs `registry.py` (which must succeed) and returns what it printed.
fn registry(store: &TempDir, args: &[&str]) -> String {
    let out = registry_command(store, args);
    assert!(
        out.status.success(),
        "registry.py {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_champion_exported_from_the_registry_serves_and_names_its_run() {
    let store = TempDir::new();
    let logged: serde_json::Value = serde_json::from_str(&registry(
        &store,
        &["log", "../models/churn-scorer/1.0.0", "--alias", "champion"],
    ))
    .unwrap();
    let run_id = logged["run_id"].as_str().unwrap().to_owned();
    assert_eq!(logged["model_version"], "1.0.0");

    let repository = TempDir::new();
    let exported = registry(
        &store,
        &[
            "export",
            "churn-scorer@champion",
            "--repository",
            repository.0.to_str().unwrap(),
        ],
    );
    let version_dir = repository.0.join("churn-scorer/1.0.0");
    assert_eq!(exported.trim(), version_dir.display().to_string());
    assert!(version_dir.join("model.onnx").is_file() && version_dir.join("MODEL_CARD.md").is_file());
    // A version directory is never overwritten.
    let repository_path = repository.0.to_str().unwrap();
    let again = registry_command(
        &store,
        &["export", "churn-scorer@champion", "--repository", repository_path],
    );
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("is never overwritten"));

    let models = support::repo().join("classical/models");
    let text = config("http://127.0.0.1:1/v1", "1s").replace(
        &format!(
            "scorer = \"{}\"",
            models.join("churn-scorer/1.0.0/model.onnx").display()
        ),
        &format!("scorer = \"{}\"", repository.0.join("churn-scorer").display()),
    );
    let gateway = Gateway::start(&text).await;
    let (_, body) = gateway.admin_get("/models").await;
    let serving: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(serving["scorer"]["version"], "1.0.0");
    assert_eq!(serving["scorer"]["mlflow"]["run_id"], run_id.as_str(), "{serving}");
    assert_eq!(serving["scorer"]["mlflow"]["alias"], "champion");
    assert_eq!(serving["scorer"]["mlflow"]["registered_model"], "churn-scorer");
    let (_, metrics) = gateway.admin_get("/metrics").await;
    assert!(
        metrics.lines().any(|l| l.starts_with("switchyard_model_info")
            && l.contains(&format!("switchyard_model_mlflow_run_id=\"{run_id}\""))),
        "{metrics}"
    );
    let mut client = gateway.client().await;
    assert_eq!(support::scored_version(&mut client).await, "1.0.0");

    // The variants tried so far become runs, one per row of variants.json.
    let runs: Vec<String> = serde_json::from_str(&registry(&store, &["experiments"])).unwrap();
    let variants: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(support::repo().join("classical/training/experiments/variants.json")).unwrap(),
    )
    .unwrap();
    let rows: usize = variants["experiments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["runs"].as_array().unwrap().len())
        .sum();
    assert_eq!(runs.len(), rows);
}
