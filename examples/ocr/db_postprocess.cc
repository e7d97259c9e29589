#include "db_postprocess.h"

#include <polyclipping/clipper.hpp>

#include <algorithm>
#include <cmath>

namespace ocr {
namespace {

float Cross(Point o, Point a, Point b) { return (a.x - o.x) * (b.y - o.y) - (a.y - o.y) * (b.x - o.x); }

// Andrew's monotone chain; counter-clockwise (in a y-down frame: clockwise on screen).
std::vector<Point> ConvexHull(std::vector<Point> p) {
  std::sort(p.begin(), p.end(), [](Point a, Point b) { return a.x < b.x || (a.x == b.x && a.y < b.y); });
  p.erase(std::unique(p.begin(), p.end(), [](Point a, Point b) { return a.x == b.x && a.y == b.y; }),
          p.end());
  if (p.size() < 3) return p;
  std::vector<Point> h(2 * p.size());
  size_t k = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    while (k >= 2 && Cross(h[k - 2], h[k - 1], p[i]) <= 0) --k;
    h[k++] = p[i];
  }
  for (size_t i = p.size() - 1, t = k + 1; i > 0; --i) {
    while (k >= t && Cross(h[k - 2], h[k - 1], p[i - 1]) <= 0) --k;
    h[k++] = p[i - 1];
  }
  h.resize(k - 1);
  return h;
}

// PaddleOCR's get_mini_boxes order: by x; of the two leftmost the upper is top-left, of the two
// rightmost the upper is top-right.
std::array<Point, 4> OrderCorners(std::array<Point, 4> c) {
  std::sort(c.begin(), c.end(), [](Point a, Point b) { return a.x < b.x; });
  Point tl = c[0], bl = c[1], tr = c[2], br = c[3];
  if (c[1].y < c[0].y) std::swap(tl, bl);
  if (c[3].y < c[2].y) std::swap(tr, br);
  return {tl, tr, br, bl};
}

// Mean probability over the pixels inside the (convex) box, within its bounding rectangle.
float BoxScore(const float* prob, int w, int h, const std::array<Point, 4>& box) {
  float x0 = box[0].x, x1 = box[0].x, y0 = box[0].y, y1 = box[0].y;
  for (const Point& p : box) {
    x0 = std::min(x0, p.x), x1 = std::max(x1, p.x), y0 = std::min(y0, p.y), y1 = std::max(y1, p.y);
  }
  const int xmin = std::clamp(static_cast<int>(std::floor(x0)), 0, w - 1);
  const int xmax = std::clamp(static_cast<int>(std::ceil(x1)), 0, w - 1);
  const int ymin = std::clamp(static_cast<int>(std::floor(y0)), 0, h - 1);
  const int ymax = std::clamp(static_cast<int>(std::ceil(y1)), 0, h - 1);
  double sum = 0;
  int n = 0;
  for (int y = ymin; y <= ymax; ++y) {
    for (int x = xmin; x <= xmax; ++x) {
      const Point p{static_cast<float>(x), static_cast<float>(y)};
      bool inside = true, pos = false, neg = false;
      for (int i = 0; i < 4 && inside; ++i) {
        const float c = Cross(box[i], box[(i + 1) % 4], p);
        // Half a pixel of slack: pixels the box's edge passes through count, as a filled polygon.
        const float len = std::hypot(box[(i + 1) % 4].x - box[i].x, box[(i + 1) % 4].y - box[i].y);
        if (c > 0.5f * len) pos = true;
        if (c < -0.5f * len) neg = true;
        inside = !(pos && neg);
      }
      if (inside) {
        sum += prob[static_cast<size_t>(y) * w + x];
        ++n;
      }
    }
  }
  return n > 0 ? static_cast<float>(sum / n) : 0.f;
}

// The box grown by area * ratio / perimeter (a rounded offset); empty when Clipper returns
// nothing or several pieces.
std::vector<Point> Unclip(const std::array<Point, 4>& box, float ratio) {
  double area = 0, perimeter = 0;
  for (int i = 0; i < 4; ++i) {
    const Point a = box[i], b = box[(i + 1) % 4];
    area += a.x * b.y - b.x * a.y;
    perimeter += std::hypot(b.x - a.x, b.y - a.y);
  }
  area = std::fabs(area) / 2;
  if (perimeter <= 0) return {};
  const double distance = area * ratio / perimeter;
  // Clipper works on integers: a fixed scale keeps sub-pixel precision.
  constexpr double kScale = 16;
  ClipperLib::Path path;
  for (const Point& p : box) {
    path.push_back({static_cast<ClipperLib::cInt>(std::lround(p.x * kScale)),
                    static_cast<ClipperLib::cInt>(std::lround(p.y * kScale))});
  }
  ClipperLib::ClipperOffset offset;
  offset.AddPath(path, ClipperLib::jtRound, ClipperLib::etClosedPolygon);
  ClipperLib::Paths out;
  offset.Execute(out, distance * kScale);
  if (out.size() != 1) return {};
  std::vector<Point> poly;
  for (const ClipperLib::IntPoint& p : out[0]) {
    poly.push_back({static_cast<float>(p.X / kScale), static_cast<float>(p.Y / kScale)});
  }
  return poly;
}

// 8-connected regions of the binary map, each as its boundary pixels (a pixel with a 4-neighbour
// outside the region), which have the same convex hull as the region.
std::vector<std::vector<Point>> Regions(const std::vector<uint8_t>& bitmap, int w, int h) {
  std::vector<int> label(bitmap.size(), -1);
  std::vector<std::vector<Point>> regions;
  std::vector<int> stack;
  for (int start = 0; start < w * h; ++start) {
    if (!bitmap[start] || label[start] >= 0) continue;
    const int id = static_cast<int>(regions.size());
    regions.emplace_back();
    label[start] = id;
    stack.assign(1, start);
    while (!stack.empty()) {
      const int i = stack.back();
      stack.pop_back();
      const int x = i % w, y = i / w;
      bool boundary = false;
      for (int dy = -1; dy <= 1; ++dy) {
        for (int dx = -1; dx <= 1; ++dx) {
          if (dx == 0 && dy == 0) continue;
          const int nx = x + dx, ny = y + dy;
          const bool in = nx >= 0 && ny >= 0 && nx < w && ny < h && bitmap[ny * w + nx];
          if (!in) {
            if (dx == 0 || dy == 0) boundary = true;
            continue;
          }
          const int j = ny * w + nx;
          if (label[j] < 0) {
            label[j] = id;
            stack.push_back(j);
          }
        }
      }
      if (boundary) regions[id].push_back({static_cast<float>(x), static_cast<float>(y)});
    }
  }
  return regions;
}

}  // namespace

