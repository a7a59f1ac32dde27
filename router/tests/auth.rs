//! Authenticated tenants through the gateway: with `[auth]` required, the API key decides the tenant, health stays
//! open, every failure says the same thing, and what a tenant may do besides routing is the policy's.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use support::{Gateway, TempDir, assert_status, config, free_port, request, telco_record, with_policy};
use switchyard_proto::v1::RouteRequest;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

const OPS_KEY: &str = "sk-ops-7Qm2vX9pL4rT8wZ1nB6cK3yH5dF0gJ";
const WEB_KEY: &str = "sk-web-R4tY7uI1oP9aS2dF6gH3jK8lZ5xC0v";

/// A gateway requiring keys: `ops` may explain, see evaluations and use reflection; `web` may only route.
async fn gateway(dir: &TempDir) -> Gateway {
    let keys = dir.0.join("api-keys.toml");
    std::fs::write(
        &keys,
        format!(
            "[[keys]]\ntenant = \"ops\"\nsha256 = \"{}\"\n[[keys]]\ntenant = \"web\"\nsha256 = \"{}\"\n",
            switchyard::auth::hash_key(OPS_KEY),
            switchyard::auth::hash_key(WEB_KEY)
        ),
    )
    .unwrap();
    let base = config(&format!("http://127.0.0.1:{}/v1", free_port()), "2s");
    let (policy, _) = base.split_once(support::POLICY_END).unwrap();
    let policy = policy.replace(
        "[tenants.ops]\n",
        "[tenants.ops]\nallow_explain = true\nshow_evaluations = true\nallow_reflection = true\n",
    );
    let text = format!("{}\n[auth]\nmode = \"required\"\n", with_policy(&base, &policy));
    Gateway::start_with_env(&text, &[("SWITCHYARD_API_KEYS_FILE", keys.to_str().unwrap())]).await
}

fn with_key<T>(message: T, key: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    request
}

fn scored() -> RouteRequest {
    request("", Some(telco_record()))
}

#[tokio::test]
async fn without_a_known_key_only_health_answers_and_every_refusal_looks_the_same() {
    let dir = TempDir::new();
    let gateway = gateway(&dir).await;
    assert_eq!(gateway.health("").await, ServingStatus::Serving, "health needs no key");
    let mut client = gateway.client().await;
    let mut messages = Vec::new();
    for key in [
        None,
        Some(""),
        Some("sk-ops-wrong"),
        Some(&OPS_KEY[..OPS_KEY.len() - 1]),
    ] {
        let request = match key {
            Some(key) => with_key(scored(), key),
            None => tonic::Request::new(scored()),
        };
        let status = client.route(request).await.expect_err("refused");
        assert_eq!(status.code(), Code::Unauthenticated, "{key:?}: {status:?}");
        messages.push(status.message().to_owned());
    }
    messages.dedup();
    assert_eq!(
        messages,
        ["missing or invalid credentials"],
        "one message for every failure"
    );
    // Basic instead of Bearer, and the key in the body's tenant, are no credentials either.
    let mut basic = tonic::Request::new(scored());
    basic
        .metadata_mut()
        .insert("authorization", format!("Basic {OPS_KEY}").parse().unwrap());
    assert_eq!(client.route(basic).await.unwrap_err().code(), Code::Unauthenticated);
}

