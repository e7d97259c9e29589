// Shape and type inference for the control_flow op family.
#include "ir/infer_util.h"
#include "ir/op_schema.h"

namespace kiln {

namespace {
constexpr OpSchema kSchemas[] = {
    {"__placeholder_control_flow", "", InferSameAsInput0},
};
}  // namespace

std::span<const OpSchema> ControlFlowSchemas() { return kSchemas; }

}  // namespace kiln
