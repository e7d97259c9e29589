// Shape and type inference for the quant op family.
#include "ir/infer_util.h"
#include "ir/op_schema.h"

namespace kiln {

namespace {
constexpr OpSchema kSchemas[] = {
    {"__placeholder_quant", "", InferSameAsInput0},
};
}  // namespace

std::span<const OpSchema> QuantSchemas() { return kSchemas; }

}  // namespace kiln
