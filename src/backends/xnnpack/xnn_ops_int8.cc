// XNNPACK backend int8 ops: the fused integer ops of the qdq-fusion pass (passes/qdq_fusion.h)
// and the QDQ border ops, all on one int8 storage. Every 8-bit value of a partition is stored as
// int8: u8 values XOR 0x80 (v - 128) with zero point zp - 128, which changes no difference
// v - zp, so (x - x_zp), requantization and saturation are the same arithmetic; u8 outputs are
// flipped back at the partition border. This lets the qs8/qc8 kernels run the usual
// u8-activation / s8-weight QDQ models (this XNNPACK has no u8 x s8 convolution).
//
//   QLinearConv        dense convs: own im2col + GEMM kernel (xnn_qconv.h, AVX-512 VNNI;
//                      AVX2 vpmaddubsw on AVX2-only machines when the weights fit 7 bits;
//                      int16 AVX2 when forced); depthwise: own AVX-512 loop on VNNI machines; else
//                      xnn convolution2d_nhwc_qc8
//                      (per-channel scales; per-tensor repeated), depthwise via groups; s8
//                      weights with zero point 0 (u8 with 128: flipped)
//   QLinearMatMul      constant B: a 1x1 conv (the own kernel or qc8, per-column scales as
//                      per-channel); computed B (attention): own loop per batch, exact
//   QAdd / QMul        two computed operands of the output's shape: own float loop, exact (lanes
//                      near a half recomputed as the reference does); with constants, or scale
//                      ratios XNNPACK rejects: a 64 KiB table of the reference's result for every
//                      pair of 8-bit values, exact; a constant scalar operand: a 256-entry table;
//                      a computed [N, C, 1, 1] operand (a squeeze-excitation gate): the exact
//                      float loop row by row; other broadcast computed operands: xnn
//                      add_nd_qs8 / multiply_nd_qs8
//   QAveragePool       own loop (2D, exact integer sums, the reference's double requantization)
//   QGlobalAveragePool own loop (exact integer sums, the reference's double requantization)
//   QLut               own table lookup
//   DequantizeLinear   own loop (256-entry float table, exact), per tensor
//   QuantizeLinear     own AVX2 loop: saturate(round_half_even(x / scale) + zp), exact
//   Clip               own clamp loop on the storage
//   (Concat, Reshape family, Transpose, Resize nearest: int8 entries in xnn_ops_tensor.cc and
//   xnn_ops_pool.cc.)
//
// Exactness against the reference kernels (src/backends/ref/quant*.cc): QLinearConv is exact
// (XNNPACK's qc8 "fp32" requantization and the own kernel compute (float)acc * (x_scale *
// w_scale / y_scale) in float and round half to even like the reference); the table ops, pools,
// DQ and Q are exact.
// QAdd / QMul with a broadcast computed operand run XNNPACK's qs8 kernels, whose fixed-point
// (add) or float (mul) requantization can differ from the reference's double arithmetic by one
// step; SessionOptions::exact_int8 (config key ExactInt8) runs the same-shape ones through the
// pair table instead of the float loop (two exact implementations, cross-checked in tests).
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>

#include "backends/xnnpack/xnn_internal.h"
#include "backends/xnnpack/xnn_ops.h"
#include "backends/xnnpack/xnn_qconv.h"
#include "core/cpu_features.h"
#include "plan/cost.h"

