#!/usr/bin/python3
"""Small ONNX models at opsets 18-23 for Kiln vs ONNX Runtime (tests/opset/opset_test.sh).

  opset_cases.py gen OUTDIR          writes OUTDIR/<case>/{model.onnx, in/NAME.npy, expect}
  opset_cases.py compare KILN ORT    compares two folders of NAME.npy (<= 1e-4 relative, exact
                                     for integers and bools); exit 1 on a mismatch

`expect` is "match" (both run, outputs agree), "kiln_error SUBSTRING" (Kiln must refuse with
a message containing SUBSTRING; ONNX Runtime's verdict is printed) or "both_error" (both must
refuse: the model is invalid at that opset). Models are built with onnx.helper (Debian's
python3-onnx 1.12, whose checker stops at opset 17, so the checker is not called).
"""
import os
import sys

import numpy as np
from onnx import TensorProto, helper

rng = np.random.default_rng(7)
F = TensorProto.FLOAT
I64 = TensorProto.INT64


def model(nodes, inputs, outputs, opset, inits=()):
    g = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8 if opset <= 18 else 9
    return m


def vi(name, t, shape):
    return helper.make_tensor_value_info(name, t, shape)


CASES = []


def case(name, m, feeds, expect="match"):
    CASES.append((name, m, feeds, expect))


x34 = rng.standard_normal((3, 4)).astype(np.float32)
x234 = rng.standard_normal((2, 3, 4)).astype(np.float32)

# Reduce-18: axes as an input, keepdims, noop_with_empty_axes.
for op in ["ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL2", "ReduceLogSumExp",
           "ReduceSumSquare", "ReduceL1"]:
    case(f"{op.lower()}18_axes_input",
         model([helper.make_node(op, ["x", "axes"], ["y"], keepdims=0)],
               [vi("x", F, [2, 3, 4]), vi("axes", I64, [1])], [vi("y", F, None)], 18),
         {"x": x234, "axes": np.array([1], np.int64)})
case("reducemean18_noop_empty_axes",
     model([helper.make_node("ReduceMean", ["x"], ["y"], noop_with_empty_axes=1)],
           [vi("x", F, [3, 4])], [vi("y", F, None)], 18), {"x": x34})
case("reducesum23_axes_input",
     model([helper.make_node("ReduceSum", ["x", "axes"], ["y"])],
           [vi("x", F, [2, 3, 4]), vi("axes", I64, [2])], [vi("y", F, None)], 23),
     {"x": x234, "axes": np.array([0, -1], np.int64)})

# Unchanged ops at the newest opsets (the cap is gone; semantics as at 17).
case("relu_matmul_softmax23",
     model([helper.make_node("Relu", ["x"], ["r"]), helper.make_node("MatMul", ["r", "w"], ["m"]),
            helper.make_node("Softmax", ["m"], ["y"], axis=-1)],
           [vi("x", F, [3, 4]), vi("w", F, [4, 5])], [vi("y", F, None)], 23),
     {"x": x34, "w": rng.standard_normal((4, 5)).astype(np.float32)})
case("reshape_transpose21",
     model([helper.make_node("Reshape", ["x", "s"], ["r"]),
            helper.make_node("Transpose", ["r"], ["y"], perm=[1, 0])],
           [vi("x", F, [3, 4]), vi("s", I64, [2])], [vi("y", F, None)], 21),
     {"x": x34, "s": np.array([2, 6], np.int64)})

# Optional* at 18 on plain tensors.
case("optional_has_element18_tensor",
     model([helper.make_node("OptionalHasElement", ["x"], ["y"])],
           [vi("x", F, [3, 4])], [vi("y", TensorProto.BOOL, [])], 18), {"x": x34})
case("optional_get_element18_tensor",
     model([helper.make_node("OptionalGetElement", ["x"], ["y"])],
           [vi("x", F, [3, 4])], [vi("y", F, None)], 18), {"x": x34})

# Sequences inside a graph (tensor inputs and outputs), at opset 18.
case("sequence_split_concat18",
     model([helper.make_node("SplitToSequence", ["x"], ["s"], axis=1),
            helper.make_node("SequenceErase", ["s", "p"], ["e"]),
            helper.make_node("SequenceLength", ["e"], ["n"]),
            helper.make_node("ConcatFromSequence", ["e"], ["y"], axis=0, new_axis=1)],
           [vi("x", F, [3, 4]), vi("p", I64, [])], [vi("y", F, None), vi("n", I64, [])], 18),
     {"x": x34, "p": np.array(-1, np.int64)})
