// Reference kernels for detection and sampling ops: NonMaxSuppression, RoiAlign, MaxRoiPool,
// GridSample. Coordinates and interpolation are computed in double (RoiAlign, GridSample) and
// follow ONNX Runtime's (and, for GridSample, PyTorch's) definitions, which the ONNX
// conformance data was generated from.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "backends/ref/misc_internal.h"

namespace kiln::misc_ref {

namespace {

// A box as (y1, x1, y2, x2) with y1 <= y2 and x1 <= x2.
struct Box {
  double y1, x1, y2, x2;
};

Box ReadBox(const Tensor& boxes, int64_t i, bool center_point) {
  const double a = boxes.GetAsDouble(i * 4 + 0);
  const double b = boxes.GetAsDouble(i * 4 + 1);
  const double c = boxes.GetAsDouble(i * 4 + 2);
  const double d = boxes.GetAsDouble(i * 4 + 3);
  if (center_point) {  // [x_center, y_center, width, height]
    return {b - d / 2, a - c / 2, b + d / 2, a + c / 2};
  }
  return {std::min(a, c), std::min(b, d), std::max(a, c), std::max(b, d)};
}

// Intersection over union; 0 when either box is empty or they do not overlap.
double Iou(const Box& p, const Box& q) {
  const double iy1 = std::max(p.y1, q.y1);
  const double ix1 = std::max(p.x1, q.x1);
  const double iy2 = std::min(p.y2, q.y2);
  const double ix2 = std::min(p.x2, q.x2);
  if (iy2 <= iy1 || ix2 <= ix1) return 0;
  const double inter = (iy2 - iy1) * (ix2 - ix1);
  const double ap = (p.y2 - p.y1) * (p.x2 - p.x1);
  const double aq = (q.y2 - q.y1) * (q.x2 - q.x1);
  if (ap <= 0 || aq <= 0) return 0;
  return inter / (ap + aq - inter);
}

}  // namespace

Status NonMaxSuppression(KernelContext& ctx) {
  const Tensor* boxes = ctx.input(0);
  const Tensor* scores = ctx.input(1);
  if (boxes == nullptr || scores == nullptr) return ctx.Error("expected inputs boxes and scores");
  if (boxes->rank() != 3 || boxes->dim(2) != 4 || scores->rank() != 3 ||
      scores->dim(0) != boxes->dim(0) || scores->dim(2) != boxes->dim(1)) {
    return ctx.Error("expected boxes [B, S, 4] and scores [B, C, S], found " + boxes->Describe() +
                     " and " + scores->Describe());
  }
  const int64_t max_out =
      ctx.input(2) != nullptr && ctx.input(2)->size() > 0 ? ctx.input(2)->GetAsInt64(0) : 0;
  const double iou_threshold =
      ctx.input(3) != nullptr && ctx.input(3)->size() > 0 ? ctx.input(3)->GetAsDouble(0) : 0.0;
  const bool has_score_threshold = ctx.input(4) != nullptr && ctx.input(4)->size() > 0;
  const double score_threshold = has_score_threshold ? ctx.input(4)->GetAsDouble(0) : 0.0;
  const bool center = ctx.attrs().GetInt("center_point_box", 0) != 0;
  if (iou_threshold < 0 || iou_threshold > 1) {
    return ctx.Error("iou_threshold must be in [0, 1], found " + std::to_string(iou_threshold));
  }
  const int64_t nb = boxes->dim(0);
  const int64_t nc = scores->dim(1);
  const int64_t ns = boxes->dim(1);
  std::vector<int64_t> selected;  // triples
  for (int64_t b = 0; b < nb; ++b) {
    std::vector<Box> bx(static_cast<size_t>(ns));
    for (int64_t s = 0; s < ns; ++s)
      bx[static_cast<size_t>(s)] = ReadBox(*boxes, b * ns + s, center);
    for (int64_t c = 0; c < nc; ++c) {
      if (max_out <= 0) continue;
      std::vector<int64_t> cand;
      std::vector<double> sc(static_cast<size_t>(ns));
      for (int64_t s = 0; s < ns; ++s) {
        sc[static_cast<size_t>(s)] = scores->GetAsDouble((b * nc + c) * ns + s);
        if (!has_score_threshold || sc[static_cast<size_t>(s)] > score_threshold) cand.push_back(s);
      }
      // Highest score first; equal scores keep the lower box index first.
      std::stable_sort(cand.begin(), cand.end(), [&](int64_t p, int64_t q) {
        return sc[static_cast<size_t>(p)] > sc[static_cast<size_t>(q)];
      });
      std::vector<int64_t> kept;
      for (int64_t s : cand) {
        if (static_cast<int64_t>(kept.size()) >= max_out) break;
        bool suppressed = false;
        for (int64_t k : kept) {
          if (Iou(bx[static_cast<size_t>(s)], bx[static_cast<size_t>(k)]) > iou_threshold) {
            suppressed = true;
            break;
          }
        }
        if (suppressed) continue;
        kept.push_back(s);
        selected.insert(selected.end(), {b, c, s});
      }
    }
  }
  const int64_t n = static_cast<int64_t>(selected.size() / 3);
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.output(0, ElementType::kI64, {n, 3}));
  std::copy(selected.begin(), selected.end(), y->data<int64_t>());
  return Status::Ok();
}

