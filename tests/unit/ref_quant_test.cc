// Tests of the reference quantization kernels against hand-computed values.
#include <gtest/gtest.h>

#include "backends/ref/eager.h"
#include "ir/op_schema.h"

namespace kiln {
namespace {

template <typename T>
std::vector<T> Vec(const Tensor& t) {
  return std::vector<T>(t.data<T>(), t.data<T>() + t.size());
}

TEST(RefQuant, QuantizeRoundsHalfToEvenAndSaturates) {
  const Tensor x = Tensor::FromVector<float>({0.5f, 1.5f, 2.5f, -0.5f, 300.f, -300.f}, {6});
  const Tensor scale = Tensor::FromVector<float>({1.0f}, {});
  auto u = RunOpEager("QuantizeLinear", 13, {x, scale}, 1);
  ASSERT_TRUE(u.ok()) << u.status().ToString();
  EXPECT_EQ((*u)[0].type(), ElementType::kU8);
  EXPECT_EQ(Vec<uint8_t>((*u)[0]), (std::vector<uint8_t>{0, 2, 2, 0, 255, 0}));
  auto s = RunOpEager("QuantizeLinear", 13, {x, scale, Tensor::FromVector<int8_t>({1}, {})}, 1);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(Vec<int8_t>((*s)[0]), (std::vector<int8_t>{1, 3, 3, 1, 127, -128}));
}

TEST(RefQuant, PerAxisQuantizeAndDequantize) {
  // x [2, 2], axis 0: row 0 scale 0.5 zp 10, row 1 scale 2 zp 20.
  const Tensor x = Tensor::FromVector<float>({1, -1, 4, 9}, {2, 2});
  const Tensor scale = Tensor::FromVector<float>({0.5f, 2.0f}, {2});
  const Tensor zp = Tensor::FromVector<uint8_t>({10, 20}, {2});
  Attributes attrs;
  attrs.Add(Attribute::Int("axis", 0));
  auto q = RunOpEager("QuantizeLinear", 13, {x, scale, zp}, 1, attrs);
  ASSERT_TRUE(q.ok()) << q.status().ToString();
  EXPECT_EQ(Vec<uint8_t>((*q)[0]), (std::vector<uint8_t>{12, 8, 22, 24}));  // 9/2 = 4.5 -> 4
  auto d = RunOpEager("DequantizeLinear", 13, {(*q)[0], scale, zp}, 1, attrs);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(Vec<float>((*d)[0]), (std::vector<float>{1, -1, 4, 8}));
  // A scale of the wrong length is an error, not a crash.
  const Tensor bad = Tensor::FromVector<float>({1, 2, 3}, {3});
  EXPECT_FALSE(RunOpEager("QuantizeLinear", 13, {x, bad}, 1, attrs).ok());
}

TEST(RefQuant, DynamicQuantizeMatchesSpecExample) {
  const Tensor x = Tensor::FromVector<float>({0, 2, -3, -2.5f, 1.34f, 0.5f}, {6});
  auto r = RunOpEager("DynamicQuantizeLinear", 11, {x}, 3);
  ASSERT_TRUE(r.ok());
  // In float32, scale = 5 / 255 = 0.019607844 and -2.5 / scale = -127.49999, so 153 - 127 = 26.
  EXPECT_EQ(Vec<uint8_t>((*r)[0]), (std::vector<uint8_t>{153, 255, 0, 26, 221, 179}));
  EXPECT_NEAR((*r)[1].data<float>()[0], 0.0196078438f, 1e-9);
  EXPECT_EQ((*r)[2].data<uint8_t>()[0], 153);
}

TEST(RefQuant, MatMulIntegerSubtractsZeroPoints) {
  const Tensor a = Tensor::FromVector<uint8_t>({1, 2, 3, 4}, {2, 2});
  const Tensor b = Tensor::FromVector<int8_t>({1, -1, 2, 5}, {2, 2});
  auto r = RunOpEager(
      "MatMulInteger", 10,
      {a, b, Tensor::FromVector<uint8_t>({1}, {}), Tensor::FromVector<int8_t>({1}, {})}, 1);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  // (A - 1) = [[0, 1], [2, 3]], (B - 1) = [[0, -2], [1, 4]]
  EXPECT_EQ(Vec<int32_t>((*r)[0]), (std::vector<int32_t>{1, 4, 3, 8}));
}

TEST(RefQuant, QLinearMatMulRequantizes) {
  const Tensor a = Tensor::FromVector<uint8_t>({2, 4}, {1, 2});
  const Tensor b = Tensor::FromVector<uint8_t>({3, 5}, {2, 1});
  const Tensor one = Tensor::FromVector<float>({1.0f}, {});
  const Tensor zero = Tensor::FromVector<uint8_t>({0}, {});
  const Tensor y_scale = Tensor::FromVector<float>({4.0f}, {});
  const Tensor y_zp = Tensor::FromVector<uint8_t>({100}, {});
  auto r = RunOpEager("QLinearMatMul", 10, {a, one, zero, b, one, zero, y_scale, y_zp}, 1);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  // acc = 2*3 + 4*5 = 26; 26 / 4 = 6.5 -> 6 (half to even); + 100
  EXPECT_EQ(Vec<uint8_t>((*r)[0]), (std::vector<uint8_t>{106}));
}

TEST(RefQuant, ConvIntegerPadsWithZeroPoint) {
  // x 2x2 = [[2, 3], [4, 5]] zp 1 -> [[1, 2], [3, 4]]; w 2x2 ones; pads 1 on every side.
  const Tensor x = Tensor::FromVector<uint8_t>({2, 3, 4, 5}, {1, 1, 2, 2});
  const Tensor w = Tensor::FromVector<uint8_t>({1, 1, 1, 1}, {1, 1, 2, 2});
  Attributes attrs;
  attrs.Add(Attribute::Ints("pads", {1, 1, 1, 1}));
  auto r = RunOpEager("ConvInteger", 10, {x, w, Tensor::FromVector<uint8_t>({1}, {})}, 1, attrs);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)[0].shape(), (Shape{1, 1, 3, 3}));
  EXPECT_EQ(Vec<int32_t>((*r)[0]), (std::vector<int32_t>{1, 3, 2, 4, 10, 6, 3, 7, 4}));
}

