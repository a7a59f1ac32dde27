//! The Open Inference Protocol (KServe v2) endpoint, driven by the standard client, PyPI `tritonclient[grpc]`
//! (`tests/clients/tritonclient_check.py`, in the pinned environment of `deploy/setup/requirements-tritonclient.txt`):
//! the same probabilities as the Router path for the same records and texts, the protocol's metadata, and clear
//! refusals. Protocol details a client library hides (typed contents, malformed tensors) are checked in-process.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::process::Command;

use prost_types::value::Kind;
use serde_json::{Value, json};
use support::{Gateway, TempDir, config, request, telco_record, telco_records};
use switchyard_proto::inference::grpc_inference_service_client::GrpcInferenceServiceClient;
use switchyard_proto::inference::model_infer_request::InferInputTensor;
use switchyard_proto::inference::{InferTensorContents, ModelInferRequest};

/// The pinned environment of the standard client.
fn python() -> String {
    support::python_env(
        "SWITCHYARD_TRITONCLIENT_PYTHON",
        "deploy/setup/requirements-tritonclient.txt",
    )
}

fn to_json(record: &prost_types::Struct) -> Value {
    let fields = record.fields.iter().map(|(k, v)| {
        let value = match &v.kind {
            Some(Kind::StringValue(s)) => json!(s),
            Some(Kind::NumberValue(n)) => json!(n),
            _ => Value::Null,
        };
        (k.clone(), value)
    });
    Value::Object(fields.collect())
}

