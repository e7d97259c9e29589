// Winograd F(2x2, 3x3) and F(4x4, 3x3) for the own fp32 convolution (xnn_fconv.h): 3x3, stride
// 1, dilation 1, group 1, NHWC. Each m x m output tile comes from an (m+2) x (m+2) input patch d:
//   V = B^T d B (per channel),  M[xi] = V[xi] . U[xi] ((m+2)^2 GEMMs, xi over the positions),
//   Y = A^T M A + bias (+ residual), clamped (then SiLU when fused),
// with U = G g G^T the weights transformed once (in double). F(2x2, 3x3):
//   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],  G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1],
//   A^T = [1 1 1 0; 0 1 -1 -1]:
// 16 multiplies per 4 outputs and channel pair instead of 36 (2.25x fewer FMAs); F(4x4, 3x3)
// (matrices at Bt6 / At6 below): 36 per 16 (4x fewer), taken where both output sides are at least
// kWinogradF4MinSide (measured 1.3-1.4x F(2x2) on resnet50's 56x56 and 28x28 convs and rrdb_x4's
// 128x128 body, equal at 14x14). Paid for with the transforms (adds and small multiples) and more
// activation traffic, so the rule (UseWinograd) takes it where the channels make the GEMMs
// dominant. The GEMMs are the own register tiles (MakeOwnFConv as a fully connected layer of `tb`
// rows); tiles go in blocks of tb whose V and M stay in L2, one block per task (or the whole
// mode, WinogradBlockingFor). The transforms (AVX-512 or AVX2, as the GEMM tiles) change the
// rounding: results differ from the direct kernel by about 1e-6 (F(2x2)) to 1e-5 (F(4x4)) of the
// largest partial sums.
#include <pthreadpool.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "backends/xnnpack/xnn_fconv.h"
#include "backends/xnnpack/xnn_internal.h"

