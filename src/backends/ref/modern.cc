// Reference kernels for the ops that appeared in opsets 18-23: the table and shared helpers.
#include "backends/ref/modern_internal.h"
#include "backends/ref/nn_internal.h"

namespace kiln {
namespace modern {

Status RequireFloatInput(const KernelContext& ctx, size_t i, const char* name) {
  const Tensor* t = ctx.input(i);
  if (t == nullptr) return ctx.Error(std::string("missing required input ") + name);
  if (!IsFloating(t->type())) {
    return ctx.Error(std::string("input ") + name + " must be a float tensor, found " +
                     t->Describe());
  }
  return Status::Ok();
}

}  // namespace modern

namespace {
constexpr KernelDef kKernels[] = {
    {"Gelu", "", modern::GeluKernel},
    {"Mish", "", modern::MishKernel},
    {"GroupNormalization", "", modern::GroupNormalizationKernel},
    {"RMSNormalization", "", modern::RmsNormalizationKernel},
    {"RotaryEmbedding", "", modern::RotaryEmbeddingKernel},
    {"Attention", "", modern::AttentionKernel},
    {"AffineGrid", "", modern::AffineGridKernel},
    {"DeformConv", "", modern::DeformConvKernel},
};
}  // namespace

std::span<const KernelDef> ModernKernels() { return kKernels; }

}  // namespace kiln
