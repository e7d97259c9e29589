// --keep-float auto:TOL: which nodes must stay float for every output to stay within TOL of the
// float model (relative L2 error ||q - f|| / ||f||, pooled over the samples).
//
// 1. One float run per sample with an observer. Every node the QDQ plan quantizes is re-run
//    eagerly on the recorded float inputs quantized as the QDQ model would (activations through
//    their scale and zero point, weights int8 per channel, biases int32) and its output
//    quantized too when the plan quantizes it; the relative error against the float output,
//    pooled over samples, is the node's local error (reported). Recorded values are released
//    after their last reader.
// 2. Each measured node's sensitivity: the worst output error of the model with only that node
//    quantized (all other measured nodes float), on the first 8 samples (one whole-model
//    evaluation per node, on the default backends).
// 3. The full QDQ model is evaluated; when an output is beyond TOL, nodes are kept in float
//    greedily by sensitivity: an exponential then binary search over "keep the k most sensitive"
//    (about 2 log2(N) whole-model evaluations on every sample), as the fp16 auto:TOL of
//    src/precision does.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

#include "backends/ref/eager.h"
#include "core/error_stats.h"
#include "core/search.h"
#include "passes/graph_edit.h"
#include "quant/internal.h"

namespace kiln::quant_internal {
namespace {

std::string Fmt(double x) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.3g", x);
  return buf;
}

// The dequantized int32 bias the QDQ model computes with.
Tensor FakeBias(const Tensor& b, float input_scale, const std::vector<float>& wscales, int group) {
  Tensor y = Tensor::Allocate(ElementType::kF32, b.shape()).value();
  for (int64_t i = 0; i < b.size(); ++i) {
    const float s = input_scale * wscales[wscales.size() == 1 ? 0 : static_cast<size_t>(i % group)];
    y.data<float>()[i] = static_cast<float>(std::nearbyint(b.GetAsDouble(i) / s)) * s;
  }
  return y;
}

Tensor FakeConstant(const Tensor& c, ActivationType type) {
  return FakeQuantize(c, ConstantParams(c, type));
}

class Probe {
 public:
  Probe(const Graph& g, const QdqPlan& plan, ActivationType act, WeightRounding rounding)
      : g_(g), plan_(plan), act_(act), rounding_(rounding) {
    remaining_.assign(g.num_values(), 0);
    for (const Node& n : g.nodes()) {
      for (ValueId in : n.inputs) {
        if (in.valid()) ++remaining_[in.v];
      }
    }
    err2_.assign(g.num_nodes(), 0.0);
    ref2_.assign(g.num_nodes(), 0.0);
    measured_.assign(g.num_nodes(), false);
  }

  void Seed(const NamedTensors& inputs) {
    for (const auto& [name, t] : inputs) {
      if (auto v = g_.FindValue(name)) values_[v->v] = t;
    }
  }

  void Observe(const Node& node, const std::vector<const Tensor*>& outputs) {
    const uint32_t id = static_cast<uint32_t>(&node - &g_.nodes()[0]);
    for (size_t j = 0; j < outputs.size() && j < node.outputs.size(); ++j) {
      if (outputs[j] && node.outputs[j].valid() && remaining_[node.outputs[j].v] > 0) {
        values_[node.outputs[j].v] = outputs[j]->Clone();
      }
    }
    if (plan_.nodes[id].quantized) Measure(id, node, outputs);
    for (ValueId in : node.inputs) {
      if (in.valid() && --remaining_[in.v] <= 0) values_.erase(in.v);
    }
  }

  void EndSample() {
    values_.clear();
    remaining_.assign(g_.num_values(), 0);
    for (const Node& n : g_.nodes()) {
      for (ValueId in : n.inputs) {
        if (in.valid()) ++remaining_[in.v];
      }
    }
  }

  // Node id -> local relative error, for the measured nodes.
  std::map<uint32_t, double> Errors() const {
    std::map<uint32_t, double> e;
    for (uint32_t i = 0; i < g_.num_nodes(); ++i) {
      if (!measured_[i]) continue;
      e[i] = ref2_[i] > 0 ? std::sqrt(err2_[i] / ref2_[i]) : (err2_[i] > 0 ? INFINITY : 0.0);
    }
    return e;
  }

 private:
  const Tensor* Fetch(ValueId v) {
    auto it = values_.find(v.v);
    if (it != values_.end()) return &it->second;
    auto c = passes::ConstantValue(g_, v);
    if (!c) return nullptr;
    return &(constants_[v.v] = *c);
  }

