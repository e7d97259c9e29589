// XNNPACK backend elementwise ops: Add/Sub/Mul/Div/Max/Min with numpy broadcasting (XNNPACK's
// nd operators, up to 6 dims, on the physical NHWC shapes), and activations: Relu, Clip,
// LeakyRelu, PRelu, Sigmoid, HardSwish (also the fused patterns), Abs, Neg, Sqrt, Floor, Ceil,
// Elu, and HardSigmoid (own loop: clamp(alpha*x+beta, 0, 1)). The fused HardSwish patterns are
// an own AVX2 loop in the pattern's own operation order (with a following constant affine
// y*s+b folded in). Tanh is an own loop in xnn_ops_neck.cc.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "backends/xnnpack/xnn_fconv.h"
#include "backends/xnnpack/xnn_internal.h"
#include "backends/xnnpack/xnn_ops.h"
#include "backends/xnnpack/xnn_silu_simd.h"
#include "core/cpu_features.h"

namespace kiln::xnn {

namespace {

constexpr double kGmacs = 25;
constexpr double kGbytes = 10;

// ---- Binary ----

using BinaryCreate = xnn_status (*)(float, float, uint32_t, xnn_operator_t*);
using BinaryCreateNoClamp = xnn_status (*)(uint32_t, xnn_operator_t*);
using BinarySetup = xnn_status (*)(xnn_operator_t, size_t, const size_t*, size_t, const size_t*,
                                   const float*, const float*, float*, pthreadpool_t);

struct BinaryKind {
  const char* op;
  BinaryCreate create;          // with output clamp (Add, Sub, Mul, Div)
  BinaryCreateNoClamp create2;  // without (Max, Min)
  BinarySetup setup;
};

const BinaryKind kBinary[] = {
    {"Add", xnn_create_add_nd_f32, nullptr, xnn_setup_add_nd_f32},
    {"Sub", xnn_create_subtract_nd_f32, nullptr, xnn_setup_subtract_nd_f32},
    {"Mul", xnn_create_multiply_nd_f32, nullptr, xnn_setup_multiply_nd_f32},
    {"Div", xnn_create_divide_nd_f32, nullptr, xnn_setup_divide_nd_f32},
    {"Max", nullptr, xnn_create_maximum_nd_f32, xnn_setup_maximum_nd_f32},
    {"Min", nullptr, xnn_create_minimum_nd_f32, xnn_setup_minimum_nd_f32},
};

const BinaryKind* FindBinary(const std::string& op) {
  for (const BinaryKind& k : kBinary) {
    if (op == k.op) return &k;
  }
  return nullptr;
}

NodeSupport BinarySupports(const NodeQuery& q) {
  if (q.inputs.size() != 2) return NodeSupport::No("exactly 2 inputs are supported");
  std::string e = CheckFloatNode(q, {0, 1}, XNN_MAX_TENSOR_DIMS);
  if (!e.empty()) return NodeSupport::No(e);
  const size_t r = q.outputs[0]->shape->size();
  for (int i = 0; i < 2; ++i) {
    const Shape s = q.inputs[static_cast<size_t>(i)]->static_shape();
    if (s.size() > r) return NodeSupport::No("input rank above the output rank");
  }
  return YesFloat(q, kGmacs, kGbytes);
}

// Whether a buffer holding `padded` in row-major order can be read as Permuted(padded, perm):
// true when the dims larger than 1 keep their relative order.
bool SameMemoryOrder(const Shape& padded, const std::vector<int>& perm) {
  int prev = -1;
  for (int d : perm) {
    if (padded[static_cast<size_t>(d)] == 1) continue;
    if (d < prev) return false;
    prev = d;
  }
  return true;
}

// One operand of a binary op, in the output's physical layout: a workspace buffer or an owned
// constant, with its physical shape.
struct Operand {
  int buffer = -1;
  std::shared_ptr<std::vector<float>> constant;
  std::vector<size_t> shape;
};

Operand PrepareOperand(Builder& b, ValueId v, int out_rank) {
  Operand o;
  const Shape s = b.shape(v);
  const Shape padded = PadToRank(s, out_rank);
  const std::vector<int> out_perm = PhysicalPerm(out_rank);
  o.shape = PhysicalDims(padded);
  if (const Tensor* c = b.constant(v)) {
    const std::vector<float> vals = ConstantFloats(*c);
    o.constant = std::make_shared<std::vector<float>>(vals.size() + XNN_EXTRA_BYTES / 4);
    PermuteCopy(vals.data(), padded, out_perm, o.constant->data(), nullptr);
    return o;
  }
  const std::vector<int> in_perm = b.perm(v);
  if (static_cast<int>(s.size()) == out_rank ||
      (IsIdentity(in_perm) && SameMemoryOrder(padded, out_perm))) {
    o.buffer = b.Buffer(v);  // same rank: same layout; or a compatible lower-rank identity layout
    return o;
  }
  // Materialise the logical operand in the output's layout.
  const int logical = b.LogicalIn(v);
  o.buffer = b.Scratch(NumElements(padded));
  const int dst = o.buffer;
  b.AddLoop([=](const Workspace& ws, pthreadpool_t pool) {
    PermuteCopy(ws.f(logical), padded, out_perm, ws.f(dst), pool);
  });
  b.Use(o.buffer);
  return o;
}

// A loop over the NHWC rows of x ([N, C, H, W]) with a per-image row of C values s ([N, C, 1,
// 1]): row(x_row, s_row, y_row, C) per pixel, the rows split over the pool with at least `grain`
// elements per chunk. The step of the gate multiply and of the squeeze-excitation residual.
template <typename Row>
void AddGateRowLoop(Builder& b, ValueId x, ValueId s, ValueId y, int64_t grain, Row row) {
  const Shape xs = b.shape(x);
  const int64_t batch = xs[0], c = xs[1], pixels = xs[2] * xs[3];
  const int in = b.Buffer(x);
  const int sc = b.Buffer(s);
  b.Use(in);
  const int out = b.Buffer(y);
  b.AddLoop([=](const Workspace& ws, pthreadpool_t pool) {
    const float* src = ws.f(in);
    const float* scale = ws.f(sc);
    float* dst = ws.f(out);
    ParallelFor(pool, batch * pixels, std::max<int64_t>(1, grain / c), [&](int64_t p0, int64_t p1) {
      for (int64_t p = p0; p < p1; ++p) row(src + p * c, scale + (p / pixels) * c, dst + p * c, c);
    });
  });
}

// y = x * s[channel] over rows of C (NHWC) with s [N, C]: 8 at a time; returns where the
// portable tail starts.
KILN_TARGET_AVX2 int64_t ChannelScaleAvx2(const float* xr, const float* sr, float* yr, int64_t n,
                                          float lo, float hi) {
  const __m256 vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(xr + i), _mm256_loadu_ps(sr + i));
    _mm256_storeu_ps(yr + i, _mm256_min_ps(_mm256_max_ps(v, vlo), vhi));
  }
  return i;
}

