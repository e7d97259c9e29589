// Resize (opsets 10, 11, 13, 18, 19) and Upsample (opsets 7, 9).
//
// Resize is separable: for every axis and every output coordinate x the source coordinate
// x_ori comes from coordinate_transformation_mode, and a short list of (input index, weight)
// pairs is built as the ONNX reference does: the n nearest indices of an edge-padded copy of
// the axis (n = 2 for nearest/linear, 4 for cubic; ties go to the smaller index), weights from
// the mode's coefficient function of ratio = x_ori - floor(x_ori) (1 when x_ori is integral),
// optionally with outside taps dropped and renormalised (exclude_outside). An output element is
// the sum over the product of its axes' lists, or extrapolation_value when tf_crop_and_resize
// puts any axis outside the input. Arithmetic is in double.
//
// Resize-18 adds axes and keep_aspect_ratio_policy (ir/resize_target.h expands them to every
// axis) and antialias: linear and cubic then use ONNX Runtime's filter (as PIL does): when
// downsampling by s < 1 the kernel is stretched by 1/s; taps cover the input positions within
// the support of centre = x_ori + 0.5 (outside ones read the edge pixel), weights normalised to
// sum 1. Resize-19 adds the half_pixel_symmetric transform.
//
// Resize-10 and Upsample use the asymmetric transform (x_ori = x / scale); their nearest mode
// floors when upsampling and rounds up when downsampling, as ONNX Runtime does.
#include <algorithm>
#include <cmath>

#include "backends/ref/nn_internal.h"
#include "ir/resize_target.h"