  void Measure(uint32_t id, const Node& n, const std::vector<const Tensor*>& outputs) {
    const NodePlan& np = plan_.nodes[id];
    std::vector<Tensor> ins;
    for (size_t s = 0; s < n.inputs.size(); ++s) {
      const ValueId v = n.inputs[s];
      if (!v.valid()) {
        ins.emplace_back();
        continue;
      }
      const Tensor* t = Fetch(v);
      if (!t) return;  // folded at plan time and not constant: not measured
      switch (np.roles[s]) {
        case SlotRole::kActivation:
          ins.push_back(plan_.acts[v.v] ? FakeQuantize(*t, *plan_.acts[v.v]) : *t);
          break;
        case SlotRole::kWeight: {
          auto key = std::make_pair(v.v, np.weight_axis * 16 + np.weight_bits);
          auto it = weights_.find(key);
          if (it == weights_.end()) {
            it = weights_.emplace(key, QuantizeWeight(*t, np.weight_axis, rounding_, np.weight_bits)).first;
          }
          ins.push_back(DequantizeWeight(it->second, np.weight_axis));
          break;
        }
        case SlotRole::kBias: {
          const auto& w =
              weights_.at(std::make_pair(n.inputs[1].v, np.weight_axis * 16 + np.weight_bits));
          ins.push_back(FakeBias(*t, plan_.acts[n.inputs[0].v]->scale, w.scales,
                                 np.bias_group_channels));
          break;
        }
        case SlotRole::kConstant: ins.push_back(FakeConstant(*t, act_)); break;
        case SlotRole::kFloat: ins.push_back(*t); break;
      }
    }
    auto outs = RunNodeEager(n, ins);
    if (!outs.ok() || outs->empty() || outputs.empty() || !outputs[0]) return;
    Tensor y = (*outs)[0];
    const ValueId out = n.outputs[0];
    if (plan_.acts[out.v]) y = FakeQuantize(y, *plan_.acts[out.v]);
    const Tensor& ref = *outputs[0];
    if (y.size() != ref.size()) return;
    for (int64_t i = 0; i < y.size(); ++i) {
      const double a = y.GetAsDouble(i), b = ref.GetAsDouble(i);
      if (!std::isfinite(a) || !std::isfinite(b)) continue;
      err2_[id] += (a - b) * (a - b);
      ref2_[id] += b * b;
    }
    measured_[id] = true;
  }

  const Graph& g_;
  const QdqPlan& plan_;
  ActivationType act_;
  WeightRounding rounding_;
  std::vector<int> remaining_;
  std::map<uint32_t, Tensor> values_;
  std::map<uint32_t, Tensor> constants_;
  std::map<std::pair<uint32_t, int>, QuantizedWeight> weights_;
  std::vector<double> err2_, ref2_;
  std::vector<bool> measured_;
};

struct Evaluation {
  std::vector<double> errors;  // per output
  double worst() const {
    double w = 0;
    for (double e : errors) w = std::max(w, std::isnan(e) ? INFINITY : e);
    return w;
  }
};

}  // namespace