// Mul of a 4D value of the output's shape and a computed [N, C, 1, 1] one (a squeeze-excitation
// gate): an own row loop. XNNPACK's broadcasting multiply split these small tensors over the
// pool and got slower with 2 threads than with 1 (efficientnet_b0: 16 gates, 0.31 -> 0.59 ms);
// here rows are split only where each thread gets at least 16 K elements.
bool BuildChannelScale(Builder& b, const Node& n, const Fusion& f) {
  if (n.op_type != "Mul" || n.inputs.size() != 2 || b.rank(f.out) != 4) return false;
  const Shape ys = b.shape(f.out);
  const Shape gate{ys[0], ys[1], 1, 1};
  for (int side = 0; side < 2; ++side) {
    const ValueId full = n.inputs[static_cast<size_t>(side)];
    const ValueId part = n.inputs[static_cast<size_t>(1 - side)];
    if (b.constant(full) != nullptr || b.constant(part) != nullptr || b.shape(full) != ys ||
        b.shape(part) != gate) {
      continue;
    }
    const float lo = f.out_min, hi = f.out_max;
    AddGateRowLoop(b, full, part, f.out, 16384,
                   [=](const float* xr, const float* sr, float* yr, int64_t c) {
                     int64_t i = CpuHasAvx2() ? ChannelScaleAvx2(xr, sr, yr, c, lo, hi) : 0;
                     for (; i < c; ++i) yr[i] = std::min(hi, std::max(lo, xr[i] * sr[i]));
                   });
    return true;
  }
  return false;
}