case("sequence_construct_at_insert19",
     model([helper.make_node("SequenceConstruct", ["a", "b"], ["s"]),
            helper.make_node("SequenceInsert", ["s", "a", "p"], ["t"]),
            helper.make_node("SequenceAt", ["t", "q"], ["y"])],
           [vi("a", F, [3, 4]), vi("b", F, [3, 4]), vi("p", I64, []), vi("q", I64, [])],
           [vi("y", F, None)], 19),
     {"a": x34, "b": x34 * 2, "p": np.array(1, np.int64), "q": np.array(-2, np.int64)})

# Error cases: ops used before they exist (ONNX Runtime rejects them too), and op versions Kiln
# lacks (a clear error naming op, domain and version).
case("gelu_at_opset18_invalid",
     model([helper.make_node("Gelu", ["x"], ["y"])], [vi("x", F, [3, 4])], [vi("y", F, None)], 18),
     {"x": x34}, "both_error")
case("rmsnorm_at_opset22_invalid",
     model([helper.make_node("RMSNormalization", ["x", "s"], ["y"])],
           [vi("x", F, [3, 4]), vi("s", F, [4])], [vi("y", F, None)], 22),
     {"x": x34, "s": np.ones(4, np.float32)}, "both_error")
case("opset24_refused",
     model([helper.make_node("Relu", ["x"], ["y"])], [vi("x", F, [3, 4])], [vi("y", F, None)], 24),
     {"x": x34}, "kiln_error opsets 1 to 23")


# ---- Issue 14, part A: tensor, index, reduce, bitwise, pooling and quantization op versions ----
I32, I8, U8, I16, U16 = TensorProto.INT32, TensorProto.INT8, TensorProto.UINT8, TensorProto.INT16, TensorProto.UINT16
BOOL = TensorProto.BOOL
x25 = rng.standard_normal((2, 5)).astype(np.float32)


def outs(n):
    return [f"y{i}" for i in range(n)]


# Split-18: num_outputs, with a smaller last chunk when the dim does not divide.
for name, shape, axis, n, dt in [("even", (2, 6), 1, 3, F), ("uneven", (2, 5), 1, 3, F),
                                 ("uneven_axis0_int64", (7, 2), 0, 4, I64),
                                 ("negative_axis", (3, 2, 5), -1, 2, F)]:
    data = rng.standard_normal(shape).astype(np.float32)
    if dt == I64:
        data = np.arange(np.prod(shape), dtype=np.int64).reshape(shape)
    case(f"split18_num_outputs_{name}",
         model([helper.make_node("Split", ["x"], outs(n), axis=axis, num_outputs=n)],
               [vi("x", dt, list(shape))], [vi(o, dt, None) for o in outs(n)], 18), {"x": data})
case("split18_split_input",
     model([helper.make_node("Split", ["x", "s"], outs(2), axis=1)],
           [vi("x", F, [2, 5]), vi("s", I64, [2])], [vi(o, F, None) for o in outs(2)], 18),
     {"x": x25, "s": np.array([1, 4], np.int64)})
case("split18_neither_invalid",
     model([helper.make_node("Split", ["x"], outs(2), axis=1)],
           [vi("x", F, [2, 6])], [vi(o, F, None) for o in outs(2)], 18),
     {"x": rng.standard_normal((2, 6)).astype(np.float32)}, "both_error")
case("split18_both_invalid",
     model([helper.make_node("Split", ["x", "s"], outs(2), axis=1, num_outputs=2)],
           [vi("x", F, [2, 5]), vi("s", I64, [2])], [vi(o, F, None) for o in outs(2)], 18),
     {"x": x25, "s": np.array([2, 3], np.int64)}, "both_error")
case("split18_num_outputs_too_many",
     model([helper.make_node("Split", ["x"], outs(4), axis=1, num_outputs=4)],
           [vi("x", F, [2, 5])], [vi(o, F, None) for o in outs(4)], 18), {"x": x25}, "both_error")
case("split18_num_outputs_empty_last",
     model([helper.make_node("Split", ["x"], outs(3), axis=1, num_outputs=3)],
           [vi("x", F, [3, 4])], [vi(o, F, None) for o in outs(3)], 18), {"x": x34}, "both_error")
# ONNX Runtime splits by the output count here; the spec asks for num_outputs outputs.
case("split18_num_outputs_count_mismatch",
     model([helper.make_node("Split", ["x"], outs(2), axis=1, num_outputs=3)],
           [vi("x", F, [2, 5])], [vi(o, F, None) for o in outs(2)], 18), {"x": x25},
     "kiln_error num_outputs is 3, but the node has 2 outputs")


