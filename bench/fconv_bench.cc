// The own fp32 conv kernels (src/backends/xnnpack/xnn_fconv.h) against XNNPACK's f32
// convolution operator, shape by shape (resnet50 and rrdb_x4 classes), one thread: GFLOP/s of
// each (best of short runs: the dev machine is shared) and the largest difference of the outputs.
// The rule UseOwnFConv encodes came from these numbers.
//
//   ninja -C build kiln_fconv_bench && build/kiln_fconv_bench
#include <xnnpack.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "backends/xnnpack/xnn_fconv.h"
#include "core/cpu_features.h"
using namespace kiln::xnn;
struct Shp {
  int64_t n, c, h, w, m, k, s, p, d;
  const char* tag;
};
double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
// --cold: before each timed run, 64 MB are written, so that weights and activations come from
// memory as in a whole model whose weights exceed the last level cache (resnet50: ~100 MB).
bool g_cold = false;
std::vector<float> g_evict;
void Evict() {
  if (!g_cold) return;
  g_evict.resize(16 << 20);
  for (size_t i = 0; i < g_evict.size(); i += 16) g_evict[i] += 1.0f;
}
template <class F>
double Best(F f, double flops) {
  f();
  double best = 1e9;
  int it = 0;
  double t0 = Now();
  while (it < 3 || (Now() - t0 < 0.4 && it < 200)) {
    Evict();
    double a = Now();
    f();
    best = std::min(best, Now() - a);
    ++it;
  }
  return flops / best * 1e-9;
}
int main(int argc, char** argv) {
  std::string only;  // --only TEXT: the shapes whose tag contains TEXT
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    g_cold |= a == "--cold";
    if (a == "--only" && i + 1 < argc) only = argv[++i];
  }
  if (kiln::DetectedCpuIsa() < kiln::CpuIsa::kAvx512) {
    std::printf("needs AVX-512 (the AVX2 kernel is measured beside it)\n");
    return 0;
  }
  xnn_initialize(nullptr);
  std::vector<Shp> shapes = {
      {1, 3, 224, 224, 64, 7, 2, 3, 1, "stem7x7s2"},
      {1, 64, 56, 56, 256, 1, 1, 0, 1, "1x1 64->256 56"},
      {1, 256, 56, 56, 64, 1, 1, 0, 1, "1x1 256->64 56"},
      {1, 128, 28, 28, 512, 1, 1, 0, 1, "1x1 128->512 28"},
      {1, 512, 28, 28, 128, 1, 1, 0, 1, "1x1 512->128 28"},
      {1, 256, 14, 14, 1024, 1, 1, 0, 1, "1x1 256->1024 14"},
      {1, 1024, 14, 14, 256, 1, 1, 0, 1, "1x1 1024->256 14"},
      {1, 512, 7, 7, 2048, 1, 1, 0, 1, "1x1 512->2048 7"},
      {1, 2048, 7, 7, 512, 1, 1, 0, 1, "1x1 2048->512 7"},
      {1, 256, 56, 56, 512, 1, 2, 0, 1, "1x1s2 256->512 56"},
      {1, 64, 56, 56, 64, 3, 1, 1, 1, "3x3 64 56"},
      {1, 128, 28, 28, 128, 3, 1, 1, 1, "3x3 128 28"},
      {1, 256, 14, 14, 256, 3, 1, 1, 1, "3x3 256 14"},
      {1, 512, 7, 7, 512, 3, 1, 1, 1, "3x3 512 7"},
      {1, 128, 56, 56, 128, 3, 2, 1, 1, "3x3s2 128 56"},
      {1, 256, 28, 28, 256, 3, 2, 1, 1, "3x3s2 256 28"},
      {1, 32, 128, 128, 16, 3, 1, 1, 1, "rrdb 32->16"},
      {1, 64, 128, 128, 16, 3, 1, 1, 1, "rrdb 64->16"},
      {1, 96, 128, 128, 32, 3, 1, 1, 1, "rrdb 96->32"},
      {1, 32, 256, 256, 32, 3, 1, 1, 1, "rrdb 32->32 256"},
      {1, 32, 256, 256, 3, 3, 1, 1, 1, "rrdb 32->3 256"},
      {1, 3, 128, 128, 32, 3, 1, 1, 1, "rrdb 3->32"},
      {2, 7, 13, 11, 37, 3, 2, 1, 2, "odd d2"},
      {1, 16, 112, 112, 96, 1, 1, 0, 1, "1x1 16->96 112"},
      {1, 24, 56, 56, 144, 1, 1, 0, 1, "1x1 24->144 56"},
      {1, 96, 56, 56, 24, 1, 1, 0, 1, "1x1 96->24 56"},
      {1, 144, 56, 56, 24, 1, 1, 0, 1, "1x1 144->24 56"},
      {1, 192, 28, 28, 32, 1, 1, 0, 1, "1x1 192->32 28"},
      {1, 144, 28, 28, 40, 1, 1, 0, 1, "1x1 144->40 28"},
      {1, 240, 14, 14, 80, 1, 1, 0, 1, "1x1 240->80 14"},
      {1, 32, 112, 112, 16, 1, 1, 0, 1, "1x1 32->16 112"},
      {1, 40, 28, 28, 240, 1, 1, 0, 1, "1x1 40->240 28"},
  };
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-1, 1);
  for (auto& sh : shapes) {
    if (!only.empty() && std::string(sh.tag).find(only) == std::string::npos) continue;
    const int64_t ek = (sh.k - 1) * sh.d + 1;
    const int64_t oh = (sh.h + 2 * sh.p - ek) / sh.s + 1, ow = (sh.w + 2 * sh.p - ek) / sh.s + 1;
    std::vector<float> x(sh.n * sh.h * sh.w * sh.c), w(sh.m * sh.c * sh.k * sh.k), b(sh.m);
    for (auto& v : x) v = u(rng);
    for (auto& v : w) v = u(rng);
    for (auto& v : b) v = u(rng);
    std::vector<float> wx(w.size());  // [m][kh][kw][c]
    for (int64_t o = 0; o < sh.m; ++o)
      for (int64_t c = 0; c < sh.c; ++c)
        for (int64_t t = 0; t < sh.k * sh.k; ++t)
          wx[(o * sh.k * sh.k + t) * sh.c + c] = w[(o * sh.c + c) * sh.k * sh.k + t];
    std::vector<float> y1(sh.n * oh * ow * sh.m), y2(y1.size()), y3(y1.size());
    xnn_operator_t op;
    xnn_create_convolution2d_nhwc_f32(sh.p, sh.p, sh.p, sh.p, sh.k, sh.k, sh.s, sh.s, sh.d, sh.d, 1,
                                      sh.c, sh.m, sh.c, sh.m, wx.data(), b.data(), -INFINITY,
                                      INFINITY, 0, &op);
    xnn_setup_convolution2d_nhwc_f32(op, sh.n, sh.h, sh.w, x.data(), y1.data(), nullptr);
    FConvSpec s;
    s.batch = sh.n;
    s.ih = sh.h;
    s.iw = sh.w;
    s.cin = sh.c;
    s.oh = oh;
    s.ow = ow;
    s.cout = sh.m;
    s.kh = s.kw = sh.k;
    s.sh = s.sw = sh.s;
    s.dh = s.dw = sh.d;
    s.pt = s.pl = sh.p;
    s.weights = w.data();
    s.bias = b.data();
    FConvFn f512 = MakeOwnFConv(s, FConvIsa::kAvx512), f2 = MakeOwnFConv(s, FConvIsa::kAvx2);
    const double flops = 2.0 * sh.n * oh * ow * sh.m * sh.c * sh.k * sh.k;
    double gx = Best([&] { xnn_run_operator(op, nullptr); }, flops);
    double g5 = Best([&] { f512(x.data(), nullptr, y2.data(), nullptr); }, flops);
    double g2 = Best([&] { f2(x.data(), nullptr, y3.data(), nullptr); }, flops);
    // Winograd (where the rule takes it) and the direct kernel, in effective GFLOP/s of the
    // direct convolution.
    double gw = 0, ew = 0;
    if (UseWinograd(s, FConvIsa::kAvx512)) {
      std::vector<float> y4(y1.size());
      FConvFn fw = MakeWinogradFConv(s, FConvIsa::kAvx512);
      gw = Best([&] { fw(x.data(), nullptr, y4.data(), nullptr); }, flops);
      for (size_t i = 0; i < y1.size(); ++i) ew = std::max(ew, (double)std::fabs(y1[i] - y4[i]));
    }
    double e2 = 0, e3 = 0, mx = 0;
    for (size_t i = 0; i < y1.size(); ++i) {
      e2 = std::max(e2, (double)std::fabs(y1[i] - y2[i]));
      e3 = std::max(e3, (double)std::fabs(y1[i] - y3[i]));
      mx = std::max(mx, (double)std::fabs(y1[i]));
    }
    std::printf(
        "%-20s xnn %6.1f  own512 %6.1f (%.2fx)  own2 %6.1f (%.2fx)  wino %6.1f  err %.1e %.1e %.1e "
        "(max %.1f)\n",
        sh.tag, gx, g5, g5 / gx, g2, g2 / gx, gw, e2, e3, ew, mx);
    xnn_delete_operator(op);
  }
  if (only.empty() || only == "silu") {  // SiLU in place on 8 K floats (in L1): G elements/s
    std::vector<float> v(8192);
    for (auto& e : v) e = u(rng);
    for (FConvIsa isa : {FConvIsa::kAvx512, FConvIsa::kAvx2, FConvIsa::kNone}) {
      const double ge = Best([&] {
        for (int r = 0; r < 16; ++r) SiluInPlace(v.data(), 8192, isa);
        for (auto& e : v) e = e * 0.5f - 0.1f;
      }, 16.0 * 8192);
      std::printf("silu isa %d: %.2f G elements/s (incl. a refill pass per 16)\n", static_cast<int>(isa), ge);
    }
  }
  // Depthwise (group = channels): XNNPACK's operator against the own loop (xnn_fdw.cc), the
  // mobilenet_v2 / efficientnet_b0 classes.
  const Shp dws[] = {{1, 32, 112, 112, 32, 3, 1, 1, 1, "dw3 112x32"},
                     {1, 96, 112, 112, 96, 3, 2, 1, 1, "dw3s2 112x96"},
                     {1, 144, 56, 56, 144, 3, 1, 1, 1, "dw3 56x144"},
                     {1, 144, 56, 56, 144, 5, 2, 2, 1, "dw5s2 56x144"},
                     {1, 240, 28, 28, 240, 5, 1, 2, 1, "dw5 28x240"},
                     {1, 480, 14, 14, 480, 3, 1, 1, 1, "dw3 14x480"},
                     {1, 672, 14, 14, 672, 5, 1, 2, 1, "dw5 14x672"},
                     {1, 1152, 7, 7, 1152, 5, 1, 2, 1, "dw5 7x1152"}};
  for (const Shp& sh : dws) {
    if (!only.empty() && std::string(sh.tag).find(only) == std::string::npos) continue;
    const int64_t oh = (sh.h + 2 * sh.p - sh.k) / sh.s + 1, ow = (sh.w + 2 * sh.p - sh.k) / sh.s + 1;
    std::vector<float> x(sh.h * sh.w * sh.c), w(sh.c * sh.k * sh.k), b(sh.c);
    for (auto& v : x) v = u(rng);
    for (auto& v : w) v = u(rng);
    for (auto& v : b) v = u(rng);
    std::vector<float> y1(oh * ow * sh.c), y2(y1.size());
    xnn_operator_t op;
    xnn_create_convolution2d_nhwc_f32(sh.p, sh.p, sh.p, sh.p, sh.k, sh.k, sh.s, sh.s, 1, 1, sh.c, 1,
                                      1, sh.c, sh.c, w.data(), b.data(), -INFINITY, INFINITY, 0,
                                      &op);
    xnn_setup_convolution2d_nhwc_f32(op, 1, sh.h, sh.w, x.data(), y1.data(), nullptr);
    FConvSpec s;
    s.ih = sh.h;
    s.iw = sh.w;
    s.cin = s.cout = sh.c;
    s.oh = oh;
    s.ow = ow;
    s.kh = s.kw = sh.k;
    s.sh = s.sw = sh.s;
    s.pt = s.pl = sh.p;
    s.weights = w.data();
    s.bias = b.data();
    FConvFn own = MakeOwnDepthwise(s, FConvIsa::kAvx512);
    FConvSpec ss = s;
    ss.silu = true;
    FConvFn own_silu = MakeOwnDepthwise(ss, FConvIsa::kAvx512);
    const double flops = 2.0 * oh * ow * sh.c * sh.k * sh.k;
    const double gx = Best([&] { xnn_run_operator(op, nullptr); }, flops);
    const double go = Best([&] { own(x.data(), nullptr, y2.data(), nullptr); }, flops);
    std::vector<float> y3(y1.size());
    const double gs = Best([&] { own_silu(x.data(), nullptr, y3.data(), nullptr); }, flops);
    double e = 0;
    for (size_t i = 0; i < y1.size(); ++i) e = std::max(e, (double)std::fabs(y1[i] - y2[i]));
    std::printf("%-20s xnn %6.1f  own512 %6.1f (%.2fx)  own512+silu %6.1f  err %.1e\n", sh.tag, gx,
                go, go / gx, gs, e);
    xnn_delete_operator(op);
  }
}
