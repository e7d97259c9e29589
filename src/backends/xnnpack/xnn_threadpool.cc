// Kiln's implementation of the pthreadpool C API (pthreadpool.h) that XNNPACK runs its operators
// on. It replaces the Debian libpthreadpool at link time: the definitions here are in the
// executable, which the dynamic linker prefers for libXNNPACK's pthreadpool_* references.
//
// Why: libpthreadpool's caller waits at the end of every parallel call until each worker has
// woken up and checked in, even when the caller already did all the work. On a loaded machine
// (more runnable threads than cores) a worker may not be scheduled for milliseconds, and a
// model with hundreds of operators then runs many times slower with 2 threads than with 1.
// Here work items are claimed dynamically from a shared counter; the caller works too, and once
// every item is claimed it closes the job and waits only for workers that joined it (and are
// running an item). Idle workers spin briefly (about 50 us) for the next job, then sleep on a
// condition variable; the caller wakes sleepers only when there are any. A parallel call made
// from inside a work item runs inline; calls from several threads take turns.
#include <pthreadpool.h>
#include <xmmintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace {

// Items [0, n) are split into one contiguous part per thread (at most kMaxParts): each thread
// drains its own part first, then helps with the others'. Consecutive operators thus give each
// thread the same rows of their data, which stay in that core's cache (claiming chunks from one
// shared counter interleaved them between the cores and made small operators slower on two
// threads than on one).
constexpr size_t kMaxParts = 16;

struct alignas(64) Part {
  std::atomic<size_t> next{0};
  size_t end = 0;
};

struct Job {
  void (*item)(const Job& job, size_t begin, size_t end) = nullptr;
  const void* ctx = nullptr;  // the parallelize call's arguments
  size_t n = 0;
  size_t chunk = 1;
  uint32_t flags = 0;
  size_t parts = 1;
  Part part[kMaxParts];

  // Splits [0, n) into `count` contiguous parts.
  void Split(size_t count) {
    parts = std::max<size_t>(1, std::min(count, kMaxParts));
    for (size_t i = 0; i < parts; ++i) {
      part[i].next.store(n * i / parts, std::memory_order_relaxed);
      part[i].end = n * (i + 1) / parts;
    }
  }
};

// Set while this thread runs items of some job: a parallel call from inside one runs inline.
thread_local bool in_job = false;

// Runs chunks of `job` until none is left: those of part `self` first.
void Drain(Job& job, size_t self = 0) {
  const bool outer = in_job;
  in_job = true;
  uint32_t saved = 0;
  const bool ftz = (job.flags & PTHREADPOOL_FLAG_DISABLE_DENORMALS) != 0;
  if (ftz) {
    saved = _mm_getcsr();
    _mm_setcsr(saved | 0x8040);  // flush-to-zero, denormals-are-zero
  }
  for (size_t k = 0; k < job.parts; ++k) {
    Part& p = job.part[(self + k) % job.parts];
    while (true) {
      const size_t b = p.next.fetch_add(job.chunk, std::memory_order_relaxed);
      if (b >= p.end) break;
      job.item(job, b, std::min(p.end, b + job.chunk));
    }
  }
  if (ftz) _mm_setcsr(saved);
  in_job = outer;
}

}  // namespace

struct pthreadpool {
  explicit pthreadpool(size_t n) : threads(std::max<size_t>(1, n)) {
    for (size_t i = 1; i < threads; ++i) workers.emplace_back([this, i] { Worker(i); });
  }
  ~pthreadpool() {
    {
      std::lock_guard<std::mutex> lock(mu);
      stop = true;
      generation.fetch_add(1, std::memory_order_release);
    }
    cv.notify_all();
    for (std::thread& t : workers) t.join();
  }