Status RoiAlign(KernelContext& ctx) {
  const Tensor* x = ctx.input(0);
  const Tensor* rois = ctx.input(1);
  const Tensor* batch_idx = ctx.input(2);
  if (x == nullptr || rois == nullptr || batch_idx == nullptr) {
    return ctx.Error("expected inputs X, rois and batch_indices");
  }
  if (!IsFloating(x->type())) return ctx.UnsupportedType(x->type());
  if (x->rank() != 4 || rois->rank() != 2 || rois->dim(1) != 4 || batch_idx->rank() != 1 ||
      batch_idx->dim(0) != rois->dim(0)) {
    return ctx.Error("expected X [N, C, H, W], rois [R, 4], batch_indices [R], found " +
                     x->Describe() + ", " + rois->Describe() + ", " + batch_idx->Describe());
  }
  const std::string mode = ctx.attrs().GetString("mode", "avg");
  if (mode != "avg" && mode != "max")
    return ctx.Error("mode must be avg or max, found '" + mode + "'");
  const std::string ctm = ctx.attrs().GetString(
      "coordinate_transformation_mode", ctx.opset() >= 16 ? "half_pixel" : "output_half_pixel");
  if (ctm != "half_pixel" && ctm != "output_half_pixel") {
    return ctx.Error("coordinate_transformation_mode must be half_pixel or output_half_pixel");
  }
  const int64_t oh = ctx.attrs().GetInt("output_height", 1);
  const int64_t ow = ctx.attrs().GetInt("output_width", 1);
  const int64_t sampling = ctx.attrs().GetInt("sampling_ratio", 0);
  const double scale = ctx.attrs().GetFloat("spatial_scale", 1.0f);
  if (oh <= 0 || ow <= 0 || sampling < 0) return ctx.Error("bad output size or sampling_ratio");
  const int64_t n = x->dim(0), ch = x->dim(1), h = x->dim(2), w = x->dim(3);
  const int64_t nr = rois->dim(0);
  const double offset = ctm == "half_pixel" ? 0.5 : 0.0;
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.output(0, x->type(), {nr, ch, oh, ow}));
  std::vector<double> out(static_cast<size_t>(nr * ch * oh * ow));
  for (int64_t r = 0; r < nr; ++r) {
    const int64_t bi = batch_idx->GetAsInt64(r);
    if (bi < 0 || bi >= n) return ctx.Error("batch index " + std::to_string(bi) + " out of range");
    const double x1 = rois->GetAsDouble(r * 4 + 0) * scale - offset;
    const double y1 = rois->GetAsDouble(r * 4 + 1) * scale - offset;
    double rw = rois->GetAsDouble(r * 4 + 2) * scale - offset - x1;
    double rh = rois->GetAsDouble(r * 4 + 3) * scale - offset - y1;
    if (ctm == "output_half_pixel") {
      rw = std::max(rw, 1.0);
      rh = std::max(rh, 1.0);
    }
    const double bin_h = rh / static_cast<double>(oh);
    const double bin_w = rw / static_cast<double>(ow);
    const int64_t gh =
        sampling > 0 ? sampling : static_cast<int64_t>(std::ceil(rh / static_cast<double>(oh)));
    const int64_t gw =
        sampling > 0 ? sampling : static_cast<int64_t>(std::ceil(rw / static_cast<double>(ow)));
    const double count = static_cast<double>(std::max<int64_t>(gh * gw, 1));
    for (int64_t c = 0; c < ch; ++c) {
      const int64_t plane = (bi * ch + c) * h * w;
      for (int64_t ph = 0; ph < oh; ++ph) {
        for (int64_t pw = 0; pw < ow; ++pw) {
          double acc = 0;
          bool first = true;
          for (int64_t iy = 0; iy < gh; ++iy) {
            for (int64_t ix = 0; ix < gw; ++ix) {
              double yy = y1 + ph * bin_h + (iy + 0.5) * bin_h / static_cast<double>(gh);
              double xx = x1 + pw * bin_w + (ix + 0.5) * bin_w / static_cast<double>(gw);
              // Bilinear weights of the four neighbours; samples outside contribute zero.
              double v[4] = {0, 0, 0, 0};
              if (std::isfinite(yy) && std::isfinite(xx) &&
                  !(yy < -1.0 || yy > static_cast<double>(h) || xx < -1.0 ||
                    xx > static_cast<double>(w))) {
                yy = std::max(yy, 0.0);
                xx = std::max(xx, 0.0);
                int64_t yl = static_cast<int64_t>(yy), xl = static_cast<int64_t>(xx), yh, xh;
                if (yl >= h - 1) {
                  yh = yl = h - 1;
                  yy = static_cast<double>(yl);
                } else {
                  yh = yl + 1;
                }
                if (xl >= w - 1) {
                  xh = xl = w - 1;
                  xx = static_cast<double>(xl);
                } else {
                  xh = xl + 1;
                }
                const double ly = yy - static_cast<double>(yl), lx = xx - static_cast<double>(xl);
                const double hy = 1 - ly, hx = 1 - lx;
                v[0] = hy * hx * x->GetAsDouble(plane + yl * w + xl);
                v[1] = hy * lx * x->GetAsDouble(plane + yl * w + xh);
                v[2] = ly * hx * x->GetAsDouble(plane + yh * w + xl);
                v[3] = ly * lx * x->GetAsDouble(plane + yh * w + xh);
              }
              if (mode == "avg") {
                acc += v[0] + v[1] + v[2] + v[3];
              } else {
                // ONNX Runtime's max mode: the largest weighted corner over all samples.
                const double m = std::max(std::max(v[0], v[1]), std::max(v[2], v[3]));
                acc = first ? m : std::max(acc, m);
                first = false;
              }
            }
          }
          if (mode == "avg") acc /= count;
          out[static_cast<size_t>(((r * ch + c) * oh + ph) * ow + pw)] = acc;
        }
      }
    }
  }
  Dispatch<kDispatchFloat>(x->type(), [&](auto tag) {
    using T = decltype(tag);
    for (size_t i = 0; i < out.size(); ++i) y->data<T>()[i] = static_cast<T>(out[i]);
  });
  return Status::Ok();
}

