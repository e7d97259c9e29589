// Shape and type inference for the misc op family.
#include "ir/infer_util.h"
#include "ir/op_schema.h"

namespace kiln {

namespace {
constexpr OpSchema kSchemas[] = {
    {"__placeholder_misc", "", InferSameAsInput0},
};
}  // namespace

std::span<const OpSchema> MiscSchemas() { return kSchemas; }

}  // namespace kiln
