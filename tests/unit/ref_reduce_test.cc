// Tests of the reference reduce kernels and their shape inference, against hand-computed values.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "backends/ref/eager.h"
#include "ir/infer_util.h"
#include "ir/op_schema.h"

namespace kiln {
namespace {

Tensor F32(std::vector<float> v, Shape s) { return Tensor::FromVector(v, std::move(s)); }

std::vector<float> Values(const Tensor& t) {
  std::vector<float> v;
  for (int64_t i = 0; i < t.size(); ++i) v.push_back(static_cast<float>(t.GetAsDouble(i)));
  return v;
}

TEST(RefReduce, SumWithAxesInputAtOpset13) {
  Attributes attrs;
  attrs.Add(Attribute::Int("keepdims", 0));
  auto r = RunOpEager("ReduceSum", 13,
                      {F32({1, 2, 3, 4, 5, 6}, {2, 3}), Tensor::FromVector<int64_t>({1}, {1})}, 1,
                      attrs);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)[0].shape(), (Shape{2}));
  EXPECT_EQ(Values((*r)[0]), (std::vector<float>{6, 15}));
}

TEST(RefReduce, SumWithAxesAttributeBeforeOpset13KeepsDims) {
  Attributes attrs;
  attrs.Add(Attribute::Ints("axes", {0}));
  auto r = RunOpEager("ReduceSum", 11, {F32({1, 2, 3, 4, 5, 6}, {2, 3})}, 1, attrs);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)[0].shape(), (Shape{1, 3}));
  EXPECT_EQ(Values((*r)[0]), (std::vector<float>{5, 7, 9}));
}

TEST(RefReduce, EmptyAxesReduceAllOrNothing) {
  auto all = RunOpEager("ReduceSum", 13, {F32({1, 2, 3, 4}, {2, 2})}, 1);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ((*all)[0].shape(), (Shape{1, 1}));
  EXPECT_EQ(Values((*all)[0]), (std::vector<float>{10}));
  Attributes noop;
  noop.Add(Attribute::Int("noop_with_empty_axes", 1));
  auto same = RunOpEager(
      "ReduceSum", 13, {F32({1, 2, 3, 4}, {2, 2}), Tensor::FromVector<int64_t>({}, {0})}, 1, noop);
  ASSERT_TRUE(same.ok());
  EXPECT_EQ((*same)[0].shape(), (Shape{2, 2}));
  EXPECT_EQ(Values((*same)[0]), (std::vector<float>{1, 2, 3, 4}));
}

TEST(RefReduce, EmptySetGivesIdentities) {
  Attributes attrs;
  attrs.Add(Attribute::Ints("axes", {1}));
  attrs.Add(Attribute::Int("keepdims", 0));
  const Tensor x = Tensor::Allocate(ElementType::kF32, {2, 0}).value();
  const float inf = std::numeric_limits<float>::infinity();
  struct Case {
    const char* op;
    float want;
  };
  for (const Case& c : {Case{"ReduceMax", -inf}, Case{"ReduceMin", inf}, Case{"ReduceProd", 1.0f},
                        Case{"ReduceSumSquare", 0.0f}, Case{"ReduceLogSumExp", -inf}}) {
    auto r = RunOpEager(c.op, 13, {x}, 1, attrs);
    ASSERT_TRUE(r.ok()) << c.op << ": " << r.status().ToString();
    EXPECT_EQ((*r)[0].shape(), (Shape{2})) << c.op;
    EXPECT_EQ(Values((*r)[0]), (std::vector<float>{c.want, c.want})) << c.op;
  }
}

TEST(RefReduce, FloatOpsMatchHandValues) {
  Attributes attrs;
  attrs.Add(Attribute::Ints("axes", {-1}));
  const Tensor x = F32({3, -4, 1, 2}, {2, 2});
  struct Case {
    const char* op;
    std::vector<float> want;
  };
  for (const Case& c :
       {Case{"ReduceL1", {7, 3}}, Case{"ReduceL2", {5, std::sqrt(5.0f)}},
        Case{"ReduceMean", {-0.5f, 1.5f}}, Case{"ReduceProd", {-12, 2}},
        Case{"ReduceLogSum", {NAN, std::log(3.0f)}}, Case{"ReduceSumSquare", {25, 5}}}) {
    auto r = RunOpEager(c.op, 13, {x}, 1, attrs);
    ASSERT_TRUE(r.ok()) << c.op;
    const auto got = Values((*r)[0]);
    for (size_t i = 0; i < got.size(); ++i) {
      if (std::isnan(c.want[i])) {
        EXPECT_TRUE(std::isnan(got[i])) << c.op;
      } else {
        EXPECT_NEAR(got[i], c.want[i], 1e-6) << c.op << " " << i;
      }
    }
  }
}

