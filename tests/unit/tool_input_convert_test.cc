// `kiln run -i x=f32.npy` on an f16 input: MakeInputs converts float data to the declared type.
#include <gtest/gtest.h>

#include "kiln/tool_util.h"

namespace kiln::cli {
namespace {

TEST(ToolInputs, FloatDataConvertedToDeclaredType) {
  Graph g;
  ValueId x = g.AddValue("x", ElementType::kF16, DimVector{Dim(3)});
  g.MarkInput(x);
  std::map<std::string, Tensor> given;
  given["x"] = Tensor::FromVector<float>({0.5f, -2.0f, 0.1f}, {3});
  auto inputs = MakeInputs(g, given, {}, 0, false);
  ASSERT_TRUE(inputs.ok()) << inputs.status().ToString();
  const Tensor& t = (*inputs)[0].second;
  ASSERT_EQ(t.type(), ElementType::kF16);
  EXPECT_EQ(static_cast<float>(t.data<Half>()[1]), -2.0f);
  EXPECT_EQ(t.data<Half>()[2].bits, Half(0.1f).bits);
  // Integer data is not converted: the session's type check reports it.
  given["x"] = Tensor::FromVector<int32_t>({1, 2, 3}, {3});
  auto ints = MakeInputs(g, given, {}, 0, false);
  ASSERT_TRUE(ints.ok());
  EXPECT_EQ((*ints)[0].second.type(), ElementType::kI32);
}

// And back: f16 data (e.g. saved from an fp16 program's output) into an f32 input.
TEST(ToolInputs, HalfDataConvertedToFloatInput) {
  Graph g;
  ValueId x = g.AddValue("x", ElementType::kF32, DimVector{Dim(2)});
  g.MarkInput(x);
  std::map<std::string, Tensor> given;
  Tensor h = Tensor::Allocate(ElementType::kF16, {2}).value();
  h.data<Half>()[0] = Half(0.1f);
  h.data<Half>()[1] = Half(-3.5f);
  given["x"] = h;
  auto inputs = MakeInputs(g, given, {}, 0, false);
  ASSERT_TRUE(inputs.ok()) << inputs.status().ToString();
  const Tensor& t = (*inputs)[0].second;
  ASSERT_EQ(t.type(), ElementType::kF32);
  EXPECT_EQ(t.data<float>()[0], static_cast<float>(Half(0.1f)));  // the f16 value, exactly
  EXPECT_EQ(t.data<float>()[1], -3.5f);
}

}  // namespace
}  // namespace kiln::cli
