//! The model repository: a new version is loaded, checked, warmed and swapped in while requests flow, and none
//! is lost; a bad version is refused and the running one stays; pinning rolls back (SIGHUP); a candidate version runs in
//! the serving one's shadow with its agreement counted. New versions are made as a retrain would publish them
//! (`tests/clients/model_version.py`: a copy with the version set in its metadata).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use support::{Gateway, TempDir, config, request, telco_record};

/// A model repository in a temporary directory with the shipped classifier and scorer.
struct Repository {
    dir: TempDir,
}

impl Repository {
    fn new() -> Self {
        let dir = TempDir::new();
        let models = support::repo().join("classical/models");
        for (entry, version) in [("request-classifier", "1.1.0"), ("churn-scorer", "1.0.0")] {
            let target = dir.0.join(entry).join(version);
            std::fs::create_dir_all(&target).unwrap();
            for file in std::fs::read_dir(models.join(entry).join(version)).unwrap() {
                let file = file.unwrap().path();
                std::fs::copy(&file, target.join(file.file_name().unwrap())).unwrap();
            }
        }
        Self { dir }
    }

    fn entry(&self, name: &str) -> PathBuf {
        self.dir.0.join(name)
    }

    /// Publishes `version` of `name`, made from `from` with its metadata's version set: written aside, then
    /// renamed into place (what a deployment that ships a directory does).
    fn publish(&self, name: &str, from: &str, version: &str) {
        let staging = self.entry(name).join(format!(".staging-{version}"));
        let python = support::python_env("SWITCHYARD_MLSERVER_PYTHON", "deploy/setup/requirements-mlserver.txt");
        let out = Command::new(python)
            .arg(support::repo().join("router/tests/clients/model_version.py"))
            .arg(self.entry(name).join(from))
            .arg(&staging)
            .arg(version)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        std::fs::rename(&staging, self.entry(name).join(version)).unwrap();
    }

    /// A gateway serving this repository (`settings` added under `[models]`).
    fn config(&self, settings: &str) -> String {
        let models = support::repo().join("classical/models");
        config("http://127.0.0.1:1/v1", "1s")
            .replace(
                &format!(
                    "classifier = \"{}\"",
                    models.join("request-classifier/1.1.0/model.onnx").display()
                ),
                &format!("classifier = \"{}\"", self.entry("request-classifier").display()),
            )
            .replace(
                &format!(
                    "scorer = \"{}\"",
                    models.join("churn-scorer/1.0.0/model.onnx").display()
                ),
                &format!("scorer = \"{}\"\n{settings}", self.entry("churn-scorer").display()),
            )
    }
}

