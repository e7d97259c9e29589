// Border copies of the XNNPACK backend (xnn_layout.cc): NCHW -> NHWC transposes against a plain
// index loop, for the 3-channel image case (its AVX-512 interleave and the portable loop), other
// channel counts, odd widths (vector tails) and a batch of 2, at 1 and 2 threads.
#include <gtest/gtest.h>

#include <pthreadpool.h>

#include <random>
#include <vector>

#include "backends/xnnpack/xnn_internal.h"
#include "core/cpu_features.h"

namespace kiln {
namespace {

TEST(XnnLayout, NchwToNhwcMatchesIndexLoop) {
  pthreadpool_t pool2 = pthreadpool_create(2);
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-1, 1);
  int ran = 0;
  for (CpuIsa isa : {CpuIsa::kPortable, CpuIsa::kAvx512}) {
    if (DetectedCpuIsa() < isa) continue;
    for (const Shape& shape : {Shape{1, 3, 224, 224}, Shape{2, 3, 7, 37}, Shape{1, 3, 1, 15},
                               Shape{1, 4, 9, 33}, Shape{1, 17, 5, 6}}) {
      const int64_t n = shape[0], c = shape[1], h = shape[2], w = shape[3];
      std::vector<float> src(static_cast<size_t>(n * c * h * w));
      for (float& v : src) v = u(rng);
      std::vector<float> want(src.size());
      for (int64_t b = 0; b < n; ++b)
        for (int64_t ch = 0; ch < c; ++ch)
          for (int64_t y = 0; y < h; ++y)
            for (int64_t x = 0; x < w; ++x)
              want[static_cast<size_t>(((b * h + y) * w + x) * c + ch)] =
                  src[static_cast<size_t>(((b * c + ch) * h + y) * w + x)];
      for (pthreadpool_t pool : {static_cast<pthreadpool_t>(nullptr), pool2}) {
        std::vector<float> got(src.size() + 8, 7.0f);
        xnn::PermuteCopy(src.data(), shape, {0, 2, 3, 1}, got.data(), pool, isa);
        for (size_t i = 0; i < want.size(); ++i) {
          ASSERT_EQ(got[i], want[i]) << CpuIsaName(isa) << " " << ShapeToString(shape) << " at " << i;
        }
        for (size_t i = want.size(); i < got.size(); ++i) ASSERT_EQ(got[i], 7.0f);
      }
      ++ran;
    }
  }
  pthreadpool_destroy(pool2);
  EXPECT_GE(ran, 5);
}

}  // namespace
}  // namespace kiln
