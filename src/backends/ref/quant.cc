// Reference kernels for the quant op family.
#include "backends/ref/kernel.h"

namespace kiln {

namespace {
Status Placeholder(KernelContext& ctx) { return ctx.Error("placeholder"); }
constexpr KernelDef kKernels[] = {
    {"__placeholder_quant", "", Placeholder},
};
}  // namespace

std::span<const KernelDef> QuantKernels() { return kKernels; }

}  // namespace kiln
