//! What a client connection may hold and how long it lives, on both ports (`[server]` `max_connections`,
//! `handshake_timeout`, `idle_timeout`, `max_concurrent_streams`, `keepalive_*`, `max_connection_age*`,
//! `admin_*`), driven as hostile or broken clients would: raw TCP that never speaks, a raw HTTP/2 client with a
//! zero window, headers dribbled a line at a time, a flood past the descriptor limit, a scrape flood. Through
//! each, normal calls must be answered and memory and descriptors stay bounded.

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

/// A structured call on `client`, which must be answered: at most 1 s, against the ~10 ms one takes even in a
/// debug build on a loaded CI machine (a liveness bound, not a performance threshold: a gateway whose accept
/// loop or workers were held by the attack would miss it by far more).
async fn answered(client: &mut switchyard_proto::v1::router_client::RouterClient<tonic::transport::Channel>) {
    let call = client.route(support::request("", Some(support::telco_record())));
    let answer = tokio::time::timeout(Duration::from_secs(1), call)
        .await
        .expect("a normal call was not answered within 1 s during the attack");
    answer.expect("a normal call failed during the attack");
}

/// Reads what the server sends on `tcp` until it closes the connection (or 20 s pass); `None` if it never did.
async fn until_closed(tcp: &mut tokio::net::TcpStream) -> Option<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut received = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), tcp.read_to_end(&mut received)).await;
    match read {
        Ok(Ok(_)) => Some(received),
        // A reset is a close too (the server closed with our bytes unread).
        Ok(Err(_)) => Some(received),
        Err(_) => None,
    }
}

