// XNNPACK backend: ops that appeared in opsets 18-23, as own loops in float32 so that
// transformer and CNN blocks using them stay inside one partition:
//   Gelu-20 (approximate none: std::erf; tanh: std::tanh), Mish-18,
//   GroupNormalization-18/21 (constant scale and bias; statistics per (n, group) accumulated
//   in double, then one fused multiply-add per element with per-channel coefficients; rank-4
//   values are read in their NHWC storage, other ranks in logical order),
//   RMSNormalization-23 (constant scale of the normalized size or a scalar; sum of squares in
//   double per row),
//   RotaryEmbedding-23 (position_ids absent or constant; cos/sin caches constant or computed),
//   Attention-23 (Y, and present_key/present_value from past_key/past_value; not
//   qk_matmul_output): past and new keys/values concatenated, then per (batch, query head)
//   scores in float, softcap, then the mask (float, or a constant boolean one) and
//   is_causal, softmax, and the weighted sum of V; a query with every key masked gets zeros
//   (the reference kernel's semantics, see ref/modern_attention.cc).
// Tested against the reference kernels (tests/unit/xnnpack_modern_test.cc).
#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <memory>
#include <string>

#include "backends/xnnpack/xnn_internal.h"
#include "backends/xnnpack/xnn_ops.h"

