#include "ir/verifier.h"

namespace kiln {

namespace {

Status NestingError(const Graph& g, int depth) {
  return InvalidArgument("graph '" + g.name + "' is nested " + std::to_string(depth) +
                         " levels deep in subgraph attributes; Kiln accepts at most " +
                         std::to_string(kMaxGraphNesting));
}

Status CheckNestingAt(const Graph& g, int depth) {
  if (depth > kMaxGraphNesting) return NestingError(g, depth);
  for (const Node& n : g.nodes()) {
    for (const Attribute& a : n.attrs.items()) {
      if (a.g) KILN_RETURN_IF_ERROR(CheckNestingAt(*a.g, depth + 1));
      for (const auto& sub : a.graphs) KILN_RETURN_IF_ERROR(CheckNestingAt(*sub, depth + 1));
    }
  }
  return Status::Ok();
}

Status VerifyGraphAt(const Graph& g, int depth) {
  if (depth > kMaxGraphNesting) return NestingError(g, depth);
  for (const Node& n : g.nodes()) {
    for (ValueId in : n.inputs) {
      if (!in.valid()) continue;
      if (in.v >= g.num_values()) return Internal(n.Describe() + " has a dangling input id");
      const Value& v = g.value(in);
      if (v.kind == ValueKind::kIntermediate && !v.producer.valid()) {
        return InvalidArgument("node " + n.Describe() + " reads value '" + v.name +
                               "' that nothing produces");
      }
    }
    for (const Attribute& a : n.attrs.items()) {
      if (a.g) KILN_RETURN_IF_ERROR(VerifyGraphAt(*a.g, depth + 1).WithContext("in " + n.Describe()));
      for (const auto& sub : a.graphs) {
        KILN_RETURN_IF_ERROR(VerifyGraphAt(*sub, depth + 1).WithContext("in " + n.Describe()));
      }
    }
  }
  for (ValueId out : g.outputs()) {
    const Value& v = g.value(out);
    if (v.kind == ValueKind::kIntermediate && !v.producer.valid()) {
      return InvalidArgument("graph output '" + v.name + "' is not produced by any node");
    }
  }
  auto order = g.TopologicalOrder();
  if (!order.ok()) return order.status();
  return Status::Ok();
}

}  // namespace

Status VerifyGraph(const Graph& g) { return VerifyGraphAt(g, 0); }

Status CheckGraphNesting(const Graph& g) { return CheckNestingAt(g, 0); }

}  // namespace kiln
