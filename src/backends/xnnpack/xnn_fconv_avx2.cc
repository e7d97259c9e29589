// AVX2 + FMA register tiles of the own fp32 convolution (xnn_fconv_tiles.h): MR <= 6 rows x NV
// ymm vectors of 8 output channels (NV = 2: 16 channels, 12 float32 accumulators; NV = 1: the
// narrow last panel), one vbroadcastss per row and k, NV weight loads per k, FMA accumulation;
// the SiLU tiles apply it to the accumulators before the store (xnn_silu_simd.h).
#include <immintrin.h>

#include "backends/xnnpack/xnn_fconv_tiles.h"
#include "backends/xnnpack/xnn_silu_simd.h"
#include "core/cpu_features.h"

namespace kiln::xnn {

namespace {

template <int MR, int NV, bool kSilu>
KILN_TARGET_AVX2 void FTileAvx2(const float* const* a, int64_t taps, int64_t cin, const float* w,
                                const float* bias, const float* res, float* y, int64_t ldy, int nc,
                                float lo, float hi, const float* pf, int64_t pf_rows,
                                int64_t pf_ld) {
  __m256 acc[MR][NV];
#pragma GCC unroll 8
  for (int v = 0; v < NV; ++v) {
    const __m256 b = _mm256_loadu_ps(bias + 8 * v);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) acc[r][v] = b;
  }
  PanelPrefetch prefetch(pf, pf_rows, pf_ld, taps * cin);
  for (int64_t t = 0; t < taps; ++t) {
    const float* ar[MR];
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) ar[r] = a[t * kFMrAvx2 + r];
    for (int64_t c = 0; c < cin; ++c) {
      prefetch.Step();
      __m256 wv[NV];
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) wv[v] = _mm256_loadu_ps(w + 8 * v);
      w += 8 * NV;
#pragma GCC unroll 8
      for (int r = 0; r < MR; ++r) {
        const __m256 x = _mm256_broadcast_ss(ar[r] + c);
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) acc[r][v] = _mm256_fmadd_ps(x, wv[v], acc[r][v]);
      }
    }
  }
  const __m256 vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      const int left = nc - 8 * v;
      if (left <= 0) continue;
      __m256 o = acc[r][v];
      if (left >= 8) {
        if (res != nullptr) o = _mm256_add_ps(o, _mm256_loadu_ps(res + r * ldy + 8 * v));
        o = _mm256_min_ps(_mm256_max_ps(o, vlo), vhi);
        if (kSilu) o = SiluAvx2(o);
        _mm256_storeu_ps(y + r * ldy + 8 * v, o);
      } else {
        const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(left), lane);
        if (res != nullptr) o = _mm256_add_ps(o, _mm256_maskload_ps(res + r * ldy + 8 * v, m));
        o = _mm256_min_ps(_mm256_max_ps(o, vlo), vhi);
        if (kSilu) o = SiluAvx2(o);
        _mm256_maskstore_ps(y + r * ldy + 8 * v, m, o);
      }
    }
  }
}

}  // namespace

#define KILN_FTILES(NV, SILU)                                                                 \
  {                                                                                           \
    nullptr, FTileAvx2<1, NV, SILU>, FTileAvx2<2, NV, SILU>, FTileAvx2<3, NV, SILU>,          \
        FTileAvx2<4, NV, SILU>, FTileAvx2<5, NV, SILU>, FTileAvx2<6, NV, SILU>                \
  }
const FTileFn kFTilesAvx2[kFMrAvx2 + 1] = KILN_FTILES(2, false);
const FTileFn kFTilesNarrowAvx2[kFMrAvx2 + 1] = KILN_FTILES(1, false);
const FTileFn kFTilesSiluAvx2[kFMrAvx2 + 1] = KILN_FTILES(2, true);
const FTileFn kFTilesNarrowSiluAvx2[kFMrAvx2 + 1] = KILN_FTILES(1, true);
#undef KILN_FTILES

}  // namespace kiln::xnn