namespace kiln::xnn {
namespace {

constexpr double kGmacs = 20;
constexpr double kGbytes = 10;

// ---- Gelu, Mish: y[i] = fn(x[i]) in float, same layout in and out ----

NodeSupport UnarySupports(const NodeQuery& q) {
  std::string e = CheckFloatNode(q, {0}, 8);
  if (!e.empty()) return NodeSupport::No(e);
  if (q.node->op_type == "Gelu") {
    const std::string a = q.node->attrs.GetString("approximate", "none");
    if (a != "none" && a != "tanh") return NodeSupport::No("Gelu approximate '" + a + "'");
  }
  return YesFloat(q, kGmacs, kGbytes);
}

Status GeluBuild(Builder& b, const Node& n, const Fusion& f) {
  if (n.attrs.GetString("approximate", "none") == "tanh") {
    return ScalarUnaryBuild(b, n, f, [](float v) {
      constexpr float kK = 0.7978845608028654f;  // sqrt(2 / pi)
      return 0.5f * v * (1.0f + std::tanh(kK * (v + 0.044715f * v * v * v)));
    });
  }
  return BuildGeluErf(b, n.inputs[0], f);
}

Status MishBuild(Builder& b, const Node& n, const Fusion& f) {
  return ScalarUnaryBuild(b, n, f, [](float v) {
    const float sp = v > 0 ? v + std::log1p(std::exp(-v)) : std::log1p(std::exp(v));
    return v * std::tanh(sp);
  });
}

// ---- GroupNormalization ----

NodeSupport GroupNormSupports(const NodeQuery& q) {
  std::string e = CheckFloatNode(q, {0}, 6);
  if (!e.empty()) return NodeSupport::No(e);
  const Shape x = q.inputs[0]->static_shape();
  const int64_t groups = q.node->attrs.GetInt("num_groups", 0);
  if (x.size() < 2 || groups <= 0 || x[1] % groups != 0) {
    return NodeSupport::No("num_groups does not divide the channels");
  }
  const int64_t want = q.node->opset >= 21 ? x[1] : groups;
  for (size_t i = 1; i < 3; ++i) {
    if (q.constants.size() <= i || q.constants[i] == nullptr) {
      return NodeSupport::No(std::string(i == 1 ? "scale" : "bias") + " is not constant");
    }
    if (q.constants[i]->size() != want) {
      return NodeSupport::No(std::string(i == 1 ? "scale" : "bias") + " has " +
                             std::to_string(q.constants[i]->size()) + " values, expected " +
                             std::to_string(want));
    }
  }
  return YesFloat(q, kGmacs, kGbytes);
}

Status GroupNormBuild(Builder& b, const Node& n, const Fusion& f) {
  const Shape x = b.shape(n.inputs[0]);
  const int64_t batch = x[0], c = x[1];
  const int64_t groups = n.attrs.GetInt("num_groups", 0);
  const int64_t spatial = c > 0 && batch > 0 ? NumElements(x) / (batch * c) : 0;
  const int64_t cpg = c / groups;
  const bool per_channel = n.opset >= 21;
  const std::vector<float> sv = ConstantFloats(*b.constant(n.inputs[1]));
  const std::vector<float> bv = ConstantFloats(*b.constant(n.inputs[2]));
  auto scale = std::make_shared<std::vector<float>>(static_cast<size_t>(c));
  auto bias = std::make_shared<std::vector<float>>(static_cast<size_t>(c));
  for (int64_t ch = 0; ch < c; ++ch) {
    const size_t k = static_cast<size_t>(per_channel ? ch : ch / cpg);
    (*scale)[static_cast<size_t>(ch)] = sv[k];
    (*bias)[static_cast<size_t>(ch)] = bv[k];
  }
  const double eps = n.attrs.GetFloat("epsilon", 1e-5f);
  // Element (n, ch, p) lives at n * c * spatial + ch * cs + p * ps.
  const bool nhwc = x.size() == 4;
  const int64_t cs = nhwc ? 1 : spatial, ps = nhwc ? c : 1;
  const int in = b.Buffer(n.inputs[0]);
  const int out = b.Buffer(f.out);
  b.AddLoop([=](const Workspace& ws, pthreadpool_t pool) {
    const float* src = ws.f(in);
    float* dst = ws.f(out);
    ParallelFor(pool, batch * groups, 1, [&](int64_t s, int64_t e) {
      for (int64_t r = s; r < e; ++r) {
        const int64_t bi = r / groups, g = r % groups;
        const float* xb = src + bi * c * spatial;
        float* yb = dst + bi * c * spatial;
        double sum = 0, sq = 0;
        for (int64_t ch = g * cpg; ch < (g + 1) * cpg; ++ch) {
          for (int64_t p = 0; p < spatial; ++p) {
            const double v = xb[ch * cs + p * ps];
            sum += v;
            sq += v * v;
          }
        }
        const double count = static_cast<double>(cpg * spatial);
        const double mean = count > 0 ? sum / count : 0.0;
        const double var = count > 0 ? std::max(0.0, sq / count - mean * mean) : 0.0;
        const double inv = 1.0 / std::sqrt(var + eps);
        for (int64_t ch = g * cpg; ch < (g + 1) * cpg; ++ch) {
          const float a = static_cast<float>(inv * (*scale)[static_cast<size_t>(ch)]);
          const float o = static_cast<float>((*bias)[static_cast<size_t>(ch)] - mean * a);
          for (int64_t p = 0; p < spatial; ++p) {
            const int64_t i = ch * cs + p * ps;
            yb[i] = xb[i] * a + o;
          }
        }
      }
    });
  });
  return Status::Ok();
}

// A normalization's per-element parameter: a scalar, or the full normalized shape x[axis:]
// right-aligned (leading 1s allowed); not one that broadcasts within the normalized axes.
bool FitsNormalizedAxes(const Tensor& t, const Shape& x, int64_t axis) {
  const int rank = static_cast<int>(x.size());
  if (t.size() == 1) return true;
  int64_t inner = 1;
  for (int i = static_cast<int>(axis); i < rank; ++i) inner *= x[static_cast<size_t>(i)];
  if (t.size() != inner || t.rank() > rank - axis) return false;
  for (int i = 0; i < t.rank(); ++i) {
    const int at = rank - t.rank() + i;
    if (t.dim(i) != x[static_cast<size_t>(at)]) return false;
  }
  return true;
}

// ---- RMSNormalization ----

NodeSupport RmsNormSupports(const NodeQuery& q) {
  std::string e = CheckFloatNode(q, {0}, 6);
  if (!e.empty()) return NodeSupport::No(e);
  const Shape x = q.inputs[0]->static_shape();
  const int rank = static_cast<int>(x.size());
  int64_t axis = q.node->attrs.GetInt("axis", -1);
  if (axis < -rank || axis >= rank) return NodeSupport::No("axis out of range");
  if (axis < 0) axis += rank;
  int64_t inner = 1;
  for (int i = static_cast<int>(axis); i < rank; ++i) inner *= x[static_cast<size_t>(i)];
  if (q.constants.size() < 2 || q.constants[1] == nullptr) {
    return NodeSupport::No("scale is not constant");
  }
  if (!FitsNormalizedAxes(*q.constants[1], x, axis)) {
    return NodeSupport::No("scale broadcasts within the normalized axes");
  }
  return YesFloat(q, kGmacs, kGbytes);
}

Status RmsNormBuild(Builder& b, const Node& n, const Fusion& f) {
  const Shape x = b.shape(n.inputs[0]);
  const int rank = static_cast<int>(x.size());
  int64_t axis = n.attrs.GetInt("axis", -1);
  if (axis < 0) axis += rank;
  int64_t inner = 1;
  for (int i = static_cast<int>(axis); i < rank; ++i) inner *= x[static_cast<size_t>(i)];
  const int64_t rows = inner > 0 ? NumElements(x) / inner : 0;
  auto scale = std::make_shared<std::vector<float>>(ConstantFloats(*b.constant(n.inputs[1])));
  if (scale->size() == 1) scale->assign(static_cast<size_t>(inner), (*scale)[0]);
  const double eps = n.attrs.GetFloat("epsilon", 1e-5f);
  const int in = b.LogicalIn(n.inputs[0]);
  const int out = b.LogicalOut(f.out);
  b.AddLoop([=](const Workspace& ws, pthreadpool_t pool) {
    const float* src = ws.f(in);
    float* dst = ws.f(out);
    const float* sc = scale->data();
    ParallelFor(pool, rows, std::max<int64_t>(1, 2048 / std::max<int64_t>(1, inner)),
                [&](int64_t s, int64_t e) {
                  for (int64_t r = s; r < e; ++r) {
                    const float* xr = src + r * inner;
                    float* yr = dst + r * inner;
                    double sq = 0;
                    for (int64_t i = 0; i < inner; ++i) sq += static_cast<double>(xr[i]) * xr[i];
                    const float inv = static_cast<float>(1.0 / std::sqrt(sq / inner + eps));
                    for (int64_t i = 0; i < inner; ++i) yr[i] = xr[i] * inv * sc[i];
                  }
                });
  });
  b.FinishLogicalOut(f.out, out);
  return Status::Ok();
}

// ---- LayerNormalization (opset 17) ----
// Over the axes from `axis` on; Scale and B constants of the normalized shape (or scalars);
// mean and variance from float vector partial sums added in double (portable: double), the
// result in float (stash_type 1 computes in float32 in ORT:
// the difference is below float rounding of the output). Mean / InvStdDev outputs: not here.

NodeSupport LayerNormSupports(const NodeQuery& q) {
  std::string e = CheckFloatNode(q, {0}, 6);
  if (!e.empty()) return NodeSupport::No(e);
  for (size_t i = 1; i < q.outputs.size(); ++i) {
    if (q.outputs[i] != nullptr) return NodeSupport::No("the Mean/InvStdDev outputs are asked for");
  }
  const Shape x = q.inputs[0]->static_shape();
  const int rank = static_cast<int>(x.size());
  int64_t axis = q.node->attrs.GetInt("axis", -1);
  if (axis < -rank || axis >= rank) return NodeSupport::No("axis out of range");
  if (axis < 0) axis += rank;
  int64_t inner = 1;
  for (int i = static_cast<int>(axis); i < rank; ++i) inner *= x[static_cast<size_t>(i)];
  for (size_t k = 1; k < 3 && k < q.inputs.size(); ++k) {
    if (q.inputs[k] == nullptr) continue;
    if (q.constants[k] == nullptr) return NodeSupport::No("Scale/B is not a constant");
    if (!FitsNormalizedAxes(*q.constants[k], x, axis)) {
      return NodeSupport::No("Scale/B broadcast within the normalized axes");
    }
  }
  if (q.inputs.size() < 2 || q.inputs[1] == nullptr) return NodeSupport::No("Scale is missing");
  return YesFloat(q, kGmacs, kGbytes);
}

typedef float V8n __attribute__((vector_size(32), aligned(4)));
typedef float V16n __attribute__((vector_size(64), aligned(4)));

// One row: mean and variance from W-lane float partial sums (summed in double), then
// y = (x - mean) * inv * gamma + beta. Returns nothing; the tail past the last vector is scalar.
template <typename V, int W>
__attribute__((always_inline)) inline void LayerNormRow(const float* xr, float* yr, int64_t n,
                                                        const float* gamma, const float* beta,
                                                        double eps) {
  V acc = V{};
  int64_t i = 0;
  for (; i + W <= n; i += W) {
    V v;
    __builtin_memcpy(&v, xr + i, sizeof(V));
    acc += v;
  }
  double sum = 0;
  for (int l = 0; l < W; ++l) sum += acc[l];
  for (; i < n; ++i) sum += xr[i];
  const auto mean = static_cast<float>(sum / static_cast<double>(n));
  V sq = V{};
  i = 0;
  for (; i + W <= n; i += W) {
    V v;
    __builtin_memcpy(&v, xr + i, sizeof(V));
    v -= mean;
    sq += v * v;
  }
  double sqd = 0;
  for (int l = 0; l < W; ++l) sqd += sq[l];
  for (; i < n; ++i) sqd += static_cast<double>(xr[i] - mean) * (xr[i] - mean);
  const auto inv = static_cast<float>(1.0 / std::sqrt(sqd / static_cast<double>(n) + eps));
  i = 0;
  for (; i + W <= n; i += W) {
    V v, g, bt;
    __builtin_memcpy(&v, xr + i, sizeof(V));
    __builtin_memcpy(&g, gamma + i, sizeof(V));
    __builtin_memcpy(&bt, beta + i, sizeof(V));
    v = (v - mean) * inv * g + bt;
    __builtin_memcpy(yr + i, &v, sizeof(V));
  }
  for (; i < n; ++i) yr[i] = (xr[i] - mean) * inv * gamma[i] + beta[i];
}

KILN_TARGET_AVX2 void LayerNormRowAvx2(const float* xr, float* yr, int64_t n, const float* gamma,
                                       const float* beta, double eps) {
  LayerNormRow<V8n, 8>(xr, yr, n, gamma, beta, eps);
}
__attribute__((target("avx512f,fma"))) void LayerNormRowAvx512(const float* xr, float* yr,
                                                               int64_t n, const float* gamma,
                                                               const float* beta, double eps) {
  LayerNormRow<V16n, 16>(xr, yr, n, gamma, beta, eps);
}

Status LayerNormOpBuild(Builder& b, const Node& n, const Fusion& f) {
  const Shape x = b.shape(n.inputs[0]);
  const int rank = static_cast<int>(x.size());
  int64_t axis = n.attrs.GetInt("axis", -1);
  if (axis < 0) axis += rank;
  int64_t inner = 1;
  for (int i = static_cast<int>(axis); i < rank; ++i) inner *= x[static_cast<size_t>(i)];
  const int64_t rows = inner > 0 ? NumElements(x) / inner : 0;
  auto params = std::make_shared<std::vector<float>>(static_cast<size_t>(2 * inner), 0.0f);
  for (int k = 1; k < 3; ++k) {
    if (n.inputs.size() <= static_cast<size_t>(k) || !n.inputs[static_cast<size_t>(k)].valid()) {
      continue;
    }
    const std::vector<float> v = ConstantFloats(*b.constant(n.inputs[static_cast<size_t>(k)]));
    for (int64_t i = 0; i < inner; ++i) {
      (*params)[static_cast<size_t>((k - 1) * inner + i)] = v.size() == 1 ? v[0] : v[static_cast<size_t>(i)];
    }
  }
  const double eps = n.attrs.GetFloat("epsilon", 1e-5f);
  const CpuIsa isa = b.spec().isa;
  const int in = b.LogicalIn(n.inputs[0]);
  const int out = b.LogicalOut(f.out);
  b.AddLoop([=](const Workspace& ws, pthreadpool_t pool) {
    const float* src = ws.f(in);
    float* dst = ws.f(out);
    const float* gamma = params->data();
    const float* beta = params->data() + inner;
    ParallelFor(pool, rows, std::max<int64_t>(1, 2048 / std::max<int64_t>(1, inner)),
                [&](int64_t s, int64_t e) {
                  for (int64_t r = s; r < e; ++r) {
                    const float* xr = src + r * inner;
                    float* yr = dst + r * inner;
                    if (isa >= CpuIsa::kAvx512) {
                      LayerNormRowAvx512(xr, yr, inner, gamma, beta, eps);
                      continue;
                    }
                    if (isa >= CpuIsa::kAvx2) {
                      LayerNormRowAvx2(xr, yr, inner, gamma, beta, eps);
                      continue;
                    }
                    double sum = 0;
                    for (int64_t i = 0; i < inner; ++i) sum += xr[i];
                    const double mean = sum / static_cast<double>(inner);
                    double sq = 0;
                    for (int64_t i = 0; i < inner; ++i) {
                      const double d = xr[i] - mean;
                      sq += d * d;
                    }
                    const auto inv =
                        static_cast<float>(1.0 / std::sqrt(sq / static_cast<double>(inner) + eps));
                    const auto m = static_cast<float>(mean);
                    for (int64_t i = 0; i < inner; ++i) yr[i] = (xr[i] - m) * inv * gamma[i] + beta[i];
                  }
                });
  });
  b.FinishLogicalOut(f.out, out);
  return Status::Ok();
}

// Element offset of (b, h, s, e) in a logical (B, H, S, E) or (B, S, H * E) tensor.
inline int64_t HeadAt(bool three_d, int64_t heads, int64_t seq, int64_t width, int64_t b, int64_t h,
                      int64_t s, int64_t e) {
  return three_d ? ((b * seq + s) * heads + h) * width + e
                 : ((b * heads + h) * seq + s) * width + e;
}

// ---- RotaryEmbedding ----

// Layout of X: 4-D (B, H, S, D) or 3-D (B, S, H * D) with num_heads; false when it does not fit.
bool RotaryDims(const Node& n, const Shape& x, int64_t* batch, int64_t* heads, int64_t* seq,
                int64_t* head, int64_t* rot) {
  if (x.size() == 4) {
    *batch = x[0], *heads = x[1], *seq = x[2], *head = x[3];
  } else if (x.size() == 3) {
    *heads = n.attrs.GetInt("num_heads", 0);
    if (*heads <= 0 || x[2] % *heads != 0) return false;
    *batch = x[0], *seq = x[1], *head = x[2] / *heads;
  } else {
    return false;
  }
  *rot = n.attrs.GetInt("rotary_embedding_dim", 0);
  if (*rot == 0) *rot = *head;
  return *rot > 0 && *rot <= *head && *rot % 2 == 0;
}

NodeSupport RotarySupports(const NodeQuery& q) {
  std::string e = CheckFloatNode(q, {0}, 4);
  if (!e.empty()) return NodeSupport::No(e);
  int64_t batch, heads, seq, head, rot;
  if (!RotaryDims(*q.node, q.inputs[0]->static_shape(), &batch, &heads, &seq, &head, &rot)) {
    return NodeSupport::No("X shape, num_heads or rotary_embedding_dim do not fit");
  }
  const bool with_ids = q.inputs.size() > 3 && q.inputs[3] != nullptr;
  if (with_ids && (q.constants.size() < 4 || q.constants[3] == nullptr)) {
    return NodeSupport::No("position_ids are computed (int64 values stay outside partitions)");
  }
  for (size_t i = 1; i < 3; ++i) {
    if (q.inputs.size() <= i || q.inputs[i] == nullptr) return NodeSupport::No("missing cache");
    const TypeInfo& t = *q.inputs[i];
    if (t.type != q.inputs[0]->type || !t.has_static_shape()) {
      return NodeSupport::No("cos/sin cache type or shape");
    }
    const Shape c = t.static_shape();
    const bool ok = with_ids ? c.size() == 2 && c[1] == rot / 2
                             : c.size() == 3 && c[0] == batch && c[1] == seq && c[2] == rot / 2;
    if (!ok) return NodeSupport::No("cos/sin cache shape does not fit X");
  }
  if (with_ids) {
    const Tensor& ids = *q.constants[3];
    const int64_t rows = q.inputs[1]->static_shape()[0];
    if (ids.size() != batch * seq) return NodeSupport::No("position_ids shape");
    for (int64_t i = 0; i < ids.size(); ++i) {
      const int64_t p = ids.GetAsInt64(i);
      if (p < 0 || p >= rows) return NodeSupport::No("a position id is outside the caches");
    }
  }
  return YesFloat(q, kGmacs, kGbytes);
}

Status RotaryBuild(Builder& b, const Node& n, const Fusion& f) {
  int64_t batch, heads, seq, head, rot;
  const Shape x = b.shape(n.inputs[0]);
  if (!RotaryDims(n, x, &batch, &heads, &seq, &head, &rot)) {
    return InvalidArgument(n.Describe() + ": X does not fit");
  }
  const bool three_d = x.size() == 3;
  const int64_t half = rot / 2;
  const bool interleaved = n.attrs.GetInt("interleaved", 0) != 0;
  // Cache row per (b, s).
  auto rows = std::make_shared<std::vector<int64_t>>(static_cast<size_t>(batch * seq));
  const bool with_ids = n.inputs.size() > 3 && n.inputs[3].valid();
  for (int64_t i = 0; i < batch * seq; ++i) {
    (*rows)[static_cast<size_t>(i)] = with_ids ? b.constant(n.inputs[3])->GetAsInt64(i) : i;
  }
  // Constant caches are copied now (constants are not in the workspace).
  auto ccos = std::make_shared<std::vector<float>>();
  auto csin = std::make_shared<std::vector<float>>();
  int cos_buf = -1, sin_buf = -1;
  if (const Tensor* c = b.constant(n.inputs[1])) {
    *ccos = ConstantFloats(*c);
  } else {
    cos_buf = b.LogicalIn(n.inputs[1]);
  }
  if (const Tensor* c = b.constant(n.inputs[2])) {
    *csin = ConstantFloats(*c);
  } else {
    sin_buf = b.LogicalIn(n.inputs[2]);
  }
  const int in = b.LogicalIn(n.inputs[0]);
  const int out = b.LogicalOut(f.out);
  for (int buf : {in, out, cos_buf, sin_buf}) {
    if (buf >= 0) b.Use(buf);
  }
  b.AddLoop([=](const Workspace& ws, pthreadpool_t pool) {
    const float* xd = ws.f(in);
    float* yd = ws.f(out);
    const float* cd = cos_buf >= 0 ? ws.f(cos_buf) : ccos->data();
    const float* sd = sin_buf >= 0 ? ws.f(sin_buf) : csin->data();
    ParallelFor(pool, batch * seq, 1, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t bi = r / seq, si = r % seq;
        const float* c = cd + (*rows)[static_cast<size_t>(r)] * half;
        const float* sn = sd + (*rows)[static_cast<size_t>(r)] * half;
        for (int64_t h = 0; h < heads; ++h) {
          const int64_t base = HeadAt(three_d, heads, seq, head, bi, h, si, 0);
          const float* xr = xd + base;
          float* yr = yd + base;
          for (int64_t i = 0; i < half; ++i) {
            const int64_t i1 = interleaved ? 2 * i : i;
            const int64_t i2 = interleaved ? 2 * i + 1 : i + half;
            const float a = xr[i1], bb = xr[i2];
            yr[i1] = a * c[i] - bb * sn[i];
            yr[i2] = bb * c[i] + a * sn[i];
          }
          for (int64_t i = rot; i < head; ++i) yr[i] = xr[i];
        }
      }
    });
  });
  b.FinishLogicalOut(f.out, out);
  return Status::Ok();
}

