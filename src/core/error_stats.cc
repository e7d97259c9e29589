#include "core/error_stats.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

namespace kiln {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Numeric and bool tensors as doubles; false for other types.
bool ToDoubles(const Tensor& t, std::vector<double>& out) {
  out.resize(static_cast<size_t>(t.size()));
  return Dispatch<kAllNumeric | kDispatchBool>(t.type(), [&](auto tag) {
    using T = decltype(tag);
    const T* p = t.template data<T>();
    for (int64_t i = 0; i < t.size(); ++i) {
      if constexpr (std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>) {
        out[static_cast<size_t>(i)] = static_cast<double>(static_cast<float>(p[i]));
      } else {
        out[static_cast<size_t>(i)] = static_cast<double>(p[i]);
      }
    }
  });
}

// First index of the maximum; NaN counts as the maximum (first NaN wins).
int64_t ArgMax(const double* p, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (std::isnan(p[i])) return i;
    if (p[i] > p[best]) best = i;
  }
  return best;
}

bool SameNonFinite(double a, double b) {
  return (std::isnan(a) && std::isnan(b)) || (std::isinf(a) && a == b);
}

}  // namespace

Status ErrorStatsAccumulator::Add(const Tensor& candidate, const Tensor& reference) {
  if (candidate.shape() != reference.shape()) {
    return InvalidArgument("shapes differ: reference " + reference.Describe() + ", candidate " +
                           candidate.Describe());
  }
  std::vector<double> a, b;
  if (!ToDoubles(candidate, a) || !ToDoubles(reference, b)) {
    return InvalidArgument("cannot compare " + reference.Describe() + " with " +
                           candidate.Describe() + ": numeric or bool types only");
  }
  const int64_t n = candidate.size();
  for (int64_t i = 0; i < n; ++i) {
    const double x = a[static_cast<size_t>(i)], y = b[static_cast<size_t>(i)];
    if (std::isfinite(x) && std::isfinite(y)) {
      const double err = std::fabs(x - y);
      max_abs_ = std::max(max_abs_, err);
      if (err > 0) max_rel_ = std::max(max_rel_, err / std::max(std::fabs(y), kRelativeErrorFloor));
      sum_err2_ += err * err;
      sum_ref2_ += y * y;
      sum_cand2_ += x * x;
      sum_dot_ += x * y;
    } else if (!SameNonFinite(x, y)) {
      mismatched_non_finite_ = true;
      max_abs_ = max_rel_ = sum_err2_ = kInf;
      if (std::isfinite(y)) {
        ++non_finite_;
        sum_ref2_ += y * y;
      }
    }
  }
  // Rows along the last axis (a scalar or a rank-0 tensor is one row of one element).
  const int64_t last = candidate.rank() == 0 ? 1 : candidate.dim(candidate.rank() - 1);
  if (last > 0) {
    const int64_t rows = n / last;
    for (int64_t r = 0; r < rows; ++r) {
      rows_agree_ += ArgMax(a.data() + r * last, last) == ArgMax(b.data() + r * last, last);
    }
    rows_ += rows;
  }
  elements_ += n;
  ++samples_;
  return Status::Ok();
}

ErrorStats ErrorStatsAccumulator::Result() const {
  ErrorStats s;
  s.elements = elements_;
  s.max_abs_error = max_abs_;
  s.max_rel_error = max_rel_;
  s.non_finite = non_finite_;
  s.argmax_rows = rows_;
  s.argmax_agreement = rows_ > 0 ? static_cast<double>(rows_agree_) / static_cast<double>(rows_) : kNaN;
  const double err = std::sqrt(sum_err2_), ref = std::sqrt(sum_ref2_), cand = std::sqrt(sum_cand2_);
  if (ref > 0) {
    s.rel_l2 = err / ref;
  } else {
    s.rel_l2 = err > 0 ? kInf : 0;
  }
  if (mismatched_non_finite_) {
    s.cosine = kNaN;
  } else if (ref > 0 && cand > 0) {
    s.cosine = std::clamp(sum_dot_ / (cand * ref), -1.0, 1.0);
  } else {
    s.cosine = (ref == 0 && cand == 0) ? 1 : 0;
  }
  if (sum_err2_ == 0) {
    s.snr_db = kInf;
  } else {
    s.snr_db = 10 * std::log10(sum_ref2_ / sum_err2_);  // -inf when sum b^2 is 0 or err is inf
  }
  return s;
}

Result<ErrorStats> ComputeErrorStats(const Tensor& candidate, const Tensor& reference) {
  ErrorStatsAccumulator acc;
  KILN_RETURN_IF_ERROR(acc.Add(candidate, reference));
  return acc.Result();
}

bool AllFinite(const Tensor& t) {
  bool finite = true;
  Dispatch<kDispatchFloat>(t.type(), [&](auto tag) {
    using T = decltype(tag);
    const T* p = t.template data<T>();
    for (int64_t i = 0; i < t.size() && finite; ++i) {
      if constexpr (std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>) {
        finite = std::isfinite(static_cast<float>(p[i]));
      } else {
        finite = std::isfinite(p[i]);
      }
    }
  });
  return finite;
}

}  // namespace kiln
