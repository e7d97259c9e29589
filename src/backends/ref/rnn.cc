// Reference kernels for the rnn op family.
#include "backends/ref/kernel.h"

namespace kiln {

namespace {
Status Placeholder(KernelContext& ctx) { return ctx.Error("placeholder"); }
constexpr KernelDef kKernels[] = {
    {"__placeholder_rnn", "", Placeholder},
};
}  // namespace

std::span<const KernelDef> RnnKernels() { return kKernels; }

}  // namespace kiln
