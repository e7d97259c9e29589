// Reference kernels for the elementwise op family.
#include "backends/ref/kernel.h"

namespace kiln {

namespace {
Status Placeholder(KernelContext& ctx) { return ctx.Error("placeholder"); }
constexpr KernelDef kKernels[] = {
    {"__placeholder_elementwise", "", Placeholder},
};
}  // namespace

std::span<const KernelDef> ElementwiseKernels() { return kKernels; }

}  // namespace kiln
