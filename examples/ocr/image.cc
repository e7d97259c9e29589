#include "image.h"

#include <jpeglib.h>
#include <png.h>

#include <algorithm>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <memory>

namespace ocr {
namespace {

struct FileCloser {
  void operator()(FILE* f) const { std::fclose(f); }
};

bool LoadPng(FILE* f, Image* out, std::string* error) {
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_stdio(&image, f)) {
    *error = std::string("not a readable PNG: ") + image.message;
    return false;
  }
  image.format = PNG_FORMAT_RGB;
  out->width = static_cast<int>(image.width);
  out->height = static_cast<int>(image.height);
  out->rgb.resize(PNG_IMAGE_SIZE(image));
  if (!png_image_finish_read(&image, nullptr, out->rgb.data(), 0, nullptr)) {
    *error = std::string("PNG decoding failed: ") + image.message;
    png_image_free(&image);
    return false;
  }
  return true;
}

struct JpegError {
  jpeg_error_mgr mgr;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

void OnJpegError(j_common_ptr cinfo) {
  auto* e = reinterpret_cast<JpegError*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, e->message);
  std::longjmp(e->jump, 1);
}

bool LoadJpeg(FILE* f, Image* out, std::string* error) {
  jpeg_decompress_struct cinfo;
  JpegError err;
  cinfo.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = OnJpegError;
  if (setjmp(err.jump)) {
    *error = std::string("JPEG decoding failed: ") + err.message;
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_stdio_src(&cinfo, f);
  jpeg_read_header(&cinfo, TRUE);
  cinfo.out_color_space = JCS_RGB;
  jpeg_start_decompress(&cinfo);
  out->width = static_cast<int>(cinfo.output_width);
  out->height = static_cast<int>(cinfo.output_height);
  out->rgb.resize(static_cast<size_t>(out->width) * out->height * 3);
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = &out->rgb[static_cast<size_t>(cinfo.output_scanline) * out->width * 3];
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return true;
}

float Sample(const Image& src, float x, float y, int c) {
  x = std::clamp(x, 0.f, static_cast<float>(src.width - 1));
  y = std::clamp(y, 0.f, static_cast<float>(src.height - 1));
  const int x0 = static_cast<int>(x), y0 = static_cast<int>(y);
  const int x1 = std::min(x0 + 1, src.width - 1), y1 = std::min(y0 + 1, src.height - 1);
  const float fx = x - x0, fy = y - y0;
  const float a = src.at(x0, y0)[c] * (1 - fx) + src.at(x1, y0)[c] * fx;
  const float b = src.at(x0, y1)[c] * (1 - fx) + src.at(x1, y1)[c] * fx;
  return a * (1 - fy) + b * fy;
}

uint8_t ToByte(float v) { return static_cast<uint8_t>(std::clamp(std::lround(v), 0L, 255L)); }

}  // namespace

bool LoadImage(const std::string& path, Image* out, std::string* error) {
  std::unique_ptr<FILE, FileCloser> f(std::fopen(path.c_str(), "rb"));
  if (!f) {
    *error = "cannot open " + path;
    return false;
  }
  unsigned char magic[8] = {0};
  const size_t n = std::fread(magic, 1, sizeof(magic), f.get());
  std::rewind(f.get());
  bool ok = false;
  if (n >= 8 && png_sig_cmp(magic, 0, 8) == 0) {
    ok = LoadPng(f.get(), out, error);
  } else if (n >= 3 && magic[0] == 0xFF && magic[1] == 0xD8 && magic[2] == 0xFF) {
    ok = LoadJpeg(f.get(), out, error);
  } else {
    *error = "not a PNG or JPEG file";
  }
  if (ok && (out->width <= 0 || out->height <= 0)) {
    *error = "the image is empty";
    ok = false;
  }
  if (!ok) *error = path + ": " + *error;
  return ok;
}

Image Resize(const Image& src, int width, int height) {
  Image dst;
  dst.width = width;
  dst.height = height;
  dst.rgb.resize(static_cast<size_t>(width) * height * 3);
  const float sx = static_cast<float>(src.width) / width, sy = static_cast<float>(src.height) / height;
  for (int y = 0; y < height; ++y) {
    const float fy = (y + 0.5f) * sy - 0.5f;
    for (int x = 0; x < width; ++x) {
      const float fx = (x + 0.5f) * sx - 0.5f;
      uint8_t* p = &dst.rgb[(static_cast<size_t>(y) * width + x) * 3];
      for (int c = 0; c < 3; ++c) p[c] = ToByte(Sample(src, fx, fy, c));
    }
  }
  return dst;
}

Image CropQuad(const Image& src, const std::array<Point, 4>& q) {
  auto dist = [](Point a, Point b) { return std::hypot(a.x - b.x, a.y - b.y); };
  const int w = std::max(1, static_cast<int>(std::max(dist(q[0], q[1]), dist(q[3], q[2]))));
  const int h = std::max(1, static_cast<int>(std::max(dist(q[0], q[3]), dist(q[1], q[2]))));
  Image dst;
  dst.width = w;
  dst.height = h;
  dst.rgb.resize(static_cast<size_t>(w) * h * 3);
  // Bilinear interpolation of the four corners (exact for a parallelogram, which the boxes are).
  for (int y = 0; y < h; ++y) {
    const float v = (y + 0.5f) / h;
    for (int x = 0; x < w; ++x) {
      const float u = (x + 0.5f) / w;
      const float px = (1 - v) * ((1 - u) * q[0].x + u * q[1].x) + v * ((1 - u) * q[3].x + u * q[2].x);
      const float py = (1 - v) * ((1 - u) * q[0].y + u * q[1].y) + v * ((1 - u) * q[3].y + u * q[2].y);
      uint8_t* p = &dst.rgb[(static_cast<size_t>(y) * w + x) * 3];
      for (int c = 0; c < 3; ++c) p[c] = ToByte(Sample(src, px, py, c));
    }
  }
  return dst;
}

Image Rotate180(const Image& src) {
  Image dst = src;
  const size_t n = static_cast<size_t>(src.width) * src.height;
  for (size_t i = 0; i < n; ++i) {
    for (int c = 0; c < 3; ++c) dst.rgb[i * 3 + c] = src.rgb[(n - 1 - i) * 3 + c];
  }
  return dst;
}

Image Rotate90CounterClockwise(const Image& src) {
  Image dst;
  dst.width = src.height;
  dst.height = src.width;
  dst.rgb.resize(src.rgb.size());
  for (int y = 0; y < dst.height; ++y) {
    for (int x = 0; x < dst.width; ++x) {
      // dst(x, y) = src(W - 1 - y, x)
      const uint8_t* s = src.at(src.width - 1 - y, x);
      uint8_t* d = &dst.rgb[(static_cast<size_t>(y) * dst.width + x) * 3];
      d[0] = s[0], d[1] = s[1], d[2] = s[2];
    }
  }
  return dst;
}

}  // namespace ocr
