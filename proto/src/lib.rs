//! Switchyard's gRPC contracts: its own (`proto/switchyard/v1/router.proto`) and the Open Inference Protocol
//! (`proto/inference/grpc_predict_v2.proto`, KServe v2) that it serves for its models.
//!
//! Generated types stay at the edge: the router converts them to its domain types with `From`/`TryFrom`.

/// The `switchyard.v1` package: messages, the `Router` server and client.
#[allow(missing_docs, clippy::all)]
pub mod v1 {
    tonic::include_proto!("switchyard.v1");
}

/// The `inference` package (Open Inference Protocol, KServe v2): messages, the `GRPCInferenceService` server and
/// client.
#[allow(missing_docs, clippy::all)]
pub mod inference {
    tonic::include_proto!("inference");
}

pub mod record;

/// The encoded `FileDescriptorSet` of the contract (with its imports), for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/switchyard_v1_descriptor.bin"));

/// The encoded `FileDescriptorSet` of the Open Inference Protocol, for gRPC server reflection.
pub const INFERENCE_FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/inference_descriptor.bin"));
