// fuse-qdq: QDQ patterns become integer ops (see qdq_fusion.h for the patterns and their rules).
//
// One walk in topological order. For each candidate op the matcher reads the constant
// quantization of the DequantizeLinear nodes feeding it and of the QuantizeLinear reading its
// output (through an optional Relu/Clip), checks the pattern's conditions, and rewrites the op's
// node in place (new op type, inputs, attributes) so that it writes the Q's output value. DQs
// that nothing reads any more are removed; initializers left unread go on Commit.
#include "passes/qdq_fusion.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "backends/ref/eager.h"
#include "passes/graph_edit.h"

namespace kiln {
namespace {

using passes::ConstantValue;
using passes::GraphEditor;
using passes::IsDefaultDomain;

constexpr const char* kNotCandidate = "-";

bool Is8Bit(ElementType t) { return t == ElementType::kU8 || t == ElementType::kI8; }

// A DequantizeLinear or QuantizeLinear with constant scale and zero point.
struct QdqInfo {
  NodeId node;
  ValueId q;      // the integer tensor: the DQ's input or the Q's output
  ValueId scale;  // the node's input 1
  ValueId zp;     // the node's input 2, invalid when omitted
  ElementType type = ElementType::kUndefined;
  std::vector<float> scales;
  std::vector<int64_t> zps;  // one per scale
  int axis = -1;             // the normalized axis when per axis, else -1
  bool per_tensor() const { return scales.size() == 1; }
  bool SameAs(const QdqInfo& o) const {
    return type == o.type && scales == o.scales && zps == o.zps;
  }
};

// QuantizeLinear of one float, in f32 as the reference kernel computes it.
int64_t QuantizeScalar(float v, float scale, int64_t zp, ElementType t) {
  const float lo = t == ElementType::kI8 ? -128.0f : 0.0f;
  const float hi = t == ElementType::kI8 ? 127.0f : 255.0f;
  const float q = std::nearbyint(v / scale) + static_cast<float>(zp);
  if (std::isnan(q)) return 0;
  return static_cast<int64_t>(std::clamp(q, lo, hi));
}

int Rank(const Graph& g, ValueId v) {
  if (auto c = ConstantValue(g, v)) return c->rank();
  const auto& s = g.value(v).info.shape;
  return s ? static_cast<int>(s->size()) : -1;
}

std::optional<Shape> StaticShape(const Graph& g, ValueId v) {
  if (auto c = ConstantValue(g, v)) return c->shape();
  if (g.value(v).info.has_static_shape()) return g.value(v).info.static_shape();
  return std::nullopt;
}

std::optional<QdqInfo> ReadQdq(const Graph& g, NodeId id) {
  const Node& n = g.node(id);
  const bool is_q = n.op_type == "QuantizeLinear";
  if (!IsDefaultDomain(n) || (!is_q && n.op_type != "DequantizeLinear")) return std::nullopt;
  if (n.inputs.size() < 2 || !n.inputs[0].valid() || !n.inputs[1].valid() ||
      n.outputs.size() != 1 || !n.outputs[0].valid()) {
    return std::nullopt;
  }
  // Blocked scales (opset 21's block_size) are not fused: their scale is per block, not per axis.
  if (n.opset >= 21 && n.attrs.GetInt("block_size", 0) != 0) return std::nullopt;
  const std::optional<Tensor> s = ConstantValue(g, n.inputs[1]);
  if (!s || s->type() != ElementType::kF32 || s->rank() > 1 || s->size() == 0) return std::nullopt;
  std::optional<Tensor> z;
  if (n.inputs.size() > 2 && n.inputs[2].valid()) {
    z = ConstantValue(g, n.inputs[2]);
    if (!z || z->size() != s->size()) return std::nullopt;
  }
  QdqInfo info;
  info.node = id;
  info.q = is_q ? n.outputs[0] : n.inputs[0];
  info.scale = n.inputs[1];
  info.zp = z ? n.inputs[2] : ValueId();
  if (z) {
    info.type = z->type();
  } else if (is_q) {
    // No zero point: u8, or opset 21's output_dtype (the type inference gave the output).
    info.type = ElementType::kU8;
    if (n.opset >= 21 && n.attrs.GetInt("output_dtype", 0) != 0) {
      info.type = g.value(n.outputs[0]).info.type;
    }
  } else {
    info.type = g.value(n.inputs[0]).info.type;
    if (auto c = ConstantValue(g, n.inputs[0])) info.type = c->type();
  }
  if (!Is8Bit(info.type) && !(info.type == ElementType::kI32 && !is_q)) return std::nullopt;
  for (int64_t i = 0; i < s->size(); ++i) {
    const float v = s->data<float>()[i];
    if (!(v > 0) || !std::isfinite(v)) return std::nullopt;
    info.scales.push_back(v);
    info.zps.push_back(z ? z->GetAsInt64(i) : 0);
  }
  if (s->rank() == 1 && s->size() > 1) {
    const int rank = Rank(g, n.inputs[0]);
    const int64_t axis = n.attrs.GetInt("axis", 1);
    if (rank < 0 || axis < -rank || axis >= rank) return std::nullopt;
    info.axis = static_cast<int>(axis < 0 ? axis + rank : axis);
  }
  return info;
}

Tensor ScaleTensor(const QdqInfo& i) { return Tensor::FromVector(std::vector<float>{i.scales[0]}, {}); }

Tensor ZeroPointTensor(const QdqInfo& i) {
  Tensor z = Tensor::Allocate(i.type, {}).value();
  if (i.type == ElementType::kI8) {
    z.data<int8_t>()[0] = static_cast<int8_t>(i.zps[0]);
  } else {
    z.data<uint8_t>()[0] = static_cast<uint8_t>(i.zps[0]);
  }
  return z;
}

// The 256 values of an 8-bit per-tensor quantization, dequantized by the reference kernel (in
// the order of the raw integers: u8 0..255, i8 -128..127), a table's input.
Result<Tensor> DequantizedTable(const QdqInfo& x) {
  Tensor xq = Tensor::Allocate(x.type, {256}).value();
  for (int i = 0; i < 256; ++i) {
    if (x.type == ElementType::kI8) {
      xq.data<int8_t>()[i] = static_cast<int8_t>(i - 128);
    } else {
      xq.data<uint8_t>()[i] = static_cast<uint8_t>(i);
    }
  }
  KILN_ASSIGN_OR_RETURN(
      auto xf, RunOpEager("DequantizeLinear", 13, {xq, ScaleTensor(x), ZeroPointTensor(x)}, 1));
  return xf[0];
}

// The bounds of a Relu or Clip with constant bounds (+-inf when unbounded); nullopt otherwise.
std::optional<std::pair<float, float>> ClampBounds(const Graph& g, const Node& n) {
  constexpr float kInf = std::numeric_limits<float>::infinity();
  if (!IsDefaultDomain(n) || n.inputs.empty() || n.outputs.size() != 1) return std::nullopt;
  if (n.op_type == "Relu") return std::make_pair(0.0f, kInf);
  if (n.op_type != "Clip") return std::nullopt;
  if (n.opset > 0 && n.opset < 11) {
    return std::make_pair(n.attrs.GetFloat("min", -kInf), n.attrs.GetFloat("max", kInf));
  }
  float b[2] = {-kInf, kInf};
  for (size_t i = 1; i <= 2; ++i) {
    if (i >= n.inputs.size() || !n.inputs[i].valid()) continue;
    const std::optional<Tensor> c = ConstantValue(g, n.inputs[i]);
    if (!c || !IsFloating(c->type()) || c->size() != 1) return std::nullopt;
    b[i - 1] = static_cast<float>(c->GetAsDouble(0));
  }
  return std::make_pair(b[0], b[1]);
}

// Ops that only move or pick elements: on int8 they compute exactly what DQ -> op -> Q does
// when both sides share scale and zero point. Input 0 is the data; other inputs stay.
bool IsDataMovement(const Node& n) {
  static const std::set<std::string> kOps = {
      "Reshape",      "Transpose",    "Flatten", "Squeeze", "Unsqueeze", "Slice",  "Identity",
      "DepthToSpace", "SpaceToDepth", "Expand",  "Tile",    "Gather",    "Resize"};
  if (!kOps.count(n.op_type)) return false;
  if (n.op_type == "Resize") return n.attrs.GetString("mode", "nearest") == "nearest";
  return true;
}

// Unary elementwise ops replaced by a 256-entry table.
bool IsLutOp(const Node& n) {
  static const std::set<std::string> kOps = {
      "Relu",     "Clip", "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Elu",
      "Selu",     "Celu", "Softplus",  "Softsign", "Exp", "Log",         "Neg",       "Abs",
      "Sqrt",     "Erf",  "Sin",       "Cos",     "Floor", "Ceil",      "Round",     "Reciprocal",
      "ThresholdedRelu", "Mish", "Gelu"};
  return kOps.count(n.op_type) > 0;
}

// The output side of a pattern: the Q reading the op's output, through an optional Relu/Clip
// folded into [lo, hi] (output integers).
struct OutMatch {
  const QdqInfo* q = nullptr;
  NodeId act;
  int64_t lo = 0, hi = 0;
  bool keep_clamp = false;  // the clamp narrows the type's range: an int8 Clip stays
};

class Fuser {
 public:
  explicit Fuser(Model& model) : model_(model), g_(model.graph), e_(model.graph) {
    for (uint32_t i = 0; i < g_.num_nodes(); ++i) {
      if (auto info = ReadQdq(g_, NodeId(i))) qdq_.emplace(i, *info);
    }
  }

