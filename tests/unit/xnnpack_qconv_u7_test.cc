// The own AVX2 int8 conv kernel for 7-bit weights (src/backends/xnnpack/xnn_qconv.h, kAvx2U7:
// vpmaddubsw of u8 activations by s8 weights in [-64, 64], then vpmaddwd by ones): QLinearConv
// models whose weights are int8 initializers in [-64, 64] run with int8_kernel avx2u7 and
// must equal the reference backend bit for bit (geometries, thread counts, u8/i8 activations,
// extreme activations and weights); the kernel must really run (KILN_XNN_QCONV_DEBUG's line);
// weights outside 7 bits fall back to the int16 kernel; the kernel against the int16 AVX2 kernel
// directly on many small shapes.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <random>
#include <set>
#include <string>

#include "backends/xnnpack/xnn_qconv.h"
#include "qdq_builder.h"
#include "runtime/session.h"

namespace kiln {
namespace {

using testing::RunSession;

using testing::Ints;
using testing::QdqBuilder;
using testing::Uniform;

// Sets (or with "" unsets) an environment variable for the lifetime of the object.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (value.empty()) {
      unsetenv(name);
    } else {
      setenv(name, value.c_str(), 1);
    }
  }
  ~ScopedEnv() { unsetenv(name_); }

 private:
  const char* name_;
};

// Runs with the int8 conv kernel `isa` forced (SessionOptions::int8_kernel; "": auto) and
// returns the outputs and what the conv kernels printed (KILN_XNN_QCONV_DEBUG: a diagnostic
// print of each own kernel built).
std::vector<Tensor> RunIsa(Model m, const NamedTensors& inputs, int threads, const char* isa,
                           std::string* log) {
  ScopedEnv d("KILN_XNN_QCONV_DEBUG", "1");
  SessionOptions o = SessionOptions::Threads(threads);
  o.int8_kernel = *isa == 0 ? Int8Kernel::kAuto : ParseInt8Kernel(isa).value();
  ::testing::internal::CaptureStderr();
  auto out = RunSession(std::move(m), inputs, o);
  *log = ::testing::internal::GetCapturedStderr();
  return out;
}

// Which weights a conv gets.
enum class W { kRandom, kMin, kMax, kExtremes, kOutside, kRandomTo64 };

struct ConvCase {
  int64_t cin = 8, cout = 16, h = 11, w = 13, k = 3;
  std::vector<int64_t> pads = {1, 1, 1, 1}, strides = {1, 1}, dilations = {1, 1};
  ElementType act = ElementType::kU8;
  W weights = W::kRandom;
  bool relu = false;
  float in_lo = -2.0f, in_hi = 2.0f;  // the float input range (beyond +-2.5: saturated raw values)
  bool extreme_inputs = false;        // each input element either far below or far above
};

std::string Describe(const ConvCase& c) {
  return std::to_string(c.cin) + "->" + std::to_string(c.cout) + " k" + std::to_string(c.k) +
         " s" + std::to_string(c.strides[0]) + " " + ElementTypeName(c.act) + " weights " +
         std::to_string(static_cast<int>(c.weights)) +
         (c.extreme_inputs ? " extreme inputs" : "");
}

