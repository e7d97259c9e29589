// Private to xnn_fconv*.cc: the register-tile micro-kernels of the own fp32 convolution / GEMM
// (xnn_fconv.h), one table per ISA, indexed by the tile's row count (1..MR).
//
// A tile computes y[r][j] = clamp(bias[j] + sum_{t < taps, c < cin} a[t * MR + r][c] *
// w[(t * cin + c) * nr + j] + res[r][j], lo, hi) for rows r < mr and channels j < nc, float32
// FMA accumulation in the order t, c, then the residual added (res: nullptr for none; rows of
// res and y are ldy apart). `a` holds taps x MR row pointers, MR the ISA's full tile height
// (rows >= mr are not read); `w` is one packed panel [taps * cin][nr] with nr = NR (two
// vectors) or NR / 2 (one vector, the narrow last panel: the `narrow` table); bias has nr values.
//
// Prefetch: a tile also asks for rows [0, pf_rows) of another packed panel at pf (rows pf_ld
// floats apart; pf may be nullptr), one row per k step, into L2: the driver spreads the next
// panel over the current panel's tiles, so that weights streamed from memory (a model whose
// weights exceed the last level cache) arrive before they are needed instead of stalling the
// first tile that reads them.
#pragma once

#include <xmmintrin.h>

#include <algorithm>
#include <cstdint>

namespace kiln::xnn {

// The tiles' prefetch of another panel: pf_rows rows (pf_ld floats apart, one or two cache
// lines each) spread evenly over a tile's k steps, into L2. Step() once per k step.
class PanelPrefetch {
 public:
  PanelPrefetch(const float* pf, int64_t pf_rows, int64_t pf_ld, int64_t k)
      : pf_(pf),
        ld_(pf_ld),
        every_(pf_rows > 0 ? std::max<int64_t>(1, k / pf_rows) : 0),
        countdown_(every_),
        left_(pf != nullptr ? pf_rows : 0) {}
  __attribute__((always_inline)) void Step() {
    if (--countdown_ != 0 || left_ <= 0) return;
    countdown_ = every_;
    --left_;
    _mm_prefetch(reinterpret_cast<const char*>(pf_), _MM_HINT_T1);
    if (ld_ > 16) _mm_prefetch(reinterpret_cast<const char*>(pf_ + 16), _MM_HINT_T1);
    pf_ += ld_;
  }

 private:
  const float* pf_;
  int64_t ld_, every_, countdown_, left_;
};

using FTileFn = void (*)(const float* const* a, int64_t taps, int64_t cin, const float* w,
                         const float* bias, const float* res, float* y, int64_t ldy, int nc,
                         float lo, float hi, const float* pf, int64_t pf_rows, int64_t pf_ld);

inline constexpr int kFMrAvx512 = 12, kFNrAvx512 = 32;
inline constexpr int kFMrAvx2 = 6, kFNrAvx2 = 16;

// [mr] for mr in 1..MR ([0] unused). The Silu tables: the same tiles with SiLU applied to the
// clamped accumulators before the store (a fused Conv + SiLU, FConvSpec::silu).
extern const FTileFn kFTilesAvx512[kFMrAvx512 + 1];
extern const FTileFn kFTilesNarrowAvx512[kFMrAvx512 + 1];
extern const FTileFn kFTilesSiluAvx512[kFMrAvx512 + 1];
extern const FTileFn kFTilesNarrowSiluAvx512[kFMrAvx512 + 1];
extern const FTileFn kFTilesAvx2[kFMrAvx2 + 1];
extern const FTileFn kFTilesNarrowAvx2[kFMrAvx2 + 1];
extern const FTileFn kFTilesSiluAvx2[kFMrAvx2 + 1];
extern const FTileFn kFTilesNarrowSiluAvx2[kFMrAvx2 + 1];

}  // namespace kiln::xnn
