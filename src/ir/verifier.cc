#include "ir/verifier.h"

namespace kiln {

Status VerifyGraph(const Graph& g) {
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
      if (a.g) KILN_RETURN_IF_ERROR(VerifyGraph(*a.g).WithContext("in " + n.Describe()));
      for (const auto& sub : a.graphs) {
        KILN_RETURN_IF_ERROR(VerifyGraph(*sub).WithContext("in " + n.Describe()));
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

}  // namespace kiln
