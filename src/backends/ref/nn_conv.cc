// Conv and ConvTranspose, plus the convolution/pooling geometry shared with nn_pool.cc.
//
// f32 Conv is a GEMM per (image, group): W_g[M/g, C/g*K] x im2col(X_g)[C/g*K, out pixels],
// where the im2col columns are gathered straight into Sgemm's packed B blocks (no full column
// matrix); 1x1 stride-1 unpadded convs pass X_g as B unchanged, and 2-D depthwise convs (one
// input channel per group) use a direct loop over rows, vectorised along the output row.
// f32 ConvTranspose is W_g^T x X_g followed by a col2im scatter. Other float types use a direct
// loop accumulating in double.
#include <algorithm>
#include <cstring>

#include "backends/ref/nn_internal.h"

namespace kiln::nn {

Status ComputeConvGeometry(const KernelContext& ctx, const std::vector<int64_t>& in,
                           const std::vector<int64_t>& kernel, bool use_ceil_mode,
                           ConvGeometry* g) {
  const Attributes& at = ctx.attrs();
  const int nd = static_cast<int>(in.size());
  g->nd = nd;
  g->in = in;
  std::vector<int64_t> ks = at.GetInts("kernel_shape");
  if (!kernel.empty()) {
    if (!ks.empty() && ks != kernel) {
      return ctx.Error("kernel_shape attribute disagrees with the weight's spatial dims");
    }
    ks = kernel;
  }
  if (static_cast<int>(ks.size()) != nd) {
    return ctx.Error("kernel_shape needs " + std::to_string(nd) + " values, found " +
                     std::to_string(ks.size()));
  }
  g->kernel = ks;
  g->stride = at.GetInts("strides", std::vector<int64_t>(nd, 1));
  g->dilation = at.GetInts("dilations", std::vector<int64_t>(nd, 1));
  std::vector<int64_t> pads = at.GetInts("pads", std::vector<int64_t>(2 * nd, 0));
  if (static_cast<int>(g->stride.size()) != nd || static_cast<int>(g->dilation.size()) != nd ||
      static_cast<int>(pads.size()) != 2 * nd) {
    return ctx.Error("strides/dilations need " + std::to_string(nd) + " values and pads " +
                     std::to_string(2 * nd));
  }
  const std::string auto_pad = at.GetString("auto_pad", "NOTSET");
  const bool ceil_mode = use_ceil_mode && at.GetInt("ceil_mode", 0) != 0;
  g->pad_begin.assign(nd, 0);
  g->pad_end.assign(nd, 0);
  g->out.assign(nd, 0);
  for (int i = 0; i < nd; ++i) {
    const int64_t k = ks[i], s = g->stride[i], d = g->dilation[i];
    if (k <= 0 || s <= 0 || d <= 0) {
      return ctx.Error("kernel, stride and dilation values must be positive");
    }
    const int64_t eff = (k - 1) * d + 1;
    if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      const int64_t out = (in[i] + s - 1) / s;
      const int64_t total = std::max<int64_t>(0, (out - 1) * s + eff - in[i]);
      g->pad_begin[i] = auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2;
      g->pad_end[i] = total - g->pad_begin[i];
      g->out[i] = out;
    } else if (auto_pad == "VALID") {
      if (in[i] < eff) return ctx.Error("kernel is larger than the input");
      g->out[i] = (in[i] - eff) / s + 1;
    } else if (auto_pad == "NOTSET" || auto_pad.empty()) {
      const int64_t pb = pads[i], pe = pads[i + nd];
      if (pb < 0 || pe < 0) return ctx.Error("negative pads are not supported");
      g->pad_begin[i] = pb;
      g->pad_end[i] = pe;
      const int64_t span = in[i] + pb + pe - eff;
      if (span < 0) return ctx.Error("kernel is larger than the padded input");
      int64_t out = ceil_mode ? (span + s - 1) / s + 1 : span / s + 1;
      // A window may not start inside the end padding (PyTorch's and opset 19's rule).
      if (ceil_mode && (out - 1) * s >= in[i] + pb) --out;
      g->out[i] = out;
    } else {
      return ctx.Error("unknown auto_pad '" + auto_pad + "'");
    }
  }
  return Status::Ok();
}

