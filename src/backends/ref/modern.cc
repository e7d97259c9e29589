// Reference kernels for the ops that appeared in opsets 18-23: the table and shared helpers.
#include "backends/ref/modern_internal.h"
#include "backends/ref/nn_internal.h"

namespace kiln {
namespace modern {

std::vector<double> Doubles(const Tensor& t) {
  std::vector<double> v(static_cast<size_t>(t.size()));
  for (int64_t i = 0; i < t.size(); ++i) v[static_cast<size_t>(i)] = t.GetAsDouble(i);
  return v;
}

Status StoreFloat(KernelContext& ctx, size_t index, ElementType type, const Shape& shape,
                  const std::vector<double>& values) {
  KILN_ASSIGN_OR_RETURN(Tensor * t, ctx.output(index, type, shape));
  const bool ok = Dispatch<kDispatchFloat>(type, [&](auto tag) {
    using T = decltype(tag);
    T* d = t->data<T>();
    for (size_t i = 0; i < values.size(); ++i) d[i] = nn::FromD<T>(values[i]);
  });
  if (!ok) return ctx.UnsupportedType(type);
  return Status::Ok();
}

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