TEST(RefReduce, LogSumExpIsStableForLargeInputs) {
  auto r = RunOpEager("ReduceLogSumExp", 13, {F32({1000, 1000}, {2})}, 1);
  ASSERT_TRUE(r.ok());
  EXPECT_NEAR(Values((*r)[0])[0], 1000.0f + std::log(2.0f), 1e-3);
}

TEST(RefReduce, IntegersReduceExactly) {
  Attributes attrs;
  attrs.Add(Attribute::Int("keepdims", 0));
  const Tensor x = Tensor::FromVector<int32_t>({7, -2, 4, 2}, {4});
  auto mean = RunOpEager("ReduceMean", 13, {x}, 1, attrs);
  ASSERT_TRUE(mean.ok());
  EXPECT_EQ((*mean)[0].type(), ElementType::kI32);
  EXPECT_EQ((*mean)[0].data<int32_t>()[0], 2);  // 11 / 4 truncated
  auto mx = RunOpEager("ReduceMax", 13, {x}, 1, attrs);
  ASSERT_TRUE(mx.ok());
  EXPECT_EQ((*mx)[0].data<int32_t>()[0], 7);
  const Tensor big = Tensor::FromVector<int64_t>({int64_t{1} << 40, int64_t{1} << 40, 1}, {3});
  auto sum = RunOpEager("ReduceSum", 13, {big}, 1, attrs);
  ASSERT_TRUE(sum.ok());
  EXPECT_EQ((*sum)[0].data<int64_t>()[0], (int64_t{1} << 41) + 1);
}

TEST(RefReduce, RejectsBadAxes) {
  Attributes dup;
  dup.Add(Attribute::Ints("axes", {0, -2}));
  EXPECT_FALSE(RunOpEager("ReduceMean", 13, {F32({1, 2}, {1, 2})}, 1, dup).ok());
  Attributes range;
  range.Add(Attribute::Ints("axes", {2}));
  EXPECT_FALSE(RunOpEager("ReduceMean", 13, {F32({1, 2}, {1, 2})}, 1, range).ok());
}

TEST(ReduceInference, ShapesFromAttributesAndUnknownAxes) {
  Node n;
  n.op_type = "ReduceMean";
  n.opset = 13;
  n.attrs.Add(Attribute::Ints("axes", {1}));
  n.attrs.Add(Attribute::Int("keepdims", 0));
  n.outputs.resize(1);
  InferContext ctx(n, {TypeInfo{ElementType::kF32, DimVector{Dim::Symbol("N"), 3, 4}}}, {nullptr});
  {
    Status st = InferNode(ctx);
    ASSERT_TRUE(st.ok()) << st.ToString();
  }
  EXPECT_EQ(ctx.outputs()[0].ToString(),
            TypeInfo({ElementType::kF32, DimVector{Dim::Symbol("N"), 4}}).ToString());

  // ReduceSum with a non-constant axes input: rank is kept only with keepdims.
  Node s;
  s.op_type = "ReduceSum";
  s.opset = 13;
  s.outputs.resize(1);
  InferContext c2(
      s, {TypeInfo{ElementType::kF32, DimVector{2, 3}}, TypeInfo{ElementType::kI64, DimVector{1}}},
      {nullptr, nullptr});
  {
    Status st = InferNode(c2);
    ASSERT_TRUE(st.ok()) << st.ToString();
  }
  ASSERT_TRUE(c2.outputs()[0].shape.has_value());
  EXPECT_EQ(c2.outputs()[0].shape->size(), 2u);
  EXPECT_FALSE((*c2.outputs()[0].shape)[0].is_static());
}

}  // namespace
}  // namespace kiln
