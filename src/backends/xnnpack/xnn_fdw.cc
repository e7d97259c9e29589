// Own fp32 depthwise convolution (one channel per group, NHWC).
//   - 3x3 and 5x5, stride 1 or 2, dilation 1 (mobilenet, efficientnet): rows whose window is
//     inside the image run a fixed-size loop (taps unrolled at compile time; groups of 8, 4, 1
//     output pixels outside, vectors of channels inside, so that a group's input is read from
//     memory once; the next row's new input rows prefetched into L2 a slice per group), edge
//     pixels and rows the generic loop. Measured 0.8-1.9x XNNPACK 2022's unipass kernels on the
//     mobilenet_v2 / efficientnet_b0 shapes (bench/fconv_bench.cc --only dw), and it can fuse a
//     SiLU, which XNNPACK's operator cannot.
//   - More than 25 taps (convnext's 7x7): XNNPACK's unipass kernels stop at 25 and its operator
//     runs the grouped igemm with one channel per group there, ~4 GFLOP/s.
// Per output pixel and vector of channels: bias, then one FMA per in-bounds tap (padding taps are
// skipped: they add zeros), clamp, store, then the fused SiLU over the finished row while it is
// in cache. Weights [tap][channel] (times a folded per-channel scale), packed once. AVX-512 (16
// channels per zmm) or AVX2 (8 per ymm) by the session ISA; the channel tail is scalar.
#include <pthreadpool.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "backends/xnnpack/xnn_fconv.h"
#include "backends/xnnpack/xnn_internal.h"

