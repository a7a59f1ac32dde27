//! `e2e` against a gateway started in the test (in-process, the real models and default policy), with a fake
//! OpenAI-compatible backend whose answer is known, so every check's count can be predicted.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use support::{free_port, root};
use switchyard::config::Config;
use switchyard::metrics::Metrics;
use switchyard_evals::datasets::Datasets;
use switchyard_evals::e2e::{self, Options};
use switchyard_evals::requests::{request_set, spread};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What the fake backend always answers: a leave verdict naming the contract.
const ANSWER: &str = "This customer is likely to leave: the month-to-month contract weighs most.";

/// A backend answering every chat completion with [`ANSWER`].
async fn fake_backend() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 8192];
                loop {
                    let Ok(n) = socket.read(&mut chunk).await else { return };
                    if n == 0 {
                        return;
                    }
                    buffer.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buffer).to_string();
                    let Some(end) = text.find("\r\n\r\n") else { continue };
                    let length = text[..end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().to_owned())
                        })
                        .and_then(|v| v.parse::<usize>().ok())
                        .unwrap_or(0);
                    if buffer.len() >= end + 4 + length {
                        break;
                    }
                }
                let body = serde_json::json!({
                    "model": "fake",
                    "choices": [{"message": {"role": "assistant", "content": ANSWER}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 100, "completion_tokens": 14}
                })
                .to_string();
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(reply.as_bytes()).await;
            });
        }
    });
    url
}

/// The default config, pointed at `backend` and at free ports, in a temporary directory.
fn config(backend: &str, grpc: u16) -> Config {
    support::gateway_config("e2e", backend, grpc)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_through_a_running_gateway_counts_every_check() {
    let backend = fake_backend().await;
    let grpc = free_port();
    let metrics = Arc::new(Metrics::standalone().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(switchyard::server::serve_with(config(&backend, grpc), metrics, async {
        let _ = stopped.await;
    }));
    let addr = format!("127.0.0.1:{grpc}");

    let runtime = classical::OnnxRuntime::from_env().unwrap();
    let scorer =
        classical::ChurnScorer::load(&runtime, &root().join("classical/models/churn-scorer/1.0.0/model.onnx")).unwrap();
    let requests = spread(
        &request_set(&Datasets::open(&root()).unwrap(), &scorer.info().schema, 200).unwrap(),
        Some(60),
    );
    let options = Options {
        addr: addr.clone(),
        concurrency: 6,
        max_tokens: 64,
        timeout: Duration::from_secs(30),
        explanations: switchyard_evals::faithfulness::policy_explanations(&config(&backend, grpc)).unwrap(),
    };
    // The models load after the port opens: retry until the gateway answers.
    let mut outcomes = Vec::new();
    for _ in 0..100 {
        outcomes = e2e::run(&requests, &options, |_, _| {}).await.unwrap_or_default();
        if !outcomes.is_empty() && outcomes.iter().all(|o| o.status == "OK") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let report = e2e::summarise(&outcomes, &options);
    assert_eq!(report.requests, 60);
    assert_eq!(report.statuses.get("OK"), Some(&60), "{:?}", report.statuses);
    assert!(report.route_kind_accuracy >= 0.9, "{}", report.route_kind_accuracy);
    assert!(report.label_accuracy >= 0.8, "{}", report.label_accuracy);

    // Every LLM and hybrid answer is the fake's: non-empty, `stop`, 14 tokens (within 64).
    let generated = outcomes
        .iter()
        .filter(|o| o.kind == "llm" || o.kind == "hybrid")
        .count();
    assert!(generated > 0);
    assert_eq!(
        (
            report.answers,
            report.non_empty,
            report.finish_ok,
            report.within_ceiling
        ),
        (generated, generated, generated, generated)
    );
    // The fake always says "likely to leave" and names the contract: the gateway's check lets that through only
    // for a high score with the contract among its strongest fields; otherwise the (identical) retry fails too and
    // the caller gets the template. Either way no explanation a caller receives contradicts its score.
    let hybrid: Vec<_> = outcomes
        .iter()
        .filter(|o| o.kind == "hybrid")
        .filter_map(|o| o.answer.as_ref()?.faithfulness.as_ref())
        .collect();
    assert!(!hybrid.is_empty(), "the spread reaches explanation requests");
    assert_eq!(report.explanations, hybrid.len());
    assert_eq!(report.contradicts, 0);
    assert_eq!(report.names_top_field, hybrid.len());
    assert!(
        hybrid.iter().all(|f| f.source == "llm" || f.source == "template"),
        "{hybrid:?}"
    );
    assert!(
        hybrid.iter().any(|f| f.source == "template"),
        "a low score's answer is replaced: {hybrid:?}"
    );
    let targets: Vec<&str> = report.latency.iter().map(|t| t.target.as_str()).collect();
    assert!(
        targets.contains(&"churn") && targets.contains(&"assistant") && targets.contains(&"retention"),
        "{targets:?}"
    );
    assert!(
        report
            .latency
            .iter()
            .all(|t| t.p50_ms <= t.p99_ms && t.latencies_ms.len() == t.requests)
    );

    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(15), server).await;
}
