// Helpers shared by the per-family inference functions.
#pragma once

#include <optional>
#include <vector>

#include "core/status.h"
#include "ir/graph.h"
#include "ir/op_schema.h"

namespace kiln {

// Numpy-style multidirectional broadcast of two symbolic shapes; error on incompatible dims.
Result<DimVector> BroadcastDims(const DimVector& a, const DimVector& b);
// Broadcast of all present inputs; nullopt when any rank is unknown.
Result<std::optional<DimVector>> BroadcastInputs(const InferContext& ctx);
// Axis in [-rank, rank) to [0, rank); error otherwise.
Result<int> NormalizeAxis(int64_t axis, int rank, const InferContext& ctx);
// A DimVector from a concrete shape.
DimVector ToDims(const Shape& s);
// Output 0 = type and shape of input 0 (unary elementwise ops).
Status InferSameAsInput0(InferContext& ctx);
// Output 0 = broadcast of inputs, type of input 0.
Status InferBroadcast(InferContext& ctx);
// Output 0 = broadcast of inputs, bool type (comparisons, logic).
Status InferBroadcastBool(InferContext& ctx);
// One axis of an ONNX Slice on a dim of size `dim`: negative start/end count from the end, then
// clamp ([0, dim] for positive steps, [-1, dim-1] for negative ones). `step` must be non-zero.
// Shared by Slice's inference and its kernel so that both always agree.
struct SliceSpan {
  int64_t start = 0;   // first index taken (meaningful when length > 0)
  int64_t length = 0;  // number of elements taken
};
SliceSpan NormalizeSlice(int64_t start, int64_t end, int64_t step, int64_t dim);

// Split-18's chunk sizes for `num_outputs` = n (>= 1) along a dim of size `dim`: ceil(dim / n)
// each and the last chunk what remains (smaller when dim is not divisible). Empty when nothing
// would remain for the last chunk (5 into 4: 2, 2, 1 leaves nothing for the fourth output; 4
// into 3: 2, 2, 0), which callers report as an error, as ONNX Runtime does. Shared by Split's
// inference and its kernel.
std::vector<int64_t> SplitChunks(int64_t dim, int64_t n);

// QuantizeLinear's output element type: the zero point's type `zp` when given (kUndefined when
// omitted), else the output_dtype attribute (opset 21), else u8. Errors name the node when the
// two disagree or the type is not one Kiln quantizes to (u8, i8; u16, i16 from opset 21).
// Shared by the op's inference and its reference kernel.
Result<ElementType> QuantizeOutputType(const Node& node, ElementType zp);

// Pool attributes newer than the node's opset: AveragePool's dilations (opset 19), LpPool's
// dilations and ceil_mode (opset 18). ONNX Runtime refuses such models; so do Kiln's pool
// inference and kernels (an error naming the node, attribute and opset).
Status CheckPoolAttributeVersion(const Node& node);

// Product of static dims, nullopt if any is not static.
std::optional<int64_t> StaticNumElements(const DimVector& d);

}  // namespace kiln
