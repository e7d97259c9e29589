// Tests of the reference nn kernels and their shape inference. Fast f32 paths (packed GEMM,
// im2col, depthwise, col2im) are checked against naive double-precision loops written here;
// small cases against values computed by hand or by the ONNX/numpy reference.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "backends/ref/eager.h"
#include "ir/op_schema.h"

namespace kiln {
namespace {

Attributes Attrs(std::vector<Attribute> list) {
  Attributes at;
  for (auto& a : list) at.Add(a);
  return at;
}

Tensor RandomF32(const Shape& shape, uint32_t seed) {
  Tensor t = Tensor::Allocate(ElementType::kF32, shape).value();
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (int64_t i = 0; i < t.size(); ++i) t.data<float>()[i] = u(gen);
  return t;
}

Tensor ToF64(const Tensor& t) {
  Tensor r = Tensor::Allocate(ElementType::kF64, t.shape()).value();
  for (int64_t i = 0; i < t.size(); ++i) r.data<double>()[i] = t.GetAsDouble(i);
  return r;
}

// |got - want| <= tol * max(scale, |want|) elementwise. Long float sums carry absolute error
// proportional to the magnitude of their terms, so f32 checks pass the RMS of `want` as scale.
void ExpectClose(const Tensor& got, const std::vector<double>& want, double tol = 1e-5,
                 double scale = 1.0) {
  ASSERT_EQ(got.size(), static_cast<int64_t>(want.size()));
  for (int64_t i = 0; i < got.size(); ++i) {
    EXPECT_NEAR(got.GetAsDouble(i), want[i], tol * std::max(scale, std::fabs(want[i])))
        << "at " << i;
  }
}

double Rms(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x * x;
  return v.empty() ? 1.0 : std::sqrt(s / v.size());
}

// Naive 2-D convolution in double, written independently of the kernels.
std::vector<double> NaiveConv2d(const Tensor& x, const Tensor& w, const Tensor* b, int64_t group,
                                int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh,
                                int64_t dw, int64_t oh, int64_t ow) {
  const int64_t n = x.dim(0), c = x.dim(1), h = x.dim(2), wd = x.dim(3);
  const int64_t m = w.dim(0), cg = w.dim(1), kh = w.dim(2), kw = w.dim(3);
  const int64_t mg = m / group;
  std::vector<double> y(static_cast<size_t>(n * m * oh * ow), 0.0);
  for (int64_t b0 = 0; b0 < n; ++b0)
    for (int64_t mo = 0; mo < m; ++mo)
      for (int64_t oy = 0; oy < oh; ++oy)
        for (int64_t ox = 0; ox < ow; ++ox) {
          double acc = b != nullptr ? b->GetAsDouble(mo) : 0.0;
          const int64_t g = mo / mg;
          for (int64_t ci = 0; ci < cg; ++ci)
            for (int64_t ky = 0; ky < kh; ++ky)
              for (int64_t kx = 0; kx < kw; ++kx) {
                const int64_t iy = oy * sh - ph + ky * dh, ix = ox * sw - pw + kx * dw;
                if (iy < 0 || iy >= h || ix < 0 || ix >= wd) continue;
                acc += x.GetAsDouble(((b0 * c + g * cg + ci) * h + iy) * wd + ix) *
                       w.GetAsDouble(((mo * cg + ci) * kh + ky) * kw + kx);
              }
          y[((b0 * m + mo) * oh + oy) * ow + ox] = acc;
        }
  return y;
}

struct ConvCase {
  Shape x, w;
  int64_t group, stride, pad, dilation;
  bool bias;
};

TEST(RefNn, ConvMatchesNaiveLoopForManyGeometries) {
  const ConvCase cases[] = {
      {{1, 3, 17, 19}, {8, 3, 3, 3}, 1, 1, 1, 1, true},      // im2col, edge tiles
      {{2, 3, 20, 20}, {16, 3, 3, 3}, 1, 2, 1, 1, true},     // strided stem
      {{1, 40, 9, 11}, {20, 40, 1, 1}, 1, 1, 0, 1, false},   // pointwise, no bias
      {{1, 300, 5, 5}, {7, 300, 1, 1}, 1, 1, 0, 1, true},    // K spans two blocks
      {{1, 8, 12, 12}, {8, 1, 3, 3}, 8, 1, 1, 1, true},      // depthwise
      {{1, 6, 13, 13}, {12, 1, 5, 5}, 6, 2, 2, 1, true},     // depthwise x2, strided 5x5
      {{1, 8, 10, 10}, {8, 2, 3, 3}, 4, 1, 2, 2, true},      // grouped, dilated
      {{1, 130, 7, 7}, {130, 130, 3, 3}, 1, 1, 1, 1, true},  // M > one row block
  };
  ThreadPool pool(3);
  for (const ConvCase& c : cases) {
    const Tensor x = RandomF32(c.x, 1), w = RandomF32(c.w, 2), b = RandomF32({c.w[0]}, 3);
    const int64_t kh = c.w[2], kw = c.w[3];
    const int64_t oh = (c.x[2] + 2 * c.pad - ((kh - 1) * c.dilation + 1)) / c.stride + 1;
    const int64_t ow = (c.x[3] + 2 * c.pad - ((kw - 1) * c.dilation + 1)) / c.stride + 1;
    const auto want = NaiveConv2d(x, w, c.bias ? &b : nullptr, c.group, c.stride, c.stride, c.pad,
                                  c.pad, c.dilation, c.dilation, oh, ow);
    Node n;
    n.name = "conv";
    n.op_type = "Conv";
    n.opset = 11;
    n.attrs = Attrs({Attribute::Int("group", c.group), Attribute::Ints("strides", {c.stride, c.stride}),
                     Attribute::Ints("pads", {c.pad, c.pad, c.pad, c.pad}),
                     Attribute::Ints("dilations", {c.dilation, c.dilation})});
    n.inputs = {ValueId(0), ValueId(1), c.bias ? ValueId(2) : ValueId()};
    n.outputs = {ValueId(3)};
    for (ThreadPool* p : {static_cast<ThreadPool*>(nullptr), &pool}) {
      auto r = RunNodeEager(n, {x, w, c.bias ? b : Tensor()}, p);
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      EXPECT_EQ((*r)[0].shape(), (Shape{c.x[0], c.w[0], oh, ow}));
      ExpectClose((*r)[0], want, 1e-5, Rms(want));
    }
    // The double path must agree too.
    auto r64 = RunNodeEager(n, {ToF64(x), ToF64(w), c.bias ? ToF64(b) : Tensor()});
    ASSERT_TRUE(r64.ok()) << r64.status().ToString();
    ExpectClose((*r64)[0], want, 1e-12);
  }
}

TEST(RefNn, HalfConvAndMatMulAccumulateInFloat) {
  // f16 inputs exactly representable; results checked against the double loop within f16 rounding.
  Tensor x = Tensor::Allocate(ElementType::kF16, {1, 4, 6, 6}).value();
  Tensor w = Tensor::Allocate(ElementType::kF16, {3, 4, 3, 3}).value();
  for (int64_t i = 0; i < x.size(); ++i) x.data<Half>()[i] = Half(static_cast<float>(i % 7) - 3);
  for (int64_t i = 0; i < w.size(); ++i)
    w.data<Half>()[i] = Half(static_cast<float>(i % 5) * 0.25f);
  const auto want = NaiveConv2d(x, w, nullptr, 1, 1, 1, 1, 1, 1, 1, 6, 6);
  auto r = RunOpEager("Conv", 13, {x, w}, 1, Attrs({Attribute::Ints("pads", {1, 1, 1, 1})}));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)[0].type(), ElementType::kF16);
  ExpectClose((*r)[0], want, 1e-3);
  Tensor a = Tensor::Allocate(ElementType::kBF16, {3, 4}).value();
  for (int64_t i = 0; i < a.size(); ++i) a.data<BFloat16>()[i] = BFloat16(static_cast<float>(i));
  auto mm = RunOpEager("MatMul", 13, {a, Tensor::FromVector<BFloat16>({1, 1, 1, 1}, {4})}, 1);
  ASSERT_TRUE(mm.ok()) << mm.status().ToString();
  ExpectClose((*mm)[0], {6, 22, 38});
}

