// XNNPACK backend ops with weights: Conv (grouped and depthwise, with a following
// BatchNormalization folded in at compile), ConvTranspose (deconvolution), Gemm and MatMul with
// constant weights (fully connected), and standalone BatchNormalization (scale and shift loop).
// Weights are converted to float32 and re-laid out once here; XNNPACK packs them at create.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <optional>

#include "backends/xnnpack/xnn_fconv.h"
#include "backends/xnnpack/xnn_internal.h"
#include "backends/xnnpack/xnn_ops.h"
#include "core/cpu_features.h"

namespace kiln::xnn {

// Defined with the conv predicates below (after the anonymous namespace's helpers it uses are
// declared there): the expand + depthwise step.
Status ExpandDepthwiseBuild(Builder& b, const Node& n, const Fusion& f);

namespace {

constexpr double kConvGmacs = 25;  // per thread, f32 igemm on AVX2
constexpr double kGbytes = 10;

// Conv / ConvTranspose geometry from attributes and static shapes, or an error saying which
// attribute is not supported.
Result<ConvGeometry> Geometry(const Node& n, const Shape& x, const Shape& w, const Shape& y,
                              bool transpose) {
  ConvGeometry g;
  if (x.size() != 4 || w.size() != 4 || y.size() != 4) {
    return InvalidArgument("only 2D (rank-4) " + n.op_type + " is supported");
  }
  g.group = n.attrs.GetInt("group", 1);
  const std::vector<int64_t> k = n.attrs.GetInts("kernel_shape", {w[2], w[3]});
  if (k.size() != 2 || k[0] != w[2] || k[1] != w[3])
    return InvalidArgument("kernel_shape disagrees with W");
  g.kh = k[0];
  g.kw = k[1];
  const std::vector<int64_t> s = n.attrs.GetInts("strides", {1, 1});
  const std::vector<int64_t> d = n.attrs.GetInts("dilations", {1, 1});
  if (s.size() != 2 || d.size() != 2)
    return InvalidArgument("strides/dilations must have 2 values");
  g.sh = s[0];
  g.sw = s[1];
  g.dh = d[0];
  g.dw = d[1];
  if (g.sh < 1 || g.sw < 1 || g.dh < 1 || g.dw < 1)
    return InvalidArgument("strides/dilations must be >= 1");
  const std::string auto_pad = n.attrs.GetString("auto_pad", "NOTSET");
  const int64_t ekh = (g.kh - 1) * g.dh + 1, ekw = (g.kw - 1) * g.dw + 1;
  if (transpose) {
    if (n.attrs.Has("output_shape"))
      return InvalidArgument("ConvTranspose output_shape is not supported");
    if (auto_pad != "NOTSET" && auto_pad != "VALID") {
      return InvalidArgument("ConvTranspose auto_pad " + auto_pad + " is not supported");
    }
    const std::vector<int64_t> op = n.attrs.GetInts("output_padding", {0, 0});
    if (op.size() != 2) return InvalidArgument("output_padding must have 2 values");
    g.adj_h = op[0];
    g.adj_w = op[1];
    if (g.adj_h >= g.sh || g.adj_w >= g.sw || g.adj_h < 0 || g.adj_w < 0) {
      return InvalidArgument("output_padding must be below the stride");
    }
  } else if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
    const int64_t th = std::max<int64_t>(0, (y[2] - 1) * g.sh + ekh - x[2]);
    const int64_t tw = std::max<int64_t>(0, (y[3] - 1) * g.sw + ekw - x[3]);
    const bool upper = auto_pad == "SAME_UPPER";
    g.pt = upper ? th / 2 : th - th / 2;
    g.pb = th - g.pt;
    g.pl = upper ? tw / 2 : tw - tw / 2;
    g.pr = tw - g.pl;
    return g;
  } else if (auto_pad != "NOTSET" && auto_pad != "VALID") {
    return InvalidArgument("auto_pad " + auto_pad + " is not supported");
  }
  if (auto_pad == "NOTSET") {
    const std::vector<int64_t> p = n.attrs.GetInts("pads", {0, 0, 0, 0});
    if (p.size() != 4) return InvalidArgument("pads must have 4 values");
    for (int64_t v : p) {
      if (v < 0) return InvalidArgument("negative pads are not supported");
    }
    g.pt = p[0];
    g.pl = p[1];
    g.pb = p[2];
    g.pr = p[3];
  }
  // The output shape must be what XNNPACK computes.
  int64_t oh, ow;
  if (transpose) {
    oh = g.sh * (x[2] - 1) + g.adj_h + ekh - g.pt - g.pb;
    ow = g.sw * (x[3] - 1) + g.adj_w + ekw - g.pl - g.pr;
  } else {
    oh = (x[2] + g.pt + g.pb - ekh) / g.sh + 1;
    ow = (x[3] + g.pl + g.pr - ekw) / g.sw + 1;
  }
  if (oh != y[2] || ow != y[3]) {
    return InvalidArgument("output spatial size " + ShapeToString(y) + " is not what " + n.op_type +
                           " computes from its attributes");
  }
  return g;
}

NodeSupport ConvLikeSupports(const NodeQuery& q, bool transpose) {
  const Node& n = *q.node;
  std::string e = CheckFloatNode(q, {0}, 4);
  if (!e.empty()) return NodeSupport::No(e);
  if (q.inputs.size() < 2 || q.constants[1] == nullptr)
    return NodeSupport::No("W is not a constant");
  if (q.inputs.size() > 2 && q.inputs[2] != nullptr && q.constants[2] == nullptr) {
    return NodeSupport::No("B is not a constant");
  }
  const Shape x = q.inputs[0]->static_shape(), y = q.outputs[0]->static_shape();
  const Shape w = q.constants[1]->shape();
  auto g = Geometry(n, x, w, y, transpose);
  if (!g.ok()) return NodeSupport::No(g.status().message());
  const int64_t group = g->group;
  if (group < 1 || x[1] % group != 0 || (transpose ? x[1] != w[0] : w[0] % group != 0) ||
      (!transpose && w[1] * group != x[1])) {
    return NodeSupport::No("group " + std::to_string(group) + " does not fit the shapes");
  }
  return YesFloat(q, kConvGmacs, kGbytes);
}

NodeSupport ConvSupports(const NodeQuery& q) { return ConvLikeSupports(q, false); }

KILN_TARGET_AVX2 float DotAvx2(const float* a, const float* b, int64_t n) {
  __m256 acc = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc);
  __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
  s4 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  s4 = _mm_add_ss(s4, _mm_movehdup_ps(s4));
  float sum = _mm_cvtss_f32(s4);
  for (; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

inline float Dot(const float* a, const float* b, int64_t n, bool avx2) {
  if (avx2) return DotAvx2(a, b, n);
  float sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

// ConvTranspose with stride == kernel, no padding, group 1 (own loop, NHWC): every input pixel
// writes its own kh x kw block of outputs, each a dot product over the input channels.
// kernel: [cout, kh, kw, cin].
Status AddPixelShuffleDeconv(Builder& b, const Node& n, const Fusion& f, const Shape& x, int64_t kh,
                             int64_t kw, int64_t cin, int64_t cout, std::vector<float> kernel,
                             const std::vector<float>& bias) {
  (void)n;
  b.AddWeightBytes(static_cast<int64_t>(kernel.size() + bias.size()) * 4);
  auto w = std::make_shared<std::vector<float>>(std::move(kernel));
  const int64_t h = x[2], wd = x[3], oh = h * kh, ow = wd * kw;
  const float lo = f.out_min, hi = f.out_max;
  const int in = b.Buffer(n.inputs[0]);
  const int out = b.Buffer(f.out);
  b.AddLoop([=](const Workspace& ws, pthreadpool_t pool) {
    const float* src = ws.f(in);
    float* dst = ws.f(out);
    const float* wk = w->data();
    const bool avx2 = CpuHasAvx2();
    ParallelFor(pool, x[0] * h, 1, [&](int64_t s, int64_t e) {
      for (int64_t ny = s; ny < e; ++ny) {
        const int64_t bn = ny / h, y = ny % h;
        for (int64_t xx = 0; xx < wd; ++xx) {
          const float* px = src + (ny * wd + xx) * cin;
          for (int64_t a = 0; a < kh; ++a) {
            float* row = dst + ((bn * oh + y * kh + a) * ow + xx * kw) * cout;
            for (int64_t bb = 0; bb < kw; ++bb) {
              for (int64_t o = 0; o < cout; ++o) {
                const float v = Dot(px, wk + ((o * kh + a) * kw + bb) * cin, cin, avx2) +
                                bias[static_cast<size_t>(o)];
                row[bb * cout + o] = std::min(hi, std::max(lo, v));
              }
            }
          }
        }
      }
    });
  });
  return Status::Ok();
}
NodeSupport ConvTransposeSupports(const NodeQuery& q) { return ConvLikeSupports(q, true); }

// Folds f's per-channel affine (BatchNormalization, Mul, Add after the convolution) into the
// per-output-channel weight scale and the bias.
Status ApplyChannelAffine(const Fusion& f, int64_t channels, std::vector<float>* scale,
                          std::vector<float>* bias) {
  if (f.channel_scale.empty()) return Status::Ok();
  if (static_cast<int64_t>(f.channel_scale.size()) != channels ||
      static_cast<int64_t>(bias->size()) != channels) {
    return InvalidArgument("the folded per-channel parameters do not have " +
                           std::to_string(channels) + " channels");
  }
  for (size_t c = 0; c < scale->size(); ++c) {
    (*scale)[c] = static_cast<float>((*scale)[c] * f.channel_scale[c]);
    (*bias)[c] = static_cast<float>((*bias)[c] * f.channel_scale[c] + f.channel_shift[c]);
  }
  return Status::Ok();
}

std::vector<float> BiasOrZeros(const Builder& b, const Node& n, size_t index, int64_t count) {
  if (n.inputs.size() > index && n.inputs[index].valid())
    return ConstantFloats(*b.constant(n.inputs[index]));
  return std::vector<float>(static_cast<size_t>(count), 0.0f);
}

Status ConvBuildPacking(Builder& b, const Node& n, const Fusion& f) {
  const Shape x = b.shape(n.inputs[0]), y = b.shape(n.outputs[0]);
  const Tensor& wt = *b.constant(n.inputs[1]);
  const Shape w = wt.shape();
  KILN_ASSIGN_OR_RETURN(ConvGeometry g, Geometry(n, x, w, y, false));
  const int64_t m = w[0], cg = w[1], kh = g.kh, kw = g.kw;
  const float* src = ConstantFloatData(wt, b.staging(0));
  std::vector<float> bias = BiasOrZeros(b, n, 2, m);
  std::vector<float> scale(static_cast<size_t>(m), 1.0f);
  KILN_RETURN_IF_ERROR(ApplyChannelAffine(f, m, &scale, &bias));
  const bool unit_scale =
      std::all_of(scale.begin(), scale.end(), [](float v) { return v == 1.0f; });
  if ((f.residual.valid() || f.silu || !std::isnan(f.leaky_alpha)) &&
      !ConvRunsOwnKernel(b.spec(), n, f.silu)) {
    return Internal("a residual Add or SiLU was fused into a Conv that does not run an own kernel");
  }
  // The own kernels' view of this conv (read by the two own paths below).
  FConvSpec s;
  s.batch = x[0];
  s.cin = x[1];
  s.ih = x[2];
  s.iw = x[3];
  s.cout = m;
  s.oh = y[2];
  s.ow = y[3];
  s.kh = kh;
  s.kw = kw;
  s.sh = g.sh;
  s.sw = g.sw;
  s.dh = g.dh;
  s.dw = g.dw;
  s.pt = g.pt;
  s.pl = g.pl;
  s.lo = f.out_min;
  s.hi = f.out_max;
  s.silu = f.silu;
  s.leaky = f.leaky_alpha;
  s.threads = b.spec().threads;
  s.weights = src;
  s.scale = unit_scale ? nullptr : scale.data();
  s.bias = bias.data();
  const FConvIsa isa = FConvIsaFor(b.spec().isa);
  if (g.group == 1 && ConvRunsOwnKernel(b.spec(), n, f.silu)) {
    // The own fp32 kernel (xnn_fconv.h) where the session's ISA level has one and it measured
    // faster than XNNPACK's igemm for this shape; else XNNPACK's operator below.
    const bool winograd = UseWinograd(s, isa);
    // Winograd keeps 4x4 transformed weights per channel pair (16/9 of the 3x3 kernel).
    b.AddWeightBytes(((winograd ? m * cg * 16 : wt.size()) + static_cast<int64_t>(bias.size())) * 4);
    FConvFn run = winograd ? MakeWinogradFConv(s, isa) : MakeOwnFConv(s, isa);
    const int in = b.Buffer(n.inputs[0]);
    const int res = f.residual.valid() ? b.Buffer(f.residual) : -1;
    const int out = b.Buffer(f.out);
    b.AddLoop([=](const Workspace& ws, pthreadpool_t pool) {
      run(ws.f(in), res >= 0 ? ws.f(res) : nullptr, ws.f(out), pool);
    });
    return Status::Ok();
  }
  if (!f.residual.valid() && UseOwnDepthwise(s, g.group, isa)) {
    // Large depthwise kernels: the own loop (XNNPACK's operator runs a grouped GEMM there).
    b.AddWeightBytes((wt.size() + static_cast<int64_t>(bias.size())) * 4);
    FConvFn run = MakeOwnDepthwise(s, isa);
    const int in = b.Buffer(n.inputs[0]);
    const int out = b.Buffer(f.out);
    b.AddLoop([=](const Workspace& ws, pthreadpool_t pool) {
      run(ws.f(in), nullptr, ws.f(out), pool);
    });
    return Status::Ok();
  }
  // ONNX [M, C/g, kh, kw] -> XNNPACK [g, M/g, kh, kw, C/g]: the same order for 1x1 and
  // depthwise kernels, which then go to XNNPACK's packing as stored (no copy).
  const float* kernel = src;
  if (!unit_scale || (kh * kw != 1 && cg != 1)) {
    std::vector<float>& staged = b.staging(1);
    staged.resize(static_cast<size_t>(wt.size()));
    for (int64_t o = 0; o < m; ++o) {
      const float s_o = scale[static_cast<size_t>(o)];
      for (int64_t c = 0; c < cg; ++c) {
        const float* from = src + (o * cg + c) * kh * kw;
        float* to = staged.data() + o * kh * kw * cg + c;
        for (int64_t i = 0; i < kh * kw; ++i) to[i * cg] = from[i] * s_o;
      }
    }
    kernel = staged.data();
  }
  xnn_operator_t op = nullptr;
  const xnn_status st = xnn_create_convolution2d_nhwc_f32(
      static_cast<uint32_t>(g.pt), static_cast<uint32_t>(g.pr), static_cast<uint32_t>(g.pb),
      static_cast<uint32_t>(g.pl), static_cast<uint32_t>(kh), static_cast<uint32_t>(kw),
      static_cast<uint32_t>(g.sh), static_cast<uint32_t>(g.sw), static_cast<uint32_t>(g.dh),
      static_cast<uint32_t>(g.dw), static_cast<uint32_t>(g.group), static_cast<size_t>(cg),
      static_cast<size_t>(m / g.group), static_cast<size_t>(x[1]), static_cast<size_t>(m),
      kernel, bias.data(), f.out_min, f.out_max, 0, &op);
  if (st != xnn_status_success) return XnnError(n, "xnn_create_convolution2d_nhwc_f32", st);
  b.AddWeightBytes((wt.size() + static_cast<int64_t>(bias.size())) * 4);
  const int in = b.Buffer(n.inputs[0]);
  const int out = b.Buffer(f.out);
  b.AddXnn(
      n, XnnOp(op),
      [=](const Workspace& ws, pthreadpool_t pool) {
        return xnn_setup_convolution2d_nhwc_f32(
            op, static_cast<size_t>(x[0]), static_cast<size_t>(x[2]), static_cast<size_t>(x[3]),
            ws.f(in), ws.f(out), pool);
      },
      "xnn_setup_convolution2d_nhwc_f32");
  return Status::Ok();
}

// Every path of ConvBuild copies the weights and bias into a packed form (XNNPACK's operator,
// the own kernels' packing): the model's copies are not read again.
Status ConvBuild(Builder& b, const Node& n, const Fusion& f) {
  KILN_RETURN_IF_ERROR(f.dw != nullptr ? ExpandDepthwiseBuild(b, n, f) : ConvBuildPacking(b, n, f));
  b.Packed(n, n.inputs[1]);
  if (n.inputs.size() > 2) b.Packed(n, n.inputs[2]);
  return Status::Ok();
}

Status ConvTransposeBuild(Builder& b, const Node& n, const Fusion& f) {
  const Shape x = b.shape(n.inputs[0]), y = b.shape(n.outputs[0]);
  const Tensor& wt = *b.constant(n.inputs[1]);
  const Shape w = wt.shape();  // [Cin, Cout/g, kh, kw]
  KILN_ASSIGN_OR_RETURN(ConvGeometry g, Geometry(n, x, w, y, true));
  const int64_t cin = w[0], og = w[1], ig = cin / g.group, kh = g.kh, kw = g.kw;
  const int64_t cout = og * g.group;
  const std::vector<float> src = ConstantFloats(wt);
  std::vector<float> bias = BiasOrZeros(b, n, 2, cout);
  std::vector<float> scale(static_cast<size_t>(cout), 1.0f);
  KILN_RETURN_IF_ERROR(ApplyChannelAffine(f, cout, &scale, &bias));
  // ONNX [g, Ig, Og, kh, kw] -> XNNPACK [g, Og, kh, kw, Ig].
  std::vector<float> kernel(src.size());
  for (int64_t gi = 0; gi < g.group; ++gi) {
    for (int64_t i = 0; i < ig; ++i) {
      for (int64_t o = 0; o < og; ++o) {
        for (int64_t p = 0; p < kh * kw; ++p) {
          kernel[static_cast<size_t>(((gi * og + o) * kh * kw + p) * ig + i)] =
              src[static_cast<size_t>(((gi * ig + i) * og + o) * kh * kw + p)] *
              scale[static_cast<size_t>(gi * og + o)];
        }
      }
    }
  }
  if (g.group == 1 && g.sh == kh && g.sw == kw && g.dh == 1 && g.dw == 1 && g.pt == 0 &&
      g.pl == 0 && g.pb == 0 && g.pr == 0 && g.adj_h == 0 && g.adj_w == 0 && cout <= 4) {
    // Non-overlapping upsampling with few output channels (a segmentation head's last layer):
    // XNNPACK's deconvolution tiles output channels by 8 or more and wastes most of its work.
    return AddPixelShuffleDeconv(b, n, f, x, kh, kw, cin, cout, std::move(kernel), bias);
  }
  xnn_operator_t op = nullptr;
  const xnn_status st = xnn_create_deconvolution2d_nhwc_f32(
      static_cast<uint32_t>(g.pt), static_cast<uint32_t>(g.pr), static_cast<uint32_t>(g.pb),
      static_cast<uint32_t>(g.pl), static_cast<uint32_t>(kh), static_cast<uint32_t>(kw),
      static_cast<uint32_t>(g.sh), static_cast<uint32_t>(g.sw), static_cast<uint32_t>(g.dh),
      static_cast<uint32_t>(g.dw), static_cast<uint32_t>(g.group), static_cast<size_t>(ig),
      static_cast<size_t>(og), static_cast<size_t>(cin), static_cast<size_t>(cout), kernel.data(),
      bias.data(), f.out_min, f.out_max, 0, &op);
  if (st != xnn_status_success) return XnnError(n, "xnn_create_deconvolution2d_nhwc_f32", st);
  b.AddWeightBytes(static_cast<int64_t>(kernel.size() + bias.size()) * 4);
  const int in = b.Buffer(n.inputs[0]);
  const int out = b.Buffer(f.out);
  b.AddXnn(
      n, XnnOp(op),
      [=](const Workspace& ws, pthreadpool_t pool) {
        return xnn_setup_deconvolution2d_nhwc_f32(
            op, static_cast<size_t>(x[0]), static_cast<size_t>(x[2]), static_cast<size_t>(x[3]),
            static_cast<uint32_t>(g.adj_h), static_cast<uint32_t>(g.adj_w), ws.f(in), ws.f(out),
            pool);
      },
      "xnn_setup_deconvolution2d_nhwc_f32");
  b.Packed(n, n.inputs[1]);
  if (n.inputs.size() > 2) b.Packed(n, n.inputs[2]);
  return Status::Ok();
}

// ---- Fully connected: Gemm and MatMul with constant weights ----

NodeSupport GemmSupports(const NodeQuery& q) {
  const Node& n = *q.node;
  std::string e = CheckFloatNode(q, {0}, 2);
  if (!e.empty()) return NodeSupport::No(e);
  if (q.inputs[0]->shape->size() != 2) return NodeSupport::No("A must be 2D");
  if (n.attrs.GetInt("transA", 0) != 0) return NodeSupport::No("transA=1 is not supported");
  if (q.inputs.size() < 2 || q.constants[1] == nullptr)
    return NodeSupport::No("B is not a constant");
  if (q.constants[1]->rank() != 2) return NodeSupport::No("B must be 2D");
  const int64_t nout = q.outputs[0]->static_shape()[1];
  if (q.inputs.size() > 2 && q.inputs[2] != nullptr) {
    if (q.constants[2] == nullptr) return NodeSupport::No("C is not a constant");
    const Tensor& c = *q.constants[2];
    if (c.size() != 1 && c.size() != nout) return NodeSupport::No("C must broadcast along N only");
    if (c.rank() == 2 && c.dim(0) != 1) return NodeSupport::No("C must broadcast along N only");
  }
  return YesFloat(q, kConvGmacs, kGbytes);
}

NodeSupport MatMulSupports(const NodeQuery& q) {
  std::string e = CheckFloatNode(q, {0}, 6);
  if (!e.empty()) return NodeSupport::No(e);
  if (q.inputs[0]->shape->size() < 2) return NodeSupport::No("A must have rank >= 2");
  if (q.inputs.size() < 2 || q.constants[1] == nullptr || q.constants[1]->rank() != 2) {
    return MatMulComputedSupports(q);  // own blocked GEMM per batch
  }
  return YesFloat(q, kConvGmacs, kGbytes);
}

// kernel: [N, K] row-major (output channels, input channels), or [K, N] with
// XNN_FLAG_TRANSPOSE_WEIGHTS.
Status AddFullyConnected(Builder& b, const Node& n, const Fusion& f, ValueId a, int64_t k,
                         int64_t nout, const float* kernel, const std::vector<float>& bias,
                         uint32_t flags) {
  const int64_t rows = NumElements(b.shape(a)) / k;
  const FConvIsa isa = FConvIsaFor(b.spec().isa);
  if (UseOwnFc(rows, k, nout, isa)) {
    // The own GEMM (xnn_fconv.h): a 1x1 convolution over `rows` pixels of k channels.
    FConvSpec s;
    s.ih = s.oh = rows;
    s.cin = k;
    s.cout = nout;
    s.lo = f.out_min;
    s.hi = f.out_max;
    s.weights = kernel;
    s.weights_kn = (flags & XNN_FLAG_TRANSPOSE_WEIGHTS) != 0;
    s.bias = bias.data();
    b.AddWeightBytes((k * nout + static_cast<int64_t>(bias.size())) * 4);
    FConvFn run = MakeOwnFConv(s, isa);
    const int in = b.LogicalIn(a);
    const int out = b.LogicalOut(f.out);
    b.AddLoop(
        [=](const Workspace& ws, pthreadpool_t pool) { run(ws.f(in), nullptr, ws.f(out), pool); });
    b.FinishLogicalOut(f.out, out);
    return Status::Ok();
  }
  xnn_operator_t op = nullptr;
  const xnn_status st = xnn_create_fully_connected_nc_f32(
      static_cast<size_t>(k), static_cast<size_t>(nout), static_cast<size_t>(k),
      static_cast<size_t>(nout), kernel, bias.data(), f.out_min, f.out_max, flags, &op);
  if (st != xnn_status_success) return XnnError(n, "xnn_create_fully_connected_nc_f32", st);
  b.AddWeightBytes((k * nout + static_cast<int64_t>(bias.size())) * 4);
  const int64_t batch = NumElements(b.shape(a)) / k;
  const int in = b.LogicalIn(a);
  const int out = b.LogicalOut(f.out);
  b.AddXnn(
      n, XnnOp(op),
      [=](const Workspace& ws, pthreadpool_t pool) {
        return xnn_setup_fully_connected_nc_f32(op, static_cast<size_t>(batch), ws.f(in), ws.f(out),
                                                pool);
      },
      "xnn_setup_fully_connected_nc_f32");
  b.FinishLogicalOut(f.out, out);
  return Status::Ok();
}

Status GemmBuild(Builder& b, const Node& n, const Fusion& f) {
  const Tensor& bt = *b.constant(n.inputs[1]);
  const bool trans_b = n.attrs.GetInt("transB", 0) != 0;
  const float alpha = n.attrs.GetFloat("alpha", 1.0f), beta = n.attrs.GetFloat("beta", 1.0f);
  const int64_t k = b.shape(n.inputs[0])[1];
  const int64_t nout = trans_b ? bt.dim(0) : bt.dim(1);
  // XNNPACK takes [nout, k], or [k, nout] with XNN_FLAG_TRANSPOSE_WEIGHTS: either is the
  // stored weight itself unless alpha scales it.
  const float* kernel = ConstantFloatData(bt, b.staging(0));
  uint32_t flags = trans_b ? 0 : XNN_FLAG_TRANSPOSE_WEIGHTS;
  if (alpha != 1.0f) {
    std::vector<float>& staged = b.staging(1);
    staged.assign(kernel, kernel + k * nout);
    for (float& v : staged) v *= alpha;
    kernel = staged.data();
  }
  std::vector<float> bias(static_cast<size_t>(nout), 0.0f);
  if (n.inputs.size() > 2 && n.inputs[2].valid()) {
    const std::vector<float> c = ConstantFloats(*b.constant(n.inputs[2]));
    for (int64_t o = 0; o < nout; ++o)
      bias[static_cast<size_t>(o)] = beta * c[c.size() == 1 ? 0 : static_cast<size_t>(o)];
  }
  KILN_RETURN_IF_ERROR(AddFullyConnected(b, n, f, n.inputs[0], k, nout, kernel, bias, flags));
  b.Packed(n, n.inputs[1]);  // packed by the own GEMM or XNNPACK's operator; C copied
  if (n.inputs.size() > 2) b.Packed(n, n.inputs[2]);
  return Status::Ok();
}
Status MatMulBuild(Builder& b, const Node& n, const Fusion& f) {
  if (b.constant(n.inputs[1]) == nullptr || b.constant(n.inputs[1])->rank() != 2) {
    return BuildBatchMatMul(b, n, f);
  }
  const Tensor& bt = *b.constant(n.inputs[1]);
  const int64_t k = bt.dim(0), nout = bt.dim(1);
  // [k, nout] as stored: XNNPACK transposes while it packs.
  const float* kernel = ConstantFloatData(bt, b.staging(0));
  std::vector<float> bias(static_cast<size_t>(nout), 0.0f);
  if (f.bias != nullptr) bias = ConstantFloats(*f.bias);
  if (static_cast<int64_t>(bias.size()) != nout) return InvalidArgument("MatMul bias size");
  KILN_RETURN_IF_ERROR(
      AddFullyConnected(b, n, f, n.inputs[0], k, nout, kernel, bias, XNN_FLAG_TRANSPOSE_WEIGHTS));
  b.Packed(n, n.inputs[1]);
  return Status::Ok();
}

// ---- Standalone BatchNormalization: y = x * s[c] + t[c] (float accumulation) ----

typedef float V8a __attribute__((vector_size(32), aligned(4)));
typedef float V16a __attribute__((vector_size(64), aligned(4)));

// y[i] = clamp(x[i] * s[i] + t[i], lo, hi) for i < n in vectors of W; returns where the scalar
// tail starts.
template <typename V, int W>
__attribute__((always_inline)) inline int64_t AffineRow(const float* x, const float* s,
                                                        const float* t, float* y, int64_t n,
                                                        float lo, float hi) {
  const V vlo = V{} + lo, vhi = V{} + hi;
  int64_t i = 0;
  for (; i + W <= n; i += W) {
    V xv, sv, tv;
    __builtin_memcpy(&xv, x + i, sizeof(V));
    __builtin_memcpy(&sv, s + i, sizeof(V));
    __builtin_memcpy(&tv, t + i, sizeof(V));
    V v = xv * sv + tv;
    v = v < vlo ? vlo : v;
    v = v > vhi ? vhi : v;
    __builtin_memcpy(y + i, &v, sizeof(V));
  }
  return i;
}
KILN_TARGET_AVX2 int64_t AffineRowAvx2(const float* x, const float* s, const float* t, float* y,
                                       int64_t n, float lo, float hi) {
  return AffineRow<V8a, 8>(x, s, t, y, n, lo, hi);
}
__attribute__((target("avx512f,fma"))) int64_t AffineRowAvx512(const float* x, const float* s,
                                                               const float* t, float* y, int64_t n,
                                                               float lo, float hi) {
  return AffineRow<V16a, 16>(x, s, t, y, n, lo, hi);
}

NodeSupport BatchNormSupports(const NodeQuery& q) {
  std::string e = CheckFloatNode(q, {0}, 6);
  if (!e.empty()) return NodeSupport::No(e);
  if (q.inputs[0]->shape->size() < 2) return NodeSupport::No("X must have rank >= 2");
  if (q.node->attrs.GetInt("training_mode", 0) != 0) return NodeSupport::No("training_mode=1");
  for (size_t i = 1; i < 5; ++i) {
    if (i >= q.constants.size() || q.constants[i] == nullptr) {
      return NodeSupport::No("input " + std::to_string(i) + " is not a constant");
    }
  }
  return YesFloat(q, kConvGmacs, kGbytes);
}

Status BatchNormBuild(Builder& b, const Node& n, const Fusion& f) {
  const Shape x = b.shape(n.inputs[0]);
  const std::vector<float> gamma = ConstantFloats(*b.constant(n.inputs[1]));
  const std::vector<float> beta = ConstantFloats(*b.constant(n.inputs[2]));
  const std::vector<float> mean = ConstantFloats(*b.constant(n.inputs[3]));
  const std::vector<float> var = ConstantFloats(*b.constant(n.inputs[4]));
  const int64_t c = x[1];
  if (static_cast<int64_t>(gamma.size()) != c || beta.size() != gamma.size() ||
      mean.size() != gamma.size() || var.size() != gamma.size()) {
    return InvalidArgument("parameters do not have " + std::to_string(c) + " channels");
  }
  const double eps = n.attrs.GetFloat("epsilon", 1e-5f);
  std::vector<float> s(static_cast<size_t>(c)), t(static_cast<size_t>(c));
  for (size_t i = 0; i < s.size(); ++i) {
    const double sc = gamma[i] / std::sqrt(static_cast<double>(var[i]) + eps);
    s[i] = static_cast<float>(sc);
    t[i] = static_cast<float>(beta[i] - mean[i] * sc);
  }
  b.AddWeightBytes(c * 8);
  // Physical position of the channel dim, and the element counts around it.
  const std::vector<int> p = b.perm(n.inputs[0]);
  const Shape phys = Permuted(x, p);
  int64_t outer = 1, inner = 1;
  bool after = false;
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] == 1) {
      after = true;
    } else if (after) {
      inner *= phys[i];
    } else {
      outer *= phys[i];
    }
  }
  const float lo = f.out_min, hi = f.out_max;
  const CpuIsa isa = b.spec().isa;
  const int in = b.Buffer(n.inputs[0]);
  const int out = b.Buffer(f.out);
  b.AddLoop([=](const Workspace& ws, pthreadpool_t pool) {
    const float* src = ws.f(in);
    float* dst = ws.f(out);
    if (inner == 1) {  // channels last: one row of c per outer index
      ParallelFor(pool, outer, std::max<int64_t>(1, 4096 / c), [&](int64_t b0, int64_t e0) {
        for (int64_t r = b0; r < e0; ++r) {
          const float* xs = src + r * c;
          float* ys = dst + r * c;
          int64_t i = 0;
          if (isa >= CpuIsa::kAvx512) {
            i = AffineRowAvx512(xs, s.data(), t.data(), ys, c, lo, hi);
          } else if (isa >= CpuIsa::kAvx2) {
            i = AffineRowAvx2(xs, s.data(), t.data(), ys, c, lo, hi);
          }
          for (; i < c; ++i) {
            const float v = xs[i] * s[static_cast<size_t>(i)] + t[static_cast<size_t>(i)];
            ys[i] = std::min(hi, std::max(lo, v));
          }
        }
      });
      return;
    }
    ParallelFor(pool, outer * c, std::max<int64_t>(1, 4096 / inner), [&](int64_t b0, int64_t e0) {
      for (int64_t r = b0; r < e0; ++r) {
        const size_t ch = static_cast<size_t>(r % c);
        const float sc = s[ch], sh = t[ch];
        const float* xs = src + r * inner;
        float* ys = dst + r * inner;
        for (int64_t i = 0; i < inner; ++i) ys[i] = std::min(hi, std::max(lo, xs[i] * sc + sh));
      }
    });
  });
  return Status::Ok();
}

}  // namespace

