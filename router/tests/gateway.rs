//! The gateway through its public gRPC surface: real binary, real models, ephemeral port.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use prost_types::Value;
use prost_types::value::Kind;
use support::{
    FakeLlm, Fault, Gateway, assert_status, config, free_port, n, record, request, s, stream_events, stream_failure,
    telco_record,
};
use switchyard_proto::v1::{RouteRequest, TargetKind, route_event::Event};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_types::StatusExt;

/// A gateway whose LLM backend is a closed port: the classical path must work regardless.
async fn gateway_without_llm() -> Gateway {
    Gateway::start(&config(&format!("http://127.0.0.1:{}/v1", free_port()), "2s")).await
}

#[tokio::test]
async fn health_is_serving_per_service_and_reflection_lists_the_router() {
    let gateway = gateway_without_llm().await;
    assert_eq!(gateway.health("").await, ServingStatus::Serving);
    assert_eq!(gateway.health("switchyard.v1.Router").await, ServingStatus::Serving);

    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let mut reflection = ServerReflectionClient::new(gateway.channel().await);
    let requests = tokio_stream::iter([ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    }]);
    let mut responses = reflection.server_reflection_info(requests).await.unwrap().into_inner();
    let response = responses.message().await.unwrap().expect("a reflection answer");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("expected a service list")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(names.contains(&"switchyard.v1.Router".to_owned()), "{names:?}");
    assert!(names.contains(&"grpc.health.v1.Health".to_owned()), "{names:?}");

    // grpcurl (1.8) and other tools speak only the v1alpha protocol.
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient as AlphaClient;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest as AlphaRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse as AlphaResponse;
    let mut alpha = AlphaClient::new(gateway.channel().await);
    let requests = tokio_stream::iter([tonic_reflection::pb::v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(AlphaRequest::FileContainingSymbol("switchyard.v1.Router".into())),
    }]);
    let mut responses = alpha.server_reflection_info(requests).await.unwrap().into_inner();
    let response = responses.message().await.unwrap().expect("a v1alpha answer");
    let Some(AlphaResponse::FileDescriptorResponse(files)) = response.message_response else {
        panic!("expected the file defining switchyard.v1.Router")
    };
    assert!(!files.file_descriptor_proto.is_empty());
}

