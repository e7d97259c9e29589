// Reference kernels for the tensor op family.
#include "backends/ref/kernel.h"

namespace kiln {

namespace {
Status Placeholder(KernelContext& ctx) { return ctx.Error("placeholder"); }
constexpr KernelDef kKernels[] = {
    {"__placeholder_tensor", "", Placeholder},
};
}  // namespace

std::span<const KernelDef> TensorKernels() { return kKernels; }

}  // namespace kiln
