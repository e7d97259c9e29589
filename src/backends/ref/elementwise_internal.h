// Private helpers shared by the elementwise reference kernels (elementwise*.cc).
//
// Element loops are templates over the C element type T and an op functor; arithmetic for f16 and
// bf16 happens in float (each store rounds), f32 in float, f64 in double and integers in their own
// type with wrap-around (via unsigned arithmetic, so overflow is defined). Large loops are split
// over the context's thread pool; BinaryBroadcast keeps a tight inner loop per stride pattern so
// the compiler can vectorize the common f32 cases (same shapes, scalar operand, row broadcast).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <type_traits>

#include "backends/ref/broadcast.h"
#include "backends/ref/kernel.h"

namespace kiln::ew {

// Elements per parallel chunk: below this a loop runs inline.
constexpr int64_t kParallelGrain = 1 << 15;

// The type an element of T is computed in: float for f16/bf16/f32, double for f64, T otherwise.
template <typename T>
using Compute = std::conditional_t<std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>, float, T>;

template <typename T>
inline constexpr bool kIsFloat = std::is_floating_point_v<T> || std::is_same_v<T, Half> ||
                                 std::is_same_v<T, BFloat16>;

// Runs fn(begin, end) over [0, n), on the pool when n is at least 2 * grain.
inline void ParallelRange(ThreadPool* pool, int64_t n, int64_t grain,
                          const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  if (pool == nullptr || pool->threads() <= 1 || n < 2 * grain) {
    fn(0, n);
    return;
  }
  pool->ParallelFor(n, fn, grain);
}

// out[i] = f(i) for i in [lo, hi). Trivially copyable results go through a fixed-size block
// buffer: a loop of known trip count over a local array needs no aliasing checks, which lets GCC
// vectorize it at -O2 (its "very cheap" cost model) even when `out` may alias the inputs.
template <typename TO, typename F>
inline void MapIndex(int64_t lo, int64_t hi, TO* out, F&& f) {
  int64_t i = lo;
  if constexpr (std::is_trivially_copyable_v<TO>) {
    constexpr int kBlock = 16;
    for (; i + kBlock <= hi; i += kBlock) {
      TO tmp[kBlock];
      for (int j = 0; j < kBlock; ++j) tmp[j] = f(i + j);
      for (int j = 0; j < kBlock; ++j) out[i + j] = tmp[j];
    }
  }
  for (; i < hi; ++i) out[i] = f(i);
}

// out[i] = op(in[i]) for i in [0, n).
template <typename TI, typename TO, typename Op>
void UnaryMap(const TI* in, TO* out, int64_t n, ThreadPool* pool, Op op) {
  ParallelRange(pool, n, kParallelGrain, [&](int64_t b, int64_t e) {
    MapIndex(b, e, out, [&](int64_t i) { return op(in[i]); });
  });
}

// out = op(a, b) with numpy broadcasting described by `plan` (inputs a, b in that order).
template <typename TA, typename TB, typename TO, typename Op>
void BinaryBroadcast(const BroadcastPlan& plan, const TA* a, const TB* b, TO* out,
                     ThreadPool* pool, Op op) {
  if (plan.size() == 0) return;
  const int64_t inner = plan.inner();
  const int64_t sa = plan.inner_stride(0);
  const int64_t sb = plan.inner_stride(1);
  if (plan.runs() == 1 || (sa == 1 && sb == 1 && plan.is_identity(0) && plan.is_identity(1))) {
    // One contiguous run (same shapes, or a scalar operand): split it over the pool.
    const int64_t n = plan.size();
    ParallelRange(pool, n, kParallelGrain, [&](int64_t lo, int64_t hi) {
      if (sa == 1 && sb == 1) {
        MapIndex(lo, hi, out, [&](int64_t i) { return op(a[i], b[i]); });
      } else if (sa == 1) {
        const TB bv = b[0];
        MapIndex(lo, hi, out, [&](int64_t i) { return op(a[i], bv); });
      } else if (sb == 1) {
        const TA av = a[0];
        MapIndex(lo, hi, out, [&](int64_t i) { return op(av, b[i]); });
      } else {
        const TO v = op(a[0], b[0]);
        for (int64_t i = lo; i < hi; ++i) out[i] = v;
      }
    });
    return;
  }
  const int64_t grain_runs = inner >= kParallelGrain ? 1 : kParallelGrain / inner;
  ParallelRange(pool, plan.runs(), grain_runs, [&](int64_t rb, int64_t re) {
    plan.ForEachRun(rb, re, [&](int64_t o, const int64_t* off) {
      const TA* pa = a + off[0];
      const TB* pb = b + off[1];
      TO* po = out + o;
      if (sa == 1 && sb == 1) {
        MapIndex(0, inner, po, [&](int64_t i) { return op(pa[i], pb[i]); });
      } else if (sa == 1) {
        const TB bv = *pb;
        MapIndex(0, inner, po, [&](int64_t i) { return op(pa[i], bv); });
      } else if (sb == 1) {
        const TA av = *pa;
        MapIndex(0, inner, po, [&](int64_t i) { return op(av, pb[i]); });
      } else {
        const TO v = op(*pa, *pb);
        for (int64_t i = 0; i < inner; ++i) po[i] = v;
      }
    });
  });
}

// Generic n-input walk: fn(out_index, in_offsets) per element. For the rarer multi-input ops
// (Where, legacy forms); not vectorized.
template <typename Fn>
void ForEachBroadcastElement(const BroadcastPlan& plan, ThreadPool* pool, Fn fn) {
  const int64_t inner = plan.inner();
  if (plan.size() == 0) return;
  const size_t ni = plan.num_inputs();
  const int64_t grain_runs = inner >= kParallelGrain ? 1 : kParallelGrain / inner;
  ParallelRange(pool, plan.runs(), grain_runs, [&](int64_t rb, int64_t re) {
    std::vector<int64_t> cur(ni);
    plan.ForEachRun(rb, re, [&](int64_t o, const int64_t* off) {
      for (size_t k = 0; k < ni; ++k) cur[k] = off[k];
      for (int64_t i = 0; i < inner; ++i) {
        fn(o + i, static_cast<const int64_t*>(cur.data()));
        for (size_t k = 0; k < ni; ++k) cur[k] += plan.inner_stride(k);
      }
    });
  });
}

// Integer arithmetic with two's-complement wrap-around (no signed-overflow UB).
template <typename T>
using Wide = std::conditional_t<(sizeof(T) < sizeof(unsigned)), unsigned, std::make_unsigned_t<T>>;
template <typename T>
T WrapAdd(T a, T b) {
  return static_cast<T>(static_cast<Wide<T>>(a) + static_cast<Wide<T>>(b));
}
template <typename T>
T WrapSub(T a, T b) {
  return static_cast<T>(static_cast<Wide<T>>(a) - static_cast<Wide<T>>(b));
}
template <typename T>
T WrapMul(T a, T b) {
  return static_cast<T>(static_cast<Wide<T>>(a) * static_cast<Wide<T>>(b));
}

// For ops that had the `broadcast`/`axis` attributes before opset 7 (Add, Sub, Mul, Div, Pow,
// And, Or, Xor, Equal, Greater, Less): the shape B takes when aligned to A. broadcast=0 requires
// equal shapes; broadcast=1 places B's dims at `axis` of A (default: trailing), padding with 1s.
// At opset >= 7 returns b unchanged (numpy broadcasting).
Result<Shape> AlignLegacyBroadcast(const KernelContext& ctx, const Shape& a, const Shape& b);

// Kernel entry points, by file.
// elementwise_unary.cc
std::span<const KernelDef> UnaryKernels();
// elementwise_binary.cc
std::span<const KernelDef> BinaryKernels();
// elementwise_cast.cc
std::span<const KernelDef> CastKernels();

}  // namespace kiln::ew

namespace kiln {
// The element type Cast's `to` attribute names (an ONNX type code, or before opset 6 a type name
// such as "FLOAT"); defined with the Cast schema in src/ir/ops/elementwise.cc.
Result<ElementType> CastTargetType(const Node& node);
}  // namespace kiln