#[tokio::test]
async fn a_record_alone_is_scored_by_the_onnx_scorer() {
    let gateway = gateway_without_llm().await;
    let mut client = gateway.client().await;
    let response = client
        .route(request("", Some(telco_record())))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.request_id.len(), 36, "a request id is generated");
    let decision = response.decision.unwrap();
    assert_eq!(decision.label, "churn_score");
    assert_eq!(decision.label_group, "customer_record");
    assert_eq!(decision.target, "churn");
    assert_eq!(decision.target_kind(), TargetKind::Classical);
    assert_eq!(decision.rule, "score-record");
    assert!(!decision.policy_version.is_empty());
    assert_eq!(decision.classifier.unwrap().name, "request-classifier");
    let prediction = response.prediction.unwrap();
    assert_eq!(prediction.model, "churn-scorer");
    // A month-to-month fiber customer two months in is a textbook churn risk.
    assert!(
        prediction.score > 0.5 && prediction.score < 1.0,
        "score {}",
        prediction.score
    );
    assert_eq!(prediction.label, "churn");
    assert!(response.generation.is_none() && response.rejection.is_none());
    assert!(
        prediction.top_features.is_empty(),
        "attributions are computed for hybrid targets only"
    );

    let kept = client
        .route(RouteRequest {
            request_id: "caller-1".into(),
            ..request("", Some(telco_record()))
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(kept.request_id, "caller-1");
    assert_eq!(
        kept.prediction.unwrap().score,
        prediction.score,
        "same record, same score"
    );
}

#[tokio::test]
async fn explain_shows_the_decision_without_dispatching() {
    let gateway = gateway_without_llm().await;
    let mut client = gateway.client().await;
    // The LLM backend is down, yet Explain answers: it never dispatches.
    let decision = client
        .explain(request("why is this customer likely to leave?", Some(telco_record())))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(decision.label, "churn_explain");
    assert_eq!(decision.target, "retention");
    assert_eq!(decision.target_kind(), TargetKind::Hybrid);
    assert!(decision.reason.contains("explain-record"), "{}", decision.reason);
    assert!(!decision.top_labels.is_empty() && decision.top_labels.len() <= 5);
    assert!(
        decision
            .top_labels
            .windows(2)
            .all(|w| w[0].probability >= w[1].probability)
    );
    assert_eq!(decision.top_labels[0].label, decision.label);

    let plain = client
        .explain(request("what is my checking account balance", None))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(plain.label, "balance");
    assert_eq!(plain.label_group, "banking");
    assert_eq!(plain.target_kind(), TargetKind::Llm);
    assert!(plain.reason.contains("default target"), "{}", plain.reason);
}

#[tokio::test]
async fn bad_inputs_get_invalid_argument_naming_the_problem() {
    let gateway = gateway_without_llm().await;
    let mut client = gateway.client().await;
    let with = |edit: &dyn Fn(&mut prost_types::Struct)| {
        let mut features = telco_record();
        edit(&mut features);
        request("", Some(features))
    };
    let nan = Value {
        kind: Some(Kind::NumberValue(f64::NAN)),
    };
    let cases: Vec<(RouteRequest, &str)> = vec![
        (
            with(&|f| drop(f.fields.insert("shoe_size".into(), n(42.0)))),
            "features.shoe_size: unknown feature",
        ),
        (
            with(&|f| drop(f.fields.insert("tenure".into(), s("two")))),
            "features.tenure: expected an integer",
        ),
        (
            with(&|f| drop(f.fields.insert("monthlycharges".into(), nan.clone()))),
            "features.monthlycharges: not a finite number",
        ),
        (
            with(&|f| drop(f.fields.remove("contract"))),
            "features.contract: missing",
        ),
        (
            with(&|f| drop(f.fields.insert("contract".into(), s("Weekly")))),
            "features.contract: not one of",
        ),
        (request("", None), "text: empty request"),
        // ONNX Runtime's string tensors are C strings: a NUL is the caller's mistake, not an inference failure.
        (request("what is my\0 balance", None), "text: contains a NUL character"),
        (
            with(&|f| drop(f.fields.insert("contract".into(), s("Month\0-to-month")))),
            "features.contract: contains a NUL character",
        ),
        (
            request(&"x".repeat(40_000), None),
            "text: 40000 bytes exceeds the limit",
        ),
        (
            RouteRequest {
                temperature: Some(9.0),
                ..request("hi", None)
            },
            "temperature:",
        ),
    ];
    // A message far beyond the contract is refused while it is decoded, before it is buffered whole.
    let status = client
        .route(request(&"x".repeat(1 << 20), None))
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    assert!(status.message().contains("message length too large"), "{status:?}");
    for (req, expected) in cases {
        let status = client.route(req.clone()).await.expect_err(expected);
        assert_eq!(status.code(), Code::InvalidArgument, "{expected}: {status:?}");
        assert!(
            status.message().contains(expected),
            "want {expected:?} in {:?}",
            status.message()
        );
        // The same, for a program: the field in a BadRequest violation, a stable reason in ErrorInfo.
        let field = expected.split(':').next().unwrap();
        let violations = status
            .get_details_bad_request()
            .expect("BadRequest details")
            .field_violations;
        assert!(violations.iter().any(|v| v.field == field), "{field} in {violations:?}");
        let info = status.get_details_error_info().expect("ErrorInfo details");
        assert_eq!(info.domain, "switchyard");
        assert!(info.reason.starts_with("INVALID_"), "{}", info.reason);
        let status = client.explain(req).await.expect_err(expected);
        assert_eq!(status.code(), Code::InvalidArgument, "explain {expected}: {status:?}");
    }
    // Every bad field is named at once.
    let status = client
        .route(request("", Some(record(&[("tenure", n(-1.0)), ("bogus", n(1.0))]))))
        .await
        .expect_err("invalid");
    assert!(
        status
            .message()
            .contains("features.tenure: outside the plausible range")
            && status.message().contains("features.bogus")
    );
    let fields: Vec<String> = status
        .get_details_bad_request()
        .unwrap()
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect();
    assert!(fields.contains(&"features.bogus".to_owned()) && fields.contains(&"features.tenure".to_owned()));
    assert_eq!(
        fields.len(),
        status.message().matches("features.").count(),
        "one violation per field the message names (the missing ones too): {fields:?}"
    );
    // Nothing was lost: the same gateway still scores a valid record.
    assert!(client.route(request("", Some(telco_record()))).await.is_ok());
}

#[tokio::test]
async fn force_target_is_honoured_only_for_the_tenants_and_targets_the_policy_lists() {
    let gateway = gateway_without_llm().await;
    let mut client = gateway.client().await;
    let forced = RouteRequest {
        force_target: "churn".into(),
        tenant: "ops".into(),
        ..request("what time is it", Some(telco_record()))
    };
    let response = client.route(forced).await.unwrap().into_inner();
    assert_eq!(response.decision.unwrap().target, "churn");
    assert!(response.prediction.is_some());
    // A target the tenant may not force.
    let refused = RouteRequest {
        force_target: "retention".into(),
        tenant: "ops".into(),
        ..request("hi", None)
    };
    let status = client.route(refused).await.expect_err("not allowed");
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(status.message().contains("retention") && status.message().contains("ops"));
    // A tenant the policy does not list, and no tenant at all.
    for tenant in ["acme", ""] {
        let other = RouteRequest {
            force_target: "churn".into(),
            tenant: tenant.into(),
            ..request("hi", Some(telco_record()))
        };
        let status = client.route(other).await.expect_err("tenant not allowed");
        assert_eq!(status.code(), Code::PermissionDenied, "tenant {tenant:?}");
    }
    // A forced classical target without a record says which field is missing.
    let no_record = RouteRequest {
        force_target: "churn".into(),
        tenant: "ops".into(),
        ..request("hi", None)
    };
    let status = client.route(no_record).await.expect_err("needs a record");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().starts_with("features:"), "{}", status.message());
    let reject = RouteRequest {
        force_target: "refuse".into(),
        tenant: "ops".into(),
        ..request("hi", None)
    };
    let response = client.route(reject).await.unwrap().into_inner();
    assert_eq!(response.rejection.unwrap().reason, "not here");
    assert_eq!(response.decision.unwrap().target_kind(), TargetKind::Reject);
}

