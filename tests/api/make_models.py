"""Writes the small ONNX models the API tests use into the folder given as argv[1].

add.onnx:  x f32[batch,3] -> y = x + [1, 2, 3], z = Relu(x) (two outputs, a dynamic dim)
half.onnx: x f16[2,3] -> y = Relu(x) * 2 (an fp16 program, for conversion at the boundary)
conv.onnx: x f32[1,2,8,8] -> Conv 3x3 (4 channels) -> Relu -> y (runs on XNNPACK with threads)
calib/<k>/x.npy: 4 calibration samples for conv.onnx
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

out = sys.argv[1]
os.makedirs(out, exist_ok=True)


def save(graph, name):
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    onnx.save(m, os.path.join(out, name))


b = numpy_helper.from_array(np.array([1, 2, 3], dtype=np.float32), "b")
save(helper.make_graph(
    [helper.make_node("Add", ["x", "b"], ["y"], name="add0"),
     helper.make_node("Relu", ["x"], ["z"], name="relu0")],
    "add",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3]),
     helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", 3])],
    [b]), "add.onnx")

two = numpy_helper.from_array(np.array(2, dtype=np.float16), "two")
save(helper.make_graph(
    [helper.make_node("Relu", ["x"], ["r"], name="relu0"),
     helper.make_node("Mul", ["r", "two"], ["y"], name="mul0")],
    "half",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [2, 3])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT16, [2, 3])],
    [two]), "half.onnx")

rng = np.random.default_rng(0)
w = numpy_helper.from_array(rng.standard_normal((16, 8, 3, 3)).astype(np.float32), "w")
wb = numpy_helper.from_array(rng.standard_normal(16).astype(np.float32), "wb")
save(helper.make_graph(
    [helper.make_node("Conv", ["x", "w", "wb"], ["c"], name="conv0", pads=[1, 1, 1, 1]),
     helper.make_node("Relu", ["c"], ["y"], name="relu0")],
    "conv",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 32, 32])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16, 32, 32])],
    [w, wb]), "conv.onnx")

for k in range(4):
    d = os.path.join(out, "calib", str(k))
    os.makedirs(d, exist_ok=True)
    np.save(os.path.join(d, "x.npy"), rng.random((1, 8, 32, 32)).astype(np.float32))
