// Own fp32 depthwise convolution (one channel per group, NHWC) for kernels larger than
// XNNPACK 2022's unipass depthwise kernels (up to 25 taps): beyond that its operator runs the
// grouped igemm with one channel per group, ~4 GFLOP/s here (convnext's 7x7 depthwise convs).
// Per output pixel and vector of channels: bias, then one FMA per in-bounds tap (padding taps are
// skipped: they add zeros), clamp, store. Weights [tap][channel] (times a folded per-channel
// scale), packed once. AVX-512 (16 channels per zmm) or AVX2 (8 per ymm) by the session ISA;
// the channel tail is scalar.
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
  FConvIsa isa = FConvIsa::kNone;
};

typedef float V8d __attribute__((vector_size(32), aligned(4)));
typedef float V16d __attribute__((vector_size(64), aligned(4)));

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
    float* out = y + (row * s.ow + ox) * c;
    int64_t ch = 0;
    for (; ch + W <= c; ch += W) {
      V acc;
      __builtin_memcpy(&acc, P.bias.data() + ch, sizeof(V));
      for (int64_t ky = ky0; ky < ky1; ++ky) {
        const float* xrow = image + ((oy * s.sh - s.pt + ky * s.dh) * s.iw) * c + ch;
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
        const float* xrow = image + ((oy * s.sh - s.pt + ky * s.dh) * s.iw) * c + ch;
        const float* wrow = P.w.data() + ky * s.kw * c + ch;
        for (int64_t kx = kx0; kx < kx1; ++kx) acc += xrow[(ix0 + kx * s.dw) * c] * wrow[kx * c];
      }
      out[ch] = std::min(s.hi, std::max(s.lo, acc));
    }
  }
}

KILN_TARGET_AVX2 void DwRowAvx2(const DwPlan& P, const float* x, float* y, int64_t row) {
  DwRow<V8d, 8>(P, x, y, row);
}
__attribute__((target("avx512f,fma"))) void DwRowAvx512(const DwPlan& P, const float* x, float* y,
                                                        int64_t row) {
  DwRow<V16d, 16>(P, x, y, row);
}

}  // namespace

bool UseOwnDepthwise(const FConvSpec& s, int64_t group, FConvIsa isa) {
  return isa != FConvIsa::kNone && group == s.cin && s.cin == s.cout && s.kh * s.kw > 25;
}

FConvFn MakeOwnDepthwise(const FConvSpec& spec, FConvIsa isa) {
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
      }
    });
  };
}

}  // namespace kiln::xnn
