// DB (differentiable binarization) post-processing of PP-OCR's text detector, written after
// PaddleOCR's DBPostProcess: threshold the probability map, take each connected region
// ("contour"), its minimum-area rectangle, the mean probability inside that rectangle (the box
// score), grow the rectangle by the unclip distance (area * ratio / perimeter, a rounded polygon
// offset by Clipper), take the grown polygon's minimum-area rectangle, and scale it back to the
// image's pixels.
#pragma once

#include <array>
#include <vector>

#include "image.h"

namespace ocr {

struct DbOptions {
  float threshold = 0.3f;      // probability that marks a text pixel
  float box_threshold = 0.6f;  // least mean probability inside a box
  float unclip_ratio = 2.0f;  // PaddleOCR's is 1.5; see examples/ocr/README.md
  int min_size = 3;            // shortest side of a box, in map pixels
  int max_candidates = 1000;
};

struct TextBox {
  std::array<Point, 4> corners;  // top-left, top-right, bottom-right, bottom-left (image pixels)
  float score = 0;
};

// prob: map_width x map_height probabilities (the det output); boxes in an image of
// image_width x image_height, in reading order (top to bottom, then left to right).
std::vector<TextBox> DbBoxes(const float* prob, int map_width, int map_height, int image_width,
                             int image_height, const DbOptions& options = {});

// The minimum-area rectangle around points (rotating calipers over the convex hull), its
// corners ordered as TextBox's; *short_side gets its shorter side.
std::array<Point, 4> MinAreaRect(std::vector<Point> points, float* short_side);

}  // namespace ocr
