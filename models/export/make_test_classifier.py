#!/usr/bin/env python3
"""Write models/tests/fixtures/tiny_classifier.onnx: a 3-label toy text classifier (a few KB)
used by the bring-your-own-model tests. Token ids are folded into 64 buckets, embedded, averaged
over the mask and projected to 3 logits. Weights are seeded random: the tests check validation,
not quality. Run with models/.venv/bin/python."""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "tiny_classifier.onnx")
labels = int(sys.argv[2]) if len(sys.argv) > 2 else 3
rng = np.random.default_rng(3)
inits = [
    numpy_helper.from_array(np.array([64], dtype=np.int64), "buckets"),
    numpy_helper.from_array(rng.normal(size=(64, 8)).astype(np.float32), "table"),
    numpy_helper.from_array(rng.normal(size=(8, labels)).astype(np.float32), "proj"),
    numpy_helper.from_array(np.zeros(labels, dtype=np.float32), "bias"),
    numpy_helper.from_array(np.array([2], dtype=np.int64), "axis2"),
    numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
]
nodes = [
    helper.make_node("Mod", ["input_ids", "buckets"], ["bucket"]),
    helper.make_node("Gather", ["table", "bucket"], ["emb"], axis=0),
    helper.make_node("Cast", ["attention_mask"], ["maskf"], to=TensorProto.FLOAT),
    helper.make_node("Unsqueeze", ["maskf", "axis2"], ["mask3"]),
    helper.make_node("Mul", ["emb", "mask3"], ["masked"]),
    helper.make_node("ReduceSum", ["masked", "axis1"], ["summed"], keepdims=0),
    helper.make_node("MatMul", ["summed", "proj"], ["projected"]),
    helper.make_node("Add", ["projected", "bias"], ["logits"]),
]
graph = helper.make_graph(
    nodes,
    "tiny_classifier",
    [
        helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
        helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "sequence"]),
    ],
    [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", labels])],
    inits,
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="switchboard-test")
model.ir_version = 8
onnx.checker.check_model(model)
onnx.save(model, out)
print(out, os.path.getsize(out))
