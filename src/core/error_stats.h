// Error statistics of a candidate tensor against a reference (e.g. an fp16 model's output against
// the fp32 model's): the numbers `kiln compare` prints.
//
// Both tensors may have any numeric (or bool) element types; values are compared as doubles.
// Shapes must be equal. With a = candidate and b = reference, per element:
//
//   abs error  |a - b|
//   rel error  |a - b| / max(|b|, kRelativeErrorFloor)
//
// and over all elements:
//
//   max_abs_error     max |a - b|
//   max_rel_error     max rel error
//   rel_l2            ||a - b|| / ||b||      (0 when both norms are 0, +inf when only ||b|| is)
//   cosine            <a, b> / (||a|| ||b||) (1 when both norms are 0, 0 when one is)
//   snr_db            10 log10(sum b^2 / sum (a - b)^2)   (+inf when a == b)
//   argmax_agreement  fraction of rows (slices along the last axis; a scalar is one row) whose
//                     argmax is the same in a and b. Argmax is the first index of the maximum,
//                     where NaN counts as the maximum (NumPy's convention). NaN when no rows.
//   non_finite        count of elements where a is inf/NaN and b is finite.
//
// Non-finite values: an element where a and b are the same non-finite value (both NaN, or the
// same infinity) counts as agreeing: error 0, left out of the sums above. Any other element with
// a non-finite side (an overflow in the candidate, or in the reference) has abs and rel error
// +inf and adds +inf to sum (a - b)^2, so rel_l2 is +inf and snr_db is -inf; cosine is NaN when
// such an element exists.
//
// Aggregation over several samples (ErrorStatsAccumulator): max_abs_error and max_rel_error are
// the maxima over samples; non_finite is the total; argmax_agreement is pooled (agreeing rows over
// all rows); rel_l2, cosine and snr_db are computed from sums pooled over all samples, i.e. as if
// the samples were one tensor concatenated.
//
// Usage:
//   ErrorStatsAccumulator acc;
//   for (...) KILN_RETURN_IF_ERROR(acc.Add(candidate_out, reference_out));
//   ErrorStats s = acc.Result();
#pragma once

#include <cstdint>

#include "core/status.h"
#include "core/tensor.h"

namespace kiln {

// The denominator floor of the relative error, so that exact zeros in the reference give a
// large but finite relative error when the candidate is not exactly zero.
inline constexpr double kRelativeErrorFloor = 1e-12;

struct ErrorStats {
  int64_t elements = 0;  // compared elements, over all samples
  double max_abs_error = 0;
  double max_rel_error = 0;
  double rel_l2 = 0;
  double cosine = 1;
  double snr_db = 0;
  double argmax_agreement = 0;
  int64_t argmax_rows = 0;
  int64_t non_finite = 0;
};

class ErrorStatsAccumulator {
 public:
  // Adds one sample. Errors (nothing added) on a shape mismatch or a non-numeric type.
  Status Add(const Tensor& candidate, const Tensor& reference);
  ErrorStats Result() const;
  int samples() const { return samples_; }

 private:
  int samples_ = 0;
  int64_t elements_ = 0;
  double max_abs_ = 0, max_rel_ = 0;
  double sum_err2_ = 0, sum_ref2_ = 0, sum_cand2_ = 0, sum_dot_ = 0;
  bool mismatched_non_finite_ = false;
  int64_t rows_ = 0, rows_agree_ = 0;
  int64_t non_finite_ = 0;
};

// The statistics of one sample.
Result<ErrorStats> ComputeErrorStats(const Tensor& candidate, const Tensor& reference);

// True when every element is finite (always for integer and bool tensors; strings: true).
bool AllFinite(const Tensor& t);

}  // namespace kiln
