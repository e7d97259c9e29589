// The QDQ rewrite: which nodes and values to quantize (PlanQdq) and the rewritten graph
// (EmitQdq). The rules are in quantize.h.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <map>
#include <unordered_set>

#include "passes/graph_edit.h"
#include "quant/internal.h"

namespace kiln::quant_internal {
namespace {

using passes::ConstantValue;
using passes::IsDefaultDomain;

bool IsF32(const Graph& g, ValueId v) {
  return v.valid() && g.value(v).info.type == ElementType::kF32;
}

bool IsComputeOp(const std::string& op) {
  static const std::set<std::string> kOps = {"Conv", "ConvTranspose", "MatMul", "Gemm",
                                             "Add", "Mul", "Concat", "AveragePool",
                                             "GlobalAveragePool"};
  return kOps.count(op) > 0;
}

bool IsPassThroughOp(const std::string& op) { return IsPassThroughQuantOp(op); }

// Elementwise ops that, with only scalar constants beside one computed value, map each element
// on its own: a chain of them is a function of one 8-bit value (a 256-entry table once fused).
bool IsUnaryElementwise(const std::string& op) {
  static const std::set<std::string> kOps = {
      "Add",  "Sub",     "Mul",         "Div",       "Max",      "Min",  "Pow",
      "Relu", "Clip",    "LeakyRelu",   "Sigmoid",   "Tanh",     "HardSigmoid", "HardSwish",
      "Elu",  "Selu",    "Softplus",    "Softsign",  "Exp",      "Neg",  "Abs",
      "Sqrt", "Erf",     "Reciprocal",  "Mish",      "Gelu"};
  return kOps.count(op) > 0;
}

float RoundHalfEven(float x) { return std::nearbyint(x); }  // default rounding mode: to even

int ChannelOf(int64_t i, const Shape& shape, int axis) {
  int64_t inner = 1;
  for (int d = axis + 1; d < static_cast<int>(shape.size()); ++d) inner *= shape[d];
  return static_cast<int>((i / inner) % shape[axis]);
}

Tensor Scalar(ElementType type, double v) {
  Tensor t = Tensor::Allocate(type, {}).value();
  switch (type) {
    case ElementType::kF32: t.data<float>()[0] = static_cast<float>(v); break;
    case ElementType::kU8: t.data<uint8_t>()[0] = static_cast<uint8_t>(v); break;
    case ElementType::kI8: t.data<int8_t>()[0] = static_cast<int8_t>(v); break;
    default: t.data<int32_t>()[0] = static_cast<int32_t>(v); break;
  }
  return t;
}

}  // namespace

bool IsPassThroughQuantOp(const std::string& op) {
  static const std::set<std::string> kOps = {"MaxPool", "Resize", "Reshape", "Transpose",
                                             "Squeeze", "Unsqueeze", "Flatten"};
  return kOps.count(op) > 0;
}

QParams ParamsForRange(double lo, double hi, ActivationType type) {
  QParams p;
  lo = std::min(lo, 0.0);
  hi = std::max(hi, 0.0);
  if (type == ActivationType::kS8) {
    p.type = ElementType::kI8;
    const double a = std::max(-lo, hi);
    p.scale = static_cast<float>(a / 127.0);
    p.zero_point = 0;
  } else {
    p.type = ElementType::kU8;
    p.scale = static_cast<float>((hi - lo) / 255.0);
    if (p.scale > 0 && std::isfinite(p.scale)) {
      const double z = std::nearbyint(-lo / static_cast<double>(p.scale));
      p.zero_point = static_cast<int32_t>(std::clamp(z, 0.0, 255.0));
    }
  }
  if (!(p.scale > 0) || !std::isfinite(p.scale)) {
    p.scale = 1;
    p.zero_point = 0;
  }
  return p;
}

QuantizedWeight QuantizeWeight(const Tensor& w, int axis, WeightRounding rounding, int bits) {
  const int qmax = bits == 7 ? 63 : 127;
  QuantizedWeight out;
  const int channels = axis < 0 ? 1 : static_cast<int>(w.dim(axis));
  std::vector<double> amax(channels, 0.0);
  for (int64_t i = 0; i < w.size(); ++i) {
    const int c = axis < 0 ? 0 : ChannelOf(i, w.shape(), axis);
    const double x = w.GetAsDouble(i);
    if (std::isfinite(x)) amax[c] = std::max(amax[c], std::fabs(x));
  }
  out.scales.resize(channels);
  for (int c = 0; c < channels; ++c) {
    const float s = static_cast<float>(amax[c] / qmax);
    out.scales[c] = s > 0 && std::isfinite(s) ? s : 1.0f;
  }
  out.q = Tensor::Allocate(ElementType::kI8, w.shape()).value();
  int8_t* q = out.q.data<int8_t>();
  std::vector<std::vector<int64_t>> members(rounding == WeightRounding::kSumPreserving ? channels
                                                                                         : 0);
  for (int64_t i = 0; i < w.size(); ++i) {
    const int c = axis < 0 ? 0 : ChannelOf(i, w.shape(), axis);
    const float r = RoundHalfEven(static_cast<float>(w.GetAsDouble(i)) / out.scales[c]);
    q[i] = static_cast<int8_t>(std::clamp(r, static_cast<float>(-qmax), static_cast<float>(qmax)));
    if (!members.empty()) members[static_cast<size_t>(c)].push_back(i);
  }
  // Sum-preserving rounding: per channel, the integers sum to the rounded sum of the real
  // weights (a filter's response to a constant input; nearest rounding can miss it by several
  // steps, which re-parameterised high-pass filters amplify). The weights rounded furthest the
  // other way move one step each, so no weight moves more than one step from its real value.
  for (int c = 0; c < static_cast<int>(members.size()); ++c) {
    const std::vector<int64_t>& idx = members[static_cast<size_t>(c)];
    double real = 0;
    int64_t sum = 0;
    std::vector<std::pair<double, int64_t>> cut;  // (real - integer, index)
    for (int64_t i : idx) {
      const double x = w.GetAsDouble(i) / out.scales[c];
      if (!std::isfinite(x)) continue;
      real += x;
      sum += q[i];
      cut.emplace_back(x - q[i], i);
    }
    int64_t diff = static_cast<int64_t>(std::nearbyint(real)) - sum;
    if (diff == 0) continue;
    const int dir = diff > 0 ? 1 : -1;
    // Largest cut in the direction of the move first (ties by index: deterministic).
    std::sort(cut.begin(), cut.end(), [dir](const auto& a, const auto& b) {
      return a.first * dir != b.first * dir ? a.first * dir > b.first * dir : a.second < b.second;
    });
    for (const auto& [r, i] : cut) {
      if (diff == 0 || r * dir <= 0) break;
      if (q[i] + dir > qmax || q[i] + dir < -qmax) continue;
      q[i] = static_cast<int8_t>(q[i] + dir);
      diff -= dir;
    }
  }
  return out;
}

Tensor QuantizeValues(const Tensor& x, const QParams& p) {
  Tensor q = Tensor::Allocate(p.type, x.shape()).value();
  const float qmin = p.type == ElementType::kI8 ? -128.0f : 0.0f;
  const float qmax = p.type == ElementType::kI8 ? 127.0f : 255.0f;
  for (int64_t i = 0; i < x.size(); ++i) {
    const float v = std::clamp(RoundHalfEven(static_cast<float>(x.GetAsDouble(i)) / p.scale) +
                                   static_cast<float>(p.zero_point), qmin, qmax);
    if (p.type == ElementType::kI8) {
      q.data<int8_t>()[i] = static_cast<int8_t>(v);
    } else {
      q.data<uint8_t>()[i] = static_cast<uint8_t>(v);
    }
  }
  return q;
}

Tensor FakeQuantize(const Tensor& x, const QParams& p) {
  const Tensor q = QuantizeValues(x, p);
  Tensor y = Tensor::Allocate(ElementType::kF32, x.shape()).value();
  for (int64_t i = 0; i < x.size(); ++i) {
    y.data<float>()[i] = (static_cast<float>(q.GetAsInt64(i)) - static_cast<float>(p.zero_point)) *
                         p.scale;
  }
  return y;
}

QParams ConstantParams(const Tensor& c, ActivationType type) {
  double lo = 0, hi = 0;
  for (int64_t i = 0; i < c.size(); ++i) {
    const double x = c.GetAsDouble(i);
    if (std::isfinite(x)) {
      lo = std::min(lo, x);
      hi = std::max(hi, x);
    }
  }
  return ParamsForRange(lo, hi, type);
}

Tensor DequantizeWeight(const QuantizedWeight& w, int axis) {
  Tensor y = Tensor::Allocate(ElementType::kF32, w.q.shape()).value();
  for (int64_t i = 0; i < w.q.size(); ++i) {
    const int c = axis < 0 ? 0 : ChannelOf(i, w.q.shape(), axis);
    y.data<float>()[i] = static_cast<float>(w.q.data<int8_t>()[i]) * w.scales[c];
  }
  return y;
}

namespace {

// The bias correction of a Conv or Gemm (quantize.h): per output o, the sum over the input
// channels c it reads and the kernel taps k of (W - dq(q(W)))[o, c, k] * E[x_c]. Empty (with
// `why`) when the input has no channel means or the shapes do not fit.
std::vector<double> BiasDelta(const Graph& g, const Node& n, const Tensor& w, int axis,
                              WeightRounding rounding, int bits, const CalibrationStats& stats,
                              std::string* why) {
  const TensorStats* s = stats.Find(g.value(n.inputs[0]).name);
  if (s == nullptr || !s->HasChannelMeans()) {
    *why = "the statistics have no channel means for '" + g.value(n.inputs[0]).name +
           "'; record them again";
    return {};
  }
  const int64_t in_channels = static_cast<int64_t>(s->channel_sum.size());
  const Tensor dq = DequantizeWeight(QuantizeWeight(w, axis, rounding, bits), axis);
  auto err = [&](int64_t i) {
    return w.GetAsDouble(i) - static_cast<double>(dq.data<float>()[i]);
  };
  if (n.op_type == "Conv") {
    if (w.rank() < 3) return {};
    const int64_t m = w.dim(0), cg = w.dim(1);
    const int64_t group = n.attrs.GetInt("group", 1);
    if (group < 1 || m % group != 0 || cg * group != in_channels) {
      *why = "weight shape does not match the " + std::to_string(in_channels) + " input channels";
      return {};
    }
    int64_t taps = 1;
    for (int d = 2; d < w.rank(); ++d) taps *= w.dim(d);
    std::vector<double> delta(static_cast<size_t>(m), 0.0);
    const int64_t per_group = m / group;
    for (int64_t o = 0; o < m; ++o) {
      const int64_t first_c = (o / per_group) * cg;
      double sum = 0;
      for (int64_t c = 0; c < cg; ++c) {
        double tap_err = 0;
        for (int64_t k = 0; k < taps; ++k) tap_err += err((o * cg + c) * taps + k);
        sum += tap_err * s->ChannelMean(static_cast<size_t>(first_c + c));
      }
      delta[o] = sum;
    }
    return delta;
  }
  // Gemm: Y = A B (+ C), A [N, K] (transA 0), B [K, M] or [M, K] (transB).
  if (w.rank() != 2 || n.attrs.GetInt("transA", 0) != 0) return {};
  const bool trans_b = n.attrs.GetInt("transB", 0) != 0;
  const int64_t k_dim = trans_b ? w.dim(1) : w.dim(0), m = trans_b ? w.dim(0) : w.dim(1);
  if (k_dim != in_channels) return {};
  std::vector<double> delta(static_cast<size_t>(m), 0.0);
  for (int64_t o = 0; o < m; ++o) {
    for (int64_t k = 0; k < k_dim; ++k) {
      const int64_t i = trans_b ? o * k_dim + k : k * m + o;
      delta[o] += err(i) * s->ChannelMean(static_cast<size_t>(k));
    }
  }
  return delta;
}

}  // namespace

Result<QdqPlan> PlanQdq(const Graph& g, const CalibrationStats& stats,
                        const QuantizeOptions& o, bool per_channel,
                        const std::set<std::string>& keep) {
  QdqPlan plan;
  plan.nodes.resize(g.num_nodes());
  plan.acts.resize(g.num_values());
  KILN_ASSIGN_OR_RETURN(std::vector<NodeId> order, g.TopologicalOrder());
  // Readers per value (input slots of main-graph nodes; a nested-body capture counts as one).
  std::vector<std::vector<NodeId>> readers(g.num_values());
  for (NodeId id : order) {
    const Node& n = g.node(id);
    for (ValueId in : n.inputs) {
      if (in.valid()) readers[in.v].push_back(id);
    }
    for (ValueId in : g.ImplicitInputs(n)) readers[in.v].push_back(id);
  }
  std::vector<bool> want(g.num_values(), false);
  std::vector<ValueId> shared_with(g.num_values());  // pass-through output -> its input
  auto is_const = [&](ValueId v) { return ConstantValue(g, v).has_value(); };
  auto has_stats = [&](ValueId v) {
    const TensorStats* s = stats.Find(g.value(v).name);
    return s != nullptr && s->count > 0;
  };
  auto usable_node = [&](const Node& n) {
    return IsDefaultDomain(n) && !keep.count(n.name) && !n.outputs.empty() &&
           IsF32(g, n.outputs[0]);
  };

  // Elementwise regions: a node of IsUnaryElementwise whose computed inputs all descend, through
  // such nodes, from one value (its root) and whose constants are scalars computes a function
  // of the root alone. A value of a region read only by nodes of the same region (and not a
  // graph output) is internal: it is not quantized, so the region from its quantized root to
  // each quantized exit is one table (ai.kiln QLut after fuse-qdq), one rounding instead of one
  // per op (PP-OCR's affine + HardSwish + affine chains: 8 roundings -> 1).
  std::vector<ValueId> root(g.num_values());
  std::vector<bool> in_region(g.num_nodes(), false), internal(g.num_values(), false);
  for (NodeId id : order) {
    const Node& n = g.node(id);
    if (!IsUnaryElementwise(n.op_type) || !usable_node(n) || n.outputs.size() != 1) continue;
    ValueId r;
    bool ok = true;
    for (ValueId in : n.inputs) {
      if (!in.valid()) continue;
      if (auto c = ConstantValue(g, in)) {
        const auto& out_shape = g.value(n.outputs[0]).info.shape;
        ok = ok && c->size() == 1 &&
             (c->rank() <= 1 || (out_shape && c->rank() <= static_cast<int>(out_shape->size())));
        continue;
      }
      const ValueId ri = root[in.v].valid() ? root[in.v] : in;
      ok = ok && IsF32(g, in) && (!r.valid() || r == ri);
      r = ri;
    }
    if (!ok || !r.valid()) continue;
    in_region[id.v] = true;
    root[n.outputs[0].v] = r;
  }
  for (NodeId id : order) {
    if (!in_region[id.v]) continue;
    const ValueId out = g.node(id).outputs[0];
    bool only_region = !g.value(out).is_output && !readers[out.v].empty();
    for (NodeId r : readers[out.v]) {
      only_region = only_region && in_region[r.v] && root[g.node(r).outputs[0].v] == root[out.v];
    }
    internal[out.v] = only_region;
  }
  // A lone Relu/Clip right after its root (the root's only reader) keeps the usual fusion into
  // its producer's range (below).
  for (NodeId id : order) {
    const Node& n = g.node(id);
    if (!in_region[id.v] || (n.op_type != "Relu" && n.op_type != "Clip")) continue;
    const ValueId r = root[n.outputs[0].v];
    if (n.inputs[0] == r && readers[r.v].size() == 1 && !internal[n.outputs[0].v])
      in_region[id.v] = false;
  }

  // Compute ops.
  for (NodeId id : order) {
    const Node& n = g.node(id);
    // Float inside a region; its root is quantized when a quantized node produces it (a kept
    // producer leaves the region float, reading the float root).
    if (in_region[id.v]) continue;
    if (!IsComputeOp(n.op_type) || !usable_node(n)) continue;
    NodePlan np;
    np.roles.assign(n.inputs.size(), SlotRole::kFloat);
    bool ok = true;
    std::string missing;
    auto activation = [&](size_t s) {
      const ValueId v = n.inputs[s];
      if (!IsF32(g, v)) {
        ok = false;
      } else if (is_const(v)) {
        np.roles[s] = SlotRole::kConstant;
      } else if (!has_stats(v)) {
        ok = false;
        missing = g.value(v).name;
      } else {
        np.roles[s] = SlotRole::kActivation;
      }
    };
    const std::string& op = n.op_type;
    if (op == "Conv" || op == "ConvTranspose" || op == "MatMul" || op == "Gemm") {
      if (n.inputs.size() < 2 || !n.inputs[0].valid() || !n.inputs[1].valid()) continue;
      activation(0);
      if (np.roles[0] == SlotRole::kConstant && op != "MatMul") ok = false;
      const ValueId w = n.inputs[1];
      if (IsF32(g, w) && is_const(w)) {
        np.roles[1] = SlotRole::kWeight;
        const Tensor wt = *ConstantValue(g, w);
        int axis = -1;
        if (per_channel && wt.rank() >= 2) {
          if (op == "Conv") axis = 0;
          if (op == "ConvTranspose") axis = 1;
          if (op == "MatMul") axis = wt.rank() - 1;
          if (op == "Gemm") axis = n.attrs.GetInt("transB", 0) ? 0 : 1;
        }
        np.weight_axis = axis;
        // 7-bit weights where Kiln's AVX2 dense int8 kernel would run them (group-1 Conv);
        // depthwise and matmul weights keep 8 bits (PP-OCR rec's depthwise filters lose 3
        // points of exact lines at 7).
        if (o.weight_bits == 7 && op == "Conv" && n.attrs.GetInt("group", 1) == 1) {
          np.weight_bits = 7;
        }
        if ((op == "Conv" || op == "ConvTranspose" || op == "Gemm") && n.inputs.size() > 2 &&
            n.inputs[2].valid() && IsF32(g, n.inputs[2]) && is_const(n.inputs[2]) &&
            np.roles[0] == SlotRole::kActivation) {
          const Tensor b = *ConstantValue(g, n.inputs[2]);
          const bool gemm_plain = op != "Gemm" || (n.attrs.GetFloat("alpha", 1.0f) == 1.0f &&
                                                   n.attrs.GetFloat("beta", 1.0f) == 1.0f);
          const int64_t m = op == "Conv" || (op == "Gemm" && axis == 0) ? wt.dim(0)
                            : op == "Gemm"                             ? wt.dim(1)
                                                                       : -1;
          const bool shape_ok = b.rank() == 1 && (m < 0 || b.dim(0) == m);
          if (gemm_plain && shape_ok) {
            np.roles[2] = SlotRole::kBias;
            np.bias_group_channels = axis < 0 ? 1 : static_cast<int>(wt.dim(axis));
          }
        }
        if (o.bias_correction && np.roles[0] == SlotRole::kActivation) {
          const bool no_bias = n.inputs.size() < 3 || !n.inputs[2].valid();
          const bool has_bias_slot = n.inputs.size() > 2 && np.roles[2] == SlotRole::kBias;
          if ((op == "Conv" && (no_bias || has_bias_slot)) || (op == "Gemm" && has_bias_slot)) {
            std::string why;
            np.bias_delta = BiasDelta(g, n, wt, axis, o.weight_rounding, np.weight_bits, stats, &why);
            if (!np.bias_delta.empty() && no_bias) {
              np.add_bias = true;
              np.bias_group_channels = axis < 0 ? 1 : static_cast<int>(wt.dim(axis));
            }
            if (np.bias_delta.empty() && !why.empty()) {
              plan.notes.push_back(n.Describe() + ": no bias correction (" + why + ")");
            }
          }
        }
      } else {
        activation(1);
      }
    } else if (op == "AveragePool" || op == "GlobalAveragePool") {
      activation(0);
      if (np.roles[0] != SlotRole::kActivation) ok = false;
    } else {  // Add, Mul, Concat
      for (size_t s = 0; s < n.inputs.size(); ++s) activation(s);
      bool any_activation = false;
      for (SlotRole r : np.roles) any_activation |= r == SlotRole::kActivation;
      ok = ok && any_activation;
    }
    if (!ok) {
      if (!missing.empty()) {
        plan.notes.push_back(n.Describe() + " stays float: no statistics for its input '" +
                             missing + "'");
      }
      continue;
    }
    np.quantized = true;
    for (size_t s = 0; s < n.inputs.size(); ++s) {
      if (np.roles[s] == SlotRole::kActivation) want[n.inputs[s].v] = true;
    }
    plan.nodes[id.v] = std::move(np);
  }
  // Outputs of compute ops, with Relu/Clip fused into the range.
  for (NodeId id : order) {
    if (!plan.nodes[id.v].quantized) continue;
    const ValueId out = g.node(id).outputs[0];
    const Value& ov = g.value(out);
    if (ov.is_output || !has_stats(out)) continue;
    if (readers[out.v].size() == 1) {
      const Node& r = g.node(readers[out.v][0]);
      bool fusable = (r.op_type == "Relu" || r.op_type == "Clip") && usable_node(r) &&
                     r.inputs[0] == out;
      for (size_t s = 1; fusable && s < r.inputs.size(); ++s) {
        fusable = !r.inputs[s].valid() || is_const(r.inputs[s]);
      }
      if (fusable && internal[r.outputs[0].v]) fusable = false;  // quantize `out` instead
      if (fusable) {
        const ValueId ro = r.outputs[0];
        plan.nodes[readers[out.v][0].v].fused_activation = true;
        if (!g.value(ro).is_output && has_stats(ro)) want[ro.v] = true;
        continue;
      }
    }
    want[out.v] = true;
  }
  // Pass-through ops whose input is quantized anyway: the output shares its scale.
  for (NodeId id : order) {
    const Node& n = g.node(id);
    if (!IsPassThroughOp(n.op_type) || !usable_node(n) || n.inputs.empty() ||
        !n.inputs[0].valid() || !want[n.inputs[0].v]) {
      continue;
    }
    const ValueId out = n.outputs[0];
    if (g.value(out).is_output) continue;
    NodePlan& np = plan.nodes[id.v];
    np.quantized = true;
    np.roles.assign(n.inputs.size(), SlotRole::kFloat);
    np.roles[0] = SlotRole::kActivation;
    want[out.v] = true;
    shared_with[out.v] = n.inputs[0];
  }
  // Parameters: from statistics, or shared along pass-through chains (in topological order).
  const bool symmetric = o.activations == ActivationType::kS8;
  auto params_of = [&](ValueId v) -> Result<QParams> {
    const TensorStats* s = stats.Find(g.value(v).name);
    auto range = ComputeRange(*s, o.method, symmetric);
    if (!range.ok()) {
      return InvalidArgument("tensor '" + g.value(v).name + "': " + range.status().message());
    }
    return ParamsForRange(range->first, range->second, o.activations);
  };
  for (ValueId in : g.inputs()) {
    if (want[in.v]) {
      KILN_ASSIGN_OR_RETURN(plan.acts[in.v], params_of(in));
    }
  }
  for (uint32_t v = 0; v < g.num_values(); ++v) {
    const Value& val = g.value(ValueId(v));
    if (want[v] && !val.producer.valid() && !plan.acts[v]) {
      KILN_ASSIGN_OR_RETURN(plan.acts[v], params_of(ValueId(v)));
    }
  }
  for (NodeId id : order) {
    for (ValueId out : g.node(id).outputs) {
      if (!out.valid() || !want[out.v]) continue;
      if (shared_with[out.v].valid()) {
        plan.acts[out.v] = plan.acts[shared_with[out.v].v];
      } else {
        KILN_ASSIGN_OR_RETURN(plan.acts[out.v], params_of(out));
      }
    }
  }
  return plan;
}

namespace {

class Emitter {
 public:
  Emitter(const Graph& src, const QdqPlan& plan, const QuantizeOptions& o, int opset,
          QuantizeReport* report)
      : src_(src), plan_(plan), o_(o), opset_(opset), report_(report) {}

