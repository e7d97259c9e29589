// The fp32 FMA peak microbenchmark (peak_flops.h).
#include "core/peak_flops.h"

#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdint>

namespace kiln {

namespace {

double Seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// GCC 12 warns that the AVX-512 intrinsics' internal _mm512_undefined_ps() is uninitialized.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

// 16 independent zmm chains of `iters` FMAs each.
__attribute__((target("avx512f,fma"))) float PeakLoopAvx512(int64_t iters) {
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
#pragma GCC diagnostic pop

// 12 independent ymm chains (16 registers in all on AVX2).
KILN_TARGET_AVX2 float PeakLoopAvx2(int64_t iters) {
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

}  // namespace

double MeasurePeakGflops(CpuIsa isa, double seconds) {
  const CpuIsa have = DetectedCpuIsa();
  const bool zmm = isa >= CpuIsa::kAvx512 && have >= CpuIsa::kAvx512;
  const bool ymm = !zmm && isa >= CpuIsa::kAvx2 && have >= CpuIsa::kAvx2;
  if (!zmm && !ymm) return 0;
  const double flops_per_iter = zmm ? 16 * 2 * 16 : 12 * 2 * 8;
  const int64_t iters = 20'000;
  double best = 0;
  // Short runs, best of many: on a shared machine most runs fit in one time slice.
  const double start = Seconds();
  for (int rep = 0; rep < 1000 && (rep < 5 || Seconds() - start < seconds); ++rep) {
    const double t0 = Seconds();
    volatile float sink = zmm ? PeakLoopAvx512(iters) : PeakLoopAvx2(iters);
    (void)sink;
    const double t = Seconds() - t0;
    if (t > 0) best = std::max(best, static_cast<double>(iters) * flops_per_iter / t * 1e-9);
  }
  return best;
}

}  // namespace kiln
