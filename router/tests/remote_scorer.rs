//! Remote scorers over the Open Inference Protocol: a classical or hybrid target scores on a model served
//! elsewhere. Against Switchyard's own v2 endpoint in a second process (the same model: the same numbers), and
//! against a real MLServer serving the scikit-learn churn pipeline (`tests/clients/mlserver_churn.py`, in the
//! pinned environment of `deploy/setup/requirements-mlserver.txt`): the same answer shape as in-process scoring,
//! scores within the ONNX export's recorded tolerance. Outages: UNAVAILABLE naming the scorer, then an open circuit.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{FakeLlm, Fault, Gateway, TempDir, config, free_port, request, telco_record, telco_records};
use switchyard_proto::inference::ModelReadyRequest;
use switchyard_proto::inference::grpc_inference_service_client::GrpcInferenceServiceClient;
use switchyard_proto::v1::Prediction;
use tonic_health::pb::health_check_response::ServingStatus;

/// `text` (a [`config`]) with its classical and hybrid targets scored by the remote scorer `scorer`, described by
/// `section` (the rest of `[scorers.<scorer>]`).
fn with_remote_scorer(text: &str, scorer: &str, section: &str) -> String {
    text.replace(
        "[targets.churn]\nkind = \"classical\"",
        &format!("[targets.churn]\nkind = \"classical\"\nscorer = \"{scorer}\""),
    )
    .replace(
        "[targets.retention]\nkind = \"hybrid\"",
        &format!("[targets.retention]\nkind = \"hybrid\"\nscorer = \"{scorer}\""),
    ) + &format!("\n[scorers.{scorer}]\n{section}\n")
}

const WHY: &str = "why is this customer likely to leave?";

