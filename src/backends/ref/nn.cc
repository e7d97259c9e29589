// Reference kernels for the nn op family.
#include "backends/ref/kernel.h"

namespace kiln {

namespace {
Status Placeholder(KernelContext& ctx) { return ctx.Error("placeholder"); }
constexpr KernelDef kKernels[] = {
    {"__placeholder_nn", "", Placeholder},
};
}  // namespace

std::span<const KernelDef> NnKernels() { return kKernels; }

}  // namespace kiln