async fn serving(gateway: &Gateway) -> serde_json::Value {
    let (status, body) = gateway.admin_get("/models").await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

async fn wait_for_scorer(gateway: &Gateway, version: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while serving(gateway).await["scorer"]["version"] != version {
        assert!(
            Instant::now() < deadline,
            "scorer {version} never served: {}",
            serving(gateway).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_version_swaps_in_under_load_and_no_request_is_lost() {
    let repository = Repository::new();
    let gateway = Gateway::start(&repository.config("")).await;
    assert_eq!(serving(&gateway).await["scorer"]["version"], "1.0.0");

    // Four callers in a loop, scoring a record and classifying a question, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let mut callers = Vec::new();
    for _ in 0..4 {
        let (mut client, stop) = (gateway.client().await, stop.clone());
        callers.push(tokio::spawn(async move {
            let (mut versions, mut failures) = (Vec::new(), Vec::new());
            while !stop.load(Ordering::SeqCst) {
                match client.route(request("", Some(telco_record()))).await {
                    Ok(answer) => versions.push(answer.into_inner().prediction.unwrap().version),
                    Err(status) => failures.push(status),
                }
                if let Err(status) = client.explain(request("what is my bank balance", None)).await {
                    failures.push(status);
                }
            }
            (versions, failures)
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    repository.publish("churn-scorer", "1.0.0", "1.0.1");
    wait_for_scorer(&gateway, "1.0.1").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);

    let mut all = Vec::new();
    for caller in callers {
        let (versions, failures) = caller.await.unwrap();
        assert!(failures.is_empty(), "lost requests: {failures:?}");
        assert_eq!(
            versions.last().map(String::as_str),
            Some("1.0.1"),
            "each caller ends on the new version"
        );
        all.extend(versions);
    }
    let old = all.iter().filter(|v| *v == "1.0.0").count();
    let new = all.iter().filter(|v| *v == "1.0.1").count();
    assert!(
        old > 0 && new > 0 && old + new == all.len(),
        "{old} old, {new} new of {}",
        all.len()
    );
    let (_, metrics) = gateway.admin_get("/metrics").await;
    assert!(
        metrics.contains("switchyard_model_reloads_total{result=\"applied\""),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("switchyard_model_info") && l.contains("switchyard_model_version=\"1.0.1\"")),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_version_is_refused_the_running_one_stays_and_pinning_rolls_back() {
    let repository = Repository::new();
    let gateway = Gateway::start(&repository.config("watch = false")).await;
    let mut client = gateway.client().await;

    // A new good version, picked up by an explicit reload (watching is off).
    repository.publish("churn-scorer", "1.0.0", "1.0.1");
    let (status, body) = gateway.admin_post("/models/reload").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("\"result\":\"applied\"") && body.contains("churn-scorer 1.0.1"),
        "{body}"
    );
    let (status, body) = gateway.admin_post("/models/reload").await;
    assert_eq!((status, body.as_str()), (200, "{\"result\":\"unchanged\"}"));

    // A version whose file is not a model, then one whose metadata names another version: both refused.
    let broken = repository.entry("churn-scorer").join("1.0.2");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(broken.join("model.onnx"), b"not a model").unwrap();
    let (status, body) = gateway.admin_post("/models/reload").await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body.contains("\"result\":\"rejected\"") && body.contains("1.0.2"),
        "{body}"
    );
    std::fs::remove_dir_all(&broken).unwrap();
    let mislabelled = repository.entry("churn-scorer").join("1.0.3");
    std::fs::create_dir_all(&mislabelled).unwrap();
    std::fs::copy(
        repository.entry("churn-scorer").join("1.0.0/model.onnx"),
        mislabelled.join("model.onnx"),
    )
    .unwrap();
    let (status, body) = gateway.admin_post("/models/reload").await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body.contains("the model's metadata says version 1.0.0, its directory 1.0.3"),
        "{body}"
    );
    // The running version still answers.
    assert_eq!(support::scored_version(&mut client).await, "1.0.1");

    // Rolling back: pin the old version in the config and send SIGHUP.
    let config = std::fs::read_to_string(gateway.config_path()).unwrap();
    std::fs::write(
        gateway.config_path(),
        config.replace("watch = false", "watch = false\nscorer_version = \"1.0.0\""),
    )
    .unwrap();
    gateway.hangup();
    wait_for_scorer(&gateway, "1.0.0").await;
    assert_eq!(support::scored_version(&mut client).await, "1.0.0");
    let (_, metrics) = gateway.admin_get("/metrics").await;
    assert!(
        metrics.contains("switchyard_model_reloads_total{result=\"rejected\""),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_version_is_judged_in_the_shadow_and_never_serves() {
    let repository = Repository::new();
    repository.publish("churn-scorer", "1.0.0", "1.0.1");
    let gateway = Gateway::start(&repository.config("scorer_version = \"1.0.0\"\nscorer_candidate = \"1.0.1\"")).await;
    let body = serving(&gateway).await;
    assert_eq!(body["scorer"]["version"], "1.0.0");
    assert_eq!(body["candidates"]["scorer"]["version"], "1.0.1");

    let mut client = gateway.client().await;
    for _ in 0..20 {
        let answer = client
            .route(request("", Some(telco_record())))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(answer.prediction.unwrap().version, "1.0.0");
    }
    let agreed = |metrics: &str| {
        metrics
            .lines()
            .find(|l| {
                l.starts_with("switchyard_model_candidate_comparisons_total")
                    && l.contains("switchyard_model_version=\"1.0.1\"")
                    && l.contains("outcome=\"agree\"")
            })
            .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, metrics) = gateway.admin_get("/metrics").await;
        if agreed(&metrics) == Some(20) {
            assert!(
                !metrics.contains("outcome=\"disagree\""),
                "the same model disagrees with itself: {metrics}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "20 comparisons never counted: {metrics}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