// ---- Attention (no KV cache) ----

struct AttnDims {
  int64_t batch = 0, q_heads = 0, kv_heads = 0, q_seq = 0, kv_seq = 0, head = 0, v_head = 0;
  bool three_d = false;
};

// Dims of Q, K, V (static shapes), or an empty optional when they do not fit together.
bool AttentionDims(const Node& n, const Shape& q, const Shape& k, const Shape& v, AttnDims* d) {
  if (q.size() != k.size() || q.size() != v.size() || (q.size() != 3 && q.size() != 4)) {
    return false;
  }
  d->three_d = q.size() == 3;
  if (d->three_d) {
    const int64_t qh = n.attrs.GetInt("q_num_heads", 0), kh = n.attrs.GetInt("kv_num_heads", 0);
    if (qh <= 0 || kh <= 0 || q[2] % qh != 0 || k[2] % kh != 0 || v[2] % kh != 0) return false;
    *d = {q[0], qh, kh, q[1], k[1], q[2] / qh, v[2] / kh, true};
  } else {
    *d = {q[0], q[1], k[1], q[2], k[2], q[3], v[3], false};
    if (v[1] != k[1] || v[2] != k[2]) return false;
    if (k[3] != q[3]) return false;
  }
  if (d->three_d && k[2] / d->kv_heads != d->head) return false;
  return k[0] == q[0] && v[0] == q[0] && d->kv_heads > 0 && d->q_heads % d->kv_heads == 0;
}

