#include <gtest/gtest.h>

#include <cmath>

#include "core/half.h"
#include "core/tensor.h"

namespace kiln {
namespace {

TEST(Half, RoundTripsExactValuesAndRoundsToNearestEven) {
  for (float f : {0.0f, 1.0f, -2.5f, 65504.0f, 6.103515625e-05f, 5.960464477539063e-08f}) {
    EXPECT_EQ(static_cast<float>(Half(f)), f) << f;
  }
  // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties go to the even mantissa (1.0).
  EXPECT_EQ(static_cast<float>(Half(1.0f + std::ldexp(1.0f, -11))), 1.0f);
  EXPECT_EQ(static_cast<float>(Half(1.0f + 3 * std::ldexp(1.0f, -11))), 1.0f + std::ldexp(1.0f, -9));
  EXPECT_TRUE(std::isinf(static_cast<float>(Half(65520.0f))));
  EXPECT_EQ(static_cast<float>(Half(65519.0f)), 65504.0f);
  EXPECT_TRUE(std::isnan(static_cast<float>(Half(NAN))));
  // Every half bit pattern survives half -> float -> half.
  for (uint32_t b = 0; b < 65536; ++b) {
    Half h = Half::FromBits(static_cast<uint16_t>(b));
    float f = h;
    if (std::isnan(f)) continue;
    EXPECT_EQ(Half(f).bits, h.bits) << b;
  }
}

TEST(Tensor, CheckedNumElementsRejectsOverflowAndNegativeDims) {
  EXPECT_FALSE(CheckedNumElements({1 << 30, 1 << 30, 1 << 30}).ok());
  EXPECT_FALSE(CheckedNumElements({2, -1}).ok());
  EXPECT_EQ(CheckedNumElements({2, 3, 4}).value(), 24);
  EXPECT_EQ(CheckedNumElements({}).value(), 1);
}

}  // namespace
}  // namespace kiln
