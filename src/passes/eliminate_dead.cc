// eliminate-dead: removes default-domain nodes none of whose outputs is needed, and initializers
// nothing reads.
//
// A value is needed when it is a graph output or an input (explicit, or captured by a nested
// body) of a kept node; a node is kept when it is of another domain (its side effects are not
// ours to judge) or any of its outputs is needed. Walking the nodes in reverse topological order
// settles each node after all of its readers. Graph inputs are kept even when unread: they are
// the model's interface.
#include <map>

#include "passes/graph_edit.h"
#include "passes/pass_manager.h"

namespace kiln {

Result<PassResult> EliminateDeadPass(Model& model) {
  Graph& g = model.graph;
  KILN_ASSIGN_OR_RETURN(std::vector<NodeId> order, g.TopologicalOrder());
  std::vector<bool> needed(g.num_values(), false);
  for (ValueId v : g.outputs()) needed[v.v] = true;
  std::vector<bool> dead(g.num_nodes(), false);
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    const Node& n = g.node(*it);
    bool keep = !passes::IsDefaultDomain(n);
    for (ValueId o : n.outputs) keep = keep || (o.valid() && needed[o.v]);
    if (!keep) {
      dead[it->v] = true;
      continue;
    }
    for (ValueId in : n.inputs) {
      if (in.valid()) needed[in.v] = true;
    }
    for (ValueId in : g.ImplicitInputs(n)) needed[in.v] = true;
  }

  PassResult result;
  std::map<std::string, int> by_op;
  passes::GraphEditor e(g);
  int64_t bytes = 0;
  for (uint32_t i = 0; i < g.num_nodes(); ++i) {
    if (!dead[i]) continue;
    const Node& n = g.node(NodeId(i));
    ++by_op[n.op_type];
    if (const Tensor* t = n.op_type == "Constant" ? n.attrs.GetTensor("value") : nullptr) {
      bytes += static_cast<int64_t>(t->bytes());
    }
    e.RemoveNode(NodeId(i));
  }
  int initializers = 0;
  for (uint32_t i = 0; i < g.num_values(); ++i) {
    const Value& v = g.value(ValueId(i));
    if (v.kind != ValueKind::kInitializer || needed[i]) continue;
    ++initializers;
    bytes += static_cast<int64_t>(v.initializer.bytes());
    e.RemoveInitializer(ValueId(i));
  }
  KILN_RETURN_IF_ERROR(e.Commit());

  int nodes = 0;
  std::string ops;
  for (const auto& [op, count] : by_op) {
    nodes += count;
    ops += (ops.empty() ? " (" : ", ") + op + " " + std::to_string(count);
  }
  result.rewrites = nodes + initializers;
  result.notes.push_back("removed " + std::to_string(nodes) + " nodes" +
                         (ops.empty() ? "" : ops + ")") + " and " + std::to_string(initializers) +
                         " initializers (" + std::to_string(bytes) + " bytes of constants)");
  return result;
}

}  // namespace kiln