Status BinaryBuild(Builder& b, const Node& n, const Fusion& f) {
  if (BuildChannelScale(b, n, f)) return Status::Ok();
  const BinaryKind* k = FindBinary(n.op_type);
  const int out_rank = b.rank(n.outputs[0]);
  Operand a = PrepareOperand(b, n.inputs[0], out_rank);
  Operand c = PrepareOperand(b, n.inputs[1], out_rank);
  if (a.buffer >= 0) b.Use(a.buffer);
  xnn_operator_t op = nullptr;
  const xnn_status st = k->create ? k->create(f.out_min, f.out_max, 0, &op) : k->create2(0, &op);
  if (st != xnn_status_success) return XnnError(n, "xnn_create_*_nd_f32", st);
  const int out = b.Buffer(f.out);
  const BinarySetup setup = k->setup;
  b.AddXnn(
      n, XnnOp(op),
      [=](const Workspace& ws, pthreadpool_t pool) {
        const float* pa = a.buffer >= 0 ? ws.f(a.buffer) : a.constant->data();
        const float* pc = c.buffer >= 0 ? ws.f(c.buffer) : c.constant->data();
        return setup(op, a.shape.size(), a.shape.data(), c.shape.size(), c.shape.data(), pa, pc,
                     ws.f(out), pool);
      },
      "xnn_setup_*_nd_f32");
  return Status::Ok();
}

// ---- Unary ----

NodeSupport UnarySupports(const NodeQuery& q) {
  std::string e = CheckFloatNode(q, {0}, 8);
  if (!e.empty()) return NodeSupport::No(e);
  return YesFloat(q, kGmacs, kGbytes);
}

using UnarySetup = xnn_status (*)(xnn_operator_t, size_t, const float*, float*, pthreadpool_t);

// A unary nc operator over all elements (channels 1, contiguous).
Status AddUnary(Builder& b, const Node& n, ValueId x, ValueId y, xnn_operator_t op, xnn_status st,
                UnarySetup setup, int64_t channels = 1) {
  if (st != xnn_status_success) return XnnError(n, "xnn_create_*_nc_f32", st);
  const int in = b.Buffer(x);
  const int out = b.Buffer(y);
  const int64_t batch = NumElements(b.shape(x)) / channels;
  b.AddXnn(
      n, XnnOp(op),
      [=](const Workspace& ws, pthreadpool_t pool) {
        return setup(op, static_cast<size_t>(batch), ws.f(in), ws.f(out), pool);
      },
      "xnn_setup_*_nc_f32");
  return Status::Ok();
}

Status ClampBuild(Builder& b, const Node& n, const Fusion& f) {
  float lo = 0, hi = INFINITY;
  if (n.op_type == "Clip" && !ClipBounds(
                                 n, [&](ValueId v) { return b.constant(v); }, &lo, &hi)) {
    return InvalidArgument("Clip bounds are not constant");
  }
  lo = std::max(lo, f.out_min);
  hi = std::min(hi, f.out_max);
  xnn_operator_t op = nullptr;
  const xnn_status st = xnn_create_clamp_nc_f32(1, 1, 1, lo, hi, 0, &op);
  return AddUnary(b, n, n.inputs[0], f.out, op, st, xnn_setup_clamp_nc_f32);
}

NodeSupport ClipSupports(const NodeQuery& q) {
  NodeSupport s = UnarySupports(q);
  if (!s.supported) return s;
  for (size_t i = 1; i < 3 && i < q.inputs.size(); ++i) {
    if (q.inputs[i] != nullptr && (q.constants[i] == nullptr || q.constants[i]->size() != 1)) {
      return NodeSupport::No(std::string(i == 1 ? "min" : "max") + " is not a constant scalar");
    }
  }
  float lo, hi;
  ClipBounds(
      *q.node,
      [&](ValueId v) -> const Tensor* {
        for (size_t i = 0; i < q.node->inputs.size(); ++i) {
          if (q.node->inputs[i] == v) return q.constants[i];
        }
        return nullptr;
      },
      &lo, &hi);
  if (!(lo < hi)) return NodeSupport::No("Clip min must be below max");
  return s;
}

