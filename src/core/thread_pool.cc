#include "core/thread_pool.h"

#include <algorithm>

namespace kiln {

ThreadPool::ThreadPool(int threads) : threads_(std::max(1, threads)) {
  for (int i = 1; i < threads_; ++i) workers_.emplace_back([this] { Worker(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& w : workers_) w.join();
}

void ThreadPool::ParallelFor(int64_t n, const std::function<void(int64_t, int64_t)>& fn,
                             int64_t grain) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  if (threads_ <= 1 || n <= grain) {
    fn(0, n);
    return;
  }
  const int64_t chunks = std::min<int64_t>(threads_ * 4, (n + grain - 1) / grain);
  std::unique_lock<std::mutex> lock(mu_);
  job_ = &fn;
  job_n_ = n;
  chunk_ = (n + chunks - 1) / chunks;
  next_ = 0;
  pending_ = (n + chunk_ - 1) / chunk_;
  ++generation_;
  cv_.notify_all();
  // The caller works too.
  while (next_ < job_n_) {
    const int64_t b = next_;
    next_ = std::min(job_n_, b + chunk_);
    const int64_t e = next_;
    lock.unlock();
    fn(b, e);
    lock.lock();
    --pending_;
  }
  done_cv_.wait(lock, [&] { return pending_ == 0; });
  job_ = nullptr;
}

void ThreadPool::Worker() {
  uint64_t seen = 0;
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait(lock, [&] { return stop_ || (generation_ != seen && job_ != nullptr && next_ < job_n_); });
    if (stop_) return;
    seen = generation_;
    while (job_ != nullptr && next_ < job_n_) {
      const int64_t b = next_;
      next_ = std::min(job_n_, b + chunk_);
      const int64_t e = next_;
      const auto* fn = job_;
      lock.unlock();
      (*fn)(b, e);
      lock.lock();
      if (--pending_ == 0) done_cv_.notify_all();
    }
  }
}

}  // namespace kiln