namespace kiln::xnn {

std::string CheckInt8Value(const TypeInfo* t, const std::string& what) {
  if (t == nullptr) return what + " is missing";
  if (!Is8Bit(t->type)) return what + " is " + ElementTypeName(t->type) + " (u8/i8 expected)";
  if (!t->has_static_shape()) return what + " has no static shape (" + t->ToString() + ")";
  if (t->shape->size() > 6) return what + " has rank above 6";
  return "";
}

NodeSupport YesInt8(const NodeQuery& q, double gmacs_per_thread) {
  const NodeWork w = EstimateWork(q);
  const double threads = std::max(1, q.threads);
  NodeSupport s =
      NodeSupport::Yes(EstimateMicros(w, gmacs_per_thread * threads, 20, 1.0), q.outputs[0]->type);
  return s;
}

namespace {

constexpr double kInt8Gmacs = 60;  // per thread, qc8 igemm on AVX2 / AVX-512

// The storage of one raw 8-bit value of type t.
inline int32_t Stored(ElementType t, int64_t raw) {
  return static_cast<int32_t>(t == ElementType::kU8 ? raw - 128 : raw);
}

// A per-tensor quantization read from constant inputs (scale, zero point).
struct QParam {
  float scale = 1;
  int64_t zp = 0;            // raw, of the operand's type
  ElementType type = ElementType::kU8;
  int32_t stored_zp() const { return Stored(type, zp); }
};

// Constant scale input `si` and zero point `zi` (may be absent: 0) of node n; `type` the
// operand's type. Empty string when fine.
std::string ReadQParam(const std::function<const Tensor*(size_t)>& constant, size_t si, size_t zi,
                       bool zp_present, ElementType type, QParam* out) {
  const Tensor* s = constant(si);
  if (s == nullptr || s->size() != 1 || !IsFloating(s->type()))
    return "scale input " + std::to_string(si) + " is not a constant float scalar";
  out->scale = static_cast<float>(s->GetAsDouble(0));
  if (!(out->scale > 0) || !std::isfinite(out->scale)) return "scale is not positive and finite";
  out->type = type;
  out->zp = 0;
  if (zp_present) {
    const Tensor* z = constant(zi);
    if (z == nullptr || z->size() != 1) return "zero point is not a constant scalar";
    out->zp = z->GetAsInt64(0);
    if (z->type() != type) return "zero point type differs from its operand's";
  }
  return "";
}

// Accessors over a NodeQuery or a Builder.
std::function<const Tensor*(size_t)> QueryConsts(const NodeQuery& q) {
  return [&q](size_t i) { return i < q.constants.size() ? q.constants[i] : nullptr; };
}
std::function<const Tensor*(size_t)> NodeConsts(const Builder& b, const Node& n) {
  return [&b, &n](size_t i) {
    return i < n.inputs.size() && n.inputs[i].valid() ? b.constant(n.inputs[i]) : nullptr;
  };
}
bool Present(const Node& n, size_t i) { return i < n.inputs.size() && n.inputs[i].valid(); }

// Output clamp of a fused Relu/Clip (raw bounds of the output type) in storage values.
void StoredBounds(const Fusion& f, ElementType t, int8_t* lo, int8_t* hi) {
  const double tmin = t == ElementType::kU8 ? 0 : -128, tmax = t == ElementType::kU8 ? 255 : 127;
  const double l = std::max(tmin, std::ceil(static_cast<double>(f.out_min)));
  const double h = std::min(tmax, std::floor(static_cast<double>(f.out_max)));
  *lo = static_cast<int8_t>(Stored(t, static_cast<int64_t>(l)));
  *hi = static_cast<int8_t>(Stored(t, static_cast<int64_t>(std::max(l, h))));
}

// Saturates and stores a raw result of type t (as the reference's Store: NaN -> 0).
inline uint8_t StoreRaw(ElementType t, double q) {
  const bool u8 = t == ElementType::kU8;
  if (std::isnan(q)) q = 0;
  const double c = u8 ? std::clamp(q, 0.0, 255.0) : std::clamp(q, -128.0, 127.0);
  return static_cast<uint8_t>(static_cast<int8_t>(Stored(t, static_cast<int64_t>(c))));
}

// ---- QLinearConv ----

struct ConvQ {
  QParam x, y;
  std::vector<float> w_scale;  // per output channel
  // Channels whose requantization scale r is below 2^-33: |acc * r| < 0.5 for every int32 acc,
  // so the reference writes the zero point; run with zero weights and bias, scale 1.
  std::vector<bool> dead;
  bool w_flip = false;  // u8 weights with zero point 128
};

// Where a quantized product's inputs sit: QLinearConv and QLinearMatMul (x, x_scale, x_zp, w,
// w_scale, w_zp, y_scale, y_zp[, bias]) or Kiln's QGemm (A, a_scale, a_zp, B, b_scale, b_zp,
// [C], y_scale, y_zp).
struct QInputs {
  size_t y_scale = 6, y_zp = 7, bias = 8;
};
constexpr QInputs kGemmInputs{7, 8, 6};

// QLinearConv (W rank 4, m output channels), QLinearMatMul with a constant B and QGemm (rank 2,
// m columns).
std::string ReadConvQ(const Node& n, const std::function<const Tensor*(size_t)>& c,
                      ElementType xt, ElementType yt, int64_t m, ConvQ* out, int w_rank = 4,
                      QInputs at = {}) {
  std::string e = ReadQParam(c, 1, 2, Present(n, 2), xt, &out->x);
  if (e.empty()) e = ReadQParam(c, at.y_scale, at.y_zp, Present(n, at.y_zp), yt, &out->y);
  if (!e.empty()) return e;
  const Tensor* w = c(3);
  const Tensor* ws = c(4);
  const Tensor* wz = c(5);
  if (w == nullptr || !Is8Bit(w->type()) || w->rank() != w_rank)
    return w_rank == 4 ? "W is not a constant 8-bit 4D" : "B is not a constant 8-bit 2D";
  if (ws == nullptr || (ws->size() != 1 && ws->size() != m)) return "w_scale is not constant";
  out->w_flip = w->type() == ElementType::kU8;
  const int64_t want_zp = out->w_flip ? 128 : 0;
  if (Present(n, 5)) {
    if (wz == nullptr) return "w_zero_point is not a constant";
    for (int64_t i = 0; i < wz->size(); ++i) {
      if (wz->GetAsInt64(i) != want_zp)
        return "weights are not symmetric (zero point " + std::to_string(want_zp) + ")";
    }
  } else if (out->w_flip) {
    return "u8 weights without zero point 128";
  }
  out->w_scale.resize(static_cast<size_t>(m));
  out->dead.assign(static_cast<size_t>(m), false);
  for (int64_t i = 0; i < m; ++i) {
    float s = static_cast<float>(ws->GetAsDouble(ws->size() == 1 ? 0 : i));
    const float r = out->x.scale * s / out->y.scale;
    if (!(s > 0) || !std::isfinite(s)) return "w_scale is not positive and finite";
    if (r < 0x1.0p-33f) {
      out->dead[static_cast<size_t>(i)] = true;
      s = out->y.scale / out->x.scale;
    } else if (!(r < 256.0f)) {
      return "requantization scale x_scale * w_scale / y_scale is 256 or more";
    }
    out->w_scale[static_cast<size_t>(i)] = s;
  }
  const Tensor* bias = c(at.bias);
  if (Present(n, at.bias) &&
      (bias == nullptr || bias->type() != ElementType::kI32 || bias->size() != m))
    return "the bias is not a constant i32[" + std::to_string(m) + "]";
  return "";
}

NodeSupport QConvSupports(const NodeQuery& q) {
  const Node& n = *q.node;
  std::string e = CheckInt8Value(q.inputs[0], "x");
  if (e.empty()) e = CheckInt8Value(q.outputs[0], "y");
  if (!e.empty()) return NodeSupport::No(e);
  if (q.inputs.size() < 8 || q.constants[3] == nullptr) return NodeSupport::No("W not constant");
  const Shape x = q.inputs[0]->static_shape(), y = q.outputs[0]->static_shape();
  const Shape w = q.constants[3]->shape();
  auto g = ConvGeometryOf(n, x, w, y);
  if (!g.ok()) return NodeSupport::No(g.status().message());
  if (g->group < 1 || x[1] % g->group != 0 || w[0] % g->group != 0 || w[1] * g->group != x[1])
    return NodeSupport::No("group does not fit the shapes");
  ConvQ cq;
  e = ReadConvQ(n, QueryConsts(q), q.inputs[0]->type, q.outputs[0]->type, w[0], &cq);
  if (!e.empty()) return NodeSupport::No(e);
  return YesInt8(q, kInt8Gmacs);
}

// The own int8 convolution (xnn_qconv.h) for this conv, or kNone for XNNPACK's qc8: dense
// (group 1) convs; `weights` (storage values, any order) decide whether the 7-bit AVX2 kernel
// can run.
OwnQConvIsa OwnQConvFor(const ConvGeometry& g, std::span<const int8_t> weights, CpuIsa cap,
                        Int8Kernel kernel) {
  if (g.group != 1) return OwnQConvIsa::kNone;
  return ChooseOwnQConvIsaFor(weights, cap, kernel);
}

// Depthwise with one output channel per group and at most 32 kernel rows: the own AVX-512
// loop (xnn_qconv.h).
bool OwnDwQConvFor(const ConvGeometry& g, const Shape& x, int64_t m, CpuIsa cap,
                   Int8Kernel kernel) {
  return g.group > 1 && g.group == x[1] && m == x[1] && g.kh <= 32 &&
         OwnDwQConvAvailable(cap, kernel);
}

// XNNPACK's qc8 convolution of geometry g (x NCHW [batch, C, H, W], m output channels) with
// `kernel` in XNNPACK's order [g][M/g][kh][kw][C/g] and per-channel scales: `in` -> `out`, NHWC
// int8 storage.
Status AddQc8Conv(Builder& b, const Node& n, const ConvGeometry& g, const Shape& x, int64_t m,
                  const std::vector<int8_t>& kernel, const std::vector<int32_t>& bias,
                  const ConvQ& cq, int8_t lo, int8_t hi, int in, int out) {
  xnn_operator_t op = nullptr;
  const xnn_status st = xnn_create_convolution2d_nhwc_qc8(
      static_cast<uint32_t>(g.pt), static_cast<uint32_t>(g.pr), static_cast<uint32_t>(g.pb),
      static_cast<uint32_t>(g.pl), static_cast<uint32_t>(g.kh), static_cast<uint32_t>(g.kw),
      static_cast<uint32_t>(g.sh), static_cast<uint32_t>(g.sw), static_cast<uint32_t>(g.dh),
      static_cast<uint32_t>(g.dw), static_cast<uint32_t>(g.group),
      static_cast<size_t>(x[1] / g.group), static_cast<size_t>(m / g.group),
      static_cast<size_t>(x[1]), static_cast<size_t>(m), static_cast<int8_t>(cq.x.stored_zp()),
      cq.x.scale, cq.w_scale.data(), kernel.data(), bias.data(),
      static_cast<int8_t>(cq.y.stored_zp()), cq.y.scale, lo, hi, 0, &op);
  if (st != xnn_status_success) return XnnError(n, "xnn_create_convolution2d_nhwc_qc8", st);
  b.AddWeightBytes(static_cast<int64_t>(kernel.size() + bias.size() * 4 + cq.w_scale.size() * 4));
  b.AddXnn(
      n, XnnOp(op),
      [=](const Workspace& ws, pthreadpool_t pool) {
        return xnn_setup_convolution2d_nhwc_qc8(op, static_cast<size_t>(x[0]),
                                                static_cast<size_t>(x[2]),
                                                static_cast<size_t>(x[3]), ws.s8(in),
                                                ws.s8(out), pool);
      },
      "xnn_setup_convolution2d_nhwc_qc8");
  return Status::Ok();
}

Status QConvBuildPacking(Builder& b, const Node& n, const Fusion& f) {
  const Shape x = b.shape(n.inputs[0]), y = b.shape(n.outputs[0]);
  const Tensor& wt = *b.constant(n.inputs[3]);
  const Shape w = wt.shape();
  KILN_ASSIGN_OR_RETURN(ConvGeometry g, ConvGeometryOf(n, x, w, y));
  ConvQ cq;
  std::string e = ReadConvQ(n, NodeConsts(b, n), b.type(n.inputs[0]), b.type(f.out), w[0], &cq);
  if (!e.empty()) return InvalidArgument(e);
  const int64_t m = w[0], cg = w[1], kh = g.kh, kw = g.kw;
  // ONNX [M, C/g, kh, kw] -> XNNPACK [g, M/g, kh, kw, C/g].
  const auto* src = static_cast<const uint8_t*>(wt.raw());
  const uint8_t flip = cq.w_flip ? 0x80 : 0;
  std::vector<int8_t> kernel(static_cast<size_t>(wt.size()));
  for (int64_t o = 0; o < m; ++o) {
    for (int64_t c = 0; c < cg; ++c) {
      for (int64_t i = 0; i < kh * kw; ++i) {
        kernel[static_cast<size_t>((o * kh * kw + i) * cg + c)] =
            cq.dead[static_cast<size_t>(o)]
                ? 0
                : static_cast<int8_t>(src[static_cast<size_t>((o * cg + c) * kh * kw + i)] ^ flip);
      }
    }
  }
  std::vector<int32_t> bias(static_cast<size_t>(m), 0);
  if (Present(n, 8)) {
    const Tensor& bt = *b.constant(n.inputs[8]);
    for (int64_t i = 0; i < m; ++i) {
      bias[static_cast<size_t>(i)] = cq.dead[static_cast<size_t>(i)] ? 0 : bt.data<int32_t>()[i];
    }
  }
  int8_t lo, hi;
  StoredBounds(f, b.type(f.out), &lo, &hi);
  const OwnQConvIsa isa = OwnQConvFor(g, kernel, b.spec().isa, b.spec().int8_kernel);
  const bool own_dw = OwnDwQConvFor(g, x, m, b.spec().isa, b.spec().int8_kernel);
  if (isa != OwnQConvIsa::kNone || own_dw) {
    QConvSpec s;
    s.batch = x[0], s.cin = x[1], s.ih = x[2], s.iw = x[3];
    s.cout = m, s.oh = y[2], s.ow = y[3];
    s.kh = kh, s.kw = kw, s.sh = g.sh, s.sw = g.sw, s.dh = g.dh, s.dw = g.dw;
    s.pt = g.pt, s.pl = g.pl;
    s.x_zp = static_cast<int8_t>(cq.x.stored_zp());
    s.y_zp = static_cast<int8_t>(cq.y.stored_zp());
    s.lo = lo, s.hi = hi;
    s.weights.resize(static_cast<size_t>(wt.size()));
    const int64_t per_out = cg * kh * kw;
    for (int64_t i = 0; i < wt.size(); ++i) {
      s.weights[static_cast<size_t>(i)] =
          cq.dead[static_cast<size_t>(i / per_out)]
              ? 0
              : static_cast<int8_t>(src[static_cast<size_t>(i)] ^ flip);
    }
    s.bias = bias;
    for (int64_t i = 0; i < m; ++i)
      s.mult.push_back(cq.x.scale * cq.w_scale[static_cast<size_t>(i)] / cq.y.scale);
    QConvFn fn = own_dw ? MakeOwnDwQConv(s) : MakeOwnQConv(s, isa);
    b.AddWeightBytes(static_cast<int64_t>(kernel.size() + bias.size() * 8));
    const int in = b.Buffer(n.inputs[0]);
    const int out = b.Buffer(f.out);
    b.AddLoop([=](const Workspace& ws, pthreadpool_t pool) { fn(ws.s8(in), ws.s8(out), pool); });
    return Status::Ok();
  }
  return AddQc8Conv(b, n, g, x, m, kernel, bias, cq, lo, hi, b.Buffer(n.inputs[0]),
                    b.Buffer(f.out));
}

// Both paths copy the int8 weights and the int32 bias (own VNNI kernels, XNNPACK's qc8).
Status QConvBuild(Builder& b, const Node& n, const Fusion& f) {
  KILN_RETURN_IF_ERROR(QConvBuildPacking(b, n, f));
  b.Packed(n, n.inputs[3]);
  if (Present(n, 8)) b.Packed(n, n.inputs[8]);
  return Status::Ok();
}

// QAveragePool / QGlobalAveragePool: per-tensor (x_scale, x_zp) at inputs 1, 2 and (y_scale,
// y_zp) at 3, 4, then Yes.
NodeSupport PoolQParamsSupport(const NodeQuery& q) {
  QParam x, y;
  std::string e = ReadQParam(QueryConsts(q), 1, 2, Present(*q.node, 2), q.inputs[0]->type, &x);
  if (e.empty())
    e = ReadQParam(QueryConsts(q), 3, 4, Present(*q.node, 4), q.outputs[0]->type, &y);
  if (!e.empty()) return NodeSupport::No(e);
  return YesInt8(q, 4);
}

// ---- QLinearMatMul ----
//
// Constant B (weights): A [..., M, K] is a row of M pixels with K channels, so the product is a
// 1x1 convolution with B's columns as output channels: the own kernel or XNNPACK's qc8, as
// QLinearConv (per-column b_scale = per-channel w_scale). Computed B (attention's Q K^T and
// P V): an own loop over the batches, exact int32 sums and the reference's float
// requantization.

constexpr int64_t kMaxComputedK = 16384;  // |sum| < 2^31 for 8-bit products

NodeSupport QMatMulSupports(const NodeQuery& q) {
  const Node& n = *q.node;
  if (q.inputs.size() < 7) return NodeSupport::No("missing inputs");
  std::string e = CheckInt8Value(q.inputs[0], "A");
  if (e.empty()) e = CheckInt8Value(q.inputs[3], "B");
  if (e.empty()) e = CheckInt8Value(q.outputs[0], "Y");
  if (!e.empty()) return NodeSupport::No(e);
  const Shape a = q.inputs[0]->static_shape(), b = q.inputs[3]->static_shape();
  if (a.size() < 2 || b.size() < 2) return NodeSupport::No("A and B must have rank >= 2");
  if (a.back() != b[b.size() - 2]) return NodeSupport::No("inner dims differ");
  if (q.constants[3] != nullptr) {
    if (b.size() != 2) return NodeSupport::No("constant B is not 2D");
    ConvQ cq;
    e = ReadConvQ(n, QueryConsts(q), q.inputs[0]->type, q.outputs[0]->type, b[1], &cq, 2);
    if (!e.empty()) return NodeSupport::No(e);
    return YesInt8(q, kInt8Gmacs);
  }
  if (a.size() != b.size() || !std::equal(a.begin(), a.end() - 2, b.begin()))
    return NodeSupport::No("computed B: batch dims of A and B differ");
  if (a.back() > kMaxComputedK) return NodeSupport::No("computed B: K above 16384");
  QParam qa, qb, qy;
  e = ReadQParam(QueryConsts(q), 1, 2, Present(n, 2), q.inputs[0]->type, &qa);
  if (e.empty()) e = ReadQParam(QueryConsts(q), 4, 5, Present(n, 5), q.inputs[3]->type, &qb);
  if (e.empty()) e = ReadQParam(QueryConsts(q), 6, 7, Present(n, 7), q.outputs[0]->type, &qy);
  if (!e.empty()) return NodeSupport::No("computed B: " + e + " (per-tensor only)");
  return YesInt8(q, 8);
}

// y[rows, m] = x[rows, k] (the logical input `in`) times a constant kernel [m][k] (storage
// values) plus `bias`, requantized: the own int8 kernel as a 1x1 convolution over `rows` pixels
// where the session's level has one, else XNNPACK's qc8 convolution.
Status AddConstantProduct(Builder& b, const Node& n, const Fusion& f, ValueId in, int64_t rows,
                          int64_t k, int64_t m, std::vector<int8_t> kernel,
                          std::vector<int32_t> bias, const ConvQ& cq) {
  int8_t lo, hi;
  StoredBounds(f, b.type(f.out), &lo, &hi);
  const int iv = b.LogicalIn(in);
  const int out = b.LogicalOut(f.out);
  const OwnQConvIsa isa = ChooseOwnQConvIsaFor(kernel, b.spec().isa, b.spec().int8_kernel);
  if (isa != OwnQConvIsa::kNone) {
    b.AddWeightBytes(static_cast<int64_t>(kernel.size() + bias.size() * 8));
    QConvSpec s;
    s.batch = 1, s.ih = 1, s.iw = rows, s.cin = k;
    s.oh = 1, s.ow = rows, s.cout = m;
    s.x_zp = static_cast<int8_t>(cq.x.stored_zp());
    s.y_zp = static_cast<int8_t>(cq.y.stored_zp());
    s.lo = lo, s.hi = hi;
    s.weights = std::move(kernel);
    s.bias = std::move(bias);
    for (int64_t i = 0; i < m; ++i)
      s.mult.push_back(cq.x.scale * cq.w_scale[static_cast<size_t>(i)] / cq.y.scale);
    QConvFn fn = MakeOwnQConv(s, isa);
    b.AddLoop([=](const Workspace& ws, pthreadpool_t pool) { fn(ws.s8(iv), ws.s8(out), pool); });
  } else {
    ConvGeometry g;  // 1x1, stride 1, no padding, one group
    g.kh = g.kw = 1;
    KILN_RETURN_IF_ERROR(
        AddQc8Conv(b, n, g, Shape{1, k, 1, rows}, m, kernel, bias, cq, lo, hi, iv, out));
  }
  b.FinishLogicalOut(f.out, out);
  return Status::Ok();
}

// The constant B of a product as the kernel [m][k] in storage values: B[c][o] (b_km) or B[o][c]
// (transposed), u8 flipped to s8, the channels that cannot move the output (ConvQ::dead) zero.
std::vector<int8_t> ProductKernel(const Tensor& bt, int64_t k, int64_t m, bool b_km,
                                  const ConvQ& cq) {
  const auto* src = static_cast<const uint8_t*>(bt.raw());
  const uint8_t flip = cq.w_flip ? 0x80 : 0;
  std::vector<int8_t> kernel(static_cast<size_t>(k * m));
  for (int64_t o = 0; o < m; ++o) {
    if (cq.dead[static_cast<size_t>(o)]) continue;
    for (int64_t c = 0; c < k; ++c) {
      kernel[static_cast<size_t>(o * k + c)] =
          static_cast<int8_t>(src[b_km ? c * m + o : o * k + c] ^ flip);
    }
  }
  return kernel;
}

Status QMatMulConstBuild(Builder& b, const Node& n, const Fusion& f) {
  const Shape as = b.shape(n.inputs[0]);
  const Tensor& bt = *b.constant(n.inputs[3]);
  const int64_t k = bt.dim(0), m = bt.dim(1);
  const int64_t pixels = NumElements(as) / k;
  ConvQ cq;
  std::string e =
      ReadConvQ(n, NodeConsts(b, n), b.type(n.inputs[0]), b.type(f.out), m, &cq, 2);
  if (!e.empty()) return InvalidArgument(e);
  // [K, N] -> [N][K] (a 1x1 kernel in both the own kernel's and XNNPACK's order).
  return AddConstantProduct(b, n, f, n.inputs[0], pixels, k, m, ProductKernel(bt, k, m, true, cq),
                            std::vector<int32_t>(static_cast<size_t>(m), 0), cq);
}

// ---- QGemm (Kiln's fused Gemm: A [M, K] x constant B, transA = 0) ----

// QGemm without y_scale (a float output): y = float(acc * a_scale * b_scale[n]), clamped to the
// fused activation's bounds. The weights packed once as int8 pairs [N/16][K/2][16][2] (a column
// block's 16 columns side by side, two k per column, N and K zero-padded); the row of A
// converted once to int16 (a - a_zp); per pair of k one vpmaddwd of the broadcast pair with the
// block's 32 sign-extended weights, int32 sums exact (|a - a_zp|, |w| <= 255), four column blocks
// side by side (independent chains). The weight bytes are a quarter of the float GEMV's (the
// classifier of a QDQ CNN reads 1.28 MB instead of 5.1). AVX-512, AVX2, else portable loops.
struct QGemmFloatPlan {
  int64_t rows = 0, k = 0, n = 0, k2 = 0, blocks = 0;
  std::vector<int8_t> w;        // [blocks][k2][16][2]
  std::vector<int32_t> bias;    // [n]: C (0 without)
  std::vector<double> mult;     // [n]: a_scale * b_scale[n] (the reference's, in double)
  int32_t a_zp = 0;             // stored
  float lo = -INFINITY, hi = INFINITY;
  CpuIsa isa = CpuIsa::kPortable;
};

// Column blocks [b0, b1) of one row: acc[block * 16 + j] = sum_k a16[k] * w[k][col].
__attribute__((target("avx512f,avx512bw"))) void QGemmFloatBlocksAvx512(const QGemmFloatPlan& P,
                                                                        const int16_t* a16,
                                                                        int64_t b0, int64_t b1,
                                                                        int32_t* acc) {
  const auto* pairs = reinterpret_cast<const int32_t*>(a16);
  int64_t blk = b0;
  for (; blk + 4 <= b1; blk += 4) {
    __m512i s0 = _mm512_setzero_si512(), s1 = s0, s2 = s0, s3 = s0;
    const int8_t* w = P.w.data() + blk * P.k2 * 32;
    const int64_t step = P.k2 * 32;
    for (int64_t k2 = 0; k2 < P.k2; ++k2, w += 32) {
      const __m512i a = _mm512_set1_epi32(pairs[k2]);
      s0 = _mm512_add_epi32(s0, _mm512_madd_epi16(a, _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w)))));
      s1 = _mm512_add_epi32(s1, _mm512_madd_epi16(a, _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + step)))));
      s2 = _mm512_add_epi32(s2, _mm512_madd_epi16(a, _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 2 * step)))));
      s3 = _mm512_add_epi32(s3, _mm512_madd_epi16(a, _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 3 * step)))));
    }
    _mm512_storeu_si512(acc + blk * 16, s0);
    _mm512_storeu_si512(acc + blk * 16 + 16, s1);
    _mm512_storeu_si512(acc + blk * 16 + 32, s2);
    _mm512_storeu_si512(acc + blk * 16 + 48, s3);
  }
  for (; blk < b1; ++blk) {
    __m512i s0 = _mm512_setzero_si512();
    const int8_t* w = P.w.data() + blk * P.k2 * 32;
    for (int64_t k2 = 0; k2 < P.k2; ++k2, w += 32) {
      const __m512i a = _mm512_set1_epi32(pairs[k2]);
      s0 = _mm512_add_epi32(s0, _mm512_madd_epi16(a, _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w)))));
    }
    _mm512_storeu_si512(acc + blk * 16, s0);
  }
}