namespace {

// im2col for 2-D convs: row k = (c, ky, kx), column n = (oy, ox).
class Im2Col2dPacker final : public BPacker {
 public:
  Im2Col2dPacker(const float* x, const ConvGeometry& g) : x_(x), g_(g) {}
  void Pack(int64_t k0, int64_t kc, int64_t n0, int64_t nc, float* dst) const override {
    const int64_t ih = g_.in[0], iw = g_.in[1], ow = g_.out[1];
    const int64_t kh = g_.kernel[0], kw = g_.kernel[1];
    const int64_t sh = g_.stride[0], sw = g_.stride[1];
    const int64_t dh = g_.dilation[0], dw = g_.dilation[1];
    int64_t by[kGemmNr], bx[kGemmNr];
    for (int64_t s = 0; s < nc; s += kGemmNr) {
      const int64_t w = std::min(kGemmNr, nc - s);
      for (int64_t j = 0; j < kGemmNr; ++j) {
        const int64_t col = n0 + s + std::min(j, w - 1);
        by[j] = (col / ow) * sh - g_.pad_begin[0];
        bx[j] = (col % ow) * sw - g_.pad_begin[1];
      }
      const bool one_row = by[0] == by[w - 1] && sw == 1;
      float* strip = dst + s * kc;
      for (int64_t kk = 0; kk < kc; ++kk) {
        const int64_t kidx = k0 + kk;
        const int64_t c = kidx / (kh * kw);
        const int64_t ky = (kidx / kw) % kh, kx = kidx % kw;
        const float* plane = x_ + c * ih * iw;
        float* d = strip + kk * kGemmNr;
        const int64_t oy = ky * dh, ox = kx * dw;
        if (one_row && w == kGemmNr) {
          const int64_t iy = by[0] + oy, ix0 = bx[0] + ox;
          if (iy < 0 || iy >= ih) {
            std::memset(d, 0, sizeof(float) * kGemmNr);
            continue;
          }
          if (ix0 >= 0 && ix0 + kGemmNr <= iw) {
            std::memcpy(d, plane + iy * iw + ix0, sizeof(float) * kGemmNr);
            continue;
          }
        }
        for (int64_t j = 0; j < kGemmNr; ++j) {
          const int64_t iy = by[j] + oy, ix = bx[j] + ox;
          d[j] = (j < w && iy >= 0 && iy < ih && ix >= 0 && ix < iw) ? plane[iy * iw + ix] : 0.0f;
        }
      }
    }
  }

 private:
  const float* x_;
  const ConvGeometry& g_;
};

// im2col for any spatial rank.
class Im2ColNdPacker final : public BPacker {
 public:
  Im2ColNdPacker(const float* x, const ConvGeometry& g) : x_(x), g_(g) {
    in_size_ = 1;
    k_size_ = 1;
    for (int i = 0; i < g.nd; ++i) {
      in_size_ *= g.in[i];
      k_size_ *= g.kernel[i];
    }
  }
  void Pack(int64_t k0, int64_t kc, int64_t n0, int64_t nc, float* dst) const override {
    const int nd = g_.nd;
    std::vector<int64_t> base(static_cast<size_t>(kGemmNr * nd));
    std::vector<int64_t> koff(static_cast<size_t>(nd));
    for (int64_t s = 0; s < nc; s += kGemmNr) {
      const int64_t w = std::min(kGemmNr, nc - s);
      for (int64_t j = 0; j < w; ++j) {
        int64_t col = n0 + s + j;
        for (int i = nd - 1; i >= 0; --i) {
          base[j * nd + i] = (col % g_.out[i]) * g_.stride[i] - g_.pad_begin[i];
          col /= g_.out[i];
        }
      }
      float* strip = dst + s * kc;
      for (int64_t kk = 0; kk < kc; ++kk) {
        int64_t kidx = k0 + kk;
        const int64_t c = kidx / k_size_;
        kidx %= k_size_;
        for (int i = nd - 1; i >= 0; --i) {
          koff[i] = (kidx % g_.kernel[i]) * g_.dilation[i];
          kidx /= g_.kernel[i];
        }
        const float* plane = x_ + c * in_size_;
        float* d = strip + kk * kGemmNr;
        for (int64_t j = 0; j < kGemmNr; ++j) {
          if (j >= w) {
            d[j] = 0.0f;
            continue;
          }
          int64_t off = 0;
          bool inside = true;
          for (int i = 0; i < nd; ++i) {
            const int64_t p = base[j * nd + i] + koff[i];
            if (p < 0 || p >= g_.in[i]) {
              inside = false;
              break;
            }
            off = off * g_.in[i] + p;
          }
          d[j] = inside ? plane[off] : 0.0f;
        }
      }
    }
  }

