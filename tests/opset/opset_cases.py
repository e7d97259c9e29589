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
case("split18_num_outputs_missing",
     model([helper.make_node("Split", ["x"], ["a", "b"], axis=1, num_outputs=2)],
           [vi("x", F, [3, 4])], [vi("a", F, None), vi("b", F, None)], 18),
     {"x": x34}, "kiln_error ai.onnx Split version 18")
case("pad19_wrap_missing",
     model([helper.make_node("Pad", ["x", "pads"], ["y"], mode="wrap")],
           [vi("x", F, [3, 4]), vi("pads", I64, [4])], [vi("y", F, None)], 19),
     {"x": x34, "pads": np.array([0, 1, 0, 1], np.int64)}, "kiln_error ai.onnx Pad version 19")
case("opset24_refused",
     model([helper.make_node("Relu", ["x"], ["y"])], [vi("x", F, [3, 4])], [vi("y", F, None)], 24),
     {"x": x34}, "kiln_error opsets 1 to 23")


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
