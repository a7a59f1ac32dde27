//! Generates the `switchyard.v1` and `inference` (Open Inference Protocol) types and services with a pure-Rust
//! protobuf compiler (no system `protoc`), and writes the encoded descriptor sets that gRPC server reflection
//! serves.

use std::path::PathBuf;

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    for (proto, descriptor) in [
        ("switchyard/v1/router.proto", "switchyard_v1_descriptor.bin"),
        ("inference/grpc_predict_v2.proto", "inference_descriptor.bin"),
    ] {
        println!("cargo:rerun-if-changed={proto}");
        let descriptors = protox::compile([proto], ["."])?;
        std::fs::write(out.join(descriptor), descriptors.encode_to_vec())?;
        tonic_prost_build::configure().compile_fds(descriptors)?;
    }
    Ok(())
}
