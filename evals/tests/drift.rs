//! Drift monitoring through a running gateway (in-process, the real models and default policy): live streams
//! replayed over gRPC, the admin port's `/drift` table and the Prometheus gauges checked against the training
//! environment's own computation on the same streams (`drift_fixtures.json` beside each model: counts, and
//! scipy's Jensen-Shannon distance and PSI).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use classical::schema::FeatureValue;
use serde_json::Value;
use support::{free_port, root};
use switchyard::config::Config;
use switchyard::metrics::Metrics;
use switchyard_evals::datasets::Datasets;
use switchyard_evals::e2e::features;
use switchyard_proto::v1 as pb;
use switchyard_proto::v1::router_client::RouterClient;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;

type Record = BTreeMap<String, FeatureValue>;

/// A gateway with the default config and models, judging from 100 requests and evaluating every 100 ms.
struct Gateway {
    grpc: String,
    admin: String,
    metrics: Arc<Metrics>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Gateway {
    async fn start(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("switchyard-evals-drift-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (grpc, admin) = (free_port(), free_port());
        let text = std::fs::read_to_string(root().join("deploy/config/switchyard.toml"))
            .unwrap()
            .replace("127.0.0.1:50051", &format!("127.0.0.1:{grpc}"))
            .replace("127.0.0.1:9464", &format!("127.0.0.1:{admin}"))
            .replace("\"../../classical/", &format!("\"{}/classical/", root().display()))
            .replace("min_samples = 500", "min_samples = 100")
            .replace("evaluate_every = \"30s\"", "evaluate_every = \"100ms\"");
        assert!(text.contains("min_samples = 100") && text.contains("evaluate_every = \"100ms\""));
        std::fs::copy(root().join("deploy/config/policy.toml"), dir.join("policy.toml")).unwrap();
        std::fs::write(dir.join("switchyard.toml"), text).unwrap();
        let config = Config::load(&dir.join("switchyard.toml")).unwrap();
        let metrics = Arc::new(Metrics::standalone().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(switchyard::server::serve_with(config, metrics.clone(), async {
            let _ = stopped.await;
        }));
        let gateway = Self {
            grpc: format!("http://127.0.0.1:{grpc}"),
            admin: format!("127.0.0.1:{admin}"),
            metrics,
            stop: Some(stop),
        };
        // The models load after the ports open.
        for _ in 0..300 {
            if gateway.get("/readyz").await.is_some_and(|(status, _)| status == 200) {
                return gateway;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the gateway never became ready");
    }

    /// An HTTP/1.1 GET on the admin port: status and body.
    async fn get(&self, path: &str) -> Option<(u16, String)> {
        let mut stream = tokio::net::TcpStream::connect(&self.admin).await.ok()?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n\r\n",
            self.admin
        );
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await.ok()?;
        let status = response.split(' ').nth(1)?.parse().ok()?;
        let body = response.split_once("\r\n\r\n")?.1.to_owned();
        Some((status, body))
    }

    async fn drift(&self) -> Value {
        let (status, body) = self.get("/drift").await.unwrap();
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    /// Sends every request (text, record; `route` scores, else `explain`), eight at a time; each must succeed.
    async fn replay(&self, requests: Vec<(String, Option<Record>)>, route: bool) {
        let client = RouterClient::connect(self.grpc.clone()).await.unwrap();
        let slots = Arc::new(Semaphore::new(8));
        let mut calls = Vec::new();
        for (text, record) in requests {
            let (mut client, slots) = (client.clone(), slots.clone());
            calls.push(tokio::spawn(async move {
                let _slot = slots.acquire_owned().await;
                let request = pb::RouteRequest {
                    text,
                    features: record.as_ref().map(features),
                    ..Default::default()
                };
                if route {
                    client.route(request).await.map(|_| ())
                } else {
                    client.explain(request).await.map(|_| ())
                }
            }));
        }
        for call in calls {
            call.await.unwrap().unwrap();
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn fixtures(model_dir: &str) -> Value {
    let path = root()
        .join("classical/models")
        .join(model_dir)
        .join("drift_fixtures.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn fixture_stream<'a>(fixtures: &'a Value, name: &str) -> &'a Value {
    fixtures["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stream"] == name)
        .unwrap_or_else(|| panic!("no fixture stream {name:?}"))
}

/// A list of signal names, sorted.
fn names(value: &Value) -> Vec<String> {
    let mut names: Vec<String> = value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

/// The gateway's table for `model` against the fixture stream: the same counts in every bin, the same
/// distances as scipy's (to 1e-9), the same drifted signals, and those are `expected`.
fn check(report: &Value, model: &str, stream: &Value, expected: &[&str]) {
    let entry = report["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["model"] == model)
        .unwrap_or_else(|| panic!("{model} is not watched: {report}"));
    assert_eq!(entry["judged"], true, "{model}: {entry}");
    assert_eq!(names(&stream["drifted"]), expected, "the fixture's verdict for {model}");
    assert_eq!(names(&entry["drifted"]), expected, "the gateway's verdict for {model}");
    let signals = stream["signals"].as_object().unwrap();
    assert_eq!(entry["signals"].as_array().unwrap().len(), signals.len());
    for signal in entry["signals"].as_array().unwrap() {
        let name = signal["name"].as_str().unwrap();
        let want = &signals[name];
        let counts: Vec<u64> = signal["bins"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["current"].as_u64().unwrap())
            .collect();
        let want_counts: Vec<u64> = want["counts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_u64().unwrap())
            .collect();
        assert_eq!(counts, want_counts, "{model} {name}: counts");
        for statistic in ["js_distance", "psi"] {
            let (got, scipy) = (signal[statistic].as_f64().unwrap(), want[statistic].as_f64().unwrap());
            assert!(
                (got - scipy).abs() < 1e-9,
                "{model} {name} {statistic}: {got} against scipy's {scipy}"
            );
        }
        assert_eq!(signal["drifted"], want["drifted"], "{model} {name}");
    }
}

fn telco(datasets: &Datasets) -> Vec<Record> {
    let runtime = classical::OnnxRuntime::from_env().unwrap();
    let scorer =
        classical::ChurnScorer::load(&runtime, &root().join("classical/models/churn-scorer/1.0.0/model.onnx")).unwrap();
    datasets
        .telco_test(&scorer.info().schema)
        .unwrap()
        .into_iter()
        .map(|r| r.record)
        .collect()
}

/// The classifier's reference requests, as training profiled them: CLINC150 validation without a record, then
/// the record phrasings with one.
fn reference_requests(datasets: &Datasets, record: &Record) -> Vec<(String, Option<Record>)> {
    let mut requests: Vec<(String, Option<Record>)> = datasets
        .clinc150_val()
        .unwrap()
        .into_iter()
        .map(|t| (t.text, None))
        .collect();
    requests.extend(
        datasets
            .record_phrasings()
            .unwrap()
            .into_iter()
            .map(|p| (p.text, Some(record.clone()))),
    );
    requests
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_streams_replayed_are_not_flagged() {
    let datasets = Datasets::open(&root()).unwrap();
    let records = telco(&datasets);
    let gateway = Gateway::start("reference").await;

    // The classifier's own reference requests, through Explain (classified, not scored).
    gateway.replay(reference_requests(&datasets, &records[0]), false).await;
    let report = gateway.drift().await;
    let classifier = fixtures("request-classifier/1.1.0");
    check(
        &report,
        "request-classifier",
        fixture_stream(&classifier, "reference requests"),
        &[],
    );
    let scorer = &report["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["model"] == "churn-scorer")
        .unwrap();
    assert_eq!(scorer["samples"], 0, "explained requests are not scored");

    // The Telco test split, scored (a bare record routes to the scorer).
    gateway
        .replay(records.into_iter().map(|r| (String::new(), Some(r))).collect(), true)
        .await;
    let scorer = fixtures("churn-scorer/1.0.0");
    check(
        &gateway.drift().await,
        "churn-scorer",
        fixture_stream(&scorer, "test.csv"),
        &[],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shifted_streams_are_flagged_on_their_signals_and_only_those() {
    let datasets = Datasets::open(&root()).unwrap();
    let gateway = Gateway::start("shifted").await;

    // Only banking questions: the label mix moves, the confidence does not.
    let domains: BTreeMap<String, Vec<String>> =
        serde_json::from_str(&std::fs::read_to_string(root().join("classical/data/clinc150/domains.json")).unwrap())
            .unwrap();
    let banking = &domains["banking"];
    let texts: Vec<(String, Option<Record>)> = datasets
        .clinc150_val()
        .unwrap()
        .into_iter()
        .filter(|t| banking.contains(&t.label))
        .map(|t| (t.text, None))
        .collect();
    gateway.replay(texts, false).await;
    let classifier = fixtures("request-classifier/1.1.0");
    check(
        &gateway.drift().await,
        "request-classifier",
        fixture_stream(&classifier, "CLINC150 val, banking domain only"),
        &["label_group"],
    );

    // The test split with every contract month-to-month and tenure 0-6 months: those two fields and the
    // prediction drift; the other 17 fields, unchanged, do not.
    let shifted: Vec<(String, Option<Record>)> = telco(&datasets)
        .into_iter()
        .enumerate()
        .map(|(i, mut record)| {
            record.insert("contract".into(), FeatureValue::Text("Month-to-month".into()));
            record.insert("tenure".into(), FeatureValue::Number((i % 7) as f64));
            (String::new(), Some(record))
        })
        .collect();
    gateway.replay(shifted, true).await;
    let scorer = fixtures("churn-scorer/1.0.0");
    let stream = fixture_stream(
        &scorer,
        "test.csv with contract = Month-to-month and tenure = row index mod 7 (0-6 months)",
    );
    check(
        &gateway.drift().await,
        "churn-scorer",
        stream,
        &["contract", "prediction", "tenure"],
    );

    // The gauges follow once the timer has evaluated: 1 for the drifted signals, 0 for the others.
    let mut text = String::new();
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        text = gateway.metrics.encode().unwrap();
        if text.contains("switchyard_signal=\"tenure\"") {
            break;
        }
    }
    let gauge = |signal: &str| {
        text.lines()
            .find(|l| {
                l.starts_with("switchyard_drift_drifted{")
                    && l.contains("switchyard_model=\"churn-scorer\"")
                    && l.contains(&format!("switchyard_signal=\"{signal}\""))
            })
            .and_then(|l| l.rsplit(' ').next())
            .map(str::to_owned)
    };
    assert_eq!(gauge("tenure").as_deref(), Some("1"), "{text}");
    assert_eq!(gauge("contract").as_deref(), Some("1"));
    assert_eq!(gauge("gender").as_deref(), Some("0"));
    assert!(text.contains("switchyard_drift_samples{"), "{text}");
}