Status LeakyReluBuild(Builder& b, const Node& n, const Fusion& f) {
  xnn_operator_t op = nullptr;
  const xnn_status st =
      xnn_create_leaky_relu_nc_f32(1, 1, 1, n.attrs.GetFloat("alpha", 0.01f), 0, &op);
  return AddUnary(b, n, n.inputs[0], f.out, op, st, xnn_setup_leaky_relu_nc_f32);
}

Status EluBuild(Builder& b, const Node& n, const Fusion& f) {
  xnn_operator_t op = nullptr;
  const xnn_status st = xnn_create_elu_nc_f32(1, 1, 1, n.attrs.GetFloat("alpha", 1.0f), 0, &op);
  return AddUnary(b, n, n.inputs[0], f.out, op, st, xnn_setup_elu_nc_f32);
}

using PlainCreate = xnn_status (*)(size_t, size_t, size_t, uint32_t, xnn_operator_t*);
struct PlainUnary {
  const char* op;
  PlainCreate create;
  UnarySetup setup;
};
const PlainUnary kPlainUnary[] = {
    {"Sigmoid", xnn_create_sigmoid_nc_f32, xnn_setup_sigmoid_nc_f32},
    {"HardSwish", xnn_create_hardswish_nc_f32, xnn_setup_hardswish_nc_f32},
    {"Abs", xnn_create_abs_nc_f32, xnn_setup_abs_nc_f32},
    {"Neg", xnn_create_negate_nc_f32, xnn_setup_negate_nc_f32},
    {"Sqrt", xnn_create_square_root_nc_f32, xnn_setup_square_root_nc_f32},
    {"Floor", xnn_create_floor_nc_f32, xnn_setup_floor_nc_f32},
    {"Ceil", xnn_create_ceiling_nc_f32, xnn_setup_ceiling_nc_f32},
};

Status PlainUnaryBuild(Builder& b, const Node& n, const Fusion& f) {
  for (const PlainUnary& u : kPlainUnary) {
    if (n.op_type != u.op) continue;
    xnn_operator_t op = nullptr;
    const xnn_status st = u.create(1, 1, 1, 0, &op);
    return AddUnary(b, n, n.inputs[0], f.out, op, st, u.setup);
  }
  return Internal("no unary kernel for " + n.op_type);
}

// PRelu: slope per channel (logical axis 1, physical last for NHWC / [N,C]) or a scalar.
NodeSupport PReluSupports(const NodeQuery& q) {
  std::string e = CheckFloatNode(q, {0}, 6);
  if (!e.empty()) return NodeSupport::No(e);
  if (q.constants.size() < 2 || q.constants[1] == nullptr)
    return NodeSupport::No("slope is not a constant");
  const Shape x = q.inputs[0]->static_shape();
  const Tensor& s = *q.constants[1];
  if (s.size() == 1) return YesFloat(q, kGmacs, kGbytes);
  if ((x.size() != 4 && x.size() != 2) || s.size() != x[1]) {
    return NodeSupport::No("slope must be a scalar or per channel of a 2D/4D input");
  }
  // Per channel: every slope dim but the channel one is 1, aligned to axis 1.
  const Shape ss = s.shape();
  const size_t off = x.size() - ss.size();
  for (size_t i = 0; i < ss.size(); ++i) {
    if (ss[i] != 1 && i + off != 1)
      return NodeSupport::No("slope must broadcast along axis 1 only");
  }
  return YesFloat(q, kGmacs, kGbytes);
}

Status PReluBuild(Builder& b, const Node& n, const Fusion& f) {
  const Shape x = b.shape(n.inputs[0]);
  const std::vector<float> slope = ConstantFloats(*b.constant(n.inputs[1]));
  const int64_t channels = slope.size() == 1 ? 1 : x[1];
  auto data = std::make_shared<std::vector<float>>(slope);
  xnn_operator_t op = nullptr;
  const xnn_status st =
      xnn_create_prelu_nc_f32(static_cast<size_t>(channels), static_cast<size_t>(channels),
                              static_cast<size_t>(channels), data->data(), 0, &op);
  b.AddWeightBytes(channels * 4);
  return AddUnary(b, n, n.inputs[0], f.out, op, st, xnn_setup_prelu_nc_f32, channels);
}