TEST(RefNn, Conv1dAnd3dAndAutoPad) {
  // 1-D: x = [1,2,3,4,5], w = [1,0,-1], SAME_UPPER stride 2 -> out 3, total pad 2 (1 each side).
  Tensor x = Tensor::FromVector<float>({1, 2, 3, 4, 5}, {1, 1, 5});
  Tensor w = Tensor::FromVector<float>({1, 0, -1}, {1, 1, 3});
  auto r = RunOpEager("Conv", 13, {x, w}, 1,
                      Attrs({Attribute::String("auto_pad", "SAME_UPPER"), Attribute::Ints("strides", {2})}));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  // windows: [0,1,2] -> 0-2 = -2; [2,3,4] -> 2-4 = -2; [4,5,0] -> 4-0 = 4
  ExpectClose((*r)[0], {-2, -2, 4});
  // 3-D all-ones kernel 2x2x2 over an arange 2x2x3 volume, VALID: sums of 2x2x2 blocks.
  std::vector<float> v(12);
  for (int i = 0; i < 12; ++i) v[i] = static_cast<float>(i);
  Tensor x3 = Tensor::FromVector<float>(v, {1, 1, 2, 2, 3});
  Tensor w3 = Tensor::FromVector<float>(std::vector<float>(8, 1.0f), {1, 1, 2, 2, 2});
  auto r3 = RunOpEager("Conv", 13, {x3, w3}, 1);
  ASSERT_TRUE(r3.ok()) << r3.status().ToString();
  EXPECT_EQ((*r3)[0].shape(), (Shape{1, 1, 1, 1, 2}));
  ExpectClose((*r3)[0], {0 + 1 + 3 + 4 + 6 + 7 + 9 + 10, 1 + 2 + 4 + 5 + 7 + 8 + 10 + 11});
}

