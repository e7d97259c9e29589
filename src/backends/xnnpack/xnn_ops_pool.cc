// XNNPACK backend pooling, Softmax and Resize: MaxPool / AveragePool / GlobalAveragePool (NHWC
// XNNPACK operators; ceil_mode as extra bottom/right padding for MaxPool), Softmax over the last
// logical axis (or axis 1 of a 4D tensor, the physical last in NHWC), Resize linear (XNNPACK
// bilinear, coordinate modes mapped to its flags) and nearest (own loop, exact index rules).
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "backends/xnnpack/xnn_internal.h"
#include "backends/xnnpack/xnn_ops.h"
#include "core/cpu_features.h"

namespace kiln::xnn {

namespace {

constexpr double kGmacs = 25;
constexpr double kGbytes = 10;

// ---- MaxPool / AveragePool ----

}  // namespace

Result<PoolGeometry> PoolGeometryOf(const Node& n, const Shape& x, const Shape& y) {
  const bool is_max = n.op_type == "MaxPool";
  if (x.size() != 4) return InvalidArgument("only 2D (rank-4) pooling is supported");
  const std::vector<int64_t> k = n.attrs.GetInts("kernel_shape");
  if (k.size() != 2) return InvalidArgument("kernel_shape must have 2 values");
  PoolGeometry g{};
  g.kh = k[0];
  g.kw = k[1];
  if (g.kh * g.kw <= 1) return InvalidArgument("1x1 pooling is not supported by XNNPACK");
  const std::vector<int64_t> s = n.attrs.GetInts("strides", {1, 1});
  const std::vector<int64_t> d = n.attrs.GetInts("dilations", {1, 1});
  if (s.size() != 2 || d.size() != 2)
    return InvalidArgument("strides/dilations must have 2 values");
  g.sh = s[0];
  g.sw = s[1];
  g.dh = d[0];
  g.dw = d[1];
  if (!is_max && (g.dh != 1 || g.dw != 1))
    return InvalidArgument("AveragePool dilations are not supported");
  if (g.sh < 1 || g.sw < 1 || g.dh < 1 || g.dw < 1)
    return InvalidArgument("strides/dilations must be >= 1");
  const int64_t ekh = (g.kh - 1) * g.dh + 1, ekw = (g.kw - 1) * g.dw + 1;
  const std::string auto_pad = n.attrs.GetString("auto_pad", "NOTSET");
  if (auto_pad == "NOTSET") {
    const std::vector<int64_t> p = n.attrs.GetInts("pads", {0, 0, 0, 0});
    if (p.size() != 4) return InvalidArgument("pads must have 4 values");
    g.pt = p[0];
    g.pl = p[1];
    g.pb = p[2];
    g.pr = p[3];
  } else if (auto_pad == "VALID") {
    g.pt = g.pl = g.pb = g.pr = 0;
  } else if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
    const int64_t th = std::max<int64_t>(0, (y[2] - 1) * g.sh + ekh - x[2]);
    const int64_t tw = std::max<int64_t>(0, (y[3] - 1) * g.sw + ekw - x[3]);
    const bool upper = auto_pad == "SAME_UPPER";
    g.pt = upper ? th / 2 : th - th / 2;
    g.pb = th - g.pt;
    g.pl = upper ? tw / 2 : tw - tw / 2;
    g.pr = tw - g.pl;
  } else {
    return InvalidArgument("auto_pad " + auto_pad + " is not supported");
  }
  if (g.pt < 0 || g.pl < 0 || g.pb < 0 || g.pr < 0) return InvalidArgument("negative pads");
  // ceil_mode (or SAME) may need windows past the bottom/right edge: extra padding.
  const int64_t xh = std::max<int64_t>(0, (y[2] - 1) * g.sh + ekh - (x[2] + g.pt + g.pb));
  const int64_t xw = std::max<int64_t>(0, (y[3] - 1) * g.sw + ekw - (x[3] + g.pl + g.pr));
  if (xh > 0 || xw > 0) {
    if (!is_max)
      return InvalidArgument("AveragePool ceil_mode windows past the edge are not supported");
    g.pb += xh;
    g.pr += xw;
  }
  if (!is_max && n.attrs.GetInt("count_include_pad", 0) != 0 && (g.pt || g.pl || g.pb || g.pr)) {
    return InvalidArgument("AveragePool count_include_pad=1 with padding is not supported");
  }
  if ((x[2] + g.pt + g.pb - ekh) / g.sh + 1 != y[2] ||
      (x[3] + g.pl + g.pr - ekw) / g.sw + 1 != y[3]) {
    return InvalidArgument("output size " + ShapeToString(y) + " does not match the attributes");
  }
  return g;
}

