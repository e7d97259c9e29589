// Test inputs shaped like what the OCR models see: a light page with dark text-like strokes (on
// noise PP-OCR det's output is ~0 everywhere, so a comparison of it checks little).
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace kiln::testing {

// [1, 3, h, w], normalised like PaddleOCR's input (ink -1.7, paper 1.9); `phase` shifts the
// strokes (different pages for calibration and evaluation).
inline Tensor TextPage(int64_t h, int64_t w, int64_t phase = 0) {
  Tensor t = Tensor::Allocate(ElementType::kF32, {1, 3, h, w}).value();
  for (int64_t c = 0; c < 3; ++c) {
    for (int64_t y = 0; y < h; ++y) {
      for (int64_t x = 0; x < w; ++x) {
        const int64_t yy = y + 5 * phase, xx = x + 7 * phase;
        const bool ink = (yy % 32) >= 10 && (yy % 32) < 22 && (xx % 48) < 36 && (xx / 3) % 3 != 0;
        t.data<float>()[(c * h + y) * w + x] = ink ? -1.7f : 1.9f;
      }
    }
  }
  return t;
}

}  // namespace kiln::testing