Result<ConvGeometry> ConvGeometryOf(const Node& n, const Shape& x, const Shape& w, const Shape& y) {
  return Geometry(n, x, w, y, false);
}

bool ConvRunsOwnKernel(const PartitionSpec& spec, const Node& n, bool silu) {
  const FConvIsa isa = FConvIsaFor(spec.isa);
  if (isa == FConvIsa::kNone || n.inputs.size() < 2 || n.outputs.empty()) return false;
  const Tensor* w = spec.constant(n.inputs[1]);
  const TypeInfo& xt = (*spec.types)[n.inputs[0].v];
  const TypeInfo& yt = (*spec.types)[n.outputs[0].v];
  if (w == nullptr || !xt.has_static_shape() || !yt.has_static_shape()) return false;
  const Shape x = xt.static_shape(), y = yt.static_shape();
  auto g = Geometry(n, x, w->shape(), y, false);
  if (!g.ok()) return false;
  FConvSpec s;
  s.cin = x[1];
  s.cout = w->dim(0);
  s.kh = g->kh;
  s.kw = g->kw;
  s.silu = silu;
  if (g->group != 1) return silu && UseOwnDepthwise(s, g->group, isa);
  return UseOwnFConv(s, isa);
}

namespace {

// A float Conv node with a constant 4D weight, a constant bias if any, and static 4D input and
// output shapes, at an ISA level with own kernels: its shapes and geometry (the common test of
// ConvIsExpansion and ConvIsFixedDepthwise).
struct OwnConvView {
  Shape x, y;
  const Tensor* w = nullptr;
  ConvGeometry g;
};
std::optional<OwnConvView> ViewOwnFloatConv(const PartitionSpec& spec, const Node& n) {
  if (FConvIsaFor(spec.isa) == FConvIsa::kNone || n.op_type != "Conv" || n.inputs.size() < 2 ||
      n.outputs.empty()) {
    return std::nullopt;
  }
  OwnConvView v;
  v.w = spec.constant(n.inputs[1]);
  if (n.inputs.size() > 2 && n.inputs[2].valid() && spec.constant(n.inputs[2]) == nullptr)
    return std::nullopt;
  const TypeInfo& xt = (*spec.types)[n.inputs[0].v];
  const TypeInfo& yt = (*spec.types)[n.outputs[0].v];
  if (v.w == nullptr || v.w->rank() != 4 || !xt.has_static_shape() || !yt.has_static_shape() ||
      xt.type != ElementType::kF32 || yt.type != ElementType::kF32) {
    return std::nullopt;
  }
  v.x = xt.static_shape();
  v.y = yt.static_shape();
  if (v.x.size() != 4 || v.y.size() != 4) return std::nullopt;
  auto g = Geometry(n, v.x, v.w->shape(), v.y, false);
  if (!g.ok()) return std::nullopt;
  v.g = *g;
  return v;
}

}  // namespace