  Result<PassResult> Run();

 private:
  const QdqInfo* Info(NodeId n) const {
    if (!n.valid() || e_.removed(n)) return nullptr;
    auto it = qdq_.find(n.v);
    return it == qdq_.end() ? nullptr : &it->second;
  }
  // The DQ producing `v`, when `v` is a DQ output with constant parameters.
  const QdqInfo* Dq(ValueId v) const {
    if (!v.valid()) return nullptr;
    const QdqInfo* i = Info(g_.value(v).producer);
    return i != nullptr && g_.node(i->node).op_type == "DequantizeLinear" ? i : nullptr;
  }
  // The Q that alone reads `v`.
  const QdqInfo* QAfter(ValueId v) const {
    const auto r = e_.SoleReader(v);
    if (!r) return nullptr;
    const QdqInfo* i = Info(*r);
    if (i == nullptr || g_.node(i->node).op_type != "QuantizeLinear") return nullptr;
    return g_.node(i->node).inputs[0] == v ? i : nullptr;
  }
  // A DQ feeding activations: per tensor, u8 or i8.
  const QdqInfo* Act(ValueId v) const {
    const QdqInfo* i = Dq(v);
    return i != nullptr && i->per_tensor() && Is8Bit(i->type) ? i : nullptr;
  }

