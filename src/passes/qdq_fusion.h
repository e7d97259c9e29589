// fuse-qdq: turns the QDQ patterns of a quantized ONNX model (ONNX Runtime's QDQ format) into
// integer ops that compute on the 8-bit tensors directly, with the requantization fused.
//
// A pattern is a float op whose float inputs are DequantizeLinear outputs and whose output is read
// only by a QuantizeLinear (scales and zero points constant, activations per tensor u8 or i8):
//
//   DQ(x_q), DQ(w_q) [per tensor or per output channel], DQ(b_q) [i32] -> Conv [-> Relu/Clip]
//                                                       -> Q  ==> QLinearConv [-> Clip on int8]
//   DQ(a_q), DQ(b_q) [per tensor or per column] -> MatMul -> Q    ==> QLinearMatMul
//   DQ(a_q), DQ(b_q), DQ(c_q) [i32] -> Gemm (alpha = beta = 1) -> Q ==> ai.kiln QGemm
//   the same Gemm with a float output (no Q reads it)              ==> ai.kiln QGemm, no y_scale
//   DQ, DQ -> Add [-> Relu/Clip] / Mul -> Q                        ==> ai.kiln QAdd / QMul
//   DQ -> AveragePool / GlobalAveragePool -> Q                     ==> ai.kiln QAveragePool / ...
//   DQ -> MaxPool -> Q, same scale and zero point                  ==> MaxPool on int8 (opset 12+)
//   DQ... -> Concat -> Q, every scale and zero point the same      ==> Concat on int8
//   DQ -> data movement (Reshape, Transpose, Flatten, Squeeze, Unsqueeze, Slice, Identity,
//         DepthToSpace, SpaceToDepth, Expand, Tile, Gather, Resize nearest) -> Q,
//         same scale and zero point                                ==> the op on int8
//   DQ -> Relu / Clip -> Q, same scale and zero point              ==> Clip on int8 (opset 12+)
//   DQ -> unary elementwise op (Sigmoid, Tanh, LeakyRelu, HardSwish, ...) -> Q ==> ai.kiln QLut,
//         a 256-entry table computed by the reference kernels: equal to the float path exactly
//   DQ -> a region of such ops and Add/Sub/Mul/Div/Max/Min/Pow whose other inputs are scalar
//         constants, two or more nodes computing from that one DQ -> Q  ==> one ai.kiln QLut
//
// Relu/Clip between an op and its Q fold into the output range: Q is monotone, so
// Q(clip(v, lo, hi)) = clamp(Q(v), Q(lo), Q(hi)); dropped when that clamp is the type's range.
// A Conv/Gemm bias whose scale is not x_scale * w_scale (f32 product) is rescaled to it (int32,
// round half to even); a float constant bias is quantized with that scale.
//
// The fused node writes the Q's output value (same name, readers, graph-output status); the
// DQs are removed when nothing else reads them, and so are initializers left unread. Patterns
// the pass does not handle stay as they are and run in float. The result notes what was fused
// and why candidates were not. Kiln-domain ops are in domain "ai.kiln" (opset 1), their math in
// src/backends/ref/quant_fused.cc.
//
//   KILN_ASSIGN_OR_RETURN(int fused, FuseQdq(model));
#pragma once

#include "core/status.h"
#include "ir/graph.h"
#include "passes/pass_manager.h"

namespace kiln {

inline constexpr const char* kKilnDomain = "ai.kiln";

// Whether the main graph holds a QuantizeLinear or DequantizeLinear node.
bool HasQdq(const Graph& graph);

// The pass, for the pass manager ("fuse-qdq"): rewrites and notes.
Result<PassResult> FuseQdqPass(Model& model);

// The pass; the number of patterns rewritten.
Result<int> FuseQdq(Model& model);

}  // namespace kiln