// Strides of a mask of shape m broadcast (right-aligned) to (B, Hq, Sq, T); false when it
// does not broadcast.
bool MaskStrides(const Shape& m, const int64_t full[4], std::array<int64_t, 4>* st) {
  if (m.empty() || m.size() > 4) return false;
  *st = {0, 0, 0, 0};
  int64_t stride = 1;
  for (int i = static_cast<int>(m.size()) - 1, d = 3; i >= 0; --i, --d) {
    if (m[static_cast<size_t>(i)] != 1 && m[static_cast<size_t>(i)] != full[d]) return false;
    (*st)[static_cast<size_t>(d)] = m[static_cast<size_t>(i)] == 1 ? 0 : stride;
    stride *= m[static_cast<size_t>(i)];
  }
  return true;
}

// Past sequence length of past_key/past_value (static, rank 4, matching K/V heads and sizes),
// 0 when absent, -1 when they do not fit.
int64_t PastLength(const TypeInfo* pk, const TypeInfo* pv, const AttnDims& d) {
  if (pk == nullptr && pv == nullptr) return 0;
  if (pk == nullptr || pv == nullptr || !pk->has_static_shape() || !pv->has_static_shape()) {
    return -1;
  }
  const Shape k = pk->static_shape(), v = pv->static_shape();
  if (k.size() != 4 || v.size() != 4 || k[0] != d.batch || v[0] != d.batch || k[1] != d.kv_heads ||
      v[1] != d.kv_heads || k[2] != v[2] || k[3] != d.head || v[3] != d.v_head) {
    return -1;
  }
  return k[2];
}

