// Shape and type inference for the reduce op family.
#include "ir/infer_util.h"
#include "ir/op_schema.h"

namespace kiln {

namespace {
constexpr OpSchema kSchemas[] = {
    {"__placeholder_reduce", "", InferSameAsInput0},
};
}  // namespace

std::span<const OpSchema> ReduceSchemas() { return kSchemas; }

}  // namespace kiln