  std::optional<OutMatch> MatchOutput(const Node& n, bool allow_clamp, std::string* why) const;
  ValueId ZeroPoint(const QdqInfo& i);
  ValueId Scalar8(ElementType t, int64_t v, const std::string& base);
  Result<std::optional<ValueId>> Bias(ValueId b, float x_scale, const std::vector<float>& w_scales,
                                      int64_t count, const std::string& base, std::string* why);
  Status Rewrite(NodeId id, const std::string& op, const std::string& domain, int opset,
                 Attributes attrs, std::vector<ValueId> inputs, const OutMatch& out);

  Result<std::string> FuseConv(NodeId id);
  Result<std::string> FuseMatMul(NodeId id);
  Result<std::string> FuseGemm(NodeId id);
  Result<std::string> FuseBinary(NodeId id);
  Result<std::string> FusePool(NodeId id);
  Result<std::string> FuseSameScale(NodeId id);
  Result<std::string> FuseUnary(NodeId id);
  Result<std::string> FuseRegion(NodeId q_id);

  Model& model_;
  Graph& g_;
  GraphEditor e_;
  std::map<uint32_t, QdqInfo> qdq_;
  std::set<uint32_t> touched_;  // values whose readers the pass removed
  std::map<std::string, int> fused_;  // "Conv -> QLinearConv" -> count
  bool kiln_ops_ = false;
};

std::optional<OutMatch> Fuser::MatchOutput(const Node& n, bool allow_clamp,
                                           std::string* why) const {
  if (n.outputs.empty() || !n.outputs[0].valid()) return std::nullopt;
  for (size_t i = 1; i < n.outputs.size(); ++i) {
    const ValueId o = n.outputs[i];
    if (o.valid() && (e_.ReaderCount(o) > 0 || g_.value(o).is_output)) {
      *why = "its output " + std::to_string(i) + " is used";
      return std::nullopt;
    }
  }
  const ValueId y = n.outputs[0];
  OutMatch m;
  if ((m.q = QAfter(y)) == nullptr && allow_clamp) {
    const auto r = e_.SoleReader(y);
    if (r && g_.node(*r).inputs[0] == y) {
      const Node& act = g_.node(*r);
      if (auto b = ClampBounds(g_, act); b && (m.q = QAfter(act.outputs[0])) != nullptr) {
        m.act = *r;
        if (!m.q->per_tensor() || !Is8Bit(m.q->type)) {
          *why = "the output quantization is not per tensor u8/i8";
          return std::nullopt;
        }
        const float s = m.q->scales[0];
        m.lo = QuantizeScalar(b->first, s, m.q->zps[0], m.q->type);
        m.hi = QuantizeScalar(b->second, s, m.q->zps[0], m.q->type);
        const int64_t tlo = m.q->type == ElementType::kI8 ? -128 : 0;
        m.keep_clamp = m.lo > tlo || m.hi < tlo + 255;
        if (m.keep_clamp && model_.opsets.count("") && model_.opsets.at("") < 12) {
          *why = "folding " + act.Describe() + " needs an int8 Clip (opset 12)";
          return std::nullopt;
        }
      }
    }
  }
  if (m.q == nullptr) {
    *why = "its output is not read only by a QuantizeLinear with constant parameters";
    return std::nullopt;
  }
  if (!m.q->per_tensor() || !Is8Bit(m.q->type)) {
    *why = "the output quantization is not per tensor u8/i8";
    return std::nullopt;
  }
  return m;
}

ValueId Fuser::Scalar8(ElementType t, int64_t v, const std::string& base) {
  Tensor z = Tensor::Allocate(t, {}).value();
  if (t == ElementType::kI8) {
    z.data<int8_t>()[0] = static_cast<int8_t>(v);
  } else {
    z.data<uint8_t>()[0] = static_cast<uint8_t>(v);
  }
  return e_.AddInitializer(base, std::move(z));
}

ValueId Fuser::ZeroPoint(const QdqInfo& i) {
  if (i.zp.valid()) return i.zp;
  return Scalar8(i.type, 0, g_.value(i.q).name + "_zero_point");
}

// The int32 bias of scale x_scale * w_scales[m] (f32 products, as the quantizer computes them):
// the DQ's own int32 tensor when its scale is that already, else a rescaled or quantized copy.
Result<std::optional<ValueId>> Fuser::Bias(ValueId b, float x_scale,
                                           const std::vector<float>& w_scales, int64_t count,
                                           const std::string& base, std::string* why) {
  std::vector<double> want(static_cast<size_t>(count));
  for (int64_t m = 0; m < count; ++m) {
    want[m] = static_cast<double>(x_scale * w_scales[w_scales.size() == 1 ? 0 : m]);
  }
  std::vector<double> real;  // the bias in real units, when it must be (re)quantized
  if (const QdqInfo* d = Dq(b)) {
    if (d->type != ElementType::kI32) {
      *why = "the bias is not int32";
      return std::optional<ValueId>();
    }
    if (std::any_of(d->zps.begin(), d->zps.end(), [](int64_t z) { return z != 0; })) {
      *why = "the bias zero point is not 0";
      return std::optional<ValueId>();
    }
    const std::optional<Shape> bs = StaticShape(g_, d->q);
    const int64_t n = bs ? NumElements(*bs) : -1;
    if ((n != count && n != 1) || (d->scales.size() != 1 && d->scales.size() != count)) {
      *why = "the bias does not have one value per output channel";
      return std::optional<ValueId>();
    }
    bool exact = n == count;
    for (int64_t m = 0; m < count && exact; ++m) {
      const double s = d->scales[d->scales.size() == 1 ? 0 : m];
      exact = std::fabs(s - want[m]) <= 1e-6 * want[m];
    }
    if (exact) return std::optional<ValueId>(d->q);
    const std::optional<Tensor> c = ConstantValue(g_, d->q);
    if (!c) {
      *why = "the bias scale is not x_scale * w_scale and the bias is not constant";
      return std::optional<ValueId>();
    }
    for (int64_t m = 0; m < count; ++m) {
      real.push_back(c->GetAsDouble(n == 1 ? 0 : m) * d->scales[d->scales.size() == 1 ? 0 : m]);
    }
  } else if (const std::optional<Tensor> c = ConstantValue(g_, b);
             c && IsFloating(c->type()) && (c->size() == count || c->size() == 1)) {
    for (int64_t m = 0; m < count; ++m) real.push_back(c->GetAsDouble(c->size() == 1 ? 0 : m));
  } else {
    *why = "the bias is neither a DequantizeLinear of int32 nor a float constant";
    return std::optional<ValueId>();
  }
  Tensor q = Tensor::Allocate(ElementType::kI32, {count}).value();
  for (int64_t m = 0; m < count; ++m) {
    const double v = std::nearbyint(real[m] / want[m]);
    q.data<int32_t>()[m] = static_cast<int32_t>(std::clamp(v, -2147483648.0, 2147483647.0));
  }
  return std::optional<ValueId>(e_.AddInitializer(base + "_bias_q", std::move(q)));
}

Status Fuser::Rewrite(NodeId id, const std::string& op, const std::string& domain, int opset,
                      Attributes attrs, std::vector<ValueId> inputs, const OutMatch& out) {
  std::vector<NodeId> dqs;
  {
    const Node& n = g_.node(id);
    for (ValueId v : n.inputs) {
      if (!v.valid()) continue;
      touched_.insert(v.v);
      if (const QdqInfo* d = Dq(v)) dqs.push_back(d->node);
    }
    fused_[n.op_type + " -> " + op +
           (out.q == nullptr ? " (float output)"
            : out.act.valid()
                ? " (" + g_.node(out.act).op_type +
                      (out.keep_clamp ? " as int8 Clip)" : " folded)")
                : "")]++;
  }
  const size_t old_size = g_.node(id).inputs.size();
  for (size_t i = 0; i < inputs.size(); ++i) e_.SetInput(id, i, inputs[i]);
  for (size_t i = inputs.size(); i < old_size; ++i) e_.SetInput(id, i, ValueId());
  Node& n = g_.node(id);
  n.inputs.resize(inputs.size());
  n.op_type = op;
  n.domain = domain;
  n.opset = opset;
  n.attrs = std::move(attrs);
  if (domain == kKilnDomain) kiln_ops_ = true;

  if (out.q != nullptr) {  // else a float output: the node keeps its output value
    const ValueId q_out = out.q->q;
    const ValueId y = n.outputs[0];
    e_.RemoveNode(out.q->node);
    if (out.act.valid() && out.keep_clamp) {
      // The Relu/Clip becomes Clip(y_q, lo, hi) on the integers and writes the Q's output.
      g_.value(y).info.type = out.q->type;
      const std::string base = g_.node(out.act).name.empty() ? g_.value(y).name
                                                             : g_.node(out.act).name;
      const ValueId lo = Scalar8(out.q->type, out.lo, base + "_min_q");
      const ValueId hi = Scalar8(out.q->type, out.hi, base + "_max_q");
      for (ValueId v : g_.node(out.act).inputs) {
        if (v.valid()) touched_.insert(v.v);
      }
      const size_t act_size = g_.node(out.act).inputs.size();
      e_.SetInput(out.act, 0, y);
      e_.SetInput(out.act, 1, lo);
      e_.SetInput(out.act, 2, hi);
      for (size_t i = 3; i < act_size; ++i) e_.SetInput(out.act, i, ValueId());
      Node& act = g_.node(out.act);
      act.inputs.resize(3);
      act.op_type = "Clip";
      act.domain.clear();
      act.opset = std::max(act.opset, 12);
      act.attrs = Attributes();
      e_.MoveOutput(out.act, 0, q_out);
    } else {
      if (out.act.valid()) e_.RemoveNode(out.act);
      e_.MoveOutput(id, 0, q_out);
    }
  }
  for (NodeId d : dqs) {
    if (e_.removed(d)) continue;
    const Node& dn = g_.node(d);
    if (e_.ReaderCount(dn.outputs[0]) > 0 || g_.value(dn.outputs[0]).is_output) continue;
    for (ValueId v : dn.inputs) {
      if (v.valid()) touched_.insert(v.v);
    }
    e_.RemoveNode(d);
  }
  return Status::Ok();
}

Result<std::string> Fuser::FuseConv(NodeId id) {
  const Node& n = g_.node(id);
  if (n.inputs.size() < 2) return std::string(kNotCandidate);
  const QdqInfo* x = Dq(n.inputs[0]);
  const QdqInfo* w = Dq(n.inputs[1]);
  if (x == nullptr || w == nullptr) return std::string(kNotCandidate);
  if (!x->per_tensor() || !Is8Bit(x->type)) return std::string("X is not per tensor u8/i8");
  if (!Is8Bit(w->type)) return std::string("W is not u8/i8");
  const std::optional<Shape> ws = StaticShape(g_, w->q);
  if (!ws || ws->size() < 3) return std::string("W's shape is not static");
  const int64_t m = (*ws)[0];
  if (!w->per_tensor() && (w->axis != 0 || static_cast<int64_t>(w->scales.size()) != m)) {
    return std::string("W is not quantized per tensor or per output channel (axis 0)");
  }
  std::string why;
  const auto out = MatchOutput(n, true, &why);
  if (!out) return why;
  std::optional<ValueId> bias;
  if (n.inputs.size() > 2 && n.inputs[2].valid()) {
    KILN_ASSIGN_OR_RETURN(bias, Bias(n.inputs[2], x->scales[0], w->scales, m, n.name, &why));
    if (!bias) return why;
  }
  std::vector<ValueId> in = {x->q, x->scale, ZeroPoint(*x), w->q, w->scale, ZeroPoint(*w),
                             out->q->scale, ZeroPoint(*out->q)};
  if (bias) in.push_back(*bias);
  Attributes attrs = g_.node(id).attrs;
  KILN_RETURN_IF_ERROR(Rewrite(id, "QLinearConv", "", std::max(g_.node(id).opset, 10),
                               std::move(attrs), std::move(in), *out));
  return std::string();
}

Result<std::string> Fuser::FuseMatMul(NodeId id) {
  const Node& n = g_.node(id);
  if (n.inputs.size() != 2) return std::string(kNotCandidate);
  const QdqInfo* a = Dq(n.inputs[0]);
  const QdqInfo* b = Dq(n.inputs[1]);
  if (a == nullptr || b == nullptr) return std::string(kNotCandidate);
  if (!a->per_tensor() || !Is8Bit(a->type)) return std::string("A is not per tensor u8/i8");
  if (!Is8Bit(b->type)) return std::string("B is not u8/i8");
  if (!b->per_tensor() && (Rank(g_, b->q) != 2 || b->axis != 1)) {
    return std::string("B is not quantized per tensor or per column (axis 1 of a 2-D B)");
  }
  std::string why;
  const auto out = MatchOutput(n, true, &why);
  if (!out) return why;
  std::vector<ValueId> in = {a->q, a->scale, ZeroPoint(*a), b->q, b->scale, ZeroPoint(*b),
                             out->q->scale, ZeroPoint(*out->q)};
  KILN_RETURN_IF_ERROR(Rewrite(id, "QLinearMatMul", "", std::max(g_.node(id).opset, 10), {},
                               std::move(in), *out));
  return std::string();
}

Result<std::string> Fuser::FuseGemm(NodeId id) {
  const Node& n = g_.node(id);
  if (n.inputs.size() < 2) return std::string(kNotCandidate);
  const QdqInfo* a = Dq(n.inputs[0]);
  const QdqInfo* b = Dq(n.inputs[1]);
  if (a == nullptr || b == nullptr) return std::string(kNotCandidate);
  const bool has_c = n.inputs.size() > 2 && n.inputs[2].valid();
  if (n.attrs.GetFloat("alpha", 1.0f) != 1.0f || (has_c && n.attrs.GetFloat("beta", 1.0f) != 1.0f))
    return std::string("alpha or beta is not 1");
  if (!a->per_tensor() || !Is8Bit(a->type)) return std::string("A is not per tensor u8/i8");
  if (!Is8Bit(b->type)) return std::string("B is not u8/i8");
  const bool tb = n.attrs.GetInt("transB", 0) != 0;
  const std::optional<Shape> bs = StaticShape(g_, b->q);
  if (!bs || bs->size() != 2) return std::string("B's shape is not static 2-D");
  const int64_t cols = tb ? (*bs)[0] : (*bs)[1];
  if (!b->per_tensor() &&
      (b->axis != (tb ? 0 : 1) || static_cast<int64_t>(b->scales.size()) != cols)) {
    return std::string("B is not quantized per tensor or per output column");
  }
  std::string why;
  std::optional<OutMatch> out = MatchOutput(n, true, &why);
  if (!out) {
    // A float output (no QuantizeLinear after it: the last layer of a QDQ model, whose output
    // stays float) fuses too, to a QGemm without y_scale: the same value from the 8-bit
    // operands with exact integer sums (one rounding instead of one per product).
    // (f32: the DQs' scales are f32, so is their product.)
    if (g_.value(a->scale).info.type != ElementType::kF32 ||
        g_.value(b->scale).info.type != ElementType::kF32 || QAfter(n.outputs[0]) != nullptr) {
      return why;
    }
    out = OutMatch{};
  }
  std::optional<ValueId> bias;
  if (has_c) {
    KILN_ASSIGN_OR_RETURN(bias, Bias(n.inputs[2], a->scales[0], b->scales, cols, n.name, &why));
    if (!bias) return why;
  }
  Attributes attrs;
  attrs.Add(Attribute::Int("transA", n.attrs.GetInt("transA", 0)));
  attrs.Add(Attribute::Int("transB", tb ? 1 : 0));
  std::vector<ValueId> in = {a->q, a->scale, ZeroPoint(*a), b->q, b->scale, ZeroPoint(*b),
                             bias.value_or(ValueId())};
  if (out->q != nullptr) {
    in.push_back(out->q->scale);
    in.push_back(ZeroPoint(*out->q));
  }
  KILN_RETURN_IF_ERROR(Rewrite(id, "QGemm", kKilnDomain, 1, std::move(attrs), std::move(in), *out));
  return std::string();
}

Result<std::string> Fuser::FuseBinary(NodeId id) {
  const Node& n = g_.node(id);
  if (n.inputs.size() != 2) return std::string(kNotCandidate);
  const QdqInfo* a = Dq(n.inputs[0]);
  const QdqInfo* b = Dq(n.inputs[1]);
  if (a == nullptr || b == nullptr) return std::string(kNotCandidate);
  if (n.opset > 0 && n.opset < 7) return std::string("legacy broadcast (opset < 7)");
  if (Act(n.inputs[0]) == nullptr || Act(n.inputs[1]) == nullptr) {
    return std::string("an input is not quantized per tensor u8/i8");
  }
  std::string why;
  const auto out = MatchOutput(n, true, &why);
  if (!out) return why;
  const std::string op = n.op_type == "Add" ? "QAdd" : "QMul";
  std::vector<ValueId> in = {a->q, a->scale, ZeroPoint(*a), b->q, b->scale, ZeroPoint(*b),
                             out->q->scale, ZeroPoint(*out->q)};
  KILN_RETURN_IF_ERROR(Rewrite(id, op, kKilnDomain, 1, {}, std::move(in), *out));
  return std::string();
}

Result<std::string> Fuser::FusePool(NodeId id) {
  const Node& n = g_.node(id);
  const QdqInfo* x = Dq(n.inputs.empty() ? ValueId() : n.inputs[0]);
  if (x == nullptr) return std::string(kNotCandidate);
  if (!x->per_tensor() || !Is8Bit(x->type)) return std::string("X is not per tensor u8/i8");
  std::string why;
  const auto out = MatchOutput(n, false, &why);
  if (!out) return why;
  const std::string op = n.op_type == "AveragePool" ? "QAveragePool" : "QGlobalAveragePool";
  std::vector<ValueId> in = {x->q, x->scale, ZeroPoint(*x), out->q->scale, ZeroPoint(*out->q)};
  Attributes attrs = n.attrs;
  KILN_RETURN_IF_ERROR(Rewrite(id, op, kKilnDomain, 1, std::move(attrs), std::move(in), *out));
  return std::string();
}

// MaxPool, Concat and data movement: the op itself on the integers, scales unchanged.
Result<std::string> Fuser::FuseSameScale(NodeId id) {
  const Node& n = g_.node(id);
  const bool concat = n.op_type == "Concat";
  const size_t count = concat ? n.inputs.size() : 1;
  if (n.inputs.empty()) return std::string(kNotCandidate);
  for (size_t i = 0; i < count; ++i) {
    if (Dq(n.inputs[i]) == nullptr) return std::string(kNotCandidate);
  }
  if (n.op_type == "MaxPool" && n.opset < 12) return std::string("MaxPool on int8 needs opset 12");
  std::string why;
  const auto out = MatchOutput(n, false, &why);
  if (!out) return why;
  std::vector<ValueId> in = n.inputs;
  for (size_t i = 0; i < count; ++i) {
    const QdqInfo* d = Dq(n.inputs[i]);
    if (!d->SameAs(*out->q)) {
      return std::string("input and output quantization differ");
    }
    in[i] = d->q;
  }
  Attributes attrs = n.attrs;
  KILN_RETURN_IF_ERROR(Rewrite(id, n.op_type, "", n.opset, std::move(attrs), std::move(in), *out));
  return std::string();
}

// Relu/Clip with unchanged scale: Clip on the integers. Other unary ops (and Relu/Clip that
// requantize): a table of the float path's results for all 256 inputs.
Result<std::string> Fuser::FuseUnary(NodeId id) {
  const Node& n = g_.node(id);
  const QdqInfo* x = Dq(n.inputs.empty() ? ValueId() : n.inputs[0]);
  if (x == nullptr || n.outputs.size() != 1) return std::string(kNotCandidate);
  if (!x->per_tensor() || !Is8Bit(x->type)) return std::string("X is not per tensor u8/i8");
  std::vector<Tensor> args(n.inputs.size());
  for (size_t i = 1; i < n.inputs.size(); ++i) {
    if (!n.inputs[i].valid()) continue;
    std::optional<Tensor> c = ConstantValue(g_, n.inputs[i]);
    if (!c) return std::string("input " + std::to_string(i) + " is not constant");
    args[i] = *c;
  }
  std::string why;
  const auto out = MatchOutput(n, false, &why);
  if (!out) return why;
  const ElementType ot = out->q->type;
  const int opset = model_.opsets.count("") ? model_.opsets.at("") : n.opset;
  if (const auto b = ClampBounds(g_, n); b && x->SameAs(*out->q) && opset >= 12) {
    OutMatch clamp = *out;
    const ValueId lo = Scalar8(ot, QuantizeScalar(b->first, x->scales[0], x->zps[0], ot),
                               n.name + "_min_q");
    const ValueId hi = Scalar8(ot, QuantizeScalar(b->second, x->scales[0], x->zps[0], ot),
                               n.name + "_max_q");
    KILN_RETURN_IF_ERROR(Rewrite(id, "Clip", "", std::max(n.opset, 12), {}, {x->q, lo, hi}, clamp));
    return std::string();
  }
  // The table: DequantizeLinear -> the op -> QuantizeLinear on every integer, by the reference
  // kernels that run the float path, so the table holds exactly the float path's results.
  auto xf = DequantizedTable(*x);
  if (!xf.ok()) return "dequantizing the table failed: " + xf.status().message();
  args[0] = *xf;
  auto yf = RunNodeEager(n, args);
  if (!yf.ok()) return "running the op on the table failed: " + yf.status().message();
  if ((*yf)[0].shape() != Shape{256} || (*yf)[0].type() != ElementType::kF32) {
    return std::string("the op is not elementwise on f32");
  }
  auto yq = RunOpEager("QuantizeLinear", 13,
                       {(*yf)[0], ScaleTensor(*out->q), ZeroPointTensor(*out->q)}, 1);
  if (!yq.ok()) return "quantizing the table failed: " + yq.status().message();
  const ValueId table = e_.AddInitializer((n.name.empty() ? g_.value(n.outputs[0]).name : n.name) +
                                              "_table", (*yq)[0]);
  KILN_RETURN_IF_ERROR(Rewrite(id, "QLut", kKilnDomain, 1, {}, {x->q, table}, *out));
  return std::string();
}

// Binary elementwise ops a region may hold (IsLutOp gives the unary ones).
bool IsRegionBinary(const Node& n) {
  static const std::set<std::string> kOps = {"Add", "Sub", "Mul", "Div", "Max", "Min", "Pow"};
  return IsDefaultDomain(n) && kOps.count(n.op_type) > 0;
}

// DQ(x) -> a region of float elementwise nodes computing from x alone (other inputs scalar
// constants) -> Q(y), two or more nodes, values inside read only inside: one QLut whose table
// runs the region's nodes on the 256 dequantized values with the reference kernels, so it holds
// exactly the float path's results (one rounding, at the Q).
Result<std::string> Fuser::FuseRegion(NodeId q_id) {
  const QdqInfo* q = Info(q_id);
  if (q == nullptr || g_.node(q_id).op_type != "QuantizeLinear") return std::string(kNotCandidate);
  if (!q->per_tensor() || !Is8Bit(q->type)) return std::string(kNotCandidate);
  const ValueId y = g_.node(q_id).inputs[0];
  const NodeId last = g_.value(y).producer;
  if (!last.valid() || e_.removed(last) || e_.SoleReader(y) != q_id || g_.value(y).is_output)
    return std::string(kNotCandidate);
  // Walk back from y to the one DQ source.
  std::vector<NodeId> stack = {last};
  std::set<uint32_t> region;
  const QdqInfo* x = nullptr;
  int const_rank = 0;  // the highest rank of a (one-element) constant in the region
  while (!stack.empty()) {
    const NodeId id = stack.back();
    stack.pop_back();
    if (region.count(id.v)) continue;
    const Node& n = g_.node(id);
    if (e_.removed(id) || !IsDefaultDomain(n) || n.outputs.size() != 1 ||
        !(IsLutOp(n) || IsRegionBinary(n))) {
      return std::string(kNotCandidate);
    }
    region.insert(id.v);
    for (ValueId in : n.inputs) {
      if (!in.valid()) continue;
      if (auto c = ConstantValue(g_, in)) {
        if (c->size() != 1) return std::string(kNotCandidate);
        const_rank = std::max(const_rank, c->rank());
        continue;
      }
      if (const QdqInfo* d = Act(in)) {
        if (x != nullptr && x != d) return std::string(kNotCandidate);
        x = d;
        continue;
      }
      const NodeId p = g_.value(in).producer;
      if (!p.valid()) return std::string(kNotCandidate);
      stack.push_back(p);
    }
  }
  if (x == nullptr || region.size() < 2) return std::string(kNotCandidate);
  // Values inside are read only inside; y has x's shape.
  for (uint32_t id : region) {
    const ValueId v = g_.node(NodeId(id)).outputs[0];
    if (v == y) continue;
    if (g_.value(v).is_output) return std::string("a value inside the region is a graph output");
    size_t inside = 0;
    for (uint32_t r : region) {
      for (ValueId in : g_.node(NodeId(r)).inputs) inside += in == v ? 1 : 0;
    }
    if (inside != e_.ReaderCount(v)) return std::string("a value inside the region is read outside");
  }
  const ValueId xv = g_.node(x->node).outputs[0];
  const auto& xs = g_.value(xv).info.shape;
  const auto& ys = g_.value(y).info.shape;
  // Same shape: known equal, or no constant of rank above 1 to broadcast x into a higher rank.
  const bool same_shape = (xs && ys) ? *xs == *ys : const_rank <= 1 && (!xs || !xs->empty());
  if (!same_shape) return std::string("the region changes the shape");
  // The table: the region's nodes in topological order on the 256 dequantized values.
  KILN_ASSIGN_OR_RETURN(std::vector<NodeId> order, g_.TopologicalOrder());
  auto xf = DequantizedTable(*x);
  if (!xf.ok()) return "dequantizing the table failed: " + xf.status().message();
  std::map<uint32_t, Tensor> vals;
  vals.emplace(xv.v, *xf);
  for (NodeId id : order) {
    if (!region.count(id.v)) continue;
    const Node& n = g_.node(id);
    std::vector<Tensor> args(n.inputs.size());
    for (size_t i = 0; i < n.inputs.size(); ++i) {
      if (!n.inputs[i].valid()) continue;
      if (auto it = vals.find(n.inputs[i].v); it != vals.end()) {
        args[i] = it->second;
      } else {
        args[i] = *ConstantValue(g_, n.inputs[i]);
      }
    }
    auto r = RunNodeEager(n, args);
    if (!r.ok()) return "running " + n.Describe() + " on the table failed: " + r.status().message();
    if ((*r)[0].size() != 256 || (*r)[0].type() != ElementType::kF32)
      return n.Describe() + " is not elementwise on f32";
    vals[n.outputs[0].v] = (*r)[0].Reshaped({256});
  }
  auto yq = RunOpEager("QuantizeLinear", 13, {vals.at(y.v), ScaleTensor(*q), ZeroPointTensor(*q)},
                       1);
  if (!yq.ok()) return "quantizing the table failed: " + yq.status().message();
  const ValueId table = e_.AddInitializer(g_.value(y).name + "_table", (*yq)[0]);
  for (uint32_t id : region) {
    if (NodeId(id) == last) continue;
    for (ValueId in : g_.node(NodeId(id)).inputs) {
      if (in.valid()) touched_.insert(in.v);
    }
    e_.RemoveNode(NodeId(id));
  }
  for (ValueId in : g_.node(last).inputs) {
    if (in.valid()) touched_.insert(in.v);
  }
  OutMatch out;
  out.q = q;
  const std::string last_op = g_.node(last).op_type;
  KILN_RETURN_IF_ERROR(Rewrite(last, "QLut", kKilnDomain, 1, {}, {x->q, table}, out));
  fused_[last_op + " -> QLut"]--;
  if (fused_[last_op + " -> QLut"] == 0) fused_.erase(last_op + " -> QLut");
  fused_["elementwise region -> QLut"]++;
  // The DQ of x, when the region was its last reader.
  if (!e_.removed(x->node) && e_.ReaderCount(xv) == 0 && !g_.value(xv).is_output) {
    for (ValueId v : g_.node(x->node).inputs) {
      if (v.valid()) touched_.insert(v.v);
    }
    e_.RemoveNode(x->node);
  }
  return std::string();
}

Result<PassResult> Fuser::Run() {
  PassResult result;
  KILN_ASSIGN_OR_RETURN(std::vector<NodeId> order, g_.TopologicalOrder());
  // Elementwise regions first (their single nodes would otherwise be fused one by one).
  for (NodeId id : order) {
    if (e_.removed(id) || g_.node(id).op_type != "QuantizeLinear") continue;
    KILN_ASSIGN_OR_RETURN(std::string r, FuseRegion(id));
    if (r.empty()) {
      ++result.rewrites;
    } else if (r != kNotCandidate) {
      result.notes.push_back(g_.node(id).Describe() + ": region not fused: " + r);
    }
  }
  for (NodeId id : order) {
    if (e_.removed(id)) continue;
    const Node& n = g_.node(id);
    if (!IsDefaultDomain(n)) continue;
    const std::string desc = n.Describe();
    const std::string& op = n.op_type;
    Result<std::string> r = std::string(kNotCandidate);
    if (op == "Conv") {
      r = FuseConv(id);
    } else if (op == "MatMul") {
      r = FuseMatMul(id);
    } else if (op == "Gemm") {
      r = FuseGemm(id);
    } else if (op == "Add" || op == "Mul") {
      r = FuseBinary(id);
    } else if (op == "AveragePool" || op == "GlobalAveragePool") {
      r = FusePool(id);
    } else if (op == "MaxPool" || op == "Concat" || IsDataMovement(n)) {
      r = FuseSameScale(id);
    } else if (IsLutOp(n)) {
      r = FuseUnary(id);
    }
    if (!r.ok()) return r.status();
    if (r->empty()) {
      ++result.rewrites;
    } else if (*r != kNotCandidate) {
      result.notes.push_back(desc + " not fused: " + *r);
    }
  }
  for (uint32_t v : touched_) {
    const Value& val = g_.value(ValueId(v));
    if (val.kind == ValueKind::kInitializer && !val.is_output && e_.ReaderCount(ValueId(v)) == 0) {
      e_.RemoveInitializer(ValueId(v));
    }
  }
  KILN_RETURN_IF_ERROR(e_.Commit());
  if (kiln_ops_) model_.opsets[kKilnDomain] = 1;
  std::vector<std::string> head = {"fused " + std::to_string(result.rewrites) + " QDQ patterns"};
  for (const auto& [what, count] : fused_) head.push_back(what + ": " + std::to_string(count));
  result.notes.insert(result.notes.begin(), head.begin(), head.end());
  return result;
}

}  // namespace

bool HasQdq(const Graph& graph) {
  for (const Node& n : graph.nodes()) {
    if (IsDefaultDomain(n) &&
        (n.op_type == "QuantizeLinear" || n.op_type == "DequantizeLinear")) {
      return true;
    }
  }
  return false;
}

Result<PassResult> FuseQdqPass(Model& model) {
  PassResult empty;
  if (!HasQdq(model.graph)) {
    empty.notes.push_back("no QuantizeLinear/DequantizeLinear nodes");
    return empty;
  }
  Fuser f(model);
  KILN_ASSIGN_OR_RETURN(PassResult r, f.Run());
  r.name = "fuse-qdq";
  return r;
}

Result<int> FuseQdq(Model& model) {
  KILN_ASSIGN_OR_RETURN(PassResult r, FuseQdqPass(model));
  return r.rewrites;
}

}  // namespace kiln