  Result<Graph> Run() {
    CollectNames(src_);
    dst_.name = src_.name;
    CopyValues(src_, dst_);
    for (ValueId in : src_.inputs()) dst_.MarkInput(in);
    dq_.assign(src_.num_values(), ValueId());
    for (uint32_t v = 0; v < src_.num_values(); ++v) {
      if (plan_.acts[v] && !src_.value(ValueId(v)).producer.valid()) AddQdq(ValueId(v));
    }
    KILN_ASSIGN_OR_RETURN(std::vector<NodeId> order, src_.TopologicalOrder());
    for (NodeId id : order) {
      const Node& n = src_.node(id);
      const NodePlan& np = plan_.nodes[id.v];
      std::vector<ValueId> inputs = n.inputs;
      for (size_t s = 0; s < inputs.size(); ++s) {
        const ValueId v = inputs[s];
        if (!v.valid()) continue;
        const SlotRole role = np.quantized ? np.roles[s] : SlotRole::kFloat;
        if (role == SlotRole::kWeight) {
          inputs[s] = Weight(v, np.weight_axis, np.weight_bits);
        } else if (role == SlotRole::kBias) {
          KILN_ASSIGN_OR_RETURN(inputs[s],
                                Bias(n, np, *ConstantValue(src_, v), src_.value(v).name));
        } else if (role == SlotRole::kConstant) {
          inputs[s] = ConstantInput(v);
        } else if (dq_[v.v].valid()) {
          inputs[s] = dq_[v.v];
        }
      }
      if (np.quantized && np.add_bias) {
        const int64_t m = static_cast<int64_t>(np.bias_delta.size());
        Tensor zero = Tensor::Allocate(ElementType::kF32, {m}).value();
        for (int64_t i = 0; i < zero.size(); ++i) zero.data<float>()[i] = 0.0f;
        inputs.resize(3);
        KILN_ASSIGN_OR_RETURN(inputs[2], Bias(n, np, zero, n.name + "_bias"));
      }
      if (np.quantized) {
        ++(report_ ? report_->quantized[n.op_type] : scratch_);
      }
      dst_.AddNode(n.name, n.op_type, std::move(inputs), n.outputs, n.attrs, n.domain, n.opset);
      for (ValueId out : n.outputs) {
        if (out.valid() && plan_.acts[out.v]) AddQdq(out);
      }
    }
    for (ValueId out : src_.outputs()) dst_.MarkOutput(out);
    return std::move(dst_);
  }