def pad_case(name, opset, data, pads, mode=None, axes=None, value=None, expect="match"):
    dt = {np.float32: F, np.int32: I32, np.int64: I64}[data.dtype.type]
    ins, vis, feeds = ["x", "pads"], [vi("x", dt, list(data.shape)), vi("pads", I64, [len(pads)])], \
        {"x": data, "pads": np.array(pads, np.int64)}
    if value is not None or axes is not None:
        ins.append("v" if value is not None else "")
        if value is not None:
            vis.append(vi("v", dt, []))
            feeds["v"] = np.array(value, data.dtype)
    if axes is not None:
        ins.append("axes")
        vis.append(vi("axes", I64, [len(axes)]))
        feeds["axes"] = np.array(axes, np.int64)
    attrs = {"mode": mode} if mode else {}
    case(name, model([helper.make_node("Pad", ins, ["y"], **attrs)], vis, [vi("y", dt, None)], opset),
         feeds, expect)


# Pad-18: axes input; Pad-19: mode wrap (ONNX Runtime crops negative pads first, then wraps what
# is left; pads beyond the dim are not compared: ONNX Runtime's wrap differs from numpy's there).
x345 = rng.standard_normal((3, 4, 5)).astype(np.float32)
pad_case("pad18_axes_constant_value", 18, x34, [1, 2, 0, 1], axes=[1, 0], value=2.5)
pad_case("pad18_axes_negative_reflect", 18, x345, [2, 1], mode="reflect", axes=[-1])
pad_case("pad18_axes_edge_int32", 18, np.arange(12, dtype=np.int32).reshape(3, 4), [1, 2],
         mode="edge", axes=[0])
pad_case("pad18_axes_crop", 18, x345, [-1, 2, 1, -2], axes=[0, 2])
pad_case("pad23_axes_edge", 23, x345, [1, 0, 2, 3], mode="edge", axes=[2, 1])
# ONNX Runtime accepts a repeated axis (the spec does not say what it means); Kiln refuses it.
pad_case("pad18_axes_repeated", 18, x34, [1, 1, 1, 1], axes=[1, 1],
         expect="kiln_error axis 1 is repeated in axes")
pad_case("pad19_wrap", 19, x34, [0, 1, 0, 2], mode="wrap")
pad_case("pad19_wrap_both_axes", 19, x34, [2, 3, 1, 4], mode="wrap")
pad_case("pad19_wrap_axes", 19, x345, [3, 4], mode="wrap", axes=[-1])
pad_case("pad19_wrap_negative", 19, x34, [1, -1, 0, 2], mode="wrap")
pad_case("pad21_wrap_int64", 21, np.arange(24, dtype=np.int64).reshape(2, 3, 4), [0, 2, 1, 1, 1, 3],
         mode="wrap")
pad_case("pad18_wrap_needs_opset19", 18, x34, [0, 1, 0, 1], mode="wrap",
         expect="kiln_error wrap needs opset 19")


# The same with pads and axes as initializers (Kiln then infers static shapes and plans memory).
case("pad19_wrap_const_pads_axes",
     model([helper.make_node("Pad", ["x", "pads", "", "axes"], ["y"], mode="wrap"),
            helper.make_node("Relu", ["y"], ["z"])],
           [vi("x", F, [3, 4, 5])], [vi("z", F, None)], 19,
           inits=[helper.make_tensor("pads", I64, [4], [1, 2, 0, 3]),
                  helper.make_tensor("axes", I64, [2], [0, -1])]),
     {"x": x345})


# ScatterElements-18 / ScatterND-18: reduction max and min (repeated indices reduce in turn).
for red in ["max", "min"]:
    for dt, npt in [(F, np.float32), (I32, np.int32)]:
        data = (rng.standard_normal((3, 4)) * 4).astype(npt)
        upd = (rng.standard_normal((2, 4)) * 4).astype(npt)
        case(f"scatterelements18_{red}_{np.dtype(npt).name}",
             model([helper.make_node("ScatterElements", ["x", "i", "u"], ["y"], axis=0,
                                     reduction=red)],
                   [vi("x", dt, [3, 4]), vi("i", I64, [2, 4]), vi("u", dt, [2, 4])],
                   [vi("y", dt, None)], 18),
             {"x": data, "i": np.array([[0, 2, 2, 1], [0, 2, 1, 1]], np.int64), "u": upd})
    case(f"scatternd18_{red}",
         model([helper.make_node("ScatterND", ["x", "i", "u"], ["y"], reduction=red)],
               [vi("x", F, [4, 3]), vi("i", I64, [3, 1]), vi("u", F, [3, 3])], [vi("y", F, None)],
               18),
         {"x": rng.standard_normal((4, 3)).astype(np.float32),
          "i": np.array([[1], [3], [1]], np.int64),
          "u": rng.standard_normal((3, 3)).astype(np.float32)})