const TypeInfo* InputOrNull(const NodeQuery& q, size_t i) {
  return i < q.inputs.size() ? q.inputs[i] : nullptr;
}

bool OutputUsed(const Node& n, size_t i) { return i < n.outputs.size() && n.outputs[i].valid(); }

NodeSupport AttentionSupports(const NodeQuery& q) {
  // Output 0 as any float op; present_key/present_value are checked below.
  NodeQuery first = q;
  first.outputs.resize(std::min<size_t>(1, q.outputs.size()));
  std::string e = CheckFloatNode(first, {0, 1, 2}, 4);
  if (!e.empty()) return NodeSupport::No(e);
  if (OutputUsed(*q.node, 3)) return NodeSupport::No("qk_matmul_output is used");
  for (size_t i = 0; i < 6; ++i) {
    // Constants are not in the workspace (the mask's are copied in at build).
    if (i != 3 && i < q.constants.size() && q.constants[i] != nullptr) {
      return NodeSupport::No("Q, K, V or the past is a constant");
    }
  }
  AttnDims d;
  if (!AttentionDims(*q.node, q.inputs[0]->static_shape(), q.inputs[1]->static_shape(),
                     q.inputs[2]->static_shape(), &d)) {
    return NodeSupport::No("Q, K, V shapes or head counts do not fit together");
  }
  const int64_t past = PastLength(InputOrNull(q, 4), InputOrNull(q, 5), d);
  if (past < 0) return NodeSupport::No("past_key/past_value do not fit K and V");
  for (size_t i = 4; i < 6; ++i) {
    const TypeInfo* t = InputOrNull(q, i);
    if (t != nullptr && t->type != q.inputs[0]->type) return NodeSupport::No("past type");
  }
  for (size_t i = 1; i < 3; ++i) {
    if (!OutputUsed(*q.node, i)) continue;
    const TypeInfo* t = i < q.outputs.size() ? q.outputs[i] : nullptr;
    if (t == nullptr || t->type != q.inputs[0]->type || !t->has_static_shape()) {
      return NodeSupport::No("present_key/present_value type or shape");
    }
  }
  if (q.inputs.size() > 3 && q.inputs[3] != nullptr) {
    const TypeInfo& m = *q.inputs[3];
    const bool constant = q.constants.size() > 3 && q.constants[3] != nullptr;
    if (m.type == ElementType::kBool && !constant) return NodeSupport::No("a computed bool mask");
    if (m.type != ElementType::kBool && m.type != q.inputs[0]->type) {
      return NodeSupport::No("attn_mask type differs from Q");
    }
    if (!m.has_static_shape()) return NodeSupport::No("attn_mask has no static shape");
    const int64_t full[4] = {d.batch, d.q_heads, d.q_seq, past + d.kv_seq};
    std::array<int64_t, 4> st;
    if (!MaskStrides(m.static_shape(), full, &st)) {
      return NodeSupport::No("attn_mask does not broadcast to the scores");
    }
  }
  return YesFloat(q, kGmacs, kGbytes);
}

