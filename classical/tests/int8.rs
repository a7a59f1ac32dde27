//! The int8 matrix products the gateway serves are exact on whatever CPU runs this test.
//!
//! `fixtures/int8_saturation.onnx` (written by `classical/training/probes/int8_saturation.py`) is one
//! `MatMulInteger` of uint8 activations by int8 weights of 127. With activations of 255 every pair of
//! neighbouring products sums to 64,770, which ONNX Runtime's u8 × s8 kernels on x86 CPUs without VNNI clamp to
//! 32,767 (`VPMADDUBSW`); the answer is then about half the exact one. The served sessions must give the exact
//! integer on every CPU, and the CPU's own kernel is held to what `classical::kernels` says of it.

// Test code: a failed expectation is the test failing, so unwrap/expect/panic are the point here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(dead_code)]
mod common;

use std::path::{Path, PathBuf};

use classical::kernels::machine_summary;
use classical::{InstructionSets, Int8Products};
use common::runtime;
use ort::session::SessionInputValue;
use ort::value::Tensor;

/// The graph's inner dimension.
const K: usize = 64;

fn probe() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/int8_saturation.onnx")
}

/// Each row's products (every output column is the same sum) for rows of `K` equal activations.
fn products(products: Int8Products, activations: &[u8]) -> Vec<i32> {
    let mut session = runtime().session_with(&probe(), products).expect("the probe loads");
    let values: Vec<u8> = activations.iter().flat_map(|&a| [a; K]).collect();
    let input: SessionInputValue<'static> = Tensor::from_array(([activations.len(), K], values))
        .expect("tensor")
        .into();
    let outputs = session.run(vec![("activations".to_owned(), input)]).expect("runs");
    let (shape, data) = outputs
        .get("products")
        .expect("products output")
        .try_extract_tensor::<i32>()
        .expect("int32 products");
    let columns = usize::try_from(shape[1]).expect("columns");
    data.chunks(columns).map(|row| row[0]).collect()
}

#[test]
fn served_int8_products_are_exact_on_this_cpu_even_where_its_own_kernel_saturates() {
    let sets = InstructionSets::detect();
    println!("machine: {}", machine_summary());
    // 255 saturates a pair (2 × 255 × 127 > 32,767); 128 does exactly (2 × 128 × 127 = 32,512); 3 never does.
    let activations = [255_u8, 128, 3];
    let exact: Vec<i32> = activations.iter().map(|&a| (K as i32) * i32::from(a) * 127).collect();
    assert_eq!(products(Int8Products::Exact, &activations), exact, "{}", sets.summary());

    let native = products(Int8Products::Native, &activations);
    if sets.u8s8_saturates() {
        // The CPU's own kernel clamps each pair: what the served sessions avoid.
        let clamped = (K as i32 / 2) * 32_767;
        assert_eq!(native, vec![clamped, exact[1], exact[2]], "{}", sets.summary());
    } else {
        assert_eq!(native, exact, "{}: this CPU's kernel is exact", sets.summary());
    }
}
