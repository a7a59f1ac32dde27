//! What one gRPC connection may hold and how long it lives (`[server]` `max_concurrent_streams`,
//! `keepalive_*`, `max_connection_age*`), through a raw HTTP/2 client as a hostile caller would drive it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use bytes::Bytes;
use support::{Gateway, config, free_port};
use tonic_health::pb::health_check_response::ServingStatus;

/// A gateway (no LLM needed) with extra `[server]` lines.
/// `request_timeout` is 1 s, so a grace of 1 s is allowed.
async fn gateway_with(server_settings: &str) -> Gateway {
    let text = config(&format!("http://127.0.0.1:{}/v1", free_port()), "2s")
        .replacen(r#"request_timeout = "60s""#, r#"request_timeout = "1s""#, 1)
        .replacen(
            "max_text_bytes = 32768",
            &format!("max_text_bytes = 32768\n{server_settings}"),
            1,
        );
    Gateway::start(&text).await
}

/// An HTTP/2 connection that advertises a zero flow-control window: the server may send headers but never a
/// byte of any answer, so every stream it answers stays open.
async fn zero_window_client(gateway: &Gateway) -> h2::client::SendRequest<Bytes> {
    let tcp = tokio::net::TcpStream::connect(gateway.addr()).await.unwrap();
    let (send, connection) = h2::client::Builder::new()
        .initial_window_size(0)
        .handshake(tcp)
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    send
}

/// Opens one `grpc.health.v1.Health/Check` stream (an empty request message) and returns its response future.
async fn open_health_check(send: &mut h2::client::SendRequest<Bytes>, authority: &str) -> h2::client::ResponseFuture {
    let request = http::Request::post(format!("http://{authority}/grpc.health.v1.Health/Check"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
    let ready = send.clone().ready().await.unwrap();
    *send = ready;
    let (response, mut body) = send.send_request(request, false).unwrap();
    // The gRPC frame of an empty message: not compressed, length 0.
    body.send_data(Bytes::from_static(&[0, 0, 0, 0, 0]), true).unwrap();
    response
}

#[tokio::test]
async fn a_client_that_never_reads_holds_at_most_max_concurrent_streams_and_others_are_still_served() {
    let gateway = gateway_with("max_concurrent_streams = 4").await;
    let authority = gateway.addr().to_string();
    let mut hostile = zero_window_client(&gateway).await;
    let mut answered = Vec::new();
    for _ in 0..4 {
        let response = open_health_check(&mut hostile, &authority).await;
        // Headers are not flow-controlled: each of the first four streams is answered (its body then waits).
        let response = tokio::time::timeout(Duration::from_secs(10), response)
            .await
            .expect("headers within 10 s")
            .unwrap();
        assert_eq!(response.status(), 200);
        answered.push(response);
    }
    // A fifth stream is not opened while the four hold the connection's limit: the server never sees it.
    let fifth = open_health_check(&mut hostile, &authority).await;
    assert!(
        tokio::time::timeout(Duration::from_secs(2), fifth).await.is_err(),
        "a fifth stream was answered beyond max_concurrent_streams = 4"
    );
    // Other callers are unaffected.
    assert_eq!(gateway.health("").await, ServingStatus::Serving);
    let mut client = gateway.client().await;
    assert!(
        client
            .route(support::request("", Some(support::telco_record())))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn a_connection_is_told_to_go_away_at_its_maximum_age_and_closed_after_the_grace() {
    let gateway = gateway_with("max_connection_age = \"1s\"\nmax_connection_age_grace = \"1s\"").await;
    let tcp = tokio::net::TcpStream::connect(gateway.addr()).await.unwrap();
    let (_send, connection) = h2::client::handshake(tcp).await.unwrap();
    // An idle connection ends by itself (GOAWAY, then close) once its age and grace are over.
    let ended = tokio::time::timeout(Duration::from_secs(30), connection).await;
    assert!(
        ended.is_ok(),
        "the connection outlived max_connection_age + grace by 28 s"
    );
    // New connections are served as before.
    assert_eq!(gateway.health("").await, ServingStatus::Serving);
}