namespace kiln::xnn {

namespace {

struct DwPlan {
  FConvSpec s;             // geometry; cin == cout == channels
  std::vector<float> w;    // [taps][c]
  std::vector<float> bias; // [c]
  std::vector<float> zero; // [iw * c] zeros: a padding row of the fixed-size loop
  FConvIsa isa = FConvIsa::kNone;
};

typedef float V8d __attribute__((vector_size(32), aligned(4)));
typedef float V16d __attribute__((vector_size(64), aligned(4)));

// One output pixel, channels [ch0, c): vectors of W, then the scalar tail; kernel rows
// [ky0, ky1) (row_of(ky): that input row, iw x c floats) and columns [kx0, kx1) (those inside
// the image), input column ix0 + kx * dw for tap kx; bias, clamp, store at out.
template <typename V, int W, typename RowOf>
__attribute__((always_inline)) inline void DwPixel(const DwPlan& P, const RowOf& row_of,
                                                   int64_t ky0, int64_t ky1, int64_t kx0,
                                                   int64_t kx1, int64_t ix0, int64_t ch0,
                                                   float* out) {
  const FConvSpec& s = P.s;
  const int64_t c = s.cout;
  const V vlo = V{} + s.lo, vhi = V{} + s.hi;
  int64_t ch = ch0;
  // Four channel vectors at a time: four independent FMA chains (one chain is bound by the FMA
  // latency: a 5x5 edge pixel of 1152 channels took as long as a group of 8 inside ones).
  for (; ch + 4 * W <= c; ch += 4 * W) {
    V acc[4];
    for (int q = 0; q < 4; ++q) __builtin_memcpy(&acc[q], P.bias.data() + ch + q * W, sizeof(V));
    for (int64_t ky = ky0; ky < ky1; ++ky) {
      const float* xrow = row_of(ky) + ch;
      const float* wrow = P.w.data() + ky * s.kw * c + ch;
      for (int64_t kx = kx0; kx < kx1; ++kx) {
        const float* xp = xrow + (ix0 + kx * s.dw) * c;
        const float* wp = wrow + kx * c;
        for (int q = 0; q < 4; ++q) {
          V xv, wv;
          __builtin_memcpy(&xv, xp + q * W, sizeof(V));
          __builtin_memcpy(&wv, wp + q * W, sizeof(V));
          acc[q] += xv * wv;
        }
      }
    }
    for (int q = 0; q < 4; ++q) {
      V v = acc[q];
      v = v < vlo ? vlo : v;
      v = v > vhi ? vhi : v;
      __builtin_memcpy(out + ch + q * W, &v, sizeof(V));
    }
  }
  for (; ch + W <= c; ch += W) {
    V acc;
    __builtin_memcpy(&acc, P.bias.data() + ch, sizeof(V));
    for (int64_t ky = ky0; ky < ky1; ++ky) {
      const float* xrow = row_of(ky) + ch;
      const float* wrow = P.w.data() + ky * s.kw * c + ch;
      for (int64_t kx = kx0; kx < kx1; ++kx) {
        V xv, wv;
        __builtin_memcpy(&xv, xrow + (ix0 + kx * s.dw) * c, sizeof(V));
        __builtin_memcpy(&wv, wrow + kx * c, sizeof(V));
        acc += xv * wv;
      }
    }
    acc = acc < vlo ? vlo : acc;
    acc = acc > vhi ? vhi : acc;
    __builtin_memcpy(out + ch, &acc, sizeof(V));
  }
  for (; ch < c; ++ch) {
    float acc = P.bias[static_cast<size_t>(ch)];
    for (int64_t ky = ky0; ky < ky1; ++ky) {
      const float* xrow = row_of(ky) + ch;
      const float* wrow = P.w.data() + ky * s.kw * c + ch;
      for (int64_t kx = kx0; kx < kx1; ++kx) acc += xrow[(ix0 + kx * s.dw) * c] * wrow[kx * c];
    }
    out[ch] = std::min(s.hi, std::max(s.lo, acc));
  }
}

// Output row `row` (batch * oh + oy), channels [0, c) in vectors of W, then the scalar tail.
template <typename V, int W>
__attribute__((always_inline)) inline void DwRow(const DwPlan& P, const float* x, float* y,
                                                 int64_t row) {
  const FConvSpec& s = P.s;
  const int64_t c = s.cout, b = row / s.oh, oy = row % s.oh;
  const float* image = x + b * s.ih * s.iw * c;
  int64_t ky0 = 0, ky1 = s.kh;
  while (ky0 < s.kh && oy * s.sh - s.pt + ky0 * s.dh < 0) ++ky0;
  while (ky1 > ky0 && oy * s.sh - s.pt + (ky1 - 1) * s.dh >= s.ih) --ky1;
  const V vlo = V{} + s.lo, vhi = V{} + s.hi;
  // Output pixels [oxa, oxb) read every kx tap inside the row: 4 at a time, 4 independent FMA
  // chains (one chain per pixel is bound by the FMA latency).
  int64_t oxa = 0;
  while (oxa < s.ow && oxa * s.sw - s.pl < 0) ++oxa;
  int64_t oxb = oxa;
  while (oxb < s.ow && oxb * s.sw - s.pl + (s.kw - 1) * s.dw < s.iw) ++oxb;
  for (int64_t ox = 0; ox < s.ow; ++ox) {
    const int64_t ix0 = ox * s.sw - s.pl;
    if (ox >= oxa && ox + 4 <= oxb) {
      float* out = y + (row * s.ow + ox) * c;
      const int64_t step = s.sw * c;
      int64_t ch = 0;
      for (; ch + W <= c; ch += W) {
        V a0;
        __builtin_memcpy(&a0, P.bias.data() + ch, sizeof(V));
        V a1 = a0, a2 = a0, a3 = a0;
        for (int64_t ky = ky0; ky < ky1; ++ky) {
          const float* xp = image + ((oy * s.sh - s.pt + ky * s.dh) * s.iw + ix0) * c + ch;
          const float* wp = P.w.data() + ky * s.kw * c + ch;
          for (int64_t kx = 0; kx < s.kw; ++kx, xp += s.dw * c, wp += c) {
            V wv, x0, x1, x2, x3;
            __builtin_memcpy(&wv, wp, sizeof(V));
            __builtin_memcpy(&x0, xp, sizeof(V));
            __builtin_memcpy(&x1, xp + step, sizeof(V));
            __builtin_memcpy(&x2, xp + 2 * step, sizeof(V));
            __builtin_memcpy(&x3, xp + 3 * step, sizeof(V));
            a0 += x0 * wv;
            a1 += x1 * wv;
            a2 += x2 * wv;
            a3 += x3 * wv;
          }
        }
        V* accs[4] = {&a0, &a1, &a2, &a3};
        for (int q = 0; q < 4; ++q) {
          V v = *accs[q];
          v = v < vlo ? vlo : v;
          v = v > vhi ? vhi : v;
          __builtin_memcpy(out + q * c + ch, &v, sizeof(V));
        }
      }
      if (ch < c) {  // the channel tail: one pixel at a time below
        for (int q = 0; q < 4; ++q) {
          const int64_t px0 = (ox + q) * s.sw - s.pl;
          for (int64_t cc = ch; cc < c; ++cc) {
            float acc = P.bias[static_cast<size_t>(cc)];
            for (int64_t ky = ky0; ky < ky1; ++ky) {
              const float* xrow = image + ((oy * s.sh - s.pt + ky * s.dh) * s.iw) * c + cc;
              const float* wrow = P.w.data() + ky * s.kw * c + cc;
              for (int64_t kx = 0; kx < s.kw; ++kx) acc += xrow[(px0 + kx * s.dw) * c] * wrow[kx * c];
            }
            out[q * c + cc] = std::min(s.hi, std::max(s.lo, acc));
          }
        }
      }
      ox += 3;
      continue;
    }
    int64_t kx0 = 0, kx1 = s.kw;
    while (kx0 < s.kw && ix0 + kx0 * s.dw < 0) ++kx0;
    while (kx1 > kx0 && ix0 + (kx1 - 1) * s.dw >= s.iw) --kx1;
    const auto row_of = [&](int64_t ky) {
      return image + ((oy * s.sh - s.pt + ky * s.dh) * s.iw) * c;
    };
    DwPixel<V, W>(P, row_of, ky0, ky1, kx0, kx1, ix0, 0, y + (row * s.ow + ox) * c);
  }
}

// G output pixels from ox of one output row (out_row), channels [ch0, cv) in vectors of W, from
// the KH input rows (DwRowPtrs).
template <typename V, int W, int KH, int KW, int SW, int G>
__attribute__((always_inline)) inline void DwGroup(const DwPlan& P, const float* const* rows,
                                                   float* out_row, int64_t ox, int64_t ch0,
                                                   int64_t cv, const V& vlo, const V& vhi) {
  const FConvSpec& s = P.s;
  const int64_t c = s.cout;
  const int64_t at = (ox * SW - s.pl) * c;
  float* out0 = out_row + ox * c;
  for (int64_t ch = ch0; ch < cv; ch += W) {
    V acc[G];
    V bias;
    __builtin_memcpy(&bias, P.bias.data() + ch, sizeof(V));
#pragma GCC unroll 8
    for (int q = 0; q < G; ++q) acc[q] = bias;
#pragma GCC unroll 8
    for (int ky = 0; ky < KH; ++ky) {
      const float* rowp = rows[ky] + at + ch;
#pragma GCC unroll 8
      for (int kx = 0; kx < KW; ++kx) {
        V wv;
        __builtin_memcpy(&wv, P.w.data() + (ky * KW + kx) * c + ch, sizeof(V));
#pragma GCC unroll 8
        for (int q = 0; q < G; ++q) {
          V xv;
          __builtin_memcpy(&xv, rowp + (q * SW + kx) * c, sizeof(V));
          acc[q] += xv * wv;
        }
      }
    }
#pragma GCC unroll 8
    for (int q = 0; q < G; ++q) {
      V v = acc[q];
      v = v < vlo ? vlo : v;
      v = v > vhi ? vhi : v;
      __builtin_memcpy(out0 + q * c + ch, &v, sizeof(V));
    }
  }
}

// One output row (ow x c at out_row) of a depthwise conv whose kernel size and stride are known
// at compile time (3x3 and 5x5, stride 1 and 2, dilation 1), from its KH input rows (a row
// above or below the image points to P.zero): per vector of W channels, the taps unrolled,
// 8 output pixels at a time (8 independent FMA chains), then 4, then 1, pixels outside and
// channel vectors inside, so that a group's input is read from memory once and then from L1;
// the pixels whose window crosses the left or right edge and the channel tail (c mod W) one
// pixel at a time. pf: pf_lines cache lines (the input rows the next output row adds) to
// prefetch into L2, a slice per group.
// V2 / W2: a half-width vector for the channels past the last full W (AVX-512: 8 lanes, so that
// 8 or 24 channels do not fall to the scalar tail); V, W again where there is none.
template <typename V, int W, int KH, int KW, int SW, typename V2 = V, int W2 = W>
__attribute__((always_inline)) inline void DwRowPtrs(const DwPlan& P, const float* const* rows,
                                                     float* out_row, const char* pf,
                                                     int64_t pf_lines) {
  const FConvSpec& s = P.s;
  const int64_t c = s.cout;
  const V vlo = V{} + s.lo, vhi = V{} + s.hi;
  const V2 vlo2 = V2{} + s.lo, vhi2 = V2{} + s.hi;
  int64_t oxa = 0;
  while (oxa < s.ow && oxa * SW - s.pl < 0) ++oxa;
  int64_t oxb = oxa;
  while (oxb < s.ow && oxb * SW - s.pl + KW - 1 < s.iw) ++oxb;
  const int64_t cv = c / W * W;
  const int64_t cv2 = W2 < W ? cv + (c - cv) / W2 * W2 : cv;  // [cv, cv2): vectors of W2
  int64_t ox = oxa;
  const int64_t groups = std::max<int64_t>(1, (oxb - oxa) / 8);
  const int64_t pf_per_group = (pf_lines + groups - 1) / groups;
  int64_t pf_done = 0;
  for (; ox + 8 <= oxb; ox += 8) {
    for (int64_t k = 0; k < pf_per_group && pf_done < pf_lines; ++k, ++pf_done)
      __builtin_prefetch(pf + pf_done * 64, 0, 2);
    DwGroup<V, W, KH, KW, SW, 8>(P, rows, out_row, ox, 0, cv, vlo, vhi);
    if (cv2 > cv) DwGroup<V2, W2, KH, KW, SW, 8>(P, rows, out_row, ox, cv, cv2, vlo2, vhi2);
  }
  for (; ox + 4 <= oxb; ox += 4) {
    DwGroup<V, W, KH, KW, SW, 4>(P, rows, out_row, ox, 0, cv, vlo, vhi);
    if (cv2 > cv) DwGroup<V2, W2, KH, KW, SW, 4>(P, rows, out_row, ox, cv, cv2, vlo2, vhi2);
  }
  for (; ox < oxb; ++ox) {
    DwGroup<V, W, KH, KW, SW, 1>(P, rows, out_row, ox, 0, cv, vlo, vhi);
    if (cv2 > cv) DwGroup<V2, W2, KH, KW, SW, 1>(P, rows, out_row, ox, cv, cv2, vlo2, vhi2);
  }
  for (int64_t px = 0; px < s.ow; ++px) {
    const bool interior = px >= oxa && px < oxb;
    if (interior && cv2 == c) continue;
    const int64_t ix0 = px * SW - s.pl;
    int kx0 = 0, kx1 = KW;
    while (kx0 < KW && ix0 + kx0 < 0) ++kx0;
    while (kx1 > kx0 && ix0 + kx1 - 1 >= s.iw) --kx1;
    const auto row_of = [&](int64_t ky) { return rows[ky]; };
    DwPixel<V, W>(P, row_of, 0, KH, kx0, kx1, ix0, interior ? cv2 : 0, out_row + px * c);
  }
}

// Output row `row` (batch * oh + oy) of the whole image x through DwRowPtrs.
template <typename V, int W, int KH, int KW, int SW, typename V2, int W2>
__attribute__((always_inline)) inline void DwRowFixed(const DwPlan& P, const float* x, float* y,
                                                      int64_t row) {
  const FConvSpec& s = P.s;
  const int64_t c = s.cout, b = row / s.oh, oy = row % s.oh;
  const int64_t iy0 = oy * s.sh - s.pt;
  const float* image = x + b * s.ih * s.iw * c;
  const float* rows[KH];
  for (int ky = 0; ky < KH; ++ky) {
    const int64_t iy = iy0 + ky;
    rows[ky] = iy >= 0 && iy < s.ih ? image + iy * s.iw * c : P.zero.data();
  }
  const int64_t next_iy = std::max<int64_t>(0, iy0 + KH);
  const int64_t next_rows = std::min<int64_t>(SW, s.ih - next_iy);
  const char* pf = next_rows > 0 ? reinterpret_cast<const char*>(image + next_iy * s.iw * c) : nullptr;
  DwRowPtrs<V, W, KH, KW, SW, V2, W2>(P, rows, y + row * s.ow * c, pf,
                                      next_rows > 0 ? next_rows * s.iw * c * 4 / 64 : 0);
}

// Whether the geometry has a fixed-size row loop (DwRowPtrs).
bool FixedRows(const FConvSpec& s) {
  return s.kh == s.kw && (s.kh == 3 || s.kh == 5) && s.sh == s.sw && (s.sh == 1 || s.sh == 2) &&
         s.dh == 1 && s.dw == 1;
}

// The fixed-size rows where the plan's geometry has one, else DwRow.
template <typename V, int W, typename V2, int W2>
__attribute__((always_inline)) inline void DwRowAny(const DwPlan& P, const float* x, float* y,
                                                    int64_t row) {
  const FConvSpec& s = P.s;
  if (!FixedRows(s)) {
    DwRow<V, W>(P, x, y, row);
  } else if (s.kh == 3) {
    if (s.sw == 1) DwRowFixed<V, W, 3, 3, 1, V2, W2>(P, x, y, row);
    else DwRowFixed<V, W, 3, 3, 2, V2, W2>(P, x, y, row);
  } else {
    if (s.sw == 1) DwRowFixed<V, W, 5, 5, 1, V2, W2>(P, x, y, row);
    else DwRowFixed<V, W, 5, 5, 2, V2, W2>(P, x, y, row);
  }
}

// One output row from KH input row pointers (nullptr: a padding row) for the fused
// expand + depthwise step; FixedRows geometry only.
template <typename V, int W, typename V2, int W2>
__attribute__((always_inline)) inline void DwOneRow(const DwPlan& P, const float* const* in,
                                                    float* out) {
  const FConvSpec& s = P.s;
  const float* rows[5];
  for (int64_t ky = 0; ky < s.kh; ++ky) rows[ky] = in[ky] != nullptr ? in[ky] : P.zero.data();
  if (s.kh == 3) {
    if (s.sw == 1) DwRowPtrs<V, W, 3, 3, 1, V2, W2>(P, rows, out, nullptr, 0);
    else DwRowPtrs<V, W, 3, 3, 2, V2, W2>(P, rows, out, nullptr, 0);
  } else {
    if (s.sw == 1) DwRowPtrs<V, W, 5, 5, 1, V2, W2>(P, rows, out, nullptr, 0);
    else DwRowPtrs<V, W, 5, 5, 2, V2, W2>(P, rows, out, nullptr, 0);
  }
}

KILN_TARGET_AVX2 void DwRowAvx2(const DwPlan& P, const float* x, float* y, int64_t row) {
  DwRowAny<V8d, 8, V8d, 8>(P, x, y, row);
}
__attribute__((target("avx512f,fma"))) void DwRowAvx512(const DwPlan& P, const float* x, float* y,
                                                        int64_t row) {
  DwRowAny<V16d, 16, V8d, 8>(P, x, y, row);
}
KILN_TARGET_AVX2 void DwOneRowAvx2(const DwPlan& P, const float* const* in, float* out) {
  DwOneRow<V8d, 8, V8d, 8>(P, in, out);
}
__attribute__((target("avx512f,fma"))) void DwOneRowAvx512(const DwPlan& P,
                                                           const float* const* in, float* out) {
  DwOneRow<V16d, 16, V8d, 8>(P, in, out);
}

// Packs the weights (times scale) and bias; the zero row for padding rows.
std::shared_ptr<DwPlan> MakeDwPlan(const FConvSpec& spec, FConvIsa isa) {
  auto P = std::make_shared<DwPlan>();
  P->s = spec;
  P->s.weights = P->s.scale = P->s.bias = nullptr;
  P->isa = isa;
  const int64_t c = spec.cout, taps = spec.kh * spec.kw;
  P->w.resize(static_cast<size_t>(taps * c));
  for (int64_t ch = 0; ch < c; ++ch) {
    const float sc = spec.scale != nullptr ? spec.scale[ch] : 1.0f;
    for (int64_t t = 0; t < taps; ++t) {
      P->w[static_cast<size_t>(t * c + ch)] = spec.weights[ch * taps + t] * sc;
    }
  }
  P->bias.assign(static_cast<size_t>(c), 0.0f);
  if (spec.bias != nullptr) std::copy(spec.bias, spec.bias + c, P->bias.begin());
  if (FixedRows(spec)) P->zero.assign(static_cast<size_t>(spec.iw * c), 0.0f);
  return P;
}

}  // namespace

bool UseOwnDepthwise(const FConvSpec& s, int64_t group, FConvIsa isa) {
  if (isa == FConvIsa::kNone || group != s.cin || s.cin != s.cout) return false;
  return s.kh * s.kw > 25 || s.silu || FixedRows(s);
}

bool DepthwiseRowsFixed(const FConvSpec& s) { return FixedRows(s); }

DwRowFn MakeOwnDepthwiseRow(const FConvSpec& spec, FConvIsa isa) {
  std::shared_ptr<DwPlan> P = MakeDwPlan(spec, isa);
  return [P](const float* const* in, float* out) {
    if (P->isa == FConvIsa::kAvx512) {
      DwOneRowAvx512(*P, in, out);
    } else {
      DwOneRowAvx2(*P, in, out);
    }
    EpilogueRows(P->s, out, 1, 0, P->s.ow * P->s.cout, P->isa);
  };
}

FConvFn MakeOwnDepthwise(const FConvSpec& spec, FConvIsa isa) {
  std::shared_ptr<DwPlan> P = MakeDwPlan(spec, isa);
  return [P](const float* x, const float* res, float* y, pthreadpool_t pool) {
    (void)res;  // no residual is fused into a depthwise conv
    const int64_t rows = P->s.batch * P->s.oh;
    const bool avx512 = P->isa == FConvIsa::kAvx512;
    ParallelFor(pool, rows, 1, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        if (avx512) {
          DwRowAvx512(*P, x, y, r);
        } else {
          DwRowAvx2(*P, x, y, r);
        }
        EpilogueRows(P->s, y + r * P->s.ow * P->s.cout, 1, 0, P->s.ow * P->s.cout, P->isa);
      }
    });
  };
}

}  // namespace kiln::xnn