bool ConvIsExpansion(const PartitionSpec& spec, const Node& n) {
  const std::optional<OwnConvView> v = ViewOwnFloatConv(spec, n);
  if (!v) return false;
  const ConvGeometry& g = v->g;
  if (g.group != 1 || g.kh != 1 || g.kw != 1 || g.sh != 1 || g.sw != 1 || g.pt != 0 ||
      g.pl != 0 || g.pb != 0 || g.pr != 0 || v->y[2] != v->x[2] || v->y[3] != v->x[3]) {
    return false;
  }
  return v->y[1] * v->y[2] * v->y[3] * 4 >= kExpandDwMinBytes;
}

bool ConvIsFixedDepthwise(const PartitionSpec& spec, const Node& n) {
  const std::optional<OwnConvView> v = ViewOwnFloatConv(spec, n);
  if (!v) return false;
  const int64_t c = v->x[1];
  if (v->g.group != c || v->w->dim(0) != c || v->w->dim(1) != 1) return false;
  FConvSpec s;
  s.kh = v->g.kh;
  s.kw = v->g.kw;
  s.sh = v->g.sh;
  s.sw = v->g.sw;
  s.dh = v->g.dh;
  s.dw = v->g.dw;
  return DepthwiseRowsFixed(s);
}

// Expansion 1x1 conv n + the depthwise conv f.dw (ConvIsExpansion, ConvIsFixedDepthwise), each
// with its folded affine and activation, as one step: per image, the output rows split in one
// run per thread; a run keeps a ring of kh + stride expansion rows (computed by the own 1x1
// kernel one input row at a time as the depthwise rows need them, between zero columns of the
// depthwise padding) and writes each depthwise output row from kh row pointers. The expanded activation (mobilenet_v2: 112 x 112 x 96 floats,
// 4.8 MB) is never stored whole: its rows stay in L1/L2 between the two convs.
Status ExpandDepthwiseBuild(Builder& b, const Node& n, const Fusion& f) {
  const Node& d = *f.dw;
  const Shape x = b.shape(n.inputs[0]), mid = b.shape(n.outputs[0]), y = b.shape(d.outputs[0]);
  const Tensor& we = *b.constant(n.inputs[1]);
  const Tensor& wd = *b.constant(d.inputs[1]);
  KILN_ASSIGN_OR_RETURN(ConvGeometry gd, Geometry(d, mid, wd.shape(), y, false));
  const int64_t batch = x[0], cin = x[1], cmid = mid[1], ih = mid[2], iw = mid[3];
  const int64_t oh = y[2], ow = y[3];
  const FConvIsa isa = FConvIsaFor(b.spec().isa);
  // The expansion: weights [cmid][cin], its affine folded into scale and bias.
  std::vector<float> be = BiasOrZeros(b, n, 2, cmid);
  std::vector<float> se(static_cast<size_t>(cmid), 1.0f);
  KILN_RETURN_IF_ERROR(ApplyChannelAffine(f, cmid, &se, &be));
  std::vector<float> we_data = ConstantFloats(we);
  FConvSpec es;
  es.cin = cin;
  es.cout = cmid;
  es.lo = f.out_min;
  es.hi = f.out_max;
  es.silu = f.silu;
  es.weights = we_data.data();
  es.scale = se.data();
  es.bias = be.data();
  FConvRowsFn expand = MakeOwnFConvRows(es, isa);
  // The depthwise conv with its own affine and activation.
  Fusion fd;
  fd.channel_scale = f.dw_scale;
  fd.channel_shift = f.dw_shift;
  std::vector<float> bd = BiasOrZeros(b, d, 2, cmid);
  std::vector<float> sd(static_cast<size_t>(cmid), 1.0f);
  KILN_RETURN_IF_ERROR(ApplyChannelAffine(fd, cmid, &sd, &bd));
  std::vector<float> wd_data = ConstantFloats(wd);
  // The ring's rows carry the depthwise conv's left and right padding as zero columns, so that
  // the row kernel sees a conv without horizontal padding: every output pixel's window lies
  // inside its row and takes the unrolled pixel groups (the edge pixels' generic per-tap loop
  // was most of the time on 14- and 7-wide maps with 5x5 kernels).
  const int64_t pl = gd.pl;
  const int64_t pr = std::max<int64_t>(0, (ow - 1) * gd.sw - pl + gd.kw - iw);
  const int64_t pw = pl + iw + pr;  // padded row width in pixels
  FConvSpec ds;
  ds.batch = 1;
  ds.cin = ds.cout = cmid;
  ds.ih = ih;
  ds.iw = pw;
  ds.oh = oh;
  ds.ow = ow;
  ds.kh = gd.kh;
  ds.kw = gd.kw;
  ds.sh = gd.sh;
  ds.sw = gd.sw;
  ds.pt = gd.pt;
  ds.pl = 0;
  ds.lo = f.dw_min;
  ds.hi = f.dw_max;
  ds.silu = f.dw_silu;
  ds.weights = wd_data.data();
  ds.scale = sd.data();
  ds.bias = bd.data();
  DwRowFn dwrow = MakeOwnDepthwiseRow(ds, isa);
  b.AddWeightBytes((we.size() + wd.size() + 2 * cmid) * 4);
  const int in = b.Buffer(n.inputs[0]);
  const int out = b.Buffer(f.out);
  const int64_t kh = gd.kh, sh = gd.sh, pt = gd.pt, ring = kh + sh;
  const int64_t runs = std::max(1, b.spec().threads);
  b.AddLoop([=](const Workspace& ws, pthreadpool_t pool) {
    const float* xs = ws.f(in);
    float* ys = ws.f(out);
    ParallelFor(pool, batch * runs, 1, [&](int64_t t0, int64_t t1) {
      thread_local std::vector<float> rows_buf;
      rows_buf.resize(static_cast<size_t>(ring * pw * cmid));
      for (int64_t r = 0; r < ring; ++r) {  // the padding columns (the buffer is shared)
        float* row = rows_buf.data() + r * pw * cmid;
        std::fill(row, row + pl * cmid, 0.0f);
        std::fill(row + (pl + iw) * cmid, row + pw * cmid, 0.0f);
      }
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t img = t / runs, part = t % runs;
        const int64_t oy0 = part * oh / runs, oy1 = (part + 1) * oh / runs;
        const float* ximg = xs + img * ih * iw * cin;
        int64_t next = std::max<int64_t>(0, oy0 * sh - pt);  // next expansion row to compute
        for (int64_t oy = oy0; oy < oy1; ++oy) {
          const int64_t iy0 = oy * sh - pt;
          const int64_t need = std::min(ih, iy0 + kh);
          for (; next < need; ++next) {
            expand(ximg + next * iw * cin, rows_buf.data() + (next % ring * pw + pl) * cmid, iw);
          }
          const float* rows[5] = {};
          for (int64_t ky = 0; ky < kh; ++ky) {
            const int64_t iy = iy0 + ky;
            rows[ky] = iy >= 0 && iy < ih ? rows_buf.data() + iy % ring * pw * cmid : nullptr;
          }
          dwrow(rows, ys + ((img * oh + oy) * ow) * cmid);
        }
      }
    });
  });
  b.Packed(d, d.inputs[1]);
  if (d.inputs.size() > 2 && d.inputs[2].valid()) b.Packed(d, d.inputs[2]);
  return Status::Ok();
}

void AddConvOps(std::vector<OpDef>& table) {
  table.push_back({"Conv", ConvSupports, ConvBuild, true});
  table.push_back({"ConvTranspose", ConvTransposeSupports, ConvTransposeBuild, true});
  table.push_back({"Gemm", GemmSupports, GemmBuild, true});
  table.push_back({"MatMul", MatMulSupports, MatMulBuild, true});
  table.push_back({"BatchNormalization", BatchNormSupports, BatchNormBuild, true});
}

}  // namespace kiln::xnn