// x -> Q/DQ (scale 0.02) -> Conv (int8 weights per c.weights, per-channel scales, int32 bias)
// [-> Relu] -> Q/DQ output "y" with a scale that keeps most outputs unsaturated; `layers` such
// convs in a chain (cin == cout) for the timings.
Model BuildConv(const ConvCase& c, uint32_t seed, int layers = 1) {
  QdqBuilder b(seed);
  float xs = 0.02f;
  const int64_t zx = c.act == ElementType::kU8 ? 128 : 0;
  ValueId x = b.Input("x", {1, c.cin, c.h, c.w});
  ValueId y = b.QuantAct(x, xs, zx, c.act);
  float ys = 0;
  std::mt19937 rng(seed * 7 + 1);
  for (int l = 0; l < layers; ++l) {
    Tensor wt = Tensor::Allocate(ElementType::kI8, {c.cout, c.cin, c.k, c.k}).value();
    std::uniform_int_distribution<int> u7(-64, 63), bit(0, 1);
    for (int64_t i = 0; i < wt.size(); ++i) {
      int v = u7(rng);
      if (c.weights == W::kMin) v = -64;
      if (c.weights == W::kMax) v = 64;
      if (c.weights == W::kExtremes) v = bit(rng) != 0 ? 64 : -64;
      if (c.weights == W::kOutside && i % 5 == 0) v = i % 2 == 0 ? -128 : 127;
      if (c.weights == W::kRandomTo64 && i % 3 == 0) v = 64;
      wt.data<int8_t>()[i] = static_cast<int8_t>(v);
    }
    std::vector<float> scales;
    for (int64_t m = 0; m < c.cout; ++m)
      scales.push_back(0.004f + 0.0003f * static_cast<float>(m));
    Attributes wa;
    wa.Add(Attribute::Int("axis", 0));
    ValueId w = b.Op("DequantizeLinear",
                     {b.Init("w", wt), b.Scales(scales), b.Zp(ElementType::kI8, 0, c.cout)},
                     std::move(wa));
    ValueId bias = b.Bias(c.cout, xs, scales);
    Attributes a = Ints({{"pads", c.pads}, {"strides", c.strides}, {"dilations", c.dilations}});
    y = b.Op("Conv", {y, w, bias}, std::move(a));
    if (c.relu) y = b.Op("Relu", {y});
    // |acc| <= 128 * 64 * K; the float output's typical size is a fraction of that.
    const float k = static_cast<float>(c.cin * c.k * c.k);
    const bool same = c.weights == W::kMin || c.weights == W::kMax;
    const float bound = xs * 128.0f * 64.0f * k * 0.0045f;
    ys = (same ? bound : bound / std::sqrt(k) * 3.0f) / 127.0f;
    if (l + 1 < layers) y = b.QuantAct(y, ys, zx, c.act);
    xs = ys;
  }
  b.Output(y, ys, zx, c.act, "y");
  return std::move(b.model);
}

Tensor ConvInput(const ConvCase& c, uint32_t seed) {
  Tensor t = Uniform({1, c.cin, c.h, c.w}, c.in_lo, c.in_hi, seed);
  if (c.extreme_inputs) {
    for (int64_t i = 0; i < t.size(); ++i) t.data<float>()[i] = t.data<float>()[i] < 0 ? -9 : 9;
  }
  return t;
}

// Runs the case on the reference and with `isa` at 1 and 3 threads: the outputs must be equal,
// and the own kernel named `expect_kernel` must have run.
void CheckCase(const ConvCase& c, uint32_t seed, const char* isa = "avx2u7",
               const std::string& expect_kernel = "own qconv avx2u7:") {
  const NamedTensors inputs = {{"x", ConvInput(c, seed)}};
  const auto ref = RunSession(BuildConv(c, seed), inputs, SessionOptions::Reference());
  ASSERT_EQ(ref.size(), 1u) << Describe(c);
  const std::set<float> distinct(ref[0].data<float>(), ref[0].data<float>() + ref[0].size());
  EXPECT_GE(distinct.size(), std::min<size_t>(8, static_cast<size_t>(c.cout)))
      << Describe(c) << ": a degenerate output checks little";
  for (int threads : {1, 3}) {
    std::string log;
    const auto got = RunIsa(BuildConv(c, seed), inputs, threads, isa, &log);
    ASSERT_EQ(got.size(), 1u) << Describe(c);
    EXPECT_NE(log.find(expect_kernel), std::string::npos)
        << Describe(c) << ": expected '" << expect_kernel << "' in: " << log;
    ASSERT_EQ(got[0].shape(), ref[0].shape()) << Describe(c);
    int64_t diff = 0;
    for (int64_t i = 0; i < ref[0].size(); ++i)
      diff += ref[0].data<float>()[i] != got[0].data<float>()[i] ? 1 : 0;
    EXPECT_EQ(diff, 0) << Describe(c) << " threads " << threads << ": " << diff << "/"
                       << ref[0].size() << " differ";
  }
}

