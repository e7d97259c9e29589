// Raising a typed model's float16 inside to float32: how a `network` model runs on a unit whose
// native precision is fp32 (DESIGN.md, "Typed execution"). Graph inputs and outputs keep their
// types (a Cast at each float16 input and output); every other float16 value, weight and
// Constant becomes float32, and Casts to float16 inside become Casts to float32. Nested bodies
// are raised the same way. A program model is never raised (its types are minimums, and
// raising them is the backend's call, recorded per node).
#pragma once

#include "core/status.h"
#include "ir/graph.h"

namespace kiln {

struct RaiseReport {
  int values_raised = 0;
  int initializers_raised = 0;  // initializers and Constant/ConstantOfShape tensors
  int casts_inserted = 0;
};

Result<RaiseReport> RaiseToFloat32(Model& model);

}  // namespace kiln
