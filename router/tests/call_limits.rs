//! The limits a call meets before and during its work, as the caller sees them and as the server records them:
//! an expired deadline (the caller's `grpc-timeout` of 1u, 1m or 0m, or the server's `request_timeout`) answers
//! DEADLINE_EXCEEDED, and a call beyond its connection's concurrency (`concurrency_per_connection`) or the
//! server's (`[limits] max_in_flight`) is shed with RESOURCE_EXHAUSTED, `ErrorInfo` and `RetryInfo`. Each such call is in the access log and the duration metric
//! once, with the code the caller saw.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use support::{FakeLlm, Fault, Gateway, config, request, sample};
use tonic::Code;
use tonic_types::StatusExt;

/// The access lines written so far, parsed.
fn access_lines(gateway: &Gateway) -> Vec<serde_json::Value> {
    gateway
        .logs()
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|line| line["target"] == "switchyard::access")
        .collect()
}

/// Access lines with `code`.
fn logged_with(gateway: &Gateway, code: Code) -> usize {
    access_lines(gateway)
        .iter()
        .filter(|line| line["grpc_status"] == code as i32)
        .count()
}

/// `rpc.server.call.duration`'s count of Route calls that ended with `code_name`.
async fn timed_with(gateway: &Gateway, code_name: &str) -> f64 {
    let (_, metrics) = gateway.admin_get("/metrics").await;
    sample(
        &metrics,
        "rpc_server_call_duration_seconds_count",
        &[
            "rpc_method=\"switchyard.v1.Router/Route\"",
            &format!("rpc_response_status_code=\"{code_name}\""),
        ],
    )
}

