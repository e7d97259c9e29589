#include "ir/printer.h"

#include <sstream>

namespace kiln {
namespace {

template <typename T>
std::string List(const std::vector<T>& v, size_t max = 16) {
  std::ostringstream s;
  s << "[";
  for (size_t i = 0; i < v.size() && i < max; ++i) s << (i ? "," : "") << v[i];
  if (v.size() > max) s << ",...";
  s << "]";
  return s.str();
}

std::string AttributeText(const Attribute& a) {
  switch (a.kind) {
    case Attribute::Kind::kFloat: { std::ostringstream s; s << a.f; return s.str(); }
    case Attribute::Kind::kInt: return std::to_string(a.i);
    case Attribute::Kind::kString: return "\"" + a.s + "\"";
    case Attribute::Kind::kTensor: return "tensor " + a.t.Describe();
    case Attribute::Kind::kGraph: return "graph '" + a.g->name + "'";
    case Attribute::Kind::kFloats: return List(a.floats);
    case Attribute::Kind::kInts: return List(a.ints);
    case Attribute::Kind::kStrings: return List(a.strings);
    case Attribute::Kind::kTensors: return std::to_string(a.tensors.size()) + " tensors";
    case Attribute::Kind::kGraphs: return std::to_string(a.graphs.size()) + " graphs";
  }
  return "?";
}

}  // namespace

std::string PrintGraph(const Graph& g, int indent) {
  const std::string pad(static_cast<size_t>(indent), ' ');
  std::ostringstream out;
  out << pad << "graph '" << g.name << "'\n";
  auto v = [&](ValueId id) { return "%" + g.value(id).name; };
  for (ValueId id : g.inputs()) out << pad << "  input  " << v(id) << " : " << g.value(id).info.ToString() << "\n";
  for (uint32_t i = 0; i < g.num_values(); ++i) {
    const Value& val = g.value(ValueId(i));
    if (val.kind == ValueKind::kInitializer) {
      out << pad << "  const  %" << val.name << " : " << val.initializer.Describe() << "\n";
    } else if (val.kind == ValueKind::kOuterScope) {
      out << pad << "  outer  %" << val.name << " : " << val.info.ToString() << "\n";
    }
  }
  auto order = g.TopologicalOrder();
  std::vector<NodeId> ids;
  if (order.ok()) {
    ids = *order;
  } else {
    for (uint32_t i = 0; i < g.num_nodes(); ++i) ids.push_back(NodeId(i));
  }
  for (NodeId id : ids) {
    const Node& n = g.node(id);
    out << pad << "  ";
    for (size_t i = 0; i < n.outputs.size(); ++i) {
      out << (i ? ", " : "");
      if (n.outputs[i].valid()) {
        out << v(n.outputs[i]) << " : " << g.value(n.outputs[i]).info.ToString();
      } else {
        out << "_";
      }
    }
    out << " = " << n.Describe() << " (";
    for (size_t i = 0; i < n.inputs.size(); ++i) {
      out << (i ? ", " : "") << (n.inputs[i].valid() ? v(n.inputs[i]) : std::string("_"));
    }
    out << ")";
    if (!n.attrs.items().empty()) {
      out << " {";
      bool first = true;
      for (const Attribute& a : n.attrs.items()) {
        out << (first ? "" : ", ") << a.name << "=" << AttributeText(a);
        first = false;
      }
      out << "}";
    }
    out << "\n";
    for (const Attribute& a : n.attrs.items()) {
      if (a.g) out << PrintGraph(*a.g, indent + 4);
      for (const auto& sub : a.graphs) out << PrintGraph(*sub, indent + 4);
    }
  }
  for (ValueId id : g.outputs()) out << pad << "  output " << v(id) << "\n";
  return out.str();
}

}  // namespace kiln