namespace {

// MaxPool over NHWC rows, own loop (XNNPACK 2022's f32 max pooling took resnet50's 3x3 s2 pool
// at 112x112x64 in 0.34 ms, ONNX Runtime 0.15): per output pixel and vector of W channels the
// max over the window's taps inside the image (padding never wins: ONNX pads with -inf), then
// the fused clamp; the channel tail scalar. One output row per call.
template <typename V, int W>
__attribute__((always_inline)) inline void MaxPoolRow(const PoolGeometry& g, const Shape& x,
                                                      int64_t ow, const float* image, int64_t oy,
                                                      float* out, float lo, float hi) {
  const int64_t ih = x[2], iw = x[3], c = x[1];
  const int64_t iy0 = oy * g.sh - g.pt;
  int64_t ky0 = 0, ky1 = g.kh;
  while (ky0 < ky1 && iy0 + ky0 * g.dh < 0) ++ky0;
  while (ky1 > ky0 && iy0 + (ky1 - 1) * g.dh >= ih) --ky1;
  const V vlo = V{} + lo, vhi = V{} + hi;
  for (int64_t ox = 0; ox < ow; ++ox, out += c) {
    const int64_t ix0 = ox * g.sw - g.pl;
    int64_t kx0 = 0, kx1 = g.kw;
    while (kx0 < kx1 && ix0 + kx0 * g.dw < 0) ++kx0;
    while (kx1 > kx0 && ix0 + (kx1 - 1) * g.dw >= iw) --kx1;
    int64_t ch = 0;
    for (; ch + W <= c; ch += W) {
      V m = V{} - INFINITY;
      for (int64_t ky = ky0; ky < ky1; ++ky) {
        const float* row = image + ((iy0 + ky * g.dh) * iw + ix0 + kx0 * g.dw) * c + ch;
        for (int64_t kx = 0; kx < kx1 - kx0; ++kx) {
          V v;
          __builtin_memcpy(&v, row + kx * g.dw * c, sizeof(V));
          m = v > m ? v : m;
        }
      }
      m = m < vlo ? vlo : m;
      m = m > vhi ? vhi : m;
      __builtin_memcpy(out + ch, &m, sizeof(V));
    }
    for (; ch < c; ++ch) {
      float m = -INFINITY;
      for (int64_t ky = ky0; ky < ky1; ++ky) {
        const float* row = image + ((iy0 + ky * g.dh) * iw + ix0 + kx0 * g.dw) * c + ch;
        for (int64_t kx = 0; kx < kx1 - kx0; ++kx) m = std::max(m, row[kx * g.dw * c]);
      }
      out[ch] = std::min(hi, std::max(lo, m));
    }
  }
}

typedef float V8p __attribute__((vector_size(32), aligned(4)));
typedef float V16p __attribute__((vector_size(64), aligned(4)));

KILN_TARGET_AVX2 void MaxPoolRowAvx2(const PoolGeometry& g, const Shape& x, int64_t ow,
                                     const float* image, int64_t oy, float* out, float lo,
                                     float hi) {
  MaxPoolRow<V8p, 8>(g, x, ow, image, oy, out, lo, hi);
}
__attribute__((target("avx512f"))) void MaxPoolRowAvx512(const PoolGeometry& g, const Shape& x,
                                                         int64_t ow, const float* image,
                                                         int64_t oy, float* out, float lo,
                                                         float hi) {
  MaxPoolRow<V16p, 16>(g, x, ow, image, oy, out, lo, hi);
}

NodeSupport PoolSupports(const NodeQuery& q) {
  std::string e = CheckFloatNode(q, {0}, 4);
  if (!e.empty()) return NodeSupport::No(e);
  auto g = PoolGeometryOf(*q.node, q.inputs[0]->static_shape(), q.outputs[0]->static_shape());
  if (!g.ok()) return NodeSupport::No(g.status().message());
  return YesFloat(q, kGmacs, kGbytes);
}

Status PoolBuild(Builder& b, const Node& n, const Fusion& f) {
  const Shape x = b.shape(n.inputs[0]), y = b.shape(n.outputs[0]);
  KILN_ASSIGN_OR_RETURN(PoolGeometry g, PoolGeometryOf(n, x, y));
  const size_t c = static_cast<size_t>(x[1]);
  xnn_operator_t op = nullptr;
  const bool is_max = n.op_type == "MaxPool";
  const CpuIsa isa = b.spec().isa;
  if (is_max && isa >= CpuIsa::kAvx2) {
    const int in = b.Buffer(n.inputs[0]);
    const int out = b.Buffer(f.out);
    const float lo = f.out_min, hi = f.out_max;
    const auto row_fn = isa >= CpuIsa::kAvx512 ? MaxPoolRowAvx512 : MaxPoolRowAvx2;
    b.AddLoop([=](const Workspace& ws, pthreadpool_t pool) {
      const float* xs = ws.f(in);
      float* ys = ws.f(out);
      const int64_t rows = y[0] * y[2];
      ParallelFor(pool, rows, std::max<int64_t>(1, 4096 / (y[3] * x[1])), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
          const int64_t img = r / y[2], oy = r % y[2];
          row_fn(g, x, y[3], xs + img * x[2] * x[3] * x[1], oy, ys + r * y[3] * x[1], lo, hi);
        }
      });
    });
    return Status::Ok();
  }
  xnn_status st;
  if (is_max) {
    st = xnn_create_max_pooling2d_nhwc_f32(
        static_cast<uint32_t>(g.pt), static_cast<uint32_t>(g.pr), static_cast<uint32_t>(g.pb),
        static_cast<uint32_t>(g.pl), static_cast<uint32_t>(g.kh), static_cast<uint32_t>(g.kw),
        static_cast<uint32_t>(g.sh), static_cast<uint32_t>(g.sw), static_cast<uint32_t>(g.dh),
        static_cast<uint32_t>(g.dw), c, c, c, f.out_min, f.out_max, 0, &op);
  } else {
    st = xnn_create_average_pooling2d_nhwc_f32(
        static_cast<uint32_t>(g.pt), static_cast<uint32_t>(g.pr), static_cast<uint32_t>(g.pb),
        static_cast<uint32_t>(g.pl), static_cast<uint32_t>(g.kh), static_cast<uint32_t>(g.kw),
        static_cast<uint32_t>(g.sh), static_cast<uint32_t>(g.sw), c, c, c, f.out_min, f.out_max, 0,
        &op);
  }
  if (st != xnn_status_success) return XnnError(n, "xnn_create_*_pooling2d_nhwc_f32", st);
  const int in = b.Buffer(n.inputs[0]);
  const int out = b.Buffer(f.out);
  b.AddXnn(
      n, XnnOp(op),
      [=](const Workspace& ws, pthreadpool_t pool) {
        return (is_max ? xnn_setup_max_pooling2d_nhwc_f32 : xnn_setup_average_pooling2d_nhwc_f32)(
            op, static_cast<size_t>(x[0]), static_cast<size_t>(x[2]), static_cast<size_t>(x[3]),
            ws.f(in), ws.f(out), pool);
      },
      "xnn_setup_*_pooling2d_nhwc_f32");
  return Status::Ok();
}

