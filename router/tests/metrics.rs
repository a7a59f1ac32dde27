//! The admin port: `/healthz`, `/readyz`, and `/metrics` moving by the right amounts.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use support::{FakeLlm, Fault, Gateway, config, request, sample, stream_events, telco_record, with_backend_settings};

#[tokio::test]
async fn health_endpoints_answer_and_metrics_move_by_the_right_amounts() {
    let fake = FakeLlm::start(vec![Fault::Ok]).await;
    let prices = "input_price_per_mtok = 1000000.0\noutput_price_per_mtok = 2000000.0";
    let gateway = Gateway::start(&with_backend_settings(&config(&fake.base_url(), "3s"), prices)).await;
    assert_eq!(gateway.admin_get("/healthz").await.0, 200);
    assert_eq!(gateway.admin_get("/readyz").await.0, 200);
    let (status, before) = gateway.admin_get("/metrics").await;
    assert_eq!(status, 200);

    let mut client = gateway.client().await;
    for _ in 0..2 {
        client.route(request("", Some(telco_record()))).await.unwrap();
    }
    client
        .explain(request("what is my checking account balance", None))
        .await
        .unwrap();
    client.route(request("", None)).await.unwrap_err();
    client.route(request("tell me a joke", None)).await.unwrap();
    stream_events(&mut client, request("tell me a joke", None)).await;

    let (_, after) = gateway.admin_get("/metrics").await;
    let delta = |metric: &str, labels: &[&str]| sample(&after, metric, labels) - sample(&before, metric, labels);
    let rpc = "rpc_server_call_duration_seconds_count";
    let route = "rpc_method=\"switchyard.v1.Router/Route\"";
    assert_eq!(
        delta(
            rpc,
            &[
                route,
                "rpc_system_name=\"grpc\"",
                "rpc_response_status_code=\"OK\"",
                "switchyard_target=\"churn\""
            ]
        ),
        2.0,
        "{after}"
    );
    assert_eq!(
        delta(rpc, &[route, "rpc_response_status_code=\"INVALID_ARGUMENT\""]),
        1.0,
        "INVALID_ARGUMENT counted"
    );
    assert!(
        !after
            .lines()
            .any(|l| l.starts_with(rpc) && l.contains("INVALID_ARGUMENT") && l.contains("error_type")),
        "a caller's mistake is not the server's error: {after}"
    );
    assert_eq!(
        delta(
            rpc,
            &[
                "rpc_method=\"switchyard.v1.Router/Explain\"",
                "rpc_response_status_code=\"OK\""
            ]
        ),
        1.0
    );
    assert_eq!(
        delta(
            rpc,
            &[
                "rpc_method=\"switchyard.v1.Router/RouteStream\"",
                "switchyard_target=\"assistant\""
            ]
        ),
        1.0
    );
    let decisions = "switchyard_decisions_total";
    assert_eq!(
        delta(
            decisions,
            &[
                "switchyard_label_group=\"customer_record\"",
                "switchyard_target=\"churn\""
            ]
        ),
        2.0
    );
    assert_eq!(delta(decisions, &["switchyard_label_group=\"banking\""]), 1.0);
    assert_eq!(
        delta("switchyard_classifier_confidence_count", &[]),
        5.0,
        "two records, explain, two LLM questions"
    );
    assert_eq!(delta("switchyard_score_duration_seconds_count", &[]), 2.0);
    let llm = "gen_ai_client_operation_duration_seconds_count";
    let genai = [
        "gen_ai_operation_name=\"chat\"",
        "gen_ai_provider_name=\"openai\"",
        "gen_ai_request_model=\"smollm2\"",
        "server_address=\"127.0.0.1\"",
        "switchyard_backend=\"local\"",
    ];
    assert_eq!(delta(llm, &genai), 2.0, "whole and streamed: {after}");
    assert_eq!(
        delta("gen_ai_client_operation_time_to_first_chunk_seconds_count", &genai),
        1.0
    );
    assert!(
        !after.contains("switchyard_llm_time_to_first_token"),
        "the old name is gone"
    );
    // The fake reports 3 input and 2 output tokens per call.
    let tokens = "gen_ai_client_token_usage_sum";
    let input: Vec<&str> = genai.iter().copied().chain(["gen_ai_token_type=\"input\""]).collect();
    assert_eq!(delta(tokens, &input), 6.0);
    assert_eq!(delta(tokens, &["gen_ai_token_type=\"output\""]), 4.0);
    // Prices of 1e6 and 2e6 per million tokens: 3 + 4 = 7 per call.
    assert_eq!(
        delta("switchyard_llm_cost_total", &["switchyard_target=\"assistant\""]),
        14.0
    );
    assert_eq!(
        sample(
            &after,
            "switchyard_backend_circuit_state",
            &["switchyard_backend=\"local\""]
        ),
        0.0
    );
    assert!(
        after.contains("switchyard_inference_queue_depth"),
        "queue depth gauge exported"
    );
}

#[tokio::test]
async fn readiness_fails_while_draining() {
    let fake = FakeLlm::start(vec![Fault::Delay(std::time::Duration::from_millis(1500))]).await;
    let gateway = Gateway::start(&config(&fake.base_url(), "10s")).await;
    let mut client = gateway.client().await;
    let in_flight = tokio::spawn(async move { client.route(request("tell me a joke", None)).await });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    gateway.terminate();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(
        gateway.admin_get("/readyz").await.0,
        503,
        "draining instances leave the load balancer"
    );
    assert!(in_flight.await.unwrap().is_ok());
}

#[tokio::test]
async fn one_json_access_line_per_request_and_no_content() {
    let fake = FakeLlm::start(vec![Fault::Ok]).await;
    let gateway = Gateway::start_logging(&config(&fake.base_url(), "3s")).await;
    let mut client = gateway.client().await;
    let marker = "zebra-marker-5f3a";
    let question = switchyard_proto::v1::RouteRequest {
        request_id: "req-42".into(),
        tenant: "acme".into(),
        ..request(&format!("tell me a joke about {marker}"), None)
    };
    client.route(question).await.unwrap();
    client.route(request("", Some(telco_record()))).await.unwrap();
    client.route(request("", None)).await.unwrap_err();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    let logs = gateway.logs();
    assert!(!logs.contains(marker), "request text must never be logged");
    assert!(!logs.contains("Month-to-month"), "feature values must never be logged");
    let access: Vec<serde_json::Value> = logs
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).expect("every log line is JSON"))
        .filter(|line| line["target"] == "switchyard::access")
        .collect();
    assert_eq!(access.len(), 3, "{logs}");
    let first = &access[0];
    assert_eq!(first["request_id"], "req-42");
    assert_eq!(first["tenant"], "acme");
    assert_eq!(first["rpc_method"], "Route");
    assert_eq!(first["route_target"], "assistant");
    assert_eq!(first["grpc_status"], 0);
    assert!(first["duration_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(access[1]["route_target"], "churn");
    assert_eq!(access[2]["grpc_status"], 3, "INVALID_ARGUMENT");
    assert_eq!(first["level"], "INFO");
}
