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


# ---- op-b section: activations, normalizations, attention, resize/vision ops (opsets 18-23) --
# Kept at the end of the case list so that other sections merge cleanly.
B = TensorProto.BOOL


def r32(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def one(op, feeds, opset, outs=("y",), inits=(), **attrs):
    """A model of one `op` node over the inputs `feeds` (name -> array; "" skips a slot)."""
    ins = []
    for k, v in feeds.items():
        if not k:
            continue
        t = B if v.dtype == np.bool_ else (I64 if v.dtype == np.int64 else F)
        ins.append(vi(k, t, list(v.shape)))
    node = helper.make_node(op, list(feeds.keys()), list(outs), **attrs)
    return model([node], ins, [vi(o, F, None) for o in outs if o], opset, inits)


x2343 = r32(2, 3, 4, 3)
for mode in ["none", "tanh"]:
    case(f"gelu20_{mode}", one("Gelu", {"x": x2343 * 2}, 20, approximate=mode), {"x": x2343 * 2})
case("gelu23_default", one("Gelu", {"x": x34}, 23), {"x": x34})
case("gelu20_bad_approximate",
     one("Gelu", {"x": x34}, 20, approximate="erf"), {"x": x34}, "both_error")
xm = np.concatenate([r32(20) * 4, np.array([-30, -10, 0, 10, 30], np.float32)])
case("mish18", one("Mish", {"x": xm}, 18), {"x": xm})
case("mish22", one("Mish", {"x": x234}, 22), {"x": x234})

xg = r32(2, 6, 3, 5)
case("groupnorm18_per_group",
     one("GroupNormalization", {"x": xg, "s": r32(3), "b": r32(3)}, 18, num_groups=3),
     {"x": xg, "s": r32(3), "b": r32(3)})
case("groupnorm21_per_channel",
     one("GroupNormalization", {"x": xg, "s": r32(6), "b": r32(6)}, 21, num_groups=2,
         epsilon=1e-3),
     {"x": xg, "s": r32(6), "b": r32(6)})
xg3 = r32(1, 4, 7)
case("groupnorm21_1d_stash",
     one("GroupNormalization", {"x": xg3, "s": r32(4), "b": r32(4)}, 21, num_groups=4,
         stash_type=1),
     {"x": xg3, "s": r32(4), "b": r32(4)})
case("groupnorm21_scale_per_group_invalid",
     one("GroupNormalization", {"x": xg, "s": r32(3), "b": r32(3)}, 21, num_groups=3),
     {"x": xg, "s": r32(3), "b": r32(3)}, "both_error")

xr = r32(2, 3, 8)
case("rmsnorm23_last_axis", one("RMSNormalization", {"x": xr, "s": r32(8)}, 23),
     {"x": xr, "s": r32(8)})
case("rmsnorm23_axis1", one("RMSNormalization", {"x": xr, "s": r32(3, 8)}, 23, axis=1,
                            epsilon=1e-2),
     {"x": xr, "s": r32(3, 8)})


def rope_cache(rows, half):
    ang = np.arange(rows)[:, None] * (1e-1 ** (np.arange(half) / half))[None, :]
    return np.cos(ang).astype(np.float32), np.sin(ang).astype(np.float32)


xr4 = r32(2, 3, 5, 8)  # (batch, heads, seq, head)
c3, s3 = rope_cache(10, 4)
pos = np.array([[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]], np.int64)
cb, sb = c3[pos], s3[pos]  # (batch, seq, half)
case("rope23_4d_no_position_ids",
     one("RotaryEmbedding", {"x": xr4, "c": cb, "s": sb}, 23), {"x": xr4, "c": cb, "s": sb})
case("rope23_4d_interleaved_position_ids",
     one("RotaryEmbedding", {"x": xr4, "c": c3, "s": s3, "p": pos}, 23, interleaved=1),
     {"x": xr4, "c": c3, "s": s3, "p": pos})
xr3 = r32(2, 5, 24)  # (batch, seq, 3 heads * 8)
c2, s2 = rope_cache(10, 2)
case("rope23_3d_partial_dim",
     one("RotaryEmbedding", {"x": xr3, "c": c2, "s": s2, "p": pos}, 23, num_heads=3,
         rotary_embedding_dim=4),
     {"x": xr3, "c": c2, "s": s2, "p": pos})
case("rope23_3d_interleaved",
     one("RotaryEmbedding", {"x": xr3, "c": cb, "s": sb}, 23, num_heads=3, interleaved=1),
     {"x": xr3, "c": cb, "s": sb})


def attn(name, feeds, outs=("y",), expect="match", **attrs):
    case(name, one("Attention", feeds, 23, outs=outs, **attrs),
         {k: v for k, v in feeds.items() if k}, expect)


q4, k4, v4 = r32(2, 4, 3, 8), r32(2, 4, 5, 8), r32(2, 4, 5, 6)
attn("attention23_4d_mha", {"q": q4, "k": k4, "v": v4})
attn("attention23_4d_gqa", {"q": q4, "k": r32(2, 2, 5, 8), "v": r32(2, 2, 5, 8)})
attn("attention23_3d_gqa", {"q": r32(2, 3, 32), "k": r32(2, 5, 16), "v": r32(2, 5, 12)},
     q_num_heads=4, kv_num_heads=2)
bmask = rng.random((3, 5)) > 0.3
bmask[:, 0] = True
attn("attention23_bool_mask", {"q": q4, "k": k4, "v": v4, "m": bmask})
attn("attention23_float_mask_scale", {"q": q4, "k": k4, "v": v4, "m": r32(2, 1, 3, 5)},
     scale=0.3)
qs, ks_, vs_ = r32(1, 2, 4, 8), r32(1, 2, 4, 8), r32(1, 2, 4, 8)
attn("attention23_causal", {"q": qs, "k": ks_, "v": vs_}, is_causal=1)
pk, pv = r32(1, 2, 3, 8), r32(1, 2, 3, 8)
attn("attention23_past_present",
     {"q": qs[:, :, :2], "k": ks_[:, :, :2], "v": vs_[:, :, :2], "m": np.zeros((2, 5), np.float32),
      "pk": pk, "pv": pv}, outs=("y", "present_key", "present_value"))
attn("attention23_past_causal",
     {"q": qs[:, :, :2], "k": ks_[:, :, :2], "v": vs_[:, :, :2], "": np.zeros(0, np.float32),
      "pk": pk, "pv": pv}, outs=("y", "present_key", "present_value"), is_causal=1)
attn("attention23_softcap", {"q": q4 * 3, "k": k4, "v": v4}, softcap=2.0)
for mode in range(4):
    attn(f"attention23_qk_output_mode{mode}", {"q": q4, "k": k4, "v": v4, "m": r32(3, 5)},
         outs=("y", "", "", "qk"), qk_matmul_output_mode=mode, softcap=3.0)
# ONNX Runtime applies softcap before the mask (and numbers qk_matmul_output_mode so: 1 after
# softcap, 2 after the mask); a boolean mask then still masks with softcap.
attn("attention23_bool_mask_softcap", {"q": q4 * 3, "k": k4, "v": v4, "m": bmask}, softcap=2.0)
attn("attention23_bool_mask_qk_mode2", {"q": q4, "k": k4, "v": v4, "m": bmask},
     outs=("y", "", "", "qk"), qk_matmul_output_mode=2)
attn("attention23_3d_gqa_past_causal",
     {"q": r32(1, 2, 32), "k": r32(1, 2, 16), "v": r32(1, 2, 16), "": np.zeros(0, np.float32),
      "pk": r32(1, 2, 3, 8), "pv": r32(1, 2, 3, 8)},
     outs=("y", "present_key", "present_value"), q_num_heads=4, kv_num_heads=2, is_causal=1)
bfull = np.ones((2, 1, 4, 4), np.bool_)
bfull[1, 0, 2, :] = False  # a fully masked query row (padding): uniform weights, as ORT
attn("attention23_bool_mask_masked_row", {"q": qs.repeat(2, 0), "k": ks_.repeat(2, 0),
                                          "v": vs_.repeat(2, 0), "m": bfull})
attn("attention23_causal_bool_mask_masked_row", {"q": qs.repeat(2, 0), "k": ks_.repeat(2, 0),
                                                 "v": vs_.repeat(2, 0), "m": bfull},
     is_causal=1)
attn("attention23_heads_not_multiple_invalid",
     {"q": r32(1, 3, 2, 4), "k": r32(1, 2, 2, 4), "v": r32(1, 2, 2, 4)}, expect="both_error")


xz = r32(1, 2, 6, 8)
F32 = np.float32


def resize(name, opset, scales=None, sizes=None, roi=None, expect="match", **attrs):
    feeds = {"x": xz}
    ins = ["x", "roi" if roi is not None else "", "", ""]
    if roi is not None:
        feeds["roi"] = np.array(roi, F32)
    if scales is not None:
        ins[2] = "scales"
        feeds["scales"] = np.array(scales, F32)
    if sizes is not None:
        ins[3] = "sizes"
        feeds["sizes"] = np.array(sizes, np.int64)
    while ins[-1] == "":
        ins.pop()
    node = helper.make_node("Resize", ins, ["y"], **attrs)
    inputs = [vi(k, I64 if v.dtype == np.int64 else F, list(v.shape)) for k, v in feeds.items()]
    case(name, model([node], inputs, [vi("y", F, None)], opset), feeds, expect)


resize("resize18_axes_scales_linear", 18, scales=[0.5, 1.5], axes=[2, 3], mode="linear")
resize("resize18_axes_sizes_not_larger", 18, sizes=[3, 10], axes=[2, 3], mode="linear",
       keep_aspect_ratio_policy="not_larger")
# (ONNX Runtime 1.30 ignores keep_aspect_ratio_policy when axes are negative, returning the input
# shape: the policy case uses positive axes, the negative-axes case the default policy.)
resize("resize18_axes_sizes_not_smaller_nearest", 18, sizes=[9, 10], axes=[2, 3],
       keep_aspect_ratio_policy="not_smaller")
# not_smaller: scale max(3/6, 10/8) = 1.25, so H = round(7.5) (halves round away from zero).
resize("resize18_not_smaller_rounds_half_up", 18, sizes=[3, 10], axes=[2, 3], mode="linear",
       keep_aspect_ratio_policy="not_smaller")
resize("resize18_negative_axes_sizes_linear", 18, sizes=[9, 10], axes=[-2, -1], mode="linear")
resize("resize18_antialias_linear_down", 18, scales=[1, 1, 0.4, 0.3], mode="linear", antialias=1)
resize("resize18_antialias_cubic_down", 18, sizes=[1, 2, 3, 3], mode="cubic", antialias=1)
resize("resize18_antialias_linear_up", 18, scales=[1, 1, 1.5, 2], mode="linear", antialias=1)
resize("resize18_antialias_cubic_align_corners", 18, sizes=[1, 2, 4, 5], mode="cubic",
       antialias=1, coordinate_transformation_mode="align_corners", cubic_coeff_a=-0.5)
resize("resize18_tf_crop_axes", 18, sizes=[4, 5], roi=[0.1, 0.2, 0.8, 0.9], axes=[2, 3],
       mode="linear", coordinate_transformation_mode="tf_crop_and_resize",
       extrapolation_value=-1.0)
resize("resize19_half_pixel_symmetric", 19, scales=[1, 1, 0.6, 1.7], mode="linear",
       coordinate_transformation_mode="half_pixel_symmetric")
resize("resize19_half_pixel_symmetric_cubic", 19, sizes=[1, 2, 4, 13], mode="cubic",
       coordinate_transformation_mode="half_pixel_symmetric")
resize("resize18_axes_repeated_invalid", 18, scales=[0.5, 1.5], axes=[2, 2], mode="linear",
       expect="both_error")


# Signals of length 8 along axis 1, scaled small: ONNX Runtime's float32 FFT leaves absolute
# errors near 1e-6 at unit-scale inputs where the exact result is 0 (compare's atol is 1e-6).
xd = r32(2, 8, 3, 2) * 0.125
case("dft20_axis_default_real", one("DFT", {"x": xd[..., :1]}, 20), {"x": xd[..., :1]})
case("dft20_axis_input_length",
     one("DFT", {"x": xd, "n": np.array(6, np.int64), "a": np.array(1, np.int64)}, 20),
     {"x": xd, "n": np.array(6, np.int64), "a": np.array(1, np.int64)})
case("dft20_axis_input_negative_inverse",
     one("DFT", {"x": xd, "n": np.array(5, np.int64), "a": np.array(-3, np.int64)}, 20, inverse=1),
     {"x": xd, "n": np.array(5, np.int64), "a": np.array(-3, np.int64)})
case("dft20_onesided",
     one("DFT", {"x": xd[..., :1], "n": np.array(8, np.int64), "a": np.array(1, np.int64)}, 20,
         onesided=1),
     {"x": xd[..., :1], "n": np.array(8, np.int64), "a": np.array(1, np.int64)})

xs2, g2 = r32(2, 3, 4, 5), (rng.random((2, 3, 6, 2)) * 2.4 - 1.2).astype(np.float32)
for mode in ["linear", "nearest", "cubic"]:
    case(f"gridsample20_2d_{mode}", one("GridSample", {"x": xs2, "g": g2}, 20, mode=mode,
                                        padding_mode="border" if mode == "cubic" else "zeros"),
         {"x": xs2, "g": g2})
xs3, g3 = r32(1, 2, 3, 4, 5), (rng.random((1, 2, 3, 4, 3)) * 2.4 - 1.2).astype(np.float32)
case("gridsample20_3d_linear", one("GridSample", {"x": xs3, "g": g3}, 20, mode="linear",
                                   align_corners=1), {"x": xs3, "g": g3})
case("gridsample20_3d_nearest_reflection",
     one("GridSample", {"x": xs3, "g": g3}, 20, mode="nearest", padding_mode="reflection"),
     {"x": xs3, "g": g3})
case("gridsample20_3d_cubic_invalid", one("GridSample", {"x": xs3, "g": g3}, 20, mode="cubic"),
     {"x": xs3, "g": g3}, "both_error")
case("gridsample20_old_mode_name_invalid",
     one("GridSample", {"x": xs2, "g": g2}, 20, mode="bilinear"), {"x": xs2, "g": g2},
     "both_error")

th2, th3 = r32(2, 2, 3), r32(2, 3, 4)
for align in [0, 1]:
    case(f"affinegrid20_2d_align{align}",
         one("AffineGrid", {"t": th2, "size": np.array([2, 3, 4, 5], np.int64)}, 20,
             align_corners=align),
         {"t": th2, "size": np.array([2, 3, 4, 5], np.int64)})
    case(f"affinegrid20_3d_align{align}",
         one("AffineGrid", {"t": th3, "size": np.array([2, 1, 3, 4, 2], np.int64)}, 20,
             align_corners=align),
         {"t": th3, "size": np.array([2, 1, 3, 4, 2], np.int64)})
case("affinegrid_at_opset19_invalid",
     one("AffineGrid", {"t": th2, "size": np.array([2, 3, 4, 5], np.int64)}, 19),
     {"t": th2, "size": np.array([2, 3, 4, 5], np.int64)}, "both_error")

xdc, wdc = r32(1, 4, 6, 7), r32(6, 2, 3, 3)
offs = (r32(1, 2 * 2 * 9, 4, 5) * 1.5).astype(np.float32)  # offset_group 2, out 4x5 (stride 1)
case("deformconv19_group_offset_group_mask",
     one("DeformConv", {"x": xdc, "w": wdc, "o": offs, "b": r32(6),
                        "m": rng.random((1, 2 * 9, 4, 5)).astype(np.float32)}, 19,
         group=2, offset_group=2, kernel_shape=[3, 3]),
     {"x": xdc, "w": wdc, "o": offs, "b": r32(6),
      "m": rng.random((1, 2 * 9, 4, 5)).astype(np.float32)})
offs2 = (r32(1, 2 * 9, 3, 3) * 2).astype(np.float32)
case("deformconv19_strides_pads_dilations",
     one("DeformConv", {"x": xdc, "w": r32(3, 4, 3, 3), "o": offs2}, 19, strides=[2, 2],
         pads=[1, 1, 1, 1], dilations=[1, 2]),
     {"x": xdc, "w": r32(3, 4, 3, 3), "o": offs2})


# Invalid uses of the new ops that both runtimes refuse.
case("groupnorm18_groups_not_dividing_channels_invalid",
     one("GroupNormalization", {"x": xg, "s": r32(4), "b": r32(4)}, 18, num_groups=4),
     {"x": xg, "s": r32(4), "b": r32(4)}, "both_error")
case("rmsnorm23_axis_out_of_range_invalid",
     one("RMSNormalization", {"x": xr, "s": r32(8)}, 23, axis=3), {"x": xr, "s": r32(8)},
     "both_error")
case("rope23_3d_without_num_heads_invalid",
     one("RotaryEmbedding", {"x": xr3, "c": cb, "s": sb}, 23), {"x": xr3, "c": cb, "s": sb},
     "both_error")
case("rope23_position_out_of_cache_invalid",
     one("RotaryEmbedding", {"x": xr4, "c": c3[:4], "s": s3[:4], "p": pos}, 23),
     {"x": xr4, "c": c3[:4], "s": s3[:4], "p": pos}, "both_error")
attn("attention23_3d_without_heads_invalid",
     {"q": r32(2, 3, 32), "k": r32(2, 5, 16), "v": r32(2, 5, 12)}, expect="both_error")
attn("attention23_mask_not_broadcasting_invalid",
     {"q": q4, "k": k4, "v": v4, "m": r32(3, 4)}, expect="both_error")
case("deformconv19_offset_shape_invalid",
     one("DeformConv", {"x": xdc, "w": r32(3, 4, 3, 3), "o": r32(1, 18, 3, 3)}, 19),
     {"x": xdc, "w": r32(3, 4, 3, 3), "o": r32(1, 18, 3, 3)}, "both_error")
case("affinegrid20_theta_size_mismatch_invalid",
     one("AffineGrid", {"t": th3, "size": np.array([2, 3, 4, 5], np.int64)}, 20),
     {"t": th3, "size": np.array([2, 3, 4, 5], np.int64)}, "both_error")


# Blocks whose nodes the default plan puts in one XNNPACK partition (its own f32 loops for
# Gelu, Mish, GroupNormalization, RMSNormalization, RotaryEmbedding and Attention), against
# ONNX Runtime.
def init(name, a):
    return helper.make_tensor(name, F, list(a.shape), a.flatten().tolist())


xb = r32(1, 32, 64) * 0.25  # small values: the absolute tolerance (1e-6) is met with margin
blk = []
blk_inits = [init("w1", r32(64, 128) * 0.1), init("w2", r32(128, 64) * 0.1),
             init("g", r32(64) * 0.5),
             init("wq", r32(64, 64) * 0.2), init("wk", r32(64, 32) * 0.2),
             init("wv", r32(64, 32) * 0.2)]
blk += [helper.make_node("RMSNormalization", ["x", "g"], ["n"]),
        helper.make_node("MatMul", ["n", "wq"], ["q"]),
        helper.make_node("MatMul", ["n", "wk"], ["k"]),
        helper.make_node("MatMul", ["n", "wv"], ["v"]),
        helper.make_node("Attention", ["q", "k", "v"], ["a"], q_num_heads=4, kv_num_heads=2,
                         is_causal=1),
        helper.make_node("Add", ["a", "x"], ["r"]),
        helper.make_node("MatMul", ["r", "w1"], ["h"]),
        helper.make_node("Gelu", ["h"], ["gh"], approximate="tanh"),
        helper.make_node("MatMul", ["gh", "w2"], ["m"]),
        helper.make_node("Add", ["m", "r"], ["y"])]
case("block23_decoder_layer_xnnpack",
     model(blk, [vi("x", F, [1, 32, 64])], [vi("y", F, None)], 23, blk_inits), {"x": xb})
xc = r32(1, 8, 16, 16)
cnn = [helper.make_node("Conv", ["x", "cw"], ["c"], pads=[1, 1, 1, 1]),
       helper.make_node("GroupNormalization", ["c", "gs", "gb"], ["gn"], num_groups=4),
       helper.make_node("Mish", ["gn"], ["y"])]
case("block21_conv_groupnorm_mish_xnnpack",
     model(cnn, [vi("x", F, [1, 8, 16, 16])], [vi("y", F, None)], 21,
           [init("cw", r32(16, 8, 3, 3) * 0.2), init("gs", r32(16)), init("gb", r32(16))]),
     {"x": xc})


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