NodeSupport GlobalPoolSupports(const NodeQuery& q) {
  std::string e = CheckFloatNode(q, {0}, 4);
  if (!e.empty()) return NodeSupport::No(e);
  if (q.inputs[0]->shape->size() != 4) return NodeSupport::No("only rank-4 input is supported");
  return YesFloat(q, kGmacs, kGbytes);
}

// sums[i] = sum over `pixels` rows (ld floats apart) of row[i], i < 8 * J: J ymm sums in
// registers while the rows stream by.
template <int J>
KILN_TARGET_AVX2 inline void SumColumnsBlock(const float* base, int64_t pixels, int64_t ld,
                                             float* sums) {
  __m256 acc[J];
  for (__m256& a : acc) a = _mm256_setzero_ps();
  for (int64_t p = 0; p < pixels; ++p) {
    const float* row = base + p * ld;
#pragma GCC unroll 8
    for (int j = 0; j < J; ++j) acc[j] = _mm256_add_ps(acc[j], _mm256_loadu_ps(row + 8 * j));
  }
  for (int j = 0; j < J; ++j) _mm256_storeu_ps(sums + 8 * j, acc[j]);
}

// Columns [0, n) in register blocks of 64, 32, 16 and 8; returns where the portable tail starts.
KILN_TARGET_AVX2 int64_t SumColumnsAvx2(const float* base, int64_t pixels, int64_t ld, int64_t n,
                                        float* sums) {
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) SumColumnsBlock<8>(base + i, pixels, ld, sums + i);
  if (i + 32 <= n) {
    SumColumnsBlock<4>(base + i, pixels, ld, sums + i);
    i += 32;
  }
  if (i + 16 <= n) {
    SumColumnsBlock<2>(base + i, pixels, ld, sums + i);
    i += 16;
  }
  if (i + 8 <= n) {
    SumColumnsBlock<1>(base + i, pixels, ld, sums + i);
    i += 8;
  }
  return i;
}

