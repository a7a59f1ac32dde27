"""Rewrite an exported `LinearClassifier` over TF-IDF features as a sparse gather-and-sum.

skl2onnx exports the classifier's head as one `LinearClassifier` node: a dense [classes x features] product per
row (153 x 9,003 here, 5.5 MB of weights read for every request at batch 1), although a request has only a few
dozen non-zero TF-IDF features. The rewrite keeps the model an ordinary ONNX graph and makes its cost follow the
non-zeros instead (an embedding-bag formulation):

    nz       = NonZero(features)                       # [2, K]: (row, column) of each non-zero
    values   = GatherND(features, Transpose(nz))       # [K]
    weights  = Gather(W^T, nz[1])                      # [K, classes]: one weight row per non-zero feature
    scores   = ScatterND(bias per row, nz[0], weights * values, reduction="add")   # [rows, classes]
    probabilities = Softmax(scores)                    # the LinearClassifier's SOFTMAX post-transform
    label    = Gather(class labels, ArgMax(scores))

Only standard operators (opset 16+ for ScatterND's reduction); the outputs keep their names and meaning.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
# The op types a dense head over the vocabulary would use; the rewritten graph must contain none of them.
DENSE_LINEAR_OPS = ("LinearClassifier", "LinearRegressor", "Gemm", "MatMul")


def sparsify(model: onnx.ModelProto) -> onnx.ModelProto:
    """Replace the graph's `LinearClassifier` (SOFTMAX post-transform) and the L1 `Normalizer` after it."""
    graph = model.graph
    head = _only(graph, "LinearClassifier")
    attributes = {a.name: helper.get_attribute_value(a) for a in head.attribute}
    if attributes.get("post_transform") != b"SOFTMAX":
        raise ValueError(f"expected a SOFTMAX post-transform, found {attributes.get('post_transform')!r}")
    labels = [label.decode() for label in attributes["classlabels_strings"]]
    classes = len(labels)
    coefficients = np.asarray(attributes["coefficients"], dtype=np.float32).reshape(classes, -1)
    intercepts = np.asarray(attributes["intercepts"], dtype=np.float32).reshape(1, classes)
    features_in, label_out, raw_probabilities = head.input[0], head.output[0], head.output[1]
    normalizer = next((n for n in graph.node if n.op_type == "Normalizer" and list(n.input) == [raw_probabilities]), None)
    probabilities_out = normalizer.output[0] if normalizer is not None else raw_probabilities

    def name(suffix: str) -> str:
        return f"sparse_head_{suffix}"

    initializers = [
        numpy_helper.from_array(np.ascontiguousarray(coefficients.T), name("weights")),  # [features, classes]
        numpy_helper.from_array(intercepts, name("intercepts")),
        numpy_helper.from_array(np.asarray(labels, dtype=object), name("labels")),
        numpy_helper.from_array(np.asarray(1, dtype=np.int64), name("one_scalar")),
        numpy_helper.from_array(np.asarray(0, dtype=np.int64), name("zero_scalar")),
        numpy_helper.from_array(np.asarray([1], dtype=np.int64), name("axis_1")),
        numpy_helper.from_array(np.asarray([classes], dtype=np.int64), name("classes")),
    ]
    nodes = [
        helper.make_node("NonZero", [features_in], [name("nz")]),
        helper.make_node("Transpose", [name("nz")], [name("nz_t")], perm=[1, 0]),
        helper.make_node("GatherND", [features_in, name("nz_t")], [name("values")]),
        helper.make_node("Gather", [name("nz"), name("zero_scalar")], [name("rows")], axis=0),
        helper.make_node("Gather", [name("nz"), name("one_scalar")], [name("columns")], axis=0),
        helper.make_node("Gather", [name("weights"), name("columns")], [name("weight_rows")], axis=0),
        helper.make_node("Unsqueeze", [name("values"), name("axis_1")], [name("values_col")]),
        helper.make_node("Mul", [name("weight_rows"), name("values_col")], [name("contributions")]),
        helper.make_node("Unsqueeze", [name("rows"), name("axis_1")], [name("row_index")]),
        helper.make_node("Shape", [features_in], [name("batch")], start=0, end=1),
        helper.make_node("Concat", [name("batch"), name("classes")], [name("score_shape")], axis=0),
        helper.make_node("Expand", [name("intercepts"), name("score_shape")], [name("bias")]),
        helper.make_node(
            "ScatterND", [name("bias"), name("row_index"), name("contributions")], [name("scores")], reduction="add"
        ),
        helper.make_node("Softmax", [name("scores")], [probabilities_out], axis=1),
        helper.make_node("ArgMax", [name("scores")], [name("best")], axis=1, keepdims=0),
        helper.make_node("Gather", [name("labels"), name("best")], [label_out], axis=0),
    ]
    kept = [n for n in graph.node if n is not head and n is not normalizer]
    del graph.node[:]
    graph.node.extend(_row_norms_without_normalizer(kept) + nodes)
    graph.initializer.extend(initializers)
    graph.initializer.append(numpy_helper.from_array(np.asarray(np.finfo(np.float32).tiny, dtype=np.float32), "l2_floor"))
    _require_opset(model, OPSET)
    for output in graph.output:
        if output.name == label_out:
            output.type.tensor_type.elem_type = TensorProto.STRING
    onnx.checker.check_model(model)
    dense = [n.op_type for n in graph.node if n.op_type in DENSE_LINEAR_OPS]
    if dense:
        raise ValueError(f"the rewritten graph still has dense linear nodes: {dense}")
    return model


def _row_norms_without_normalizer(nodes: list[onnx.NodeProto]) -> list[onnx.NodeProto]:
    """Each L2 `Normalizer` as `x / max(ReduceL2(x), tiny)`: the same values (an all-zero row stays zero) at a
    fraction of the cost (ONNX Runtime's ai.onnx.ml Normalizer walks the row element by element, ~3 us per
    thousand features here; ReduceL2 and Div are vectorised)."""
    rewritten = []
    for node in nodes:
        norm = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "norm"), None)
        if node.op_type != "Normalizer" or norm != b"L2":
            rewritten.append(node)
            continue
        x, y = node.input[0], node.output[0]
        rewritten += [
            helper.make_node("ReduceL2", [x], [f"{y}_l2"], axes=[1], keepdims=1),
            helper.make_node("Max", [f"{y}_l2", "l2_floor"], [f"{y}_l2_floored"]),
            helper.make_node("Div", [x, f"{y}_l2_floored"], [y]),
        ]
    return rewritten


def _only(graph: onnx.GraphProto, op_type: str) -> onnx.NodeProto:
    found = [n for n in graph.node if n.op_type == op_type]
    if len(found) != 1:
        raise ValueError(f"expected one {op_type} node, found {len(found)}")
    return found[0]


def _require_opset(model: onnx.ModelProto, version: int) -> None:
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx"):
            if opset.version < version:
                opset.version = version
            return
    model.opset_import.append(helper.make_opsetid("", version))
