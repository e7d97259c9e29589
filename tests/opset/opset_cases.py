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
