// Shape and type inference for the rnn op family.
#include "ir/infer_util.h"
#include "ir/op_schema.h"

namespace kiln {

namespace {
constexpr OpSchema kSchemas[] = {
    {"__placeholder_rnn", "", InferSameAsInput0},
};
}  // namespace

std::span<const OpSchema> RnnSchemas() { return kSchemas; }

}  // namespace kiln