Status AutoSelect(const Model& model, const CalibrationStats& stats, const QuantizeOptions& o,
                  bool per_channel, double tol, std::set<std::string>& keep,
                  QuantizeReport& report) {
  if (o.samples.empty()) {
    return InvalidArgument("auto:TOL needs calibration samples to measure on (--data)");
  }
  const Graph& g = model.graph;
  KILN_ASSIGN_OR_RETURN(QdqPlan plan0, PlanQdq(g, stats, o, per_channel, keep));

  // 1. Float runs with local probes; the float outputs are the reference.
  KILN_ASSIGN_OR_RETURN(auto ref, Session::Create(CopyModel(model),
                                                  SessionOptions::Reference(o.threads)));
  Probe probe(ref->graph(), plan0, o.activations, o.weight_rounding);
  NodeObserver observer = [&](const Graph& sg, const Node& n,
                              const std::vector<const Tensor*>& outs) {
    if (&sg == &ref->graph()) probe.Observe(n, outs);
  };
  std::vector<std::vector<Tensor>> reference;
  const int total = static_cast<int>(o.samples.size());
  for (int i = 0; i < total; ++i) {
    probe.Seed(o.samples[i]);
    KILN_ASSIGN_OR_RETURN(std::vector<Tensor> outs, ref->Run(o.samples[i], &observer));
    probe.EndSample();
    reference.push_back(std::move(outs));
    if (o.progress) o.progress("measuring layers", i + 1, total);
  }
  const std::map<uint32_t, double> local = probe.Errors();

  // Whole-model evaluations (default backends: the int8 kernels are fast there), on the first
  // `count` samples.
  const int opset = model.opsets.count("") ? model.opsets.at("") : 13;
  std::map<std::string, std::string> op_of;
  for (const Node& node : g.nodes()) op_of[node.name] = node.op_type;
  int evaluations = 0;
  std::string phase = "ranking layers";
  int expected = static_cast<int>(local.size());
  auto evaluate = [&](const std::set<std::string>& k, size_t count) -> Result<Evaluation> {
    KILN_ASSIGN_OR_RETURN(QdqPlan plan, PlanQdq(g, stats, o, per_channel, k));
    KILN_ASSIGN_OR_RETURN(Graph qg, EmitQdq(g, plan, o, opset, nullptr));
    Model qm = CopyModel(model);
    qm.graph = std::move(qg);
    KILN_ASSIGN_OR_RETURN(auto session,
                          Session::Create(std::move(qm), SessionOptions::Threads(o.threads)));
    std::vector<ErrorStatsAccumulator> acc(g.outputs().size());
    for (size_t i = 0; i < o.samples.size() && i < count; ++i) {
      KILN_ASSIGN_OR_RETURN(std::vector<Tensor> outs, session->Run(o.samples[i]));
      for (size_t j = 0; j < outs.size() && j < acc.size(); ++j) {
        KILN_RETURN_IF_ERROR(acc[j].Add(outs[j], reference[i][j]));
      }
    }
    Evaluation ev;
    for (const auto& a : acc) ev.errors.push_back(a.Result().rel_l2);
    ++report.model_runs;
    if (o.progress) o.progress(phase, ++evaluations, std::max(expected, evaluations));
    return ev;
  };

  // Rank by each layer's effect on the outputs: the model with only that layer quantized (every
  // other measured layer float), worst output error on up to kRankSamples samples. A layer's own
  // error says little about what it does downstream (a high-pass stem filter with a few percent
  // local error can move the outputs by tens of percent, a layer with more local error nothing).
  constexpr size_t kRankSamples = 8;
  std::set<std::string> all_measured = keep;
  for (const auto& [id, err] : local) all_measured.insert(g.node(NodeId(id)).name);
  std::vector<std::pair<double, std::string>> ranked;
  std::map<std::string, double> alone;
  for (const auto& [id, err] : local) {
    const Node& node = g.node(NodeId(id));
    if (keep.count(node.name)) continue;
    std::set<std::string> k = all_measured;
    k.erase(node.name);
    KILN_ASSIGN_OR_RETURN(Evaluation e, evaluate(k, kRankSamples));
    alone[node.name] = e.worst();
    ranked.emplace_back(e.worst(), node.name);
  }
  for (const auto& [id, err] : local) {
    const Node& node = g.node(NodeId(id));
    const auto it = alone.find(node.name);
    report.layer_errors.push_back(
        {node.name, node.op_type, err, it == alone.end() ? -1.0 : it->second});
  }
  std::sort(report.layer_errors.begin(), report.layer_errors.end(),
            [](const LayerError& a, const LayerError& b) {
              return a.output_alone != b.output_alone ? a.output_alone > b.output_alone
                                                      : a.name < b.name;
            });
  std::sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });

  // 2. The fewest top-ranked layers kept float, on every sample.
  const size_t n = ranked.size();
  phase = "searching";
  evaluations = 0;
  expected = 2 + 2 * static_cast<int>(std::ceil(std::log2(static_cast<double>(n) + 1)));
  const size_t all = o.samples.size();
  auto keep_top = [&](size_t k) {
    std::set<std::string> s = keep;
    for (size_t i = 0; i < k && i < n; ++i) s.insert(ranked[i].second);
    return s;
  };
  KILN_ASSIGN_OR_RETURN(Evaluation ev, evaluate(keep, all));
  size_t kept_count = 0;
  if (ev.worst() > tol) {
    // The fewest top-ranked layers that bring every output within tol.
    Evaluation best;
    auto passes = [&](size_t k) -> Result<bool> {
      KILN_ASSIGN_OR_RETURN(Evaluation e, evaluate(keep_top(k), all));
      if (e.worst() > tol) return false;
      best = std::move(e);  // the last passing run is the smallest count's
      return true;
    };
    KILN_ASSIGN_OR_RETURN(std::optional<size_t> count, SmallestPassingCount(n, passes));
    if (count) {
      kept_count = *count;
      ev = best;
    } else {
      kept_count = n;
      KILN_ASSIGN_OR_RETURN(ev, evaluate(keep_top(n), all));
      report.notes.push_back("auto:" + Fmt(tol) + " not reachable: with every measured layer "
                             "float the worst output error is " + Fmt(ev.worst()));
    }
  }
  for (size_t i = 0; i < kept_count; ++i) {
    const std::string& name = ranked[i].second;
    keep.insert(name);
    report.kept.push_back({name, op_of[name],
                           "measured: outputs move " + Fmt(ranked[i].first) +
                               " with this layer alone quantized (kept to bring outputs within " +
                               Fmt(tol) + ")"});
  }
  for (size_t i = 0; i < ev.errors.size() && i < g.outputs().size(); ++i) {
    report.output_errors.push_back({g.value(g.outputs()[i]).name, ev.errors[i]});
  }
  return Status::Ok();
}

}  // namespace kiln::quant_internal
