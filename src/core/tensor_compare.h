// Comparing tensors: element-wise closeness (conformance) and aggregate error metrics (model
// tests, later `kiln compare`).
#pragma once

#include "core/status.h"
#include "core/tensor.h"

namespace kiln {

// Ok when types and shapes agree and every element satisfies |a - e| <= atol + rtol * |e|
// (floating types; NaN equals NaN, infinities must match) or is equal (integers, bools, strings).
// Otherwise an error naming the first mismatch (index, expected, actual) and the mismatch count.
Status AllClose(const Tensor& expected, const Tensor& actual, double rtol, double atol);

// ||a - b|| / ||b|| over all elements (as doubles); types must be numeric, shapes equal.
Result<double> RelativeL2Error(const Tensor& a, const Tensor& b);

}  // namespace kiln