KILN_TARGET_AVX2 void QGemmFloatBlocksAvx2(const QGemmFloatPlan& P, const int16_t* a16,
                                           int64_t b0, int64_t b1, int32_t* acc) {
  const auto* pairs = reinterpret_cast<const int32_t*>(a16);
  for (int64_t blk = b0; blk < b1; ++blk) {
    // Columns 0-7 from the block's first 16 bytes per k pair, 8-15 from the next 16.
    __m256i s0 = _mm256_setzero_si256(), s1 = s0;
    const int8_t* w = P.w.data() + blk * P.k2 * 32;
    for (int64_t k2 = 0; k2 < P.k2; ++k2, w += 32) {
      const __m256i a = _mm256_set1_epi32(pairs[k2]);
      s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(a, _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w)))));
      s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(a, _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + 16)))));
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc + blk * 16), s0);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc + blk * 16 + 8), s1);
  }
}

void QGemmFloatBlocks(const QGemmFloatPlan& P, const int16_t* a16, int64_t b0, int64_t b1,
                      int32_t* acc) {
  if (P.isa >= CpuIsa::kAvx512) return QGemmFloatBlocksAvx512(P, a16, b0, b1, acc);
  if (P.isa >= CpuIsa::kAvx2) return QGemmFloatBlocksAvx2(P, a16, b0, b1, acc);
  for (int64_t blk = b0; blk < b1; ++blk) {
    const int8_t* w = P.w.data() + blk * P.k2 * 32;
    for (int j = 0; j < 16; ++j) {
      int32_t s = 0;
      for (int64_t k2 = 0; k2 < P.k2; ++k2) {
        s += a16[2 * k2] * w[k2 * 32 + 2 * j] + a16[2 * k2 + 1] * w[k2 * 32 + 2 * j + 1];
      }
      acc[blk * 16 + j] = s;
    }
  }
}

Status QGemmFloatBuild(Builder& b, const Node& n, const Fusion& f) {
  const Shape as = b.shape(n.inputs[0]);
  const Tensor& bt = *b.constant(n.inputs[3]);
  const bool tb = n.attrs.GetInt("transB", 0) != 0;
  auto P = std::make_shared<QGemmFloatPlan>();
  P->rows = as[0];
  P->k = tb ? bt.dim(1) : bt.dim(0);
  P->n = tb ? bt.dim(0) : bt.dim(1);
  P->k2 = (P->k + 1) / 2;
  P->blocks = (P->n + 15) / 16;
  ConvQ cq;
  // The product's parameters as a conv's; y's are x's (the requantization scale is b_scale).
  std::string e = ReadConvQ(n, NodeConsts(b, n), b.type(n.inputs[0]), b.type(n.inputs[0]), P->n,
                            &cq, 2, QInputs{1, 2, 99});
  if (!e.empty()) return InvalidArgument(e);
  const std::vector<int8_t> kernel = ProductKernel(bt, P->k, P->n, !tb, cq);  // [n][k] stored
  P->w.assign(static_cast<size_t>(P->blocks * P->k2 * 32), 0);
  for (int64_t o = 0; o < P->n; ++o) {
    for (int64_t kk = 0; kk < P->k; ++kk) {
      P->w[static_cast<size_t>(((o / 16 * P->k2 + kk / 2) * 16 + o % 16) * 2 + kk % 2)] =
          kernel[static_cast<size_t>(o * P->k + kk)];
    }
  }
  P->bias.assign(static_cast<size_t>(P->n), 0);
  if (Present(n, 6)) {
    const Tensor& c = *b.constant(n.inputs[6]);
    for (int64_t o = 0; o < P->n; ++o)
      P->bias[static_cast<size_t>(o)] = c.data<int32_t>()[c.size() == 1 ? 0 : o];
  }
  for (int64_t o = 0; o < P->n; ++o) {
    // dead channels (b_scale below 2^-33) keep their scale here: only their weights are zero.
    const Tensor& ws = *b.constant(n.inputs[4]);
    const auto sb = static_cast<float>(ws.GetAsDouble(ws.size() == 1 ? 0 : o));
    P->mult.push_back(static_cast<double>(cq.x.scale) * static_cast<double>(sb));
    if (cq.dead[static_cast<size_t>(o)]) P->bias[static_cast<size_t>(o)] = 0;
  }
  P->a_zp = cq.x.stored_zp();
  P->lo = f.out_min;
  P->hi = f.out_max;
  P->isa = b.spec().isa;
  b.AddWeightBytes(static_cast<int64_t>(P->w.size() + P->bias.size() * 12));
  const int ia = b.LogicalIn(n.inputs[0]);
  const int out = b.LogicalOut(f.out);
  b.AddLoop([P, ia, out](const Workspace& ws, pthreadpool_t pool) {
    const int8_t* pa = ws.s8(ia);
    float* py = ws.f(out);
    thread_local std::vector<int16_t> a16;
    thread_local std::vector<int32_t> acc;
    for (int64_t r = 0; r < P->rows; ++r) {
      a16.assign(static_cast<size_t>(P->k2 * 2), 0);
      for (int64_t kk = 0; kk < P->k; ++kk)
        a16[static_cast<size_t>(kk)] = static_cast<int16_t>(pa[r * P->k + kk] - P->a_zp);
      acc.resize(static_cast<size_t>(P->blocks * 16));
      const int16_t* a = a16.data();
      int32_t* s = acc.data();
      ParallelFor(pool, (P->blocks + 3) / 4, 1, [&](int64_t g0, int64_t g1) {
        QGemmFloatBlocks(*P, a, g0 * 4, std::min(P->blocks, g1 * 4), s);
      });
      float* y = py + r * P->n;
      for (int64_t o = 0; o < P->n; ++o) {
        const auto v = static_cast<int32_t>(static_cast<uint32_t>(s[o]) +
                                            static_cast<uint32_t>(P->bias[static_cast<size_t>(o)]));
        const auto fv = static_cast<float>(static_cast<double>(v) * P->mult[static_cast<size_t>(o)]);
        y[o] = std::min(P->hi, std::max(P->lo, fv));
      }
    }
  });
  b.FinishLogicalOut(f.out, out);
  return Status::Ok();
}

