//! Per-tenant quotas and the server's in-flight bound through the gateway: each refusal is RESOURCE_EXHAUSTED
//! with the quota's reason and a `RetryInfo`, touches no other tenant, and cost is reported per tenant.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use support::{FakeLlm, Fault, Gateway, config, request, telco_record};
use switchyard_proto::v1::RouteRequest;
use tonic::Code;
use tonic_types::StatusExt;

const LIMITS: &str = r#"
[limits.tenants.bursty]
requests_per_second = 1
burst = 2

[limits.tenants.thrifty]
llm_tokens_per_hour = 10

[limits.tenants.single]
max_in_flight = 1
"#;

async fn gateway(llm: &FakeLlm) -> Gateway {
    Gateway::start(&format!("{}\n{LIMITS}", config(&llm.base_url(), "5s"))).await
}

fn as_tenant(mut message: RouteRequest, tenant: &str) -> RouteRequest {
    message.tenant = tenant.to_owned();
    message
}

fn scored(tenant: &str) -> RouteRequest {
    as_tenant(request("", Some(telco_record())), tenant)
}

fn question(tenant: &str) -> RouteRequest {
    as_tenant(request("what is the capital of france?", None), tenant)
}

fn assert_quota(status: &tonic::Status, reason: &str, retry_at_least: Duration) {
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let info = status.get_details_error_info().expect("ErrorInfo");
    assert_eq!(info.reason, reason.to_uppercase(), "{status:?}");
    let retry = status
        .get_details_retry_info()
        .expect("RetryInfo")
        .retry_delay
        .expect("a delay");
    assert!(retry >= retry_at_least, "{retry:?} < {retry_at_least:?}");
}

#[tokio::test]
async fn a_tenant_over_its_rate_is_told_when_to_come_back_and_nobody_else_is_slowed() {
    let llm = FakeLlm::start(vec![Fault::Ok]).await;
    let gateway = gateway(&llm).await;
    let mut client = gateway.client().await;
    client.route(scored("bursty")).await.unwrap();
    client.route(scored("bursty")).await.unwrap();
    let status = client.route(scored("bursty")).await.unwrap_err();
    assert_quota(&status, "tenant_rate", Duration::from_millis(1));
    for _ in 0..5 {
        client
            .route(scored("calm"))
            .await
            .expect("another tenant is not limited");
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    client.route(scored("bursty")).await.expect("the bucket refilled");
}

#[tokio::test]
async fn a_spent_token_budget_stops_llm_calls_but_not_scoring() {
    let llm = FakeLlm::start(vec![Fault::Ok]).await;
    let gateway = gateway(&llm).await;
    let mut client = gateway.client().await;
    // The fake reports 5 tokens a call: two calls spend the 10.
    for _ in 0..2 {
        client.route(question("thrifty")).await.unwrap();
    }
    let before = llm.count();
    let status = client.route(question("thrifty")).await.unwrap_err();
    assert_quota(&status, "tenant_token_budget", Duration::from_secs(3000));
    assert_eq!(llm.count(), before, "no call is made over budget");
    client
        .route(scored("thrifty"))
        .await
        .expect("scoring costs no LLM tokens");
    client
        .route(question("other"))
        .await
        .expect("another tenant's budget is its own");

    let (_, metrics) = gateway.admin_get("/metrics").await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("switchyard_llm_cost") && l.contains("switchyard_tenant=\"thrifty\"")),
        "cost per tenant:\n{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("switchyard_llm_cost") && l.contains("switchyard_tenant=\"other\"")),
        "tenants the config does not name are counted as `other`"
    );
}

#[tokio::test]
async fn a_tenant_at_its_in_flight_limit_is_refused_at_once_until_one_finishes() {
    let llm = FakeLlm::start(vec![Fault::Delay(Duration::from_millis(800)), Fault::Ok]).await;
    let gateway = gateway(&llm).await;
    let mut slow = gateway.client().await;
    let first = tokio::spawn(async move { slow.route(question("single")).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut client = gateway.client().await;
    let status = client.route(scored("single")).await.unwrap_err();
    assert!(
        !first.is_finished(),
        "refused while the first is still in flight: not queued behind it"
    );
    assert_quota(&status, "tenant_in_flight", Duration::from_millis(1));
    client.route(scored("someone-else")).await.unwrap();
    first.await.unwrap().unwrap();
    client.route(scored("single")).await.expect("the slot is free again");
}

#[tokio::test]
async fn the_server_sheds_calls_beyond_its_in_flight_bound() {
    let llm = FakeLlm::start(vec![Fault::Delay(Duration::from_millis(800)), Fault::Ok]).await;
    let text = format!("{}\n[limits]\nmax_in_flight = 1\n", config(&llm.base_url(), "5s"));
    let gateway = Gateway::start(&text).await;
    let mut slow = gateway.client().await;
    let first = tokio::spawn(async move { slow.route(question("a")).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut client = gateway.client().await;
    let status = client.route(scored("b")).await.unwrap_err();
    assert_quota(&status, "overloaded", Duration::from_millis(1));
    first.await.unwrap().unwrap();
    client.route(scored("b")).await.unwrap();
}

#[test]
fn bad_limits_are_refused_naming_the_key() {
    let dir = support::TempDir::new();
    for (limits, key) in [
        (
            "[limits.tenants.a]\nrequests_per_second = 0\n",
            "limits.tenants.a.requests_per_second",
        ),
        ("[limits.per_tenant]\nburst = 5\n", "limits.per_tenant.burst"),
        ("[limits.tenants.\"a b\"]\nmax_in_flight = 1\n", "limits.tenants.a b"),
        ("[limits]\nmax_in_flight = 0\n", "limits.max_in_flight"),
    ] {
        let text = format!("{}\n{limits}", config("http://127.0.0.1:1/v1", "1s"));
        let path = support::write_config(&dir.0, &text);
        let error = switchyard::config::Config::load(&path).unwrap_err();
        assert_eq!(error.key, key, "{limits}: {error}");
    }
}
