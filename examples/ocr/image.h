// Images for the OCR example: 8-bit RGB pixels loaded from PNG (libpng) or JPEG (libjpeg),
// bilinear resizing, cropping a rotated rectangle, and 180/90-degree rotations.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace ocr {

struct Point {
  float x = 0, y = 0;
};

struct Image {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;  // width * height * 3, row-major
  const uint8_t* at(int x, int y) const { return &rgb[(static_cast<size_t>(y) * width + x) * 3]; }
};

// Loads a PNG or JPEG file (told apart by its first bytes); an error message in *error on failure.
bool LoadImage(const std::string& path, Image* out, std::string* error);

// Bilinear resize (pixel centres aligned, as OpenCV's INTER_LINEAR).
Image Resize(const Image& src, int width, int height);

// The quadrilateral q (top-left, top-right, bottom-right, bottom-left) mapped onto an upright
// image of its width x height (bilinear, edge pixels repeated outside the source), as
// PaddleOCR's get_rotate_crop_image for rectangles.
Image CropQuad(const Image& src, const std::array<Point, 4>& q);

Image Rotate180(const Image& src);
Image Rotate90CounterClockwise(const Image& src);

}  // namespace ocr
