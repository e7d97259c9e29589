// Searching for the smallest count that passes a monotone test (false ... false true ... true),
// when each test is expensive (a model run): tries 1, 2, 4, ... up to n, then bisects between
// the last failing and the first passing count. Used by the automatic keep-in-fp32 and
// keep-in-float searches (precision/auto.cc, quant/auto.cc).
#pragma once

#include <algorithm>
#include <cstddef>
#include <optional>

#include "core/status.h"

namespace kiln {

// The smallest k in [1, n] with passes(k) true; nullopt when n is 0 or passes(n) is false.
// `passes` is a callable size_t -> Result<bool>; its errors are returned.
template <typename Pass>
Result<std::optional<size_t>> SmallestPassingCount(size_t n, Pass&& passes) {
  size_t lo = 0, hi = 0;  // lo fails; hi (once found) passes
  bool found = false;
  for (size_t k = 1; n > 0; k = std::min(n, k * 2)) {
    KILN_ASSIGN_OR_RETURN(bool ok, passes(k));
    if (ok) {
      hi = k;
      found = true;
      break;
    }
    lo = k;
    if (k == n) break;
  }
  if (!found) return std::optional<size_t>();
  while (hi - lo > 1) {
    const size_t mid = (lo + hi) / 2;
    KILN_ASSIGN_OR_RETURN(bool ok, passes(mid));
    if (ok) {
      hi = mid;
    } else {
      lo = mid;
    }
  }
  return std::optional<size_t>(hi);
}

}  // namespace kiln