NodeSupport QGemmSupports(const NodeQuery& q) {
  const Node& n = *q.node;
  const bool float_out = q.inputs.size() < 8 || !Present(n, 7);
  if (float_out && q.inputs.size() > 8 && Present(n, 8)) {
    return NodeSupport::No("y_zero_point without y_scale");
  }
  std::string e = CheckInt8Value(q.inputs[0], "A");
  if (e.empty() && !float_out) e = CheckInt8Value(q.outputs[0], "Y");
  if (e.empty() && float_out &&
      (q.outputs[0]->type != ElementType::kF32 || !q.outputs[0]->has_static_shape())) {
    e = "Y is not a static f32 value";
  }
  if (!e.empty()) return NodeSupport::No(e);
  if (n.attrs.GetInt("transA", 0) != 0) return NodeSupport::No("transA = 1 is not supported");
  const Tensor* bt = q.constants[3];
  if (bt == nullptr || bt->rank() != 2) return NodeSupport::No("B is not a constant 2D");
  const Shape a = q.inputs[0]->static_shape();
  const bool tb = n.attrs.GetInt("transB", 0) != 0;
  const int64_t k = tb ? bt->dim(1) : bt->dim(0), m = tb ? bt->dim(0) : bt->dim(1);
  if (a.size() != 2 || a[1] != k) return NodeSupport::No("A is not [M, K] with B's K");
  const Tensor* c = q.constants.size() > 6 ? q.constants[6] : nullptr;
  if (Present(n, 6) && (c == nullptr || c->type() != ElementType::kI32 ||
                        (c->size() != 1 && c->size() != m))) {
    return NodeSupport::No("C is not a constant i32 with 1 or N values");
  }
  ConvQ cq;
  // C is read here (one value or N), not by ReadConvQ; a float output reads x's parameters as
  // y's (QGemmFloatBuild).
  e = float_out ? ReadConvQ(n, QueryConsts(q), q.inputs[0]->type, q.inputs[0]->type, m, &cq, 2,
                            QInputs{1, 2, 99})
                : ReadConvQ(n, QueryConsts(q), q.inputs[0]->type, q.outputs[0]->type, m, &cq, 2,
                            QInputs{kGemmInputs.y_scale, kGemmInputs.y_zp, 99});
  if (!e.empty()) return NodeSupport::No(e);
  return YesInt8(q, kInt8Gmacs);
}

Status QGemmBuild(Builder& b, const Node& n, const Fusion& f) {
  if (n.inputs.size() < 8 || !Present(n, 7)) return QGemmFloatBuild(b, n, f);
  const Shape as = b.shape(n.inputs[0]);
  const Tensor& bt = *b.constant(n.inputs[3]);
  const bool tb = n.attrs.GetInt("transB", 0) != 0;
  const int64_t k = tb ? bt.dim(1) : bt.dim(0), m = tb ? bt.dim(0) : bt.dim(1);
  ConvQ cq;
  std::string e = ReadConvQ(n, NodeConsts(b, n), b.type(n.inputs[0]), b.type(f.out), m, &cq, 2,
                            QInputs{kGemmInputs.y_scale, kGemmInputs.y_zp, 99});
  if (!e.empty()) return InvalidArgument(e);
  std::vector<int32_t> bias(static_cast<size_t>(m), 0);
  if (Present(n, 6)) {
    const Tensor& c = *b.constant(n.inputs[6]);
    for (int64_t o = 0; o < m; ++o) {
      bias[static_cast<size_t>(o)] = cq.dead[static_cast<size_t>(o)]
                                         ? 0
                                         : c.data<int32_t>()[c.size() == 1 ? 0 : o];
    }
  }
  return AddConstantProduct(b, n, f, n.inputs[0], as[0], k, m,
                            ProductKernel(bt, k, m, !tb, cq), std::move(bias), cq);
}

Status QMatMulComputedBuild(Builder& b, const Node& n, const Fusion& f) {
  const Shape as = b.shape(n.inputs[0]), bs = b.shape(n.inputs[3]);
  QParam qa, qb, qy;
  std::string e = ReadQParam(NodeConsts(b, n), 1, 2, Present(n, 2), b.type(n.inputs[0]), &qa);
  if (e.empty())
    e = ReadQParam(NodeConsts(b, n), 4, 5, Present(n, 5), b.type(n.inputs[3]), &qb);
  if (e.empty()) e = ReadQParam(NodeConsts(b, n), 6, 7, Present(n, 7), b.type(f.out), &qy);
  if (!e.empty()) return InvalidArgument(e);
  int8_t lo, hi;
  StoredBounds(f, qy.type, &lo, &hi);
  const int64_t m = as[as.size() - 2], k = as.back(), nn = bs.back();
  const int64_t batches = NumElements(as) / (m * k);
  // The reference's float multiplier: a_scale * b_scale / y_scale, left to right.
  const float mult = qa.scale * qb.scale / qy.scale;
  const int32_t azp = qa.stored_zp(), bzp = qb.stored_zp();
  const float yzp = static_cast<float>(qy.stored_zp());
  const float flo = lo, fhi = hi;
  const int ia = b.LogicalIn(n.inputs[0]);
  const int ib = b.LogicalIn(n.inputs[3]);
  const int out = b.LogicalOut(f.out);
  b.Use(ia);  // A's logical copy must outlive B's permute step
  b.Use(ib);
  b.AddLoop([=](const Workspace& ws, pthreadpool_t pool) {
    const int8_t* pa = ws.s8(ia);
    const int8_t* pb = ws.s8(ib);
    int8_t* py = ws.s8(out);
    ParallelFor(pool, batches, 1, [&](int64_t b0, int64_t e0) {
      std::vector<int16_t> bt(static_cast<size_t>(nn * k)), ar(static_cast<size_t>(k));
      for (int64_t bi = b0; bi < e0; ++bi) {
        const int8_t* bb = pb + bi * k * nn;
        for (int64_t kk = 0; kk < k; ++kk) {
          for (int64_t j = 0; j < nn; ++j)
            bt[static_cast<size_t>(j * k + kk)] = static_cast<int16_t>(bb[kk * nn + j] - bzp);
        }
        for (int64_t i = 0; i < m; ++i) {
          const int8_t* arow = pa + (bi * m + i) * k;
          for (int64_t kk = 0; kk < k; ++kk)
            ar[static_cast<size_t>(kk)] = static_cast<int16_t>(arow[kk] - azp);
          int8_t* yrow = py + (bi * m + i) * nn;
          for (int64_t j = 0; j < nn; ++j) {
            const int16_t* bcol = bt.data() + j * k;
            int32_t acc = 0;
            for (int64_t kk = 0; kk < k; ++kk)
              acc += static_cast<int32_t>(ar[static_cast<size_t>(kk)]) * bcol[kk];
            const float v = std::nearbyint(static_cast<float>(acc) * mult) + yzp;
            yrow[j] = static_cast<int8_t>(std::clamp(v, flo, fhi));
          }
        }
      }
    });
  });
  b.FinishLogicalOut(f.out, out);
  return Status::Ok();
}

Status QMatMulBuild(Builder& b, const Node& n, const Fusion& f) {
  return b.constant(n.inputs[3]) != nullptr ? QMatMulConstBuild(b, n, f)
                                            : QMatMulComputedBuild(b, n, f);
}

// ---- QAveragePool (2D, NHWC): exact sums, the reference's double requantization ----

NodeSupport QAvgPoolSupports(const NodeQuery& q) {
  std::string e = CheckInt8Value(q.inputs[0], "X");
  if (e.empty()) e = CheckInt8Value(q.outputs[0], "Y");
  if (!e.empty()) return NodeSupport::No(e);
  if (q.inputs[0]->shape->size() != 4) return NodeSupport::No("only 4D input");
  auto g = PoolGeometryOf(*q.node, q.inputs[0]->static_shape(), q.outputs[0]->static_shape());
  if (!g.ok()) return NodeSupport::No(g.status().message());
  return PoolQParamsSupport(q);
}

Status QAvgPoolBuild(Builder& b, const Node& n, const Fusion& f) {
  const Shape xs = b.shape(n.inputs[0]), ys = b.shape(f.out);
  KILN_ASSIGN_OR_RETURN(PoolGeometry g, PoolGeometryOf(n, xs, ys));
  QParam qx, qy;
  std::string e = ReadQParam(NodeConsts(b, n), 1, 2, Present(n, 2), b.type(n.inputs[0]), &qx);
  if (e.empty()) e = ReadQParam(NodeConsts(b, n), 3, 4, Present(n, 4), b.type(f.out), &qy);
  if (!e.empty()) return InvalidArgument(e);
  int8_t lo, hi;
  StoredBounds(f, qy.type, &lo, &hi);
  const int64_t batch = xs[0], c = xs[1], ih = xs[2], iw = xs[3], oh = ys[2], ow = ys[3];
  const double xscale = qx.scale, yscale = qy.scale;
  const int32_t xzp = qx.stored_zp();
  const ElementType yt = qy.type;
  const int64_t yzp = qy.zp;
  const int in = b.Buffer(n.inputs[0]);
  const int out = b.Buffer(f.out);
  b.AddLoop([=](const Workspace& ws, pthreadpool_t pool) {
    const int8_t* src = ws.s8(in);
    int8_t* dst = ws.s8(out);
    ParallelFor(pool, batch * oh, 1, [&](int64_t r0, int64_t r1) {
      std::vector<int32_t> sums(static_cast<size_t>(c));
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t bn = r / oh, y = r % oh;
        for (int64_t x = 0; x < ow; ++x) {
          std::fill(sums.begin(), sums.end(), 0);
          int64_t count = 0;
          for (int64_t i = 0; i < g.kh; ++i) {
            const int64_t sy = y * g.sh - g.pt + i;
            if (sy < 0 || sy >= ih) continue;
            for (int64_t j = 0; j < g.kw; ++j) {
              const int64_t sx = x * g.sw - g.pl + j;
              if (sx < 0 || sx >= iw) continue;
              ++count;
              const int8_t* px = src + ((bn * ih + sy) * iw + sx) * c;
              for (int64_t ch = 0; ch < c; ++ch) sums[static_cast<size_t>(ch)] += px[ch];
            }
          }
          int8_t* o = dst + ((bn * oh + y) * ow + x) * c;
          for (int64_t ch = 0; ch < c; ++ch) {
            const int64_t s = sums[static_cast<size_t>(ch)] - static_cast<int64_t>(xzp) * count;
            const double v = count == 0 ? 0.0
                                        : static_cast<double>(s) * xscale /
                                              (yscale * static_cast<double>(count));
            const double qv = std::nearbyint(v) + static_cast<double>(yzp);
            o[ch] = std::clamp<int8_t>(static_cast<int8_t>(StoreRaw(yt, qv)), lo, hi);
          }
        }
      }
    });
  });
  return Status::Ok();
}

}  // namespace