  void Run(Job& job) {
    if (threads <= 1 || job.n <= 1 || in_job) {
      job.chunk = std::max<size_t>(1, job.n);
      job.Split(1);
      Drain(job);
      return;
    }
    // One job at a time: callers on other threads queue here.
    std::lock_guard<std::mutex> serial(run_mu);
    job.chunk = std::max<size_t>(1, job.n / (threads * 8));
    job.Split(threads);
    bool wake;
    {
      std::lock_guard<std::mutex> lock(mu);
      current = &job;
      generation.fetch_add(1, std::memory_order_release);
      wake = sleeping > 0;
    }
    if (wake) cv.notify_all();
    Drain(job);
    {
      std::lock_guard<std::mutex> lock(mu);
      current = nullptr;  // no worker joins from now on
    }
    // The workers that joined are finishing their last chunk: spin for them briefly rather than
    // sleep at once (a futex wake-up costs tens of microseconds on a VM, more than a small
    // operator's whole run), then sleep.
    const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(100);
    while (active.load(std::memory_order_acquire) != 0) {
      for (int i = 0; i < 32; ++i) _mm_pause();
      if (std::chrono::steady_clock::now() > until) break;
    }
    if (active.load(std::memory_order_acquire) != 0) {
      std::unique_lock<std::mutex> lock(mu);
      done_cv.wait(lock, [&] { return active.load(std::memory_order_acquire) == 0; });
    }
  }

  void Worker(size_t self) {
    uint64_t seen = generation.load(std::memory_order_acquire);
    uint64_t spins = 0;  // yield cadence while held
    while (true) {
      // Spin for the next job (operators follow each other closely): for as long as a
      // session run holds the pool (kiln_pthreadpool_hold), else briefly; then sleep. Waking a
      // sleeping thread costs tens of microseconds on a VM, more than many operators take; a
      // yield now and then lets the caller's thread run where cores are oversubscribed.
      auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(50);
      bool changed = false;
      while (!changed) {
        for (int i = 0; i < 64 && !changed; ++i) {
          changed = generation.load(std::memory_order_acquire) != seen;
          if (!changed) _mm_pause();
        }
        if (changed) break;
        const auto now = std::chrono::steady_clock::now();
        if (hold.load(std::memory_order_relaxed) > 0) {
          until = now + std::chrono::microseconds(50);
          if (++spins % 16 == 0) std::this_thread::yield();
        } else if (now > until) {
          break;
        }
      }
      std::unique_lock<std::mutex> lock(mu);
      if (!changed) {
        ++sleeping;
        cv.wait(lock, [&] { return stop || generation.load(std::memory_order_acquire) != seen; });
        --sleeping;
      }
      if (stop) return;
      seen = generation.load(std::memory_order_acquire);
      Job* job = current;
      if (job == nullptr) continue;  // closed already: the caller did the work
      ++active;
      lock.unlock();
      Drain(*job, self);
      lock.lock();
      if (active.fetch_sub(1, std::memory_order_acq_rel) == 1) done_cv.notify_all();
    }
  }

  const size_t threads;
  std::vector<std::thread> workers;
  std::mutex run_mu;
  std::mutex mu;
  std::condition_variable cv, done_cv;
  std::atomic<uint64_t> generation{0};
  Job* current = nullptr;  // guarded by mu
  std::atomic<int> active{0};  // workers running the current job; changed under mu
  int sleeping = 0;        // guarded by mu
  bool stop = false;
  std::atomic<int> hold{0};  // > 0 while a session run is going on: workers keep spinning
};

namespace {

// Runs items [0, n) with fn(args, i) on the pool (inline without one).
template <typename Args>
void Parallel(pthreadpool_t pool, size_t n, const Args& args, uint32_t flags) {
  Job job;
  job.ctx = &args;
  job.n = n;
  job.flags = flags;
  job.item = [](const Job& j, size_t b, size_t e) {
    const Args& a = *static_cast<const Args*>(j.ctx);
    for (size_t i = b; i < e; ++i) a(i);
  };
  if (n == 0) return;
  if (pool == nullptr) {
    job.chunk = n;
    job.Split(1);
    Drain(job);
    return;
  }
  pool->Run(job);
}

inline size_t Tiles(size_t range, size_t tile) { return (range + tile - 1) / tile; }

}  // namespace

