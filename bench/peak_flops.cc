// The fp32 FMA roofline of one core: register-only FMA chains (no loads), 16 independent
// accumulators (enough to cover FMA latency x ports), zmm and ymm. Prints GFLOP/s (one FMA of a
// 16-lane zmm = 32 flops). The zmm figure is the peak quoted for the own conv kernels.
//
//   ninja -C build kiln_peak_flops && build/kiln_peak_flops
#include <immintrin.h>

#include <chrono>
#include <cstdint>
#include <cstdio>

#include "core/cpu_features.h"

namespace {

double Seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

__attribute__((target("avx512f,fma"))) float RunAvx512(int64_t iters) {
  __m512 acc[16];
#pragma GCC unroll 16
  for (int i = 0; i < 16; ++i) acc[i] = _mm512_set1_ps(static_cast<float>(i));
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
  }
  __m512 s = acc[0];
#pragma GCC unroll 16
  for (int i = 1; i < 16; ++i) s = _mm512_add_ps(s, acc[i]);
  return _mm512_reduce_add_ps(s);
}

KILN_TARGET_AVX2 float RunAvx2(int64_t iters) {
  __m256 acc[12];
#pragma GCC unroll 12
  for (int i = 0; i < 12; ++i) acc[i] = _mm256_set1_ps(static_cast<float>(i));
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
  }
  __m256 s = acc[0];
#pragma GCC unroll 12
  for (int i = 1; i < 12; ++i) s = _mm256_add_ps(s, acc[i]);
  float out[8];
  _mm256_storeu_ps(out, s);
  return out[0];
}

template <class F>
double BestGflops(F run, int64_t iters, double flops_per_iter) {
  double best = 0;
  // Short runs, best of many: on a shared machine most runs fit in one time slice.
  for (int rep = 0; rep < 200; ++rep) {
    const double t0 = Seconds();
    volatile float sink = run(iters);
    (void)sink;
    const double t = Seconds() - t0;
    if (iters * flops_per_iter / t * 1e-9 > best) best = iters * flops_per_iter / t * 1e-9;
  }
  return best;
}

}  // namespace

int main() {
  const int64_t iters = 200'000;
  const kiln::CpuIsa isa = kiln::DetectedCpuIsa();
  if (isa >= kiln::CpuIsa::kAvx2) {
    std::printf("ymm FMA peak: %.1f GFLOP/s (1 thread)\n", BestGflops(RunAvx2, iters, 12 * 2 * 8));
  }
  if (isa >= kiln::CpuIsa::kAvx512) {
    std::printf("zmm FMA peak: %.1f GFLOP/s (1 thread)\n",
                BestGflops(RunAvx512, iters, 16 * 2 * 16));
  }
  return 0;
}