big = np.int64(2**60)
case("scatterelements18_max_int64_beyond_2p53",
     model([helper.make_node("ScatterElements", ["x", "i", "u"], ["y"], axis=1, reduction="max")],
           [vi("x", I64, [2, 3]), vi("i", I64, [2, 2]), vi("u", I64, [2, 2])], [vi("y", I64, None)],
           18),
     {"x": np.array([[big, big + 3, -big], [0, big + 1, 5]], np.int64),
      "i": np.array([[0, 1], [1, 1]], np.int64),
      "u": np.array([[big + 1, big + 2], [big + 2, big]], np.int64)})
# Reduction max/min is an opset-18 addition; ONNX Runtime's kernel accepts it at 16 as well.
case("scatterelements16_max_needs_opset18",
     model([helper.make_node("ScatterElements", ["x", "i", "u"], ["y"], axis=0, reduction="max")],
           [vi("x", F, [3, 4]), vi("i", I64, [1, 4]), vi("u", F, [1, 4])], [vi("y", F, None)], 16),
     {"x": x34, "i": np.zeros((1, 4), np.int64), "u": x34[:1]},
     "kiln_error reduction 'max' needs opset 18")

# ReduceMax-20 / ReduceMin-20 on bool.
b345 = rng.standard_normal((3, 4, 5)) > 0.6
for op in ["ReduceMax", "ReduceMin"]:
    case(f"{op.lower()}20_bool_axes",
         model([helper.make_node(op, ["x", "axes"], ["y"], keepdims=0)],
               [vi("x", BOOL, [3, 4, 5]), vi("axes", I64, [1])], [vi("y", BOOL, None)], 20),
         {"x": b345, "axes": np.array([-1], np.int64)})
    case(f"{op.lower()}20_bool_all",
         model([helper.make_node(op, ["x"], ["y"])], [vi("x", BOOL, [3, 4, 5])],
               [vi("y", BOOL, None)], 20), {"x": b345})
case("reducemax18_bool_invalid",
     model([helper.make_node("ReduceMax", ["x"], ["y"])], [vi("x", BOOL, [3, 4, 5])],
           [vi("y", BOOL, None)], 18), {"x": b345}, "both_error")

# BitwiseAnd/Or/Xor/Not-18, every integer type, with broadcasting.
for dt, npt in [(I8, np.int8), (U8, np.uint8), (I16, np.int16), (U16, np.uint16), (I32, np.int32),
                (TensorProto.UINT32, np.uint32), (I64, np.int64), (TensorProto.UINT64, np.uint64)]:
    info = np.iinfo(npt)
    a = rng.integers(info.min, info.max, (3, 4), dtype=npt, endpoint=True)
    b = rng.integers(info.min, info.max, (4,), dtype=npt, endpoint=True)
    case(f"bitwise18_{np.dtype(npt).name}",
         model([helper.make_node("BitwiseAnd", ["a", "b"], ["and"]),
                helper.make_node("BitwiseOr", ["a", "b"], ["or"]),
                helper.make_node("BitwiseXor", ["b", "a"], ["xor"]),
                helper.make_node("BitwiseNot", ["a"], ["not"])],
               [vi("a", dt, [3, 4]), vi("b", dt, [4])],
               [vi(o, dt, None) for o in ["and", "or", "xor", "not"]], 18), {"a": a, "b": b})
case("bitwiseand18_float_invalid",
     model([helper.make_node("BitwiseAnd", ["a", "b"], ["y"])], [vi("a", F, [3, 4]), vi("b", F, [3, 4])],
           [vi("y", F, None)], 18), {"a": x34, "b": x34}, "both_error")
case("bitwisenot_at_opset17_invalid",
     model([helper.make_node("BitwiseNot", ["a"], ["y"])], [vi("a", I32, [3])], [vi("y", I32, None)],
           17), {"a": np.array([1, 2, 3], np.int32)}, "both_error")

