// The own fp32 convolution / GEMM of the XNNPACK backend (src/backends/xnnpack/xnn_fconv.h):
// the kernels called directly on random shapes (odd channel counts, narrow last panels, padding,
// strides, dilations, batch > 1, 1 and 2 threads) against a double-accumulating loop, and
// Conv / Gemm / MatMul models run by sessions with the ISA forced to avx2 and avx512 (where the
// CPU has it) against the reference backend. isa=portable keeps XNNPACK's operators.
#include "backends/xnnpack/xnn_fconv.h"

#include <gtest/gtest.h>
#include <pthreadpool.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "core/cpu_features.h"
#include "core/tensor_compare.h"
#include "qdq_builder.h"
#include "runtime/session.h"

namespace kiln {
namespace {

using testing::RunSession;
using testing::Uniform;

bool CpuHas(CpuIsa isa) { return DetectedCpuIsa() >= isa; }

std::vector<float> RandomVec(int64_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = u(rng);
  return v;
}

// y = clamp(conv(x) + bias + res) in double (NHWC x, res and y, s.weights [cout][cin][kh][kw]
// times s.scale; res empty: none).
std::vector<float> NaiveConv(const xnn::FConvSpec& s, const std::vector<float>& x,
                             const std::vector<float>& res) {
  std::vector<float> y(static_cast<size_t>(s.batch * s.oh * s.ow * s.cout));
  for (int64_t b = 0; b < s.batch; ++b)
    for (int64_t oy = 0; oy < s.oh; ++oy)
      for (int64_t ox = 0; ox < s.ow; ++ox)
        for (int64_t o = 0; o < s.cout; ++o) {
          double acc = s.bias[o];
          for (int64_t ky = 0; ky < s.kh; ++ky)
            for (int64_t kx = 0; kx < s.kw; ++kx) {
              const int64_t iy = oy * s.sh - s.pt + ky * s.dh, ix = ox * s.sw - s.pl + kx * s.dw;
              if (iy < 0 || iy >= s.ih || ix < 0 || ix >= s.iw) continue;
              for (int64_t c = 0; c < s.cin; ++c) {
                acc += static_cast<double>(
                           x[static_cast<size_t>(((b * s.ih + iy) * s.iw + ix) * s.cin + c)]) *
                       s.weights[((o * s.cin + c) * s.kh + ky) * s.kw + kx] *
                       (s.scale != nullptr ? s.scale[o] : 1.0f);
              }
            }
          const size_t at = static_cast<size_t>(((b * s.oh + oy) * s.ow + ox) * s.cout + o);
          if (!res.empty()) acc += res[at];
          acc = std::min<double>(s.hi, std::max<double>(s.lo, acc));
          if (s.silu) acc = acc / (1.0 + std::exp(-acc));
          y[at] = static_cast<float>(acc);
        }
  return y;
}

// Winograd F(2x2, 3x3) and F(4x4, 3x3) (xnn_fwino.cc) on random 3x3 stride-1 shapes: odd sizes
// (partial tiles), every padding, batch 2, blocks with and without a partial last block, scale, clamp and
// residual, 1 and 2 threads, against the double loop. The transforms add rounding of their own
// (values up to 4x the inputs for F(2x2), ~10x and products of fifths and sixths for F(4x4)), so
// the bound is looser than the direct kernel's, and F(4x4)'s 4x F(2x2)'s.
TEST(XnnFConv, WinogradMatchesNaiveLoop) {
  std::mt19937 rng(99);
  std::uniform_int_distribution<int> pick(0, 1 << 20);
  pthreadpool_t pool2 = pthreadpool_create(2);
  int cases = 0;
  int tiles_seen[2] = {0, 0};  // F(2x2) and F(4x4) cases
  for (xnn::FConvIsa isa : {xnn::FConvIsa::kAvx2, xnn::FConvIsa::kAvx512}) {
    if (!CpuHas(isa == xnn::FConvIsa::kAvx2 ? CpuIsa::kAvx2 : CpuIsa::kAvx512)) continue;
    for (int i = 0; i < 24; ++i) {
      xnn::FConvSpec s;
      s.batch = 1 + i % 2;
      s.cin = 32 + pick(rng) % 50;
      s.cout = 32 + pick(rng) % 70;
      s.kh = s.kw = 3;
      s.threads = 1 + i % 3;  // block sizes for 1-3 threads
      s.pt = pick(rng) % 3;
      s.pl = pick(rng) % 3;
      const int64_t pb = pick(rng) % 3, pr = pick(rng) % 3;
      s.ih = 10 + pick(rng) % 15;
      s.iw = 10 + pick(rng) % 15;
      s.oh = s.ih + s.pt + pb - 2;
      s.ow = s.iw + s.pl + pr - 2;
      if (i % 3 == 1) {
        s.lo = -0.25f;
        s.hi = 0.5f;
      }
      const std::vector<float> weights = RandomVec(s.cout * s.cin * 9, rng);
      const std::vector<float> bias = RandomVec(s.cout, rng);
      const std::vector<float> scale = RandomVec(s.cout, rng);
      s.weights = weights.data();
      s.bias = bias.data();
      s.scale = i % 2 == 0 ? nullptr : scale.data();
      // Shapes the rule leaves to the direct kernel (too few pixels, panels mostly padding).
      if (!xnn::UseWinograd(s, isa)) continue;
      const bool f4 = xnn::WinogradBlockingFor(s, isa).tile == 4;
      ++tiles_seen[f4 ? 1 : 0];
      const std::vector<float> x = RandomVec(s.batch * s.ih * s.iw * s.cin, rng);
      const std::vector<float> res =
          i % 3 == 2 ? RandomVec(s.batch * s.oh * s.ow * s.cout, rng) : std::vector<float>();
      const std::vector<float> want = NaiveConv(s, x, res);
      xnn::FConvFn run = xnn::MakeWinogradFConv(s, isa);
      for (pthreadpool_t pool : {static_cast<pthreadpool_t>(nullptr), pool2}) {
        std::vector<float> got(want.size() + 64, 7.0f);
        for (int rep = 0; rep < 2; ++rep) {  // a second run reuses the thread's blocks
          run(x.data(), res.empty() ? nullptr : res.data(), got.data(), pool);
        }
        double err = 0;
        for (size_t j = 0; j < want.size(); ++j)
          err = std::max(err, static_cast<double>(std::fabs(got[j] - want[j])));
        EXPECT_LE(err, (f4 ? 4e-5 : 1e-5) * std::sqrt(static_cast<double>(s.cin * 9)))
            << "isa " << static_cast<int>(isa) << " case " << i << " cin " << s.cin << " cout "
            << s.cout << " pads " << s.pt << "," << s.pl << "," << pb << "," << pr << " in "
            << s.ih << "x" << s.iw;
        for (size_t j = want.size(); j < got.size(); ++j) ASSERT_EQ(got[j], 7.0f) << "case " << i;
      }
      ++cases;
    }
  }
  pthreadpool_destroy(pool2);
  if (cases == 0) GTEST_SKIP() << "the CPU has neither AVX2+FMA nor AVX-512";
  EXPECT_GE(cases, 8);
  EXPECT_GE(tiles_seen[0], 2) << "F(2x2, 3x3) cases";
  EXPECT_GE(tiles_seen[1], 2) << "F(4x4, 3x3) cases";
}

// The shapes of a model whose weights outweigh its activations (resnet50's late layers), where
// the kernels change their loop order: the direct kernel with every pixel in one block (weights
// read once, A re-read per panel; 16 panels, a narrow last one) and a multi-block run (each
// block's last panel prefetches the next block's first), and Winograd's whole-image mode (14x14 x
// 256, three parallel phases), at 1 and 2 threads, against the double loop.
TEST(XnnFConv, WeightHeavyShapesMatchNaiveLoop) {
  std::mt19937 rng(7);
  pthreadpool_t pool2 = pthreadpool_create(2);
  struct Case {
    int64_t hw, cin, cout, k;
    bool winograd;
  };
  const Case cases[] = {{7, 512, 496, 3, false},   // 49 px, K 4608: one block, 16 panels
                        {7, 1024, 272, 1, false},  // 1x1, K 1024, a narrow last panel
                        {20, 256, 80, 1, false},   // 400 px: three blocks of 16 tiles
                        {14, 256, 256, 3, true},   // Winograd, whole image
                        {12, 160, 192, 3, true}};
  int ran = 0;
  for (xnn::FConvIsa isa : {xnn::FConvIsa::kAvx2, xnn::FConvIsa::kAvx512}) {
    if (!CpuHas(isa == xnn::FConvIsa::kAvx2 ? CpuIsa::kAvx2 : CpuIsa::kAvx512)) continue;
    for (const Case& c : cases) {
      for (int threads : {1, 2}) {
        xnn::FConvSpec s;
        s.ih = s.iw = s.oh = s.ow = c.hw;
        s.cin = c.cin;
        s.cout = c.cout;
        s.kh = s.kw = c.k;
        s.pt = s.pl = c.k / 2;
        s.threads = threads;
        const std::vector<float> weights = RandomVec(s.cout * s.cin * c.k * c.k, rng);
        const std::vector<float> bias = RandomVec(s.cout, rng);
        s.weights = weights.data();
        s.bias = bias.data();
        const std::vector<float> x = RandomVec(s.ih * s.iw * s.cin, rng);
        const std::vector<float> want = NaiveConv(s, x, {});
        ASSERT_EQ(xnn::UseWinograd(s, isa), c.winograd) << "hw " << c.hw << " cin " << c.cin;
        if (c.winograd && c.hw == 14) {
          ASSERT_TRUE(xnn::WinogradBlockingFor(s, isa).whole) << "threads " << threads;
        }
        xnn::FConvFn run = c.winograd ? xnn::MakeWinogradFConv(s, isa) : xnn::MakeOwnFConv(s, isa);
        std::vector<float> got(want.size() + 64, 7.0f);
        for (int rep = 0; rep < 2; ++rep) {
          run(x.data(), nullptr, got.data(), threads > 1 ? pool2 : nullptr);
        }
        double err = 0;
        for (size_t j = 0; j < want.size(); ++j)
          err = std::max(err, static_cast<double>(std::fabs(got[j] - want[j])));
        EXPECT_LE(err, (c.winograd ? 1e-5 : 2e-5) * std::sqrt(static_cast<double>(s.cin * c.k * c.k)))
            << "isa " << static_cast<int>(isa) << " hw " << c.hw << " cin " << c.cin << " cout "
            << c.cout << " threads " << threads;
        for (size_t j = want.size(); j < got.size(); ++j) ASSERT_EQ(got[j], 7.0f);
        ++ran;
      }
    }
  }
  pthreadpool_destroy(pool2);
  if (ran == 0) GTEST_SKIP() << "the CPU has neither AVX2+FMA nor AVX-512";
}

// The own depthwise loop (xnn_fdw.cc): kernels beyond 25 taps (7x7 as convnext, 5x7 with
// dilation and stride) and the fixed 3x3 / 5x5 rows, channel counts with vector tails, padding,
// clamp, scale and a fused SiLU, 1 and 2 threads, against a double loop.
TEST(XnnFConv, DepthwiseMatchesNaiveLoop) {
  std::mt19937 rng(77);
  pthreadpool_t pool2 = pthreadpool_create(2);
  struct Case {
    int64_t c, ih, iw, kh, kw, s, d, pad;
    bool silu;
  };
  // Large kernels (the generic loop), then the fixed-size rows (3x3 / 5x5, stride 1 / 2: groups
  // of 8, 4 and 1 pixels, edge pixels, channel tails past 16- and 8-wide vectors, rows too near
  // the top or bottom for the fixed path, asymmetric output sizes), some with a fused SiLU.
  const Case cases[] = {{96, 14, 14, 7, 7, 1, 1, 3, false}, {21, 11, 9, 7, 7, 1, 1, 3, false},
                        {40, 13, 17, 5, 7, 2, 1, 2, false}, {33, 15, 15, 7, 5, 1, 2, 4, false},
                        {32, 23, 29, 3, 3, 1, 1, 1, false}, {45, 17, 16, 3, 3, 2, 1, 1, true},
                        {144, 9, 21, 5, 5, 1, 1, 2, false}, {24, 19, 14, 5, 5, 2, 1, 2, true},
                        {19, 7, 7, 3, 3, 1, 1, 0, true},    {96, 12, 13, 3, 3, 1, 1, 1, true},
                        {8, 10, 21, 3, 3, 1, 1, 1, false},  {56, 9, 19, 5, 5, 2, 1, 2, false}};
  int ran = 0;
  for (xnn::FConvIsa isa : {xnn::FConvIsa::kAvx2, xnn::FConvIsa::kAvx512}) {
    if (!CpuHas(isa == xnn::FConvIsa::kAvx2 ? CpuIsa::kAvx2 : CpuIsa::kAvx512)) continue;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
      const Case& k = cases[i];
      xnn::FConvSpec s;
      s.batch = 1 + static_cast<int64_t>(i % 2);
      s.cin = s.cout = k.c;
      s.ih = k.ih;
      s.iw = k.iw;
      s.kh = k.kh;
      s.kw = k.kw;
      s.sh = s.sw = k.s;
      s.dh = s.dw = k.d;
      s.pt = s.pl = k.pad;
      s.oh = (s.ih + 2 * k.pad - (k.kh - 1) * k.d - 1) / k.s + 1;
      s.ow = (s.iw + 2 * k.pad - (k.kw - 1) * k.d - 1) / k.s + 1;
      if (i % 2 == 1 && !k.silu) {
        s.lo = -0.5f;
        s.hi = 0.75f;
      }
      s.silu = k.silu;
      ASSERT_TRUE(xnn::UseOwnDepthwise(s, k.c, isa));
      const std::vector<float> w = RandomVec(k.c * k.kh * k.kw, rng), bias = RandomVec(k.c, rng);
      const std::vector<float> scale = RandomVec(k.c, rng);
      const std::vector<float> x = RandomVec(s.batch * s.ih * s.iw * k.c, rng);
      s.weights = w.data();
      s.bias = bias.data();
      s.scale = i % 2 == 0 ? scale.data() : nullptr;
      std::vector<float> want(static_cast<size_t>(s.batch * s.oh * s.ow * k.c));
      for (int64_t b = 0; b < s.batch; ++b)
        for (int64_t oy = 0; oy < s.oh; ++oy)
          for (int64_t ox = 0; ox < s.ow; ++ox)
            for (int64_t c = 0; c < k.c; ++c) {
              double acc = bias[static_cast<size_t>(c)];
              for (int64_t ky = 0; ky < k.kh; ++ky)
                for (int64_t kx = 0; kx < k.kw; ++kx) {
                  const int64_t iy = oy * k.s - k.pad + ky * k.d, ix = ox * k.s - k.pad + kx * k.d;
                  if (iy < 0 || iy >= s.ih || ix < 0 || ix >= s.iw) continue;
                  acc += static_cast<double>(x[static_cast<size_t>(((b * s.ih + iy) * s.iw + ix) * k.c + c)]) *
                         w[static_cast<size_t>((c * k.kh + ky) * k.kw + kx)] *
                         (s.scale != nullptr ? s.scale[c] : 1.0f);
                }
              acc = std::min<double>(s.hi, std::max<double>(s.lo, acc));
              if (k.silu) acc = acc / (1.0 + std::exp(-acc));
              want[static_cast<size_t>(((b * s.oh + oy) * s.ow + ox) * k.c + c)] =
                  static_cast<float>(acc);
            }
      xnn::FConvFn run = xnn::MakeOwnDepthwise(s, isa);
      for (pthreadpool_t pool : {static_cast<pthreadpool_t>(nullptr), pool2}) {
        std::vector<float> got(want.size() + 16, 7.0f);
        run(x.data(), nullptr, got.data(), pool);
        double err = 0;
        for (size_t j = 0; j < want.size(); ++j)
          err = std::max(err, static_cast<double>(std::fabs(got[j] - want[j])));
        EXPECT_LE(err, 1e-5) << "isa " << static_cast<int>(isa) << " case " << i;
        for (size_t j = want.size(); j < got.size(); ++j) ASSERT_EQ(got[j], 7.0f) << "case " << i;
      }
      ++ran;
    }
  }
  pthreadpool_destroy(pool2);
  if (ran == 0) GTEST_SKIP() << "the CPU has neither AVX2+FMA nor AVX-512";
}

TEST(XnnFConv, KernelsMatchNaiveLoop) {
  std::mt19937 rng(1234);
  std::uniform_int_distribution<int> pick(0, 1 << 20);
  pthreadpool_t pool2 = pthreadpool_create(2);
  int cases = 0;
  for (xnn::FConvIsa isa : {xnn::FConvIsa::kAvx2, xnn::FConvIsa::kAvx512}) {
    if (!CpuHas(isa == xnn::FConvIsa::kAvx2 ? CpuIsa::kAvx2 : CpuIsa::kAvx512)) continue;
    for (int i = 0; i < 24; ++i) {
      xnn::FConvSpec s;
      s.batch = 1 + pick(rng) % 2;
      s.cin = 1 + pick(rng) % 40;
      s.cout = 1 + pick(rng) % 70;
      s.kh = 1 + pick(rng) % 3;
      s.kw = 1 + pick(rng) % 3;
      s.sh = 1 + pick(rng) % 2;
      s.sw = 1 + pick(rng) % 2;
      s.dh = 1 + pick(rng) % 2;
      s.dw = s.dh;
      s.pt = pick(rng) % 2;
      s.pl = pick(rng) % 2;
      const int64_t pb = pick(rng) % 2, pr = s.pl;
      s.ih = (s.kh - 1) * s.dh + 1 + pick(rng) % 9;
      s.iw = (s.kw - 1) * s.dw + 1 + pick(rng) % 9;
      if (i % 4 == 0) {  // a 1x1 stride-1 conv without padding: the direct path
        s.kh = s.kw = s.sh = s.sw = s.dh = s.dw = 1;
        s.pt = s.pl = 0;
      }
      s.oh = (s.ih + s.pt + (i % 4 == 0 ? 0 : pb) - ((s.kh - 1) * s.dh + 1)) / s.sh + 1;
      s.ow = (s.iw + s.pl + (i % 4 == 0 ? 0 : pr) - ((s.kw - 1) * s.dw + 1)) / s.sw + 1;
      if (i % 3 == 1) {
        s.lo = 0.0f;
        s.hi = 0.5f;
      }
      s.silu = i % 5 == 2;  // SiLU in the tiles' epilogue (with a residual or a clamp in some)
      const std::vector<float> weights = RandomVec(s.cout * s.cin * s.kh * s.kw, rng);
      const std::vector<float> bias = RandomVec(s.cout, rng);
      const std::vector<float> scale = RandomVec(s.cout, rng);
      s.weights = weights.data();
      s.bias = bias.data();
      s.scale = i % 2 == 0 ? nullptr : scale.data();
      const std::vector<float> x = RandomVec(s.batch * s.ih * s.iw * s.cin, rng);
      // Every third case adds a residual in the epilogue.
      const std::vector<float> res =
          i % 3 == 2 ? RandomVec(s.batch * s.oh * s.ow * s.cout, rng) : std::vector<float>();
      const std::vector<float> want = NaiveConv(s, x, res);
      xnn::FConvFn run = xnn::MakeOwnFConv(s, isa);
      for (pthreadpool_t pool : {static_cast<pthreadpool_t>(nullptr), pool2}) {
        // A sentinel past the output catches stores beyond cout.
        std::vector<float> got(want.size() + 64, 7.0f);
        run(x.data(), res.empty() ? nullptr : res.data(), got.data(), pool);
        double err = 0;
        for (size_t j = 0; j < want.size(); ++j)
          err = std::max(err, static_cast<double>(std::fabs(got[j] - want[j])));
        // fp32 FMA chains of up to 360 products of |.| <= 1 against double.
        EXPECT_LE(err, 2e-5 * std::sqrt(static_cast<double>(s.cin * s.kh * s.kw)) + 1e-6)
            << "isa " << static_cast<int>(isa) << " case " << i << " cin " << s.cin << " cout "
            << s.cout << " k " << s.kh << "x" << s.kw << " s " << s.sh << "," << s.sw << " d "
            << s.dh << " pads " << s.pt << "," << s.pl << " in " << s.ih << "x" << s.iw;
        for (size_t j = want.size(); j < got.size(); ++j) ASSERT_EQ(got[j], 7.0f) << "case " << i;
      }
      ++cases;
    }
  }
  pthreadpool_destroy(pool2);
  if (cases == 0) GTEST_SKIP() << "the CPU has neither AVX2+FMA nor AVX-512";
}

// Convs with few input channels (stems: 3 -> 64 7x7 stride 2, 1 -> 40 5x5) run row taps: each
// window row of kw * cin floats is one tap, edge rows copied with their padding. Windows across
// every edge (asymmetric padding, batch 2, dilated rows, stride 2), SiLU and residual epilogues,
// 1 and 2 threads, against the double loop.
TEST(XnnFConv, RowTapsMatchNaiveLoop) {
  std::mt19937 rng(4242);
  pthreadpool_t pool2 = pthreadpool_create(2);
  struct Case {
    int64_t batch, cin, cout, ih, iw, kh, kw, s, dh, pt, pl, pb, pr;
    bool silu, res;
  };
  const Case cases[] = {{1, 3, 64, 29, 31, 7, 7, 2, 1, 3, 3, 3, 3, false, false},
                        {2, 1, 40, 13, 17, 5, 5, 1, 1, 2, 1, 0, 3, true, false},
                        {1, 7, 33, 11, 12, 3, 3, 1, 2, 2, 1, 2, 1, false, true},
                        {2, 3, 32, 18, 15, 3, 3, 2, 1, 1, 1, 1, 1, true, true}};
  int ran = 0;
  for (xnn::FConvIsa isa : {xnn::FConvIsa::kAvx2, xnn::FConvIsa::kAvx512}) {
    if (!CpuHas(isa == xnn::FConvIsa::kAvx2 ? CpuIsa::kAvx2 : CpuIsa::kAvx512)) continue;
    for (const Case& k : cases) {
      xnn::FConvSpec s;
      s.batch = k.batch;
      s.cin = k.cin;
      s.cout = k.cout;
      s.ih = k.ih;
      s.iw = k.iw;
      s.kh = k.kh;
      s.kw = k.kw;
      s.sh = s.sw = k.s;
      s.dh = k.dh;
      s.pt = k.pt;
      s.pl = k.pl;
      s.oh = (s.ih + k.pt + k.pb - ((k.kh - 1) * k.dh + 1)) / k.s + 1;
      s.ow = (s.iw + k.pl + k.pr - k.kw) / k.s + 1;
      s.silu = k.silu;
      const std::vector<float> weights = RandomVec(s.cout * s.cin * s.kh * s.kw, rng);
      const std::vector<float> bias = RandomVec(s.cout, rng);
      s.weights = weights.data();
      s.bias = bias.data();
      const std::vector<float> x = RandomVec(s.batch * s.ih * s.iw * s.cin, rng);
      const std::vector<float> res =
          k.res ? RandomVec(s.batch * s.oh * s.ow * s.cout, rng) : std::vector<float>();
      const std::vector<float> want = NaiveConv(s, x, res);
      xnn::FConvFn run = xnn::MakeOwnFConv(s, isa);
      for (pthreadpool_t pool : {static_cast<pthreadpool_t>(nullptr), pool2}) {
        std::vector<float> got(want.size() + 64, 7.0f);
        run(x.data(), res.empty() ? nullptr : res.data(), got.data(), pool);
        double err = 0;
        for (size_t j = 0; j < want.size(); ++j)
          err = std::max(err, static_cast<double>(std::fabs(got[j] - want[j])));
        EXPECT_LE(err, 2e-5 * std::sqrt(static_cast<double>(s.cin * s.kh * s.kw)) + 1e-6)
            << "isa " << static_cast<int>(isa) << " cin " << s.cin << " k " << s.kh << "x" << s.kw;
        for (size_t j = want.size(); j < got.size(); ++j) ASSERT_EQ(got[j], 7.0f);
      }
      ++ran;
    }
  }
  pthreadpool_destroy(pool2);
  if (ran == 0) GTEST_SKIP() << "the CPU has neither AVX2+FMA nor AVX-512";
}

// One Conv (+ Relu or Clip) node as a model.
Model ConvModel(const Shape& x, int64_t cout, int64_t k, int64_t stride, int64_t pad, int64_t dil,
                const std::string& act, uint32_t seed) {
  testing::QdqBuilder b(seed);
  ValueId in = b.Input("x", x);
  ValueId w = b.Init("w", Uniform({cout, x[1], k, k}, -1, 1, seed + 1));
  ValueId bias = b.Init("b", Uniform({cout}, -1, 1, seed + 2));
  Attributes a = testing::Ints(
      {{"strides", {stride, stride}}, {"pads", {pad, pad, pad, pad}}, {"dilations", {dil, dil}}});
  ValueId y = b.Op("Conv", {in, w, bias}, std::move(a));
  if (act == "relu") y = b.Op("Relu", {y});
  if (act == "clip") {
    ValueId lo = b.Init("lo", Tensor::FromVector(std::vector<float>{0.0f}, {}));
    ValueId hi = b.Init("hi", Tensor::FromVector(std::vector<float>{6.0f}, {}));
    y = b.Op("Clip", {y, lo, hi});
  }
  if (act == "leaky") {  // fused into the own kernels' epilogue
    Attributes la;
    la.Add(Attribute::Float("alpha", 0.2f));
    y = b.Op("LeakyRelu", {y}, std::move(la));
  }
  b.g().MarkOutput(y);
  return std::move(b.model);
}

SessionOptions Xnn(CpuIsa isa, int threads) {
  SessionOptions o = SessionOptions::Threads(threads);
  o.backends = {"xnnpack"};
  o.isa = isa;
  return o;
}

void ExpectClose(const std::vector<Tensor>& got, const std::vector<Tensor>& want,
                 const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(got[i].shape(), want[i].shape()) << what;
    EXPECT_LE(*RelativeL2Error(got[i], want[i]), 1e-5) << what;
  }
}