TEST(RefNn, ConvRejectsChannelMismatch) {
  auto r = RunOpEager("Conv", 13, {RandomF32({1, 3, 5, 5}, 1), RandomF32({4, 2, 3, 3}, 2)}, 1);
  EXPECT_FALSE(r.ok());
}

TEST(RefNn, ConvTransposeMatchesNaiveScatter) {
  const Tensor x = RandomF32({2, 4, 5, 6}, 7), w = RandomF32({4, 3, 3, 2}, 8),
               b = RandomF32({6}, 9);
  const int64_t group = 2, s = 2, pad = 1, opad = 1;
  const int64_t oh = s * (5 - 1) + opad + 3 - 2 * pad, ow = s * (6 - 1) + opad + 2 - 2 * pad;
  std::vector<double> want(static_cast<size_t>(2 * 6 * oh * ow), 0.0);
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t m = 0; m < 6; ++m)
      for (int64_t i = 0; i < oh * ow; ++i) want[(n * 6 + m) * oh * ow + i] = b.GetAsDouble(m);
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t c = 0; c < 4; ++c)
      for (int64_t iy = 0; iy < 5; ++iy)
        for (int64_t ix = 0; ix < 6; ++ix)
          for (int64_t ml = 0; ml < 3; ++ml)
            for (int64_t ky = 0; ky < 3; ++ky)
              for (int64_t kx = 0; kx < 2; ++kx) {
                const int64_t oy = iy * s - pad + ky, ox = ix * s - pad + kx;
                if (oy < 0 || oy >= oh || ox < 0 || ox >= ow) continue;
                const int64_t m = (c / 2) * 3 + ml;
                want[((n * 6 + m) * oh + oy) * ow + ox] +=
                    x.GetAsDouble(((n * 4 + c) * 5 + iy) * 6 + ix) *
                    w.GetAsDouble(((c * 3 + ml) * 3 + ky) * 2 + kx);
              }
  Attributes at =
      Attrs({Attribute::Int("group", group), Attribute::Ints("strides", {s, s}),
             Attribute::Ints("pads", {pad, pad, pad, pad}), Attribute::Ints("output_padding", {opad, opad})});
  auto r = RunOpEager("ConvTranspose", 11, {x, w, b}, 1, at);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)[0].shape(), (Shape{2, 6, oh, ow}));
  ExpectClose((*r)[0], want, 1e-5, Rms(want));
  auto r64 = RunOpEager("ConvTranspose", 11, {ToF64(x), ToF64(w), ToF64(b)}, 1, at);
  ASSERT_TRUE(r64.ok()) << r64.status().ToString();
  ExpectClose((*r64)[0], want, 1e-12);
}

