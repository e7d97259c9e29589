// Private to the XNNPACK backend: the op families that fill the one op table (xnn_table.cc).
#pragma once

#include <vector>

#include "backends/xnnpack/xnn_internal.h"

namespace kiln::xnn {

void AddConvOps(std::vector<OpDef>& table);         // xnn_ops_conv.cc
void AddElementwiseOps(std::vector<OpDef>& table);  // xnn_ops_elementwise.cc
void AddPoolOps(std::vector<OpDef>& table);         // xnn_ops_pool.cc
void AddTensorOps(std::vector<OpDef>& table);       // xnn_ops_tensor.cc
void AddNeckOps(std::vector<OpDef>& table);         // xnn_ops_neck.cc

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
// x + x * s[n, c] (s: [N, C, 1, 1], computed): x, s -> f.out, one pass (own AVX2 loop).
Status BuildScaleResidual(Builder& b, const Node& n, ValueId x, ValueId s, const Fusion& f);

}  // namespace kiln::xnn