// HardSigmoid: y = clamp(alpha * x + beta, 0, 1), float arithmetic.
Status HardSigmoidBuild(Builder& b, const Node& n, const Fusion& f) {
  const float alpha = n.attrs.GetFloat("alpha", 0.2f), beta = n.attrs.GetFloat("beta", 0.5f);
  const float lo = std::max(0.0f, f.out_min), hi = std::min(1.0f, f.out_max);
  const int64_t count = NumElements(b.shape(n.inputs[0]));
  const int in = b.Buffer(n.inputs[0]);
  const int out = b.Buffer(f.out);
  b.AddLoop([=](const Workspace& ws, pthreadpool_t pool) {
    const float* x = ws.f(in);
    float* y = ws.f(out);
    ParallelFor(pool, count, 1 << 14, [&](int64_t s, int64_t e) {
      for (int64_t i = s; i < e; ++i) y[i] = std::min(hi, std::max(lo, alpha * x[i] + beta));
    });
  });
  return Status::Ok();
}

}  // namespace

struct HardSwishParams {
  bool hs, post;
  float alpha, beta, hi, pm, pa;
};

// hs: x * clamp(alpha*x + beta, 0, 1); else x * clamp(x + 3, 0, 6) / 6; then *pm + pa. Elements
// [s, e) 8 at a time; returns where the portable tail starts.
KILN_TARGET_AVX2 int64_t HardSwishAvx2(const HardSwishParams& p, const float* src, float* dst,
                                       int64_t s, int64_t e) {
  const __m256 va = _mm256_set1_ps(p.alpha), vb = _mm256_set1_ps(p.beta);
  const __m256 zero = _mm256_setzero_ps(), vhi = _mm256_set1_ps(p.hi);
  const __m256 six = _mm256_set1_ps(6.0f), vpm = _mm256_set1_ps(p.pm), vpa = _mm256_set1_ps(p.pa);
  int64_t i = s;
  for (; i + 8 <= e; i += 8) {
    const __m256 v = _mm256_loadu_ps(src + i);
    __m256 t = p.hs ? _mm256_add_ps(_mm256_mul_ps(va, v), vb) : _mm256_add_ps(v, vb);
    t = _mm256_min_ps(_mm256_max_ps(t, zero), vhi);
    t = _mm256_mul_ps(v, t);
    if (!p.hs) t = _mm256_div_ps(t, six);
    if (p.post) t = _mm256_add_ps(_mm256_mul_ps(t, vpm), vpa);
    _mm256_storeu_ps(dst + i, t);
  }
  return i;
}

// y = x + x * s over n channels, 8 at a time; returns where the portable tail starts.
KILN_TARGET_AVX2 int64_t ScaleResidualAvx2(const float* xr, const float* sr, float* yr,
                                           int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(xr + i);
    _mm256_storeu_ps(yr + i, _mm256_add_ps(v, _mm256_mul_ps(v, _mm256_loadu_ps(sr + i))));
  }
  return i;
}

Status BuildHardSwish(Builder& b, const Node& n, ValueId x, const Fusion& f) {
  (void)n;
  const int64_t count = NumElements(b.shape(x));
  const int in = b.Buffer(x);
  const int out = b.Buffer(f.out);
  const bool hs = f.hard_sigmoid != nullptr;
  const float alpha = hs ? f.hard_sigmoid->attrs.GetFloat("alpha", 0.2f) : 1.0f;
  const float beta = hs ? f.hard_sigmoid->attrs.GetFloat("beta", 0.5f) : 3.0f;
  const float hi = hs ? 1.0f : 6.0f;
  const bool post = f.has_post;
  const float pm = f.post_mul, pa = f.post_add;
  b.AddLoop([=](const Workspace& ws, pthreadpool_t pool) {
    const float* src = ws.f(in);
    float* dst = ws.f(out);
    const HardSwishParams p{hs, post, alpha, beta, hi, pm, pa};
    const bool avx2 = CpuHasAvx2();
    ParallelFor(pool, count, 1 << 13, [&](int64_t s, int64_t e) {
      int64_t i = avx2 ? HardSwishAvx2(p, src, dst, s, e) : s;
      for (; i < e; ++i) {
        const float v = src[i];
        float t = hs ? alpha * v + beta : v + beta;
        t = std::min(std::max(t, 0.0f), hi);
        t = v * t;
        if (!hs) t = t / 6.0f;
        if (post) t = t * pm + pa;
        dst[i] = t;
      }
    });
  });
  return Status::Ok();
}

