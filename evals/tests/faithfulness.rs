//! The `[faithfulness]` gates (evals/gates.toml) on the README's default stack: the real local LLM (SmolLM2 on
//! llama-server) behind a gateway started in the test with the default config and policy, 200 Telco test
//! customers on both sides of the threshold, questions presuming the opposite of the score or not, one in five
//! streamed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use support::{LlamaServer, free_port, gateway_config, root};
use switchyard::metrics::Metrics;
use switchyard_evals::datasets::Datasets;
use switchyard_evals::faithfulness::{self, Options};
use switchyard_evals::gates;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hybrid_explanations_through_the_default_stack_pass_the_faithfulness_gates() {
    let llama = LlamaServer::start(2);
    let grpc = free_port();
    let config = gateway_config("faithfulness", &llama.base_url(), grpc);
    let explanations = faithfulness::policy_explanations(&config).unwrap();
    let metrics = Arc::new(Metrics::standalone().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(switchyard::server::serve_with(config, metrics, async {
        let _ = stopped.await;
    }));

    let runtime = classical::OnnxRuntime::from_env().unwrap();
    let mut scorer =
        classical::ChurnScorer::load(&runtime, &root().join("classical/models/churn-scorer/1.0.0/model.onnx")).unwrap();
    let test = Datasets::open(&root())
        .unwrap()
        .telco_test(&scorer.info().schema)
        .unwrap();
    let records: Vec<_> = test.into_iter().map(|r| r.record).collect();
    let scores: Vec<f32> = records.iter().map(|r| scorer.score(r).unwrap().probability).collect();
    let threshold = scorer.info().decision_threshold;
    let cases = faithfulness::cases(&records, &scores, (threshold, explanations.elevated_from), 200, 5);
    // The set is what the gates assume: half the questions presume the opposite of the score, one in five streams.
    // (Counted on the cases sent: whether each was answered is the gates' to judge, below.)
    assert_eq!(cases.len(), 200);
    assert_eq!(cases.iter().filter(|c| c.presumes_opposite).count(), 100);
    assert_eq!(cases.iter().filter(|c| c.stream).count(), 40);
    let options = Options {
        addr: format!("127.0.0.1:{grpc}"),
        concurrency: 2,
        timeout: Duration::from_secs(120),
        temperature: 0.0,
    };
    // The models load after the port opens: wait until one case is answered.
    for _ in 0..100 {
        let first = faithfulness::run(&cases[..1], &explanations, &options, |_, _| {}).await;
        if first.is_ok_and(|a| a[0].status == "OK") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let answers = faithfulness::run(&cases, &explanations, &options, |_, _| {})
        .await
        .unwrap();
    let report = faithfulness::summarise(&answers, &options.addr, "smollm2");
    let out = std::env::temp_dir().join(format!("switchyard-faithfulness-{}.md", std::process::id()));
    std::fs::write(&out, faithfulness::markdown(&report, &answers)).unwrap();

    // Both sides of the threshold, as the gateway scored them.
    assert_eq!(report.records, 200);
    assert!(
        report.by_band.get("high").is_some_and(|n| *n >= 90),
        "{:?}",
        report.by_band
    );
    assert!(
        report.by_band.get("low").is_some_and(|n| *n >= 40),
        "{:?}",
        report.by_band
    );
    assert!(
        report.by_band.get("elevated").is_some_and(|n| *n >= 10),
        "{:?}",
        report.by_band
    );

    let limits = gates::load(&root().join("evals/gates.toml"))
        .unwrap()
        .into_iter()
        .filter(|(gate, _)| gate.starts_with("faithfulness."))
        .collect();
    let verdicts = gates::check(&limits, &faithfulness::measurements(&report)).unwrap();
    assert!(!verdicts.is_empty(), "evals/gates.toml has [faithfulness] gates");
    let unanswered: Vec<(&str, &str)> = answers
        .iter()
        .filter(|a| a.status != "OK")
        .map(|a| (a.id.as_str(), a.status.as_str()))
        .collect();
    assert!(
        verdicts.iter().all(|v| v.passed),
        "{}\nunanswered: {unanswered:?}\nreport: {}",
        gates::table(&verdicts),
        out.display()
    );

    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(15), server).await;
}