// ---- Own table loops: y = table[(uint8)x] over the int8 storage ----

namespace {

// 64 lookups per step: two 128-entry permutes (AVX-512 VBMI), selected by the index's top bit.
__attribute__((target("avx512f,avx512bw,avx512vbmi"))) void LookupVbmi(const uint8_t* s,
                                                                      uint8_t* d, int64_t n,
                                                                      const uint8_t* tab) {
  const __m512i t0 = _mm512_loadu_si512(tab), t1 = _mm512_loadu_si512(tab + 64);
  const __m512i t2 = _mm512_loadu_si512(tab + 128), t3 = _mm512_loadu_si512(tab + 192);
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    const __m512i idx = _mm512_loadu_si512(s + i);
    const __m512i lo = _mm512_permutex2var_epi8(t0, idx, t1);
    const __m512i hi = _mm512_permutex2var_epi8(t2, idx, t3);
    _mm512_storeu_si512(d + i, _mm512_mask_blend_epi8(_mm512_movepi8_mask(idx), lo, hi));
  }
  for (; i < n; ++i) d[i] = tab[s[i]];
}

void Lookup(const uint8_t* s, uint8_t* d, int64_t n, const uint8_t* tab) {
  static const bool vbmi = __builtin_cpu_supports("avx512vbmi") &&
                           __builtin_cpu_supports("avx512bw");
  if (vbmi) {
    LookupVbmi(s, d, n, tab);
    return;
  }
  for (int64_t i = 0; i < n; ++i) d[i] = tab[s[i]];
}

}  // namespace

void AddTableLoop(Builder& b, ValueId x, ValueId y, const std::array<uint8_t, 256>& table) {
  const int in = b.Buffer(x);
  const int out = b.Buffer(y);
  const int64_t count = NumElements(b.shape(x));
  auto t = std::make_shared<std::array<uint8_t, 256>>(table);
  b.AddLoop([=](const Workspace& ws, pthreadpool_t pool) {
    const auto* s = reinterpret_cast<const uint8_t*>(ws.s8(in));
    auto* d = reinterpret_cast<uint8_t*>(ws.s8(out));
    const uint8_t* tab = t->data();
    ParallelFor(pool, count, 1 << 16,
                [&](int64_t b0, int64_t e0) { Lookup(s + b0, d + b0, e0 - b0, tab); });
  });
}

namespace {


// ---- QAdd / QMul ----

struct BinaryQ {
  QParam a, b, y;
};

std::string ReadBinaryQ(const Node& n, const std::function<const Tensor*(size_t)>& c,
                        ElementType at, ElementType bt, ElementType yt, BinaryQ* out) {
  std::string e = ReadQParam(c, 1, 2, Present(n, 2), at, &out->a);
  if (e.empty()) e = ReadQParam(c, 4, 5, Present(n, 5), bt, &out->b);
  if (e.empty()) e = ReadQParam(c, 6, 7, Present(n, 7), yt, &out->y);
  return e;
}

// The reference's value of one QAdd / QMul element from raw operands (quant_fused.cc).
double BinaryRef(bool mul, const BinaryQ& q, int64_t a, int64_t b) {
  const int64_t av = a - q.a.zp, bv = b - q.b.zp;
  const double sa = q.a.scale, sb = q.b.scale, sy = q.y.scale;
  const double v = mul ? static_cast<double>(av * bv) * (sa * sb)
                       : static_cast<double>(av) * sa + static_cast<double>(bv) * sb;
  return std::nearbyint(v / sy) + static_cast<double>(q.y.zp);
}

// A constant 8-bit operand broadcast to the shape ys and stored in its physical layout (int8
// storage: u8 flipped).
std::shared_ptr<std::vector<int8_t>> ExpandConstant8(const Tensor& c, const Shape& ys) {
  const size_t r = ys.size();
  const Shape cs = PadToRank(c.shape(), static_cast<int>(r));
  const int64_t count = NumElements(ys);
  std::vector<uint8_t> logical(static_cast<size_t>(count));
  const auto* src = static_cast<const uint8_t*>(c.raw());
  for (int64_t i = 0; i < count; ++i) {
    int64_t rem = i, off = 0, stride = 1;
    for (size_t d = r; d-- > 0;) {
      const int64_t idx = rem % ys[d];
      rem /= ys[d];
      off += (cs[d] == 1 ? 0 : idx) * stride;
      stride *= cs[d];
    }
    logical[static_cast<size_t>(i)] = src[off];
  }
  auto out = std::make_shared<std::vector<int8_t>>(static_cast<size_t>(count));
  PermuteCopyBytes(logical.data(), ys, PhysicalPerm(static_cast<int>(r)),
                   reinterpret_cast<uint8_t*>(out->data()), nullptr,
                   c.type() == ElementType::kU8 ? 0x80 : 0);
  return out;
}

// Whether XNNPACK's qs8 add / multiply accept the scale ratios.
bool XnnScalesFit(bool mul, const BinaryQ& bq) {
  const double ra = bq.a.scale / bq.y.scale, rb = bq.b.scale / bq.y.scale;
  if (mul) return !(ra * bq.b.scale < 0x1.0p-16 || ra * bq.b.scale >= 0x1.0p+8);
  return !(ra < 0x1.0p-10 || ra >= 0x1.0p+8 || rb < 0x1.0p-10 || rb >= 0x1.0p+8);
}

struct FastBinaryConsts {
  bool mul;
  int32_t za, zb;
  float ra, rb, rab, zy, flo, fhi, bound;
};

// Elements [b0, e0) 8 at a time (lanes near a half through `scalar`); returns where the
// portable tail starts.
template <typename Scalar>
KILN_TARGET_AVX2 int64_t FastExactBinaryAvx2(const FastBinaryConsts& c, const int8_t* pa,
                                             const int8_t* pb, int8_t* py, int64_t b0, int64_t e0,
                                             const Scalar& scalar) {
  const __m256i vza = _mm256_set1_epi32(c.za), vzb = _mm256_set1_epi32(c.zb);
  const __m256 vra = _mm256_set1_ps(c.ra), vrb = _mm256_set1_ps(c.rb),
               vrab = _mm256_set1_ps(c.rab);
  const __m256 vzy = _mm256_set1_ps(c.zy), vlo = _mm256_set1_ps(c.flo),
               vhi = _mm256_set1_ps(c.fhi);
  const __m256 vhalf = _mm256_set1_ps(0.5f), vbound = _mm256_set1_ps(c.bound);
  const __m256 vabs = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  constexpr int kNearest = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  int64_t i = b0;
  for (; i + 8 <= e0; i += 8) {
    const __m256i a32 = _mm256_sub_epi32(
        _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(pa + i))), vza);
    const __m256i b32 = _mm256_sub_epi32(
        _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(pb + i))), vzb);
    const __m256 f = c.mul ? _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_mullo_epi32(a32, b32)), vrab)
                           : _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(a32), vra),
                                           _mm256_mul_ps(_mm256_cvtepi32_ps(b32), vrb));
    const __m256 r = _mm256_round_ps(f, kNearest);
    const __m256 dist =
        _mm256_and_ps(_mm256_sub_ps(_mm256_and_ps(_mm256_sub_ps(f, r), vabs), vhalf), vabs);
    const int near = _mm256_movemask_ps(_mm256_cmp_ps(dist, vbound, _CMP_LE_OQ));
    const __m256 v = _mm256_min_ps(_mm256_max_ps(_mm256_add_ps(r, vzy), vlo), vhi);
    const __m256i q32 = _mm256_cvtps_epi32(v);
    const __m128i w16 =
        _mm_packs_epi32(_mm256_castsi256_si128(q32), _mm256_extracti128_si256(q32, 1));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(py + i), _mm_packs_epi16(w16, w16));
    if (near != 0) {
      for (int k = 0; k < 8; ++k) {
        if (near & (1 << k)) scalar(i + k);
      }
    }
  }
  return i;
}

// Rows [0, rows) of C elements of one image under a broadcast gate (AddFastExactBinaryLoop with
// channels > 0), 16 lanes at a time (the channel tail masked): f = a' * g[ch] (QMul,
// g = b' * rab) or a' * ra + g[ch] (QAdd, g = b' * rb), g computed once per image and channel.
// Two float roundings of at most 2^-24 |f| each stay inside the bound (2^-20 of the largest |f|),
// so the lanes further than it from a half round as the reference does; the others go to
// scalar(r * C + ch).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
template <typename Scalar>
__attribute__((target("avx512f,avx512bw,avx512vl,fma"))) void GateRowsAvx512(const FastBinaryConsts& c,
                                                                const int8_t* pa, const float* g,
                                                                int8_t* py, int64_t rows,
                                                                int64_t channels,
                                                                const Scalar& scalar) {
  const __m512i vza = _mm512_set1_epi32(c.za);
  const __m512 vra = _mm512_set1_ps(c.ra);
  const __m512 vzy = _mm512_set1_ps(c.zy), vlo = _mm512_set1_ps(c.flo), vhi = _mm512_set1_ps(c.fhi);
  const __m512 vhalf = _mm512_set1_ps(0.5f), vbound = _mm512_set1_ps(c.bound);
  constexpr int kNearest = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  for (int64_t r = 0; r < rows; ++r) {
    const int8_t* ar = pa + r * channels;
    int8_t* yr = py + r * channels;
    for (int64_t i = 0; i < channels; i += 16) {
      const int64_t left = channels - i;
      const __mmask16 m = left >= 16 ? static_cast<__mmask16>(0xFFFF)
                                     : static_cast<__mmask16>((1u << left) - 1);
      const __m512 a = _mm512_cvtepi32_ps(
          _mm512_sub_epi32(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, ar + i)), vza));
      const __m512 gv = _mm512_maskz_loadu_ps(m, g + i);
      const __m512 f = c.mul ? _mm512_mul_ps(a, gv) : _mm512_fmadd_ps(a, vra, gv);
      const __m512 rd = _mm512_roundscale_ps(f, kNearest);
      const __m512 dist = _mm512_abs_ps(_mm512_sub_ps(_mm512_abs_ps(_mm512_sub_ps(f, rd)), vhalf));
      const __mmask16 near = _mm512_mask_cmp_ps_mask(m, dist, vbound, _CMP_LE_OQ);
      const __m512 v = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(rd, vzy), vlo), vhi);
      _mm512_mask_cvtsepi32_storeu_epi8(yr + i, m, _mm512_cvtps_epi32(v));
      if (near != 0) {
        for (int k = 0; k < 16; ++k) {
          if (near & (1u << k)) scalar(r * channels + i + k);
        }
      }
    }
  }
}
#pragma GCC diagnostic pop