 private:
  const float* x_;
  const ConvGeometry& g_;
  int64_t in_size_, k_size_;
};

// 2-D depthwise conv: output channel co reads input channel co / multiplier.
void DepthwiseConv2d(const float* x, const float* w, const float* bias, float* y, int64_t batch,
                     int64_t channels, int64_t multiplier, const ConvGeometry& g,
                     ThreadPool* pool) {
  const int64_t ih = g.in[0], iw = g.in[1], oh = g.out[0], ow = g.out[1];
  const int64_t kh = g.kernel[0], kw = g.kernel[1];
  const int64_t sh = g.stride[0], sw = g.stride[1], dh = g.dilation[0], dw = g.dilation[1];
  const int64_t ph = g.pad_begin[0], pw = g.pad_begin[1];
  const int64_t out_channels = channels * multiplier;
  // Valid output column range for each kernel column.
  std::vector<int64_t> lo(static_cast<size_t>(kw)), hi(static_cast<size_t>(kw));
  for (int64_t kx = 0; kx < kw; ++kx) {
    const int64_t off = kx * dw - pw;  // ix = ox*sw + off
    int64_t a = off >= 0 ? 0 : (-off + sw - 1) / sw;
    int64_t b = iw - 1 - off < 0 ? 0 : (iw - 1 - off) / sw + 1;
    lo[kx] = std::min(a, ow);
    hi[kx] = std::min(b, ow);
  }
  ParallelRange(pool, batch * out_channels, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t t = b0; t < b1; ++t) {
      const int64_t co = t % out_channels;
      const int64_t n = t / out_channels;
      const float* plane = x + (n * channels + co / multiplier) * ih * iw;
      const float* wk = w + co * kh * kw;
      float* out = y + t * oh * ow;
      const float bv = bias != nullptr ? bias[co] : 0.0f;
      for (int64_t oy = 0; oy < oh; ++oy) {
        float* orow = out + oy * ow;
        for (int64_t ox = 0; ox < ow; ++ox) orow[ox] = bv;
        for (int64_t ky = 0; ky < kh; ++ky) {
          const int64_t iy = oy * sh - ph + ky * dh;
          if (iy < 0 || iy >= ih) continue;
          const float* irow = plane + iy * iw;
          for (int64_t kx = 0; kx < kw; ++kx) {
            const float wv = wk[ky * kw + kx];
            const int64_t off = kx * dw - pw;
            if (sw == 1) {
              AxpyF32(orow + lo[kx], irow + off + lo[kx], wv, hi[kx] - lo[kx]);
            } else {
              for (int64_t ox = lo[kx]; ox < hi[kx]; ++ox) orow[ox] += wv * irow[ox * sw + off];
            }
          }
        }
      }
    }
  });
}