Status MaxRoiPool(KernelContext& ctx) {
  const Tensor* x = ctx.input(0);
  const Tensor* rois = ctx.input(1);
  if (x == nullptr || rois == nullptr) return ctx.Error("expected inputs X and rois");
  if (!IsFloating(x->type())) return ctx.UnsupportedType(x->type());
  if (x->rank() != 4 || rois->rank() != 2 || rois->dim(1) != 5) {
    return ctx.Error("expected X [N, C, H, W] and rois [R, 5], found " + x->Describe() + " and " +
                     rois->Describe());
  }
  const auto pooled = ctx.attrs().GetInts("pooled_shape");
  if (pooled.size() != 2 || pooled[0] <= 0 || pooled[1] <= 0) {
    return ctx.Error("pooled_shape must hold 2 positive values");
  }
  const double scale = ctx.attrs().GetFloat("spatial_scale", 1.0f);
  const int64_t n = x->dim(0), ch = x->dim(1), h = x->dim(2), w = x->dim(3);
  const int64_t nr = rois->dim(0), oh = pooled[0], ow = pooled[1];
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.output(0, x->type(), {nr, ch, oh, ow}));
  std::vector<double> out(static_cast<size_t>(nr * ch * oh * ow));
  for (int64_t r = 0; r < nr; ++r) {
    const int64_t bi = rois->GetAsInt64(r * 5);
    if (bi < 0 || bi >= n)
      return ctx.Error("roi batch index " + std::to_string(bi) + " out of range");
    for (int k = 1; k < 5; ++k) {
      if (!std::isfinite(rois->GetAsDouble(r * 5 + k) * scale) ||
          std::fabs(rois->GetAsDouble(r * 5 + k) * scale) > 1e15) {
        return ctx.Error("roi " + std::to_string(r) + " has a non-finite or huge coordinate");
      }
    }
    const int64_t sw = static_cast<int64_t>(std::round(rois->GetAsDouble(r * 5 + 1) * scale));
    const int64_t sh = static_cast<int64_t>(std::round(rois->GetAsDouble(r * 5 + 2) * scale));
    const int64_t ew = static_cast<int64_t>(std::round(rois->GetAsDouble(r * 5 + 3) * scale));
    const int64_t eh = static_cast<int64_t>(std::round(rois->GetAsDouble(r * 5 + 4) * scale));
    const double bin_h =
        static_cast<double>(std::max<int64_t>(eh - sh + 1, 1)) / static_cast<double>(oh);
    const double bin_w =
        static_cast<double>(std::max<int64_t>(ew - sw + 1, 1)) / static_cast<double>(ow);
    for (int64_t c = 0; c < ch; ++c) {
      const int64_t plane = (bi * ch + c) * h * w;
      for (int64_t ph = 0; ph < oh; ++ph) {
        for (int64_t pw = 0; pw < ow; ++pw) {
          auto clamp = [](int64_t v, int64_t hi) { return std::min(std::max<int64_t>(v, 0), hi); };
          const int64_t hs = clamp(static_cast<int64_t>(std::floor(ph * bin_h)) + sh, h);
          const int64_t he = clamp(static_cast<int64_t>(std::ceil((ph + 1) * bin_h)) + sh, h);
          const int64_t ws = clamp(static_cast<int64_t>(std::floor(pw * bin_w)) + sw, w);
          const int64_t we = clamp(static_cast<int64_t>(std::ceil((pw + 1) * bin_w)) + sw, w);
          double m = 0;
          if (he > hs && we > ws) {
            m = -INFINITY;
            for (int64_t yy = hs; yy < he; ++yy) {
              for (int64_t xx = ws; xx < we; ++xx)
                m = std::max(m, x->GetAsDouble(plane + yy * w + xx));
            }
          }
          out[static_cast<size_t>(((r * ch + c) * oh + ph) * ow + pw)] = m;
        }
      }
    }
  }
  Dispatch<kDispatchFloat>(x->type(), [&](auto tag) {
    using T = decltype(tag);
    for (size_t i = 0; i < out.size(); ++i) y->data<T>()[i] = static_cast<T>(out[i]);
  });
  return Status::Ok();
}