struct ConvCase {
  Shape x;
  int64_t cout, k, stride, pad, dil;
  const char* act;
};

TEST(XnnFConv, ConvSessionsMatchReference) {
  // resnet-like classes (1x1, 1x1 s2, 3x3 s1/s2) with odd channel counts, dilation, batch 2,
  // and shapes the rule leaves to XNNPACK (3 input channels, 16 or 5 output channels);
  // LeakyRelu fused into the own kernel's epilogue (direct 1x1 and Winograd F(4x4)).
  const ConvCase cases[] = {
      {{1, 64, 9, 10}, 96, 1, 1, 0, 1, "relu"}, {{2, 33, 7, 6}, 70, 3, 1, 1, 1, "clip"},
      {{1, 48, 11, 9}, 64, 3, 2, 1, 1, ""},     {{1, 40, 10, 10}, 128, 1, 2, 0, 1, "relu"},
      {{2, 17, 9, 9}, 45, 3, 1, 2, 2, ""},      {{1, 3, 16, 16}, 32, 7, 2, 3, 1, "relu"},
      {{1, 32, 8, 8}, 16, 3, 1, 1, 1, ""},      {{1, 24, 6, 7}, 5, 3, 1, 1, 1, "clip"},
      {{1, 64, 9, 10}, 96, 1, 1, 0, 1, "leaky"}, {{1, 48, 20, 18}, 64, 3, 1, 1, 1, "leaky"},
      {{1, 40, 10, 10}, 16, 3, 1, 1, 1, "leaky"},  // XNNPACK's conv, LeakyRelu a step of its own
  };
  uint32_t seed = 10;
  for (const ConvCase& c : cases) {
    const NamedTensors in = {{"x", Uniform(c.x, -1, 1, seed)}};
    auto m = [&] { return ConvModel(c.x, c.cout, c.k, c.stride, c.pad, c.dil, c.act, seed); };
    const auto want = RunSession(m(), in, SessionOptions::Reference());
    for (CpuIsa isa : {CpuIsa::kPortable, CpuIsa::kAvx2, CpuIsa::kAvx512}) {
      if (!CpuHas(isa)) continue;
      for (int threads : {1, 2}) {
        ExpectClose(RunSession(m(), in, Xnn(isa, threads)), want,
                    "conv x " + ShapeToString(c.x) + " cout " + std::to_string(c.cout) + " isa " +
                        CpuIsaName(isa) + " threads " + std::to_string(threads));
      }
    }
    seed += 10;
  }
  if (!CpuHas(CpuIsa::kAvx512)) GTEST_SKIP() << "no AVX-512: only the AVX2 path was checked";
}

