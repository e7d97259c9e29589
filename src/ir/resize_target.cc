#include "ir/resize_target.h"

#include <algorithm>
#include <cmath>

namespace kiln {

Result<std::vector<int64_t>> NormalizeResizeAxes(std::vector<int64_t> axes, int rank) {
  if (axes.empty()) {
    for (int i = 0; i < rank; ++i) axes.push_back(i);
    return axes;
  }
  std::vector<bool> seen(static_cast<size_t>(rank), false);
  for (int64_t& a : axes) {
    if (a < -rank || a >= rank) {
      return InvalidArgument("axes value " + std::to_string(a) + " is out of range for rank " +
                             std::to_string(rank));
    }
    if (a < 0) a += rank;
    if (seen[static_cast<size_t>(a)]) {
      return InvalidArgument("axes value " + std::to_string(a) + " is repeated");
    }
    seen[static_cast<size_t>(a)] = true;
  }
  return axes;
}

Result<ResizeTarget> ExpandResizeTarget(const std::vector<int64_t>& in_shape,
                                        std::vector<int64_t> axes, const std::string& policy,
                                        const std::vector<double>* given_scales,
                                        const std::vector<int64_t>* given_sizes) {
  const int rank = static_cast<int>(in_shape.size());
  KILN_ASSIGN_OR_RETURN(axes, NormalizeResizeAxes(std::move(axes), rank));
  const size_t n = axes.size();
  ResizeTarget t;
  t.scales.assign(static_cast<size_t>(rank), 1.0);
  t.sizes = in_shape;
  if (policy != "stretch" && policy != "not_larger" && policy != "not_smaller") {
    return InvalidArgument(
        "keep_aspect_ratio_policy must be stretch, not_larger or not_smaller, "
        "found '" +
        policy + "'");
  }
  if (given_scales != nullptr) {
    if (given_scales->size() != n) {
      return InvalidArgument("scales must hold " + std::to_string(n) + " values (one per " +
                             (n == static_cast<size_t>(rank) ? "input axis" : "entry of axes") +
                             "), found " + std::to_string(given_scales->size()));
    }
    for (size_t i = 0; i < n; ++i) {
      const double s = (*given_scales)[i];
      if (!(s > 0)) return InvalidArgument("scales must be positive, found " + std::to_string(s));
      t.scales[axes[i]] = s;
      t.sizes[axes[i]] =
          static_cast<int64_t>(std::floor(s * static_cast<double>(in_shape[axes[i]])));
    }
    return t;
  }
  if (given_sizes == nullptr || given_sizes->size() != n) {
    return InvalidArgument("sizes must hold " + std::to_string(n) + " values (one per " +
                           (n == static_cast<size_t>(rank) ? "input axis" : "entry of axes") + ")");
  }
  for (size_t i = 0; i < n; ++i) {
    if ((*given_sizes)[i] < 0) return InvalidArgument("sizes must be non-negative");
  }
  if (policy == "stretch") {
    for (size_t i = 0; i < n; ++i) {
      const int64_t in = in_shape[axes[i]];
      t.sizes[axes[i]] = (*given_sizes)[i];
      t.scales[axes[i]] = in > 0 ? static_cast<double>((*given_sizes)[i]) / in : 1.0;
    }
    return t;
  }
  double scale = policy == "not_larger" ? INFINITY : 0.0;
  for (size_t i = 0; i < n; ++i) {
    const int64_t in = in_shape[axes[i]];
    const double r = in > 0 ? static_cast<double>((*given_sizes)[i]) / in : 1.0;
    scale = policy == "not_larger" ? std::min(scale, r) : std::max(scale, r);
  }
  for (size_t i = 0; i < n; ++i) {
    t.scales[axes[i]] = scale;
    t.sizes[axes[i]] =
        static_cast<int64_t>(std::round(scale * static_cast<double>(in_shape[axes[i]])));
  }
  return t;
}

}  // namespace kiln
