// AVX-512 register tiles of the own fp32 convolution (xnn_fconv_tiles.h): MR <= 12 rows x NV
// zmm vectors of 16 output channels (NV = 2: 32 channels, 24 float32 accumulators; NV = 1: the
// narrow last panel), one vbroadcastss per row and k, NV weight loads per k, FMA accumulation;
// the SiLU tiles apply it to the accumulators before the store (xnn_silu_simd.h).
#include <immintrin.h>

#include "backends/xnnpack/xnn_fconv_tiles.h"
#include "backends/xnnpack/xnn_silu_simd.h"

namespace kiln::xnn {

namespace {

// GCC 12 warns that _mm512_max_ps's internal _mm512_undefined_ps() is uninitialized.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#define KILN_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma")))

template <int MR, int NV, bool kSilu>
KILN_TARGET_AVX512 void FTileAvx512(const float* const* a, int64_t taps, int64_t cin,
                                    const float* w, const float* bias, const float* res, float* y,
                                    int64_t ldy, int nc, float lo, float hi,
                                    const float* pf, int64_t pf_rows, int64_t pf_ld) {
  __m512 acc[MR][NV];
#pragma GCC unroll 16
  for (int v = 0; v < NV; ++v) {
    const __m512 b = _mm512_loadu_ps(bias + 16 * v);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) acc[r][v] = b;
  }
  PanelPrefetch prefetch(pf, pf_rows, pf_ld, taps * cin);
  for (int64_t t = 0; t < taps; ++t) {
    const float* ar[MR];
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) ar[r] = a[t * kFMrAvx512 + r];
    for (int64_t c = 0; c < cin; ++c) {
      prefetch.Step();
      __m512 wv[NV];
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) wv[v] = _mm512_loadu_ps(w + 16 * v);
      w += 16 * NV;
#pragma GCC unroll 16
      for (int r = 0; r < MR; ++r) {
        const __m512 x = _mm512_set1_ps(ar[r][c]);
#pragma GCC unroll 16
        for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(x, wv[v], acc[r][v]);
      }
    }
  }
  const __m512 vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) {
      const int left = nc - 16 * v;
      const __mmask16 m = left >= 16  ? static_cast<__mmask16>(0xFFFF)
                          : left <= 0 ? static_cast<__mmask16>(0)
                                      : static_cast<__mmask16>((1u << left) - 1);
      __m512 o = acc[r][v];
      if (res != nullptr) o = _mm512_add_ps(o, _mm512_maskz_loadu_ps(m, res + r * ldy + 16 * v));
      o = _mm512_min_ps(_mm512_max_ps(o, vlo), vhi);
      if (kSilu) o = SiluAvx512(o);
      _mm512_mask_storeu_ps(y + r * ldy + 16 * v, m, o);
    }
  }
}

#undef KILN_TARGET_AVX512
#pragma GCC diagnostic pop

}  // namespace

#define KILN_FTILES(NV, SILU)                                                               \
  {                                                                                         \
    nullptr, FTileAvx512<1, NV, SILU>, FTileAvx512<2, NV, SILU>, FTileAvx512<3, NV, SILU>,  \
        FTileAvx512<4, NV, SILU>, FTileAvx512<5, NV, SILU>, FTileAvx512<6, NV, SILU>,       \
        FTileAvx512<7, NV, SILU>, FTileAvx512<8, NV, SILU>, FTileAvx512<9, NV, SILU>,       \
        FTileAvx512<10, NV, SILU>, FTileAvx512<11, NV, SILU>, FTileAvx512<12, NV, SILU>     \
  }
const FTileFn kFTilesAvx512[kFMrAvx512 + 1] = KILN_FTILES(2, false);
const FTileFn kFTilesNarrowAvx512[kFMrAvx512 + 1] = KILN_FTILES(1, false);
const FTileFn kFTilesSiluAvx512[kFMrAvx512 + 1] = KILN_FTILES(2, true);
const FTileFn kFTilesNarrowSiluAvx512[kFMrAvx512 + 1] = KILN_FTILES(1, true);
#undef KILN_FTILES

}  // namespace kiln::xnn
