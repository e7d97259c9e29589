// Reference kernels for the reduce op family.
#include "backends/ref/kernel.h"

namespace kiln {

namespace {
Status Placeholder(KernelContext& ctx) { return ctx.Error("placeholder"); }
constexpr KernelDef kKernels[] = {
    {"__placeholder_reduce", "", Placeholder},
};
}  // namespace

std::span<const KernelDef> ReduceKernels() { return kKernels; }

}  // namespace kiln