#[tokio::test]
async fn the_key_decides_the_tenant_and_the_policy_decides_what_it_may_do() {
    let dir = TempDir::new();
    let gateway = gateway(&dir).await;
    let mut client = gateway.client().await;

    // web: routes, sees no rule evaluations, cannot explain, cannot claim ops, cannot force.
    let answer = client.route(with_key(scored(), WEB_KEY)).await.unwrap().into_inner();
    assert!(answer.prediction.is_some());
    assert!(
        answer.decision.unwrap().evaluations.is_empty(),
        "evaluations are ops's to see"
    );
    let claimed = RouteRequest {
        tenant: "ops".into(),
        ..scored()
    };
    let status = client.route(with_key(claimed, WEB_KEY)).await.unwrap_err();
    assert_status(&status, Code::PermissionDenied, "tenant does not match");
    let own = RouteRequest {
        tenant: "web".into(),
        ..scored()
    };
    assert!(
        client.route(with_key(own, WEB_KEY)).await.is_ok(),
        "naming its own tenant is fine"
    );
    let status = client.explain(with_key(scored(), WEB_KEY)).await.unwrap_err();
    assert_status(&status, Code::PermissionDenied, "Explain");
    let forced = RouteRequest {
        force_target: "refuse".into(),
        ..scored()
    };
    assert_eq!(
        client
            .route(with_key(forced.clone(), WEB_KEY))
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );

    // ops: the same requests are allowed, and its forcible targets are its own, not claimable by the body.
    let decision = client.explain(with_key(scored(), OPS_KEY)).await.unwrap().into_inner();
    assert!(!decision.evaluations.is_empty());
    let answer = client.route(with_key(forced, OPS_KEY)).await.unwrap().into_inner();
    assert!(answer.rejection.is_some(), "ops forced the refusal target");

    // Reflection: ops only.
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    let list = || {
        tokio_stream::iter([ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        }])
    };
    let mut reflection = ServerReflectionClient::new(gateway.channel().await);
    let denied = reflection
        .server_reflection_info(with_key(list(), WEB_KEY))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let denied = reflection.server_reflection_info(list()).await.unwrap_err();
    assert_eq!(denied.code(), Code::Unauthenticated);
    let mut answers = reflection
        .server_reflection_info(with_key(list(), OPS_KEY))
        .await
        .unwrap()
        .into_inner();
    assert!(answers.message().await.unwrap().is_some());

    // The access log names the tenant the key gave, never the key.
    let logs = gateway.logs();
    assert!(
        !logs.contains(OPS_KEY) && !logs.contains(WEB_KEY),
        "a key reached the log"
    );
}

#[test]
fn auth_required_without_keys_is_refused_at_start() {
    let dir = TempDir::new();
    let text = format!(
        "{}\n[auth]\nmode = \"required\"\n",
        config("http://127.0.0.1:1/v1", "1s")
    );
    let path = support::write_config(&dir.0, &text);
    let error = switchyard::config::Config::load(&path).unwrap_err();
    assert_eq!(error.key, "auth.keys_file", "{error}");
    std::fs::write(dir.0.join("keys.toml"), "keys = []\n").unwrap();
    let text = text.replace("mode = \"required\"", "mode = \"required\"\nkeys_file = \"keys.toml\"");
    let path = support::write_config(&dir.0, &text);
    let error = switchyard::config::Config::load(&path).unwrap_err();
    assert!(error.reason.contains("no keys"), "{error}");
}

#[tokio::test]
async fn a_rotated_keys_file_is_picked_up_without_a_restart_and_a_broken_one_is_refused() {
    const NEW_OPS_KEY: &str = "sk-ops-N3wK3y8qW2eR5tY9uI4oP7aS1dF6g";
    let dir = TempDir::new();
    let gateway = gateway(&dir).await;
    let mut client = gateway.client().await;
    assert!(client.route(with_key(scored(), OPS_KEY)).await.is_ok());

    // Rotation, as a Secret volume does it: the whole file replaced at once (ops's old key removed).
    let keys = dir.0.join("api-keys.toml");
    let replace = |text: String| {
        let partial = dir.0.join(".api-keys.toml.partial");
        std::fs::write(&partial, text).unwrap();
        std::fs::rename(&partial, &keys).unwrap();
    };
    replace(format!(
        "[[keys]]\ntenant = \"ops\"\nsha256 = \"{}\"\n[[keys]]\ntenant = \"web\"\nsha256 = \"{}\"\n",
        switchyard::auth::hash_key(NEW_OPS_KEY),
        switchyard::auth::hash_key(WEB_KEY)
    ));
    let mut rotated = false;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if client.route(with_key(scored(), NEW_OPS_KEY)).await.is_ok() {
            rotated = true;
            break;
        }
    }
    assert!(rotated, "the new key works without a restart");
    let old = client.route(with_key(scored(), OPS_KEY)).await.unwrap_err();
    assert_eq!(old.code(), Code::Unauthenticated, "the removed key no longer works");
    assert!(
        client.route(with_key(scored(), WEB_KEY)).await.is_ok(),
        "untouched keys keep working"
    );

    // A broken file is refused: the keys in force stay.
    replace("[[keys]]\ntenant = \"ops\"\n".to_owned());
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(
        client.route(with_key(scored(), NEW_OPS_KEY)).await.is_ok(),
        "the running keys stay after a bad edit"
    );
}