std::array<Point, 4> MinAreaRect(std::vector<Point> points, float* short_side) {
  std::vector<Point> hull = ConvexHull(std::move(points));
  if (hull.empty()) hull.push_back({0, 0});
  std::array<Point, 4> best{};
  double best_area = -1;
  float best_short = 0;
  const size_t n = hull.size();
  for (size_t i = 0; i < std::max<size_t>(n, 1); ++i) {
    // The rectangle with one side along hull edge i (any direction when the hull is a point).
    float ux = 1, uy = 0;
    if (n >= 2) {
      const Point a = hull[i], b = hull[(i + 1) % n];
      const float len = std::hypot(b.x - a.x, b.y - a.y);
      if (len == 0) continue;
      ux = (b.x - a.x) / len, uy = (b.y - a.y) / len;
    }
    float min_u = 1e30f, max_u = -1e30f, min_v = 1e30f, max_v = -1e30f;
    for (const Point& p : hull) {
      const float u = p.x * ux + p.y * uy, v = -p.x * uy + p.y * ux;
      min_u = std::min(min_u, u), max_u = std::max(max_u, u);
      min_v = std::min(min_v, v), max_v = std::max(max_v, v);
    }
    const double area = static_cast<double>(max_u - min_u) * (max_v - min_v);
    if (best_area < 0 || area < best_area) {
      best_area = area;
      auto corner = [&](float u, float v) { return Point{u * ux - v * uy, u * uy + v * ux}; };
      best = {corner(min_u, min_v), corner(max_u, min_v), corner(max_u, max_v), corner(min_u, max_v)};
      best_short = std::min(max_u - min_u, max_v - min_v);
    }
  }
  if (short_side) *short_side = best_short;
  return OrderCorners(best);
}

std::vector<TextBox> DbBoxes(const float* prob, int map_width, int map_height, int image_width,
                             int image_height, const DbOptions& o) {
  const int w = map_width, h = map_height;
  std::vector<uint8_t> bitmap(static_cast<size_t>(w) * h);
  for (size_t i = 0; i < bitmap.size(); ++i) bitmap[i] = prob[i] > o.threshold;
  std::vector<std::vector<Point>> regions = Regions(bitmap, w, h);
  if (static_cast<int>(regions.size()) > o.max_candidates) regions.resize(o.max_candidates);
  std::vector<TextBox> boxes;
  for (const std::vector<Point>& region : regions) {
    float short_side = 0;
    const std::array<Point, 4> box = MinAreaRect(region, &short_side);
    if (short_side < o.min_size) continue;
    const float score = BoxScore(prob, w, h, box);
    if (score < o.box_threshold) continue;
    std::vector<Point> grown = Unclip(box, o.unclip_ratio);
    if (grown.empty()) continue;
    std::array<Point, 4> out = MinAreaRect(grown, &short_side);
    if (short_side < o.min_size + 2) continue;
    TextBox t;
    for (int k = 0; k < 4; ++k) {
      t.corners[k].x = std::clamp(std::round(out[k].x / w * image_width), 0.f,
                                  static_cast<float>(image_width));
      t.corners[k].y = std::clamp(std::round(out[k].y / h * image_height), 0.f,
                                  static_cast<float>(image_height));
    }
    t.score = score;
    boxes.push_back(t);
  }
  // Reading order (PaddleOCR's sorted_boxes): by top-left y, then x for boxes within 10 px.
  std::sort(boxes.begin(), boxes.end(), [](const TextBox& a, const TextBox& b) {
    return a.corners[0].y < b.corners[0].y ||
           (a.corners[0].y == b.corners[0].y && a.corners[0].x < b.corners[0].x);
  });
  for (size_t i = 0; i + 1 < boxes.size(); ++i) {
    for (size_t j = i + 1; j-- > 0;) {
      if (std::fabs(boxes[j + 1].corners[0].y - boxes[j].corners[0].y) < 10 &&
          boxes[j + 1].corners[0].x < boxes[j].corners[0].x) {
        std::swap(boxes[j], boxes[j + 1]);
      } else {
        break;
      }
    }
  }
  return boxes;
}

}  // namespace ocr
