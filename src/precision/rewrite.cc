// The graph rewrite of precision conversion (see precision_convert.h for the rules).
//
// Plan, then emit. Plan: which nodes are converted; what precision each input slot wants; the
// "main" precision of every float32 value (produced by a converted node: f16; graph input: the
// io precision; initializer or Constant: f16 only when every reader wants f16). Emit: a fresh
// graph in topological order where every slot reads the value at the precision it wants: the
// main version, or an alternative made once (a Cast, or for constants an f16/f32 copy).
#include <cmath>
#include <unordered_map>
#include <unordered_set>

#include "core/tensor_compare.h"
#include "precision/internal.h"

namespace kiln::precision_internal {
namespace {

enum class Prec : uint8_t { kNone, kF16, kF32 };

constexpr int kOnnxFloat = 1;
constexpr int kOnnxFloat16 = 10;

ElementType TypeOf(Prec p) { return p == Prec::kF16 ? ElementType::kF16 : ElementType::kF32; }
const char* Suffix(Prec p) { return p == Prec::kF16 ? "_fp16" : "_fp32"; }

bool IsConstantNode(const Node& n) { return n.op_type == "Constant" && n.domain.empty(); }

class Rewriter {
 public:
  Rewriter(const Graph& src, const std::set<std::string>& keep, bool convert, bool io_f16,
           int cast_opset, RewriteStats* stats,
           const std::unordered_map<std::string, ElementType>* outer)
      : src_(src), keep_(keep), convert_(convert), io_f16_(io_f16), cast_opset_(cast_opset),
        stats_(stats), outer_(outer) {}

  Result<Graph> Run();

 private:
  bool IsF32(ValueId v) const { return v.valid() && src_.value(v).info.type == ElementType::kF32; }
  bool IsConstantSource(ValueId v) const {
    const Value& val = src_.value(v);
    if (val.kind == ValueKind::kInitializer) return true;
    return val.producer.valid() && IsConstantNode(src_.node(val.producer));
  }
  Prec Want(NodeId n, size_t slot) const {
    const Node& node = src_.node(n);
    if (!IsF32(node.inputs[slot])) return Prec::kNone;
    return conv_[n.v] && !FixedFloatInput(node, slot) ? Prec::kF16 : Prec::kF32;
  }
  std::string Unique(const std::string& base) {
    std::string name = base;
    for (int i = 1; names_.count(name); ++i) name = base + "_" + std::to_string(i);
    names_.insert(name);
    return name;
  }
  ValueId Get(ValueId v, Prec want, const std::string& consumer);
  Result<Attributes> ConvertAttrs(const Node& node, bool to_f16);
  Result<std::shared_ptr<Graph>> RewriteBody(const Graph& body, bool node_converted);

  const Graph& src_;
  const std::set<std::string>& keep_;
  bool convert_, io_f16_;
  int cast_opset_;
  RewriteStats* stats_;
  const std::unordered_map<std::string, ElementType>* outer_;

