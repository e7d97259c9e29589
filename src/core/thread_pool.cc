#include "core/thread_pool.h"

#include <pthreadpool.h>

#include <algorithm>

// Kiln's own pthreadpool (xnn_threadpool.cc) keeps workers spinning while held; weak, because
// the shared library links Debian's libpthreadpool instead (kiln_runtime_nopool), which lacks it.
extern "C" void kiln_pthreadpool_hold(pthreadpool_t pool, int delta) __attribute__((weak));

namespace kiln {
namespace {

thread_local bool in_parallel_for = false;

struct Job {
  const std::function<void(int64_t, int64_t)>* fn;
  int64_t n;
};

void RunTile(void* context, size_t start, size_t tile) {
  const Job& job = *static_cast<const Job*>(context);
  const bool outer = in_parallel_for;
  in_parallel_for = true;
  const int64_t b = static_cast<int64_t>(start);
  (*job.fn)(b, std::min(job.n, b + static_cast<int64_t>(tile)));
  in_parallel_for = outer;
}

}  // namespace

ThreadPool::ThreadPool(int threads) : threads_(std::max(1, threads)) {
  if (threads_ > 1) {
    pool_ = pthreadpool_create(static_cast<size_t>(threads_));
    if (pool_ == nullptr) threads_ = 1;  // out of threads: run inline
  }
}

ThreadPool::RunScope::RunScope(const ThreadPool& pool) : pool_(pool.pool_) {
  if (kiln_pthreadpool_hold != nullptr) kiln_pthreadpool_hold(pool_, 1);
}

ThreadPool::RunScope::~RunScope() {
  if (kiln_pthreadpool_hold != nullptr) kiln_pthreadpool_hold(pool_, -1);
}

ThreadPool::~ThreadPool() {
  if (pool_ != nullptr) pthreadpool_destroy(pool_);
}

void ThreadPool::ParallelFor(int64_t n, const std::function<void(int64_t, int64_t)>& fn,
                             int64_t grain) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  if (pool_ == nullptr || n <= grain || in_parallel_for) {
    fn(0, n);
    return;
  }
  const int64_t chunks = std::min<int64_t>(threads_ * 4, (n + grain - 1) / grain);
  const int64_t tile = std::max(grain, (n + chunks - 1) / chunks);
  Job job{&fn, n};
  pthreadpool_parallelize_1d_tile_1d(pool_, RunTile, &job, static_cast<size_t>(n),
                                     static_cast<size_t>(tile), 0);
}

}  // namespace kiln
