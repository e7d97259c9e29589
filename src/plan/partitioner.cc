#include "plan/partitioner.h"

#include "plan/cost.h"

#include <algorithm>
#include <cstdio>
#include <queue>
#include <set>

namespace kiln {

const char* ComputeUnitName(ComputeUnit u) {
  switch (u) {
    case ComputeUnit::kCpu: return "cpu";
    case ComputeUnit::kGpu: return "gpu";
    case ComputeUnit::kNpu: return "npu";
  }
  return "?";
}

const char* ComputeUnitsName(ComputeUnits u) {
  switch (u) {
    case ComputeUnits::kCpuOnly: return "cpu_only";
    case ComputeUnits::kCpuAndGpu: return "cpu_and_gpu";
    case ComputeUnits::kCpuAndNpu: return "cpu_and_npu";
    case ComputeUnits::kAll: return "all";
  }
  return "?";
}

Result<ComputeUnits> ParseComputeUnits(const std::string& s) {
  if (s == "cpu_only") return ComputeUnits::kCpuOnly;
  if (s == "cpu_and_gpu") return ComputeUnits::kCpuAndGpu;
  if (s == "cpu_and_npu") return ComputeUnits::kCpuAndNpu;
  if (s == "all") return ComputeUnits::kAll;
  return InvalidArgument("compute units '" + s +
                         "': expected cpu_only, cpu_and_gpu, cpu_and_npu or all");
}

bool UnitAllowed(ComputeUnits allowed, ComputeUnit unit) {
  switch (allowed) {
    case ComputeUnits::kCpuOnly: return unit == ComputeUnit::kCpu;
    case ComputeUnits::kCpuAndGpu: return unit != ComputeUnit::kNpu;
    case ComputeUnits::kCpuAndNpu: return unit != ComputeUnit::kGpu;
    case ComputeUnits::kAll: return true;
  }
  return false;
}

namespace {

// Precision rank of float/int types for the "never lower" rule: higher is more precise.
int PrecisionRank(ElementType t) {
  switch (t) {
    case ElementType::kF64: return 4;
    case ElementType::kF32: return 3;
    case ElementType::kF16:
    case ElementType::kBF16: return 2;
    case ElementType::kI8:
    case ElementType::kU8: return 1;
    default: return 0;
  }
}

bool IsFloatType(ElementType t) {
  return t == ElementType::kF64 || t == ElementType::kF32 || t == ElementType::kF16 ||
         t == ElementType::kBF16;
}

ElementType StatedType(const NodeQuery& q) {
  for (const TypeInfo* t : q.outputs) {
    if (t != nullptr && IsFloatType(t->type)) return t->type;
  }
  for (const TypeInfo* t : q.inputs) {
    if (t != nullptr && IsFloatType(t->type)) return t->type;
  }
  for (const TypeInfo* t : q.outputs) {
    if (t != nullptr) return t->type;
  }
  return ElementType::kUndefined;
}

// In a program, refuses a backend that would compute some float value below its type.
std::string LowersPrecision(const NodeQuery& q, ElementType compute) {
  if (compute == ElementType::kUndefined) return "";
  auto check = [&](const TypeInfo* t, const char* what, size_t i) -> std::string {
    if (t == nullptr || !IsFloatType(t->type)) return "";
    if (PrecisionRank(compute) < PrecisionRank(t->type)) {
      return std::string(what) + " " + std::to_string(i) + " is " + ElementTypeName(t->type) +
             " but it would be computed in " + ElementTypeName(compute) +
             " (a program's types are a minimum: never lower)";
    }
    return "";
  };
  for (size_t i = 0; i < q.inputs.size(); ++i) {
    if (q.constants.size() > i && q.constants[i] != nullptr) continue;  // weights get converted
    std::string r = check(q.inputs[i], "input", i);
    if (!r.empty()) return r;
  }
  for (size_t i = 0; i < q.outputs.size(); ++i) {
    std::string r = check(q.outputs[i], "output", i);
    if (!r.empty()) return r;
  }
  return "";
}

double ValueBytes(const TypeInfo& t) {
  if (!t.has_static_shape() || t.type == ElementType::kUndefined ||
      t.type == ElementType::kString) {
    return 0;
  }
  double n = 1;
  for (int64_t d : t.static_shape()) n *= static_cast<double>(d);
  return n * static_cast<double>(ElementSize(t.type));
}

struct Candidate {
  int backend = -1;
  NodeSupport support;
};

}  // namespace

std::string PrecisionLabel(ElementType stated, ElementType actual) {
  if (actual == ElementType::kUndefined || actual == stated) return ElementTypeName(stated);
  std::string s = std::string(ElementTypeName(stated)) +
                  (PrecisionRank(actual) > PrecisionRank(stated) ? " raised to " : " run as ") +
                  ElementTypeName(actual);
  return s;
}

NodeQuery MakeNodeQuery(const Graph& graph, const Node& node, const std::vector<TypeInfo>& types,
                        const std::function<const Tensor*(ValueId)>& constant) {
  NodeQuery q;
  q.graph = &graph;
  q.node = &node;
  for (ValueId v : node.inputs) {
    q.inputs.push_back(v.valid() ? &types[v.v] : nullptr);
    q.constants.push_back(v.valid() ? constant(v) : nullptr);
  }
  for (ValueId v : node.outputs) q.outputs.push_back(v.valid() ? &types[v.v] : nullptr);
  return q;
}

Result<PartitionResult> PartitionGraph(const Graph& graph, const std::vector<TypeInfo>& types,
                                       const std::function<const Tensor*(ValueId)>& constant,
                                       const std::vector<NodeId>& nodes,
                                       const std::vector<std::shared_ptr<Backend>>& backends,
                                       const PartitionOptions& options) {
  int fallback = -1;
  for (size_t b = 0; b < backends.size(); ++b) {
    if (backends[b]->runs_in_executor()) fallback = static_cast<int>(b);
  }
  if (fallback < 0) return Internal("the partitioner needs the reference backend in its list");
  for (const auto& [op, name] : options.op_backend) {
    bool found = false;
    for (const auto& b : backends) found |= b->name() == name;
    if (!found) {
      std::string names;
      for (const auto& b : backends) names += (names.empty() ? "" : ", ") + b->name();
      return InvalidArgument("OpBackend." + op + " = " + name + ": no such backend here (" +
                             names + ")");
    }
  }

  PartitionResult result;
  result.placement.assign(graph.num_nodes(), NodePlacement{});
  const size_t n = nodes.size();
  // Candidates per node: the backends that may run it, in preference order.
  std::vector<std::vector<Candidate>> candidates(n);
  std::vector<NodeSupport> ref_support(n);
  std::string errors;
  int error_count = 0;
  for (size_t i = 0; i < n; ++i) {
    const Node& node = graph.node(nodes[i]);
    NodeQuery q = MakeNodeQuery(graph, node, types, constant);
    q.model_type = options.model_type;
    q.threads = options.threads;
    q.isa = options.isa;
    NodePlacement& p = result.placement[nodes[i].v];
    p.stated = StatedType(q);
    auto pin = options.op_backend.find(node.op_type);
    std::string reasons;
    for (size_t b = 0; b < backends.size(); ++b) {
      const Backend& be = *backends[b];
      if (options.reference_only && !be.runs_in_executor()) continue;
      NodeSupport s = be.Supports(q);
      // Sequence/optional values live in the executor: only its reference kernels touch them.
      if (s.supported && !be.runs_in_executor()) {
        bool container = false;
        for (const TypeInfo* t : q.inputs) container |= t != nullptr && !t->is_tensor();
        for (const TypeInfo* t : q.outputs) container |= t != nullptr && !t->is_tensor();
        if (container) s = NodeSupport::No("sequence/optional values run on the reference kernels");
      }
      if (static_cast<int>(b) == fallback) ref_support[i] = s;
      if (pin != options.op_backend.end() && be.name() != pin->second) continue;
      if (s.supported && options.model_type == ModelType::kProgram) {
        std::string low = LowersPrecision(q, s.compute_type);
        if (!low.empty()) s = NodeSupport::No(low);
      }
      if (!s.supported) {
        reasons += (reasons.empty() ? "" : "; ") + be.name() + ": " + s.reason;
        continue;
      }
      candidates[i].push_back(Candidate{static_cast<int>(b), s});
    }
    if (pin != options.op_backend.end() && candidates[i].empty()) {
      errors += "\n  " + node.Describe() + " is pinned to " + pin->second + ": " + reasons;
      ++error_count;
      continue;
    }
    if (!options.fallback && (candidates[i].empty() || candidates[i][0].backend == fallback)) {
      errors += "\n  " + node.Describe() + ": " + (reasons.empty() ? "only the reference backend" : reasons);
      ++error_count;
      continue;
    }
    if (candidates[i].empty()) {
      errors += "\n  " + node.Describe() + ": " + reasons;
      ++error_count;
      continue;
    }
    p.reason = reasons;
  }
  if (error_count > 0) {
    std::string head = options.fallback
                           ? std::to_string(error_count) + " node(s) cannot be placed:"
                           : std::to_string(error_count) +
                                 " node(s) are not supported by a preferred backend and fallback "
                                 "is off:";
    return Unimplemented(head + errors);
  }

  std::vector<int> index_of(graph.num_nodes(), -1);
  for (size_t i = 0; i < n; ++i) index_of[nodes[i].v] = static_cast<int>(i);
  // Producer position of each value among the nodes being placed.
  std::vector<int> pos_of_value(graph.num_values(), -1);
  for (size_t i = 0; i < n; ++i) {
    for (ValueId o : graph.node(nodes[i]).outputs) {
      if (o.valid()) pos_of_value[o.v] = static_cast<int>(i);
    }
  }
  std::vector<std::vector<int>> succ(n);
  std::vector<int> indeg0(n, 0);
  std::vector<std::vector<ValueId>> reads(n);
  for (size_t i = 0; i < n; ++i) {
    const Node& node = graph.node(nodes[i]);
    std::set<int> preds;
    for (ValueId v : node.inputs) {
      if (v.valid()) reads[i].push_back(v);
    }
    for (ValueId v : graph.ImplicitInputs(node)) reads[i].push_back(v);
    for (ValueId v : reads[i]) {
      const int p = pos_of_value[v.v];
      if (p >= 0 && p != static_cast<int>(i)) preds.insert(p);
    }
    for (int p : preds) succ[p].push_back(static_cast<int>(i));
    indeg0[i] = static_cast<int>(preds.size());
  }

  // choice[i]: index into candidates[i]; given back partitions move to the fallback.
  std::vector<int> assigned(n);
  for (size_t i = 0; i < n; ++i) assigned[i] = candidates[i][0].backend;

  for (int round = 0;; ++round) {
    // Clustered topological order.
    std::vector<int> indeg = indeg0;
    std::set<int> ready;
    for (size_t i = 0; i < n; ++i) {
      if (indeg[i] == 0) ready.insert(static_cast<int>(i));
    }
    std::vector<Partition> parts;
    std::vector<int> part_of(n, -1);
    int current = -1;
    while (!ready.empty()) {
      int pick = -1;
      if (current >= 0) {
        for (int r : ready) {
          if (assigned[r] == current) {
            pick = r;
            break;
          }
        }
      }
      if (pick < 0) {
        pick = *ready.begin();
        current = assigned[pick];
        parts.push_back(Partition{});
        parts.back().backend = current;
      }
      ready.erase(pick);
      part_of[pick] = static_cast<int>(parts.size()) - 1;
      parts.back().nodes.push_back(nodes[pick]);
      for (int s : succ[pick]) {
        if (--indeg[s] == 0) ready.insert(s);
      }
    }
    // Borders.
    std::vector<int> part_of_value(graph.num_values(), -1);
    for (size_t i = 0; i < n; ++i) {
      for (ValueId o : graph.node(nodes[i]).outputs) {
        if (o.valid()) part_of_value[o.v] = part_of[i];
      }
    }
    std::vector<std::set<uint32_t>> ins(parts.size()), outs(parts.size());
    for (size_t i = 0; i < n; ++i) {
      const int me = part_of[i];
      for (ValueId v : reads[i]) {
        if (constant(v) != nullptr) continue;
        const int from = part_of_value[v.v];
        if (from == me) continue;
        ins[me].insert(v.v);
        if (from >= 0) outs[from].insert(v.v);
      }
      for (ValueId o : graph.node(nodes[i]).outputs) {
        if (o.valid() && graph.value(o).is_output) outs[me].insert(o.v);
      }
    }
    bool changed = false;
    for (size_t p = 0; p < parts.size(); ++p) {
      Partition& part = parts[p];
      for (uint32_t v : ins[p]) part.inputs.push_back(ValueId(v));
      for (uint32_t v : outs[p]) part.outputs.push_back(ValueId(v));
      double ref_cost = 0;
      for (NodeId id : part.nodes) {
        const size_t i = static_cast<size_t>(index_of[id.v]);
        for (const Candidate& c : candidates[i]) {
          if (c.backend == part.backend) part.cost_us += c.support.cost_us;
        }
        ref_cost += ref_support[i].supported ? ref_support[i].cost_us : 0;
      }
      if (part.backend == fallback) continue;
      for (ValueId v : part.inputs) part.border_cost_us += BorderCostMicros(ValueBytes(types[v.v]), true);
      for (ValueId v : part.outputs) part.border_cost_us += BorderCostMicros(ValueBytes(types[v.v]), true);
      // Give a compiled partition back to the fallback when its borders cost more than it saves
      // (only if every node of it can run there and the user allows falling back).
      bool all_ref = options.fallback;
      for (NodeId id : part.nodes) {
        const size_t i = static_cast<size_t>(index_of[id.v]);
        all_ref &= ref_support[i].supported && !options.op_backend.count(graph.node(id).op_type);
      }
      if (all_ref && part.border_cost_us > ref_cost - part.cost_us) {
        for (NodeId id : part.nodes) {
          const size_t i = static_cast<size_t>(index_of[id.v]);
          assigned[i] = fallback;
          NodePlacement& pl = result.placement[id.v];
          char buf[160];
          std::snprintf(buf, sizeof(buf),
                        "%s: its partition's borders cost %.1f us, more than the %.1f us it saves",
                        backends[part.backend]->name().c_str(), part.border_cost_us,
                        ref_cost - part.cost_us);
          pl.reason += (pl.reason.empty() ? "" : "; ") + std::string(buf);
        }
        ++result.cost_rounds;
        changed = true;
      }
    }
    if (changed && round < 8) continue;
    result.partitions = std::move(parts);
    for (size_t i = 0; i < n; ++i) {
      NodePlacement& pl = result.placement[nodes[i].v];
      pl.partition = part_of[i];
      pl.backend = assigned[i];
      for (const Candidate& c : candidates[i]) {
        if (c.backend == assigned[i]) {
          pl.actual = c.support.compute_type == ElementType::kUndefined ? pl.stated
                                                                        : c.support.compute_type;
          pl.cost_us = c.support.cost_us;
        }
      }
      if (pl.actual == ElementType::kUndefined) pl.actual = pl.stated;
    }
    break;
  }
  return result;
}

std::string PartitionResultToString(const Graph& graph, const PartitionResult& r,
                                    const std::vector<std::shared_ptr<Backend>>& backends) {
  std::string s;
  char buf[256];
  for (size_t p = 0; p < r.partitions.size(); ++p) {
    const Partition& part = r.partitions[p];
    const Backend& b = *backends[part.backend];
    std::snprintf(buf, sizeof(buf), "partition %zu: %s (%s), %zu nodes, %zu inputs, %zu outputs, est %.1f us\n",
                  p, b.name().c_str(), ComputeUnitName(b.unit()), part.nodes.size(),
                  part.inputs.size(), part.outputs.size(), part.cost_us);
    s += buf;
    for (NodeId id : part.nodes) {
      const NodePlacement& pl = r.placement[id.v];
      s += "  " + graph.node(id).Describe() + "  " + PrecisionLabel(pl.stated, pl.actual);
      if (!pl.reason.empty()) s += "  [" + pl.reason + "]";
      s += "\n";
    }
  }
  return s;
}

}  // namespace kiln