/// Routes every record alone (scored) and with the hybrid question (scored and explained).
async fn predictions(gateway: &Gateway) -> Vec<(Prediction, Prediction)> {
    let mut client = gateway.client().await;
    let mut out = Vec::new();
    for record in telco_records() {
        let scored = client
            .route(request("", Some(record.clone())))
            .await
            .unwrap()
            .into_inner();
        let explained = client.route(request(WHY, Some(record))).await.unwrap().into_inner();
        assert_eq!(explained.decision.as_ref().unwrap().target, "retention");
        out.push((scored.prediction.unwrap(), explained.prediction.unwrap()));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switchyard_in_a_second_process_scores_exactly_like_the_in_process_model() {
    let llm = FakeLlm::start(vec![Fault::Ok]).await;
    let upstream = Gateway::start(&config(&llm.base_url(), "5s")).await;
    let section = format!(
        "url = \"http://{}\"\nmodel = \"churn-scorer\"\nbreaker_failures = 2\nbreaker_open_for = \"30s\"",
        upstream.addr()
    );
    let gateway = Gateway::start(&with_remote_scorer(
        &config(&llm.base_url(), "5s"),
        "upstream",
        &section,
    ))
    .await;

    let local = predictions(&upstream).await;
    let remote = predictions(&gateway).await;
    for ((local_scored, local_explained), (remote_scored, remote_explained)) in local.iter().zip(&remote) {
        assert_eq!(remote_scored, local_scored, "the same model, the same numbers");
        assert_eq!(remote_explained.score, local_explained.score);
        assert_eq!(remote_explained.label, local_explained.label);
        assert_eq!(remote_explained.top_features, local_explained.top_features);
        assert!(!remote_explained.top_features.is_empty());
    }
    assert_eq!(
        gateway.health("switchyard.backend.upstream").await,
        ServingStatus::Serving
    );

    // The upstream goes away: each call says which scorer failed, then the circuit opens and says when to retry.
    drop(upstream);
    let mut client = gateway.client().await;
    for _ in 0..2 {
        let status = client.route(request("", Some(telco_record()))).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
        assert!(
            status.message().contains("remote scorer upstream unavailable"),
            "{status:?}"
        );
    }
    let status = client.route(request("", Some(telco_record()))).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert!(status.message().contains("circuit open"), "{status:?}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while gateway.health("switchyard.backend.upstream").await != ServingStatus::NotServing {
        assert!(Instant::now() < deadline, "health never followed the open circuit");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Requests that need no scorer are untouched.
    let decision = client
        .explain(request("what is my bank balance", None))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(decision.target, "assistant");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_model_that_does_not_take_the_schema_stops_the_start() {
    let upstream = Gateway::start(&config("http://127.0.0.1:1/v1", "1s")).await;
    let section = format!("url = \"http://{}\"\nmodel = \"request-classifier\"", upstream.addr());
    let text = with_remote_scorer(&config("http://127.0.0.1:1/v1", "1s"), "upstream", &section);
    let stderr = support::serve_fails(&text);
    assert!(
        stderr.contains("remote scorer upstream") && stderr.contains("the model has no input \"gender\""),
        "{stderr}"
    );
}

/// A running MLServer; killed on drop.
struct MlServer {
    child: Child,
    grpc: u16,
    _dir: TempDir,
}

impl MlServer {
    async fn start() -> Self {
        let python = support::python_env("SWITCHYARD_MLSERVER_PYTHON", "deploy/setup/requirements-mlserver.txt");
        let dir = TempDir::new();
        let models = dir.0.join("models");
        let (http, grpc, metrics) = (free_port(), free_port(), free_port());
        let prepared = Command::new(&python)
            .arg(support::repo().join("router/tests/clients/mlserver_churn.py"))
            .arg(&models)
            .args([http, grpc, metrics].map(|p| p.to_string()))
            .env("OMP_NUM_THREADS", "1")
            .output()
            .unwrap();
        assert!(
            prepared.status.success(),
            "{}",
            String::from_utf8_lossy(&prepared.stderr)
        );
        let mlserver = std::path::Path::new(&python).with_file_name("mlserver");
        let child = Command::new(mlserver)
            .arg("start")
            .arg(&models)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let server = Self { child, grpc, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = match GrpcInferenceServiceClient::connect(format!("http://127.0.0.1:{grpc}")).await {
                Ok(mut client) => client
                    .model_ready(ModelReadyRequest {
                        name: "churn-sklearn".into(),
                        version: String::new(),
                    })
                    .await
                    .is_ok_and(|r| r.into_inner().ready),
                Err(_) => false,
            };
            if ready {
                return server;
            }
            assert!(Instant::now() < deadline, "MLServer did not become ready");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

impl Drop for MlServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mlserver_serving_the_scikit_learn_pipeline_gives_the_same_answers_within_the_export_tolerance() {
    let mlserver = MlServer::start().await;
    let llm = FakeLlm::start(vec![Fault::Ok]).await;
    let local = Gateway::start(&config(&llm.base_url(), "5s")).await;
    let section = format!(
        "url = \"http://127.0.0.1:{}\"\nmodel = \"churn-sklearn\"\noutput = \"predict_proba\"\ncolumn = 1\n\
         parameters = {{ content_type = \"pd\" }}",
        mlserver.grpc
    );
    let gateway = Gateway::start(&with_remote_scorer(
        &config(&llm.base_url(), "5s"),
        "mlserver",
        &section,
    ))
    .await;
    assert_eq!(
        gateway.health("switchyard.backend.mlserver").await,
        ServingStatus::Serving
    );

    // The ONNX graph and the scikit-learn pipeline it was exported from differ by at most this (metrics.json).
    let metrics: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(support::repo().join("classical/models/churn-scorer/1.0.0/metrics.json")).unwrap(),
    )
    .unwrap();
    let tolerance = metrics["onnx_vs_sklearn_max_abs_diff"].as_f64().unwrap() + 1e-6;
    for ((local_scored, local_explained), (remote_scored, remote_explained)) in
        predictions(&local).await.iter().zip(&predictions(&gateway).await)
    {
        let close = |a: f32, b: f32| f64::from((a - b).abs()) <= tolerance;
        assert!(
            close(remote_scored.score, local_scored.score),
            "{remote_scored:?} vs {local_scored:?}"
        );
        assert_eq!(remote_scored.threshold, local_scored.threshold);
        assert_eq!(
            (remote_scored.model.as_str(), remote_scored.version.as_str()),
            ("churn-scorer", "1.0.0")
        );
        // The same shape: a verdict, and the same fields attributed with close effects.
        assert!(!remote_explained.label.is_empty());
        assert_eq!(remote_explained.top_features.len(), local_explained.top_features.len());
        for remote in &remote_explained.top_features {
            let local = local_explained
                .top_features
                .iter()
                .find(|l| l.feature == remote.feature)
                .unwrap_or_else(|| panic!("{} attributed remotely only: {remote_explained:?}", remote.feature));
            assert!(
                f64::from((local.delta - remote.delta).abs()) <= 2.0 * tolerance,
                "{remote:?} vs {local:?}"
            );
        }
    }
}