namespace kiln::nn {
namespace {

enum class Mode { kNearest, kLinear, kCubic };

struct ResizeParams {
  Mode mode = Mode::kNearest;
  std::string transform = "half_pixel";
  std::string nearest_mode = "round_prefer_floor";
  double cubic_a = -0.75;
  bool exclude_outside = false;
  double extrapolation = 0.0;
  bool legacy_nearest = false;  // Resize-10 / Upsample nearest
  bool antialias = false;       // Resize-18: linear/cubic downsampling filter
};

struct Tap {
  int64_t index;
  double weight;
};

struct AxisTable {
  std::vector<std::vector<Tap>> taps;  // per output coordinate
  std::vector<bool> outside;           // tf_crop_and_resize extrapolation
};

std::vector<double> Coeffs(const ResizeParams& p, double ratio, bool integral) {
  switch (p.mode) {
    case Mode::kNearest: {
      if (integral) return {0.0, 1.0};
      const std::string& nm = p.nearest_mode;
      if (nm == "round_prefer_ceil") return {ratio < 0.5 ? 1.0 : 0.0, ratio >= 0.5 ? 1.0 : 0.0};
      if (nm == "floor") return {1.0, 0.0};
      if (nm == "ceil") return {0.0, 1.0};
      return {ratio <= 0.5 ? 1.0 : 0.0, ratio > 0.5 ? 1.0 : 0.0};
    }
    case Mode::kLinear:
      return {1.0 - ratio, ratio};
    case Mode::kCubic: {
      const double a = p.cubic_a;
      const double r1 = ratio + 1, r2 = 1 - ratio, r3 = 2 - ratio;
      return {((a * r1 - 5 * a) * r1 + 8 * a) * r1 - 4 * a,
              ((a + 2) * ratio - (a + 3)) * ratio * ratio + 1,
              ((a + 2) * r2 - (a + 3)) * r2 * r2 + 1, ((a * r3 - 5 * a) * r3 + 8 * a) * r3 - 4 * a};
    }
  }
  return {};
}

// Antialiased taps for source coordinate xr (see the file comment): filter support 1 (linear)
// or 2 (cubic), stretched by 1/scale when downsampling.
std::vector<Tap> AntialiasTaps(const ResizeParams& p, int64_t in, double scale, double xr) {
  const double half = p.mode == Mode::kLinear ? 1.0 : 2.0;
  const double support = scale < 1.0 ? half / scale : half;
  const double ss = std::min(scale, 1.0);
  const double a = p.cubic_a;
  auto filter = [&](double v) {
    v = std::fabs(v);
    if (p.mode == Mode::kLinear) return v < 1.0 ? 1.0 - v : 0.0;
    if (v < 1.0) return ((a + 2) * v - (a + 3)) * v * v + 1;
    if (v < 2.0) return (((v - 5) * v + 8) * v - 4) * a;
    return 0.0;
  };
  const double centre = xr + 0.5;
  const int64_t lo = static_cast<int64_t>(std::floor(centre - support + 0.5));
  const int64_t hi = static_cast<int64_t>(std::floor(centre + support + 0.5));
  std::vector<Tap> taps;
  double total = 0;
  for (int64_t j = lo; j < hi; ++j) {
    const double w = filter((static_cast<double>(j) - centre + 0.5) * ss);
    taps.push_back({std::clamp<int64_t>(j, 0, in - 1), w});  // edge pixels repeat outside
    total += w;
  }
  if (total != 0) {
    for (Tap& tp : taps) tp.weight /= total;
  }
  if (taps.empty()) taps.push_back({std::clamp<int64_t>(static_cast<int64_t>(xr), 0, in - 1), 0.0});
  return taps;
}

AxisTable BuildAxis(const ResizeParams& p, int64_t in, int64_t out, double scale, double roi_start,
                    double roi_end) {
  AxisTable t;
  t.taps.resize(static_cast<size_t>(out));
  t.outside.assign(static_cast<size_t>(out), false);
  const double out_len = scale * static_cast<double>(in);  // the reference's output_width
  for (int64_t xo = 0; xo < out; ++xo) {
    const double x = static_cast<double>(xo);
    if (p.legacy_nearest) {
      const double xs = x / scale;
      int64_t i = static_cast<int64_t>(scale < 1.0 ? std::ceil(xs) : std::floor(xs));
      i = std::clamp<int64_t>(i, 0, in - 1);
      t.taps[xo] = {{i, 1.0}};
      continue;
    }
    double xr;
    const std::string& m = p.transform;
    if (m == "asymmetric") {
      xr = x / scale;
    } else if (m == "pytorch_half_pixel") {
      xr = out_len > 1 ? (x + 0.5) / scale - 0.5 : 0.0;
    } else if (m == "align_corners") {
      xr = out_len == 1 ? 0.0 : x * (in - 1) / (out_len - 1);
    } else if (m == "tf_half_pixel_for_nn") {
      xr = (x + 0.5) / scale;
    } else if (m == "half_pixel_symmetric") {
      const double adjustment = static_cast<double>(out) / out_len;
      const double offset = static_cast<double>(in) / 2.0 * (1.0 - adjustment);
      xr = offset + (x + 0.5) / scale - 0.5;
    } else if (m == "tf_crop_and_resize") {
      xr = out_len > 1 ? roi_start * (in - 1) + x * (roi_end - roi_start) * (in - 1) / (out_len - 1)
                       : 0.5 * (roi_start + roi_end) * (in - 1);
      if (xr < 0 || xr > in - 1) {
        t.outside[xo] = true;
        continue;
      }
    } else {  // half_pixel
      xr = (x + 0.5) / scale - 0.5;
    }
    if (!std::isfinite(xr)) xr = 0.0;
    if (p.antialias && p.mode != Mode::kNearest) {
      t.taps[xo] = AntialiasTaps(p, in, scale, xr);
      continue;
    }
    const double fl = std::floor(xr);
    const bool integral = xr == fl;
    const double ratio = integral ? 1.0 : xr - fl;
    std::vector<double> c = Coeffs(p, ratio, integral);
    const int64_t n = static_cast<int64_t>(c.size());
    const int64_t pad = (n + 1) / 2;
    const int64_t len = in + 2 * pad;
    const double xp = xr + pad;
    // The n nearest indices of [0, len) to xp, ties to the smaller, in ascending order.
    const int64_t centre = static_cast<int64_t>(std::clamp(std::floor(xp), -1.0, double(len)));
    std::vector<int64_t> cand;
    for (int64_t i = std::max<int64_t>(0, std::min(centre, len - 1) - n);
         i <= std::min<int64_t>(len - 1, std::max<int64_t>(centre, 0) + n); ++i) {
      cand.push_back(i);
    }
    std::stable_sort(cand.begin(), cand.end(), [&](int64_t a, int64_t b) {
      const double da = std::fabs(xp - a), db = std::fabs(xp - b);
      return da < db || (da == db && a < b);
    });
    cand.resize(static_cast<size_t>(n));
    std::sort(cand.begin(), cand.end());
    if (p.exclude_outside) {
      double sum = 0;
      for (int64_t j = 0; j < n; ++j) {
        const int64_t i = cand[j] - pad;
        if (i < 0 || i >= in) c[j] = 0;
        sum += c[j];
      }
      if (sum != 0) {
        for (auto& v : c) v /= sum;
      }
    }
    for (int64_t j = 0; j < n; ++j) {
      if (c[j] == 0.0) continue;
      t.taps[xo].push_back({std::clamp<int64_t>(cand[j] - pad, 0, in - 1), c[j]});
    }
    if (t.taps[xo].empty()) t.taps[xo].push_back({std::clamp<int64_t>(xo, 0, in - 1), 0.0});
  }
  return t;
}

Status RunResize(KernelContext& ctx, const Tensor& x, const ResizeParams& p,
                 const std::vector<double>& scales, const Shape& out_shape,
                 const std::vector<double>& roi) {
  const int rank = x.rank();
  std::vector<AxisTable> tables(rank);
  const std::vector<int64_t> in_strides = Strides(x.shape());
  for (int a = 0; a < rank; ++a) {
    const double rs = roi.empty() ? 0.0 : roi[a], re = roi.empty() ? 1.0 : roi[a + rank];
    tables[a] = BuildAxis(p, x.dim(a), out_shape[a], scales[a], rs, re);
  }
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.output(0, x.type(), out_shape));
  const int64_t total = y->size();
  if (total == 0) return Status::Ok();
  if (x.size() == 0) return ctx.Error("cannot resize an empty input to a non-empty output");
  const bool ok = Dispatch<kAllNumeric>(x.type(), [&](auto tag) {
    using T = decltype(tag);
    const T* xd = x.data<T>();
    T* yd = y->data<T>();
    const int64_t last = out_shape[rank - 1];
    ParallelRange(ctx.thread_pool(), total / std::max<int64_t>(last, 1), 1,
                  [&](int64_t r0, int64_t r1) {
                    std::vector<int64_t> coord(rank, 0);
                    std::vector<size_t> pick(rank, 0);
                    for (int64_t row = r0; row < r1; ++row) {
                      int64_t r = row;
                      for (int a = rank - 2; a >= 0; --a) {
                        coord[a] = r % out_shape[a];
                        r /= out_shape[a];
                      }
                      bool row_outside = false;
                      for (int a = 0; a < rank - 1; ++a)
                        row_outside = row_outside || tables[a].outside[coord[a]];
                      for (int64_t xo = 0; xo < last; ++xo) {
                        coord[rank - 1] = xo;
                        double v = 0;
                        if (row_outside || tables[rank - 1].outside[xo]) {
                          v = p.extrapolation;
                        } else {
                          std::fill(pick.begin(), pick.end(), 0);
                          while (true) {
                            double w = 1.0;
                            int64_t off = 0;
                            for (int a = 0; a < rank; ++a) {
                              const Tap& tp = tables[a].taps[coord[a]][pick[a]];
                              w *= tp.weight;
                              off += tp.index * in_strides[a];
                            }
                            v += w * ToD(xd[off]);
                            int a = rank - 1;
                            for (; a >= 0; --a) {
                              if (++pick[a] < tables[a].taps[coord[a]].size()) break;
                              pick[a] = 0;
                            }
                            if (a < 0) break;
                          }
                        }
                        if constexpr (std::is_integral_v<T>) {
                          yd[row * last + xo] = static_cast<T>(v);
                        } else {
                          yd[row * last + xo] = FromD<T>(v);
                        }
                      }
                    }
                  });
  });
  if (!ok) return ctx.UnsupportedType(x.type());
  return Status::Ok();
}

Status ParseMode(const KernelContext& ctx, const std::string& s, Mode* m) {
  if (s == "nearest") {
    *m = Mode::kNearest;
  } else if (s == "linear" || s == "bilinear" || s == "trilinear") {
    *m = Mode::kLinear;
  } else if (s == "cubic") {
    *m = Mode::kCubic;
  } else {
    return ctx.Error("unknown mode '" + s + "'");
  }
  return Status::Ok();
}

// Output shape and per-axis scale from a scales vector.
Status ShapeFromScales(const KernelContext& ctx, const Tensor& x, const Tensor& scales_t,
                       std::vector<double>* scales, Shape* out) {
  if (scales_t.size() != x.rank()) {
    return ctx.Error("scales must hold " + std::to_string(x.rank()) + " values, found " +
                     scales_t.Describe());
  }
  scales->resize(x.rank());
  out->resize(x.rank());
  for (int a = 0; a < x.rank(); ++a) {
    const double s = scales_t.GetAsDouble(a);
    if (!(s > 0)) return ctx.Error("scales must be positive, found " + std::to_string(s));
    (*scales)[a] = s;
    (*out)[a] = static_cast<int64_t>(std::floor(s * static_cast<double>(x.dim(a))));
  }
  return Status::Ok();
}

// Resize-18/19: scales or sizes (and roi) for the axes listed in `axes` (all by default), with
// keep_aspect_ratio_policy for sizes.
Status Resize18(KernelContext& ctx, const Tensor& x, const ResizeParams& p, const Tensor* roi_t,
                const Tensor* scales_t, const Tensor* sizes_t) {
  const int rank = x.rank();
  auto axes_or = NormalizeResizeAxes(ctx.attrs().GetInts("axes"), rank);
  if (!axes_or.ok()) return ctx.Error(axes_or.status().message());
  const std::vector<int64_t> axes = *axes_or;
  std::vector<double> given_scales;
  std::vector<int64_t> given_sizes;
  if (scales_t != nullptr) {
    for (int64_t i = 0; i < scales_t->size(); ++i) given_scales.push_back(scales_t->GetAsDouble(i));
  } else {
    given_sizes = sizes_t->ToInt64Vector();
  }
  auto target = ExpandResizeTarget(
      x.shape(), axes, ctx.attrs().GetString("keep_aspect_ratio_policy", "stretch"),
      scales_t != nullptr ? &given_scales : nullptr, scales_t != nullptr ? nullptr : &given_sizes);
  if (!target.ok()) return ctx.Error(target.status().message());
  std::vector<double> roi;
  if (p.transform == "tf_crop_and_resize") {
    const int64_t n = static_cast<int64_t>(axes.size());
    if (roi_t == nullptr || roi_t->size() != 2 * n) {
      return ctx.Error("tf_crop_and_resize needs roi with " + std::to_string(2 * n) +
                       " values (start and end per resized axis)");
    }
    roi.assign(2 * static_cast<size_t>(rank), 0.0);
    for (int a = 0; a < rank; ++a) roi[rank + a] = 1.0;
    for (int64_t i = 0; i < n; ++i) {
      roi[axes[i]] = roi_t->GetAsDouble(i);
      roi[rank + axes[i]] = roi_t->GetAsDouble(n + i);
    }
  }
  return RunResize(ctx, x, p, target->scales, target->sizes, roi);
}

}  // namespace