TEST(QConvU7Test, WeightsFit7Bit) {
  xnn::QConvSpec s;
  s.weights = {-64, 0, 63, 64, 5};
  EXPECT_TRUE(xnn::WeightsFit7Bit(s));
  s.weights.push_back(65);
  EXPECT_FALSE(xnn::WeightsFit7Bit(s));
  s.weights.back() = -65;
  EXPECT_FALSE(xnn::WeightsFit7Bit(s));
  const CpuIsa cpu = DetectedCpuIsa();
  EXPECT_EQ(xnn::ChooseOwnQConvIsaFor(s, cpu, Int8Kernel::kAvx2U7), xnn::OwnQConvIsa::kAvx2);
  s.weights.back() = 1;
  EXPECT_EQ(xnn::ChooseOwnQConvIsaFor(s, cpu, Int8Kernel::kAvx2U7), xnn::OwnQConvIsa::kAvx2U7);
  EXPECT_EQ(xnn::ChooseOwnQConvIsaFor(s, cpu, Int8Kernel::kAvx2), xnn::OwnQConvIsa::kAvx2);
  EXPECT_EQ(xnn::ChooseOwnQConvIsaFor(s, cpu, Int8Kernel::kXnnpack), xnn::OwnQConvIsa::kNone);
  const bool vnni = xnn::ChooseOwnQConvIsa() == xnn::OwnQConvIsa::kVnni;
  EXPECT_EQ(xnn::ChooseOwnQConvIsaFor(s),
            vnni ? xnn::OwnQConvIsa::kVnni : xnn::OwnQConvIsa::kAvx2U7);
  EXPECT_EQ(xnn::ChooseOwnQConvIsaFor(s, cpu, Int8Kernel::kVnni),
            vnni ? xnn::OwnQConvIsa::kVnni : xnn::OwnQConvIsa::kNone);
  // Below the AVX2 level (forced portable) no own kernel runs, whatever is asked.
  EXPECT_EQ(xnn::ChooseOwnQConvIsaFor(s, CpuIsa::kPortable, Int8Kernel::kAvx2),
            xnn::OwnQConvIsa::kNone);
}

std::vector<ConvCase> GeometryCases() {
  std::vector<ConvCase> cases;
  ConvCase c;
  cases.push_back(c);  // 3x3 padded, 8 -> 16
  c.k = 1, c.pads = {0, 0, 0, 0}, c.cin = 32, c.cout = 40;  // 1x1, K = 32, 2.5 channel tiles
  cases.push_back(c);
  c = ConvCase();
  c.strides = {2, 2}, c.pads = {1, 0, 2, 1}, c.cin = 5, c.cout = 7;  // K = 45, 7 channels
  c.h = 41, c.w = 37;
  cases.push_back(c);
  c = ConvCase();
  c.cin = 3, c.cout = 17, c.h = 29, c.w = 31, c.act = ElementType::kI8;  // K = 27, 17 channels
  cases.push_back(c);
  c = ConvCase();
  c.cin = 6, c.cout = 24, c.dilations = {2, 1}, c.pads = {2, 1, 2, 1}, c.relu = true;
  cases.push_back(c);
  c = ConvCase();
  c.k = 1, c.pads = {0, 0, 0, 0}, c.cin = 1, c.cout = 9, c.act = ElementType::kI8;  // K = 1
  c.h = 60, c.w = 70;
  cases.push_back(c);
  c = ConvCase();
  c.k = 5, c.pads = {2, 2, 2, 2}, c.cin = 11, c.cout = 33, c.strides = {1, 2};  // K = 275
  cases.push_back(c);
  c = ConvCase();
  c.cin = 16, c.cout = 16, c.in_lo = -4.0f, c.in_hi = 4.0f;  // many saturated raw inputs
  cases.push_back(c);
  c = ConvCase();
  c.k = 1, c.pads = {0, 0, 0, 0}, c.cin = 24, c.cout = 8, c.h = 33, c.w = 35;  // 1x1, 8 channels
  cases.push_back(c);
  return cases;
}

TEST(QConvU7Test, GeometriesMatchReference) {
  const std::vector<ConvCase> cases = GeometryCases();
  for (size_t i = 0; i < cases.size(); ++i) CheckCase(cases[i], static_cast<uint32_t>(40 + i));
}

// The same geometries on the AVX-512 VNNI kernel (the 1x1 stride-1 cases with K a multiple of 4
// take its contiguous block copy instead of the im2col gather).
TEST(QConvVnniTest, GeometriesMatchReference) {
  if (xnn::ChooseOwnQConvIsa() != xnn::OwnQConvIsa::kVnni) {
    GTEST_SKIP() << "this CPU has no AVX-512 VNNI";
  }
  const std::vector<ConvCase> cases = GeometryCases();
  for (size_t i = 0; i < cases.size(); ++i)
    CheckCase(cases[i], static_cast<uint32_t>(40 + i), "", "own qconv vnni:");
}

// Raw activations all 0 or all 255 (u8; -128 / 127 as i8, so 0 / 255 in the kernel) and all
// weights -64 or 64: the largest vpmaddubsw pair sums (+-2 * 255 * 64 = +-32640).
TEST(QConvU7Test, ExtremesMatchReference) {
  uint32_t seed = 70;
  for (ElementType act : {ElementType::kU8, ElementType::kI8}) {
    for (W w : {W::kMin, W::kMax, W::kExtremes}) {
      for (int in = 0; in < 3; ++in) {
        ConvCase c;
        c.act = act;
        c.weights = w;
        c.cin = 12, c.cout = 20, c.k = 3, c.h = 9, c.w = 10;
        if (in == 0) c.in_lo = c.in_hi = -9.0f;  // raw 0 (u8) / -128 (i8)
        if (in == 1) c.in_lo = c.in_hi = 9.0f;   // raw 255 / 127
        c.extreme_inputs = in == 2;              // a random mix of both
        CheckCase(c, seed++);
      }
    }
  }
}