// ---- SiLU: y = x * sigmoid(x) -------------------------------------------------------------
// SiLU in one pass instead of XNNPACK's Sigmoid and Mul (two passes over an activation that
// rarely fits in cache), and erf; written once over GCC vector types, compiled per ISA.
//
// SiLU of one vector at src into dst: sigmoid from e = exp(-|x|), 1/(1+e) for x >= 0 and
// e/(1+e) below.
template <typename V, typename VI>
__attribute__((always_inline)) inline void SiluVec(const float* src, float* dst) {
  V x, y;  // memcpy: a template argument loses the typedef's aligned(4)
  __builtin_memcpy(&x, src, sizeof(V));
  SiluOf<V, VI>(x, &y);
  __builtin_memcpy(dst, &y, sizeof(V));
}

// The AVX-512 SiLU, four vectors (64 elements) per call, side by side: one vector's chain is
// ~20 dependent operations (~90 cycles), and with one vector per iteration the out-of-order
// window held too few iterations to hide it (4 G elements/s on data in L1 on Zen 5, now ~3x
// that). src[i] / dst[i]: four vectors of 16 floats (the same one may appear twice: all four are
// loaded before any is stored).
__attribute__((target("avx512f"))) inline void Silu4Avx512(const float* const* src,
                                                            float* const* dst) {
  __m512 x[4];
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) x[i] = _mm512_loadu_ps(src[i]);
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) x[i] = SiluAvx512(x[i]);
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) _mm512_storeu_ps(dst[i], x[i]);
}

// erf(x): for |x| < 1 its Taylor series to x^21 (truncation < 2e-9), else
// 1 - exp(-x^2) * P(1 / (1 + 0.3275911 |x|)) (Abramowitz & Stegun 7.1.26, absolute error
// < 1.5e-7 where erf > 0.84), with the sign of x.
template <typename V, typename VI>
__attribute__((always_inline)) inline void ErfOf(const V& x, V* out) {
  const V zero = V{};
  const V ax = x < zero ? -x : x;
  const V x2 = x * x;
  // Series: 2/sqrt(pi) * sum_n (-1)^n x^(2n+1) / (n! (2n+1)), n = 0..10, Horner in x^2.
  const float c[11] = {1.1283791670955126f,  -0.37612638903183754f, 0.11283791670955126f,
                       -0.026866170645131252f, 0.005223977625442188f, -0.0008548325754361762f,
                       0.00012055332981789664f, -1.4925650358406252e-05f, 1.6462114365889246e-06f,
                       -1.6365844691234924e-07f, 1.4807192815879218e-08f};
  V s = zero + c[10];
  for (int i = 9; i >= 0; --i) s = s * x2 + c[i];
  const V small = s * x;
  const V t = (zero + 1.0f) / (ax * 0.3275911f + 1.0f);
  V q = zero + 1.061405429f;
  q = q * t - 1.453152027f;
  q = q * t + 1.421413741f;
  q = q * t - 0.284496736f;
  q = q * t + 0.254829592f;
  q = q * t;
  V e;
  ExpNonPositive<V, VI>(-x2, &e);
  const V big = (zero + 1.0f) - q * e;
  *out = ax < 1.0f ? small : (x < zero ? -big : big);
}

template <typename V, typename VI>
__attribute__((always_inline)) inline void ErfVec(const float* src, float* dst) {
  V x, y;
  __builtin_memcpy(&x, src, sizeof(V));
  ErfOf<V, VI>(x, &y);
  __builtin_memcpy(dst, &y, sizeof(V));
}

// GELU (erf form): 0.5 * x * (1 + erf(x / sqrt 2)).
template <typename V, typename VI>
__attribute__((always_inline)) inline void GeluVec(const float* src, float* dst) {
  V x, e;
  __builtin_memcpy(&x, src, sizeof(V));
  ErfOf<V, VI>(x * 0.7071067811865476f, &e);
  const V y = (x * 0.5f) * (e + 1.0f);
  __builtin_memcpy(dst, &y, sizeof(V));
}

