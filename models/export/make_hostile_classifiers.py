#!/usr/bin/env python3
"""Write the two hostile tenant classifiers the isolation tests use (a few hundred bytes each),
both 3-label models of the accepted signature that pass validation on its short probe text:

- models/tests/fixtures/hungry_classifier.onnx fills a float tensor of 1,000,000 values per
  token of the input (4 MB a token): the probe (about 6 tokens) needs about 24 MB, a text of
  100 tokens 400 MB.
- models/tests/fixtures/slow_classifier.onnx runs a Loop of 64x64 matrix products 2,000 times
  for every token past the 16th: nothing for the probe, seconds for a long text.

Deterministic (no random weights). Run with models/.venv/bin/python (see export.sh for the
pinned numpy and onnx versions): `models/.venv/bin/python models/export/make_hostile_classifiers.py`."""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures")
INPUTS = [
    helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
    helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "sequence"]),
]
OUTPUTS = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3])]


def const(name, values, dtype):
    return numpy_helper.from_array(np.array(values, dtype=dtype), name)


def base_logits():
    """[batch, 3] logits from the mean token id: the part that makes a real answer."""
    inits = [const("axis1", [1], np.int64), const("proj", [[0.001, -0.001, 0.0]], np.float32)]
    nodes = [
        helper.make_node("Cast", ["input_ids"], ["idsf"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["idsf"], ["mean"], axes=[1], keepdims=1),
        helper.make_node("MatMul", ["mean", "proj"], ["base"]),
    ]
    return inits, nodes


def save(name, nodes, inits):
    graph = helper.make_graph(nodes, name, INPUTS, OUTPUTS, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="switchboard-test")
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = os.path.join(OUT, name + ".onnx")
    onnx.save(model, path)
    print(path, os.path.getsize(path))


def hungry():
    inits, nodes = base_logits()
    inits += [
        const("idx0", [0], np.int64),
        const("idx1", [1], np.int64),
        const("per_token", [1_000_000], np.int64),
        const("zero", [[0.0]], np.float32),
    ]
    nodes += [
        helper.make_node("Shape", ["input_ids"], ["shape"]),
        helper.make_node("Gather", ["shape", "idx0"], ["batch"], axis=0),
        helper.make_node("Gather", ["shape", "idx1"], ["tokens"], axis=0),
        helper.make_node("Mul", ["tokens", "per_token"], ["width"]),
        helper.make_node("Concat", ["batch", "width"], ["big_shape"], axis=0),
        helper.make_node(
            "ConstantOfShape", ["big_shape"], ["big"],
            value=helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0]),
        ),
        helper.make_node("ReduceSum", ["big", "axis1"], ["total"], keepdims=1),
        helper.make_node("Mul", ["total", "zero"], ["nothing"]),
        helper.make_node("Add", ["base", "nothing"], ["logits"]),
    ]
    save("hungry_classifier", nodes, inits)


def slow():
    inits, nodes = base_logits()
    inits += [
        const("idx1", [1], np.int64),
        const("free_tokens", [16], np.int64),
        const("none", [0], np.int64),
        const("per_token", [2_000], np.int64),
        const("keep_going", True, np.bool_),
        const("square", [64, 64], np.int64),
        const("zero", [[0.0]], np.float32),
    ]
    body = helper.make_graph(
        [
            helper.make_node("MatMul", ["state_in", "weights"], ["product"]),
            helper.make_node("Tanh", ["product"], ["state_out"]),
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
        ],
        "spin",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("state_in", TensorProto.FLOAT, [64, 64]),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("state_out", TensorProto.FLOAT, [64, 64]),
        ],
    )
    fill = lambda name, value: helper.make_node(
        "ConstantOfShape", ["square"], [name], value=helper.make_tensor(name + "_v", TensorProto.FLOAT, [1], [value]),
    )
    nodes += [
        fill("state0", 0.5),
        fill("weights", 1.0 / 64),
        helper.make_node("Shape", ["input_ids"], ["shape"]),
        helper.make_node("Gather", ["shape", "idx1"], ["tokens"], axis=0),
        helper.make_node("Sub", ["tokens", "free_tokens"], ["extra"]),
        helper.make_node("Max", ["extra", "none"], ["paid"]),
        helper.make_node("Mul", ["paid", "per_token"], ["trips1"]),
        helper.make_node("Squeeze", ["trips1"], ["trips"]),
        helper.make_node("Loop", ["trips", "keep_going", "state0"], ["state"], body=body),
        helper.make_node("ReduceSum", ["state"], ["total"], keepdims=1),
        helper.make_node("Mul", ["total", "zero"], ["nothing"]),
        helper.make_node("Add", ["base", "nothing"], ["logits"]),
    ]
    save("slow_classifier", nodes, inits)


hungry()
slow()
