//! The shipped classifier's graph costs what a request's non-zero features cost: its weight table is read row by
//! row (`Gather`), never multiplied whole. A regression guard that needs no timing: it reads the ONNX file.

// Test code: a failed expectation is the test failing, so unwrap/expect/panic are the point here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

// Only the model paths are used here.
#[allow(dead_code)]
mod common;

use prost::Message;

/// The few fields of `onnx.ModelProto` this check reads (field numbers from onnx/onnx.proto; others skipped).
#[derive(Clone, PartialEq, Message)]
struct ModelProto {
    #[prost(message, optional, tag = "7")]
    graph: Option<GraphProto>,
}

#[derive(Clone, PartialEq, Message)]
struct GraphProto {
    #[prost(message, repeated, tag = "1")]
    node: Vec<NodeProto>,
    #[prost(message, repeated, tag = "5")]
    initializer: Vec<TensorProto>,
}

#[derive(Clone, PartialEq, Message)]
struct NodeProto {
    #[prost(string, repeated, tag = "1")]
    input: Vec<String>,
    #[prost(string, tag = "4")]
    op_type: String,
}

#[derive(Clone, PartialEq, Message)]
struct TensorProto {
    #[prost(int64, repeated, tag = "1")]
    dims: Vec<i64>,
    #[prost(string, tag = "8")]
    name: String,
}

/// Operators that multiply a whole weight matrix by the feature vector.
const DENSE_LINEAR_OPS: [&str; 4] = ["LinearClassifier", "LinearRegressor", "Gemm", "MatMul"];
/// A weight table at least this large is "over the vocabulary" (the classifier's is 9,003 × 153).
const LARGE_TABLE: i64 = 100_000;

fn graph(model: &str) -> GraphProto {
    let bytes = std::fs::read(common::model_file(model, "model.onnx")).expect("the model file");
    ModelProto::decode(bytes.as_slice())
        .expect("an ONNX ModelProto")
        .graph
        .expect("a graph")
}

#[test]
fn the_classifier_graph_has_no_dense_linear_node() {
    let graph = graph(common::CLASSIFIER);
    let dense: Vec<&str> = graph
        .node
        .iter()
        .map(|n| n.op_type.as_str())
        .filter(|op| DENSE_LINEAR_OPS.contains(op))
        .collect();
    assert!(dense.is_empty(), "dense linear nodes in the classifier: {dense:?}");
}

#[test]
fn the_classifier_reads_its_weight_table_row_by_row() {
    let graph = graph(common::CLASSIFIER);
    let tables: Vec<&TensorProto> = graph
        .initializer
        .iter()
        .filter(|t| t.dims.iter().product::<i64>() >= LARGE_TABLE)
        .collect();
    assert!(
        !tables.is_empty(),
        "no weight table found: the check would prove nothing"
    );
    for table in tables {
        let readers: Vec<&str> = graph
            .node
            .iter()
            .filter(|n| n.input.contains(&table.name))
            .map(|n| n.op_type.as_str())
            .collect();
        assert!(
            !readers.is_empty() && readers.iter().all(|op| *op == "Gather"),
            "{} {:?} is read by {readers:?}, not only by Gather",
            table.name,
            table.dims
        );
    }
}