typedef float V8s __attribute__((vector_size(32), aligned(4)));
typedef int32_t V8si __attribute__((vector_size(32), aligned(4)));
typedef float V16s __attribute__((vector_size(64), aligned(4)));
typedef int32_t V16si __attribute__((vector_size(64), aligned(4)));

// The vector loops of one elementwise function: 8 (AVX2) or 16 (AVX-512) elements per call of
// Vec; return where the scalar tail starts. One instantiation per function and ISA.
template <void (*Vec)(const float*, float*)>
KILN_TARGET_AVX2 int64_t MapAvx2(const float* src, float* dst, int64_t s, int64_t e) {
  int64_t i = s;
  for (; i + 8 <= e; i += 8) Vec(src + i, dst + i);
  return i;
}
template <void (*Vec)(const float*, float*)>
__attribute__((target("avx512f"))) int64_t MapAvx512(const float* src, float* dst, int64_t s,
                                                     int64_t e) {
  int64_t i = s;
  for (; i + 16 <= e; i += 16) Vec(src + i, dst + i);
  return i;
}

using MapFn = int64_t (*)(const float*, float*, int64_t, int64_t);

// y = fn(x) elementwise, x -> f.out: the session ISA's vector loop, then `scalar` for the tail
// (and for the portable level).
Status AddVectorMap(Builder& b, ValueId x, const Fusion& f, MapFn avx512, MapFn avx2,
                    float (*scalar)(float)) {
  const int64_t count = NumElements(b.shape(x));
  const int in = b.Buffer(x);
  const int out = b.Buffer(f.out);
  const CpuIsa isa = b.spec().isa;
  const MapFn vec = isa >= CpuIsa::kAvx512 ? avx512 : isa >= CpuIsa::kAvx2 ? avx2 : nullptr;
  b.AddLoop([=](const Workspace& ws, pthreadpool_t pool) {
    const float* src = ws.f(in);
    float* dst = ws.f(out);
    ParallelFor(pool, count, 1 << 13, [&](int64_t s, int64_t e) {
      int64_t i = vec != nullptr ? vec(src, dst, s, e) : s;
      for (; i < e; ++i) dst[i] = scalar(src[i]);
    });
  });
  return Status::Ok();
}

Status BuildGeluErf(Builder& b, ValueId x, const Fusion& f) {
  return AddVectorMap(b, x, f, MapAvx512<GeluVec<V16s, V16si>>, MapAvx2<GeluVec<V8s, V8si>>,
                      [](float v) { return 0.5f * v * (1.0f + std::erf(v * 0.7071067811865476f)); });
}

Status BuildErf(Builder& b, const Node& n, const Fusion& f) {
  return AddVectorMap(b, n.inputs[0], f, MapAvx512<ErfVec<V16s, V16si>>,
                      MapAvx2<ErfVec<V8s, V8si>>, [](float v) { return std::erf(v); });
}

// SiLU over [s, e) in vectors of 16, four per call (the last call repeats a vector where fewer
// are left); returns where the scalar tail (< 16) starts.
__attribute__((target("avx512f"))) int64_t SiluMapAvx512(const float* src, float* dst, int64_t s,
                                                         int64_t e) {
  const int64_t vecs = (e - s) / 16;
  for (int64_t v = 0; v < vecs; v += 4) {
    const float* in[4];
    float* out[4];
    for (int j = 0; j < 4; ++j) {
      const int64_t at = s + 16 * std::min(v + j, vecs - 1);
      in[j] = src + at;
      out[j] = dst + at;
    }
    Silu4Avx512(in, out);
  }
  return s + 16 * vecs;
}

// SiLU in place on rows [0, rows) x [0, n) of y (rows ld apart): the vectors of every row, four
// per call; the row tails (n mod 16) scalar.
__attribute__((target("avx512f"))) void SiluRowsAvx512(float* y, int64_t rows, int64_t ld,
                                                       int64_t n) {
  const int64_t per_row = n / 16, vecs = rows * per_row;
  int64_t row = 0, col = 0;  // of the next vector: walked, no division per vector
  float* p[4];
  for (int64_t v = 0; v < vecs; v += 4) {
    for (int j = 0; j < 4; ++j) {
      if (v + j >= vecs) {  // the last call repeats its last vector
        p[j] = p[j - 1];
        continue;
      }
      p[j] = y + row * ld + col * 16;
      if (++col == per_row) col = 0, ++row;
    }
    Silu4Avx512(p, p);
  }
  if (per_row * 16 < n) {
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t i = per_row * 16; i < n; ++i) {
        float& v = y[r * ld + i];
        v = v / (1.0f + std::exp(-v));
      }
    }
  }
}