 private:
  void CollectNames(const Graph& g) {
    for (const Value& v : g.values()) names_.insert(v.name);
    for (const Node& n : g.nodes()) {
      names_.insert(n.name);
      for (const Attribute& a : n.attrs.items()) {
        if (a.g) CollectNames(*a.g);
        for (const auto& sub : a.graphs) CollectNames(*sub);
      }
    }
  }
  std::string Unique(const std::string& base) {
    std::string name = base;
    for (int i = 1; names_.count(name); ++i) name = base + "_" + std::to_string(i);
    names_.insert(name);
    return name;
  }
  ValueId Init(const std::string& base, Tensor t) {
    return dst_.AddInitializer(Unique(base), std::move(t));
  }
  ValueId Vector(const std::string& base, ElementType type, const std::vector<double>& v,
                 bool scalar) {
    Tensor t = scalar ? Scalar(type, v[0])
                      : Tensor::Allocate(type, {static_cast<int64_t>(v.size())}).value();
    if (!scalar) {
      for (size_t i = 0; i < v.size(); ++i) {
        if (type == ElementType::kF32) t.data<float>()[i] = static_cast<float>(v[i]);
        if (type == ElementType::kI8) t.data<int8_t>()[i] = static_cast<int8_t>(v[i]);
        if (type == ElementType::kI32) t.data<int32_t>()[i] = static_cast<int32_t>(v[i]);
      }
    }
    return Init(base, std::move(t));
  }
  ValueId Dequantize(const std::string& base, ValueId q, ValueId scale, ValueId zp, int axis,
                     const std::optional<DimVector>& shape) {
    ValueId out = dst_.AddValue(Unique(base + "_DequantizeLinear_Output"), ElementType::kF32, shape);
    Attributes attrs;
    if (axis >= 0) attrs.Add(Attribute::Int("axis", axis));
    dst_.AddNode(Unique(base + "_DequantizeLinear"), "DequantizeLinear", {q, scale, zp}, {out},
                 std::move(attrs), "", opset_);
    return out;
  }
  void AddQdq(ValueId v) {
    const QParams& p = *plan_.acts[v.v];
    const Value& val = src_.value(v);
    const ValueId scale = Init(val.name + "_scale", Scalar(ElementType::kF32, p.scale));
    const ValueId zp = Init(val.name + "_zero_point", Scalar(p.type, p.zero_point));
    const ValueId q = dst_.AddValue(Unique(val.name + "_QuantizeLinear_Output"), p.type,
                                    val.info.shape);
    dst_.AddNode(Unique(val.name + "_QuantizeLinear"), "QuantizeLinear", {v, scale, zp}, {q}, {},
                 "", opset_);
    dq_[v.v] = Dequantize(val.name, q, scale, zp, -1, val.info.shape);
    if (report_) ++report_->activations_quantized;
  }
  ValueId Weight(ValueId v, int axis, int bits) {
    auto key = std::make_pair(v.v, axis * 16 + bits);
    if (auto it = weights_.find(key); it != weights_.end()) return it->second.first;
    const Value& val = src_.value(v);
    const Tensor w = *ConstantValue(src_, v);
    QuantizedWeight qw = QuantizeWeight(w, axis, o_.weight_rounding, bits);
    const bool scalar = axis < 0;
    std::vector<double> scales(qw.scales.begin(), qw.scales.end());
    const ValueId scale = Vector(val.name + "_scale", ElementType::kF32, scales, scalar);
    const ValueId zp = Vector(val.name + "_zero_point", ElementType::kI8,
                              std::vector<double>(scales.size(), 0.0), scalar);
    const ValueId q = Init(val.name + "_quantized", qw.q);
    DimVector dims(w.shape().begin(), w.shape().end());
    const ValueId out = Dequantize(val.name, q, scale, zp, axis, dims);
    weights_[key] = {out, qw.scales};
    if (report_) ++report_->weights_quantized;
    return out;
  }
  Result<ValueId> Bias(const Node& n, const NodePlan& np, Tensor b, const std::string& base) {
    const QParams& in = *plan_.acts[n.inputs[0].v];
    Weight(n.inputs[1], np.weight_axis, np.weight_bits);
    const std::vector<float>& ws =
        weights_[std::make_pair(n.inputs[1].v, np.weight_axis * 16 + np.weight_bits)].second;
    if (!np.bias_delta.empty()) {
      if (static_cast<size_t>(b.size()) != np.bias_delta.size()) {
        return InvalidArgument(n.Describe() + ": bias correction has " +
                               std::to_string(np.bias_delta.size()) + " values for a bias of " +
                               std::to_string(b.size()));
      }
      Tensor c = Tensor::Allocate(ElementType::kF32, b.shape()).value();
      for (int64_t i = 0; i < b.size(); ++i) {
        c.data<float>()[i] = static_cast<float>(b.GetAsDouble(i) + np.bias_delta[i]);
      }
      b = std::move(c);
      if (report_) ++report_->biases_corrected;
    }
    Tensor q = Tensor::Allocate(ElementType::kI32, b.shape()).value();
    std::vector<double> scales(static_cast<size_t>(b.size()));
    const bool per_tensor = np.weight_axis < 0;
    for (int64_t i = 0; i < b.size(); ++i) {
      const float s = in.scale * ws[per_tensor ? 0 : static_cast<size_t>(i % np.bias_group_channels)];
      scales[i] = s;
      const double r = std::nearbyint(b.GetAsDouble(i) / static_cast<double>(s));
      const double lim = std::numeric_limits<int32_t>::max();
      q.data<int32_t>()[i] = static_cast<int32_t>(std::clamp(r, -lim, lim));
    }
    if (per_tensor) scales.resize(1);
    const ValueId scale = Vector(base + "_scale", ElementType::kF32, scales, per_tensor);
    const ValueId zp = Vector(base + "_zero_point", ElementType::kI32,
                              std::vector<double>(scales.size(), 0.0), per_tensor);
    const ValueId qv = Init(base + "_quantized", q);
    DimVector dims(b.shape().begin(), b.shape().end());
    if (report_) ++report_->biases_quantized;
    return Dequantize(base, qv, scale, zp, per_tensor ? -1 : 0, dims);
  }
  ValueId ConstantInput(ValueId v) {
    if (auto it = constants_.find(v.v); it != constants_.end()) return it->second;
    const Value& val = src_.value(v);
    const Tensor c = *ConstantValue(src_, v);
    const QParams p = ConstantParams(c, o_.activations);
    Tensor q = QuantizeValues(c, p);
    const ValueId scale = Init(val.name + "_scale", Scalar(ElementType::kF32, p.scale));
    const ValueId zp = Init(val.name + "_zero_point", Scalar(p.type, p.zero_point));
    const ValueId qv = Init(val.name + "_quantized", q);
    DimVector dims(c.shape().begin(), c.shape().end());
    const ValueId out = Dequantize(val.name, qv, scale, zp, -1, dims);
    constants_[v.v] = out;
    if (report_) ++report_->weights_quantized;
    return out;
  }

  const Graph& src_;
  const QdqPlan& plan_;
  const QuantizeOptions& o_;
  int opset_;
  QuantizeReport* report_;
  int scratch_ = 0;
  Graph dst_;
  std::vector<ValueId> dq_;  // per src value: its dequantized version
  std::map<std::pair<uint32_t, int>, std::pair<ValueId, std::vector<float>>> weights_;
  std::map<uint32_t, ValueId> constants_;
  std::unordered_set<std::string> names_;
};

}  // namespace

Result<Graph> EmitQdq(const Graph& g, const QdqPlan& plan, const QuantizeOptions& options,
                      int opset, QuantizeReport* report) {
  return Emitter(g, plan, options, opset, report).Run();
}

}  // namespace kiln::quant_internal