Status ResizeKernel(KernelContext& ctx) {
  const Tensor* x = ctx.input(0);
  if (x == nullptr) return ctx.Error("input X is required");
  if (x->rank() < 1) return ctx.Error("X must have rank >= 1");
  const Attributes& at = ctx.attrs();
  ResizeParams p;
  KILN_RETURN_IF_ERROR(ParseMode(ctx, at.GetString("mode", "nearest"), &p.mode));
  std::vector<double> scales, roi;
  Shape out_shape;
  if (ctx.opset() < 11) {
    const Tensor* s = ctx.input(1);
    if (s == nullptr) return ctx.Error("input scales is required");
    KILN_RETURN_IF_ERROR(ShapeFromScales(ctx, *x, *s, &scales, &out_shape));
    p.transform = "asymmetric";
    p.legacy_nearest = p.mode == Mode::kNearest;
    if (p.mode == Mode::kCubic) return ctx.Error("mode cubic needs opset 11");
  } else {
    p.transform = at.GetString("coordinate_transformation_mode", "half_pixel");
    p.nearest_mode = at.GetString("nearest_mode", "round_prefer_floor");
    p.cubic_a = at.GetFloat("cubic_coeff_a", -0.75f);
    p.exclude_outside = at.GetInt("exclude_outside", 0) != 0;
    p.extrapolation = at.GetFloat("extrapolation_value", 0.0f);
    p.antialias = ctx.opset() >= 18 && at.GetInt("antialias", 0) != 0;
    static const char* kTransforms[] = {"half_pixel", "pytorch_half_pixel",   "align_corners",
                                        "asymmetric", "tf_half_pixel_for_nn", "tf_crop_and_resize"};
    const bool symmetric = ctx.opset() >= 19 && p.transform == "half_pixel_symmetric";
    if (!symmetric && std::none_of(std::begin(kTransforms), std::end(kTransforms),
                                   [&](const char* t) { return p.transform == t; })) {
      return ctx.Error("unknown coordinate_transformation_mode '" + p.transform + "'" +
                       (p.transform == "half_pixel_symmetric" ? " (it needs opset 19)" : ""));
    }
    const Tensor* roi_t = ctx.input(1);
    const Tensor* scales_t = ctx.input(2);
    const Tensor* sizes_t = ctx.input(3);
    if (scales_t != nullptr && scales_t->size() == 0) scales_t = nullptr;
    if (sizes_t != nullptr && sizes_t->size() == 0) sizes_t = nullptr;
    if ((scales_t == nullptr) == (sizes_t == nullptr)) {
      return ctx.Error("exactly one of scales and sizes must be given");
    }
    if (ctx.opset() >= 18) {
      return Resize18(ctx, *x, p, roi_t, scales_t, sizes_t);
    }
    if (p.transform == "tf_crop_and_resize") {
      if (roi_t == nullptr || roi_t->size() != 2 * x->rank()) {
        return ctx.Error("tf_crop_and_resize needs roi with " + std::to_string(2 * x->rank()) +
                         " values");
      }
      for (int64_t i = 0; i < roi_t->size(); ++i) roi.push_back(roi_t->GetAsDouble(i));
    }
    if (scales_t != nullptr) {
      KILN_RETURN_IF_ERROR(ShapeFromScales(ctx, *x, *scales_t, &scales, &out_shape));
    } else {
      const auto sizes = sizes_t->ToInt64Vector();
      if (static_cast<int>(sizes.size()) != x->rank()) {
        return ctx.Error("sizes must hold " + std::to_string(x->rank()) + " values");
      }
      out_shape = sizes;
      scales.resize(x->rank());
      for (int a = 0; a < x->rank(); ++a) {
        if (sizes[a] < 0) return ctx.Error("sizes must be non-negative");
        scales[a] = x->dim(a) > 0 ? static_cast<double>(sizes[a]) / x->dim(a) : 1.0;
      }
    }
  }
  return RunResize(ctx, *x, p, scales, out_shape, roi);
}