namespace {

// PyTorch's reflect_coordinates: reflects `in` into [twice_low / 2, twice_high / 2].
double Reflect(double in, int64_t twice_low, int64_t twice_high) {
  if (twice_low == twice_high) return 0;
  const double lo = static_cast<double>(twice_low) / 2;
  const double span = static_cast<double>(twice_high - twice_low) / 2;
  in = std::fabs(in - lo);
  const double extra = std::fmod(in, span);
  const int64_t flips = static_cast<int64_t>(std::floor(in / span));
  return flips % 2 == 0 ? extra + lo : span - extra + lo;
}

// Truncates a finite coordinate to an index; -1 (outside any image) for NaN or huge values.
int64_t ToIndex(double v) {
  return std::isfinite(v) && std::fabs(v) < 1e15 ? static_cast<int64_t>(v) : -1;
}

struct GridSampler {
  const Tensor* x;
  int64_t h, w;
  bool align;
  int padding;  // 0 zeros, 1 border, 2 reflection

  double Unnormalize(double g, int64_t size) const {
    return align ? (g + 1) / 2 * static_cast<double>(size - 1)
                 : ((g + 1) * static_cast<double>(size) - 1) / 2;
  }
  // Applies border / reflection padding to a source coordinate.
  double Pad(double c, int64_t size) const {
    if (padding == 1) return std::min(std::max(c, 0.0), static_cast<double>(size - 1));
    if (padding == 2) {
      c = align ? Reflect(c, 0, 2 * (size - 1)) : Reflect(c, -1, 2 * size - 1);
      return std::min(std::max(c, 0.0), static_cast<double>(size - 1));
    }
    return c;
  }
  // The pixel value at integer coordinates; zero outside the image.
  double At(int64_t plane, int64_t yy, int64_t xx) const {
    if (yy < 0 || yy >= h || xx < 0 || xx >= w) return 0;
    return x->GetAsDouble(plane + yy * w + xx);
  }
  // Bicubic taps read padded integer coordinates.
  double AtPadded(int64_t plane, int64_t yy, int64_t xx) const {
    const double py = Pad(static_cast<double>(yy), h);
    const double px = Pad(static_cast<double>(xx), w);
    return At(plane, ToIndex(py), ToIndex(px));
  }
};

void CubicCoefficients(double t, double c[4]) {
  const double a = -0.75;
  auto near = [a](double v) { return ((a + 2) * v - (a + 3)) * v * v + 1; };
  auto far = [a](double v) { return ((a * v - 5 * a) * v + 8 * a) * v - 4 * a; };
  c[0] = far(t + 1);
  c[1] = near(t);
  c[2] = near(1 - t);
  c[3] = far(2 - t);
}

// GridSample-20 on a volume: X [N, C, D, H, W], grid [N, Do, Ho, Wo, 3] holding (x, y, z);
// trilinear or nearest (cubic is 2-D only, as in ONNX Runtime).
Status GridSample3d(KernelContext& ctx, const Tensor& x, const Tensor& grid, bool linear,
                    const GridSampler& s) {
  const int64_t n = x.dim(0), ch = x.dim(1), d = x.dim(2), h = x.dim(3), w = x.dim(4);
  const int64_t od = grid.dim(1), oh = grid.dim(2), ow = grid.dim(3);
  const int64_t points = od * oh * ow;
  auto at = [&](int64_t vol, int64_t zz, int64_t yy, int64_t xx) {
    if (zz < 0 || zz >= d || yy < 0 || yy >= h || xx < 0 || xx >= w) return 0.0;
    return x.GetAsDouble(vol + (zz * h + yy) * w + xx);
  };
  std::vector<double> out(static_cast<size_t>(n * ch * points));
  for (int64_t b = 0; b < n; ++b) {
    for (int64_t p = 0; p < points; ++p) {
      const int64_t gi = (b * points + p) * 3;
      const double px = s.Pad(s.Unnormalize(grid.GetAsDouble(gi), w), w);
      const double py = s.Pad(s.Unnormalize(grid.GetAsDouble(gi + 1), h), h);
      const double pz = s.Pad(s.Unnormalize(grid.GetAsDouble(gi + 2), d), d);
      for (int64_t c = 0; c < ch; ++c) {
        const int64_t vol = (b * ch + c) * d * h * w;
        double v = 0;
        if (!linear) {
          v = at(vol, ToIndex(std::nearbyint(pz)), ToIndex(std::nearbyint(py)),
                 ToIndex(std::nearbyint(px)));
        } else {
          const double x0 = std::floor(px), y0 = std::floor(py), z0 = std::floor(pz);
          const double lx = px - x0, ly = py - y0, lz = pz - z0;
          const int64_t xi = ToIndex(x0), yi = ToIndex(y0), zi = ToIndex(z0);
          for (int k = 0; k < 8; ++k) {
            const int dz = k >> 2, dy = (k >> 1) & 1, dx = k & 1;
            const double wgt = (dz ? lz : 1 - lz) * (dy ? ly : 1 - ly) * (dx ? lx : 1 - lx);
            v += wgt * at(vol, zi + dz, yi + dy, xi + dx);
          }
        }
        out[static_cast<size_t>((b * ch + c) * points + p)] = v;
      }
    }
  }
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.output(0, x.type(), {n, ch, od, oh, ow}));
  Dispatch<kDispatchFloat>(x.type(), [&](auto tag) {
    using T = decltype(tag);
    for (size_t i = 0; i < out.size(); ++i) y->data<T>()[i] = static_cast<T>(out[i]);
  });
  return Status::Ok();
}

}  // namespace