# CenterCropPad-18: crop and pad, odd differences, axes.
case("centercroppad18_crop_and_pad",
     model([helper.make_node("CenterCropPad", ["x", "s"], ["y"])],
           [vi("x", F, [5, 6]), vi("s", I64, [2])], [vi("y", F, None)], 18),
     {"x": rng.standard_normal((5, 6)).astype(np.float32), "s": np.array([2, 9], np.int64)})
case("centercroppad18_axes_int64",
     model([helper.make_node("CenterCropPad", ["x", "s"], ["y"], axes=[2, 0])],
           [vi("x", I64, [4, 3, 7]), vi("s", I64, [2])], [vi("y", I64, None)], 18),
     {"x": np.arange(84, dtype=np.int64).reshape(4, 3, 7), "s": np.array([4, 7], np.int64)})
# (an int32 `shape` is valid too, but ONNX Runtime 1.30's expansion of the op fails on it)
case("centercroppad18_negative_axes",
     model([helper.make_node("CenterCropPad", ["x", "s"], ["y"], axes=[-1, -2])],
           [vi("x", F, [2, 3, 4]), vi("s", I64, [2])], [vi("y", F, None)], 18),
     {"x": x234, "s": np.array([1, 6], np.int64)})

case("centercroppad18_const_shape",
     model([helper.make_node("CenterCropPad", ["x", "s"], ["c"], axes=[1, 2]),
            helper.make_node("Neg", ["c"], ["y"])],
           [vi("x", F, [2, 3, 4])], [vi("y", F, None)], 18,
           inits=[helper.make_tensor("s", I64, [2], [6, 1])]),
     {"x": x234})

# Col2Im-18.
case("col2im18_basic",
     model([helper.make_node("Col2Im", ["x", "img", "blk"], ["y"])],
           [vi("x", F, [1, 8, 12]), vi("img", I64, [2]), vi("blk", I64, [2])], [vi("y", F, None)],
           18),
     {"x": rng.standard_normal((1, 8, 12)).astype(np.float32), "img": np.array([4, 5], np.int64),
      "blk": np.array([2, 2], np.int64)})
case("col2im18_strides_dilations_pads",
     model([helper.make_node("Col2Im", ["x", "img", "blk"], ["y"], dilations=[1, 2],
                             pads=[1, 0, 1, 1], strides=[2, 1])],
           [vi("x", F, [2, 6, 8]), vi("img", I64, [2]), vi("blk", I64, [2])],
           [vi("y", F, None)], 18),
     {"x": rng.standard_normal((2, 6, 8)).astype(np.float32), "img": np.array([4, 5], np.int64),
      "blk": np.array([3, 2], np.int64)})
case("col2im18_const_shapes_1d",
     model([helper.make_node("Col2Im", ["x", "img", "blk"], ["c"], strides=[2], pads=[1, 2]),
            helper.make_node("Abs", ["c"], ["y"])],
           [vi("x", F, [2, 6, 5])], [vi("y", F, None)], 18,
           inits=[helper.make_tensor("img", I64, [1], [9]),
                  helper.make_tensor("blk", I64, [1], [3])]),
     {"x": rng.standard_normal((2, 6, 5)).astype(np.float32)})
case("col2im18_wrong_length_invalid",
     model([helper.make_node("Col2Im", ["x", "img", "blk"], ["y"])],
           [vi("x", F, [1, 8, 11]), vi("img", I64, [2]), vi("blk", I64, [2])], [vi("y", F, None)],
           18),
     {"x": rng.standard_normal((1, 8, 11)).astype(np.float32), "img": np.array([4, 5], np.int64),
      "blk": np.array([2, 2], np.int64)}, "both_error")


def pool_case(name, op, opset, shape, expect="match", **attrs):
    data = rng.standard_normal(shape).astype(np.float32)
    case(name, model([helper.make_node(op, ["x"], ["y"], **attrs)], [vi("x", F, list(shape))],
                     [vi("y", F, None)], opset), {"x": data}, expect)


# AveragePool-19: dilations, and how they meet pads, count_include_pad and ceil_mode.
pool_case("averagepool19_dilations", "AveragePool", 19, (1, 2, 6, 7), kernel_shape=[2, 2],
          dilations=[2, 2])
pool_case("averagepool19_dilations_pads_strides", "AveragePool", 19, (1, 2, 7, 7),
          kernel_shape=[3, 2], dilations=[2, 3], pads=[1, 1, 2, 1], strides=[2, 1])