TEST(RefNn, GemmAndMatMulMatchNaiveProducts) {
  ThreadPool pool(2);
  // Odd sizes cover partial register tiles; K = 300 crosses a K block.
  for (auto [m, k, n] :
       {std::tuple<int64_t, int64_t, int64_t>{1, 7, 5}, {13, 300, 37}, {130, 20, 600}}) {
    for (int ta = 0; ta < 2; ++ta) {
      for (int tb = 0; tb < 2; ++tb) {
        const Tensor a = RandomF32(ta ? Shape{k, m} : Shape{m, k}, 11);
        const Tensor b = RandomF32(tb ? Shape{n, k} : Shape{k, n}, 12);
        const Tensor c = RandomF32({n}, 13);
        std::vector<double> want(static_cast<size_t>(m * n));
        for (int64_t i = 0; i < m; ++i)
          for (int64_t j = 0; j < n; ++j) {
            double acc = 0;
            for (int64_t q = 0; q < k; ++q) {
              acc += a.GetAsDouble(ta ? q * m + i : i * k + q) *
                     b.GetAsDouble(tb ? j * k + q : q * n + j);
            }
            want[i * n + j] = 0.5 * acc + 2.0 * c.GetAsDouble(j);
          }
        Node node;
        node.name = "gemm";
        node.op_type = "Gemm";
        node.opset = 13;
        node.attrs = Attrs({Attribute::Int("transA", ta), Attribute::Int("transB", tb), Attribute::Float("alpha", 0.5f),
                            Attribute::Float("beta", 2.0f)});
        node.inputs = {ValueId(0), ValueId(1), ValueId(2)};
        node.outputs = {ValueId(3)};
        auto r = RunNodeEager(node, {a, b, c}, &pool);
        ASSERT_TRUE(r.ok()) << r.status().ToString();
        ExpectClose((*r)[0], want, 1e-5, Rms(want));
        auto r64 = RunNodeEager(node, {ToF64(a), ToF64(b), ToF64(c)});
        ASSERT_TRUE(r64.ok());
        ExpectClose((*r64)[0], want, 1e-12);
      }
    }
  }
  // Batched MatMul with broadcasting: [2,1,4,3] x [3,3,5] -> [2,3,4,5]; 1-D operands.
  const Tensor a = RandomF32({2, 1, 4, 3}, 21), b = RandomF32({3, 3, 5}, 22);
  auto r = RunOpEager("MatMul", 13, {a, b}, 1);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ((*r)[0].shape(), (Shape{2, 3, 4, 5}));
  for (int64_t p = 0; p < 2; ++p)
    for (int64_t q = 0; q < 3; ++q)
      for (int64_t i = 0; i < 4; ++i)
        for (int64_t j = 0; j < 5; ++j) {
          double acc = 0;
          for (int64_t t = 0; t < 3; ++t)
            acc += a.GetAsDouble((p * 4 + i) * 3 + t) * b.GetAsDouble((q * 3 + t) * 5 + j);
          EXPECT_NEAR((*r)[0].GetAsDouble(((p * 3 + q) * 4 + i) * 5 + j), acc, 1e-5);
        }
  auto rv = RunOpEager("MatMul", 13,
                       {Tensor::FromVector<int32_t>({1, 2, 3}, {3}),
                        Tensor::FromVector<int32_t>({1, 2, 3, 4, 5, 6}, {3, 2})},
                       1);
  ASSERT_TRUE(rv.ok()) << rv.status().ToString();
  EXPECT_EQ((*rv)[0].shape(), (Shape{2}));
  ExpectClose((*rv)[0], {1 + 6 + 15, 2 + 8 + 18});
  EXPECT_FALSE(RunOpEager("MatMul", 13, {RandomF32({2, 3}, 1), RandomF32({4, 2}, 2)}, 1).ok());
}

