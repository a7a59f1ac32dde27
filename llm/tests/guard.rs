//! `GuardedBackend` against a backend that accepts connections and never answers: what reaches the circuit
//! breaker. Only the backend's own failures count; a caller's deadline and a caller's departure never do.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use llm::{
    BackendConfig, BreakerConfig, ChatBackend, ChatMessage, ChatRequest, CircuitState, GuardConfig, GuardedBackend,
    LlmError,
};
use tokio::net::TcpListener;
use tokio::time::Instant;

/// A backend that accepts every connection, counts it, and never answers.
async fn silent_backend() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            held.push(socket);
        }
    });
    (url, accepted)
}

fn guarded(url: &str, request_timeout: Duration, open_for: Duration) -> GuardedBackend {
    let backend = ChatBackend::new(BackendConfig {
        name: "silent".into(),
        base_url: url.to_owned(),
        model: "m".into(),
        api_key: None,
        ca_certificates: Vec::new(),
        connect_timeout: Duration::from_secs(1),
        request_timeout,
        inter_token_timeout: Duration::from_secs(30),
        headers: Vec::new(),
        max_response_bytes: 1 << 20,
        provider: "openai".into(),
        capture_content: None,
    })
    .unwrap();
    GuardedBackend::new(
        backend,
        GuardConfig {
            max_concurrent: 4,
            max_queued: 4,
            first_token_timeout: Duration::from_secs(30),
            max_attempts: 1,
            base_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(10),
            retry_budget_ratio: 0.2,
            breaker: BreakerConfig {
                failure_threshold: 1,
                open_for,
                probe_timeout: Duration::from_secs(60),
            },
        },
    )
}

fn question() -> ChatRequest {
    ChatRequest {
        messages: vec![ChatMessage::user("hi")],
        max_tokens: Some(4),
        temperature: None,
    }
}

#[tokio::test]
async fn a_call_with_no_time_left_is_not_made_and_a_cut_short_one_is_not_a_backend_failure() {
    let (url, accepted) = silent_backend().await;
    let backend = guarded(&url, Duration::from_secs(30), Duration::from_secs(60));
    let request = question();

    let (result, report) = backend.complete(&request, Some(Instant::now())).await;
    assert!(matches!(result, Err(LlmError::DeadlineExceeded { .. })), "{result:?}");
    assert_eq!(report.attempts, 0);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(accepted.load(Ordering::SeqCst), 0, "no connection was made");

    for _ in 0..3 {
        let (result, _) = backend
            .complete(&request, Some(Instant::now() + Duration::from_millis(100)))
            .await;
        assert!(matches!(result, Err(LlmError::DeadlineExceeded { .. })), "{result:?}");
    }
    assert_eq!(
        backend.circuit(),
        CircuitState::Closed,
        "one backend failure would have opened it"
    );

    // The backend's own timeout does count.
    let own = guarded(&url, Duration::from_millis(100), Duration::from_secs(60));
    let (result, _) = own.complete(&request, None).await;
    assert!(matches!(result, Err(LlmError::Timeout { .. })), "{result:?}");
    assert_eq!(own.circuit(), CircuitState::Open);
}

#[tokio::test]
async fn a_probe_whose_caller_leaves_frees_the_half_open_circuit() {
    let (url, accepted) = silent_backend().await;
    let backend = Arc::new(guarded(&url, Duration::from_millis(100), Duration::from_millis(50)));
    let request = question();
    let (result, _) = backend.complete(&request, None).await;
    assert!(matches!(result, Err(LlmError::Timeout { .. })));
    assert_eq!(backend.circuit(), CircuitState::Open);
    tokio::time::sleep(Duration::from_millis(60)).await;

    // The probe's caller goes away while the backend is silent.
    let probing = backend.clone();
    let probe = tokio::spawn(async move { probing.complete(&question(), None).await });
    tokio::time::sleep(Duration::from_millis(30)).await;
    probe.abort();
    let _ = probe.await;
    assert_eq!(accepted.load(Ordering::SeqCst), 2);

    // The next call is the new probe: it reaches the backend (and times out there) instead of being refused.
    let (result, report) = backend.complete(&request, None).await;
    assert!(matches!(result, Err(LlmError::Timeout { .. })), "{result:?}");
    assert_eq!(report.attempts, 1);
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}