  Graph dst_;
  std::vector<bool> conv_;       // per src node
  std::vector<Prec> main_prec_;  // per src value (kNone: not float32)
  std::vector<ValueId> main_;    // per src value: its main version in dst
  std::vector<ValueId> out_cast_;  // per src value: the io-typed output made by a Cast
  std::map<std::pair<uint32_t, Prec>, ValueId> alt_;
  std::map<uint32_t, std::string> alt_cast_node_;  // dst value -> Cast node making it
  std::unordered_set<std::string> names_;
};

ValueId Rewriter::Get(ValueId v, Prec want, const std::string& consumer) {
  if (!v.valid() || want == Prec::kNone || want == main_prec_[v.v]) return v.valid() ? main_[v.v] : v;
  auto key = std::make_pair(v.v, want);
  auto it = alt_.find(key);
  if (it != alt_.end()) {
    auto c = alt_cast_node_.find(it->second.v);
    if (c != alt_cast_node_.end() && stats_) stats_->cast_consumers[c->second].push_back(consumer);
    return it->second;
  }
  const Value& val = src_.value(v);
  const std::string name = Unique(val.name + Suffix(want));
  ValueId out;
  if (val.kind == ValueKind::kInitializer) {
    out = dst_.AddInitializer(name, want == Prec::kF16 ? ToF16(val.initializer) : val.initializer);
    if (stats_ && want == Prec::kF16) ++stats_->initializers;
  } else if (IsConstantSource(v)) {
    const Node& c = src_.node(val.producer);
    out = dst_.AddValue(name, TypeOf(want), val.info.shape);
    Attributes attrs = ConvertAttrs(c, want == Prec::kF16).value();  // Constant: no bodies
    dst_.AddNode(Unique(c.name + Suffix(want)), "Constant", {}, {out}, std::move(attrs), "",
                 c.opset);
    if (stats_ && want == Prec::kF16) ++stats_->initializers;
  } else {
    out = dst_.AddValue(name, TypeOf(want), val.info.shape);
    Attributes attrs;
    Attribute to;
    to.name = "to";
    to.kind = Attribute::Kind::kInt;
    to.i = want == Prec::kF16 ? kOnnxFloat16 : kOnnxFloat;
    attrs.Add(to);
    const std::string node_name = Unique(val.name + "_cast" + Suffix(want));
    dst_.AddNode(node_name, "Cast", {main_[v.v]}, {out}, std::move(attrs), "", cast_opset_);
    alt_cast_node_[out.v] = node_name;
    if (stats_) {
      ++stats_->casts;
      stats_->cast_consumers[node_name].push_back(consumer);
    }
  }
  alt_[key] = out;
  return out;
}

Result<Attributes> Rewriter::ConvertAttrs(const Node& node, bool to_f16) {
  Attributes out;
  for (const Attribute& a : node.attrs.items()) {
    Attribute b = a;
    if (to_f16) {
      if (a.kind == Attribute::Kind::kTensor && a.t.type() == ElementType::kF32 &&
          (node.op_type == "Constant" || node.op_type == "ConstantOfShape")) {
        b.t = ToF16(a.t);
      } else if (node.op_type == "Constant" &&
                 (a.name == "value_float" || a.name == "value_floats")) {
        const bool scalar = a.name == "value_float";
        std::vector<float> vals = scalar ? std::vector<float>{a.f} : a.floats;
        b = Attribute();
        b.name = "value";
        b.kind = Attribute::Kind::kTensor;
        Shape shape = scalar ? Shape{} : Shape{static_cast<int64_t>(vals.size())};
        b.t = ToF16(Tensor::FromVector(vals, shape));
      } else if ((a.name == "to" && node.op_type == "Cast") || a.name == "dtype") {
        if (a.kind == Attribute::Kind::kInt && a.i == kOnnxFloat) b.i = kOnnxFloat16;
      }
    }
    if (a.g) {
      KILN_ASSIGN_OR_RETURN(b.g, RewriteBody(*a.g, to_f16));
    }
    for (size_t i = 0; i < a.graphs.size(); ++i) {
      KILN_ASSIGN_OR_RETURN(b.graphs[i], RewriteBody(*a.graphs[i], to_f16));
    }
    out.Add(std::move(b));
  }
  if (to_f16 && node.op_type == "ConstantOfShape" && !node.attrs.Has("value")) {
    Attribute v;  // the default value is a float32 zero: make it explicit in f16
    v.name = "value";
    v.kind = Attribute::Kind::kTensor;
    v.t = ToF16(Tensor::FromVector(std::vector<float>{0.f}, {1}));
    out.Add(std::move(v));
  }
  return out;
}

Result<std::shared_ptr<Graph>> Rewriter::RewriteBody(const Graph& body, bool node_converted) {
  // What the body sees of this graph, by name: types as emitted so far plus outer scopes.
  std::unordered_map<std::string, ElementType> visible;
  if (outer_) visible = *outer_;
  for (const Value& v : dst_.values()) {
    if (!v.name.empty()) visible[v.name] = v.info.type;
  }
  for (uint32_t i = 0; i < out_cast_.size(); ++i) {
    if (out_cast_[i].valid()) visible[src_.value(ValueId(i)).name] = dst_.value(out_cast_[i]).info.type;
  }
  Rewriter sub(body, keep_, convert_ && node_converted, node_converted, cast_opset_, stats_,
               &visible);
  KILN_ASSIGN_OR_RETURN(Graph g, sub.Run());
  return std::make_shared<Graph>(std::move(g));
}

Result<Graph> Rewriter::Run() {
  dst_.name = src_.name;
  const size_t nv = src_.num_values(), nn = src_.num_nodes();
  for (const Value& v : src_.values()) names_.insert(v.name);
  for (const Node& n : src_.nodes()) names_.insert(n.name);
  if (outer_) {
    for (const auto& [name, type] : *outer_) names_.insert(name);
  }
  KILN_ASSIGN_OR_RETURN(std::vector<NodeId> order, src_.TopologicalOrder());

  conv_.assign(nn, false);
  for (uint32_t i = 0; i < nn; ++i) {
    const Node& n = src_.node(NodeId(i));
    conv_[i] = convert_ && ConvertibleOp(n) && !keep_.count(n.name);
  }
  // Wants of each value's readers (and of the graph outputs).
  const Prec io = convert_ && io_f16_ ? Prec::kF16 : Prec::kF32;
  std::vector<uint8_t> wants(nv, 0);  // bit 1: f16, bit 2: f32
  auto add_want = [&](ValueId v, Prec p) {
    if (v.valid() && p != Prec::kNone) wants[v.v] |= p == Prec::kF16 ? 1 : 2;
  };
  for (uint32_t i = 0; i < nn; ++i) {
    const Node& n = src_.node(NodeId(i));
    for (size_t s = 0; s < n.inputs.size(); ++s) add_want(n.inputs[s], Want(NodeId(i), s));
  }
  for (ValueId o : src_.outputs()) {
    if (IsF32(o)) add_want(o, io);
  }
  main_prec_.assign(nv, Prec::kNone);
  for (uint32_t i = 0; i < nv; ++i) {
    const ValueId id(i);
    if (!IsF32(id)) continue;
    const Value& v = src_.value(id);
    Prec p = Prec::kF32;
    if (v.kind == ValueKind::kInput) {
      p = io;
    } else if (v.kind == ValueKind::kOuterScope) {
      if (outer_) {
        auto it = outer_->find(v.name);
        if (it != outer_->end() && it->second == ElementType::kF16) p = Prec::kF16;
      }
    } else if (IsConstantSource(id)) {
      p = convert_ && wants[i] == 1 ? Prec::kF16 : Prec::kF32;
    } else if (v.producer.valid()) {
      const Node& n = src_.node(v.producer);
      size_t slot = 0;
      while (slot < n.outputs.size() && n.outputs[slot] != id) ++slot;
      p = conv_[v.producer.v] && !FixedFloatOutput(n, slot) ? Prec::kF16 : Prec::kF32;
    }
    main_prec_[i] = p;
  }
  // Values: graph outputs whose main precision differs from the io precision get a Cast that
  // takes the output's name; the main version is renamed.
  main_.assign(nv, ValueId());
  out_cast_.assign(nv, ValueId());
  std::vector<bool> renamed(nv, false);
  for (ValueId o : src_.outputs()) {
    if (IsF32(o) && main_prec_[o.v] != io && src_.value(o).kind != ValueKind::kInput) renamed[o.v] = true;
  }
  for (uint32_t i = 0; i < nv; ++i) {
    const Value& v = src_.value(ValueId(i));
    const std::string name = renamed[i] ? Unique(v.name + Suffix(main_prec_[i])) : v.name;
    const bool to_f16 = main_prec_[i] == Prec::kF16;
    ValueId id;
    if (v.kind == ValueKind::kInitializer) {
      id = dst_.AddInitializer(name, to_f16 ? ToF16(v.initializer) : v.initializer);
      if (to_f16 && stats_) ++stats_->initializers;
    } else {
      id = dst_.AddValue(name, to_f16 ? ElementType::kF16 : v.info.type, v.info.shape);
      if (v.kind == ValueKind::kOuterScope) dst_.value(id).kind = ValueKind::kOuterScope;
    }
    dst_.value(id).quant = v.quant;
    main_[i] = id;
    if (renamed[i]) out_cast_[i] = dst_.AddValue(v.name, TypeOf(io), v.info.shape);
  }
  for (ValueId in : src_.inputs()) dst_.MarkInput(main_[in.v]);

  for (NodeId nid : order) {
    const Node& n = src_.node(nid);
    const bool is_const = IsConstantNode(n);
    // A Constant is emitted at its main precision; copies are made on demand by Get.
    const bool to_f16 = is_const ? (!n.outputs.empty() && n.outputs[0].valid() &&
                                    main_prec_[n.outputs[0].v] == Prec::kF16)
                                 : conv_[nid.v];
    std::vector<ValueId> ins;
    for (size_t s = 0; s < n.inputs.size(); ++s) ins.push_back(Get(n.inputs[s], Want(nid, s), n.name));
    std::vector<ValueId> outs;
    bool touches_f32 = false;
    for (ValueId o : n.outputs) {
      outs.push_back(o.valid() ? main_[o.v] : o);
      touches_f32 |= IsF32(o);
    }
    for (ValueId i : n.inputs) touches_f32 |= IsF32(i);
    KILN_ASSIGN_OR_RETURN(Attributes attrs, ConvertAttrs(n, to_f16));
    dst_.AddNode(n.name, n.op_type, std::move(ins), std::move(outs), std::move(attrs), n.domain,
                 n.opset);
    if (to_f16 && (touches_f32 || HasSubgraph(n)) && stats_ && !is_const) ++stats_->converted[n.op_type];
  }
  for (ValueId o : src_.outputs()) {
    if (!out_cast_[o.v].valid()) continue;
    Attributes attrs;
    Attribute to;
    to.name = "to";
    to.kind = Attribute::Kind::kInt;
    to.i = io == Prec::kF16 ? kOnnxFloat16 : kOnnxFloat;
    attrs.Add(to);
    const std::string node_name = Unique(src_.value(o).name + "_cast" + Suffix(io));
    dst_.AddNode(node_name, "Cast", {main_[o.v]}, {out_cast_[o.v]}, std::move(attrs), "",
                 cast_opset_);
    if (stats_) ++stats_->casts;
  }
  for (ValueId o : src_.outputs()) dst_.MarkOutput(out_cast_[o.v].valid() ? out_cast_[o.v] : main_[o.v]);
  return std::move(dst_);
}

}  // namespace

Result<Graph> RewriteGraph(const Graph& src, const std::set<std::string>& keep, bool convert,
                           bool io_f16, int cast_opset, RewriteStats* stats) {
  Rewriter r(src, keep, convert, io_f16, cast_opset, stats, nullptr);
  return r.Run();
}

bool FixedFloatInput(const Node& n, size_t slot) {
  const std::string& op = n.op_type;
  if (op == "Resize") return slot >= 1;  // roi, scales (sizes are int64)
  if (op == "Upsample") return slot == 1;
  if (op == "Dropout") return slot == 1;  // ratio
  if (op == "NonMaxSuppression" || op == "QuantizeLinear" || op == "DynamicQuantizeLinear") return true;
  if (op == "QLinearConv" || op == "QLinearMatMul") return true;
  return false;
}

bool FixedFloatOutput(const Node& n, size_t slot) {
  const std::string& op = n.op_type;
  if (op == "DequantizeLinear" || op == "DynamicQuantizeLinear") return true;
  if (op == "LayerNormalization") return slot >= 1;  // Mean, InvStdDev follow stash_type
  return false;
}

bool ConvertibleOp(const Node& n) {
  if (!(n.domain.empty() || n.domain == "ai.onnx")) return false;
  return !(n.op_type == "NonMaxSuppression" || n.op_type == "QuantizeLinear" ||
           n.op_type == "DequantizeLinear" || n.op_type == "DynamicQuantizeLinear" ||
           n.op_type == "QLinearConv" || n.op_type == "QLinearMatMul");
}

bool HasSubgraph(const Node& n) {
  for (const Attribute& a : n.attrs.items()) {
    if (a.g || !a.graphs.empty()) return true;
  }
  return false;
}

Tensor ToF16(const Tensor& t) {
  if (t.type() != ElementType::kF32) return t;
  Tensor out = Tensor::Allocate(ElementType::kF16, t.shape()).value();
  const float* s = t.data<float>();
  Half* d = out.data<Half>();
  for (int64_t i = 0; i < t.size(); ++i) d[i] = s[i];
  return out;
}

bool AllFinite(const Tensor& t) {
  if (!IsFloating(t.type())) return true;
  for (int64_t i = 0; i < t.size(); ++i) {
    if (!std::isfinite(t.GetAsDouble(i))) return false;
  }
  return true;
}

double RelError(const Tensor& a, const Tensor& b) {
  // Non-finite candidates count as unbounded error; otherwise ||a-b|| / ||b||.
  for (int64_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a.GetAsDouble(i))) return INFINITY;
  }
  auto err = RelativeL2Error(a, b);
  return err.ok() ? *err : INFINITY;
}

}  // namespace kiln::precision_internal