// Same-shape QAdd / QMul of two computed operands, exact and 8 lanes at a time: in float,
// f = a' * (sa / sy) + b' * (sb / sy) (QMul: (a' b') * (sa sb / sy)) is within
// e = (largest |terms|) * 2^-20 of the real value (float rounding adds at most 2^-22 of them),
// so wherever f is further than e from a half, f rounds as the reference's double arithmetic
// does; the lanes near a half take BinaryRef itself.
//
// channels > 0: b is [N, C, 1, 1] (C = channels), one value per image and channel, broadcast over
// the pixels of a of the output's shape (NHWC here: a squeeze-excitation gate); the same
// arithmetic row by row of C.
void AddFastExactBinaryLoop(Builder& b, ValueId va, ValueId vb, ValueId vy, bool mul,
                            const BinaryQ& q, int8_t lo, int8_t hi, int64_t channels = 0) {
  const int ia = b.Buffer(va), ib = b.Buffer(vb);
  b.Use(ia);
  const int out = b.Buffer(vy);
  const int64_t count = NumElements(b.shape(vy));
  const Shape ys = b.shape(vy);
  const int64_t pixels = channels > 0 ? ys[2] * ys[3] : 0;
  const bool avx512 = b.spec().isa >= CpuIsa::kAvx512;
  const float ra = static_cast<float>(static_cast<double>(q.a.scale) / q.y.scale);
  const float rb = static_cast<float>(static_cast<double>(q.b.scale) / q.y.scale);
  const float rab = static_cast<float>(static_cast<double>(q.a.scale) * q.b.scale / q.y.scale);
  const int32_t za = q.a.stored_zp(), zb = q.b.stored_zp();
  // One bound for every lane: the largest possible terms (|a'|, |b'| <= 255) times 2^-20.
  const float bound = static_cast<float>(
      (mul ? 65025.0 * std::fabs(rab) : 255.0 * (std::fabs(ra) + std::fabs(rb))) * 0x1.0p-20 +
      0x1.0p-30);
  // Saturation in the raw range, then the storage shift and the fused clamp: in storage terms
  // clamp(round(f) + zy_stored, lo, hi) (lo/hi lie inside the type's range).
  const float zy = static_cast<float>(q.y.stored_zp());
  const float flo = lo, fhi = hi;
  const BinaryQ qc = q;
  const FastBinaryConsts vc{mul, za, zb, ra, rb, rab, zy, flo, fhi, bound};
  b.AddLoop([=](const Workspace& ws, pthreadpool_t pool) {
    const int8_t* pa = ws.s8(ia);
    const int8_t* pb = ws.s8(ib);
    int8_t* py = ws.s8(out);
    auto scalar = [&](int64_t i) {  // element i of y (b's element: its gate's, broadcast)
      const int64_t bi = channels > 0 ? i / (pixels * channels) * channels + i % channels : i;
      const int64_t sa8 = pa[i], sb8 = pb[bi];
      const int64_t raw_a = qc.a.type == ElementType::kU8 ? sa8 + 128 : sa8;
      const int64_t raw_b = qc.b.type == ElementType::kU8 ? sb8 + 128 : sb8;
      const uint8_t st = StoreRaw(qc.y.type, BinaryRef(mul, qc, raw_a, raw_b));
      py[i] = std::clamp<int8_t>(static_cast<int8_t>(st), lo, hi);
    };
    const bool avx2 = CpuHasAvx2();
    if (channels > 0) {
      // Rows of C: the gate row of the row's image, the same exact arithmetic per lane; on
      // AVX-512 the gate's factors per image first (b' * rab, or b' * rb).
      const int64_t rows = count / channels;
      thread_local std::vector<float> gates;
      if (avx512) {
        gates.resize(static_cast<size_t>(count / pixels));
        for (size_t j = 0; j < gates.size(); ++j) {
          const auto bv = static_cast<float>(pb[j] - vc.zb);
          gates[j] = mul ? bv * vc.rab : bv * vc.rb;
        }
      }
      const float* gp = gates.data();
      ParallelFor(pool, rows, std::max<int64_t>(1, (1 << 14) / channels), [&](int64_t r0, int64_t r1) {
        if (avx512) {
          // Runs of rows within one image: one gate row each.
          for (int64_t r = r0; r < r1;) {
            const int64_t img = r / pixels, end = std::min(r1, (img + 1) * pixels);
            GateRowsAvx512(vc, pa + r * channels, gp + img * channels, py + r * channels, end - r,
                           channels, [&](int64_t k) { scalar(r * channels + k); });
            r = end;
          }
          return;
        }
        for (int64_t r = r0; r < r1; ++r) {
          const int8_t* ar = pa + r * channels;
          const int8_t* br = pb + r / pixels * channels;
          int8_t* yr = py + r * channels;
          auto row_scalar = [&](int64_t i) { scalar(r * channels + i); };
          int64_t i = avx2 ? FastExactBinaryAvx2(vc, ar, br, yr, 0, channels, row_scalar) : 0;
          for (; i < channels; ++i) row_scalar(i);
        }
      });
      return;
    }
    ParallelFor(pool, count, 1 << 14, [&](int64_t b0, int64_t e0) {
      int64_t i = avx2 ? FastExactBinaryAvx2(vc, pa, pb, py, b0, e0, scalar) : b0;
      for (; i < e0; ++i) scalar(i);
    });
  });
}

// Same-shape QAdd / QMul (constants broadcast, ExpandConstant8): y = table[a][b], a 64 KiB table
// of the reference's results for every pair of 8-bit values, so exact at a lookup per element.
void AddPairTableLoop(Builder& b, ValueId va, ValueId vb, ValueId vy, bool mul, const BinaryQ& q,
                      int8_t lo, int8_t hi) {
  const Shape ys = b.shape(vy);
  std::shared_ptr<std::vector<int8_t>> ca, cb;
  if (const Tensor* c = b.constant(va)) ca = ExpandConstant8(*c, ys);
  if (const Tensor* c = b.constant(vb)) cb = ExpandConstant8(*c, ys);
  const int ia = ca ? -1 : b.Buffer(va), ib = cb ? -1 : b.Buffer(vb);
  if (ia >= 0) b.Use(ia);
  const int out = b.Buffer(vy);
  const int64_t count = NumElements(ys);
  auto table = std::make_shared<std::vector<uint8_t>>(65536);
  for (int ua = 0; ua < 256; ++ua) {
    const int64_t sa = static_cast<int8_t>(static_cast<uint8_t>(ua));
    const int64_t ra = q.a.type == ElementType::kU8 ? sa + 128 : sa;
    for (int ub = 0; ub < 256; ++ub) {
      const int64_t sb = static_cast<int8_t>(static_cast<uint8_t>(ub));
      const int64_t rb = q.b.type == ElementType::kU8 ? sb + 128 : sb;
      const uint8_t st = StoreRaw(q.y.type, BinaryRef(mul, q, ra, rb));
      (*table)[static_cast<size_t>(ua << 8 | ub)] =
          static_cast<uint8_t>(std::clamp<int8_t>(static_cast<int8_t>(st), lo, hi));
    }
  }
  b.AddWeightBytes(65536);
  b.AddLoop([=](const Workspace& ws, pthreadpool_t pool) {
    const auto* pa = reinterpret_cast<const uint8_t*>(ca ? ca->data() : ws.s8(ia));
    const auto* pb = reinterpret_cast<const uint8_t*>(cb ? cb->data() : ws.s8(ib));
    auto* py = reinterpret_cast<uint8_t*>(ws.s8(out));
    const uint8_t* t = table->data();
    ParallelFor(pool, count, 1 << 15, [&](int64_t b0, int64_t e0) {
      for (int64_t i = b0; i < e0; ++i) py[i] = t[static_cast<size_t>(pa[i]) << 8 | pb[i]];
    });
  });
}

NodeSupport QBinarySupports(const NodeQuery& q) {
  const Node& n = *q.node;
  if (q.inputs.size() < 7) return NodeSupport::No("missing inputs");
  std::string e = CheckInt8Value(q.inputs[0], "A");
  if (e.empty()) e = CheckInt8Value(q.inputs[3], "B");
  if (e.empty()) e = CheckInt8Value(q.outputs[0], "Y");
  if (!e.empty()) return NodeSupport::No(e);
  BinaryQ bq;
  e = ReadBinaryQ(n, QueryConsts(q), q.inputs[0]->type, q.inputs[3]->type, q.outputs[0]->type,
                  &bq);
  if (!e.empty()) return NodeSupport::No(e);
  const bool a_const = q.constants[0] != nullptr, b_const = q.constants[3] != nullptr;
  const Shape ys = q.outputs[0]->static_shape();
  if ((a_const && q.constants[0]->size() == 1 && q.inputs[3]->static_shape() == ys) ||
      (b_const && q.constants[3]->size() == 1 && q.inputs[0]->static_shape() == ys)) {
    return YesInt8(q, kInt8Gmacs);  // a table
  }
  const size_t r = ys.size();
  for (size_t i : {0, 3}) {
    const size_t ri = q.inputs[i]->shape->size();
    if (ri > r) return NodeSupport::No("input rank above the output rank");
    if (q.constants[i] == nullptr && ri != r && r == 4)
      return NodeSupport::No("a computed operand of lower rank than a 4D output");
  }
  if (!XnnScalesFit(n.op_type == "QMul", bq)) {
    // The exact own loop: computed operands of the output's shape, constants broadcast.
    for (size_t i : {0, 3}) {
      if (q.constants[i] == nullptr && q.inputs[i]->static_shape() != ys)
        return NodeSupport::No("scale ratios out of XNNPACK's range and a computed operand "
                               "is broadcast");
    }
    return YesInt8(q, 4);
  }
  return YesInt8(q, kInt8Gmacs);
}

// Operand of an int8 binary op in the output's physical layout (buffer or storage constant).
struct Operand8 {
  int buffer = -1;
  std::shared_ptr<std::vector<int8_t>> constant;
  std::vector<size_t> shape;
};

Operand8 PrepareOperand8(Builder& b, ValueId v, int out_rank) {
  Operand8 o;
  const Shape padded = PadToRank(b.shape(v), out_rank);
  const std::vector<int> out_perm = PhysicalPerm(out_rank);
  o.shape = PhysicalDims(padded);
  if (const Tensor* c = b.constant(v)) {
    o.constant = std::make_shared<std::vector<int8_t>>(static_cast<size_t>(c->size()) + 16);
    PermuteCopyBytes(static_cast<const uint8_t*>(c->raw()), padded, out_perm,
                     reinterpret_cast<uint8_t*>(o.constant->data()), nullptr,
                     c->type() == ElementType::kU8 ? 0x80 : 0);
    return o;
  }
  o.buffer = b.Buffer(v);
  return o;
}

