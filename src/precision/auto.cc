// auto:TOL of the precision pass: which nodes must stay fp32 for the outputs to stay within TOL.
//
// 1. One fp32 run with an observer. For every convertible node it re-runs the node eagerly in
//    fp16 on the recorded fp32 inputs (rounded to f16 where the conversion would) and measures
//    its local relative error; an output that turns inf/NaN where fp32 is finite, or an input
//    beyond the f16 range, marks the node as overflowing. Recorded values are released after
//    their last reader, so memory stays at the executor's own live set.
// 2. Overflowing nodes are always kept. The converted model is run; nodes (or inserted Casts,
//    blamed on their readers) that produce inf/NaN from finite inputs where fp32 was finite are
//    kept too, until none is left.
// 3. When an output is still beyond TOL, the remaining nodes are kept greedily by local error:
//    an exponential then binary search over "keep the k most sensitive", one model run per step
//    (about 2 log2(N) runs).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <unordered_map>

#include "backends/ref/eager.h"
#include "core/search.h"
#include "precision/internal.h"

namespace kiln::precision_internal {
namespace {

bool IsF32Value(const Graph& g, ValueId v) {
  return v.valid() && g.value(v).info.type == ElementType::kF32;
}

std::string MaxAbs(const Tensor& t) {
  double m = 0;
  for (int64_t i = 0; i < t.size(); ++i) {
    const double x = std::fabs(t.GetAsDouble(i));
    if (std::isfinite(x)) m = std::max(m, x);
  }
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.4g", m);
  return buf;
}

// Step 1: the fp32 run with local fp16 probes.
class Probe {
 public:
  Probe(const std::set<std::string>& keep) : keep_(keep) {}

  std::map<std::string, double> local_error;    // node -> max local relative error
  std::map<std::string, std::string> overflow;  // node -> reason
  std::set<std::string> nonfinite_fp32;         // value names non-finite in the fp32 run

  void Seed(const Graph& g, const NamedTensors& inputs) {
    Cache& c = CacheOf(g);
    for (const auto& [name, t] : inputs) c.values[name] = t;
  }

  void Observe(const Graph& g, const Node& node, const std::vector<const Tensor*>& outputs) {
    Cache& c = CacheOf(g);
    observed_.insert(&node);
    for (size_t j = 0; j < outputs.size() && j < node.outputs.size(); ++j) {
      if (!outputs[j] || !node.outputs[j].valid()) continue;
      const std::string& name = g.value(node.outputs[j]).name;
      if (!AllFinite(*outputs[j])) nonfinite_fp32.insert(name);
      if (c.remaining[name] > 0) c.values[name] = outputs[j]->Clone();
    }
    if (Candidate(g, node)) Measure(g, node, outputs);
    for (ValueId in : node.inputs) {
      if (!in.valid()) continue;
      const std::string& name = g.value(in).name;
      auto it = c.remaining.find(name);
      if (it != c.remaining.end() && --it->second <= 0) c.values.erase(name);
    }
  }

 private:
  struct Cache {
    std::unordered_map<std::string, Tensor> values;
    std::unordered_map<std::string, int> remaining;  // readers not yet observed
    std::unordered_map<std::string, Tensor> folded;  // computed here for plan-time-folded nodes
  };

  Cache& CacheOf(const Graph& g) {
    auto it = caches_.find(&g);
    if (it != caches_.end()) return it->second;
    Cache& c = caches_[&g];
    for (const Node& n : g.nodes()) {
      for (ValueId in : n.inputs) {
        if (in.valid()) ++c.remaining[g.value(in).name];
      }
    }
    return c;
  }

  bool Candidate(const Graph& g, const Node& n) const {
    if (!ConvertibleOp(n) || keep_.count(n.name) || HasSubgraph(n) || n.op_type == "Constant") {
      return false;
    }
    for (size_t s = 0; s < n.inputs.size(); ++s) {
      if (IsF32Value(g, n.inputs[s]) && !FixedFloatInput(n, s)) return true;
    }
    for (ValueId o : n.outputs) {
      if (IsF32Value(g, o)) return true;
    }
    return false;
  }