TEST(RefNn, MaxPoolReportsIndicesAndAveragePoolCountsPads) {
  // 1x1x3x3 = 1..9 with a 9 duplicated; 2x2 window, stride 1.
  Tensor x = Tensor::FromVector<float>({1, 2, 3, 4, 9, 6, 7, 8, 9}, {1, 1, 3, 3});
  auto r = RunOpEager("MaxPool", 12, {x}, 2, Attrs({Attribute::Ints("kernel_shape", {2, 2})}));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ExpectClose((*r)[0], {9, 9, 9, 9});
  ExpectClose((*r)[1], {4, 4, 4, 4});  // the first 9 wins ties (index 8 is later)
  auto rc = RunOpEager("MaxPool", 12, {x}, 2,
                       Attrs({Attribute::Ints("kernel_shape", {2, 2}), Attribute::Int("storage_order", 1),
                              Attribute::Ints("strides", {2, 2}), Attribute::Int("ceil_mode", 1)}));
  ASSERT_TRUE(rc.ok()) << rc.status().ToString();
  ExpectClose((*rc)[0], {9, 6, 8, 9});
  // Column-major indices: (h, w) -> h + w * 3. 9 at (1,1) -> 4; 6 at (1,2) -> 7; 8 at (2,1) -> 5;
  // 9 at (2,2) -> 8.
  ExpectClose((*rc)[1], {4, 7, 5, 8});
  Attributes avg = Attrs({Attribute::Ints("kernel_shape", {2, 2}), Attribute::Ints("pads", {1, 1, 0, 0})});
  auto ra = RunOpEager("AveragePool", 11, {x}, 1, avg);
  ASSERT_TRUE(ra.ok());
  ExpectClose((*ra)[0], {1, 1.5, 2.5, 2.5, 4, 5, 5.5, 7, 8});
  avg.Add(Attribute::Int("count_include_pad", 1));
  auto rb = RunOpEager("AveragePool", 11, {x}, 1, avg);
  ASSERT_TRUE(rb.ok());
  ExpectClose((*rb)[0], {0.25, 0.75, 1.25, 1.25, 4, 5, 2.75, 7, 8});
}

TEST(RefNn, SoftmaxAxisSemanticsChangeAtOpset13) {
  Tensor x = Tensor::FromVector<float>({0, 0, 0, std::log(3.0f)}, {1, 2, 2});
  // Opset 11, axis 1: normalise over the flattened 2x2 = 4 values: e^x sums to 6.
  auto r11 = RunOpEager("Softmax", 11, {x}, 1);
  ASSERT_TRUE(r11.ok());
  ExpectClose((*r11)[0], {1.0 / 6, 1.0 / 6, 1.0 / 6, 3.0 / 6});
  // Opset 13, axis -1: normalise each row of 2.
  auto r13 = RunOpEager("Softmax", 13, {x}, 1);
  ASSERT_TRUE(r13.ok());
  ExpectClose((*r13)[0], {0.5, 0.5, 0.25, 0.75});
  auto rl = RunOpEager("LogSoftmax", 13, {x}, 1);
  ASSERT_TRUE(rl.ok());
  ExpectClose((*rl)[0], {std::log(0.5), std::log(0.5), std::log(0.25), std::log(0.75)});
  auto rh = RunOpEager("Hardmax", 13, {Tensor::FromVector<float>({3, 3, 1, 2}, {2, 2})}, 1);
  ASSERT_TRUE(rh.ok());
  ExpectClose((*rh)[0], {1, 0, 0, 1});
}

TEST(RefNn, NormalizationsMatchHandValues) {
  // BatchNorm inference: y = s (x - m) / sqrt(v + eps) + b with eps = 0 ... use eps 1e-5 default.
  Tensor x = Tensor::FromVector<float>({1, 2, 3, 4}, {1, 2, 2});
  auto bn =
      RunOpEager("BatchNormalization", 15,
                 {x, Tensor::FromVector<float>({2, 1}, {2}), Tensor::FromVector<float>({0, 1}, {2}),
                  Tensor::FromVector<float>({1, 3}, {2}), Tensor::FromVector<float>({4, 1}, {2})},
                 1, Attrs({Attribute::Float("epsilon", 0.0f)}));
  ASSERT_TRUE(bn.ok()) << bn.status().ToString();
  ExpectClose((*bn)[0], {0, 1, 1, 2});
  // LayerNorm over the last axis of [[1,3],[2,6]]: mean 2 / 4, var 1 / 4.
  auto ln =
      RunOpEager("LayerNormalization", 17,
                 {Tensor::FromVector<float>({1, 3, 2, 6}, {2, 2}),
                  Tensor::FromVector<float>({1, 2}, {2}), Tensor::FromVector<float>({0, 1}, {2})},
                 3, Attrs({Attribute::Float("epsilon", 0.0f)}));
  ASSERT_TRUE(ln.ok()) << ln.status().ToString();
  ExpectClose((*ln)[0], {-1, 3, -1, 3});
  ExpectClose((*ln)[1], {2, 4});
  ExpectClose((*ln)[2], {1, 0.5});
  EXPECT_EQ((*ln)[1].shape(), (Shape{2, 1}));
}