// GridSample-16 (modes bilinear, nearest, bicubic; 2-D) and -20 (the same modes named linear,
// nearest, cubic; 2-D, or 3-D for linear and nearest).
Status GridSample(KernelContext& ctx) {
  const Tensor* x = ctx.input(0);
  const Tensor* grid = ctx.input(1);
  if (x == nullptr || grid == nullptr) return ctx.Error("expected inputs X and grid");
  if (!IsFloating(x->type()) || !IsFloating(grid->type())) return ctx.UnsupportedType(x->type());
  const bool v20 = ctx.opset() >= 20;
  std::string mode = ctx.attrs().GetString("mode", v20 ? "linear" : "bilinear");
  const std::string padding = ctx.attrs().GetString("padding_mode", "zeros");
  if (v20 ? (mode != "linear" && mode != "nearest" && mode != "cubic")
          : (mode != "bilinear" && mode != "nearest" && mode != "bicubic")) {
    return ctx.Error(std::string("mode must be ") +
                     (v20 ? "linear, nearest or cubic" : "bilinear, nearest or bicubic") +
                     " at opset " + std::to_string(ctx.opset()) + ", found '" + mode + "'");
  }
  if (mode == "linear") mode = "bilinear";
  if (mode == "cubic") mode = "bicubic";
  const bool volume = v20 && x->rank() == 5;
  if (volume && mode == "bicubic") {
    return ctx.Error("mode cubic supports only 2-D sampling (X [N, C, H, W]), found X " +
                     x->Describe());
  }
  if (volume && (grid->rank() != 5 || grid->dim(0) != x->dim(0) || grid->dim(4) != 3)) {
    return ctx.Error("expected X [N, C, D, H, W] and grid [N, Do, Ho, Wo, 3], found " +
                     x->Describe() + " and " + grid->Describe());
  }
  if (!volume &&
      (x->rank() != 4 || grid->rank() != 4 || grid->dim(0) != x->dim(0) || grid->dim(3) != 2)) {
    return ctx.Error("expected X [N, C, H, W] and grid [N, Ho, Wo, 2]" +
                     std::string(v20 ? " (or X [N, C, D, H, W] and grid [N, Do, Ho, Wo, 3])" : "") +
                     ", found " + x->Describe() + " and " + grid->Describe());
  }
  if (padding != "zeros" && padding != "border" && padding != "reflection") {
    return ctx.Error("padding_mode must be zeros, border or reflection, found '" + padding + "'");
  }
  const int pad_mode = padding == "zeros" ? 0 : padding == "border" ? 1 : 2;
  const bool align = ctx.attrs().GetInt("align_corners", 0) != 0;
  if (volume) return GridSample3d(ctx, *x, *grid, mode == "bilinear", {x, 0, 0, align, pad_mode});
  const int64_t n = x->dim(0), ch = x->dim(1), h = x->dim(2), w = x->dim(3);
  const int64_t oh = grid->dim(1), ow = grid->dim(2);
  GridSampler s{x, h, w, align, pad_mode};
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.output(0, x->type(), {n, ch, oh, ow}));
  std::vector<double> out(static_cast<size_t>(n * ch * oh * ow));
  for (int64_t b = 0; b < n; ++b) {
    for (int64_t i = 0; i < oh; ++i) {
      for (int64_t j = 0; j < ow; ++j) {
        const int64_t gi = ((b * oh + i) * ow + j) * 2;
        const double gx = s.Unnormalize(grid->GetAsDouble(gi), w);
        const double gy = s.Unnormalize(grid->GetAsDouble(gi + 1), h);
        for (int64_t c = 0; c < ch; ++c) {
          const int64_t plane = (b * ch + c) * h * w;
          double v = 0;
          if (mode == "bicubic") {
            const double fx = std::floor(gx), fy = std::floor(gy);
            double cx[4], cy[4];
            CubicCoefficients(gx - fx, cx);
            CubicCoefficients(gy - fy, cy);
            for (int r = 0; r < 4; ++r) {
              double row = 0;
              for (int q = 0; q < 4; ++q) {
                row += cx[q] * s.AtPadded(plane, ToIndex(fy) - 1 + r, ToIndex(fx) - 1 + q);
              }
              v += cy[r] * row;
            }
          } else {
            const double px = s.Pad(gx, w);
            const double py = s.Pad(gy, h);
            if (mode == "nearest") {
              v = s.At(plane, ToIndex(std::nearbyint(py)), ToIndex(std::nearbyint(px)));
            } else {
              const double x0 = std::floor(px), y0 = std::floor(py);
              const double lx = px - x0, ly = py - y0;
              const int64_t xi = ToIndex(x0), yi = ToIndex(y0);
              v = (1 - ly) * (1 - lx) * s.At(plane, yi, xi) +
                  (1 - ly) * lx * s.At(plane, yi, xi + 1) +
                  ly * (1 - lx) * s.At(plane, yi + 1, xi) + ly * lx * s.At(plane, yi + 1, xi + 1);
            }
          }
          out[static_cast<size_t>(((b * ch + c) * oh + i) * ow + j)] = v;
        }
      }
    }
  }
  Dispatch<kDispatchFloat>(x->type(), [&](auto tag) {
    using T = decltype(tag);
    for (size_t i = 0; i < out.size(); ++i) y->data<T>()[i] = static_cast<T>(out[i]);
  });
  return Status::Ok();
}

}  // namespace kiln::misc_ref
