//! Switchyard's gRPC contract, generated from `proto/switchyard/v1/router.proto`.
//!
//! Generated types stay at the edge: the router converts them to its domain types with `From`/`TryFrom`.

/// The `switchyard.v1` package: messages, the `Router` server and client.
#[allow(missing_docs, clippy::all)]
pub mod v1 {
    tonic::include_proto!("switchyard.v1");
}

pub mod record;

/// The encoded `FileDescriptorSet` of the contract (with its imports), for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/switchyard_v1_descriptor.bin"));
