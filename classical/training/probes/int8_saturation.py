"""Writes classical/tests/fixtures/int8_saturation.onnx: one MatMulInteger whose exact answer ONNX Runtime's u8 x s8
kernels get wrong on x86 CPUs without VNNI unless the session asks for exact products.

The activations are uint8 255 and the weights int8 127, so every pair of neighbouring products sums to
2 x 255 x 127 = 64,770: over the 32,767 that VPMADDUBSW (AVX2, AVX-512 without VNNI) saturates at. The exact
answer of a row is K x 255 x 127; the saturating kernels give about half of it. classical/tests/int8.rs holds the
served session to the exact answer on whatever CPU runs it.

Run with the training environment (onnx from classical/training/requirements.txt):
    python classical/training/probes/int8_saturation.py
"""

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

K = 64  # the inner dimension: 32 saturating pairs per output
N = 4  # output columns
OUT = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "int8_saturation.onnx"


def main() -> None:
    weights = numpy_helper.from_array(np.full((K, N), 127, dtype=np.int8), name="weights")
    node = helper.make_node("MatMulInteger", ["activations", "weights"], ["products"])
    graph = helper.make_graph(
        [node],
        "int8_saturation",
        [helper.make_tensor_value_info("activations", TensorProto.UINT8, [None, K])],
        [helper.make_tensor_value_info("products", TensorProto.INT32, [None, N])],
        initializer=[weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="switchyard")
    model.ir_version = 8
    onnx.checker.check_model(model)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, OUT)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes); exact row sum {K * 255 * 127}")


if __name__ == "__main__":
    main()
