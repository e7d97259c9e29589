#include "ir/graph.h"

#include <algorithm>
#include <set>

namespace kiln {

std::string Dim::ToString() const {
  if (value >= 0) return std::to_string(value);
  return symbol.empty() ? "?" : symbol;
}

bool TypeInfo::has_static_shape() const {
  if (!shape || kind != TensorKind::kTensor) return false;
  return std::all_of(shape->begin(), shape->end(), [](const Dim& d) { return d.is_static(); });
}

Shape TypeInfo::static_shape() const {
  Shape s;
  for (const Dim& d : *shape) s.push_back(d.value);
  return s;
}

TypeInfo TypeInfoOf(const Tensor& t) {
  TypeInfo info;
  info.type = t.type();
  info.kind = t.kind();
  if (t.is_tensor()) {
    info.shape = DimVector(t.shape().begin(), t.shape().end());
  } else if (t.is_optional()) {
    info.of_sequence = t.optional_of_sequence();
    if (t.has_element() && t.items()[0].is_tensor()) {
      const Shape& s = t.items()[0].shape();
      info.shape = DimVector(s.begin(), s.end());
    }
  }
  return info;
}

std::string TypeInfo::ToString() const {
  if (kind != TensorKind::kTensor) {
    TypeInfo inner = *this;
    inner.kind = TensorKind::kTensor;
    const std::string t = inner.ToString();
    if (kind == TensorKind::kSequence) return "seq(" + t + ")";
    return of_sequence ? "optional(seq(" + t + "))" : "optional(" + t + ")";
  }
  if (type == ElementType::kUndefined && !shape) return "?";
  std::string s = type == ElementType::kUndefined ? "?" : ElementTypeName(type);
  if (!shape) return s + "[*]";
  s += "[";
  for (size_t i = 0; i < shape->size(); ++i) {
    if (i) s += ",";
    s += (*shape)[i].ToString();
  }
  return s + "]";
}

std::string Node::Describe() const {
  std::string s = op_type;
  if (!domain.empty()) s = domain + "." + s;
  return s + " '" + name + "'";
}

ValueId Graph::AddValue(std::string value_name, ElementType type, std::optional<DimVector> shape) {
  ValueId id(static_cast<uint32_t>(values_.size()));
  Value v;
  v.name = std::move(value_name);
  v.info.type = type;
  v.info.shape = std::move(shape);
  if (!v.name.empty()) by_name_[v.name] = id;
  values_.push_back(std::move(v));
  return id;
}

ValueId Graph::AddInitializer(std::string value_name, Tensor data) {
  DimVector dims(data.shape().begin(), data.shape().end());
  ValueId id = AddValue(std::move(value_name), data.type(), std::move(dims));
  values_[id.v].kind = ValueKind::kInitializer;
  values_[id.v].initializer = std::move(data);
  return id;
}

NodeId Graph::AddNode(std::string node_name, std::string op_type, std::vector<ValueId> inputs,
                      std::vector<ValueId> outputs, Attributes attrs, std::string domain,
                      int opset) {
  NodeId id(static_cast<uint32_t>(nodes_.size()));
  for (ValueId o : outputs) {
    if (o.valid()) values_[o.v].producer = id;
  }
  Node n;
  n.name = std::move(node_name);
  n.op_type = std::move(op_type);
  n.domain = std::move(domain);
  n.opset = opset;
  n.inputs = std::move(inputs);
  n.outputs = std::move(outputs);
  n.attrs = std::move(attrs);
  nodes_.push_back(std::move(n));
  return id;
}

void Graph::MarkInput(ValueId v) {
  values_[v.v].kind = ValueKind::kInput;
  inputs_.push_back(v);
}

void Graph::MarkOutput(ValueId v) {
  values_[v.v].is_output = true;
  outputs_.push_back(v);
}

std::vector<ValueId> Graph::OuterScopeValues() const {
  std::vector<ValueId> out;
  for (uint32_t i = 0; i < values_.size(); ++i) {
    if (values_[i].kind == ValueKind::kOuterScope) out.push_back(ValueId(i));
  }
  return out;
}

std::optional<ValueId> Graph::FindValue(const std::string& value_name) const {
  auto it = by_name_.find(value_name);
  if (it == by_name_.end()) return std::nullopt;
  return it->second;
}

namespace {
void CollectOuterNames(const Graph& g, std::set<std::string>& names) {
  for (const Value& v : g.values()) {
    if (v.kind == ValueKind::kOuterScope) names.insert(v.name);
  }
  for (const Node& n : g.nodes()) {
    for (const Attribute& a : n.attrs.items()) {
      if (a.g) CollectOuterNames(*a.g, names);
      for (const auto& sub : a.graphs) CollectOuterNames(*sub, names);
    }
  }
}
}  // namespace

std::vector<ValueId> Graph::ImplicitInputs(const Node& n) const {
  std::set<std::string> names;
  for (const Attribute& a : n.attrs.items()) {
    if (a.g) CollectOuterNames(*a.g, names);
    for (const auto& sub : a.graphs) CollectOuterNames(*sub, names);
  }
  std::vector<ValueId> out;
  for (const std::string& name : names) {
    if (auto v = FindValue(name)) out.push_back(*v);
  }
  return out;
}

Result<std::vector<NodeId>> Graph::TopologicalOrder() const {
  // Kahn's algorithm, stable: among ready nodes the one listed first in the file goes first.
  const size_t n = nodes_.size();
  std::vector<int> missing(n, 0);
  std::vector<std::vector<uint32_t>> consumers(values_.size());
  for (uint32_t i = 0; i < n; ++i) {
    std::vector<ValueId> inputs = nodes_[i].inputs;
    for (ValueId v : ImplicitInputs(nodes_[i])) inputs.push_back(v);
    for (ValueId in : inputs) {
      if (!in.valid()) continue;
      if (values_[in.v].producer.valid()) {
        ++missing[i];
        consumers[in.v].push_back(i);
      }
    }
  }
  std::vector<NodeId> order;
  order.reserve(n);
  std::vector<uint32_t> ready;
  for (uint32_t i = 0; i < n; ++i) {
    if (missing[i] == 0) ready.push_back(i);
  }
  // Min-heap over node index keeps the original order where the graph allows it.
  std::make_heap(ready.begin(), ready.end(), std::greater<>());
  while (!ready.empty()) {
    std::pop_heap(ready.begin(), ready.end(), std::greater<>());
    uint32_t i = ready.back();
    ready.pop_back();
    order.push_back(NodeId(i));
    for (ValueId out : nodes_[i].outputs) {
      if (!out.valid()) continue;
      for (uint32_t c : consumers[out.v]) {
        if (--missing[c] == 0) {
          ready.push_back(c);
          std::push_heap(ready.begin(), ready.end(), std::greater<>());
        }
      }
    }
  }
  if (order.size() != n) {
    for (uint32_t i = 0; i < n; ++i) {
      if (missing[i] > 0) {
        return InvalidArgument("graph '" + name + "' has a cycle through node " +
                               nodes_[i].Describe());
      }
    }
  }
  return order;
}

const char* ModelTypeName(ModelType t) { return t == ModelType::kNetwork ? "network" : "program"; }

Result<ModelType> ParseModelType(const std::string& s) {
  if (s == "program") return ModelType::kProgram;
  if (s == "network") return ModelType::kNetwork;
  return InvalidArgument("model type '" + s + "': expected program or network");
}

Result<ModelType> Model::model_type() const {
  auto it = metadata.find("kiln.model_type");
  if (it == metadata.end()) return ModelType::kProgram;
  auto t = ParseModelType(it->second);
  if (!t.ok()) return InvalidArgument("metadata kiln.model_type: " + t.status().message());
  return t;
}

namespace {

void CollectNodeNames(const Graph& g, std::set<std::string>& names) {
  for (const Node& n : g.nodes()) {
    if (!n.name.empty()) names.insert(n.name);
    for (const Attribute& a : n.attrs.items()) {
      if (a.g) CollectNodeNames(*a.g, names);
      for (const auto& sub : a.graphs) CollectNodeNames(*sub, names);
    }
  }
}

void NameNodes(Graph& g, std::set<std::string>& used, std::set<std::string>& seen, int& counter) {
  for (uint32_t i = 0; i < g.num_nodes(); ++i) {
    Node& n = g.node(NodeId(i));
    if (n.name.empty() || seen.count(n.name)) {
      std::string name;
      do {
        name = n.op_type + "_" + std::to_string(counter++);
      } while (used.count(name));
      n.name = name;
      used.insert(name);
    }
    seen.insert(n.name);
    for (Attribute& a : n.attrs.items()) {
      if (a.g) NameNodes(*a.g, used, seen, counter);
      for (auto& sub : a.graphs) NameNodes(*sub, used, seen, counter);
    }
  }
}

}  // namespace

void NameUnnamedNodes(Graph& graph) {
  std::set<std::string> used, seen;
  CollectNodeNames(graph, used);
  int counter = 0;
  NameNodes(graph, used, seen, counter);
}

Model WithGraph(const Model& model, Graph graph) {
  Model m;
  m.graph = std::move(graph);
  m.opsets = model.opsets;
  m.ir_version = model.ir_version;
  m.producer_name = model.producer_name;
  m.producer_version = model.producer_version;
  m.metadata = model.metadata;
  m.path = model.path;
  return m;
}

void CopyValues(const Graph& src, Graph& dst) {
  for (uint32_t i = 0; i < src.num_values(); ++i) {
    const Value& v = src.value(ValueId(i));
    ValueId id = dst.AddValue(v.name, v.info.type, v.info.shape);
    Value& d = dst.value(id);
    d.kind = v.kind;
    d.quant = v.quant;
    d.initializer = v.initializer;
  }
}

Model CopyModel(const Model& model) {
  const Graph& src = model.graph;
  Graph g;
  g.name = src.name;
  CopyValues(src, g);
  for (const Node& n : src.nodes()) {
    g.AddNode(n.name, n.op_type, n.inputs, n.outputs, n.attrs, n.domain, n.opset);
  }
  for (ValueId in : src.inputs()) g.MarkInput(in);
  for (ValueId out : src.outputs()) g.MarkOutput(out);
  return WithGraph(model, std::move(g));
}

}  // namespace kiln
