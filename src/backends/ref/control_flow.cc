// Reference kernels for the control_flow op family.
#include "backends/ref/kernel.h"

namespace kiln {

namespace {
Status Placeholder(KernelContext& ctx) { return ctx.Error("placeholder"); }
constexpr KernelDef kKernels[] = {
    {"__placeholder_control_flow", "", Placeholder},
};
}  // namespace

std::span<const KernelDef> ControlFlowKernels() { return kKernels; }

}  // namespace kiln