#[tokio::test]
async fn a_flood_of_silent_connections_is_capped_then_dropped_while_normal_calls_go_on() {
    let gateway = gateway_with("max_connections = 32\nhandshake_timeout = \"2s\"").await;
    let mut client = gateway.client().await;
    answered(&mut client).await;
    let (rss_before, descriptors_before) = (gateway.rss_bytes(), gateway.open_descriptors());

    let mut silent = Vec::new();
    for _ in 0..200 {
        silent.push(tokio::net::TcpStream::connect(gateway.addr()).await.unwrap());
    }
    // While the flood sits there: the client's connection is served, memory and descriptors stay bounded.
    for _ in 0..5 {
        answered(&mut client).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let descriptors = gateway.open_descriptors();
    assert!(
        descriptors <= descriptors_before + 32,
        "{descriptors} descriptors open with max_connections = 32 (idle: {descriptors_before})"
    );
    let grown = gateway.rss_bytes().saturating_sub(rss_before);
    assert!(grown < 64 << 20, "RSS grew by {} MB under the flood", grown >> 20);

    // Every silent connection is closed by the server: those beyond the limit at once, told why (an HTTP/2
    // GOAWAY, ENHANCE_YOUR_CALM), the rest after the handshake timeout.
    let mut refused = 0;
    for tcp in &mut silent {
        let received = until_closed(tcp).await.expect("a silent connection was never closed");
        if received.len() > 9 && received[12] == 7 {
            assert_eq!(&received[22..26], &[0, 0, 0, 0x0b], "GOAWAY with ENHANCE_YOUR_CALM");
            refused += 1;
        }
    }
    assert!(refused >= 200 - 32, "only {refused} of 200 were refused at the limit");
    answered(&mut client).await;
    // A new client after the flood is served.
    let mut fresh = gateway.client().await;
    answered(&mut fresh).await;
    let (_, metrics) = gateway.admin_get("/metrics").await;
    let closed = |reason: &str| {
        support::sample(
            &metrics,
            "switchyard_connections_closed_total",
            &["switchyard_port=\"grpc\"", &format!("reason=\"{reason}\"")],
        )
    };
    assert!(closed("refused") >= f64::from(refused), "{metrics}");
    assert!(closed("silent") >= 1.0, "{metrics}");
}

#[tokio::test]
async fn a_connection_without_calls_is_told_to_go_away_after_the_idle_timeout() {
    let gateway = gateway_with("idle_timeout = \"1s\"").await;
    let tcp = tokio::net::TcpStream::connect(gateway.addr()).await.unwrap();
    let (mut send, connection) = h2::client::handshake(tcp).await.unwrap();
    let connection = tokio::spawn(connection);
    // A call keeps it busy: the idle clock starts when the call ends.
    let response = open_health_check(&mut send, &gateway.addr().to_string()).await;
    assert_eq!(response.await.unwrap().status(), 200);
    let ended = tokio::time::timeout(Duration::from_secs(20), connection).await;
    assert!(ended.is_ok(), "an idle connection outlived idle_timeout = 1s by 19 s");
    let (_, metrics) = gateway.admin_get("/metrics").await;
    let idle = support::sample(
        &metrics,
        "switchyard_connections_closed_total",
        &["switchyard_port=\"grpc\"", "reason=\"idle\""],
    );
    assert!(idle >= 1.0, "{metrics}");
}

#[tokio::test]
async fn the_admin_port_closes_a_client_that_dribbles_its_headers_and_refuses_beyond_its_limit() {
    use tokio::io::AsyncWriteExt;
    let gateway = gateway_with("admin_header_timeout = \"1s\"\nadmin_max_connections = 4").await;
    // One header line every 300 ms: never a whole request.
    let mut dribbler = tokio::net::TcpStream::connect(gateway.admin).await.unwrap();
    dribbler.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
    let dribbling = tokio::spawn(async move {
        for i in 0.. {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if dribbler
                .write_all(format!("x-line-{i}: y\r\n").as_bytes())
                .await
                .is_err()
            {
                return i;
            }
        }
        unreachable!()
    });
    let lines = tokio::time::timeout(Duration::from_secs(20), dribbling)
        .await
        .expect("a client dribbling its headers was kept for 20 s")
        .unwrap();
    assert!(lines < 60, "{lines} header lines were taken");

    // Four connections fill the port; a fifth is told 503 at once.
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(tokio::net::TcpStream::connect(gateway.admin).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut fifth = tokio::net::TcpStream::connect(gateway.admin).await.unwrap();
    let answer = until_closed(&mut fifth).await.expect("the fifth connection was kept");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("retry-after: 1"), "{answer}");
    // The four are silent: dropped after the header timeout, and the port serves again.
    for tcp in &mut held {
        until_closed(tcp).await.expect("a silent admin connection was kept");
    }
    assert_eq!(gateway.admin_get("/healthz").await.0, 200);
}

#[tokio::test]
async fn at_the_descriptor_limit_the_accept_loop_waits_instead_of_spinning() {
    let text = config(&format!("http://127.0.0.1:{}/v1", free_port()), "2s");
    // Room for what the gateway needs at rest (models, runtime, listeners) and a few connections.
    let gateway = Gateway::start_with_descriptors(&text, 96).await;
    let mut client = gateway.client().await;
    answered(&mut client).await;
    // More connections than descriptors left: the rest wait in the backlog, and each accept fails (EMFILE).
    let mut flood = Vec::new();
    for _ in 0..150 {
        flood.push(tokio::net::TcpStream::connect(gateway.addr()).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cpu_before = gateway.cpu_seconds();
    for _ in 0..6 {
        answered(&mut client).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // A spinning accept loop burns a core (3 CPU-seconds in these 3 s); one that backs off (up to 1 s between
    // tries) uses a few milliseconds. 1 s separates the two on any machine.
    let cpu = gateway.cpu_seconds() - cpu_before;
    assert!(
        cpu < 1.0,
        "the gateway used {cpu:.2} CPU-seconds in 3 s at the descriptor limit"
    );
    assert!(
        gateway.logs().contains("accept failed; waiting before the next"),
        "{}",
        gateway.logs()
    );
    // Once the flood goes, new connections are accepted again.
    drop(flood);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut fresh = gateway.client().await;
    answered(&mut fresh).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_flood_is_answered_and_normal_calls_go_on() {
    let gateway = gateway_with("admin_max_connections = 1000").await;
    let mut client = gateway.client().await;
    answered(&mut client).await;
    let admin = gateway.admin;
    // One HTTP client (building one per request would spend the test's CPU on TLS roots instead of scraping).
    let scraper = reqwest::Client::new();
    let scrapes: Vec<_> = (0..500)
        .map(|_| {
            let scraper = scraper.clone();
            tokio::spawn(async move {
                let response = scraper.get(format!("http://{admin}/metrics")).send().await.unwrap();
                (response.status().as_u16(), response.text().await.unwrap())
            })
        })
        .collect();
    for _ in 0..5 {
        answered(&mut client).await;
    }
    for scrape in scrapes {
        let (status, body) = scrape.await.unwrap();
        assert_eq!(status, 200);
        assert!(body.contains("rpc_server_call_duration_seconds_count"), "{body}");
    }
}