Status AttentionBuild(Builder& b, const Node& n, const Fusion& f) {
  AttnDims d;
  if (!AttentionDims(n, b.shape(n.inputs[0]), b.shape(n.inputs[1]), b.shape(n.inputs[2]), &d)) {
    return InvalidArgument(n.Describe() + ": Q, K, V do not fit together");
  }
  const bool has_past = n.inputs.size() > 5 && n.inputs[4].valid() && n.inputs[5].valid();
  const int64_t past = has_past ? b.shape(n.inputs[4])[2] : 0;
  const int64_t total = past + d.kv_seq;
  const int64_t full[4] = {d.batch, d.q_heads, d.q_seq, total};
  std::array<int64_t, 4> mst = {0, 0, 0, 0};
  const bool has_mask = n.inputs.size() > 3 && n.inputs[3].valid();
  // A constant mask becomes additive floats plus a masked flag per element; a computed float
  // mask is read from its buffer.
  auto cmask = std::make_shared<std::vector<float>>();
  auto cflag = std::make_shared<std::vector<uint8_t>>();
  int mask_buf = -1;
  constexpr float kMasked = std::numeric_limits<float>::lowest();
  if (has_mask) {
    if (!MaskStrides(b.shape(n.inputs[3]), full, &mst)) {
      return InvalidArgument(n.Describe() + ": attn_mask does not broadcast");
    }
    if (const Tensor* c = b.constant(n.inputs[3]); c != nullptr) {
      cmask->resize(static_cast<size_t>(c->size()));
      cflag->assign(static_cast<size_t>(c->size()), 0);
      for (int64_t i = 0; i < c->size(); ++i) {
        const double v = c->GetAsDouble(i);
        if (c->type() == ElementType::kBool) {
          (*cflag)[static_cast<size_t>(i)] = v == 0;
          (*cmask)[static_cast<size_t>(i)] = 0;
        } else {
          (*cmask)[static_cast<size_t>(i)] = static_cast<float>(v);
        }
      }
    } else {
      mask_buf = b.LogicalIn(n.inputs[3]);
    }
  }
  const bool causal = n.attrs.GetInt("is_causal", 0) != 0;
  const float scale = n.attrs.Has("scale")
                          ? n.attrs.GetFloat("scale", 1.0f)
                          : static_cast<float>(1.0 / std::sqrt(static_cast<double>(d.head)));
  const float softcap = n.attrs.GetFloat("softcap", 0.0f);
  const int qb = b.LogicalIn(n.inputs[0]);
  const int kb = b.LogicalIn(n.inputs[1]);
  const int vb = b.LogicalIn(n.inputs[2]);
  const int pkb = has_past ? b.LogicalIn(n.inputs[4]) : -1;
  const int pvb = has_past ? b.LogicalIn(n.inputs[5]) : -1;
  // K and V with the past prepended, (B, Hkv, T, D / Dv): present_key/present_value when
  // used, else scratch.
  const bool pk_out = OutputUsed(n, 1), pv_out = OutputUsed(n, 2);
  const int kall =
      pk_out ? b.LogicalOut(n.outputs[1]) : b.Scratch(d.batch * d.kv_heads * total * d.head);
  const int vall =
      pv_out ? b.LogicalOut(n.outputs[2]) : b.Scratch(d.batch * d.kv_heads * total * d.v_head);
  const int out = b.LogicalOut(f.out);
  // Keep every buffer live up to this step (LogicalIn scratches are otherwise free after it).
  for (int buf : {qb, kb, vb, pkb, pvb, kall, vall, out, mask_buf}) {
    if (buf >= 0) b.Use(buf);
  }
  const int64_t group = d.q_heads / d.kv_heads;
  b.AddLoop([=](const Workspace& ws, pthreadpool_t pool) {
    const float* qd = ws.f(qb);
    float* kd = ws.f(kall);
    float* vd = ws.f(vall);
    const float* md = mask_buf >= 0 ? ws.f(mask_buf) : cmask->data();
    const uint8_t* flags = cflag->empty() ? nullptr : cflag->data();
    float* yd = ws.f(out);
    // Concatenate past and new keys/values per (batch, kv head).
    ParallelFor(pool, d.batch * d.kv_heads, 1, [&](int64_t r0, int64_t r1) {
      const float* kn = ws.f(kb);
      const float* vn = ws.f(vb);
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t bi = r / d.kv_heads, hk = r % d.kv_heads;
        for (int64_t t = 0; t < total; ++t) {
          float* kr = kd + (r * total + t) * d.head;
          float* vr = vd + (r * total + t) * d.v_head;
          const float* ks =
              t < past ? ws.f(pkb) + (r * past + t) * d.head
                       : kn + HeadAt(d.three_d, d.kv_heads, d.kv_seq, d.head, bi, hk, t - past, 0);
          const float* vs = t < past ? ws.f(pvb) + (r * past + t) * d.v_head
                                     : vn + HeadAt(d.three_d, d.kv_heads, d.kv_seq, d.v_head, bi,
                                                   hk, t - past, 0);
          std::copy(ks, ks + d.head, kr);
          std::copy(vs, vs + d.v_head, vr);
        }
      }
    });
    ParallelFor(pool, d.batch * d.q_heads, 1, [&](int64_t r0, int64_t r1) {
      std::vector<float> row(static_cast<size_t>(total));
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t bi = r / d.q_heads, h = r % d.q_heads, hk = h / group;
        const float* kh = kd + (bi * d.kv_heads + hk) * total * d.head;
        const float* vh = vd + (bi * d.kv_heads + hk) * total * d.v_head;
        for (int64_t i = 0; i < d.q_seq; ++i) {
          const float* qrow = qd + HeadAt(d.three_d, d.q_heads, d.q_seq, d.head, bi, h, i, 0);
          int64_t unmasked = 0;
          float mx = -INFINITY;
          for (int64_t j = 0; j < total; ++j) {
            const float* krow = kh + j * d.head;
            float s = 0;
            for (int64_t e = 0; e < d.head; ++e) s += qrow[e] * krow[e];
            s *= scale;
            if (softcap > 0) s = softcap * std::tanh(s / softcap);
            bool masked = causal && j > i + (total - d.q_seq);
            if (has_mask) {
              const int64_t mi = bi * mst[0] + h * mst[1] + i * mst[2] + j * mst[3];
              masked = masked || (flags != nullptr && flags[mi] != 0);
              s += md[mi];
            }
            if (masked) {
              s = kMasked;
            } else {
              ++unmasked;
            }
            row[static_cast<size_t>(j)] = s;
            mx = std::max(mx, s);
          }
          float sum = 0;
          for (int64_t j = 0; j < total; ++j) {
            float& p = row[static_cast<size_t>(j)];
            p = unmasked == 0 || mx == -INFINITY ? 0.0f : std::exp(p - mx);
            sum += p;
          }
          const float inv = sum > 0 ? 1.0f / sum : 0.0f;
          float* yrow = yd + HeadAt(d.three_d, d.q_heads, d.q_seq, d.v_head, bi, h, i, 0);
          for (int64_t e = 0; e < d.v_head; ++e) yrow[e] = 0;
          for (int64_t j = 0; j < total; ++j) {
            const float p = row[static_cast<size_t>(j)] * inv;
            if (p == 0) continue;
            const float* vrow = vh + j * d.v_head;
            for (int64_t e = 0; e < d.v_head; ++e) yrow[e] += p * vrow[e];
          }
        }
      }
    });
  });
  b.FinishLogicalOut(f.out, out);
  if (pk_out) b.FinishLogicalOut(n.outputs[1], kall);
  if (pv_out) b.FinishLogicalOut(n.outputs[2], vall);
  return Status::Ok();
}

}  // namespace

void AddModernOps(std::vector<OpDef>& table) {
  table.push_back({"Gelu", UnarySupports, GeluBuild, false});
  table.push_back({"Mish", UnarySupports, MishBuild, false});
  table.push_back({"GroupNormalization", GroupNormSupports, GroupNormBuild, false});
  table.push_back({"RMSNormalization", RmsNormSupports, RmsNormBuild, false});
  table.push_back({"LayerNormalization", LayerNormSupports, LayerNormOpBuild, false});
  table.push_back({"RotaryEmbedding", RotarySupports, RotaryBuild, false});
  table.push_back({"Attention", AttentionSupports, AttentionBuild, false});
}

}  // namespace kiln::xnn