  // The value's tensor, computing nodes that were folded at plan time (never observed).
  const Tensor* Fetch(const Graph& g, ValueId v, int depth = 0) {
    Cache& c = CacheOf(g);
    const Value& val = g.value(v);
    if (val.kind == ValueKind::kInitializer) return &val.initializer;
    auto it = c.values.find(val.name);
    if (it != c.values.end()) return &it->second;
    it = c.folded.find(val.name);
    if (it != c.folded.end()) return &it->second;
    if (!val.producer.valid() || depth > 64) return nullptr;
    const Node& p = g.node(val.producer);
    if (observed_.count(&p) || HasSubgraph(p)) return nullptr;
    std::vector<Tensor> ins;
    for (ValueId in : p.inputs) {
      if (!in.valid()) {
        ins.emplace_back();
        continue;
      }
      const Tensor* t = Fetch(g, in, depth + 1);
      if (!t) return nullptr;
      ins.push_back(*t);
    }
    auto outs = RunNodeEager(p, ins);
    if (!outs.ok()) return nullptr;
    for (size_t j = 0; j < p.outputs.size() && j < outs->size(); ++j) {
      if (p.outputs[j].valid()) c.folded[g.value(p.outputs[j]).name] = (*outs)[j];
    }
    it = c.folded.find(val.name);
    return it == c.folded.end() ? nullptr : &it->second;
  }

  void Measure(const Graph& g, const Node& n, const std::vector<const Tensor*>& outputs) {
    std::vector<Tensor> ins;
    for (size_t s = 0; s < n.inputs.size(); ++s) {
      const ValueId in = n.inputs[s];
      if (!in.valid()) {
        ins.emplace_back();
        continue;
      }
      const Tensor* t = Fetch(g, in);
      if (!t) return;  // an input we cannot see (outer scope): not measured
      if (IsF32Value(g, in) && !FixedFloatInput(n, s)) {
        Tensor h = ToF16(*t);
        if (AllFinite(*t) && !AllFinite(h)) {
          overflow.emplace(n.name, "input '" + g.value(in).name + "' exceeds the fp16 range (max |x| " +
                                       MaxAbs(*t) + ")");
          return;
        }
        ins.push_back(std::move(h));
      } else {
        ins.push_back(*t);
      }
    }
    auto outs = RunNodeEager(n, ins);
    if (!outs.ok()) return;
    double err = 0;
    for (size_t j = 0; j < outputs.size() && j < outs->size(); ++j) {
      if (!outputs[j] || !IsFloating(outputs[j]->type())) continue;
      if (!AllFinite(*outputs[j])) continue;
      const Tensor& y = (*outs)[j];
      if (!AllFinite(y)) {
        overflow.emplace(n.name, "output '" + g.value(n.outputs[j]).name +
                                     "' overflows fp16 (fp32 max |x| " + MaxAbs(*outputs[j]) + ")");
        return;
      }
      err = std::max(err, RelError(y, *outputs[j]));
    }
    double& e = local_error[n.name];
    e = std::max(e, err);
  }

