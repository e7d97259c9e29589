// Private to the XNNPACK backend: the op families that fill the one op table (xnn_table.cc).
#pragma once

#include <vector>

#include "backends/xnnpack/xnn_internal.h"

namespace kiln::xnn {

void AddConvOps(std::vector<OpDef>& table);         // xnn_ops_conv.cc
void AddElementwiseOps(std::vector<OpDef>& table);  // xnn_ops_elementwise.cc
void AddPoolOps(std::vector<OpDef>& table);         // xnn_ops_pool.cc
void AddTensorOps(std::vector<OpDef>& table);       // xnn_ops_tensor.cc

// The fused HardSwish patterns (x*clip(x+3,0,6)/6, x*HardSigmoid(x)): x -> f.out.
Status BuildHardSwish(Builder& b, const Node& n, ValueId x, const Fusion& f);

}  // namespace kiln::xnn
