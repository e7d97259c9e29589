// Shape and type inference for the tensor op family.
#include "ir/infer_util.h"
#include "ir/op_schema.h"

namespace kiln {

namespace {
constexpr OpSchema kSchemas[] = {
    {"__placeholder_tensor", "", InferSameAsInput0},
};
}  // namespace

std::span<const OpSchema> TensorSchemas() { return kSchemas; }

}  // namespace kiln
