// XNNPACK backend: ops that appeared in opsets 18-23, as own loops in float32 so that
// transformer and CNN blocks using them stay inside one partition:
//   Gelu-20 (approximate none: std::erf; tanh: std::tanh), Mish-18,
//   GroupNormalization-18/21 (constant scale and bias; statistics per (n, group) accumulated
//   in double, then one fused multiply-add per element with per-channel coefficients; rank-4
//   values are read in their NHWC storage, other ranks in logical order),
//   RMSNormalization-23 (constant scale of the normalized size or a scalar; sum of squares in
//   double per row).
// Tested against the reference kernels (tests/unit/xnnpack_modern_test.cc).
#include <algorithm>
#include <cmath>
#include <memory>
#include <string>

#include "backends/xnnpack/xnn_internal.h"
#include "backends/xnnpack/xnn_ops.h"

namespace kiln::xnn {
namespace {

constexpr double kGmacs = 20;
constexpr double kGbytes = 10;

int64_t Count(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

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

Status UnaryBuild(Builder& b, const Node& n, const Fusion& f, float (*fn)(float)) {
  const int64_t count = Count(b.shape(n.inputs[0]));
  const int in = b.Buffer(n.inputs[0]);
  const int out = b.Buffer(f.out);
  b.AddLoop([=](const Workspace& ws, pthreadpool_t pool) {
    const float* x = ws.f(in);
    float* y = ws.f(out);
    ParallelFor(pool, count, 1 << 12, [&](int64_t s, int64_t e) {
      for (int64_t i = s; i < e; ++i) y[i] = fn(x[i]);
    });
  });
  return Status::Ok();
}

Status GeluBuild(Builder& b, const Node& n, const Fusion& f) {
  if (n.attrs.GetString("approximate", "none") == "tanh") {
    return UnaryBuild(b, n, f, [](float v) {
      constexpr float kK = 0.7978845608028654f;  // sqrt(2 / pi)
      return 0.5f * v * (1.0f + std::tanh(kK * (v + 0.044715f * v * v * v)));
    });
  }
  return UnaryBuild(b, n, f,
                    [](float v) { return 0.5f * v * (1.0f + std::erf(v * 0.7071067811865476f)); });
}

Status MishBuild(Builder& b, const Node& n, const Fusion& f) {
  return UnaryBuild(b, n, f, [](float v) {
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
  const int64_t spatial = c > 0 && batch > 0 ? Count(x) / (batch * c) : 0;
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
  const Tensor& s = *q.constants[1];
  // Full normalized shape (right-aligned, leading 1s allowed) or a scalar.
  bool ok = s.size() == 1;
  if (!ok && s.size() == inner && s.rank() <= rank - axis) {
    ok = true;
    for (int i = 0; i < s.rank(); ++i) {
      ok = ok && s.dim(i) == x[static_cast<size_t>(rank - s.rank() + i)];
    }
  }
  if (!ok) return NodeSupport::No("scale broadcasts within the normalized axes");
  return YesFloat(q, kGmacs, kGbytes);
}

Status RmsNormBuild(Builder& b, const Node& n, const Fusion& f) {
  const Shape x = b.shape(n.inputs[0]);
  const int rank = static_cast<int>(x.size());
  int64_t axis = n.attrs.GetInt("axis", -1);
  if (axis < 0) axis += rank;
  int64_t inner = 1;
  for (int i = static_cast<int>(axis); i < rank; ++i) inner *= x[static_cast<size_t>(i)];
  const int64_t rows = inner > 0 ? Count(x) / inner : 0;
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

}  // namespace

void AddModernOps(std::vector<OpDef>& table) {
  table.push_back({"Gelu", UnarySupports, GeluBuild, false});
  table.push_back({"Mish", UnarySupports, MishBuild, false});
  table.push_back({"GroupNormalization", GroupNormSupports, GroupNormBuild, false});
  table.push_back({"RMSNormalization", RmsNormSupports, RmsNormBuild, false});
}

}  // namespace kiln::xnn