#[tokio::test]
async fn llm_down_answers_unavailable_naming_the_backend_and_scores_still_work() {
    let gateway = gateway_without_llm().await;
    let mut client = gateway.client().await;
    let status = client
        .route(request("tell me a joke", None))
        .await
        .expect_err("backend down");
    assert_status(&status, Code::Unavailable, "llm backend local");
    let (events, status) = stream_failure(&mut client, request("tell me a joke", None)).await;
    assert!(matches!(events.as_slice(), [Event::Decision(_)]), "{events:?}");
    assert_eq!(status.code(), Code::Unavailable);
    assert!(
        client
            .route(request("", Some(telco_record())))
            .await
            .unwrap()
            .into_inner()
            .prediction
            .is_some()
    );
}

#[tokio::test]
async fn backend_errors_map_to_unavailable_and_deadline_exceeded() {
    let failing = FakeLlm::start(vec![Fault::Status(500, None)]).await;
    let gateway = Gateway::start(&config(&failing.base_url(), "2s")).await;
    let mut client = gateway.client().await;
    let status = client.route(request("tell me a joke", None)).await.expect_err("500");
    assert_eq!(status.code(), Code::Unavailable);
    assert!(
        status.message().contains("local") && status.message().contains("500"),
        "{}",
        status.message()
    );
    assert_eq!(failing.requests.load(std::sync::atomic::Ordering::SeqCst), 1);

    let slow = FakeLlm::start(vec![Fault::Delay(Duration::from_secs(5))]).await;
    let gateway = Gateway::start(&config(&slow.base_url(), "500ms")).await;
    let mut client = gateway.client().await;
    let status = client
        .route(request("tell me a joke", None))
        .await
        .expect_err("timeout");
    assert_status(&status, Code::DeadlineExceeded, "llm backend local timed out");
}