// GlobalAveragePool (NHWC): per image, each channel's values added in pixel order into float sums
// (blocks of up to 64 channels held in registers while the rows stream by), times 1 / pixels,
// clamped. Own loop:
// XNNPACK's operator got slower with 2 threads than with 1 on efficientnet_b0's 17
// squeeze-excitation pools (0.13 -> 0.28 ms). With a pool, each image's channels are split into
// contiguous parts of at least 64 channels and 16 K elements (each part still reads its slice
// of every row in order).
Status GlobalPoolBuild(Builder& b, const Node& n, const Fusion& f) {
  const Shape x = b.shape(n.inputs[0]);
  const int64_t batch = x[0], ch = x[1], pixels = x[2] * x[3];
  const int in = b.Buffer(n.inputs[0]);
  const int out = b.Buffer(f.out);
  const float lo = f.out_min, hi = f.out_max;
  const int64_t threads = std::max(1, b.spec().threads);
  const int64_t parts = std::clamp<int64_t>(
      std::min(ch / 64, pixels * ch / 16384), 1, threads);
  b.AddLoop([=](const Workspace& ws, pthreadpool_t pool) {
    const float* src = ws.f(in);
    float* dst = ws.f(out);
    const bool avx2 = CpuHasAvx2();
    ParallelFor(pool, batch * parts, 1, [&](int64_t t0, int64_t t1) {
      thread_local std::vector<float> sums;
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t img = t / parts, part = t % parts;
        const int64_t c0 = part * ch / parts, c1 = (part + 1) * ch / parts, nc = c1 - c0;
        sums.assign(static_cast<size_t>(nc), 0.0f);
        const float* base = src + img * pixels * ch + c0;
        const int64_t done = avx2 ? SumColumnsAvx2(base, pixels, ch, nc, sums.data()) : 0;
        for (int64_t p = 0; p < pixels && done < nc; ++p) {
          const float* row = base + p * ch;
          for (int64_t i = done; i < nc; ++i) sums[static_cast<size_t>(i)] += row[i];
        }
        const float inv = 1.0f / static_cast<float>(pixels);
        for (int64_t i = 0; i < nc; ++i) {
          dst[img * ch + c0 + i] = std::min(hi, std::max(lo, sums[static_cast<size_t>(i)] * inv));
        }
      }
    });
  });
  return Status::Ok();
}

// ---- Softmax ----

// Row length of the softmax in logical order, or 0 when not a contiguous trailing block.
int64_t SoftmaxRow(const Node& n, const Shape& x) {
  const int64_t r = static_cast<int64_t>(x.size());
  int64_t axis = n.attrs.GetInt("axis", n.opset < 13 ? 1 : -1);
  if (axis < 0) axis += r;
  if (axis < 0 || axis >= r) return 0;
  int64_t row = 1;
  if (n.opset < 13) {  // coerced to 2D at axis
    for (int64_t i = axis; i < r; ++i) row *= x[static_cast<size_t>(i)];
    return row;
  }
  for (int64_t i = axis + 1; i < r; ++i) {
    if (x[static_cast<size_t>(i)] != 1) return 0;
  }
  return x[static_cast<size_t>(axis)];
}