void SiluRows(float* y, int64_t rows, int64_t ld, int64_t n, FConvIsa isa) {
  if (isa == FConvIsa::kAvx512) {
    SiluRowsAvx512(y, rows, ld, n);
    return;
  }
  for (int64_t r = 0; r < rows; ++r) SiluInPlace(y + r * ld, n, isa);
}

// y = y < 0 ? alpha * y : y over n floats, 8 at a time; returns where the portable tail starts.
KILN_TARGET_AVX2 int64_t LeakyAvx2(float* y, int64_t n, float alpha) {
  const __m256 a = _mm256_set1_ps(alpha), zero = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(y + i);
    _mm256_storeu_ps(y + i, _mm256_blendv_ps(v, _mm256_mul_ps(v, a), _mm256_cmp_ps(v, zero, _CMP_LT_OQ)));
  }
  return i;
}

void EpilogueRows(const FConvSpec& spec, float* y, int64_t rows, int64_t ld, int64_t n,
                  FConvIsa isa) {
  if (spec.silu) {
    SiluRows(y, rows, ld, n, isa);
    return;
  }
  if (std::isnan(spec.leaky)) return;
  const float alpha = spec.leaky;
  for (int64_t r = 0; r < rows; ++r) {
    float* row = y + r * ld;
    int64_t i = isa != FConvIsa::kNone ? LeakyAvx2(row, n, alpha) : 0;
    for (; i < n; ++i) row[i] = row[i] < 0 ? alpha * row[i] : row[i];
  }
}

void SiluInPlace(float* y, int64_t n, FConvIsa isa) {
  int64_t i = isa == FConvIsa::kAvx512 ? SiluMapAvx512(y, y, 0, n)
              : isa == FConvIsa::kAvx2 ? MapAvx2<SiluVec<V8s, V8si>>(y, y, 0, n)
                                       : 0;
  for (; i < n; ++i) y[i] = y[i] / (1.0f + std::exp(-y[i]));
}

Status BuildSilu(Builder& b, const Node& n, ValueId x, const Fusion& f) {
  (void)n;
  return AddVectorMap(b, x, f, SiluMapAvx512, MapAvx2<SiluVec<V8s, V8si>>,
                      [](float v) { return v / (1.0f + std::exp(-v)); });
}

Status BuildScaleResidual(Builder& b, const Node& n, ValueId x, ValueId s, const Fusion& f) {
  (void)n;
  // x logical [N, C, H, W] (NHWC here), s [N, C, 1, 1].
  AddGateRowLoop(b, x, s, f.out, 8192, [=](const float* xr, const float* sr, float* yr, int64_t c) {
    int64_t i = CpuHasAvx2() ? ScaleResidualAvx2(xr, sr, yr, c) : 0;
    for (; i < c; ++i) yr[i] = xr[i] + xr[i] * sr[i];
  });
  return Status::Ok();
}

void AddElementwiseOps(std::vector<OpDef>& table) {
  for (const BinaryKind& k : kBinary) {
    table.push_back({k.op, BinarySupports, BinaryBuild, k.create != nullptr});
  }
  table.push_back({"Relu", UnarySupports, ClampBuild, false});
  table.push_back({"Clip", ClipSupports, ClampBuild, false});
  table.push_back({"LeakyRelu", UnarySupports, LeakyReluBuild, false});
  table.push_back({"Elu", UnarySupports, EluBuild, false});
  table.push_back({"PRelu", PReluSupports, PReluBuild, false});
  table.push_back({"HardSigmoid", UnarySupports, HardSigmoidBuild, false});
  for (const PlainUnary& u : kPlainUnary)
    table.push_back({u.op, UnarySupports, PlainUnaryBuild, false});
}

}  // namespace kiln::xnn