// Weights outside [-64, 64] with int8_kernel avx2u7: the int16 AVX2 kernel, still exact.
TEST(QConvU7Test, EightBitWeightsFallBack) {
  ConvCase c;
  c.weights = W::kOutside;
  c.cin = 10, c.cout = 18;
  CheckCase(c, 90, "avx2u7", "own qconv avx2:");
}

// 64 (ONNX Runtime's reduce_range limit) in a random mix: the 7-bit kernel, exact.
TEST(QConvU7Test, ReduceRangeWeightsMatchReference) {
  ConvCase c;
  c.weights = W::kRandomTo64;
  c.cin = 9, c.cout = 21;
  CheckCase(c, 95);
}

// The kernel directly against the int16 AVX2 kernel (exact itself) on shapes around the tile
// sizes: batch 2, channels 1..40, K 1..99, output pixel counts that leave partial tiles.
TEST(QConvU7Test, KernelMatchesInt16Kernel) {
  std::mt19937 rng(5);
  std::uniform_int_distribution<int> u7(-64, 64), u8(-128, 127), b(-3000, 3000);
  int runs = 0, vnni_runs = 0;
  const bool vnni = xnn::ChooseOwnQConvIsa() == xnn::OwnQConvIsa::kVnni;
  for (int64_t cout : {1, 7, 8, 9, 16, 23, 40}) {
    for (int64_t cin : {1, 3, 4, 11}) {
      for (int64_t k : {1, 3}) {
        xnn::QConvSpec s;
        s.batch = 2, s.ih = 7, s.iw = 9, s.cin = cin, s.cout = cout, s.kh = k, s.kw = k;
        s.pt = s.pl = k / 2, s.sh = 1, s.sw = cout % 2 == 0 ? 1 : 2;
        s.oh = s.ih, s.ow = (s.iw + 2 * s.pl - k) / s.sw + 1;
        s.x_zp = static_cast<int8_t>(u8(rng));
        s.y_zp = static_cast<int8_t>(u8(rng) / 4);
        s.lo = -128, s.hi = cout == 9 ? 60 : 127;  // 9 channels: a fused clamp
        for (int64_t i = 0; i < cout * cin * k * k; ++i)
          s.weights.push_back(static_cast<int8_t>(u7(rng)));
        for (int64_t m = 0; m < cout; ++m) {
          s.bias.push_back(b(rng));
          s.mult.push_back((1.0f + 0.1f * static_cast<float>(m)) /
                           (128.0f * std::sqrt(static_cast<float>(cin * k * k))));
        }
        std::vector<int8_t> x(static_cast<size_t>(s.batch * s.ih * s.iw * cin));
        for (int8_t& v : x) v = static_cast<int8_t>(u8(rng));
        const size_t ny = static_cast<size_t>(s.batch * s.oh * s.ow * cout);
        std::vector<int8_t> want(ny + 16, 11), got(ny + 16, 11);
        xnn::MakeOwnQConv(s, xnn::OwnQConvIsa::kAvx2)(x.data(), want.data(), nullptr);
        xnn::MakeOwnQConv(s, xnn::OwnQConvIsa::kAvx2U7)(x.data(), got.data(), nullptr);
        EXPECT_EQ(want, got) << "cout " << cout << " cin " << cin << " k " << k;
        if (vnni) {  // the VNNI kernel too (its gather walks pixels across the two images)
          std::vector<int8_t> v(ny + 16, 11);
          xnn::MakeOwnQConv(s, xnn::OwnQConvIsa::kVnni)(x.data(), v.data(), nullptr);
          EXPECT_EQ(want, v) << "vnni: cout " << cout << " cin " << cin << " k " << k;
          ++vnni_runs;
        }
        const std::set<int8_t> distinct(want.begin(), want.begin() + static_cast<int64_t>(ny));
        EXPECT_GE(distinct.size(), std::min<size_t>(8, ny)) << "cout " << cout << " cin " << cin;
        ++runs;
      }
    }
  }
  EXPECT_EQ(runs, 56);
  EXPECT_EQ(vnni_runs, vnni ? 56 : 0);
}

}  // namespace
}  // namespace kiln
