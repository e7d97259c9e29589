// Shape and type inference for the elementwise op family.
#include "ir/infer_util.h"
#include "ir/op_schema.h"

namespace kiln {

namespace {
constexpr OpSchema kSchemas[] = {
    {"__placeholder_elementwise", "", InferSameAsInput0},
};
}  // namespace

std::span<const OpSchema> ElementwiseSchemas() { return kSchemas; }

}  // namespace kiln