pool_case("averagepool19_dilations_count_include_pad", "AveragePool", 19, (1, 2, 6, 6),
          kernel_shape=[2, 3], dilations=[2, 2], pads=[1, 1, 1, 2], count_include_pad=1)
for cip in [0, 1]:
    pool_case(f"averagepool19_ceil_mode_pads_cip{cip}", "AveragePool", 19, (1, 1, 7, 8),
              kernel_shape=[3, 3], strides=[2, 3], pads=[1, 1, 1, 1], ceil_mode=1,
              count_include_pad=cip)
    pool_case(f"averagepool19_ceil_mode_dilations_cip{cip}", "AveragePool", 19, (1, 2, 8, 9),
              kernel_shape=[2, 2], strides=[2, 2], dilations=[2, 2], pads=[0, 1, 1, 0],
              ceil_mode=1, count_include_pad=cip)
# ceil_mode with end padding: a last window that would start inside the end padding is dropped.
for cip in [0, 1]:
    pool_case(f"averagepool19_ceil_mode_window_in_end_pad_cip{cip}", "AveragePool", 19,
              (1, 1, 6, 7), kernel_shape=[2, 3], strides=[2, 2], pads=[0, 1, 1, 1], ceil_mode=1,
              count_include_pad=cip)
pool_case("averagepool19_1d_dilations_ceil", "AveragePool", 19, (2, 3, 10), kernel_shape=[3],
          dilations=[2], strides=[2], ceil_mode=1)
pool_case("averagepool22_3d_dilations", "AveragePool", 22, (1, 1, 5, 6, 5), kernel_shape=[2, 2, 2],
          dilations=[1, 2, 2], pads=[0, 1, 0, 1, 0, 1])
# Not compared: auto_pad SAME with dilations. The spec gives ceil(in / stride) outputs (Kiln
# does); ONNX Runtime 1.30 sizes the padding by the undilated kernel and returns fewer.

# The attributes before their version: ONNX Runtime refuses the model, so does Kiln.
pool_case("averagepool18_dilations_invalid", "AveragePool", 18, (1, 1, 6, 6), "both_error",
          kernel_shape=[2, 2], dilations=[2, 2])
pool_case("lppool17_ceil_mode_invalid", "LpPool", 17, (1, 1, 6, 6), "both_error",
          kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)
# In a QDQ graph (Kiln fuses it into its int8 QAveragePool, which rounds exact sums; ONNX Runtime
# runs the float ops). An odd tap count (9, padding counted) keeps averages off rounding ties.
case("qdq_averagepool19_dilations",
     model([helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
            helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xf"]),
            helper.make_node("AveragePool", ["xf"], ["p"], kernel_shape=[3, 3], dilations=[2, 2],
                             pads=[2, 1, 2, 2], count_include_pad=1),
            helper.make_node("QuantizeLinear", ["p", "s", "z"], ["pq"]),
            helper.make_node("DequantizeLinear", ["pq", "s", "z"], ["y"])],
           [vi("x", F, [1, 3, 7, 7])], [vi("y", F, None)], 19,
           inits=[helper.make_tensor("s", F, [], [0.02]), helper.make_tensor("z", U8, [], [128])]),
     {"x": rng.standard_normal((1, 3, 7, 7)).astype(np.float32)})

# LpPool-18: dilations and ceil_mode.
pool_case("lppool18_dilations", "LpPool", 18, (1, 2, 7, 7), kernel_shape=[2, 2], dilations=[2, 3])
pool_case("lppool18_ceil_mode_p3", "LpPool", 18, (1, 2, 7, 8), kernel_shape=[3, 2], strides=[2, 3],
          ceil_mode=1, p=3)
pool_case("lppool18_ceil_mode_dilations_pads", "LpPool", 18, (1, 1, 9, 8), kernel_shape=[2, 3],
          strides=[2, 2], dilations=[2, 1], pads=[1, 0, 0, 1], ceil_mode=1)
pool_case("lppool22_1d_p1", "LpPool", 22, (2, 2, 11), kernel_shape=[3], strides=[2], dilations=[2],
          p=1)