// f32 convolution: depthwise direct loop, or one GEMM per (image, group).
void ConvF32(const float* xd, const float* wd, const float* bd, float* yd, int64_t batch,
             int64_t channels, int64_t out_channels, int64_t group, const ConvGeometry& g,
             ThreadPool* pool) {
  int64_t in_size = 1, out_size = 1, k_size = 1;
  for (int i = 0; i < g.nd; ++i) {
    in_size *= g.in[i];
    out_size *= g.out[i];
    k_size *= g.kernel[i];
  }
  const int64_t cg = channels / group, mg = out_channels / group;
  if (g.nd == 2 && cg == 1 && group > 1) {
    DepthwiseConv2d(xd, wd, bd, yd, batch, channels, mg, g, pool);
    return;
  }
  bool pointwise = true;
  for (int i = 0; i < g.nd; ++i) {
    pointwise = pointwise && g.kernel[i] == 1 && g.stride[i] == 1 && g.pad_begin[i] == 0 &&
                g.pad_end[i] == 0;
  }
  // 1-D convolutions run as 2-D ones of height 1 (the 2-D im2col packer copies whole runs).
  ConvGeometry g2;
  const ConvGeometry* gp = &g;
  if (g.nd == 1) {
    g2.nd = 2;
    g2.in = {1, g.in[0]};
    g2.out = {1, g.out[0]};
    g2.kernel = {1, g.kernel[0]};
    g2.stride = {1, g.stride[0]};
    g2.dilation = {1, g.dilation[0]};
    g2.pad_begin = {0, g.pad_begin[0]};
    g2.pad_end = {0, g.pad_end[0]};
    gp = &g2;
  }
  for (int64_t n = 0; n < batch; ++n) {
    for (int64_t gi = 0; gi < group; ++gi) {
      const float* xg = xd + (n * channels + gi * cg) * in_size;
      float* yg = yd + (n * out_channels + gi * mg) * out_size;
      if (bd != nullptr) {
        for (int64_t m = 0; m < mg; ++m) std::fill_n(yg + m * out_size, out_size, bd[gi * mg + m]);
      }
      const float* wg = wd + gi * mg * cg * k_size;
      const float beta = bd != nullptr ? 1.0f : 0.0f;
      if (pointwise) {
        MatrixBPacker packer(xg, in_size, false);
        Sgemm(false, mg, out_size, cg, 1.0f, wg, cg, packer, beta, yg, out_size, pool);
      } else if (gp->nd == 2) {
        Im2Col2dPacker packer(xg, *gp);
        Sgemm(false, mg, out_size, cg * k_size, 1.0f, wg, cg * k_size, packer, beta, yg, out_size,
              pool);
      } else {
        Im2ColNdPacker packer(xg, g);
        Sgemm(false, mg, out_size, cg * k_size, 1.0f, wg, cg * k_size, packer, beta, yg, out_size,
              pool);
      }
    }
  }
}

// Direct N-D convolution for any float type, accumulating in double.
template <typename T>
void DirectConv(const T* x, const T* w, const T* bias, T* y, int64_t batch, int64_t channels,
                int64_t out_channels, int64_t group, const ConvGeometry& g) {
  const int nd = g.nd;
  int64_t in_size = 1, out_size = 1, k_size = 1;
  for (int i = 0; i < nd; ++i) {
    in_size *= g.in[i];
    out_size *= g.out[i];
    k_size *= g.kernel[i];
  }
  const int64_t cg = channels / group, mg = out_channels / group;
  std::vector<int64_t> o(nd), kk(nd);
  for (int64_t n = 0; n < batch; ++n) {
    for (int64_t m = 0; m < out_channels; ++m) {
      const int64_t gi = m / mg;
      for (int64_t op = 0; op < out_size; ++op) {
        int64_t rem = op;
        for (int i = nd - 1; i >= 0; --i) {
          o[i] = rem % g.out[i];
          rem /= g.out[i];
        }
        double acc = bias != nullptr ? ToD(bias[m]) : 0.0;
        for (int64_t kp = 0; kp < k_size; ++kp) {
          int64_t r = kp, off = 0;
          bool inside = true;
          for (int i = nd - 1; i >= 0; --i) {
            kk[i] = r % g.kernel[i];
            r /= g.kernel[i];
          }
          for (int i = 0; i < nd && inside; ++i) {
            const int64_t p = o[i] * g.stride[i] - g.pad_begin[i] + kk[i] * g.dilation[i];
            inside = p >= 0 && p < g.in[i];
            off = off * g.in[i] + p;
          }
          if (!inside) continue;
          for (int64_t c = 0; c < cg; ++c) {
            acc += ToD(x[(n * channels + gi * cg + c) * in_size + off]) *
                   ToD(w[(m * cg + c) * k_size + kp]);
          }
        }
        y[(n * out_channels + m) * out_size + op] = FromD<T>(acc);
      }
    }
  }
}

}  // namespace

