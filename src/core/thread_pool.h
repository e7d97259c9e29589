// A fixed-size pool of worker threads with a blocking ParallelFor, on pthreadpool.
//
// The calling thread takes part in the work, so a pool of N threads has N-1 workers. With
// threads <= 1 ParallelFor runs inline. Work items are contiguous index ranges.
//
// The same pthreadpool serves XNNPACK (pthreadpool()), so the reference kernels and the XNNPACK
// partitions of one session share one set of workers: two pools on the same cores would leave
// one pool's spinning workers starving the other's (measured: rec at 2 threads 30x slower).
// A ParallelFor called from inside a ParallelFor runs inline.
//
//   ThreadPool pool(4);
//   pool.ParallelFor(rows, [&](int64_t begin, int64_t end) { ... });
#pragma once

#include <cstdint>
#include <functional>

typedef struct pthreadpool* pthreadpool_t;

namespace kiln {

class ThreadPool {
 public:
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int threads() const { return threads_; }
  // Splits [0, n) into chunks of at least `grain` items (about 4 per thread) and runs fn on
  // each; returns when all chunks are done.
  void ParallelFor(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t grain = 1);
  // The underlying pool for libraries that take one (XNNPACK); null when threads() <= 1.
  pthreadpool_t pthreadpool() const { return pool_; }

  // While one is alive, idle workers spin between parallel calls instead of sleeping (a session
  // holds one for each run: waking a thread costs tens of microseconds on a VM, more than many
  // operators take, which made 2 threads slower than 1 on small models).
  class RunScope {
   public:
    explicit RunScope(const ThreadPool& pool);
    ~RunScope();
    RunScope(const RunScope&) = delete;
    RunScope& operator=(const RunScope&) = delete;

   private:
    pthreadpool_t pool_;
  };

 private:
  int threads_;
  pthreadpool_t pool_ = nullptr;
};

}  // namespace kiln
