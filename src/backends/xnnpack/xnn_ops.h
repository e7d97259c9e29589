// Private to the XNNPACK backend: the op families that fill the one op table (xnn_table.cc).
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "backends/xnnpack/xnn_internal.h"

namespace kiln::xnn {

void AddConvOps(std::vector<OpDef>& table);         // xnn_ops_conv.cc
void AddElementwiseOps(std::vector<OpDef>& table);  // xnn_ops_elementwise.cc
void AddPoolOps(std::vector<OpDef>& table);         // xnn_ops_pool.cc
void AddTensorOps(std::vector<OpDef>& table);       // xnn_ops_tensor.cc
void AddNeckOps(std::vector<OpDef>& table);         // xnn_ops_neck.cc
void AddInt8Ops(std::vector<OpDef>& table);         // xnn_ops_int8*.cc (int8 entries)
void AddModernOps(std::vector<OpDef>& table);       // xnn_ops_modern.cc (ops of opsets 18-23)

// Whether Conv node n (float) runs the own fp32 dense kernel (xnn_fconv.h) at the partition's
// ISA level: the one answer that ConvBuild and the residual-Add fusion both follow. With `silu`
// (a SiLU fused after it): the rule for a fused SiLU, and depthwise convs count too (the own
// depthwise loop).
bool ConvRunsOwnKernel(const PartitionSpec& spec, const Node& n, bool silu = false);
// Conv node n is a 1x1 stride-1 unpadded group-1 float conv that the own kernel can run, with an
// output of at least kExpandDwMinBytes (the expansion of an expand + depthwise step).
bool ConvIsExpansion(const PartitionSpec& spec, const Node& n);
// Conv node n is a depthwise conv with a fixed-size row loop (DepthwiseRowsFixed) on float
// values of static shapes, constant weights.
bool ConvIsFixedDepthwise(const PartitionSpec& spec, const Node& n);
inline constexpr int64_t kExpandDwMinBytes = int64_t{256} << 10;

struct ConvGeometry {
  int64_t kh = 0, kw = 0, sh = 1, sw = 1, dh = 1, dw = 1;
  int64_t pt = 0, pl = 0, pb = 0, pr = 0;  // pads (input for Conv, output for ConvTranspose)
  int64_t group = 1;
  int64_t adj_h = 0, adj_w = 0;  // ConvTranspose output_padding
};
// Conv geometry from attributes and static shapes (x, w, y NCHW), or why it is not supported.
Result<ConvGeometry> ConvGeometryOf(const Node& n, const Shape& x, const Shape& w, const Shape& y);

// 2D MaxPool / AveragePool (and QAveragePool) geometry from attributes and static shapes (x, y
// NCHW); ceil_mode windows past the edge as extra bottom/right padding for MaxPool only.
struct PoolGeometry {
  int64_t kh, kw, sh, sw, dh = 1, dw = 1, pt, pl, pb, pr;
};
Result<PoolGeometry> PoolGeometryOf(const Node& n, const Shape& x, const Shape& y);

// int8 entries: a u8/i8 value with a static shape of rank <= 6 ("" when fine), and Yes with the
// node's 8-bit compute type and a cost at int8 throughputs (xnn_ops_int8.cc).
std::string CheckInt8Value(const TypeInfo* t, const std::string& what);
NodeSupport YesInt8(const NodeQuery& q, double gmacs_per_thread);

// y = table[storage byte of x] (x, y int8 storage of the same shape): an own loop.
void AddTableLoop(Builder& b, ValueId x, ValueId y, const std::array<uint8_t, 256>& table);

// y[i] = fn(x[i]) over every element, in float: an own loop (Tanh, Erf, Gelu, Mish, ...).
Status ScalarUnaryBuild(Builder& b, const Node& n, const Fusion& f, float (*fn)(float));

// MatMul with a computed or batched B (own blocked AVX2 GEMM per batch): xnn_ops_neck.cc.
NodeSupport MatMulComputedSupports(const NodeQuery& q);
Status BuildBatchMatMul(Builder& b, const Node& n, const Fusion& f);

// The fused LayerNorm over the last axis: ReduceMean, Sub, Pow 2, ReduceMean, Add eps, Sqrt,
// Div, optional Mul gamma and Add beta (constants along the last axis). Starts at the first
// ReduceMean `n`; f.out is the last node's output.
struct LayerNormMatch {
  ValueId x;
  float eps = 0;
  const Tensor* gamma = nullptr;
  const Tensor* beta = nullptr;
};
Status BuildLayerNorm(Builder& b, const Node& n, const LayerNormMatch& m, const Fusion& f);

// The fused HardSwish patterns (x*clip(x+3,0,6)/6, x*HardSigmoid(x)), then y*f.post_mul +
// f.post_add when the Fusion says so: x -> f.out. `hard_sigmoid` is the HardSigmoid form.
Status BuildHardSwish(Builder& b, const Node& n, ValueId x, const Fusion& f);
// x * sigmoid(x) in one pass (own loop; AVX-512 / AVX2 / portable by the session's ISA).
Status BuildSilu(Builder& b, const Node& n, ValueId x, const Fusion& f);
// erf elementwise (own loop: vector series / Abramowitz-Stegun by the session's ISA, std::erf
// portable).
Status BuildErf(Builder& b, const Node& n, const Fusion& f);
// GELU, erf form, x -> f.out in one pass (the Gelu op, or the pattern PyTorch exports).
Status BuildGeluErf(Builder& b, ValueId x, const Fusion& f);
// Channel shuffle (Reshape, Transpose, Reshape; xnn_fusion.h): one gather of each NHWC pixel's
// channels, y[i * g + j] = x[j * (C / g) + i].
Status BuildChannelShuffle(Builder& b, const Node& n, ValueId x, int64_t groups, const Fusion& f);
// x + x * s[n, c] (s: [N, C, 1, 1], computed): x, s -> f.out, one pass (own AVX2 loop).
Status BuildScaleResidual(Builder& b, const Node& n, ValueId x, ValueId s, const Fusion& f);

}  // namespace kiln::xnn