/// Waits until `done` holds (the access line is written as the call's response ends), at most 10 s.
async fn eventually(mut done: impl FnMut() -> bool) {
    for _ in 0..100 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn an_expired_deadline_answers_deadline_exceeded_and_is_logged_and_timed() {
    // The LLM answers after 5 s; its own timeout is 30 s: only the call's deadline can end it sooner.
    let slow = FakeLlm::start(vec![Fault::Delay(Duration::from_secs(5))]).await;
    let text = config(&slow.base_url(), "30s").replacen(r#"request_timeout = "60s""#, r#"request_timeout = "1s""#, 1);
    let gateway = Gateway::start_logging(&text).await;
    for timeout in ["1u", "1m", "0m"] {
        // A raw HTTP/2 caller: tonic's client also starts its own timer from the header and reports its own
        // CANCELLED when that fires first; the server's answer is what is tested here.
        let body = prost::Message::encode_to_vec(&request("tell me a joke", None));
        let status = support::raw_call(&gateway, "/switchyard.v1.Router/Route", &body, Some(timeout)).await;
        assert_eq!(
            status.code(),
            Code::DeadlineExceeded,
            "grpc-timeout {timeout}: {status:?}"
        );
    }
    let mut client = gateway.client().await;
    // No deadline from the caller: the server's request_timeout (1 s) ends it, and says so.
    let status = client
        .route(request("tell me a joke", None))
        .await
        .expect_err("past request_timeout");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(status.message().contains("request_timeout"), "{}", status.message());
    let info = status.get_details_error_info().expect("ErrorInfo");
    assert_eq!(info.reason, "DEADLINE_EXCEEDED");
    assert_eq!(info.metadata["set_by"], "server");

    eventually(|| logged_with(&gateway, Code::DeadlineExceeded) >= 4).await;
    assert_eq!(logged_with(&gateway, Code::DeadlineExceeded), 4, "{}", gateway.logs());
    assert_eq!(logged_with(&gateway, Code::Cancelled), 0, "{}", gateway.logs());
    assert_eq!(timed_with(&gateway, "DEADLINE_EXCEEDED").await, 4.0);
    assert_eq!(timed_with(&gateway, "CANCELLED").await, 0.0);
}

#[tokio::test]
async fn calls_beyond_a_connections_limit_are_shed_with_details_and_logged() {
    let slow = FakeLlm::start(vec![Fault::Delay(Duration::from_millis(1500))]).await;
    let text = config(&slow.base_url(), "30s").replacen(
        "max_text_bytes = 32768",
        "max_text_bytes = 32768\nconcurrency_per_connection = 2",
        1,
    );
    let gateway = Gateway::start_logging(&text).await;
    // One connection: five calls at once, two may be in flight.
    let channel = gateway.channel().await;
    let calls: Vec<_> = (0..5)
        .map(|_| {
            let mut client = switchyard_proto::v1::router_client::RouterClient::new(channel.clone());
            tokio::spawn(async move { client.route(request("tell me a joke", None)).await })
        })
        .collect();
    let mut shed = Vec::new();
    for call in calls {
        match call.await.unwrap() {
            Ok(_) => {}
            Err(status) => shed.push(status),
        }
    }
    assert_eq!(shed.len(), 3, "{shed:?}");
    for status in &shed {
        assert_eq!(status.code(), Code::ResourceExhausted);
        let info = status.get_details_error_info().expect("ErrorInfo");
        assert_eq!((info.reason.as_str(), info.domain.as_str()), ("SHED", "switchyard"));
        assert_eq!(info.metadata["limit"], "connection");
        assert_eq!(info.metadata["capacity"], "2");
        assert!(status.get_details_retry_info().is_some(), "RetryInfo");
    }
    // Health is never shed, even with the connection full.
    let mut client = switchyard_proto::v1::router_client::RouterClient::new(channel.clone());
    let busy = tokio::spawn(async move { client.route(request("tell me a joke", None)).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let check = tonic_health::pb::HealthCheckRequest { service: String::new() };
    assert!(health.check(check).await.is_ok());
    busy.await.unwrap().unwrap();

    eventually(|| logged_with(&gateway, Code::ResourceExhausted) >= 3).await;
    assert_eq!(logged_with(&gateway, Code::ResourceExhausted), 3, "{}", gateway.logs());
    assert_eq!(timed_with(&gateway, "RESOURCE_EXHAUSTED").await, 3.0);
    let (_, metrics) = gateway.admin_get("/metrics").await;
    assert_eq!(
        sample(&metrics, "switchyard_calls_shed_total", &["reason=\"connection\""]),
        3.0
    );
}

#[tokio::test]
async fn calls_beyond_the_servers_limit_are_shed_whatever_their_connection() {
    let slow = FakeLlm::start(vec![Fault::Delay(Duration::from_millis(1500))]).await;
    let text = format!("{}\n[limits]\nmax_in_flight = 2\n", config(&slow.base_url(), "30s"));
    let gateway = Gateway::start_logging(&text).await;
    // Two calls on two connections fill the server; a third, on a third connection, is shed.
    let mut busy = Vec::new();
    for _ in 0..2 {
        let mut client = gateway.client().await;
        busy.push(tokio::spawn(async move {
            client.route(request("tell me a joke", None)).await
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut third = gateway.client().await;
    let status = third.route(request("tell me a joke", None)).await.expect_err("shed");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let info = status.get_details_error_info().expect("ErrorInfo");
    assert_eq!(info.reason, "OVERLOADED");
    assert!(status.get_details_retry_info().is_some(), "RetryInfo");
    for call in busy {
        call.await.unwrap().unwrap();
    }
    // Room again: the same caller is served.
    third.route(request("", Some(support::telco_record()))).await.unwrap();
    let (_, metrics) = gateway.admin_get("/metrics").await;
    assert_eq!(
        sample(&metrics, "switchyard_calls_shed_total", &["reason=\"server\""]),
        1.0
    );
    eventually(|| logged_with(&gateway, Code::ResourceExhausted) >= 1).await;
    assert_eq!(logged_with(&gateway, Code::ResourceExhausted), 1, "{}", gateway.logs());
}
