// ir/resize_target.h: Resize-18's axes and keep_aspect_ratio_policy expanded to every axis.
// Expected values are worked out by hand from the ONNX Resize-18 definition.
#include "ir/resize_target.h"

#include <gtest/gtest.h>

namespace kiln {
namespace {

TEST(ResizeTarget, ScalesForListedAxes) {
  const std::vector<double> scales = {0.5, 1.5};
  auto t = ExpandResizeTarget({1, 2, 6, 8}, {2, -1}, "stretch", &scales, nullptr);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->sizes, (std::vector<int64_t>{1, 2, 3, 12}));  // floor(6 * 0.5), floor(8 * 1.5)
  EXPECT_EQ(t->scales, (std::vector<double>{1, 1, 0.5, 1.5}));
}

TEST(ResizeTarget, SizesWithPolicies) {
  const std::vector<int64_t> sizes = {3, 10};
  // stretch: each axis to its size; scale = size / in.
  auto s = ExpandResizeTarget({1, 2, 6, 8}, {2, 3}, "stretch", nullptr, &sizes);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->sizes, (std::vector<int64_t>{1, 2, 3, 10}));
  EXPECT_EQ(s->scales, (std::vector<double>{1, 1, 0.5, 1.25}));
  // not_larger: one scale min(3/6, 10/8) = 0.5 -> 3 x 4.
  auto l = ExpandResizeTarget({1, 2, 6, 8}, {2, 3}, "not_larger", nullptr, &sizes);
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(l->sizes, (std::vector<int64_t>{1, 2, 3, 4}));
  EXPECT_EQ(l->scales, (std::vector<double>{1, 1, 0.5, 0.5}));
  // not_smaller: max = 1.25 -> round(7.5) = 8 x 10.
  auto m = ExpandResizeTarget({1, 2, 6, 8}, {2, 3}, "not_smaller", nullptr, &sizes);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->sizes, (std::vector<int64_t>{1, 2, 8, 10}));
}

TEST(ResizeTarget, Errors) {
  const std::vector<double> two = {1.0, 2.0};
  auto repeated = ExpandResizeTarget({1, 2, 6, 8}, {2, -2}, "stretch", &two, nullptr);
  ASSERT_FALSE(repeated.ok());
  EXPECT_NE(repeated.status().message().find("repeated"), std::string::npos);
  auto count = ExpandResizeTarget({1, 2, 6, 8}, {}, "stretch", &two, nullptr);
  ASSERT_FALSE(count.ok());
  EXPECT_NE(count.status().message().find("scales must hold 4 values"), std::string::npos);
  const std::vector<int64_t> sizes = {3, 10};
  auto policy = ExpandResizeTarget({1, 2, 6, 8}, {2, 3}, "fit", nullptr, &sizes);
  ASSERT_FALSE(policy.ok());
  EXPECT_NE(policy.status().message().find("keep_aspect_ratio_policy"), std::string::npos);
  auto range = ExpandResizeTarget({1, 2, 6, 8}, {4}, "stretch", &two, nullptr);
  ASSERT_FALSE(range.ok());
  EXPECT_NE(range.status().message().find("out of range"), std::string::npos);
}

}  // namespace
}  // namespace kiln