extern "C" {

// Kiln's extension: while held (count > 0) idle workers spin instead of sleeping, so that the
// operators of one session run do not each pay a wake-up (ThreadPool::RunScope).
void kiln_pthreadpool_hold(pthreadpool_t pool, int delta) {
  if (pool == nullptr) return;
  pool->hold.fetch_add(delta, std::memory_order_relaxed);
  if (delta > 0) {
    // Wake sleepers now, so that they are spinning by the time the first operator comes.
    std::lock_guard<std::mutex> lock(pool->mu);
    if (pool->sleeping > 0) pool->cv.notify_all();
  }
}

pthreadpool_t pthreadpool_create(size_t threads_count) {
  if (threads_count == 0) threads_count = std::max(1u, std::thread::hardware_concurrency());
  return new pthreadpool(threads_count);
}

void pthreadpool_destroy(pthreadpool_t threadpool) { delete threadpool; }

size_t pthreadpool_get_threads_count(pthreadpool_t threadpool) {
  return threadpool ? threadpool->threads : 1;
}

void pthreadpool_parallelize_1d(pthreadpool_t pool, pthreadpool_task_1d_t task, void* ctx,
                                size_t range, uint32_t flags) {
  Parallel(
      pool, range, [&](size_t i) { task(ctx, i); }, flags);
}

void pthreadpool_parallelize_1d_tile_1d(pthreadpool_t pool, pthreadpool_task_1d_tile_1d_t task,
                                        void* ctx, size_t range, size_t tile, uint32_t flags) {
  Parallel(
      pool, Tiles(range, tile),
      [&](size_t t) {
        const size_t i = t * tile;
        task(ctx, i, std::min(tile, range - i));
      },
      flags);
}

void pthreadpool_parallelize_2d(pthreadpool_t pool, pthreadpool_task_2d_t task, void* ctx,
                                size_t range_i, size_t range_j, uint32_t flags) {
  Parallel(
      pool, range_i * range_j, [&](size_t t) { task(ctx, t / range_j, t % range_j); }, flags);
}

void pthreadpool_parallelize_2d_tile_1d(pthreadpool_t pool, pthreadpool_task_2d_tile_1d_t task,
                                        void* ctx, size_t range_i, size_t range_j, size_t tile_j,
                                        uint32_t flags) {
  const size_t tj = Tiles(range_j, tile_j);
  Parallel(
      pool, range_i * tj,
      [&](size_t t) {
        const size_t i = t / tj, j = (t % tj) * tile_j;
        task(ctx, i, j, std::min(tile_j, range_j - j));
      },
      flags);
}

void pthreadpool_parallelize_2d_tile_2d(pthreadpool_t pool, pthreadpool_task_2d_tile_2d_t task,
                                        void* ctx, size_t range_i, size_t range_j, size_t tile_i,
                                        size_t tile_j, uint32_t flags) {
  const size_t ti = Tiles(range_i, tile_i), tj = Tiles(range_j, tile_j);
  Parallel(
      pool, ti * tj,
      [&](size_t t) {
        const size_t i = (t / tj) * tile_i, j = (t % tj) * tile_j;
        task(ctx, i, j, std::min(tile_i, range_i - i), std::min(tile_j, range_j - j));
      },
      flags);
}

void pthreadpool_parallelize_3d(pthreadpool_t pool, pthreadpool_task_3d_t task, void* ctx,
                                size_t range_i, size_t range_j, size_t range_k, uint32_t flags) {
  Parallel(
      pool, range_i * range_j * range_k,
      [&](size_t t) {
        const size_t k = t % range_k;
        t /= range_k;
        task(ctx, t / range_j, t % range_j, k);
      },
      flags);
}

void pthreadpool_parallelize_3d_tile_2d(pthreadpool_t pool, pthreadpool_task_3d_tile_2d_t task,
                                        void* ctx, size_t range_i, size_t range_j, size_t range_k,
                                        size_t tile_j, size_t tile_k, uint32_t flags) {
  const size_t tj = Tiles(range_j, tile_j), tk = Tiles(range_k, tile_k);
  Parallel(
      pool, range_i * tj * tk,
      [&](size_t t) {
        const size_t k = (t % tk) * tile_k;
        t /= tk;
        const size_t j = (t % tj) * tile_j, i = t / tj;
        task(ctx, i, j, k, std::min(tile_j, range_j - j), std::min(tile_k, range_k - k));
      },
      flags);
}

void pthreadpool_parallelize_4d(pthreadpool_t pool, pthreadpool_task_4d_t task, void* ctx,
                                size_t range_i, size_t range_j, size_t range_k, size_t range_l,
                                uint32_t flags) {
  Parallel(
      pool, range_i * range_j * range_k * range_l,
      [&](size_t t) {
        const size_t l = t % range_l;
        t /= range_l;
        const size_t k = t % range_k;
        t /= range_k;
        task(ctx, t / range_j, t % range_j, k, l);
      },
      flags);
}

void pthreadpool_parallelize_4d_tile_2d(pthreadpool_t pool, pthreadpool_task_4d_tile_2d_t task,
                                        void* ctx, size_t range_i, size_t range_j, size_t range_k,
                                        size_t range_l, size_t tile_k, size_t tile_l,
                                        uint32_t flags) {
  const size_t tk = Tiles(range_k, tile_k), tl = Tiles(range_l, tile_l);
  Parallel(
      pool, range_i * range_j * tk * tl,
      [&](size_t t) {
        const size_t l = (t % tl) * tile_l;
        t /= tl;
        const size_t k = (t % tk) * tile_k;
        t /= tk;
        task(ctx, t / range_j, t % range_j, k, l, std::min(tile_k, range_k - k),
             std::min(tile_l, range_l - l));
      },
      flags);
}

void pthreadpool_parallelize_5d(pthreadpool_t pool, pthreadpool_task_5d_t task, void* ctx,
                                size_t range_i, size_t range_j, size_t range_k, size_t range_l,
                                size_t range_m, uint32_t flags) {
  Parallel(
      pool, range_i * range_j * range_k * range_l * range_m,
      [&](size_t t) {
        const size_t m = t % range_m;
        t /= range_m;
        const size_t l = t % range_l;
        t /= range_l;
        const size_t k = t % range_k;
        t /= range_k;
        task(ctx, t / range_j, t % range_j, k, l, m);
      },
      flags);
}

void pthreadpool_parallelize_5d_tile_2d(pthreadpool_t pool, pthreadpool_task_5d_tile_2d_t task,
                                        void* ctx, size_t range_i, size_t range_j, size_t range_k,
                                        size_t range_l, size_t range_m, size_t tile_l,
                                        size_t tile_m, uint32_t flags) {
  const size_t tl = Tiles(range_l, tile_l), tm = Tiles(range_m, tile_m);
  Parallel(
      pool, range_i * range_j * range_k * tl * tm,
      [&](size_t t) {
        const size_t m = (t % tm) * tile_m;
        t /= tm;
        const size_t l = (t % tl) * tile_l;
        t /= tl;
        const size_t k = t % range_k;
        t /= range_k;
        task(ctx, t / range_j, t % range_j, k, l, m, std::min(tile_l, range_l - l),
             std::min(tile_m, range_m - m));
      },
      flags);
}

void pthreadpool_parallelize_6d_tile_2d(pthreadpool_t pool, pthreadpool_task_6d_tile_2d_t task,
                                        void* ctx, size_t range_i, size_t range_j, size_t range_k,
                                        size_t range_l, size_t range_m, size_t range_n,
                                        size_t tile_m, size_t tile_n, uint32_t flags) {
  const size_t tm = Tiles(range_m, tile_m), tn = Tiles(range_n, tile_n);
  Parallel(
      pool, range_i * range_j * range_k * range_l * tm * tn,
      [&](size_t t) {
        const size_t n = (t % tn) * tile_n;
        t /= tn;
        const size_t m = (t % tm) * tile_m;
        t /= tm;
        const size_t l = t % range_l;
        t /= range_l;
        const size_t k = t % range_k;
        t /= range_k;
        task(ctx, t / range_j, t % range_j, k, l, m, n, std::min(tile_m, range_m - m),
             std::min(tile_n, range_n - n));
      },
      flags);
}

}  // extern "C"