Status UpsampleKernel(KernelContext& ctx) {
  const Tensor* x = ctx.input(0);
  if (x == nullptr) return ctx.Error("input X is required");
  if (x->rank() < 1) return ctx.Error("X must have rank >= 1");
  ResizeParams p;
  KILN_RETURN_IF_ERROR(ParseMode(ctx, ctx.attrs().GetString("mode", "nearest"), &p.mode));
  if (p.mode == Mode::kCubic) return ctx.Error("Upsample supports nearest and linear");
  p.transform = "asymmetric";
  p.legacy_nearest = p.mode == Mode::kNearest;
  std::vector<double> scales;
  Shape out_shape;
  if (ctx.opset() >= 9) {
    const Tensor* s = ctx.input(1);
    if (s == nullptr) return ctx.Error("input scales is required");
    KILN_RETURN_IF_ERROR(ShapeFromScales(ctx, *x, *s, &scales, &out_shape));
  } else {
    const auto f = ctx.attrs().GetFloats("scales");
    Tensor st = Tensor::FromVector<float>(f, {static_cast<int64_t>(f.size())});
    KILN_RETURN_IF_ERROR(ShapeFromScales(ctx, *x, st, &scales, &out_shape));
  }
  return RunResize(ctx, *x, p, scales, out_shape, {});
}

}  // namespace kiln::nn
