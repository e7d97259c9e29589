// Private interface between the reference kernels of the ops that appeared in opsets 18-23
// (modern*.cc): Gelu, Mish, GroupNormalization, RMSNormalization (modern_norm.cc),
// RotaryEmbedding and Attention (modern_attention.cc), AffineGrid and DeformConv
// (modern_vision.cc). modern.cc gathers them into ModernKernels().
//
// These kernels read their float inputs as double, compute in double and round once on store:
// they are the oracle for the fast backends, and the ops' own stash_type / softmax_precision
// (float or wider) is thereby always met.
#pragma once

#include <cstdint>
#include <vector>

#include "backends/ref/kernel.h"
#include "backends/ref/nn_internal.h"

namespace kiln::modern {

// Tensor <-> doubles: the reference kernels' shared helpers (nn_internal.h).
using nn::AsDoubles;
using nn::WriteDoubles;
// Fails naming the node unless input `i` is present and a float tensor.
Status RequireFloatInput(const KernelContext& ctx, size_t i, const char* name);

Status GeluKernel(KernelContext& ctx);
Status MishKernel(KernelContext& ctx);
Status GroupNormalizationKernel(KernelContext& ctx);
Status RmsNormalizationKernel(KernelContext& ctx);
Status RotaryEmbeddingKernel(KernelContext& ctx);
Status AttentionKernel(KernelContext& ctx);
Status AffineGridKernel(KernelContext& ctx);
Status DeformConvKernel(KernelContext& ctx);

}  // namespace kiln::modern
