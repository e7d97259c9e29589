// Numpy-style broadcasting for reference kernels.
//
// BroadcastShapes computes the multidirectional broadcast of concrete shapes (the output shape of
// Add, Where, Max, ...). BroadcastPlan then describes how to walk that output in row-major order
// while reading each input at its own offset: a dim an input lacks or has as 1 gets stride 0.
//
// The walk is in "runs": the plan collapses adjacent dims wherever every input agrees on whether
// they are broadcast, so that the innermost run is as long as possible. Within a run every input
// advances by inner_stride(k), which is 1 (contiguous) or 0 (the same element repeated), so a
// kernel can keep a tight loop per stride pattern and leave the index arithmetic to the plan.
//
//   KILN_ASSIGN_OR_RETURN(Shape out_shape, BroadcastShapes({&a.shape(), &b.shape()}));
//   KILN_ASSIGN_OR_RETURN(BroadcastPlan plan, BroadcastPlan::Make(out_shape, {&a.shape(), &b.shape()}));
//   plan.ForEachRun(0, plan.runs(), [&](int64_t out_offset, const int64_t* in_offsets) {
//     for (int64_t i = 0; i < plan.inner(); ++i)
//       out[out_offset + i] = pa[in_offsets[0] + i * plan.inner_stride(0)] + ...;
//   });
//
// Runs are independent, so [begin, end) ranges of runs may be processed in parallel.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"

namespace kiln {

// Multidirectional (numpy) broadcast of `shapes`: aligned at the trailing dim, each dim pair
// must be equal or contain a 1. Error naming both dims otherwise.
Result<Shape> BroadcastShapes(std::span<const Shape* const> shapes);
inline Result<Shape> BroadcastShapes(std::initializer_list<const Shape*> shapes) {
  return BroadcastShapes(std::span<const Shape* const>(shapes.begin(), shapes.size()));
}

// Whether `in` broadcasts unidirectionally to `out` (rank <= out's, each dim equal or 1).
bool BroadcastsTo(const Shape& in, const Shape& out);

// Per-dim element strides of `in` viewed with `out`'s rank: 0 for dims `in` lacks or has as 1
// (where out's dim is not 1), row-major strides otherwise. Requires BroadcastsTo(in, out).
std::vector<int64_t> BroadcastStrides(const Shape& in, const Shape& out);

class BroadcastPlan {
 public:
  // Plans the walk of `out` over `inputs`; error when an input does not broadcast to `out`.
  static Result<BroadcastPlan> Make(const Shape& out, std::span<const Shape* const> inputs);
  static Result<BroadcastPlan> Make(const Shape& out, std::initializer_list<const Shape*> inputs) {
    return Make(out, std::span<const Shape* const>(inputs.begin(), inputs.size()));
  }

  size_t num_inputs() const { return num_inputs_; }
  // Elements in the output.
  int64_t size() const { return size_; }
  // Length of each run (the collapsed innermost dim); 0 only for an empty output.
  int64_t inner() const { return inner_; }
  // Number of runs: size() / inner() (0 for an empty output).
  int64_t runs() const { return runs_; }
  // How far input k advances per element inside a run: 0 or 1.
  int64_t inner_stride(size_t k) const { return inner_strides_[k]; }
  // True when input k is read contiguously for the whole output (same shape as the output).
  bool is_identity(size_t k) const { return identity_[k]; }

  // Calls fn(out_offset, in_offsets) for runs [begin, end) in order; in_offsets[k] is input k's
  // element offset at the start of the run and out_offset == run * inner().
  template <typename Fn>
  void ForEachRun(int64_t begin, int64_t end, Fn&& fn) const {
    if (begin >= end) return;
    const size_t nd = outer_dims_.size();
    const size_t ni = num_inputs_;
    // Odometer over the outer dims, started at run `begin`.
    std::vector<int64_t> idx(nd, 0);
    std::vector<int64_t> offsets(ni, 0);
    int64_t rem = begin;
    for (size_t d = nd; d-- > 0;) {
      idx[d] = rem % outer_dims_[d];
      rem /= outer_dims_[d];
      for (size_t k = 0; k < ni; ++k) offsets[k] += idx[d] * outer_strides_[d * ni + k];
    }
    for (int64_t r = begin; r < end; ++r) {
      fn(r * inner_, static_cast<const int64_t*>(offsets.data()));
      // Advance the odometer by one run.
      for (size_t d = nd; d-- > 0;) {
        const int64_t* st = &outer_strides_[d * ni];
        if (++idx[d] < outer_dims_[d]) {
          for (size_t k = 0; k < ni; ++k) offsets[k] += st[k];
          break;
        }
        idx[d] = 0;
        for (size_t k = 0; k < ni; ++k) offsets[k] -= (outer_dims_[d] - 1) * st[k];
      }
    }
  }

  // "out [2,3,4] runs 6x4 strides in0:1 in1:0" for debugging.
  std::string ToString() const;

 private:
  size_t num_inputs_ = 0;
  int64_t size_ = 0;
  int64_t inner_ = 0;
  int64_t runs_ = 0;
  std::vector<int64_t> inner_strides_;  // per input: 0 or 1
  std::vector<bool> identity_;          // per input
  std::vector<int64_t> outer_dims_;     // collapsed dims outside the run, outermost first
  std::vector<int64_t> outer_strides_;  // [dim][input] element strides
};

}  // namespace kiln