Status ConvKernel(KernelContext& ctx) {
  const Tensor* x = ctx.input(0);
  const Tensor* w = ctx.input(1);
  const Tensor* b = ctx.input(2);
  if (x == nullptr || w == nullptr) return ctx.Error("inputs X and W are required");
  if (x->rank() < 3 || w->rank() != x->rank()) {
    return ctx.Error("expected X [N,C,spatial...] and W of the same rank, found " + x->Describe() +
                     " and " + w->Describe());
  }
  if (w->type() != x->type() || (b != nullptr && b->type() != x->type())) {
    return ctx.Error("X, W and B must have one element type");
  }
  const int64_t group = ctx.attrs().GetInt("group", 1);
  const int64_t batch = x->dim(0), channels = x->dim(1), out_channels = w->dim(0);
  if (group <= 0 || channels != w->dim(1) * group || out_channels % group != 0) {
    return ctx.Error("channels do not match: X " + x->Describe() + ", W " + w->Describe() +
                     ", group " + std::to_string(group));
  }
  if (b != nullptr && (b->rank() != 1 || b->dim(0) != out_channels)) {
    return ctx.Error("B must be [" + std::to_string(out_channels) + "], found " + b->Describe());
  }
  std::vector<int64_t> in(x->shape().begin() + 2, x->shape().end());
  std::vector<int64_t> kernel(w->shape().begin() + 2, w->shape().end());
  ConvGeometry g;
  KILN_RETURN_IF_ERROR(ComputeConvGeometry(ctx, in, kernel, false, &g));
  Shape out_shape = {batch, out_channels};
  out_shape.insert(out_shape.end(), g.out.begin(), g.out.end());
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.output(0, x->type(), out_shape));
  if (y->size() == 0) return Status::Ok();
  if (x->type() == ElementType::kF32) {
    ConvF32(x->data<float>(), w->data<float>(), b != nullptr ? b->data<float>() : nullptr,
            y->data<float>(), batch, channels, out_channels, group, g, ctx.thread_pool());
    return Status::Ok();
  }
  if (x->type() == ElementType::kF16 || x->type() == ElementType::kBF16) {
    // Narrow floats: widen once, run the f32 path (float accumulation), round on store.
    const std::vector<float> xf = WidenToF32(*x), wf = WidenToF32(*w);
    const std::vector<float> bf = b != nullptr ? WidenToF32(*b) : std::vector<float>();
    std::vector<float> yf(static_cast<size_t>(y->size()));
    ConvF32(xf.data(), wf.data(), b != nullptr ? bf.data() : nullptr, yf.data(), batch, channels,
            out_channels, group, g, ctx.thread_pool());
    NarrowFromF32(yf, y);
    return Status::Ok();
  }
  const bool ok = Dispatch<kDispatchFloat>(x->type(), [&](auto tag) {
    using T = decltype(tag);
    DirectConv<T>(x->data<T>(), w->data<T>(), b != nullptr ? b->data<T>() : nullptr, y->data<T>(),
                  batch, channels, out_channels, group, g);
  });
  if (!ok) return ctx.UnsupportedType(x->type());
  return Status::Ok();
}

// ---- ConvTranspose ------------------------------------------------------------------------

