// Reference kernels for the misc op family.
#include "backends/ref/kernel.h"

namespace kiln {

namespace {
Status Placeholder(KernelContext& ctx) { return ctx.Error("placeholder"); }
constexpr KernelDef kKernels[] = {
    {"__placeholder_misc", "", Placeholder},
};
}  // namespace

std::span<const KernelDef> MiscKernels() { return kKernels; }

}  // namespace kiln
