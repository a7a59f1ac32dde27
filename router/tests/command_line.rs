//! The command line a deployment relies on. `switchyard health` (the image's HEALTHCHECK and the Kubernetes exec
//! probe): exit 0 and `SERVING` only from a gateway that has its models loaded and is not draining; a clear reason
//! and a non-zero exit otherwise. `serve --backend-url` / `SWITCHYARD_BACKEND_URLS`: where the LLM runs is set
//! by the deployment, checked as the file's URL is.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::process::{Command, Output};
use std::time::Duration;

use support::{FakeLlm, Gateway, config, free_port, request};

fn health(addr: &str, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["health", "--addr", addr, "--timeout", "1s"])
        .args(extra)
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn a_serving_gateway_passes_and_a_draining_one_fails_with_its_status() {
    let text = config(&format!("http://127.0.0.1:{}/v1", free_port()), "2s").replace(
        "shutdown_grace = \"5s\"",
        "shutdown_grace = \"5s\"\ndrain_delay = \"3s\"",
    );
    let gateway = Gateway::start(&text).await;
    let url = gateway.url();

    let serving = health(&url, &[]);
    assert!(serving.status.success(), "{}", stderr(&serving));
    assert_eq!(String::from_utf8_lossy(&serving.stdout).trim(), "SERVING");
    let router = health(&url, &["--service", "switchyard.v1.Router"]);
    assert!(router.status.success(), "{}", stderr(&router));

    let unknown = health(&url, &["--service", "no.such.Service"]);
    assert!(!unknown.status.success());
    assert!(stderr(&unknown).contains(&url), "{}", stderr(&unknown));

    gateway.terminate();
    // The drain delay keeps the port open while health says NOT_SERVING (load balancers and probes notice).
    let mut draining = health(&url, &[]);
    for _ in 0..20 {
        if !draining.status.success() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        draining = health(&url, &[]);
    }
    assert!(
        !draining.status.success(),
        "a draining gateway must fail its health check"
    );
    assert!(stderr(&draining).contains("NOT_SERVING"), "{}", stderr(&draining));
}

#[test]
fn nothing_listening_fails_within_the_timeout_naming_the_address() {
    let addr = format!("http://127.0.0.1:{}", free_port());
    let started = std::time::Instant::now();
    let out = health(&addr, &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains(&format!("{addr}: no answer")), "{}", stderr(&out));
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the timeout bounds the wait"
    );
}

#[test]
fn a_backend_url_override_naming_no_backend_is_refused_with_the_key() {
    let dir = support::TempDir::new();
    let path = support::write_config(&dir.0, &config("http://127.0.0.1:1/v1", "1s"));
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args([
            "serve",
            "--config",
            path.to_str().unwrap(),
            "--backend-url",
            "nope=http://127.0.0.1:2/v1",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("backends.nope.base_url: --backend-url names no such backend"),
        "{}",
        stderr(&out)
    );
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["serve", "--config", path.to_str().unwrap()])
        .env("SWITCHYARD_BACKEND_URLS", "local=ftp://example")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("is not an http(s) URL"), "{}", stderr(&out));
}

#[tokio::test]
async fn the_environment_points_a_backend_elsewhere_than_the_config_file() {
    let llm = FakeLlm::start(vec![support::Fault::Ok]).await;
    let dead = format!("http://127.0.0.1:{}/v1", free_port());
    let gateway = Gateway::start_with_env(
        &config(&dead, "2s"),
        &[("SWITCHYARD_BACKEND_URLS", &format!("local={}", llm.base_url()))],
    )
    .await;
    let answer = gateway
        .client()
        .await
        .route(request("what is the capital of france?", None))
        .await
        .unwrap()
        .into_inner();
    assert!(answer.generation.is_some(), "{answer:?}");
    assert_eq!(llm.count(), 1, "the call went to the URL from the environment");
}