#[tokio::test]
async fn a_scored_stream_sends_decision_prediction_then_summary() {
    let gateway = gateway_without_llm().await;
    let mut client = gateway.client().await;
    let events = stream_events(&mut client, request("", Some(telco_record()))).await;
    assert!(matches!(events[0], Event::Decision(_)), "{events:?}");
    assert!(matches!(events[1], Event::Prediction(_)), "{events:?}");
    assert!(matches!(events.last(), Some(Event::Summary(_))), "{events:?}");
    assert_eq!(events.len(), 3);
}

#[tokio::test]
async fn sigterm_lets_in_flight_requests_finish_and_exits_zero() {
    let slow = FakeLlm::start(vec![Fault::Delay(Duration::from_millis(1500))]).await;
    let mut gateway = Gateway::start(&config(&slow.base_url(), "10s")).await;
    let mut client = gateway.client().await;
    let in_flight = tokio::spawn(async move { client.route(request("tell me a joke", None)).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    gateway.terminate();
    let response = in_flight
        .await
        .unwrap()
        .expect("the in-flight request completes")
        .into_inner();
    assert_eq!(response.generation.unwrap().text, "fake answer");
    let status = tokio::task::spawn_blocking(move || gateway.child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
}

#[tokio::test]
async fn the_cli_client_routes_and_explains_against_a_running_gateway() {
    let gateway = gateway_without_llm().await;
    let features = r#"{"gender":"Female","seniorcitizen":0,"partner":"No","dependents":"No","tenure":2,
        "phoneservice":"Yes","multiplelines":"No","internetservice":"Fiber optic","onlinesecurity":"No",
        "onlinebackup":"No","deviceprotection":"No","techsupport":"No","streamingtv":"Yes","streamingmovies":"Yes",
        "contract":"Month-to-month","paperlessbilling":"Yes","paymentmethod":"Electronic check",
        "monthlycharges":95.5,"totalcharges":190.1}"#;
    let run = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
                .args(args)
                .output()
                .unwrap()
        })
    };
    let addr = gateway.url();
    let explain = run(vec![
        "explain".into(),
        "--addr".into(),
        addr.clone(),
        "--text".into(),
        "why is this customer likely to leave?".into(),
        "--features".into(),
        features.into(),
    ])
    .await
    .unwrap();
    let out = String::from_utf8_lossy(&explain.stdout);
    assert!(explain.status.success(), "{}", String::from_utf8_lossy(&explain.stderr));
    assert!(
        out.contains("target: retention (HYBRID)") && out.contains("reason: rule \"explain-record\""),
        "{out}"
    );
    let route = run(vec![
        "route".into(),
        "--addr".into(),
        addr.clone(),
        "--features".into(),
        features.into(),
    ])
    .await
    .unwrap();
    let out = String::from_utf8_lossy(&route.stdout);
    assert!(
        route.status.success() && out.contains("prediction: churn-scorer 1.0.0"),
        "{out}"
    );
    let bad = run(vec![
        "route".into(),
        "--addr".into(),
        addr,
        "--features".into(),
        r#"{"tenure":"x"}"#.into(),
    ])
    .await
    .unwrap();
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("features.tenure"),
        "errors reach the user"
    );
}