Status QBinaryBuild(Builder& b, const Node& n, const Fusion& f) {
  const bool mul = n.op_type == "QMul";
  const ElementType yt = b.type(f.out);
  BinaryQ bq;
  std::string e = ReadBinaryQ(n, NodeConsts(b, n), b.type(n.inputs[0]), b.type(n.inputs[3]), yt,
                              &bq);
  if (!e.empty()) return InvalidArgument(e);
  int8_t lo, hi;
  StoredBounds(f, yt, &lo, &hi);
  const Tensor* ca = b.constant(n.inputs[0]);
  const Tensor* cb = b.constant(n.inputs[3]);
  const Shape ys = b.shape(f.out);
  // A constant scalar operand: y is a function of the other operand's 256 values.
  for (int side = 0; side < 2; ++side) {
    const Tensor* c = side == 0 ? ca : cb;
    const ValueId other = side == 0 ? n.inputs[3] : n.inputs[0];
    if (c == nullptr || c->size() != 1 || b.shape(other) != ys) continue;
    const ElementType ot = b.type(other);
    std::array<uint8_t, 256> table{};
    for (int u = 0; u < 256; ++u) {
      const int64_t stored = static_cast<int8_t>(static_cast<uint8_t>(u));
      const int64_t raw = ot == ElementType::kU8 ? stored + 128 : stored;
      const int64_t k = c->GetAsInt64(0);
      const double q = side == 0 ? BinaryRef(mul, bq, k, raw) : BinaryRef(mul, bq, raw, k);
      const uint8_t st = StoreRaw(yt, q);
      table[static_cast<size_t>(u)] = static_cast<uint8_t>(
          std::clamp<int>(static_cast<int8_t>(st), lo, hi));
    }
    AddTableLoop(b, other, f.out, table);
    return Status::Ok();
  }
  // Operands of the output's shape (or constants) run the exact pair table when XNNPACK rejects
  // the scale ratios, or always with SessionOptions::exact_int8 (config key ExactInt8: the table
  // costs PP-OCR det 5 ms of 32 at 480x640, 1 thread); two computed ones otherwise the exact
  // float loop (under 1 ms more than XNNPACK's qs8 add there).
  const bool exact = b.spec().exact_int8;
  if ((exact || !XnnScalesFit(mul, bq)) && (ca != nullptr || b.shape(n.inputs[0]) == ys) &&
      (cb != nullptr || b.shape(n.inputs[3]) == ys)) {
    AddPairTableLoop(b, n.inputs[0], n.inputs[3], f.out, mul, bq, lo, hi);
    return Status::Ok();
  }
  if (!XnnScalesFit(mul, bq)) {
    return InvalidArgument("scale ratios out of XNNPACK's range and a computed operand is "
                           "broadcast");  // Supports() said no
  }
  if (ca == nullptr && cb == nullptr && b.shape(n.inputs[0]) == ys && b.shape(n.inputs[3]) == ys) {
    AddFastExactBinaryLoop(b, n.inputs[0], n.inputs[3], f.out, mul, bq, lo, hi);
    return Status::Ok();
  }
  // A 4D operand of the output's shape times (plus) a computed [N, C, 1, 1] one (a
  // squeeze-excitation gate): the exact loop row by row (the operands swapped when the gate comes
  // first: the reference's sum and product are symmetric).
  if (ca == nullptr && cb == nullptr && ys.size() == 4) {
    const Shape gate{ys[0], ys[1], 1, 1};
    for (int side = 0; side < 2; ++side) {
      const ValueId full = n.inputs[side == 0 ? 0 : 3], part = n.inputs[side == 0 ? 3 : 0];
      if (b.shape(full) != ys || b.shape(part) != gate) continue;
      BinaryQ q = bq;
      if (side == 1) std::swap(q.a, q.b);
      AddFastExactBinaryLoop(b, full, part, f.out, mul, q, lo, hi, ys[1]);
      return Status::Ok();
    }
  }
  const int out_rank = b.rank(f.out);
  Operand8 a = PrepareOperand8(b, n.inputs[0], out_rank);
  Operand8 c = PrepareOperand8(b, n.inputs[3], out_rank);
  if (a.buffer >= 0) b.Use(a.buffer);
  xnn_operator_t op = nullptr;
  const auto azp = static_cast<int8_t>(bq.a.stored_zp());
  const auto bzp = static_cast<int8_t>(bq.b.stored_zp());
  const auto yzp = static_cast<int8_t>(bq.y.stored_zp());
  const xnn_status st =
      mul ? xnn_create_multiply_nd_qs8(azp, bq.a.scale, bzp, bq.b.scale, yzp, bq.y.scale, lo, hi,
                                       0, &op)
          : xnn_create_add_nd_qs8(azp, bq.a.scale, bzp, bq.b.scale, yzp, bq.y.scale, lo, hi, 0,
                                  &op);
  if (st != xnn_status_success) return XnnError(n, "xnn_create_*_nd_qs8", st);
  const int out = b.Buffer(f.out);
  b.AddXnn(
      n, XnnOp(op),
      [=](const Workspace& ws, pthreadpool_t pool) {
        const int8_t* pa = a.buffer >= 0 ? ws.s8(a.buffer) : a.constant->data();
        const int8_t* pc = c.buffer >= 0 ? ws.s8(c.buffer) : c.constant->data();
        return mul ? xnn_setup_multiply_nd_qs8(op, a.shape.size(), a.shape.data(), c.shape.size(),
                                               c.shape.data(), pa, pc, ws.s8(out), pool)
                   : xnn_setup_add_nd_qs8(op, a.shape.size(), a.shape.data(), c.shape.size(),
                                          c.shape.data(), pa, pc, ws.s8(out), pool);
      },
      "xnn_setup_*_nd_qs8");
  return Status::Ok();
}

// ---- QLut ----

NodeSupport QLutSupports(const NodeQuery& q) {
  std::string e = CheckInt8Value(q.inputs[0], "X");
  if (e.empty()) e = CheckInt8Value(q.outputs[0], "Y");
  if (!e.empty()) return NodeSupport::No(e);
  if (q.inputs.size() < 2 || q.constants[1] == nullptr || q.constants[1]->size() != 256)
    return NodeSupport::No("table is not a constant of 256 values");
  return YesInt8(q, kInt8Gmacs);
}

Status QLutBuild(Builder& b, const Node& n, const Fusion& f) {
  const Tensor& t = *b.constant(n.inputs[1]);
  const auto* raw = static_cast<const uint8_t*>(t.raw());
  const uint8_t out_flip = t.type() == ElementType::kU8 ? 0x80 : 0;
  int8_t lo, hi;
  StoredBounds(f, t.type(), &lo, &hi);
  std::array<uint8_t, 256> table{};
  // Storage byte u is raw index (u ^ 0x80) for both u8 and i8 inputs (index = x - lowest).
  for (int u = 0; u < 256; ++u) {
    const auto v = static_cast<int8_t>(raw[u ^ 0x80] ^ out_flip);
    table[static_cast<size_t>(u)] = static_cast<uint8_t>(std::clamp<int8_t>(v, lo, hi));
  }
  AddTableLoop(b, n.inputs[0], f.out, table);
  return Status::Ok();
}

// ---- Clip on int8 ----

NodeSupport Int8ClipSupports(const NodeQuery& q) {
  std::string e = CheckInt8Value(q.inputs[0], "input");
  if (e.empty()) e = CheckInt8Value(q.outputs[0], "output");
  if (!e.empty()) return NodeSupport::No(e);
  if (q.node->op_type == "Clip") {
    for (size_t i = 1; i < q.inputs.size(); ++i) {
      if (q.inputs[i] != nullptr && q.constants[i] == nullptr)
        return NodeSupport::No("bounds are not constants");
    }
  }
  return YesInt8(q, kInt8Gmacs);
}

Status Int8ClampBuild(Builder& b, const Node& n, const Fusion& f) {
  Fusion g = f;
  if (n.op_type == "Relu") {
    g.out_min = std::max(g.out_min, 0.0f);
  } else {
    float lo, hi;
    if (!ClipBounds(n, [&](ValueId v) { return b.constant(v); }, &lo, &hi))
      return InvalidArgument("Clip bounds are not constants");
    g.out_min = std::max(g.out_min, lo);
    g.out_max = std::min(g.out_max, hi);
  }
  int8_t slo, shi;
  StoredBounds(g, b.type(f.out), &slo, &shi);
  std::array<uint8_t, 256> table{};
  for (int u = 0; u < 256; ++u) {
    table[static_cast<size_t>(u)] =
        static_cast<uint8_t>(std::clamp<int8_t>(static_cast<int8_t>(u), slo, shi));
  }
  AddTableLoop(b, n.inputs[0], f.out, table);
  return Status::Ok();
}

// ---- MaxPool on 8-bit values (DQ -> MaxPool -> Q with one scale folds to it) ----
// The max commutes with the stored form (u8 is stored as s8 by xor 0x80, which keeps the
// order), so XNNPACK's s8 max pooling serves both types; a fused Relu/Clip bounds the output.

NodeSupport Int8MaxPoolSupports(const NodeQuery& q) {
  std::string e = CheckInt8Value(q.inputs[0], "X");
  if (e.empty()) e = CheckInt8Value(q.outputs[0], "Y");
  if (!e.empty()) return NodeSupport::No(e);
  if (q.inputs[0]->type != q.outputs[0]->type) return NodeSupport::No("X and Y types differ");
  if (q.outputs.size() > 1 && q.outputs[1] != nullptr) {
    return NodeSupport::No("the Indices output is not supported");
  }
  if (q.inputs[0]->shape->size() != 4) return NodeSupport::No("only 2D (rank-4) pooling");
  auto g = PoolGeometryOf(*q.node, q.inputs[0]->static_shape(), q.outputs[0]->static_shape());
  if (!g.ok()) return NodeSupport::No(g.status().message());
  return YesInt8(q, kInt8Gmacs);
}

Status Int8MaxPoolBuild(Builder& b, const Node& n, const Fusion& f) {
  const Shape x = b.shape(n.inputs[0]), y = b.shape(n.outputs[0]);
  KILN_ASSIGN_OR_RETURN(PoolGeometry g, PoolGeometryOf(n, x, y));
  int8_t lo, hi;
  StoredBounds(f, b.type(f.out), &lo, &hi);
  const size_t c = static_cast<size_t>(x[1]);
  xnn_operator_t op = nullptr;
  const xnn_status st = xnn_create_max_pooling2d_nhwc_s8(
      static_cast<uint32_t>(g.pt), static_cast<uint32_t>(g.pr), static_cast<uint32_t>(g.pb),
      static_cast<uint32_t>(g.pl), static_cast<uint32_t>(g.kh), static_cast<uint32_t>(g.kw),
      static_cast<uint32_t>(g.sh), static_cast<uint32_t>(g.sw), static_cast<uint32_t>(g.dh),
      static_cast<uint32_t>(g.dw), c, c, c, lo, hi, 0, &op);
  if (st != xnn_status_success) return XnnError(n, "xnn_create_max_pooling2d_nhwc_s8", st);
  const int in = b.Buffer(n.inputs[0]);
  const int out = b.Buffer(f.out);
  b.AddXnn(
      n, XnnOp(op),
      [=](const Workspace& ws, pthreadpool_t pool) {
        return xnn_setup_max_pooling2d_nhwc_s8(op, static_cast<size_t>(x[0]),
                                               static_cast<size_t>(x[2]),
                                               static_cast<size_t>(x[3]), ws.s8(in), ws.s8(out),
                                               pool);
      },
      "xnn_setup_max_pooling2d_nhwc_s8");
  return Status::Ok();
}

// ---- QGlobalAveragePool: exact sums, the reference's requantization ----

// sums[ch] = sum over the hw pixels of src[p * c + ch] (int32: |sum| <= 128 * hw) for the
// channels [c0, c0 + 8 * J): J vectors of 8 int32 sums in registers.
template <int J>
KILN_TARGET_AVX2 inline void ChannelSumsBlock(const int8_t* src, int64_t hw, int64_t c,
                                              int64_t c0, int32_t* sums) {
  __m256i acc[J];
  for (__m256i& a : acc) a = _mm256_setzero_si256();
  for (int64_t p = 0; p < hw; ++p) {
    const int8_t* px = src + p * c + c0;
#pragma GCC unroll 8
    for (int j = 0; j < J; ++j) {
      const __m128i v = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(px + 8 * j));
      acc[j] = _mm256_add_epi32(acc[j], _mm256_cvtepi8_epi32(v));
    }
  }
  for (int j = 0; j < J; ++j)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(sums + c0 + 8 * j), acc[j]);
}