// MaxPool in the own NHWC loop (AVX2 / AVX-512 levels; XNNPACK's operator at the portable
// level): channel counts with vector tails (37: two zmm or four ymm and 5 lanes), padding,
// stride 2, dilation 2, ceil_mode windows past the edge, a Relu fused; exactly the reference's
// values (a max is exact) at every level and 1 and 2 threads.
TEST(XnnFConv, MaxPoolMatchesReference) {
  struct Case {
    Shape x;
    std::vector<int64_t> k, s, pads, d;
    int64_t ceil;
    bool relu;
  };
  const Case cases[] = {{{1, 64, 16, 16}, {3, 3}, {2, 2}, {1, 1, 1, 1}, {1, 1}, 0, false},
                        {{2, 37, 11, 13}, {3, 2}, {1, 2}, {1, 0, 2, 1}, {1, 1}, 0, true},
                        {{1, 21, 12, 12}, {3, 3}, {2, 2}, {0, 0, 0, 0}, {2, 2}, 1, false},
                        {{1, 5, 9, 7}, {2, 2}, {2, 2}, {0, 0, 0, 0}, {1, 1}, 1, false}};
  uint32_t seed = 70;
  for (const Case& c : cases) {
    auto m = [&] {
      testing::QdqBuilder b(seed);
      ValueId in = b.Input("x", c.x);
      Attributes a;
      a.Add(Attribute::Ints("kernel_shape", c.k));
      a.Add(Attribute::Ints("strides", c.s));
      a.Add(Attribute::Ints("pads", c.pads));
      a.Add(Attribute::Ints("dilations", c.d));
      a.Add(Attribute::Int("ceil_mode", c.ceil));
      ValueId y = b.Op("MaxPool", {in}, std::move(a));
      if (c.relu) y = b.Op("Relu", {y});
      b.g().MarkOutput(y);
      return std::move(b.model);
    };
    const NamedTensors in = {{"x", Uniform(c.x, -1, 1, seed)}};
    const auto want = RunSession(m(), in, SessionOptions::Reference());
    ASSERT_EQ(want.size(), 1u);
    for (CpuIsa isa : {CpuIsa::kPortable, CpuIsa::kAvx2, CpuIsa::kAvx512}) {
      if (!CpuHas(isa)) continue;
      for (int threads : {1, 2}) {
        SessionOptions o = Xnn(isa, threads);
        // Pinned: a model this small goes to the reference kernels on cost.
        o.op_backend["MaxPool"] = o.op_backend["Relu"] = "xnnpack";
        o.profile = true;
        auto s = Session::Create(m(), o);
        ASSERT_TRUE(s.ok()) << s.status().ToString();
        auto got = (*s)->Run(in);
        ASSERT_TRUE(got.ok()) << got.status().ToString();
        ASSERT_EQ(got->size(), 1u);
        ASSERT_EQ((*got)[0].shape(), want[0].shape());
        for (int64_t i = 0; i < want[0].size(); ++i) {
          ASSERT_EQ((*got)[0].data<float>()[i], want[0].data<float>()[i])
              << ShapeToString(c.x) << " " << CpuIsaName(isa) << " threads " << threads << " at "
              << i;
        }
        int own = 0, relu = 0;
        for (const ProfileRow& row : (*s)->Profile()) {
          own += row.op_type == "MaxPool" && row.backend == "xnnpack" &&
                 row.what.rfind("own loop", 0) == 0;
          relu += row.op_type == "Relu";
        }
        EXPECT_EQ(own, isa == CpuIsa::kPortable ? 0 : 1) << CpuIsaName(isa);
        EXPECT_EQ(relu, 0) << "the Relu folds into the pool's bounds";
      }
    }
    seed += 3;
  }
}

