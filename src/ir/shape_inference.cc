#include <algorithm>
#include "ir/shape_inference.h"

#include "ir/op_schema.h"

namespace kiln {
namespace {

// Merges an inferred type into a declared one; errors on disagreement.
Status Merge(const Node& n, const Value& v, TypeInfo& cur, const TypeInfo& inferred) {
  if (!inferred.is_tensor() || !cur.is_tensor()) {
    // Sequence/optional values: the inferred kind wins over the declared one (a schema that
    // knows nothing of containers infers a plain tensor: then the declaration stands).
    if (!inferred.is_tensor()) {
      if (!cur.is_tensor() && cur.kind != inferred.kind) {
        return InvalidArgument("node " + n.Describe() + " produces '" + v.name + "' of type " +
                               inferred.ToString() + " but the model declares " + cur.ToString());
      }
      const bool same = cur.kind == inferred.kind;
      cur.kind = inferred.kind;
      cur.of_sequence = inferred.of_sequence;
      if (inferred.type != ElementType::kUndefined) cur.type = inferred.type;
      if (!same || !cur.shape) cur.shape = inferred.shape;
    } else if (cur.type == ElementType::kUndefined) {
      cur.type = inferred.type;
    }
    return Status::Ok();
  }
  if (inferred.type != ElementType::kUndefined) {
    if (cur.type != ElementType::kUndefined && cur.type != inferred.type) {
      return InvalidArgument("node " + n.Describe() + " produces '" + v.name + "' of type " +
                             ElementTypeName(inferred.type) + " but the model declares " +
                             ElementTypeName(cur.type));
    }
    cur.type = inferred.type;
  }
  if (inferred.shape) {
    if (cur.shape && cur.shape->size() != inferred.shape->size()) {
      return InvalidArgument("node " + n.Describe() + " produces '" + v.name + "' of rank " +
                             std::to_string(inferred.shape->size()) + " " + inferred.ToString() +
                             " but the model declares rank " + std::to_string(cur.shape->size()) +
                             " " + cur.ToString());
    }
    if (!cur.shape) {
      cur.shape = inferred.shape;
    } else {
      for (size_t i = 0; i < cur.shape->size(); ++i) {
        const Dim& a = (*inferred.shape)[i];
        Dim& b = (*cur.shape)[i];
        if (a.is_static() && b.is_static() && a.value != b.value) {
          return InvalidArgument("node " + n.Describe() + " produces '" + v.name + "' of shape " +
                                 inferred.ToString() + " but the model declares " + cur.ToString());
        }
        if (a.is_static() || (!b.is_static() && b.symbol.empty())) b = a;
      }
    }
  }
  return Status::Ok();
}

}  // namespace

std::vector<TypeInfo> DeclaredTypes(const Graph& g) {
  std::vector<TypeInfo> types;
  types.reserve(g.num_values());
  for (const Value& v : g.values()) types.push_back(v.info);
  return types;
}

Status InferShapes(Graph& g, const InferShapesOptions& options) {
  std::vector<TypeInfo> types = DeclaredTypes(g);
  KILN_RETURN_IF_ERROR(InferShapes(static_cast<const Graph&>(g), types, options));
  for (uint32_t i = 0; i < g.num_values(); ++i) g.value(ValueId(i)).info = types[i];
  return Status::Ok();
}

Status InferShapes(const Graph& g, std::vector<TypeInfo>& types,
                   const InferShapesOptions& options) {
  std::unordered_map<uint32_t, Tensor> local_known;
  auto& known = options.known ? *options.known : local_known;
  for (uint32_t i = 0; i < g.num_values(); ++i) {
    const Value& v = g.value(ValueId(i));
    if (v.kind == ValueKind::kInitializer) known.emplace(i, v.initializer);
    if (v.kind == ValueKind::kOuterScope && options.outer_types) {
      auto it = options.outer_types->find(v.name);
      if (it != options.outer_types->end()) types[i] = it->second;
    }
  }
  KILN_ASSIGN_OR_RETURN(std::vector<NodeId> order, g.TopologicalOrder());
  for (NodeId id : order) {
    const Node& n = g.node(id);
    std::vector<TypeInfo> in_types;
    std::vector<const Tensor*> in_values;
    bool all_known = true;
    for (ValueId in : n.inputs) {
      if (!in.valid()) {
        in_types.emplace_back();
        in_values.push_back(nullptr);
        continue;
      }
      in_types.push_back(types[in.v]);
      auto it = known.find(in.v);
      in_values.push_back(it == known.end() ? nullptr : &it->second);
      if (it == known.end()) all_known = false;
    }
    InferContext ctx(n, in_types, in_values);
    KILN_RETURN_IF_ERROR(InferNode(ctx));
    for (size_t i = 0; i < n.outputs.size(); ++i) {
      if (!n.outputs[i].valid()) continue;
      KILN_RETURN_IF_ERROR(Merge(n, g.value(n.outputs[i]), types[n.outputs[i].v], ctx.outputs()[i]));
    }
    // Shape of a statically shaped value is a known value.
    if (n.op_type == "Shape" && n.domain.empty() && !n.inputs.empty() && n.inputs[0].valid() &&
        types[n.inputs[0].v].has_static_shape() && n.attrs.items().empty()) {
      Shape s = types[n.inputs[0].v].static_shape();
      known[n.outputs[0].v] =
          Tensor::FromVector<int64_t>(s, {static_cast<int64_t>(s.size())});
      continue;
    }
    if (!options.folder || !all_known) continue;
    // Containers are not folded (their values are not tensors the planner can hold).
    bool container = false;
    for (const TypeInfo& t : in_types) container |= !t.is_tensor();
    for (ValueId o : n.outputs) container |= o.valid() && !types[o.v].is_tensor();
    if (container) continue;
    if (n.inputs.empty() && n.op_type != "Constant") continue;  // random generators stay live
    if (n.op_type.rfind("Random", 0) == 0 || n.op_type == "Bernoulli") continue;
    bool has_subgraph = false;
    for (const Attribute& a : n.attrs.items()) has_subgraph |= a.g != nullptr || !a.graphs.empty();
    if (has_subgraph) continue;
    // Outputs already known to be larger than what folding keeps are not computed at all (a
    // ConstantOfShape or Expand to a huge shape would allocate it only to throw it away).
    int64_t input_elements = 0;
    for (const Tensor* t : in_values) {
      if (t != nullptr) input_elements += t->size();
    }
    const int64_t keep = std::max(options.max_folded_elements,
                                  std::min(input_elements, options.max_folded_weight_elements));
    bool too_large = false;
    for (ValueId o : n.outputs) {
      if (!o.valid() || !types[o.v].has_static_shape()) continue;
      auto count = CheckedNumElements(types[o.v].static_shape());
      too_large |= !count.ok() || *count > keep;
    }
    if (too_large) continue;
    std::vector<Tensor> inputs;
    for (size_t i = 0; i < n.inputs.size(); ++i) {
      inputs.push_back(in_values[i] ? *in_values[i] : Tensor());
    }
    auto folded = options.folder(n, inputs);
    if (!folded.ok()) continue;  // the error will surface, with context, when the node runs
    for (size_t i = 0; i < n.outputs.size() && i < folded->size(); ++i) {
      if (!n.outputs[i].valid()) continue;
      const Tensor& t = (*folded)[i];
      if (!t.defined() || t.size() > keep) continue;
      TypeInfo ti{t.type(), DimVector(t.shape().begin(), t.shape().end())};
      KILN_RETURN_IF_ERROR(Merge(n, g.value(n.outputs[i]), types[n.outputs[i].v], ti));
      known[n.outputs[i].v] = t;
    }
  }
  return Status::Ok();
}

}  // namespace kiln