Status ConvTransposeKernel(KernelContext& ctx) {
  const Tensor* x = ctx.input(0);
  const Tensor* w = ctx.input(1);
  const Tensor* b = ctx.input(2);
  if (x == nullptr || w == nullptr) return ctx.Error("inputs X and W are required");
  if (x->rank() < 3 || w->rank() != x->rank()) {
    return ctx.Error("expected X [N,C,spatial...] and W of the same rank, found " + x->Describe() +
                     " and " + w->Describe());
  }
  if (w->type() != x->type() || (b != nullptr && b->type() != x->type())) {
    return ctx.Error("X, W and B must have one element type");
  }
  const Attributes& at = ctx.attrs();
  const int64_t group = at.GetInt("group", 1);
  const int64_t batch = x->dim(0), channels = x->dim(1);
  if (group <= 0 || channels != w->dim(0) || channels % group != 0) {
    return ctx.Error("channels do not match: X " + x->Describe() + ", W " + w->Describe() +
                     ", group " + std::to_string(group));
  }
  const int64_t mg = w->dim(1), out_channels = mg * group, cg = channels / group;
  if (b != nullptr && (b->rank() != 1 || b->dim(0) != out_channels)) {
    return ctx.Error("B must be [" + std::to_string(out_channels) + "], found " + b->Describe());
  }
  const int nd = x->rank() - 2;
  std::vector<int64_t> kernel(w->shape().begin() + 2, w->shape().end());
  std::vector<int64_t> ks = at.GetInts("kernel_shape");
  if (!ks.empty() && ks != kernel) return ctx.Error("kernel_shape disagrees with W");
  auto strides = at.GetInts("strides", std::vector<int64_t>(nd, 1));
  auto dilations = at.GetInts("dilations", std::vector<int64_t>(nd, 1));
  auto pads = at.GetInts("pads", std::vector<int64_t>(2 * nd, 0));
  auto out_pad = at.GetInts("output_padding", std::vector<int64_t>(nd, 0));
  auto out_shape_attr = at.GetInts("output_shape");
  if (static_cast<int>(out_shape_attr.size()) == nd + 2) {
    out_shape_attr.erase(out_shape_attr.begin(), out_shape_attr.begin() + 2);
  }
  if (static_cast<int>(strides.size()) != nd || static_cast<int>(dilations.size()) != nd ||
      static_cast<int>(pads.size()) != 2 * nd || static_cast<int>(out_pad.size()) != nd ||
      (!out_shape_attr.empty() && static_cast<int>(out_shape_attr.size()) != nd)) {
    return ctx.Error("strides/dilations/output_padding/output_shape need " + std::to_string(nd) +
                     " values and pads " + std::to_string(2 * nd));
  }
  const std::string auto_pad = at.GetString("auto_pad", "NOTSET");
  ConvGeometry g;  // in = the ConvTranspose input, out = its output
  g.nd = nd;
  g.kernel = kernel;
  g.stride = strides;
  g.dilation = dilations;
  g.in.assign(x->shape().begin() + 2, x->shape().end());
  g.out.assign(nd, 0);
  g.pad_begin.assign(nd, 0);
  g.pad_end.assign(nd, 0);
  for (int i = 0; i < nd; ++i) {
    if (strides[i] <= 0 || dilations[i] <= 0 || kernel[i] <= 0) {
      return ctx.Error("strides, dilations and kernel dims must be positive");
    }
    const int64_t natural =
        strides[i] * (g.in[i] - 1) + out_pad[i] + (kernel[i] - 1) * dilations[i] + 1;
    const bool same = auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER";
    if (!out_shape_attr.empty() || same) {
      const int64_t out = !out_shape_attr.empty() ? out_shape_attr[i] : g.in[i] * strides[i];
      const int64_t total = std::max<int64_t>(0, natural - out);
      g.pad_begin[i] = auto_pad == "SAME_LOWER" ? total - total / 2 : total / 2;
      g.pad_end[i] = total - g.pad_begin[i];
      g.out[i] = out;
    } else {
      if (auto_pad == "NOTSET" || auto_pad.empty()) {
        g.pad_begin[i] = pads[i];
        g.pad_end[i] = pads[i + nd];
      } else if (auto_pad != "VALID") {
        return ctx.Error("unknown auto_pad '" + auto_pad + "'");
      }
      g.out[i] = natural - g.pad_begin[i] - g.pad_end[i];
    }
    if (g.out[i] < 0) return ctx.Error("computed output size is negative");
  }
  Shape out_shape = {batch, out_channels};
  out_shape.insert(out_shape.end(), g.out.begin(), g.out.end());
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.output(0, x->type(), out_shape));
  int64_t in_size = 1, out_size = 1, k_size = 1;
  for (int i = 0; i < nd; ++i) {
    in_size *= g.in[i];
    out_size *= g.out[i];
    k_size *= kernel[i];
  }
  // For each kernel offset and input position, the output position (or -1 when cropped).
  auto scatter = [&](auto accumulate_fn) {
    std::vector<int64_t> ip(nd), kp(nd);
    for (int64_t kidx = 0; kidx < k_size; ++kidx) {
      int64_t r = kidx;
      for (int i = nd - 1; i >= 0; --i) {
        kp[i] = r % kernel[i];
        r /= kernel[i];
      }
      for (int64_t p = 0; p < in_size; ++p) {
        int64_t q = p, off = 0;
        bool inside = true;
        for (int i = nd - 1; i >= 0; --i) {
          ip[i] = q % g.in[i];
          q /= g.in[i];
        }
        for (int i = 0; i < nd && inside; ++i) {
          const int64_t o = ip[i] * strides[i] - g.pad_begin[i] + kp[i] * dilations[i];
          inside = o >= 0 && o < g.out[i];
          off = off * g.out[i] + o;
        }
        if (inside) accumulate_fn(kidx, p, off);
      }
    }
  };
  // Scatter map shared by all images and channels: output offset of (kernel tap, input pixel).
  std::vector<int64_t> map(static_cast<size_t>(k_size * in_size), -1);
  scatter([&](int64_t kidx, int64_t p, int64_t off) { map[kidx * in_size + p] = off; });
  if (x->type() == ElementType::kF32) {
    const float* xd = x->data<float>();
    const float* wd = w->data<float>();
    float* yd = y->data<float>();
    std::vector<float> cols(static_cast<size_t>(mg * k_size * in_size));
    for (int64_t n = 0; n < batch; ++n) {
      for (int64_t gi = 0; gi < group; ++gi) {
        const float* xg = xd + (n * channels + gi * cg) * in_size;
        // cols[m*K + k, p] = sum_c W[gi*cg + c, m, k] * X[c, p]
        SgemmPlain(true, false, mg * k_size, in_size, cg, 1.0f, wd + gi * cg * mg * k_size,
                   mg * k_size, xg, in_size, 0.0f, cols.data(), in_size, ctx.thread_pool());
        float* yg = yd + (n * out_channels + gi * mg) * out_size;
        ParallelRange(ctx.thread_pool(), mg, 1, [&](int64_t m0, int64_t m1) {
          for (int64_t m = m0; m < m1; ++m) {
            float* plane = yg + m * out_size;
            const float bv = b != nullptr ? b->data<float>()[gi * mg + m] : 0.0f;
            std::fill_n(plane, out_size, bv);
            const float* cm = cols.data() + m * k_size * in_size;
            for (int64_t i = 0; i < k_size * in_size; ++i) {
              if (map[i] >= 0) plane[map[i]] += cm[i];
            }
          }
        });
      }
    }
    return Status::Ok();
  }
  const bool ok = Dispatch<kDispatchFloat>(x->type(), [&](auto tag) {
    using T = decltype(tag);
    const T* xd = x->data<T>();
    const T* wd = w->data<T>();
    T* yd = y->data<T>();
    std::vector<double> acc(static_cast<size_t>(out_size));
    for (int64_t n = 0; n < batch; ++n) {
      for (int64_t m = 0; m < out_channels; ++m) {
        const int64_t gi = m / mg, ml = m % mg;
        std::fill(acc.begin(), acc.end(), b != nullptr ? ToD(b->data<T>()[m]) : 0.0);
        for (int64_t c = 0; c < cg; ++c) {
          const T* xc = xd + (n * channels + gi * cg + c) * in_size;
          const T* wc = wd + ((gi * cg + c) * mg + ml) * k_size;
          for (int64_t kidx = 0; kidx < k_size; ++kidx) {
            const double wv = ToD(wc[kidx]);
            const int64_t* row = map.data() + kidx * in_size;
            for (int64_t p = 0; p < in_size; ++p) {
              if (row[p] >= 0) acc[row[p]] += ToD(xc[p]) * wv;
            }
          }
        }
        for (int64_t i = 0; i < out_size; ++i)
          yd[(n * out_channels + m) * out_size + i] = FromD<T>(acc[i]);
      }
    }
  });
  if (!ok) return ctx.UnsupportedType(x->type());
  return Status::Ok();
}

}  // namespace kiln::nn