NodeSupport SoftmaxSupports(const NodeQuery& q) {
  std::string e = CheckFloatNode(q, {0}, 6);
  if (!e.empty()) return NodeSupport::No(e);
  const Shape x = q.inputs[0]->static_shape();
  const int64_t axis = q.node->attrs.GetInt("axis", q.node->opset < 13 ? 1 : -1);
  const bool nhwc_channels = x.size() == 4 && (axis == 1 || axis == -3) && q.node->opset >= 13;
  if (!nhwc_channels && SoftmaxRow(*q.node, x) == 0) {
    return NodeSupport::No("Softmax axis " + std::to_string(axis) + " is not the last axis");
  }
  if (x.empty()) return NodeSupport::No("scalar Softmax");
  return YesFloat(q, kGmacs, kGbytes);
}

Status SoftmaxBuild(Builder& b, const Node& n, const Fusion& f) {
  const Shape x = b.shape(n.inputs[0]);
  const int64_t axis = n.attrs.GetInt("axis", n.opset < 13 ? 1 : -1);
  const bool nhwc_channels = x.size() == 4 && (axis == 1 || axis == -3) && n.opset >= 13;
  const int64_t row = nhwc_channels ? x[1] : SoftmaxRow(n, x);
  const int64_t rows = row > 0 ? NumElements(x) / row : 0;
  xnn_operator_t op = nullptr;
  const xnn_status st = xnn_create_softmax_nc_f32(
      static_cast<size_t>(row), static_cast<size_t>(row), static_cast<size_t>(row), 0, &op);
  if (st != xnn_status_success) return XnnError(n, "xnn_create_softmax_nc_f32", st);
  const int in = nhwc_channels ? b.Buffer(n.inputs[0]) : b.LogicalIn(n.inputs[0]);
  const int out = nhwc_channels ? b.Buffer(f.out) : b.LogicalOut(f.out);
  b.AddXnn(
      n, XnnOp(op),
      [=](const Workspace& ws, pthreadpool_t pool) {
        return xnn_setup_softmax_nc_f32(op, static_cast<size_t>(rows), ws.f(in), ws.f(out), pool);
      },
      "xnn_setup_softmax_nc_f32");
  if (!nhwc_channels) b.FinishLogicalOut(f.out, out);
  return Status::Ok();
}

// ---- Resize ----

struct ResizeSpec {
  bool linear = false;
  std::string transform, nearest_mode;
  double scale_h = 1, scale_w = 1;  // output / input, as the reference uses it
};

// Source index of output coordinate o along one axis for nearest mode (reference's rules).
int64_t NearestIndex(const ResizeSpec& r, int64_t o, int64_t in, int64_t out, double scale) {
  const double x = static_cast<double>(o);
  const double out_len = scale * static_cast<double>(in);
  double xr;
  const std::string& m = r.transform;
  if (m == "asymmetric") {
    xr = x / scale;
  } else if (m == "pytorch_half_pixel") {
    xr = out_len > 1 ? (x + 0.5) / scale - 0.5 : 0.0;
  } else if (m == "align_corners") {
    xr = out_len == 1 ? 0.0 : x * static_cast<double>(in - 1) / (out_len - 1);
  } else if (m == "tf_half_pixel_for_nn") {
    xr = (x + 0.5) / scale;
  } else {
    xr = (x + 0.5) / scale - 0.5;
  }
  if (!std::isfinite(xr)) xr = 0.0;
  const double fl = std::floor(xr);
  int64_t i = static_cast<int64_t>(fl);
  if (xr != fl) {
    const double ratio = xr - fl;
    const std::string& nm = r.nearest_mode;
    if (nm == "ceil") {
      i += 1;
    } else if (nm == "round_prefer_ceil") {
      i += ratio >= 0.5 ? 1 : 0;
    } else if (nm != "floor") {
      i += ratio > 0.5 ? 1 : 0;
    }
  }
  (void)out;
  return std::clamp<int64_t>(i, 0, in - 1);
}