Model GemmModel(int trans_b) {
  testing::QdqBuilder b(5);
  ValueId a = b.Input("a", {7, 50});
  const Shape bs = trans_b ? Shape{70, 50} : Shape{50, 70};
  ValueId w = b.Init("w", Uniform(bs, -1, 1, 6));
  ValueId c = b.Init("c", Uniform({70}, -1, 1, 7));
  Attributes at;
  at.Add(Attribute::Int("transB", trans_b));
  at.Add(Attribute::Float("alpha", 0.5f));
  at.Add(Attribute::Float("beta", 2.0f));
  ValueId y = b.Op("Relu", {b.Op("Gemm", {a, w, c}, std::move(at))});
  b.g().MarkOutput(y);
  return std::move(b.model);
}

Model MatMulModel() {
  testing::QdqBuilder b(9);
  ValueId a = b.Input("a", {2, 13, 40});
  ValueId y = b.Op("MatMul", {a, b.Init("w", Uniform({40, 33}, -1, 1, 10))});
  b.g().MarkOutput(y);
  return std::move(b.model);
}

TEST(XnnFConv, GemmAndMatMulMatchReference) {
  // Gemm (transB 0 and 1, alpha, beta, C, Relu) and MatMul with a rank-3 A and constant B.
  const NamedTensors gin = {{"a", Uniform({7, 50}, -1, 1, 8)}};
  const NamedTensors min = {{"a", Uniform({2, 13, 40}, -1, 1, 11)}};
  for (int trans_b : {0, 1}) {
    const auto want = RunSession(GemmModel(trans_b), gin, SessionOptions::Reference());
    const auto want_mm = RunSession(MatMulModel(), min, SessionOptions::Reference());
    for (CpuIsa isa : {CpuIsa::kPortable, CpuIsa::kAvx2, CpuIsa::kAvx512}) {
      if (!CpuHas(isa)) continue;
      for (int threads : {1, 2}) {
        ExpectClose(RunSession(GemmModel(trans_b), gin, Xnn(isa, threads)), want,
                    std::string("gemm transB ") + std::to_string(trans_b) + " " + CpuIsaName(isa));
        ExpectClose(RunSession(MatMulModel(), min, Xnn(isa, threads)), want_mm,
                    std::string("matmul ") + CpuIsaName(isa));
      }
    }
  }
}