const TEXTS: [(&str, bool); 4] = [
    ("what is my bank balance", false),
    ("why is this customer likely to leave", true),
    ("tell me a joke", false),
    ("", true),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tritonclient_gets_the_router_paths_probabilities() {
    let gateway = Gateway::start(&config("http://127.0.0.1:1/v1", "1s")).await;
    let dir = TempDir::new();
    let requests = json!({
        "records": telco_records().iter().map(to_json).collect::<Vec<_>>(),
        "texts": TEXTS.iter().map(|(t, r)| json!([t, r])).collect::<Vec<_>>(),
    });
    std::fs::write(dir.0.join("requests.json"), requests.to_string()).unwrap();
    let out = Command::new(python())
        .arg(support::repo().join("router/tests/clients/tritonclient_check.py"))
        .arg(gateway.addr().to_string())
        .arg(dir.0.join("requests.json"))
        .arg(dir.0.join("answers.json"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let answers: Value = serde_json::from_str(&std::fs::read_to_string(dir.0.join("answers.json")).unwrap()).unwrap();

    assert_eq!(answers["live"], true);
    assert_eq!(answers["ready"], true);
    assert_eq!(answers["server"]["name"], "switchyard");
    assert_eq!(
        answers["models_ready"],
        json!({"churn-scorer": true, "request-classifier": true, "no-such-model": false})
    );
    let scorer = &answers["metadata"]["churn-scorer"];
    assert_eq!(scorer["versions"], json!(["1.0.0"]));
    assert_eq!(scorer["platform"], "onnxruntime_onnx");
    assert_eq!(scorer["inputs"].as_array().unwrap().len(), 19);
    assert!(
        scorer["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["name"] == "contract" && i["datatype"] == "BYTES" && i["shape"] == json!(["-1", "1"]))
    );
    assert_eq!(
        answers["metadata"]["request-classifier"]["outputs"][0],
        json!({"name": "probabilities", "datatype": "FP32", "shape": ["-1", "153"]})
    );

    // The scorer: each record's probability and verdict as Route gives them.
    let mut client = gateway.client().await;
    assert_eq!(answers["scorer"]["id"], "scorer-1");
    assert_eq!(answers["scorer"]["version"], "1.0.0");
    for (row, record) in telco_records().into_iter().enumerate() {
        let routed = client.route(request("", Some(record))).await.unwrap().into_inner();
        let prediction = routed.prediction.unwrap();
        let v2 = answers["scorer"]["probability"][row].as_f64().unwrap();
        assert!(
            (v2 - f64::from(prediction.score)).abs() < 1e-6,
            "row {row}: {v2} vs {}",
            prediction.score
        );
        assert_eq!(
            answers["scorer"]["churn"][row],
            prediction.label == "churn",
            "row {row}"
        );
    }

    // The classifier: the decided label and the top five probabilities as Explain gives them.
    for (row, (text, has_record)) in TEXTS.into_iter().enumerate() {
        let decision = client
            .explain(request(text, has_record.then(telco_record)))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            answers["classifier"]["label"][row],
            decision.label.as_str(),
            "row {row}"
        );
        let mut v2: Vec<f64> = answers["classifier"]["probabilities"][row]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_f64().unwrap())
            .collect();
        assert_eq!(v2.len(), 153);
        v2.sort_by(|a, b| b.total_cmp(a));
        for (rank, label) in decision.top_labels.iter().enumerate() {
            assert!(
                (v2[rank] - f64::from(label.probability)).abs() < 1e-6,
                "row {row} rank {rank}"
            );
        }
    }

    // Refusals, as the client sees them.
    let errors = &answers["errors"];
    assert_eq!(errors["unknown_model"]["status"], "StatusCode.NOT_FOUND", "{errors}");
    assert!(
        errors["unknown_model"]["message"]
            .as_str()
            .unwrap()
            .contains("churn-scorer (1.0.0)")
    );
    assert_eq!(errors["out_of_range"]["status"], "StatusCode.INVALID_ARGUMENT");
    assert!(
        errors["out_of_range"]["message"]
            .as_str()
            .unwrap()
            .contains("inputs.tenure: row 0: outside the plausible range")
    );
    assert_eq!(errors["missing_input"]["status"], "StatusCode.INVALID_ARGUMENT");
    assert!(errors["missing_input"]["message"].as_str().unwrap().contains("missing"));
}

fn text_tensor(texts: &[&str]) -> InferInputTensor {
    InferInputTensor {
        name: "text".into(),
        datatype: "BYTES".into(),
        shape: vec![i64::try_from(texts.len()).unwrap(), 1],
        contents: Some(InferTensorContents {
            bytes_contents: texts.iter().map(|t| t.as_bytes().to_vec()).collect(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_contents_work_and_malformed_calls_are_refused_without_harm() {
    let gateway = Gateway::start(&config("http://127.0.0.1:1/v1", "1s")).await;
    let mut v2 = GrpcInferenceServiceClient::new(gateway.channel().await);
    let infer = |inputs: Vec<InferInputTensor>| ModelInferRequest {
        model_name: "request-classifier".into(),
        id: "x".into(),
        inputs,
        ..Default::default()
    };
    // Typed contents (no raw bytes), `has_record` left out: every row is a question without a record.
    let answer = v2
        .model_infer(infer(vec![text_tensor(&["what is my bank balance", "book a flight"])]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.id, "x");
    let names: Vec<&str> = answer.outputs.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["probabilities", "label"]);
    assert_eq!(answer.outputs[0].shape, [2, 153]);
    assert_eq!(answer.raw_output_contents[0].len(), 2 * 153 * 4);
    let sums: Vec<f32> = answer.raw_output_contents[0]
        .chunks_exact(153 * 4)
        .map(|row| {
            row.chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .sum()
        })
        .collect();
    assert!(sums.iter().all(|s| (s - 1.0).abs() < 1e-3), "{sums:?}");

    let refused = [
        (infer(vec![]), tonic::Code::InvalidArgument, "inputs: no input tensors"),
        (
            ModelInferRequest {
                model_version: "9.9.9".into(),
                ..infer(vec![text_tensor(&["hi"])])
            },
            tonic::Code::NotFound,
            "unknown model \"request-classifier\" version \"9.9.9\"",
        ),
        (
            infer(vec![InferInputTensor {
                shape: vec![1, 2],
                ..text_tensor(&["a", "b"])
            }]),
            tonic::Code::InvalidArgument,
            "inputs.text: shape [1, 2]",
        ),
        (
            infer(vec![
                text_tensor(&["a"]),
                InferInputTensor {
                    name: "extra".into(),
                    ..text_tensor(&["b"])
                },
            ]),
            tonic::Code::InvalidArgument,
            "inputs.extra: not an input of this model",
        ),
        (
            infer(vec![text_tensor(&["fine", "not\0 fine"])]),
            tonic::Code::InvalidArgument,
            "inputs.text: contains a NUL character",
        ),
        (
            infer(vec![text_tensor(&vec!["a"; 1025])]),
            tonic::Code::InvalidArgument,
            "1025 rows; at most 1024 per call",
        ),
        (
            ModelInferRequest {
                outputs: vec![
                    switchyard_proto::inference::model_infer_request::InferRequestedOutputTensor {
                        name: "logits".into(),
                        ..Default::default()
                    },
                ],
                ..infer(vec![text_tensor(&["hi"])])
            },
            tonic::Code::InvalidArgument,
            "outputs.logits",
        ),
    ];
    for (call, code, message) in refused {
        let status = v2.model_infer(call).await.unwrap_err();
        assert_eq!(status.code(), code, "{status:?}");
        assert!(
            status.message().contains(message),
            "want {message:?} in {:?}",
            status.message()
        );
    }
    // Nothing above affected the service.
    let mut client = gateway.client().await;
    assert!(client.route(request("", Some(telco_record()))).await.is_ok());
    assert!(v2.model_infer(infer(vec![text_tensor(&["hi"])])).await.is_ok());
}
