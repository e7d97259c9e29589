// Reference kernels: AffineGrid-20 and DeformConv-19, in double (see modern_internal.h).
#include <cmath>
#include <string>

#include "backends/ref/modern_internal.h"
#include "backends/ref/nn_internal.h"

namespace kiln::modern {

// grid[n, (d,) h, w] = theta[n] @ (x_w, y_h, (z_d,) 1): normalized coordinates in [-1, 1] of
// pixel centres (align_corners 0) or of the corner pixels (align_corners 1).
Status AffineGridKernel(KernelContext& ctx) {
  KILN_RETURN_IF_ERROR(RequireFloatInput(ctx, 0, "theta"));
  const Tensor& theta = *ctx.input(0);
  const Tensor* size_t_in = ctx.input(1);
  if (size_t_in == nullptr) return ctx.Error("missing required input size");
  const std::vector<int64_t> size = size_t_in->ToInt64Vector();
  if (size.size() != 4 && size.size() != 5) {
    return ctx.Error("size must hold 4 (N, C, H, W) or 5 (N, C, D, H, W) values, found " +
                     size_t_in->Describe());
  }
  const int nd = static_cast<int>(size.size()) - 2;  // 2 or 3 spatial dims
  const int64_t n = size[0];
  if (theta.rank() != 3 || theta.dim(0) != n || theta.dim(1) != nd || theta.dim(2) != nd + 1) {
    return ctx.Error("theta " + theta.Describe() + " must have shape [" + std::to_string(n) + "," +
                     std::to_string(nd) + "," + std::to_string(nd + 1) + "] for size of " +
                     std::to_string(size.size()) + " values");
  }
  for (size_t i = 2; i < size.size(); ++i) {
    if (size[i] <= 0)
      return ctx.Error("size values must be positive, found " + size_t_in->Describe());
  }
  const bool align = ctx.attrs().GetInt("align_corners", 0) != 0;
  // Spatial extents in x, y, z order (W, H, D).
  std::vector<int64_t> ext;
  for (size_t i = size.size(); i-- > 2;) ext.push_back(size[i]);
  auto coord = [&](int64_t i, int64_t len) {
    if (len == 1) return 0.0;  // the one sample sits at the centre either way
    return align ? -1.0 + 2.0 * i / (len - 1) : (2.0 * i + 1.0) / len - 1.0;
  };
  int64_t points = 1;
  for (int64_t e : ext) points *= e;
  const std::vector<double> th = AsDoubles(theta);
  std::vector<double> out(static_cast<size_t>(n * points * nd));
  for (int64_t b = 0; b < n; ++b) {
    const double* m = th.data() + b * nd * (nd + 1);
    for (int64_t p = 0; p < points; ++p) {
      double base[4] = {0, 0, 0, 1};
      int64_t rem = p;
      for (int a = 0; a < nd; ++a) {  // p is row-major over (D,) H, W: x varies fastest
        base[a] = coord(rem % ext[a], ext[a]);
        rem /= ext[a];
      }
      base[nd] = 1.0;
      for (int r = 0; r < nd; ++r) {
        double acc = 0;
        for (int c = 0; c <= nd; ++c) acc += m[r * (nd + 1) + c] * base[c];
        out[(b * points + p) * nd + r] = acc;
      }
    }
  }
  Shape shape{n};
  for (size_t i = 2; i < size.size(); ++i) shape.push_back(size[i]);
  shape.push_back(nd);
  return WriteDoubles(ctx, 0, theta.type(), shape, out);
}

// Deformable convolution (2-D): each kernel tap samples X bilinearly (zero outside) at its
// regular position plus a learned (dy, dx) offset, times an optional mask, per offset group.
Status DeformConvKernel(KernelContext& ctx) {
  KILN_RETURN_IF_ERROR(RequireFloatInput(ctx, 0, "X"));
  KILN_RETURN_IF_ERROR(RequireFloatInput(ctx, 1, "W"));
  KILN_RETURN_IF_ERROR(RequireFloatInput(ctx, 2, "offset"));
  const Tensor& x = *ctx.input(0);
  const Tensor& w = *ctx.input(1);
  const Tensor& off = *ctx.input(2);
  const Tensor* bias = ctx.input(3);
  const Tensor* mask = ctx.input(4);
  if (x.rank() != 4 || w.rank() != 4 || off.rank() != 4) {
    return ctx.Error("X " + x.Describe() + ", W " + w.Describe() + " and offset " + off.Describe() +
                     " must be 4-D (2-D deformable convolution)");
  }
  const int64_t N = x.dim(0), C = x.dim(1), H = x.dim(2), Wd = x.dim(3);
  const int64_t M = w.dim(0), kh = w.dim(2), kw = w.dim(3);
  const int64_t group = ctx.attrs().GetInt("group", 1);
  const int64_t og = ctx.attrs().GetInt("offset_group", 1);
  const auto ks = ctx.attrs().GetInts("kernel_shape", {kh, kw});
  const auto st = ctx.attrs().GetInts("strides", {1, 1});
  const auto dl = ctx.attrs().GetInts("dilations", {1, 1});
  const auto pd = ctx.attrs().GetInts("pads", {0, 0, 0, 0});
  if (ks.size() != 2 || ks[0] != kh || ks[1] != kw || st.size() != 2 || dl.size() != 2 ||
      pd.size() != 4 || st[0] <= 0 || st[1] <= 0 || dl[0] <= 0 || dl[1] <= 0) {
    return ctx.Error(
        "kernel_shape/strides/dilations need 2 positive values (kernel_shape "
        "matching W), pads 4");
  }
  if (group <= 0 || og <= 0 || C % group != 0 || M % group != 0 || C % og != 0 ||
      w.dim(1) != C / group) {
    return ctx.Error("group " + std::to_string(group) + " / offset_group " + std::to_string(og) +
                     " do not fit X " + x.Describe() + " and W " + w.Describe());
  }
  const int64_t oh = (H + pd[0] + pd[2] - (dl[0] * (kh - 1) + 1)) / st[0] + 1;
  const int64_t ow = (Wd + pd[1] + pd[3] - (dl[1] * (kw - 1) + 1)) / st[1] + 1;
  const int64_t taps = kh * kw;
  if (oh <= 0 || ow <= 0 || off.dim(0) != N || off.dim(1) != og * 2 * taps || off.dim(2) != oh ||
      off.dim(3) != ow) {
    return ctx.Error("offset " + off.Describe() + " must have shape [" + std::to_string(N) + "," +
                     std::to_string(og * 2 * taps) + "," + std::to_string(oh) + "," +
                     std::to_string(ow) + "]");
  }
  if (mask != nullptr && (mask->rank() != 4 || mask->dim(0) != N || mask->dim(1) != og * taps ||
                          mask->dim(2) != oh || mask->dim(3) != ow)) {
    return ctx.Error("mask " + mask->Describe() + " must have shape [" + std::to_string(N) + "," +
                     std::to_string(og * taps) + "," + std::to_string(oh) + "," +
                     std::to_string(ow) + "]");
  }
  if (bias != nullptr && (bias->rank() != 1 || bias->dim(0) != M)) {
    return ctx.Error("B " + bias->Describe() + " must have shape [" + std::to_string(M) + "]");
  }
  const std::vector<double> xv = AsDoubles(x), wv = AsDoubles(w), ov = AsDoubles(off);
  const std::vector<double> mv = mask != nullptr ? AsDoubles(*mask) : std::vector<double>();
  const std::vector<double> bv = bias != nullptr ? AsDoubles(*bias) : std::vector<double>();
  const int64_t cpg = C / group, mpg = M / group, cpo = C / og;
  // Sampled columns per image: [C * taps, oh * ow].
  std::vector<double> out(static_cast<size_t>(N * M * oh * ow));
  std::vector<double> col(static_cast<size_t>(C * taps * oh * ow));
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t c = 0; c < C; ++c) {
      const int64_t g = c / cpo;
      const double* img = xv.data() + (n * C + c) * H * Wd;
      for (int64_t t = 0; t < taps; ++t) {
        const int64_t i = t / kw, j = t % kw;
        for (int64_t y = 0; y < oh; ++y) {
          for (int64_t xo = 0; xo < ow; ++xo) {
            const int64_t p = y * ow + xo;
            const double dy = ov[((n * og + g) * 2 * taps + 2 * t) * oh * ow + p];
            const double dx = ov[((n * og + g) * 2 * taps + 2 * t + 1) * oh * ow + p];
            const double py = static_cast<double>(y * st[0] - pd[0] + i * dl[0]) + dy;
            const double px = static_cast<double>(xo * st[1] - pd[1] + j * dl[1]) + dx;
            double val = 0;
            if (py > -1 && py < H && px > -1 && px < Wd) {
              const double fy = std::floor(py), fx = std::floor(px);
              const int64_t y0 = static_cast<int64_t>(fy), x0 = static_cast<int64_t>(fx);
              const double ly = py - fy, lx = px - fx;
              auto at = [&](int64_t yy, int64_t xx) {
                return yy >= 0 && yy < H && xx >= 0 && xx < Wd ? img[yy * Wd + xx] : 0.0;
              };
              val = (1 - ly) * (1 - lx) * at(y0, x0) + (1 - ly) * lx * at(y0, x0 + 1) +
                    ly * (1 - lx) * at(y0 + 1, x0) + ly * lx * at(y0 + 1, x0 + 1);
            }
            if (mask != nullptr) val *= mv[((n * og + g) * taps + t) * oh * ow + p];
            col[(c * taps + t) * oh * ow + p] = val;
          }
        }
      }
    }
    for (int64_t m = 0; m < M; ++m) {
      const int64_t g = m / mpg;
      double* o = out.data() + (n * M + m) * oh * ow;
      for (int64_t p = 0; p < oh * ow; ++p) o[p] = bias != nullptr ? bv[m] : 0.0;
      for (int64_t ci = 0; ci < cpg; ++ci) {
        const int64_t c = g * cpg + ci;
        for (int64_t t = 0; t < taps; ++t) {
          const double wt = wv[(m * cpg + ci) * taps + t];
          const double* cr = col.data() + (c * taps + t) * oh * ow;
          for (int64_t p = 0; p < oh * ow; ++p) o[p] += wt * cr[p];
        }
      }
    }
  }
  return WriteDoubles(ctx, 0, x.type(), Shape{N, M, oh, ow}, out);
}

}  // namespace kiln::modern