  const std::set<std::string>& keep_;
  std::map<const Graph*, Cache> caches_;
  std::set<const Node*> observed_;
};

struct Evaluation {
  std::vector<double> errors;                     // per output
  std::map<std::string, std::string> overflow;    // newly found overflowing nodes -> reason
  double worst() const {
    double w = 0;
    for (double e : errors) w = std::max(w, e);
    return w;
  }
};

int CastOpsetOf(const Model& m) {
  auto it = m.opsets.find("");
  return it == m.opsets.end() ? 13 : it->second;
}

Result<Evaluation> Evaluate(const Model& model, const std::set<std::string>& keep,
                            const PrecisionOptions& o, const NamedTensors& inputs,
                            const std::vector<Tensor>& reference,
                            const std::set<std::string>& nonfinite_fp32,
                            const std::set<std::string>& source_nodes) {
  RewriteStats stats;
  KILN_ASSIGN_OR_RETURN(Graph g, RewriteGraph(model.graph, keep, true, !o.keep_io_types,
                                              CastOpsetOf(model), &stats));
  KILN_ASSIGN_OR_RETURN(auto session, Session::Create(WithGraph(model, std::move(g)),
                                                      SessionOptions::Reference(o.threads)));
  NamedTensors ins;
  for (const auto& [name, t] : inputs) ins.emplace_back(name, o.keep_io_types ? t : ToF16(t));
  Evaluation ev;
  std::map<const Graph*, std::set<std::string>> nonfinite;  // per graph, this run
  NodeObserver observer = [&](const Graph& graph, const Node& node,
                              const std::vector<const Tensor*>& outputs) {
    std::set<std::string>& bad = nonfinite[&graph];
    bool inputs_finite = true;
    for (ValueId in : node.inputs) {
      if (!in.valid()) continue;
      const Value& v = graph.value(in);
      if (bad.count(v.name) || (v.kind == ValueKind::kInitializer && !AllFinite(v.initializer))) {
        inputs_finite = false;
      }
    }
    bool overflowed = false;
    for (size_t j = 0; j < outputs.size() && j < node.outputs.size(); ++j) {
      if (!outputs[j] || !node.outputs[j].valid() || AllFinite(*outputs[j])) continue;
      const std::string& name = graph.value(node.outputs[j]).name;
      bad.insert(name);
      if (!nonfinite_fp32.count(name)) overflowed = true;
    }
    if (!overflowed || !inputs_finite) return;
    auto c = stats.cast_consumers.find(node.name);
    if (c != stats.cast_consumers.end()) {
      for (const std::string& reader : c->second) {
        ev.overflow.emplace(reader, "its input, cast to fp16 by '" + node.name + "', overflows");
      }
    } else if (source_nodes.count(node.name)) {
      ev.overflow.emplace(node.name, "overflows fp16 in the converted model");
    }
  };
  KILN_ASSIGN_OR_RETURN(std::vector<Tensor> outs, session->Run(ins, &observer));
  for (size_t i = 0; i < outs.size() && i < reference.size(); ++i) {
    ev.errors.push_back(RelError(outs[i], reference[i]));
  }
  for (auto it = ev.overflow.begin(); it != ev.overflow.end();) {
    it = keep.count(it->first) ? ev.overflow.erase(it) : std::next(it);
  }
  return ev;
}

void CollectNodeInfo(const Graph& g, std::map<std::string, std::string>& op_of) {
  for (const Node& n : g.nodes()) {
    op_of[n.name] = n.op_type;
    for (const Attribute& a : n.attrs.items()) {
      if (a.g) CollectNodeInfo(*a.g, op_of);
      for (const auto& sub : a.graphs) CollectNodeInfo(*sub, op_of);
    }
  }
}

std::string Fmt(double x) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.3g", x);
  return buf;
}

}  // namespace

