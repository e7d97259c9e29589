// Per-thread limits on how long a run may go on, next to the tensor byte limit of core/tensor.h:
// a session sets them (SessionOptions) around its create, plan and run calls, so that the
// kernels running on the calling thread (control flow, constant folding) see them.
#pragma once

#include <cstdint>

namespace kiln {

// The most iterations one Loop node may run (0: no limit). The reference Loop kernel refuses a
// trip count M above it before iterating when M alone decides the count (no condition input),
// and otherwise stops with an error when the body still asks for another iteration after this
// many: a loop whose condition never turns false ends in an error, not a hang.
int64_t LoopIterationLimit();
class ScopedLoopIterationLimit {
 public:
  explicit ScopedLoopIterationLimit(int64_t max_iterations);
  ~ScopedLoopIterationLimit();
  ScopedLoopIterationLimit(const ScopedLoopIterationLimit&) = delete;
  ScopedLoopIterationLimit& operator=(const ScopedLoopIterationLimit&) = delete;

 private:
  int64_t previous_;
};

}  // namespace kiln
