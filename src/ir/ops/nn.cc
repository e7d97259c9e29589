// Shape and type inference for the nn op family.
#include "ir/infer_util.h"
#include "ir/op_schema.h"

namespace kiln {

namespace {
constexpr OpSchema kSchemas[] = {
    {"__placeholder_nn", "", InferSameAsInput0},
};
}  // namespace

std::span<const OpSchema> NnSchemas() { return kSchemas; }

}  // namespace kiln