# QuantizeLinear-21 / DequantizeLinear-21: blocked scales, output_dtype, 16-bit types.
def q_case(name, op, opset, x, scale, zp=None, expect="match", out_type=None, **attrs):
    xt = {np.float32: F, np.int8: I8, np.uint8: U8, np.int16: I16, np.uint16: U16,
          np.int32: I32}[x.dtype.type]
    ins, vis, feeds = ["x", "s"], [vi("x", xt, list(x.shape)), vi("s", F, list(scale.shape))], \
        {"x": x, "s": scale}
    if zp is not None:
        zt = {np.int8: I8, np.uint8: U8, np.int16: I16, np.uint16: U16}[zp.dtype.type]
        ins.append("z")
        vis.append(vi("z", zt, list(zp.shape)))
        feeds["z"] = zp
    if out_type is None:
        out_type = F if op == "DequantizeLinear" else vis[-1].type.tensor_type.elem_type \
            if zp is not None else attrs.get("output_dtype", U8)
    case(name, model([helper.make_node(op, ins, ["y"], **attrs)], vis, [vi("y", out_type, None)],
                     opset), feeds, expect)


xq = (rng.standard_normal((4, 6)) * 3).astype(np.float32)
sq42 = rng.uniform(0.01, 0.1, (4, 2)).astype(np.float32)
q_case("quantizelinear21_blocked_int8", "QuantizeLinear", 21, xq, sq42,
       rng.integers(-10, 10, (4, 2), dtype=np.int8), axis=1, block_size=3)
q_case("quantizelinear21_blocked_uneven_axis0_uint8", "QuantizeLinear", 21, xq.T.copy(),
       rng.uniform(0.01, 0.1, (3, 4)).astype(np.float32),
       rng.integers(100, 150, (3, 4), dtype=np.uint8), axis=0, block_size=2)
q_case("quantizelinear21_blocked_no_zp_output_dtype_int8", "QuantizeLinear", 21, xq,
       rng.uniform(0.01, 0.1, (4, 3)).astype(np.float32), axis=-1, block_size=2, output_dtype=I8)
q_case("quantizelinear21_output_dtype_uint16", "QuantizeLinear", 21, xq * 100,
       np.array(0.01, np.float32), output_dtype=U16)
q_case("quantizelinear21_int16_per_axis", "QuantizeLinear", 21, xq * 100,
       rng.uniform(0.001, 0.01, (6,)).astype(np.float32),
       rng.integers(-300, 300, (6,), dtype=np.int16), axis=1)
q_case("quantizelinear23_uint16_zp", "QuantizeLinear", 23, xq * 50, np.array(0.02, np.float32),
       np.array(30000, np.uint16))
q_case("quantizelinear21_output_dtype_mismatch_invalid", "QuantizeLinear", 21, xq,
       np.array(0.05, np.float32), np.array(3, np.int8), expect="both_error", out_type=I8,
       output_dtype=U8)
q_case("quantizelinear21_blocked_bad_scale_invalid", "QuantizeLinear", 21, xq,
       rng.uniform(0.01, 0.1, (4, 3)).astype(np.float32), expect="both_error", out_type=U8,
       axis=1, block_size=3)
q_case("quantizelinear19_int16_invalid", "QuantizeLinear", 19, xq, np.array(0.05, np.float32),
       np.array(3, np.int16), expect="both_error")
q_case("dequantizelinear21_blocked_int8", "DequantizeLinear", 21,
       rng.integers(-128, 127, (5, 4), dtype=np.int8),
       rng.uniform(0.01, 0.1, (3, 4)).astype(np.float32),
       rng.integers(-5, 5, (3, 4), dtype=np.int8), axis=0, block_size=2)
q_case("dequantizelinear21_blocked_no_zp_uint8", "DequantizeLinear", 21,
       rng.integers(0, 255, (2, 3, 8), dtype=np.uint8),
       rng.uniform(0.01, 0.1, (2, 3, 2)).astype(np.float32), axis=2, block_size=4)
q_case("dequantizelinear21_int16_per_axis", "DequantizeLinear", 21,
       rng.integers(-30000, 30000, (3, 4), dtype=np.int16),
       rng.uniform(0.001, 0.01, (3,)).astype(np.float32),
       rng.integers(-100, 100, (3,), dtype=np.int16), axis=0)
q_case("dequantizelinear21_uint16", "DequantizeLinear", 21,
       rng.integers(0, 65535, (3, 4), dtype=np.uint16), np.array(0.003, np.float32),
       np.array(32768, np.uint16))
q_case("dequantizelinear19_int16_invalid", "DequantizeLinear", 19,
       rng.integers(-300, 300, (3, 4), dtype=np.int16), np.array(0.003, np.float32),
       expect="both_error")
