//! Drain under load: SIGTERM while callers keep sending. Readiness flips at once, the server keeps serving for
//! the drain delay, every call it accepted finishes, later calls are refused cleanly (UNAVAILABLE or a refused
//! connection, never a broken answer), and the process exits 0 within its grace period.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use support::{FakeLlm, Fault, Gateway, config, request, telco_record};
use tonic::Code;

/// Callers sending without pause.
const CALLERS: usize = 8;
const DRAIN_DELAY: Duration = Duration::from_millis(1500);

#[derive(Debug)]
struct Call {
    started: Instant,
    result: Result<(), Code>,
}

#[tokio::test]
async fn sigterm_under_load_flips_readiness_first_and_fails_no_accepted_call() {
    let llm = FakeLlm::start(vec![Fault::Delay(Duration::from_millis(200))]).await;
    let text = config(&llm.base_url(), "10s").replace(
        "shutdown_grace = \"5s\"",
        &format!(
            "shutdown_grace = \"5s\"\ndrain_delay = \"{}ms\"",
            DRAIN_DELAY.as_millis()
        ),
    );
    let mut gateway = Gateway::start(&text).await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut callers = Vec::new();
    for i in 0..CALLERS {
        let url = gateway.url();
        let stop = stop.clone();
        callers.push(tokio::spawn(async move {
            let mut calls = Vec::new();
            let Ok(mut client) = switchyard_proto::v1::router_client::RouterClient::connect(url).await else {
                return calls;
            };
            while !stop.load(Ordering::SeqCst) {
                // Half scoring, half through the (slow) LLM.
                let message = if i % 2 == 0 {
                    request("", Some(telco_record()))
                } else {
                    request("what is the capital of france?", None)
                };
                let started = Instant::now();
                let result = client.route(message).await.map(|_| ()).map_err(|s| s.code());
                let failed = result.is_err();
                calls.push(Call { started, result });
                if failed {
                    break;
                }
            }
            calls
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let terminated = Instant::now();
    gateway.terminate();
    // Readiness flips at once, while calls still succeed.
    let mut flipped = None;
    while terminated.elapsed() < DRAIN_DELAY {
        if gateway.admin_get("/readyz").await.0 == 503 {
            flipped = Some(terminated.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let flipped = flipped.expect("/readyz says 503 during the drain delay");
    tokio::time::sleep(DRAIN_DELAY + Duration::from_millis(1000)).await;
    stop.store(true, Ordering::SeqCst);
    let mut calls = Vec::new();
    for caller in callers {
        calls.extend(caller.await.unwrap());
    }
    let status = tokio::task::spawn_blocking(move || gateway.child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "exit status {status:?}");

    let after_flip = terminated + flipped;
    let served_after_flip = calls
        .iter()
        .filter(|c| c.started > after_flip && c.result.is_ok())
        .count();
    assert!(served_after_flip > 0, "the server keeps serving during the drain delay");
    // Calls started well inside the drain delay were accepted, so each must have finished well.
    let accepted_window = terminated + DRAIN_DELAY / 2;
    for call in calls.iter().filter(|c| c.started < accepted_window) {
        assert_eq!(
            call.result,
            Ok(()),
            "a call started {:?} after SIGTERM failed",
            call.started.saturating_duration_since(terminated)
        );
    }
    // Later ones may be refused, but only as a refusal.
    for call in &calls {
        if let Err(code) = call.result {
            assert_eq!(code, Code::Unavailable, "{call:?}");
        }
    }
}
