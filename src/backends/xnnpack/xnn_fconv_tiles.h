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

#include <cstdint>

namespace kiln::xnn {

using FTileFn = void (*)(const float* const* a, int64_t taps, int64_t cin, const float* w,
                         const float* bias, const float* res, float* y, int64_t ldy, int nc,
                         float lo, float hi, const float* pf, int64_t pf_rows, int64_t pf_ld);

inline constexpr int kFMrAvx512 = 12, kFNrAvx512 = 32;
inline constexpr int kFMrAvx2 = 6, kFNrAvx2 = 16;

// [mr] for mr in 1..MR ([0] unused).
extern const FTileFn kFTilesAvx512[kFMrAvx512 + 1];
extern const FTileFn kFTilesNarrowAvx512[kFMrAvx512 + 1];
extern const FTileFn kFTilesAvx2[kFMrAvx2 + 1];
extern const FTileFn kFTilesNarrowAvx2[kFMrAvx2 + 1];

}  // namespace kiln::xnn