# In QDQ graphs (Kiln's QDQ fusion must leave blocked scales alone and honour output_dtype).
w84 = rng.integers(-127, 127, (8, 4), dtype=np.int8)
case("qdq21_blocked_weight_matmul",
     model([helper.make_node("DequantizeLinear", ["w", "ws"], ["wf"], axis=0, block_size=4),
            helper.make_node("MatMul", ["x", "wf"], ["y"])],
           [vi("x", F, [3, 8])], [vi("y", F, None)], 21,
           inits=[helper.make_tensor("w", I8, [8, 4], w84.flatten().tolist()),
                  helper.make_tensor("ws", F, [2, 4], rng.uniform(0.01, 0.05, 8).tolist())]),
     {"x": rng.standard_normal((3, 8)).astype(np.float32)})
case("qdq21_output_dtype_int8_matmul",
     model([helper.make_node("QuantizeLinear", ["x", "xs"], ["xq"], output_dtype=I8),
            helper.make_node("DequantizeLinear", ["xq", "xs"], ["xf"]),
            helper.make_node("DequantizeLinear", ["w", "ws"], ["wf"]),
            helper.make_node("MatMul", ["xf", "wf"], ["m"]),
            helper.make_node("QuantizeLinear", ["m", "ms"], ["mq"], output_dtype=I8),
            helper.make_node("DequantizeLinear", ["mq", "ms"], ["y"])],
           [vi("x", F, [3, 8])], [vi("y", F, None)], 21,
           inits=[helper.make_tensor("xs", F, [], [0.02]), helper.make_tensor("ms", F, [], [0.1]),
                  helper.make_tensor("w", I8, [8, 4], w84.flatten().tolist()),
                  helper.make_tensor("ws", F, [], [0.03])]),
     {"x": rng.standard_normal((3, 8)).astype(np.float32)})
# int4 (output_dtype 22): Kiln has no 4-bit element types.
case("quantizelinear21_int4_refused",
     model([helper.make_node("QuantizeLinear", ["x", "s"], ["q"], output_dtype=22),
            helper.make_node("DequantizeLinear", ["q", "s"], ["y"])],
           [vi("x", F, [4, 6]), vi("s", F, [])], [vi("y", F, None)], 21),
     {"x": xq, "s": np.array(0.5, np.float32)}, "kiln_error int4")
int4 = TensorProto(name="w", data_type=22, dims=[4], int32_data=[0x21, 0x43])
case("dequantizelinear21_int4_weight_refused",
     model([helper.make_node("DequantizeLinear", ["w", "s"], ["y"])], [vi("s", F, [])],
           [vi("y", F, None)], 21, inits=[int4]),
     {"s": np.array(0.5, np.float32)}, "kiln_error unsupported data type 22 (int4)")


def gen(out):
    for name, m, feeds, expect in CASES:
        d = os.path.join(out, name)
        os.makedirs(os.path.join(d, "in"), exist_ok=True)
        with open(os.path.join(d, "model.onnx"), "wb") as f:
            f.write(m.SerializeToString())
        for k, v in feeds.items():
            np.save(os.path.join(d, "in", k + ".npy"), v)
        with open(os.path.join(d, "expect"), "w") as f:
            f.write(expect + "\n")
    print(f"{len(CASES)} cases in {out}")


def compare(kiln_dir, ort_dir):
    names = sorted(n for n in os.listdir(ort_dir) if n.endswith(".npy"))
    if not names:
        print("ONNX Runtime wrote no outputs")
        return 1
    bad = 0
    for n in names:
        kp = os.path.join(kiln_dir, n)
        if not os.path.exists(kp):
            print(f"  {n}: Kiln wrote no such output")
            bad += 1
            continue
        a, b = np.load(kp), np.load(os.path.join(ort_dir, n))
        if a.shape != b.shape or a.dtype != b.dtype:
            print(f"  {n}: Kiln {a.dtype}{list(a.shape)} vs ONNX Runtime {b.dtype}{list(b.shape)}")
            bad += 1
        elif np.issubdtype(b.dtype, np.floating):
            err = float(np.max(np.abs(a - b) / (np.abs(b) + 1e-6))) if b.size else 0.0
            ok = np.allclose(a, b, rtol=1e-4, atol=1e-6, equal_nan=True)
            print(f"  {n}: max rel err {err:.2e} {'ok' if ok else 'MISMATCH'}")
            bad += 0 if ok else 1
        else:
            ok = np.array_equal(a, b)
            print(f"  {n}: exact {'ok' if ok else 'MISMATCH'}")
            bad += 0 if ok else 1
    return 1 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "gen":
        gen(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "compare":
        sys.exit(compare(sys.argv[2], sys.argv[3]))
    else:
        print(__doc__)
        sys.exit(2)