TEST(RefNn, ResizeModesMatchOnnxReference) {
  // test_resize_downsample_scales_linear_align_corners: [[1,2,3,4],[5,6,7,8]] x 0.6 ->
  // [[1, 3.142857]]
  Tensor x = Tensor::FromVector<float>({1, 2, 3, 4, 5, 6, 7, 8}, {1, 1, 2, 4});
  Tensor scales = Tensor::FromVector<float>({1, 1, 0.6f, 0.6f}, {4});
  auto r = RunOpEager("Resize", 13, {x, Tensor(), scales}, 1,
                      Attrs({Attribute::String("mode", "linear"),
                             Attribute::String("coordinate_transformation_mode", "align_corners")}));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)[0].shape(), (Shape{1, 1, 1, 2}));
  ExpectClose((*r)[0], {1, 3.142857142857143});
  // Nearest x2 with asymmetric + floor is pixel replication.
  Tensor s2 = Tensor::FromVector<float>({1, 1, 2, 2}, {4});
  Tensor small = Tensor::FromVector<float>({1, 2, 3, 4}, {1, 1, 2, 2});
  auto rn = RunOpEager("Resize", 13, {small, Tensor(), s2}, 1,
                       Attrs({Attribute::String("coordinate_transformation_mode", "asymmetric"),
                              Attribute::String("nearest_mode", "floor")}));
  ASSERT_TRUE(rn.ok()) << rn.status().ToString();
  ExpectClose((*rn)[0], {1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4});
  // Upsample-9 nearest gives the same.
  auto ru = RunOpEager("Upsample", 9, {small, s2}, 1);
  ASSERT_TRUE(ru.ok()) << ru.status().ToString();
  ExpectClose((*ru)[0], {1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4});
  // Half-pixel linear x2 along one axis of [0, 4]: coords -0.25, 0.25, 0.75, 1.25 -> edge-clamped.
  auto rl = RunOpEager(
      "Resize", 13,
      {Tensor::FromVector<float>({0, 4}, {1, 2}), Tensor(), Tensor::FromVector<float>({1, 2}, {2})},
      1, Attrs({Attribute::String("mode", "linear")}));
  ASSERT_TRUE(rl.ok()) << rl.status().ToString();
  ExpectClose((*rl)[0], {0, 1, 3, 4});
  EXPECT_FALSE(
      RunOpEager("Resize", 13, {small, Tensor(), s2}, 1, Attrs({Attribute::String("mode", "bicubic")})).ok());
}

TEST(RefNn, TrainingDropoutReproducesNumpySeededMask) {
  // numpy: np.random.seed(0); np.random.uniform(0, 1, 5) =
  //   [0.5488135, 0.71518937, 0.60276338, 0.54488318, 0.4236548]; mask = u >= 0.55.
  Tensor x = Tensor::FromVector<float>({1, 2, 3, 4, 5}, {5});
  Tensor ratio = Tensor::FromVector<float>({0.55f}, {});
  Tensor train = Tensor::FromVector<bool>({true}, {});
  auto r = RunOpEager("Dropout", 13, {x, ratio, train}, 2, Attrs({Attribute::Int("seed", 0)}));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const double scale = 1.0f / (1.0f - 0.55f);
  ExpectClose((*r)[0], {0, 2 * scale, 3 * scale, 0, 0});
  ExpectClose((*r)[1], {0, 1, 1, 0, 0});
  EXPECT_EQ((*r)[1].type(), ElementType::kBool);
  // Inference is the identity.
  auto ri = RunOpEager("Dropout", 13, {x}, 1);
  ASSERT_TRUE(ri.ok());
  ExpectClose((*ri)[0], {1, 2, 3, 4, 5});
}

TEST(RefNn, EinsumHandlesTracesDiagonalsAndImplicitOutput) {
  Tensor m = Tensor::FromVector<float>({1, 2, 3, 4}, {2, 2});
  auto trace = RunOpEager("Einsum", 12, {m}, 1, Attrs({Attribute::String("equation", "ii")}));
  ASSERT_TRUE(trace.ok()) << trace.status().ToString();
  EXPECT_EQ((*trace)[0].shape(), Shape{});
  ExpectClose((*trace)[0], {5});
  auto diag = RunOpEager("Einsum", 12, {m}, 1, Attrs({Attribute::String("equation", "ii->i")}));
  ASSERT_TRUE(diag.ok());
  ExpectClose((*diag)[0], {1, 4});
  // Implicit output of "ij,jk" is "ik": a matrix product.
  auto mm = RunOpEager("Einsum", 12, {m, m}, 1, Attrs({Attribute::String("equation", "ij,jk")}));
  ASSERT_TRUE(mm.ok());
  ExpectClose((*mm)[0], {7, 10, 15, 22});
  // Ellipsis batch transpose.
  Tensor b = Tensor::FromVector<float>({1, 2, 3, 4, 5, 6, 7, 8}, {2, 2, 2});
  auto bt = RunOpEager("Einsum", 12, {b}, 1, Attrs({Attribute::String("equation", "...ij->...ji")}));
  ASSERT_TRUE(bt.ok()) << bt.status().ToString();
  ExpectClose((*bt)[0], {1, 3, 2, 4, 5, 7, 6, 8});
  EXPECT_FALSE(RunOpEager("Einsum", 12, {m}, 1, Attrs({Attribute::String("equation", "ijk")})).ok());
}

