// Constant lookup, reader tracking and in-place editing with one compaction (graph_edit.h).
#include "passes/graph_edit.h"

#include <algorithm>

namespace kiln::passes {

std::optional<Tensor> ConstantValue(const Graph& g, ValueId v) {
  if (!v.valid()) return std::nullopt;
  const Value& val = g.value(v);
  if (val.kind == ValueKind::kInitializer) return val.initializer;
  if (!val.producer.valid()) return std::nullopt;
  const Node& n = g.node(val.producer);
  if (n.op_type != "Constant" || !IsDefaultDomain(n)) return std::nullopt;
  if (const Tensor* t = n.attrs.GetTensor("value")) return *t;
  if (const Attribute* a = n.attrs.Find("value_float"); a && a->kind == Attribute::Kind::kFloat) {
    return Tensor::FromVector(std::vector<float>{a->f}, {});
  }
  if (const Attribute* a = n.attrs.Find("value_floats"); a && a->kind == Attribute::Kind::kFloats) {
    return Tensor::FromVector(a->floats, {static_cast<int64_t>(a->floats.size())});
  }
  return std::nullopt;
}

bool IsDefaultDomain(const Node& node) { return node.domain.empty() || node.domain == "ai.onnx"; }

Result<Tensor> FloatTensorFromDoubles(ElementType type, const Shape& shape,
                                      const std::vector<double>& values) {
  if (!IsFloating(type)) {
    return InvalidArgument(std::string("expected a floating element type, got ") +
                           ElementTypeName(type));
  }
  KILN_ASSIGN_OR_RETURN(Tensor t, Tensor::Allocate(type, shape));
  if (static_cast<size_t>(t.size()) != values.size()) {
    return Internal("FloatTensorFromDoubles: " + std::to_string(values.size()) +
                    " values for shape " + ShapeToString(shape));
  }
  for (size_t i = 0; i < values.size(); ++i) {
    switch (type) {
      case ElementType::kF64:
        t.data<double>()[i] = values[i];
        break;
      case ElementType::kF32:
        t.data<float>()[i] = static_cast<float>(values[i]);
        break;
      case ElementType::kF16:
        t.data<Half>()[i] = static_cast<float>(values[i]);
        break;
      default:
        t.data<BFloat16>()[i] = static_cast<float>(values[i]);
        break;
    }
  }
  return t;
}

std::vector<double> ToDoubles(const Tensor& t) {
  std::vector<double> out(static_cast<size_t>(t.size()));
  for (int64_t i = 0; i < t.size(); ++i) out[static_cast<size_t>(i)] = t.GetAsDouble(i);
  return out;
}

bool IsConvolution(const Node& node) {
  return (node.op_type == "Conv" || node.op_type == "ConvTranspose") && IsDefaultDomain(node);
}

std::optional<int64_t> ConvOutputChannels(const Node& conv, const TypeInfo& weight) {
  if (!weight.has_static_shape()) return std::nullopt;
  const Shape w = weight.static_shape();
  const int64_t group = conv.attrs.GetInt("group", 1);
  if (w.size() < 3 || group < 1) return std::nullopt;
  if (conv.op_type == "Conv") {
    if (w[0] % group != 0) return std::nullopt;
    return w[0];
  }
  if (w[0] % group != 0) return std::nullopt;
  return w[1] * group;
}

GraphEditor::GraphEditor(Graph& graph)
    : graph_(graph),
      removed_nodes_(graph.num_nodes(), false),
      removed_values_(graph.num_values(), false),
      readers_(graph.num_values()),
      captures_(graph.num_values(), 0) {
  for (uint32_t i = 0; i < graph.num_nodes(); ++i) {
    const Node& n = graph.node(NodeId(i));
    for (ValueId in : n.inputs) {
      if (in.valid()) readers_[in.v].push_back(NodeId(i));
    }
    for (ValueId v : graph.ImplicitInputs(n)) ++captures_[v.v];
  }
  CollectNames(graph);
}

void GraphEditor::CollectNames(const Graph& g) {
  for (const Value& v : g.values()) names_.insert(v.name);
  for (const Node& n : g.nodes()) {
    for (const Attribute& a : n.attrs.items()) {
      if (a.g) CollectNames(*a.g);
      for (const auto& body : a.graphs) CollectNames(*body);
    }
  }
}

std::optional<NodeId> GraphEditor::SoleReader(ValueId v) const {
  if (!v.valid() || v.v >= readers_.size()) return std::nullopt;
  if (graph_.value(v).is_output || captures_[v.v] > 0 || readers_[v.v].size() != 1) {
    return std::nullopt;
  }
  return readers_[v.v][0];
}

size_t GraphEditor::ReaderCount(ValueId v) const {
  if (!v.valid() || v.v >= readers_.size()) return 0;
  return readers_[v.v].size() + static_cast<size_t>(captures_[v.v]);
}

void GraphEditor::SetInput(NodeId n, size_t slot, ValueId v) {
  Node& node = graph_.node(n);
  if (slot >= node.inputs.size()) node.inputs.resize(slot + 1, ValueId());
  ValueId old = node.inputs[slot];
  if (old.valid()) {
    auto& r = readers_[old.v];
    auto it = std::find(r.begin(), r.end(), n);
    if (it != r.end()) r.erase(it);
  }
  node.inputs[slot] = v;
  if (v.valid()) readers_[v.v].push_back(n);
}

void GraphEditor::MoveOutput(NodeId n, size_t slot, ValueId v) {
  Node& node = graph_.node(n);
  ValueId old = node.outputs[slot];
  if (old.valid()) graph_.value(old).producer = NodeId();
  node.outputs[slot] = v;
  graph_.value(v).producer = n;
}

void GraphEditor::RemoveNode(NodeId n) {
  if (removed_nodes_[n.v]) return;
  removed_nodes_[n.v] = true;
  const Node& node = graph_.node(n);
  for (ValueId in : node.inputs) {
    if (!in.valid()) continue;
    auto& r = readers_[in.v];
    auto it = std::find(r.begin(), r.end(), n);
    if (it != r.end()) r.erase(it);
  }
  for (ValueId v : graph_.ImplicitInputs(node)) --captures_[v.v];
}

void GraphEditor::RemoveInitializer(ValueId v) { removed_values_[v.v] = true; }

ValueId GraphEditor::AddInitializer(const std::string& base, Tensor data) {
  std::string name = base;
  for (int i = 1; names_.count(name); ++i) name = base + "_" + std::to_string(i);
  names_.insert(name);
  ValueId id = graph_.AddInitializer(name, std::move(data));
  readers_.emplace_back();
  captures_.push_back(0);
  removed_values_.push_back(false);
  return id;
}

Status GraphEditor::Commit() {
  Graph& src = graph_;
  const size_t nv = src.num_values();
  std::vector<bool> keep(nv, false);
  for (uint32_t i = 0; i < src.num_nodes(); ++i) {
    if (removed_nodes_[i]) continue;
    const Node& n = src.node(NodeId(i));
    for (ValueId v : n.inputs) {
      if (!v.valid()) continue;
      if (removed_values_[v.v]) {
        return Internal("value '" + src.value(v).name + "' was removed but " + n.Describe() +
                        " still reads it");
      }
      const Value& val = src.value(v);
      if (val.producer.valid() && removed_nodes_[val.producer.v]) {
        return Internal("node " + src.node(val.producer).Describe() + " was removed but " +
                        n.Describe() + " still reads its output '" + val.name + "'");
      }
      keep[v.v] = true;
    }
    for (ValueId v : n.outputs) {
      if (v.valid()) keep[v.v] = true;
    }
    for (ValueId v : src.ImplicitInputs(n)) keep[v.v] = true;
  }
  for (uint32_t i = 0; i < nv; ++i) {
    const Value& v = src.value(ValueId(i));
    if (v.is_output && v.producer.valid() && removed_nodes_[v.producer.v]) {
      return Internal("node " + src.node(v.producer).Describe() +
                      " was removed but produces graph output '" + v.name + "'");
    }
    const bool structural = v.kind == ValueKind::kInput || v.kind == ValueKind::kOuterScope ||
                            v.is_output ||
                            (v.kind == ValueKind::kInitializer && !removed_values_[i]);
    if (structural) keep[i] = true;
  }

  Graph dst;
  dst.name = std::move(src.name);
  std::vector<ValueId> map(nv);
  for (uint32_t i = 0; i < nv; ++i) {
    if (!keep[i]) continue;
    Value& v = src.value(ValueId(i));
    ValueId id = dst.AddValue(v.name);
    Value& d = dst.value(id);
    d = std::move(v);
    d.producer = NodeId();
    d.is_output = false;
    map[i] = id;
  }
  auto remap = [&](std::vector<ValueId> ids) {
    for (ValueId& v : ids) {
      if (v.valid()) v = map[v.v];
    }
    return ids;
  };
  for (uint32_t i = 0; i < src.num_nodes(); ++i) {
    if (removed_nodes_[i]) continue;
    Node& n = src.node(NodeId(i));
    dst.AddNode(std::move(n.name), std::move(n.op_type), remap(n.inputs), remap(n.outputs),
                std::move(n.attrs), std::move(n.domain), n.opset);
  }
  for (ValueId v : src.inputs()) dst.MarkInput(map[v.v]);
  for (ValueId v : src.outputs()) dst.MarkOutput(map[v.v]);
  graph_ = std::move(dst);
  return Status::Ok();
}

}  // namespace kiln::passes
