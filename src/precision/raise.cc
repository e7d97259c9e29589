#include "precision/raise.h"

#include <set>

#include "ir/shape_inference.h"

namespace kiln {
namespace {

constexpr int64_t kOnnxFloat = 1;
constexpr int64_t kOnnxFloat16 = 10;

Tensor ToF32(const Tensor& t) {
  if (t.type() != ElementType::kF16) return t;
  Tensor out = Tensor::Allocate(ElementType::kF32, t.shape()).value();
  const Half* src = t.data<Half>();
  float* dst = out.data<float>();
  for (int64_t i = 0; i < t.size(); ++i) dst[i] = static_cast<float>(src[i]);
  return out;
}

void RaiseAttrs(Node& n, const std::set<uint32_t>& keep_nodes, uint32_t id, RaiseReport& r);

// Raises every float16 value of `g` except those in `keep` (the main graph's inputs/outputs).
void RaiseGraph(Graph& g, const std::set<uint32_t>& keep_values,
                const std::set<uint32_t>& keep_nodes, RaiseReport& r) {
  for (uint32_t v = 0; v < g.num_values(); ++v) {
    if (keep_values.count(v)) continue;
    Value& val = g.value(ValueId(v));
    if (val.kind == ValueKind::kInitializer && val.initializer.type() == ElementType::kF16) {
      val.initializer = ToF32(val.initializer);
      ++r.initializers_raised;
    }
    if (val.info.type == ElementType::kF16) {
      val.info.type = ElementType::kF32;
      if (val.kind != ValueKind::kInitializer) ++r.values_raised;
    }
  }
  for (uint32_t id = 0; id < g.num_nodes(); ++id) {
    RaiseAttrs(g.node(NodeId(id)), keep_nodes, id, r);
  }
}

void RaiseAttrs(Node& n, const std::set<uint32_t>& keep_nodes, uint32_t id, RaiseReport& r) {
  if (keep_nodes.count(id)) return;
  for (Attribute& a : n.attrs.items()) {
    if (a.kind == Attribute::Kind::kTensor && a.t.type() == ElementType::kF16) {
      a.t = ToF32(a.t);
      ++r.initializers_raised;  // Constant values are weights too
    }
    if (a.kind == Attribute::Kind::kInt && a.i == kOnnxFloat16 &&
        ((a.name == "to" && n.op_type == "Cast") || a.name == "dtype")) {
      a.i = kOnnxFloat;
    }
    if (a.g) RaiseGraph(*a.g, {}, {}, r);
    for (auto& body : a.graphs) RaiseGraph(*body, {}, {}, r);
  }
}

Attributes CastTo(int64_t to) {
  Attributes attrs;
  attrs.Add(Attribute::Int("to", to));
  return attrs;
}

void ReplaceUses(Graph& g, ValueId from, ValueId to, NodeId except) {
  for (uint32_t id = 0; id < g.num_nodes(); ++id) {
    if (NodeId(id) == except) continue;
    for (ValueId& in : g.node(NodeId(id)).inputs) {
      if (in == from) in = to;
    }
  }
}

}  // namespace

Result<RaiseReport> RaiseToFloat32(Model& model) {
  Graph& g = model.graph;
  RaiseReport r;
  const int cast_opset = model.opsets.count("") ? model.opsets.at("") : 13;
  // Element types as inferred (intermediate values rarely declare theirs).
  std::vector<TypeInfo> types = DeclaredTypes(g);
  if (!InferShapes(g, types, InferShapesOptions{}).ok()) types = DeclaredTypes(g);
  auto is_f16 = [&](ValueId v) {
    return types[v.v].type == ElementType::kF16 || g.value(v).info.type == ElementType::kF16;
  };
  std::set<uint32_t> keep_values, keep_nodes;
  for (ValueId in : g.inputs()) {
    keep_values.insert(in.v);
    Value& val = g.value(in);
    if (!is_f16(in) || val.is_output) continue;
    ValueId raised = g.AddValue(val.name + "__kiln_f32", ElementType::kF32, g.value(in).info.shape);
    ReplaceUses(g, in, raised, NodeId());
    NodeId c = g.AddNode(g.value(in).name + "__kiln_raise", "Cast", {in}, {raised},
                         CastTo(kOnnxFloat), "", cast_opset);
    keep_nodes.insert(c.v);
    ++r.casts_inserted;
  }
  for (ValueId out : std::vector<ValueId>(g.outputs())) {
    keep_values.insert(out.v);
    Value& val = g.value(out);
    if (!is_f16(out) || val.kind != ValueKind::kIntermediate ||
        !val.producer.valid()) {
      continue;
    }
    const NodeId producer = val.producer;
    ValueId raised = g.AddValue(val.name + "__kiln_f32", ElementType::kF32, g.value(out).info.shape);
    ReplaceUses(g, out, raised, NodeId());
    for (ValueId& o : g.node(producer).outputs) {
      if (o == out) o = raised;
    }
    g.value(raised).producer = producer;
    g.value(out).info.type = ElementType::kF16;
    NodeId c = g.AddNode(g.value(out).name + "__kiln_lower", "Cast", {raised}, {out},
                         CastTo(kOnnxFloat16), "", cast_opset);
    keep_nodes.insert(c.v);
    ++r.casts_inserted;
  }
  RaiseGraph(g, keep_values, keep_nodes, r);
  return r;
}

}  // namespace kiln