TEST(RefQuant, QLinearConvAddsBiasPerChannelScale) {
  const Tensor x = Tensor::FromVector<uint8_t>({10, 20}, {1, 1, 1, 2});
  const Tensor w = Tensor::FromVector<int8_t>({1, -1}, {2, 1, 1, 1});
  const Tensor xs = Tensor::FromVector<float>({0.5f}, {});
  const Tensor xz = Tensor::FromVector<uint8_t>({0}, {});
  const Tensor ws = Tensor::FromVector<float>({1.0f, 2.0f}, {2});
  const Tensor wz = Tensor::FromVector<int8_t>({0, 0}, {2});
  const Tensor ys = Tensor::FromVector<float>({1.0f}, {});
  const Tensor yz = Tensor::FromVector<uint8_t>({128}, {});
  const Tensor bias = Tensor::FromVector<int32_t>({2, 0}, {2});
  auto r = RunOpEager("QLinearConv", 10, {x, xs, xz, w, ws, wz, ys, yz, bias}, 1);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  // channel 0: (x + 2) * 0.5 -> 6, 11; channel 1: -x * 1.0 -> -10, -20.
  EXPECT_EQ(Vec<uint8_t>((*r)[0]), (std::vector<uint8_t>{134, 139, 118, 108}));
}

TEST(QuantInference, OutputTypesFollowZeroPoints) {
  Node n;
  n.op_type = "QuantizeLinear";
  n.opset = 13;
  n.outputs.resize(1);
  InferContext ctx(
      n,
      {TypeInfo{ElementType::kF32, DimVector{3}}, TypeInfo{ElementType::kF32, DimVector{}},
       TypeInfo{ElementType::kI8, DimVector{}}},
      {nullptr, nullptr, nullptr});
  {
    Status st = InferNode(ctx);
    ASSERT_TRUE(st.ok()) << st.ToString();
  }
  EXPECT_EQ(ctx.outputs()[0].type, ElementType::kI8);
  Node c;
  c.op_type = "ConvInteger";
  c.opset = 10;
  c.outputs.resize(1);
  c.attrs.Add(Attribute::Ints("strides", {2, 2}));
  InferContext cc(c,
                  {TypeInfo{ElementType::kU8, DimVector{1, 3, 9, 8}},
                   TypeInfo{ElementType::kU8, DimVector{4, 3, 3, 3}}},
                  {nullptr, nullptr});
  {
    Status st = InferNode(cc);
    ASSERT_TRUE(st.ok()) << st.ToString();
  }
  EXPECT_EQ(cc.outputs()[0].ToString(),
            TypeInfo({ElementType::kI32, DimVector{1, 4, 4, 3}}).ToString());
}

}  // namespace
}  // namespace kiln