Result<ResizeSpec> ResizeSpecOf(const Node& n, const Shape& x, const Shape& y,
                                const std::function<const Tensor*(size_t)>& constant_input) {
  if (n.opset < 11) return InvalidArgument("Resize before opset 11 is not supported");
  if (x.size() != 4) return InvalidArgument("only rank-4 Resize is supported");
  if (x[0] != y[0] || x[1] != y[1]) return InvalidArgument("Resize must keep N and C");
  if (n.attrs.GetInt("antialias", 0) != 0) return InvalidArgument("antialias is not supported");
  if (n.attrs.Has("axes")) return InvalidArgument("axes is not supported");
  ResizeSpec r;
  const std::string mode = n.attrs.GetString("mode", "nearest");
  if (mode != "nearest" && mode != "linear") return InvalidArgument("Resize mode '" + mode + "'");
  r.linear = mode == "linear";
  r.transform = n.attrs.GetString("coordinate_transformation_mode", "half_pixel");
  r.nearest_mode = n.attrs.GetString("nearest_mode", "round_prefer_floor");
  if (r.transform == "tf_crop_and_resize")
    return InvalidArgument("coordinate mode tf_crop_and_resize");
  if (r.linear && r.transform == "tf_half_pixel_for_nn") {
    return InvalidArgument("linear with tf_half_pixel_for_nn");
  }
  r.scale_h = static_cast<double>(y[2]) / static_cast<double>(x[2]);
  r.scale_w = static_cast<double>(y[3]) / static_cast<double>(x[3]);
  const Tensor* scales = constant_input(2);
  if (scales != nullptr && scales->size() == 4) {
    r.scale_h = scales->GetAsDouble(2);
    r.scale_w = scales->GetAsDouble(3);
    if (r.linear && (r.scale_h * static_cast<double>(x[2]) != static_cast<double>(y[2]) ||
                     r.scale_w * static_cast<double>(x[3]) != static_cast<double>(y[3]))) {
      return InvalidArgument("linear Resize scales that do not give whole output sizes");
    }
  } else if (constant_input(3) == nullptr) {
    return InvalidArgument("Resize scales/sizes are not constants");
  }
  if (!r.linear) {  // unscaled axes must map to themselves (tf_half_pixel_for_nn shifts them)
    for (int a = 0; a < 2; ++a) {
      for (int64_t o = 0; o < x[static_cast<size_t>(a)]; ++o) {
        if (NearestIndex(r, o, x[static_cast<size_t>(a)], x[static_cast<size_t>(a)], 1.0) != o) {
          return InvalidArgument("nearest mode " + r.transform + "/" + r.nearest_mode +
                                 " moves the unscaled N/C axes");
        }
      }
    }
  }
  if (r.linear && r.transform == "pytorch_half_pixel" && (y[2] == 1 || y[3] == 1)) {
    return InvalidArgument("pytorch_half_pixel with an output size of 1");
  }
  return r;
}

NodeSupport ResizeSupports(const NodeQuery& q) {
  std::string e = CheckFloatNode(q, {0}, 4);
  if (!e.empty()) return NodeSupport::No(e);
  auto r =
      ResizeSpecOf(*q.node, q.inputs[0]->static_shape(), q.outputs[0]->static_shape(),
                   [&](size_t i) { return i < q.constants.size() ? q.constants[i] : nullptr; });
  if (!r.ok()) return NodeSupport::No(r.status().message());
  return YesFloat(q, kGmacs, kGbytes);
}

// int8 entry: nearest only (own copy loop on the int8 storage).
NodeSupport Int8ResizeSupports(const NodeQuery& q) {
  std::string e = CheckInt8Value(q.inputs[0], "input 0");
  if (e.empty()) e = CheckInt8Value(q.outputs[0], "output 0");
  if (!e.empty()) return NodeSupport::No(e);
  auto r =
      ResizeSpecOf(*q.node, q.inputs[0]->static_shape(), q.outputs[0]->static_shape(),
                   [&](size_t i) { return i < q.constants.size() ? q.constants[i] : nullptr; });
  if (!r.ok()) return NodeSupport::No(r.status().message());
  if (r->linear) return NodeSupport::No("int8 Resize is nearest only");
  return YesInt8(q, 1);
}