// stem 3x3 s2 -> BatchNormalization (folded) -> Relu -> 1x1 -> Relu -> 3x3 -> Add (residual) ->
// Relu -> (1x1 s2, 3x3 s2) -> Add -> GlobalAveragePool -> Flatten -> Gemm.
Model ConvNetModel() {
  testing::QdqBuilder b(21);
  ValueId x = b.Input("x", {2, 3, 32, 30});
  auto conv = [&](ValueId in, int64_t cin, int64_t cout, int64_t k, int64_t s, uint32_t seed) {
    Attributes a = testing::Ints({{"strides", {s, s}}, {"pads", {k / 2, k / 2, k / 2, k / 2}}});
    return b.Op("Conv",
                {in, b.Init("w", Uniform({cout, cin, k, k}, -0.3f, 0.3f, seed)),
                 b.Init("b", Uniform({cout}, -0.1f, 0.1f, seed + 1))},
                std::move(a));
  };
  ValueId c1 = conv(x, 3, 32, 3, 2, 1);
  ValueId bn =
      b.Op("BatchNormalization",
           {c1, b.Init("g", Uniform({32}, 0.5f, 1.5f, 3)), b.Init("be", Uniform({32}, -1, 1, 4)),
            b.Init("m", Uniform({32}, -1, 1, 5)), b.Init("v", Uniform({32}, 0.5f, 2, 6))});
  ValueId r1 = b.Op("Relu", {bn});
  ValueId r2 = b.Op("Relu", {conv(r1, 32, 64, 1, 1, 7)});
  ValueId c3 = conv(r2, 64, 32, 3, 1, 9);
  ValueId add = b.Op("Relu", {b.Op("Add", {c3, r1})});
  // Two branches joined by an Add: it fuses into the second Conv only (the first Conv runs
  // before the other operand exists).
  ValueId c4 = conv(add, 32, 96, 1, 2, 11);
  ValueId c5 = conv(add, 32, 96, 3, 2, 17);
  ValueId join = b.Op("Add", {c4, c5});
  ValueId gap = b.Op("Flatten", {b.Op("GlobalAveragePool", {join})});
  Attributes at;
  at.Add(Attribute::Int("transB", 1));
  ValueId fc = b.Op(
      "Gemm",
      {gap, b.Init("fw", Uniform({40, 96}, -1, 1, 13)), b.Init("fb", Uniform({40}, -1, 1, 14))},
      std::move(at));
  b.g().MarkOutput(fc);
  return std::move(b.model);
}

TEST(XnnFConv, SmallConvNetMatchesReference) {
  const NamedTensors in = {{"x", Uniform({2, 3, 32, 30}, -1, 1, 15)}};
  const auto want = RunSession(ConvNetModel(), in, SessionOptions::Reference());
  for (CpuIsa isa : {CpuIsa::kPortable, CpuIsa::kAvx2, CpuIsa::kAvx512}) {
    if (!CpuHas(isa)) continue;
    for (int threads : {1, 2}) {
      ExpectClose(RunSession(ConvNetModel(), in, Xnn(isa, threads)), want,
                  std::string("net ") + CpuIsaName(isa) + " threads " + std::to_string(threads));
    }
  }
}

}  // namespace
}  // namespace kiln