Result<std::vector<TypeInfo>> Infer(const std::string& op, int opset, std::vector<TypeInfo> ins,
                                    size_t outs, Attributes attrs = {},
                                    std::vector<const Tensor*> values = {}) {
  Node n;
  n.name = "n";
  n.op_type = op;
  n.opset = opset;
  n.attrs = std::move(attrs);
  for (size_t i = 0; i < ins.size(); ++i) n.inputs.push_back(ValueId(static_cast<uint32_t>(i)));
  for (size_t i = 0; i < outs; ++i) n.outputs.push_back(ValueId(static_cast<uint32_t>(10 + i)));
  values.resize(ins.size(), nullptr);
  InferContext ctx(n, std::move(ins), std::move(values));
  KILN_RETURN_IF_ERROR(InferNode(ctx));
  return ctx.outputs();
}

TEST(RefNn, InferenceGivesConvPoolMatMulAndResizeShapes) {
  const ElementType f = ElementType::kF32;
  auto conv = Infer(
      "Conv", 13,
      {TypeInfo{f, DimVector{Dim::Symbol("N"), 3, 640, 640}}, TypeInfo{f, DimVector{16, 3, 3, 3}}},
      1, Attrs({Attribute::Ints("strides", {2, 2}), Attribute::Ints("pads", {1, 1, 1, 1})}));
  ASSERT_TRUE(conv.ok()) << conv.status().ToString();
  EXPECT_EQ((*conv)[0].ToString(),
            TypeInfo({f, DimVector{Dim::Symbol("N"), 16, 320, 320}}).ToString());
  auto pool = Infer("MaxPool", 12, {TypeInfo{f, DimVector{1, 3, 5, 5}}}, 2,
                    Attrs({Attribute::Ints("kernel_shape", {2, 2}), Attribute::Ints("strides", {2, 2}),
                           Attribute::Int("ceil_mode", 1)}));
  ASSERT_TRUE(pool.ok());
  EXPECT_EQ((*pool)[0].static_shape(), (Shape{1, 3, 3, 3}));
  EXPECT_EQ((*pool)[1].type, ElementType::kI64);
  auto mm =
      Infer("MatMul", 13, {TypeInfo{f, DimVector{2, 1, 4, 3}}, TypeInfo{f, DimVector{5, 3, 7}}}, 1);
  ASSERT_TRUE(mm.ok());
  EXPECT_EQ((*mm)[0].static_shape(), (Shape{2, 5, 4, 7}));
  EXPECT_FALSE(
      Infer("MatMul", 13, {TypeInfo{f, DimVector{2, 3}}, TypeInfo{f, DimVector{4, 5}}}, 1).ok());
  Tensor scales = Tensor::FromVector<float>({1, 1, 2, 2}, {4});
  auto rs = Infer("Resize", 13,
                  {TypeInfo{f, DimVector{1, 8, 10, 12}}, TypeInfo{}, TypeInfo{f, DimVector{4}}}, 1,
                  {}, {nullptr, nullptr, &scales});
  ASSERT_TRUE(rs.ok()) << rs.status().ToString();
  EXPECT_EQ((*rs)[0].static_shape(), (Shape{1, 8, 20, 24}));
  auto ein = Infer("Einsum", 12, {TypeInfo{f, DimVector{2, 3, 4}}, TypeInfo{f, DimVector{2, 4, 5}}},
                   1, Attrs({Attribute::String("equation", "bij,bjk->bik")}));
  ASSERT_TRUE(ein.ok());
  EXPECT_EQ((*ein)[0].static_shape(), (Shape{2, 3, 5}));
}

}  // namespace
}  // namespace kiln
