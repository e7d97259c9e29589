// Resize-18's `axes` and `keep_aspect_ratio_policy`: the one place that turns the scales or
// sizes a Resize node gives for some axes into a scale and an output size for every axis, used by
// shape inference (ir/ops/nn.cc) and the reference kernel (backends/ref/nn_resize.cc) alike.
//
// With `axes`, scales/sizes (and roi) hold values only for the listed axes; the others keep
// scale 1 and their size. With sizes and a policy other than "stretch", one scale for all listed
// axes is the min ("not_larger") or max ("not_smaller") of sizes[i] / in[i], and each listed
// output size is round(scale * in[i]) (half away from zero); that scale then drives the
// coordinate transform.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace kiln {

struct ResizeTarget {
  std::vector<double> scales;  // per axis of the input
  std::vector<int64_t> sizes;  // per axis of the input
};

// `given_scales` or `given_sizes` (exactly one non-null) hold one value per entry of `axes`, or
// per input axis when `axes` is empty. Errors (plain messages; callers add the node) name the
// offending attribute or input.
Result<ResizeTarget> ExpandResizeTarget(const std::vector<int64_t>& in_shape,
                                        std::vector<int64_t> axes, const std::string& policy,
                                        const std::vector<double>* given_scales,
                                        const std::vector<int64_t>* given_sizes);

// `axes` normalized to [0, rank) (negative values count from the end), or an error naming the
// bad or repeated value. Empty axes mean all axes in order.
Result<std::vector<int64_t>> NormalizeResizeAxes(std::vector<int64_t> axes, int rank);

}  // namespace kiln