// The channels in blocks of 64, then one block each of 32, 16 and 8 as they fit: every
// channel count but the last (c mod 8) goes through vectors (efficientnet's 32, 96, 144, 240).
KILN_TARGET_AVX2 int64_t ChannelSumsAvx2(const int8_t* src, int64_t hw, int64_t c,
                                         int32_t* sums) {
  int64_t c0 = 0;
  for (; c0 + 64 <= c; c0 += 64) ChannelSumsBlock<8>(src, hw, c, c0, sums);
  if (c0 + 32 <= c) {
    ChannelSumsBlock<4>(src, hw, c, c0, sums);
    c0 += 32;
  }
  if (c0 + 16 <= c) {
    ChannelSumsBlock<2>(src, hw, c, c0, sums);
    c0 += 16;
  }
  if (c0 + 8 <= c) {
    ChannelSumsBlock<1>(src, hw, c, c0, sums);
    c0 += 8;
  }
  return c0;
}

void ChannelSums(const int8_t* src, int64_t hw, int64_t c, int32_t* sums) {
  const int64_t c0 = CpuHasAvx2() ? ChannelSumsAvx2(src, hw, c, sums) : 0;
  for (int64_t ch = c0; ch < c; ++ch) sums[ch] = 0;
  for (int64_t p = 0; p < hw && c0 < c; ++p) {
    const int8_t* px = src + p * c;
    for (int64_t ch = c0; ch < c; ++ch) sums[ch] += px[ch];
  }
}

NodeSupport QGapSupports(const NodeQuery& q) {
  std::string e = CheckInt8Value(q.inputs[0], "X");
  if (e.empty()) e = CheckInt8Value(q.outputs[0], "Y");
  if (!e.empty()) return NodeSupport::No(e);
  if (q.inputs[0]->shape->size() != 4) return NodeSupport::No("only 4D input");
  return PoolQParamsSupport(q);
}

Status QGapBuild(Builder& b, const Node& n, const Fusion& f) {
  const Shape xs = b.shape(n.inputs[0]);
  QParam qx, qy;
  std::string e = ReadQParam(NodeConsts(b, n), 1, 2, Present(n, 2), b.type(n.inputs[0]), &qx);
  if (e.empty()) e = ReadQParam(NodeConsts(b, n), 3, 4, Present(n, 4), b.type(f.out), &qy);
  if (!e.empty()) return InvalidArgument(e);
  int8_t lo, hi;
  StoredBounds(f, qy.type, &lo, &hi);
  const int64_t batch = xs[0], c = xs[1], hw = xs[2] * xs[3];
  const double mult = static_cast<double>(qx.scale) /
                      (static_cast<double>(qy.scale) * static_cast<double>(hw));
  const int32_t xzp = qx.stored_zp();
  const ElementType yt = qy.type;
  const int64_t yzp = qy.zp;
  const int in = b.Buffer(n.inputs[0]);
  const int out = b.Buffer(f.out);
  b.AddLoop([=](const Workspace& ws, pthreadpool_t) {
    std::vector<int32_t> sums(static_cast<size_t>(c));
    for (int64_t bn = 0; bn < batch; ++bn) {
      const int8_t* src = ws.s8(in) + bn * hw * c;
      ChannelSums(src, hw, c, sums.data());
      int8_t* dst = ws.s8(out) + bn * c;
      for (int64_t ch = 0; ch < c; ++ch) {
        const int64_t s = sums[static_cast<size_t>(ch)] - static_cast<int64_t>(xzp) * hw;
        const double v = std::nearbyint(static_cast<double>(s) * mult) + static_cast<double>(yzp);
        dst[ch] = std::clamp<int8_t>(static_cast<int8_t>(StoreRaw(yt, v)), lo, hi);
      }
    }
  });
  return Status::Ok();
}

// ---- DequantizeLinear / QuantizeLinear (per tensor) ----

NodeSupport DqSupports(const NodeQuery& q) {
  std::string e = CheckInt8Value(q.inputs[0], "x");
  if (!e.empty()) return NodeSupport::No(e);
  if (q.outputs[0] == nullptr || q.outputs[0]->type != ElementType::kF32)
    return NodeSupport::No("output is not f32");
  QParam p;
  e = ReadQParam(QueryConsts(q), 1, 2, Present(*q.node, 2), q.inputs[0]->type, &p);
  if (!e.empty()) return NodeSupport::No(e + " (per-tensor only)");
  NodeSupport s = YesInt8(q, 4);
  s.compute_type = ElementType::kUndefined;  // a conversion: exactly the stated types
  return s;
}

// (float)(q - zp) * scale for [b0, e0), 8 at a time: the same two float operations as the
// table. Returns where the portable tail starts.
KILN_TARGET_AVX2 int64_t DequantizeAvx2(const uint8_t* s, int32_t zp, float scale, float* d,
                                        int64_t b0, int64_t e0) {
  const __m256i vzp = _mm256_set1_epi32(zp);
  const __m256 vscale = _mm256_set1_ps(scale);
  int64_t i = b0;
  for (; i + 8 <= e0; i += 8) {
    const __m128i v = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(s + i));
    const __m256i q = _mm256_sub_epi32(_mm256_cvtepi8_epi32(v), vzp);
    _mm256_storeu_ps(d + i, _mm256_mul_ps(_mm256_cvtepi32_ps(q), vscale));
  }
  return i;
}

// clamp(round(x / scale) + zp, lo, hi) - shift for [b0, e0), 8 at a time (NaN -> 0). Returns
// where the portable tail starts.
KILN_TARGET_AVX2 int64_t QuantizeAvx2(const float* s, float scale, float zp, float lo, float hi,
                                      int shift, int8_t* d, int64_t b0, int64_t e0) {
  const __m256 vs = _mm256_set1_ps(scale), vz = _mm256_set1_ps(zp);
  const __m256 vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
  const __m256i vshift = _mm256_set1_epi32(shift);
  int64_t i = b0;
  for (; i + 8 <= e0; i += 8) {
    __m256 v = _mm256_div_ps(_mm256_loadu_ps(s + i), vs);
    v = _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    v = _mm256_add_ps(v, vz);
    v = _mm256_and_ps(v, _mm256_cmp_ps(v, v, _CMP_ORD_Q));  // NaN -> 0
    v = _mm256_min_ps(_mm256_max_ps(v, vlo), vhi);
    const __m256i q = _mm256_sub_epi32(_mm256_cvttps_epi32(v), vshift);
    // In [-128, 127]: the saturating packs are plain narrowing.
    const __m128i w16 =
        _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(d + i), _mm_packs_epi16(w16, w16));
  }
  return i;
}

Status DqBuild(Builder& b, const Node& n, const Fusion& f) {
  QParam p;
  std::string e = ReadQParam(NodeConsts(b, n), 1, 2, Present(n, 2), b.type(n.inputs[0]), &p);
  if (!e.empty()) return InvalidArgument(e);
  // The reference: (float)(q - zp) * scale; storage differences equal raw ones.
  auto table = std::make_shared<std::array<float, 256>>();
  for (int u = 0; u < 256; ++u) {
    const int64_t stored = static_cast<int8_t>(static_cast<uint8_t>(u));
    (*table)[static_cast<size_t>(u)] =
        static_cast<float>(stored - p.stored_zp()) * p.scale;
  }
  const int32_t zp = p.stored_zp();
  const float scale = p.scale;
  const int in = b.Buffer(n.inputs[0]);
  const int out = b.Buffer(f.out);
  const int64_t count = NumElements(b.shape(f.out));
  b.AddLoop([=](const Workspace& ws, pthreadpool_t pool) {
    const auto* s = reinterpret_cast<const uint8_t*>(ws.s8(in));
    float* d = ws.f(out);
    const float* t = table->data();
    const bool avx2 = CpuHasAvx2();
    ParallelFor(pool, count, 1 << 14, [&](int64_t b0, int64_t e0) {
      int64_t i = avx2 ? DequantizeAvx2(s, zp, scale, d, b0, e0) : b0;
      for (; i < e0; ++i) d[i] = t[s[i]];
    });
  });
  return Status::Ok();
}

NodeSupport QSupports(const NodeQuery& q) {
  std::string e = CheckInt8Value(q.outputs[0], "y");
  if (!e.empty()) return NodeSupport::No(e);
  if (q.inputs[0] == nullptr || q.inputs[0]->type != ElementType::kF32)
    return NodeSupport::No("input is not f32");
  if (!q.inputs[0]->has_static_shape()) return NodeSupport::No("input has no static shape");
  QParam p;
  e = ReadQParam(QueryConsts(q), 1, 2, Present(*q.node, 2), q.outputs[0]->type, &p);
  if (!e.empty()) return NodeSupport::No(e + " (per-tensor only)");
  NodeSupport s = YesInt8(q, 4);
  s.compute_type = ElementType::kUndefined;
  return s;
}

Status QBuild(Builder& b, const Node& n, const Fusion& f) {
  QParam p;
  const ElementType yt = b.type(f.out);
  std::string e = ReadQParam(NodeConsts(b, n), 1, 2, Present(n, 2), yt, &p);
  if (!e.empty()) return InvalidArgument(e);
  // Saturate in the raw range, then shift to storage: clamp(round(x / s) + zp) - (u8 ? 128 : 0).
  const bool u8 = yt == ElementType::kU8;
  const float lo = u8 ? 0.0f : -128.0f, hi = u8 ? 255.0f : 127.0f;
  const float zp = static_cast<float>(p.zp), scale = p.scale;
  const int shift = u8 ? 128 : 0;
  const int in = b.Buffer(n.inputs[0]);
  const int out = b.Buffer(f.out);
  const int64_t count = NumElements(b.shape(f.out));
  b.AddLoop([=](const Workspace& ws, pthreadpool_t pool) {
    const float* s = ws.f(in);
    int8_t* d = ws.s8(out);
    const bool avx2 = CpuHasAvx2();
    ParallelFor(pool, count, 1 << 14, [&](int64_t b0, int64_t e0) {
      int64_t i = avx2 ? QuantizeAvx2(s, scale, zp, lo, hi, shift, d, b0, e0) : b0;
      for (; i < e0; ++i) {
        float v = std::nearbyint(s[i] / scale) + zp;
        if (std::isnan(v)) v = 0;
        v = std::min(hi, std::max(lo, v));
        d[i] = static_cast<int8_t>(static_cast<int>(v) - shift);
      }
    });
  });
  return Status::Ok();
}

}  // namespace

void AddInt8Ops(std::vector<OpDef>& table) {
  table.push_back({"QLinearConv", QConvSupports, QConvBuild, true, true});
  table.push_back({"QAdd", QBinarySupports, QBinaryBuild, true, true});
  table.push_back({"QMul", QBinarySupports, QBinaryBuild, true, true});
  table.push_back({"QLut", QLutSupports, QLutBuild, true, true});
  table.push_back({"QLinearMatMul", QMatMulSupports, QMatMulBuild, true, true});
  table.push_back({"QGemm", QGemmSupports, QGemmBuild, true, true});
  table.push_back({"QAveragePool", QAvgPoolSupports, QAvgPoolBuild, true, true});
  table.push_back({"QGlobalAveragePool", QGapSupports, QGapBuild, true, true});
  table.push_back({"Clip", Int8ClipSupports, Int8ClampBuild, true, true});
  table.push_back({"Relu", Int8ClipSupports, Int8ClampBuild, true, true});
  table.push_back({"MaxPool", Int8MaxPoolSupports, Int8MaxPoolBuild, true, true});
  table.push_back({"DequantizeLinear", DqSupports, DqBuild, false, true});
  table.push_back({"QuantizeLinear", QSupports, QBuild, false, true});
}

}  // namespace kiln::xnn