namespace kiln::xnn {

namespace {

struct WinoPlan {
  FConvSpec s;       // geometry (weights not kept)
  int m = 2;         // output tile m x m: F(2x2, 3x3) or F(4x4, 3x3)
  int a2 = 16;       // (m + 2)^2 transformed positions: GEMMs per block
  int64_t tb = 12;   // tiles per block (GEMM rows)
  int64_t th = 0, tw = 0, tiles = 0, blocks = 0;
  std::vector<FConvFn> gemm;  // [16]: V[xi] (tb x cin) -> M[xi] (tb x cout)
  std::vector<float> bias;    // [cout]
  std::vector<float> zero;    // [cin]: the padding pixels
  FConvIsa isa = FConvIsa::kNone;
  // All tiles in one block, run in three parallel phases (input transforms over tiles, the 16
  // GEMMs one per task, output transforms over tiles): each transformed weight matrix U[xi] is
  // read once per run instead of once per block (small images with many channels, where the
  // weights outweigh the activations).
  bool whole = false;
};

// Unaligned vector access by memcpy (a template argument loses a typedef's aligned(4), so a
// dereference would assume full alignment); macros, not lambdas, so that the code is compiled
// for the target of the function it is inlined into.
#define KILN_WINO_LOAD(p) \
  ({                      \
    V v_;                 \
    __builtin_memcpy(&v_, (p), sizeof(V)); \
    v_;                   \
  })
#define KILN_WINO_STORE(p, x)                 \
  do {                                        \
    const V s_ = (x);                         \
    __builtin_memcpy((p), &s_, sizeof(V));    \
  } while (0)

// The transforms over channels [c0, c1) written once for a vector width; V is float[W].
template <typename V, int W>
__attribute__((always_inline)) inline void InputTransform(const float* const* d, int64_t c0,
                                                          int64_t c1, float* const* v) {
  int64_t c = c0;
  for (; c + W <= c1; c += W) {
    V t[16];
    for (int j = 0; j < 4; ++j) {  // B^T d: rows
      const V d0 = KILN_WINO_LOAD(d[j] + c), d1 = KILN_WINO_LOAD(d[4 + j] + c), d2 = KILN_WINO_LOAD(d[8 + j] + c),
              d3 = KILN_WINO_LOAD(d[12 + j] + c);
      t[j] = d0 - d2;
      t[4 + j] = d1 + d2;
      t[8 + j] = d2 - d1;
      t[12 + j] = d1 - d3;
    }
    for (int i = 0; i < 4; ++i) {  // (B^T d) B: columns
      const V a0 = t[4 * i], a1 = t[4 * i + 1], a2 = t[4 * i + 2], a3 = t[4 * i + 3];
      KILN_WINO_STORE(v[4 * i] + c, a0 - a2);
      KILN_WINO_STORE(v[4 * i + 1] + c, a1 + a2);
      KILN_WINO_STORE(v[4 * i + 2] + c, a2 - a1);
      KILN_WINO_STORE(v[4 * i + 3] + c, a1 - a3);
    }
  }
  for (; c < c1; ++c) {
    float t[16];
    for (int j = 0; j < 4; ++j) {
      const float d0 = d[j][c], d1 = d[4 + j][c], d2 = d[8 + j][c], d3 = d[12 + j][c];
      t[j] = d0 - d2;
      t[4 + j] = d1 + d2;
      t[8 + j] = d2 - d1;
      t[12 + j] = d1 - d3;
    }
    for (int i = 0; i < 4; ++i) {
      const float a0 = t[4 * i], a1 = t[4 * i + 1], a2 = t[4 * i + 2], a3 = t[4 * i + 3];
      v[4 * i][c] = a0 - a2;
      v[4 * i + 1][c] = a1 + a2;
      v[4 * i + 2][c] = a2 - a1;
      v[4 * i + 3][c] = a1 - a3;
    }
  }
}

// y[q] (q = 2*row + col of the 2x2 tile; nullptr: outside the image) = clamp(A^T m A + bias
// (+ res[q])) over channels [0, n).
template <typename V, int W>
__attribute__((always_inline)) inline void OutputTransform(const float* const* m, int64_t n,
                                                           const float* bias,
                                                           const float* const* res,
                                                           float* const* y, float lo, float hi) {
  const V vlo = V{} + lo, vhi = V{} + hi;
  int64_t c = 0;
  for (; c + W <= n; c += W) {
    V r0[4], r1[4];
    for (int j = 0; j < 4; ++j) {  // A^T m: rows
      const V m0 = KILN_WINO_LOAD(m[j] + c), m1 = KILN_WINO_LOAD(m[4 + j] + c), m2 = KILN_WINO_LOAD(m[8 + j] + c),
              m3 = KILN_WINO_LOAD(m[12 + j] + c);
      r0[j] = m0 + m1 + m2;
      r1[j] = m1 - m2 - m3;
    }
    const V b = KILN_WINO_LOAD(bias + c);
    V o[4] = {r0[0] + r0[1] + r0[2] + b, r0[1] - r0[2] - r0[3] + b, r1[0] + r1[1] + r1[2] + b,
              r1[1] - r1[2] - r1[3] + b};
    for (int q = 0; q < 4; ++q) {
      if (y[q] == nullptr) continue;
      V v = o[q];
      if (res != nullptr) v += KILN_WINO_LOAD(res[q] + c);
      v = v < vlo ? vlo : v;
      v = v > vhi ? vhi : v;
      KILN_WINO_STORE(y[q] + c, v);
    }
  }
  for (; c < n; ++c) {
    float r0[4], r1[4];
    for (int j = 0; j < 4; ++j) {
      const float m0 = m[j][c], m1 = m[4 + j][c], m2 = m[8 + j][c], m3 = m[12 + j][c];
      r0[j] = m0 + m1 + m2;
      r1[j] = m1 - m2 - m3;
    }
    const float o[4] = {r0[0] + r0[1] + r0[2] + bias[c], r0[1] - r0[2] - r0[3] + bias[c],
                        r1[0] + r1[1] + r1[2] + bias[c], r1[1] - r1[2] - r1[3] + bias[c]};
    for (int q = 0; q < 4; ++q) {
      if (y[q] == nullptr) continue;
      float v = o[q] + (res != nullptr ? res[q][c] : 0.0f);
      y[q][c] = std::min(hi, std::max(lo, v));
    }
  }
}

typedef float V8w __attribute__((vector_size(32), aligned(4)));
typedef float V16w __attribute__((vector_size(64), aligned(4)));

KILN_TARGET_AVX2 void InputTransformAvx2(const float* const* d, int64_t n, float* const* v) {
  InputTransform<V8w, 8>(d, 0, n, v);
}
__attribute__((target("avx512f"))) void InputTransformAvx512(const float* const* d, int64_t n,
                                                             float* const* v) {
  InputTransform<V16w, 16>(d, 0, n, v);
}
KILN_TARGET_AVX2 void OutputTransformAvx2(const float* const* m, int64_t n, const float* bias,
                                          const float* const* res, float* const* y, float lo,
                                          float hi) {
  OutputTransform<V8w, 8>(m, n, bias, res, y, lo, hi);
}
__attribute__((target("avx512f"))) void OutputTransformAvx512(const float* const* m, int64_t n,
                                                              const float* bias,
                                                              const float* const* res,
                                                              float* const* y, float lo,
                                                              float hi) {
  OutputTransform<V16w, 16>(m, n, bias, res, y, lo, hi);
}

// F(4x4, 3x3) (Lavin & Gray's points 0, 1, -1, 2, -2 and infinity): 6x6 input patches,
//   B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0;
//          0 4 0 -5 0 1],
//   G = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1],
//   A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]:
// 36 multiplies per 16 outputs and channel pair (2.25 per output against F(2x2)'s 4), with
// larger transforms and rounding (values up to ~10x the inputs pass through them).
template <typename T>
__attribute__((always_inline)) inline void Bt6(const T* x, T* y) {
  y[0] = x[0] * 4.0f - x[2] * 5.0f + x[4];
  y[1] = x[3] + x[4] - (x[1] + x[2]) * 4.0f;
  y[2] = (x[1] - x[2]) * 4.0f + x[4] - x[3];
  y[3] = (x[3] - x[1]) * 2.0f + x[4] - x[2];
  y[4] = (x[1] - x[3]) * 2.0f + x[4] - x[2];
  y[5] = x[1] * 4.0f - x[3] * 5.0f + x[5];
}
template <typename T>
__attribute__((always_inline)) inline void At6(const T* x, T* y) {
  const T s12 = x[1] + x[2], d12 = x[1] - x[2], s34 = x[3] + x[4], d34 = x[3] - x[4];
  y[0] = x[0] + s12 + s34;
  y[1] = d12 + d34 * 2.0f;
  y[2] = s12 + s34 * 4.0f;
  y[3] = d12 + d34 * 8.0f + x[5];
}

// Unaligned load / store of a T (a GCC vector type or float) at p (by reference: a vector
// argument or return by value changes the ABI by target).
template <typename T>
__attribute__((always_inline)) inline void LoadAt(T& v, const float* p) {
  __builtin_memcpy(&v, p, sizeof(T));
}
template <typename T>
__attribute__((always_inline)) inline void StoreAt(float* p, const T& v) {
  __builtin_memcpy(p, &v, sizeof(T));
}

// The F(4x4) transforms of one group of channels from c: T is a vector of W floats, or float
// for the tail (the same code, one channel at a time).
template <typename T>
__attribute__((always_inline)) inline void InputTransform6At(const float* const* d, int64_t c,
                                                             float* const* v) {
  T t[36];
  for (int j = 0; j < 6; ++j) {  // B^T d: along the rows of column j
    T col[6], out[6];
    for (int i = 0; i < 6; ++i) LoadAt(col[i], d[6 * i + j] + c);
    Bt6(col, out);
    for (int i = 0; i < 6; ++i) t[6 * i + j] = out[i];
  }
  for (int i = 0; i < 6; ++i) {  // (B^T d) B: along row i
    T out[6];
    Bt6(t + 6 * i, out);
    for (int j = 0; j < 6; ++j) StoreAt(v[6 * i + j] + c, out[j]);
  }
}

// y[4 * row + col] of the 4x4 tile (nullptr: outside the image) = clamp(A^T m A + bias
// (+ res)) for the channels of one group from c.
template <typename T>
__attribute__((always_inline)) inline void OutputTransform6At(const float* const* m, int64_t c,
                                                              const float* bias,
                                                              const float* const* res,
                                                              float* const* y, const T& lo,
                                                              const T& hi) {
  T r[24];  // A^T m: 4 rows x 6 columns
  for (int j = 0; j < 6; ++j) {
    T col[6], out[4];
    for (int i = 0; i < 6; ++i) LoadAt(col[i], m[6 * i + j] + c);
    At6(col, out);
    for (int i = 0; i < 4; ++i) r[6 * i + j] = out[i];
  }
  T b;
  LoadAt(b, bias + c);
  for (int i = 0; i < 4; ++i) {
    T out[4];
    At6(r + 6 * i, out);
    for (int j = 0; j < 4; ++j) {
      float* dst = y[4 * i + j];
      if (dst == nullptr) continue;
      T o = out[j] + b;
      if (res != nullptr) {
        T rv;
        LoadAt(rv, res[4 * i + j] + c);
        o += rv;
      }
      o = o < lo ? lo : o;
      o = o > hi ? hi : o;
      StoreAt(dst + c, o);
    }
  }
}

// Every channel: vectors of W, then the tail one channel at a time.
template <typename V, int W>
__attribute__((always_inline)) inline void InputTransform6(const float* const* d, int64_t n,
                                                           float* const* v) {
  int64_t c = 0;
  for (; c + W <= n; c += W) InputTransform6At<V>(d, c, v);
  for (; c < n; ++c) InputTransform6At<float>(d, c, v);
}

template <typename V, int W>
__attribute__((always_inline)) inline void OutputTransform6(const float* const* m, int64_t n,
                                                            const float* bias,
                                                            const float* const* res,
                                                            float* const* y, float lo, float hi) {
  const V vlo = V{} + lo, vhi = V{} + hi;
  int64_t c = 0;
  for (; c + W <= n; c += W) OutputTransform6At<V>(m, c, bias, res, y, vlo, vhi);
  for (; c < n; ++c) OutputTransform6At<float>(m, c, bias, res, y, lo, hi);
}

KILN_TARGET_AVX2 void InputTransform6Avx2(const float* const* d, int64_t n, float* const* v) {
  InputTransform6<V8w, 8>(d, n, v);
}
__attribute__((target("avx512f"))) void InputTransform6Avx512(const float* const* d, int64_t n,
                                                              float* const* v) {
  InputTransform6<V16w, 16>(d, n, v);
}
KILN_TARGET_AVX2 void OutputTransform6Avx2(const float* const* m, int64_t n, const float* bias,
                                           const float* const* res, float* const* y, float lo,
                                           float hi) {
  OutputTransform6<V8w, 8>(m, n, bias, res, y, lo, hi);
}
__attribute__((target("avx512f"))) void OutputTransform6Avx512(const float* const* m, int64_t n,
                                                               const float* bias,
                                                               const float* const* res,
                                                               float* const* y, float lo,
                                                               float hi) {
  OutputTransform6<V16w, 16>(m, n, bias, res, y, lo, hi);
}

// Input transforms of tiles [t0, t1) into V, rows (t - row0) of each V[xi] (ld tb rows).
void TransformIn(const WinoPlan& P, const float* x, float* V, int64_t rows, int64_t row0,
                 int64_t t0, int64_t t1) {
  const FConvSpec& s = P.s;
  const int64_t cin = s.cin;
  const bool avx512 = P.isa == FConvIsa::kAvx512;  // else kAvx2 (UseWinograd needs one)
  const int64_t per_image = P.th * P.tw;
  const int m = P.m, alpha = m + 2, a2 = P.a2;
  for (int64_t t = t0; t < t1; ++t) {
    const int64_t b = t / per_image, ty = t % per_image / P.tw, tx = t % P.tw;
    const int64_t iy0 = m * ty - s.pt, ix0 = m * tx - s.pl;
    const float* image = x + b * s.ih * s.iw * s.ldx;
    const float* d[36];
    for (int i = 0; i < alpha; ++i) {
      for (int j = 0; j < alpha; ++j) {
        const int64_t iy = iy0 + i, ix = ix0 + j;
        d[alpha * i + j] = iy >= 0 && iy < s.ih && ix >= 0 && ix < s.iw
                               ? image + (iy * s.iw + ix) * s.ldx
                               : P.zero.data();
      }
    }
    float* v[36];
    for (int q = 0; q < a2; ++q) v[q] = V + (q * rows + (t - row0)) * cin;
    if (m == 4) {
      if (avx512) {
        InputTransform6Avx512(d, cin, v);
      } else {
        InputTransform6Avx2(d, cin, v);
      }
    } else if (avx512) {
      InputTransformAvx512(d, cin, v);
    } else {
      InputTransformAvx2(d, cin, v);
    }
  }
}

// Output transforms of tiles [t0, t1) from M (rows as in TransformIn) into y.
void TransformOut(const WinoPlan& P, const float* M, const float* res, float* y, int64_t rows,
                  int64_t row0, int64_t t0, int64_t t1) {
  const FConvSpec& s = P.s;
  const int64_t cout = s.cout;
  const bool avx512 = P.isa == FConvIsa::kAvx512;
  const int64_t per_image = P.th * P.tw;
  const int m = P.m, a2 = P.a2;
  for (int64_t t = t0; t < t1; ++t) {
    const int64_t b = t / per_image, ty = t % per_image / P.tw, tx = t % P.tw;
    const float* mq[36];
    for (int q = 0; q < a2; ++q) mq[q] = M + (q * rows + (t - row0)) * cout;
    float* yq[16];
    const float* rq[16];
    for (int q = 0; q < m * m; ++q) {
      const int64_t oy = m * ty + q / m, ox = m * tx + q % m;
      const bool in = oy < s.oh && ox < s.ow;
      const int64_t at = ((b * s.oh + oy) * s.ow + ox) * s.ldy;
      yq[q] = in ? y + at : nullptr;
      rq[q] = in && res != nullptr ? res + at : nullptr;
    }
    const float* const* r = res != nullptr ? rq : nullptr;
    if (m == 4) {
      if (avx512) {
        OutputTransform6Avx512(mq, cout, P.bias.data(), r, yq, s.lo, s.hi);
      } else {
        OutputTransform6Avx2(mq, cout, P.bias.data(), r, yq, s.lo, s.hi);
      }
    } else if (avx512) {
      OutputTransformAvx512(mq, cout, P.bias.data(), r, yq, s.lo, s.hi);
    } else {
      OutputTransformAvx2(mq, cout, P.bias.data(), r, yq, s.lo, s.hi);
    }
    if (s.silu || !std::isnan(s.leaky)) {
      for (int q = 0; q < m * m; ++q) {
        if (yq[q] != nullptr) EpilogueRows(s, yq[q], 1, cout, cout, P.isa);
      }
    }
  }
}

// V and M of `rows` GEMM rows, in buffers of the calling thread (rows past the last tile keep
// whatever an earlier run left: finite values, as V starts at zero and only ever holds
// transforms; their M rows are not read).
void Buffers(const WinoPlan& P, int64_t rows, float** V, float** M) {
  thread_local std::vector<float> vbuf, mbuf;
  const auto nv = static_cast<size_t>(P.a2 * rows * P.s.cin);
  const auto nm = static_cast<size_t>(P.a2 * rows * P.s.cout);
  if (vbuf.size() < nv) vbuf.resize(nv, 0.0f);
  if (mbuf.size() < nm) mbuf.resize(nm);
  *V = vbuf.data();
  *M = mbuf.data();
}

// One block of tiles [t0, t0 + tb): transforms in, 16 GEMMs, transform out.
void RunBlock(const WinoPlan& P, const float* x, const float* res, float* y, int64_t block) {
  const int64_t tb = P.tb, cin = P.s.cin, cout = P.s.cout;
  float *V, *M;
  Buffers(P, tb, &V, &M);
  const int64_t t0 = block * tb, t1 = std::min(P.tiles, t0 + tb);
  TransformIn(P, x, V, tb, t0, t0, t1);
  for (int q = 0; q < P.a2; ++q) {
    P.gemm[static_cast<size_t>(q)](V + q * tb * cin, nullptr, M + q * tb * cout, nullptr);
  }
  TransformOut(P, M, res, y, tb, t0, t0, t1);
}

// The whole mode: every tile in one block of P.tb >= tiles rows, each phase split over the pool.
void RunWhole(const WinoPlan& P, const float* x, const float* res, float* y, pthreadpool_t pool) {
  const int64_t rows = P.tb, cin = P.s.cin, cout = P.s.cout;
  float *V, *M;
  Buffers(P, rows, &V, &M);
  ParallelFor(pool, P.tiles, 4, [&](int64_t t0, int64_t t1) { TransformIn(P, x, V, rows, 0, t0, t1); });
  ParallelFor(pool, P.a2, 1, [&](int64_t q0, int64_t q1) {
    for (int64_t q = q0; q < q1; ++q)
      P.gemm[static_cast<size_t>(q)](V + q * rows * cin, nullptr, M + q * rows * cout, nullptr);
  });
  ParallelFor(pool, P.tiles, 4,
              [&](int64_t t0, int64_t t1) { TransformOut(P, M, res, y, rows, 0, t0, t1); });
}

#undef KILN_WINO_LOAD
#undef KILN_WINO_STORE

}  // namespace

int WinogradTile(const FConvSpec& s) {
  return std::min(s.oh, s.ow) >= kWinogradF4MinSide ? 4 : 2;
}

WinogradBlocking WinogradBlockingFor(const FConvSpec& s, FConvIsa isa) {
  const int64_t cin = s.cin, cout = s.cout;
  const int64_t m = WinogradTile(s), a2 = (m + 2) * (m + 2);
  const int64_t tiles = s.batch * ((s.oh + m - 1) / m) * ((s.ow + m - 1) / m);
  WinogradBlocking b;
  b.tile = static_cast<int>(m);
  // V and M of one block within ~512 KiB (L2), in whole register tiles of rows.
  const int64_t mr = isa == FConvIsa::kAvx512 ? 12 : 6;
  const int64_t fit = (int64_t{512} << 10) / (a2 * (cin + cout) * 4);
  b.rows = std::clamp<int64_t>(fit / mr * mr, mr, 8 * mr);
  b.rows = std::min(b.rows, (tiles + mr - 1) / mr * mr);
  // With threads, at least ~3 blocks each where the tiles allow (one block per task).
  const int64_t want = 3 * std::max(1, s.threads);
  if (s.threads > 1 && (tiles + b.rows - 1) / b.rows < want) {
    b.rows = std::max<int64_t>(mr, (tiles + want - 1) / want / mr * mr);
  }
  b.blocks = (tiles + b.rows - 1) / b.rows;
  // Blocked, every block reads all of U (16 x cin x cout floats); whole, V and M of every tile
  // are written and read once more (beyond L2). Whole where that moves less and fits in the
  // last level cache, with few enough threads for 16 GEMM tasks.
  const int64_t u_bytes = a2 * cin * cout * 4;
  const int64_t whole_rows = (tiles + mr - 1) / mr * mr;
  const int64_t vm_bytes = a2 * whole_rows * (cin + cout) * 4;
  if (b.blocks > 1 && b.blocks * u_bytes > 2 * vm_bytes && vm_bytes <= kWinogradWholeBytes &&
      s.threads <= 8) {
    b.whole = true;
    b.rows = whole_rows;
    b.blocks = 1;
  }
  return b;
}

bool UseWinograd(const FConvSpec& s, FConvIsa isa) {
  return isa != FConvIsa::kNone && s.kh == 3 && s.kw == 3 && s.sh == 1 && s.sw == 1 &&
         s.dh == 1 && s.dw == 1 && s.cin >= kWinogradMinChannels &&
         s.cout >= kWinogradMinChannels && s.oh * s.ow >= kWinogradMinPixels &&
         s.ih * s.iw * s.cin * 4 <= kWinogradMaxInputBytes &&
         UseOwnFConv(s, isa);
}

FConvFn MakeWinogradFConv(const FConvSpec& spec, FConvIsa isa) {
  auto P = std::make_shared<WinoPlan>();
  P->s = spec;
  FConvSpec& s = P->s;
  s.weights = s.scale = s.bias = nullptr;
  if (s.ldx == 0) s.ldx = s.cin;
  if (s.ldy == 0) s.ldy = s.cout;
  P->isa = isa;
  const int64_t cin = s.cin, cout = s.cout;
  const WinogradBlocking blk = WinogradBlockingFor(s, isa);
  const int m = blk.tile, alpha = m + 2;
  P->m = m;
  P->a2 = alpha * alpha;
  P->th = (s.oh + m - 1) / m;
  P->tw = (s.ow + m - 1) / m;
  P->tiles = s.batch * P->th * P->tw;
  P->tb = blk.rows;
  P->blocks = blk.blocks;
  P->whole = blk.whole;
  // U[xi][o][c] = (G g[o][c] G^T)[xi] * scale[o], in double.
  std::vector<float> u(static_cast<size_t>(P->a2 * cout * cin));
  auto g1d = [m](const double* g, double* out) {  // G applied to 3 taps -> alpha values
    if (m == 2) {
      out[0] = g[0];
      out[1] = 0.5 * (g[0] + g[1] + g[2]);
      out[2] = 0.5 * (g[0] - g[1] + g[2]);
      out[3] = g[2];
    } else {
      out[0] = g[0] / 4;
      out[1] = -(g[0] + g[1] + g[2]) / 6;
      out[2] = -(g[0] - g[1] + g[2]) / 6;
      out[3] = g[0] / 24 + g[1] / 12 + g[2] / 6;
      out[4] = g[0] / 24 - g[1] / 12 + g[2] / 6;
      out[5] = g[2];
    }
  };
  for (int64_t o = 0; o < cout; ++o) {
    const float sc = spec.scale != nullptr ? spec.scale[o] : 1.0f;
    for (int64_t c = 0; c < cin; ++c) {
      const float* g = spec.weights + (o * cin + c) * 9;
      double gg[6][3];  // G g: alpha rows x 3 columns
      for (int j = 0; j < 3; ++j) {
        const double col[3] = {g[j], g[3 + j], g[6 + j]};
        double out[6];
        g1d(col, out);
        for (int i = 0; i < alpha; ++i) gg[i][j] = out[i];
      }
      for (int i = 0; i < alpha; ++i) {
        double row[6];
        g1d(gg[i], row);
        for (int j = 0; j < alpha; ++j) {
          u[static_cast<size_t>(((alpha * i + j) * cout + o) * cin + c)] =
              static_cast<float>(row[j] * sc);
        }
      }
    }
  }
  for (int q = 0; q < P->a2; ++q) {
    FConvSpec g;
    g.batch = 1;
    g.ih = g.oh = P->tb;
    g.iw = g.ow = 1;
    g.cin = cin;
    g.cout = cout;
    g.weights = u.data() + static_cast<size_t>(q) * cout * cin;
    P->gemm.push_back(MakeOwnFConv(g, isa));
  }
  P->bias.assign(static_cast<size_t>(cout), 0.0f);
  if (spec.bias != nullptr) std::copy(spec.bias, spec.bias + cout, P->bias.begin());
  P->zero.assign(static_cast<size_t>(cin), 0.0f);
  return [P](const float* x, const float* res, float* y, pthreadpool_t pool) {
    if (P->whole) {
      RunWhole(*P, x, res, y, pool);
      return;
    }
    ParallelFor(pool, P->blocks, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) RunBlock(*P, x, res, y, b);
    });
  };
}

}  // namespace kiln::xnn