Status AutoSelect(const Model& model, double tol, const PrecisionOptions& o,
                  std::set<std::string>& keep, ConvertReport& report) {
  if (o.auto_inputs.empty() && !model.graph.inputs().empty()) {
    return InvalidArgument("auto:TOL needs inputs to measure on (given with -i, or random ones)");
  }
  std::map<std::string, std::string> op_of;
  CollectNodeInfo(model.graph, op_of);
  std::set<std::string> source_nodes;
  for (const auto& [name, op] : op_of) source_nodes.insert(name);

  // 1. fp32 reference run with local probes.
  KILN_ASSIGN_OR_RETURN(Graph ref_graph, RewriteGraph(model.graph, {}, false, false, 13, nullptr));
  KILN_ASSIGN_OR_RETURN(auto ref, Session::Create(WithGraph(model, std::move(ref_graph)),
                                                  SessionOptions::Reference(o.threads)));
  Probe probe(keep);
  probe.Seed(ref->graph(), o.auto_inputs);
  NodeObserver observer = [&](const Graph& g, const Node& n, const std::vector<const Tensor*>& outs) {
    probe.Observe(g, n, outs);
  };
  KILN_ASSIGN_OR_RETURN(std::vector<Tensor> reference, ref->Run(o.auto_inputs, &observer));
  report.model_runs = 1;

  auto keep_node = [&](const std::string& name, const std::string& reason) {
    if (keep.insert(name).second) report.kept.push_back({name, op_of[name], reason});
  };
  for (const auto& [name, reason] : probe.overflow) keep_node(name, "overflow: " + reason);

  // 2. Overflows that only show in the converted model (accumulated error, Cast boundaries).
  Evaluation ev;
  for (int round = 0; round < 16; ++round) {
    KILN_ASSIGN_OR_RETURN(ev, Evaluate(model, keep, o, o.auto_inputs, reference,
                                       probe.nonfinite_fp32, source_nodes));
    ++report.model_runs;
    if (ev.overflow.empty()) break;
    for (const auto& [name, reason] : ev.overflow) keep_node(name, "overflow: " + reason);
  }

  // 3. Greedy by measured local error.
  if (ev.worst() > tol) {
    std::vector<std::pair<double, std::string>> ranked;
    for (const auto& [name, err] : probe.local_error) {
      if (!keep.count(name)) ranked.emplace_back(err, name);
    }
    std::sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) {
      return a.first != b.first ? a.first > b.first : a.second < b.second;
    });
    const size_t n = ranked.size();
    auto keep_top = [&](size_t k) {
      std::set<std::string> s = keep;
      for (size_t i = 0; i < k && i < n; ++i) s.insert(ranked[i].second);
      return s;
    };
    // The fewest top-ranked nodes that bring every output within tol.
    Evaluation best;
    auto passes = [&](size_t k) -> Result<bool> {
      KILN_ASSIGN_OR_RETURN(Evaluation e, Evaluate(model, keep_top(k), o, o.auto_inputs, reference,
                                                   probe.nonfinite_fp32, source_nodes));
      ++report.model_runs;
      if (e.worst() > tol) return false;
      best = std::move(e);  // the last passing run is the smallest count's
      return true;
    };
    KILN_ASSIGN_OR_RETURN(std::optional<size_t> count, SmallestPassingCount(n, passes));
    if (count) {
      const size_t hi = *count;
      for (size_t i = 0; i < hi; ++i) {
        keep_node(ranked[i].second, "measured error: local fp16 relative error " +
                                        Fmt(ranked[i].first) + " (kept to bring outputs within " +
                                        Fmt(tol) + ")");
      }
      ev = best;
    } else {
      for (size_t i = 0; i < n; ++i) {
        keep_node(ranked[i].second, "measured error: local fp16 relative error " + Fmt(ranked[i].first));
      }
      KILN_ASSIGN_OR_RETURN(ev, Evaluate(model, keep, o, o.auto_inputs, reference,
                                         probe.nonfinite_fp32, source_nodes));
      ++report.model_runs;
      report.notes.push_back("auto:" + Fmt(tol) + " not reachable: with every measured node in "
                             "fp32 the worst output error is " + Fmt(ev.worst()) +
                             (o.keep_io_types ? "" : " (f16 inputs/outputs: try --keep-io-types)"));
    }
  }
  const Graph& g = model.graph;
  for (size_t i = 0; i < ev.errors.size() && i < g.outputs().size(); ++i) {
    report.output_errors.push_back({g.value(g.outputs()[i]).name, ev.errors[i]});
  }
  return Status::Ok();
}

}  // namespace kiln::precision_internal
