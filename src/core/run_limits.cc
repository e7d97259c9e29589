#include "core/run_limits.h"

namespace kiln {
namespace {
thread_local int64_t t_loop_iteration_limit = 0;
}  // namespace

int64_t LoopIterationLimit() { return t_loop_iteration_limit; }

ScopedLoopIterationLimit::ScopedLoopIterationLimit(int64_t max_iterations)
    : previous_(t_loop_iteration_limit) {
  t_loop_iteration_limit = max_iterations;
}
ScopedLoopIterationLimit::~ScopedLoopIterationLimit() { t_loop_iteration_limit = previous_; }

}  // namespace kiln