Status ResizeBuild(Builder& b, const Node& n, const Fusion& f) {
  const Shape x = b.shape(n.inputs[0]), y = b.shape(n.outputs[0]);
  KILN_ASSIGN_OR_RETURN(ResizeSpec r, ResizeSpecOf(n, x, y, [&](size_t i) {
                          return i < n.inputs.size() ? b.constant(n.inputs[i]) : nullptr;
                        }));
  const int in = b.Buffer(n.inputs[0]);
  const int out = b.Buffer(f.out);
  const int64_t c = x[1];
  if (r.linear) {
    uint32_t flags = 0;
    if (r.transform == "align_corners") flags = XNN_FLAG_ALIGN_CORNERS;
    if (r.transform == "asymmetric") flags = XNN_FLAG_TENSORFLOW_LEGACY_MODE;
    xnn_operator_t op = nullptr;
    const xnn_status st = xnn_create_resize_bilinear2d_nhwc_f32(
        static_cast<size_t>(c), static_cast<size_t>(c), static_cast<size_t>(c), flags, &op);
    if (st != xnn_status_success) return XnnError(n, "xnn_create_resize_bilinear2d_nhwc_f32", st);
    b.AddXnn(
        n, XnnOp(op),
        [=](const Workspace& ws, pthreadpool_t pool) {
          return xnn_setup_resize_bilinear2d_nhwc_f32(
              op, static_cast<size_t>(x[0]), static_cast<size_t>(x[2]), static_cast<size_t>(x[3]),
              static_cast<size_t>(y[2]), static_cast<size_t>(y[3]), ws.f(in), ws.f(out), pool);
        },
        "xnn_setup_resize_bilinear2d_nhwc_f32");
    return Status::Ok();
  }
  std::vector<int64_t> ih(static_cast<size_t>(y[2])), iw(static_cast<size_t>(y[3]));
  for (int64_t o = 0; o < y[2]; ++o)
    ih[static_cast<size_t>(o)] = NearestIndex(r, o, x[2], y[2], r.scale_h);
  for (int64_t o = 0; o < y[3]; ++o)
    iw[static_cast<size_t>(o)] = NearestIndex(r, o, x[3], y[3], r.scale_w);
  const size_t es = Is8Bit(b.type(n.inputs[0])) ? 1 : sizeof(float);  // int8 entry: bytes
  b.AddLoop([=](const Workspace& ws, pthreadpool_t pool) {
    const char* src = reinterpret_cast<const char*>(ws.f(in));
    char* dst = reinterpret_cast<char*>(ws.f(out));
    const size_t row = static_cast<size_t>(c) * es;
    ParallelFor(pool, y[0] * y[2], 1, [&](int64_t s, int64_t e) {
      for (int64_t nh = s; nh < e; ++nh) {
        const int64_t bn = nh / y[2], oh = nh % y[2];
        const char* srow =
            src + static_cast<size_t>((bn * x[2] + ih[static_cast<size_t>(oh)]) * x[3]) * row;
        char* drow = dst + static_cast<size_t>(nh * y[3]) * row;
        for (int64_t ow = 0; ow < y[3]; ++ow) {
          std::memcpy(drow + static_cast<size_t>(ow) * row,
                      srow + static_cast<size_t>(iw[static_cast<size_t>(ow)]) * row, row);
        }
      }
    });
  });
  return Status::Ok();
}

}  // namespace

void AddPoolOps(std::vector<OpDef>& table) {
  table.push_back({"MaxPool", PoolSupports, PoolBuild, true});
  table.push_back({"AveragePool", PoolSupports, PoolBuild, true});
  table.push_back({"GlobalAveragePool", GlobalPoolSupports, GlobalPoolBuild, true});
  table.push_back({"Softmax", SoftmaxSupports, SoftmaxBuild, false});
  table.push_back({"Resize", ResizeSupports, ResizeBuild, false});
  table.push_back({"Resize", Int8ResizeSupports, ResizeBuild, false, true});
}

}  // namespace kiln::xnn
