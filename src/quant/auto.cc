// The accuracy search of the quantizer (quantize.h, AccuracySearchOptions): which layers stay
// float so that every output stays within its tolerance on the measuring samples, keeping few.
//
// Every evaluation is a whole model: the QDQ graph of a keep set is emitted, a session on the
// default backends (the int8 kernels) runs it on the measuring samples, and each output is
// compared with the float model's outputs by its metric (OutputMetric). A configuration passes
// when every output's error is within its tolerance; "ratio" below is error / tolerance, worst
// over the outputs.
//
// Why whole-model measurements and an order instead of per-layer budgets: errors of quantized
// layers add up downstream in ways a per-layer error does not predict (a high-pass stem filter
// with a few percent own error moves PP-OCR rec's outputs more than any later layer), so the
// search only uses single-layer measurements to order the layers, and decides every count on
// the whole model. Pruning afterwards removes layers that the order put early but that are not
// needed once the others are float.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>

#include "core/search.h"
#include "quant/internal.h"

namespace kiln::quant_internal {
namespace {

using Clock = std::chrono::steady_clock;

std::string Fmt(double x) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.3g", x);
  return buf;
}

double Seconds(Clock::time_point a) {
  return std::chrono::duration<double>(Clock::now() - a).count();
}

// Values of a float output as doubles (fast path for f32).
std::vector<double> AsDoubles(const Tensor& t) {
  std::vector<double> v(static_cast<size_t>(t.size()));
  if (t.type() == ElementType::kF32) {
    const float* p = t.data<float>();
    for (int64_t i = 0; i < t.size(); ++i) v[i] = p[i];
  } else {
    for (int64_t i = 0; i < t.size(); ++i) v[i] = t.GetAsDouble(i);
  }
  return v;
}

// A float output is a distribution over its last axis: non-negative, finite, every row sums to
// 1 within 1 %, at least 2 classes.
bool IsDistribution(const Tensor& t) {
  if (t.rank() < 1 || t.shape().back() < 2 || t.size() == 0) return false;
  const int64_t n = t.shape().back();
  const std::vector<double> v = AsDoubles(t);
  for (int64_t r = 0; r < t.size() / n; ++r) {
    double sum = 0;
    for (int64_t k = 0; k < n; ++k) {
      const double x = v[r * n + k];
      if (!std::isfinite(x) || x < -1e-6) return false;
      sum += x;
    }
    if (std::fabs(sum - 1) > 0.01) return false;
  }
  return true;
}

// Pooled sums of one output over samples.
struct OutputAccumulator {
  double err2 = 0, ref2 = 0, dot = 0, qq = 0, chosen = 0;
  int64_t rows = 0, agree = 0;
  bool nonfinite = false;

  Status Add(const Tensor& q, const Tensor& f, bool rows_metric) {
    if (q.shape() != f.shape()) {
      return Internal("the quantized model's output has shape " + q.Describe() + ", the float "
                      "model's " + f.Describe());
    }
    const std::vector<double> a = AsDoubles(q), b = AsDoubles(f);
    for (size_t i = 0; i < a.size(); ++i) {
      if (!std::isfinite(a[i])) {
        if (std::isfinite(b[i])) nonfinite = true;
        continue;
      }
      err2 += (a[i] - b[i]) * (a[i] - b[i]);
      ref2 += b[i] * b[i];
      dot += a[i] * b[i];
      qq += a[i] * a[i];
    }
    if (rows_metric) {
      const int64_t n = f.shape().back();
      for (int64_t r = 0; r < f.size() / n; ++r) {
        int64_t ia = 0, ib = 0;
        for (int64_t k = 1; k < n; ++k) {
          if (a[r * n + k] > a[r * n + ia]) ia = k;
          if (b[r * n + k] > b[r * n + ib]) ib = k;
        }
        agree += ia == ib;
        chosen += std::fabs(a[r * n + ib] - b[r * n + ib]);
        ++rows;
      }
    }
    return Status::Ok();
  }
};

// One output's error from its accumulated sums, in `metric`'s units (resolved, not kAuto).
QuantOutputError FinishOutputError(const OutputAccumulator& a, OutputMetric metric) {
  QuantOutputError e;
  e.metric = OutputMetricName(metric);
  e.relative_l2 = a.ref2 > 0 ? std::sqrt(a.err2 / a.ref2) : (a.err2 > 0 ? INFINITY : 0.0);
  if (a.nonfinite) e.relative_l2 = INFINITY;
  switch (metric) {
    case OutputMetric::kArgmax:
      e.argmax_agreement = a.rows ? static_cast<double>(a.agree) / a.rows : 1.0;
      e.chosen_change = a.rows ? a.chosen / static_cast<double>(a.rows) : 0.0;
      e.error = a.nonfinite ? INFINITY : e.chosen_change;
      break;
    case OutputMetric::kCosine: {
      const double den = std::sqrt(a.ref2 * a.qq);
      e.error = a.nonfinite ? INFINITY : (den > 0 ? 1.0 - a.dot / den : (a.ref2 == a.qq ? 0 : 1));
      break;
    }
    default: e.error = e.relative_l2; break;
  }
  return e;
}

struct Measured {
  std::vector<QuantOutputError> outputs;
  double worst = 0;  // max over outputs of error / tolerance
  bool passes() const { return worst <= 1.0; }
};

class Search {
 public:
  Search(const Model& model, const CalibrationStats& stats, const QuantizeOptions& o,
         bool per_channel, QuantizeReport& report)
      : model_(model), g_(model.graph), stats_(stats), o_(o), per_channel_(per_channel),
        report_(report) {
    opset_ = model.opsets.count("") ? model.opsets.at("") : 13;
  }

  // The float model's outputs on every measuring sample, and each output's metric.
  Status Init() {
    KILN_ASSIGN_OR_RETURN(float_session_,
                          Session::Create(CopyModel(model_), SessionOptions::Threads(o_.threads)));
    for (size_t i = 0; i < o_.samples.size(); ++i) {
      KILN_ASSIGN_OR_RETURN(std::vector<Tensor> outs, float_session_->Run(o_.samples[i]));
      reference_.push_back(std::move(outs));
    }
    const size_t n_out = g_.outputs().size();
    for (size_t j = 0; j < n_out; ++j) {
      OutputMetric m = o_.search.metric;
      if (m == OutputMetric::kAuto) {
        bool dist = true;
        for (const auto& r : reference_) dist = dist && j < r.size() && IsDistribution(r[j]);
        m = dist ? OutputMetric::kArgmax : OutputMetric::kRelL2;
      } else if (m == OutputMetric::kArgmax) {
        for (const auto& r : reference_) {
          if (j >= r.size() || r[j].rank() < 1 || r[j].shape().back() < 1) {
            return InvalidArgument("--metric argmax: output '" + g_.value(g_.outputs()[j]).name +
                                   "' has no last axis to take the argmax along");
          }
        }
      }
      metric_.push_back(m);
      double tol = DefaultTolerance(m);
      if (o_.keep_float.auto_tolerance) {
        tol = *o_.keep_float.auto_tolerance;
      } else if (o_.search.tolerance) {
        tol = *o_.search.tolerance;
      }
      tolerance_.push_back(tol * o_.search.tolerance_scale);
    }
    return Status::Ok();
  }

  Result<std::unique_ptr<Session>> Build(const std::set<std::string>& keep) {
    KILN_ASSIGN_OR_RETURN(QdqPlan plan, PlanQdq(g_, stats_, o_, per_channel_, keep));
    KILN_ASSIGN_OR_RETURN(Graph qg, EmitQdq(g_, plan, o_, opset_, nullptr));
    Model qm = CopyModel(model_);
    qm.graph = std::move(qg);
    return Session::Create(std::move(qm), SessionOptions::Threads(o_.threads));
  }

  Result<Measured> Measure(Session& s, size_t count) {
    std::vector<OutputAccumulator> acc(g_.outputs().size());
    for (size_t i = 0; i < o_.samples.size() && i < count; ++i) {
      KILN_ASSIGN_OR_RETURN(std::vector<Tensor> outs, s.Run(o_.samples[i]));
      for (size_t j = 0; j < outs.size() && j < acc.size(); ++j) {
        KILN_RETURN_IF_ERROR(
            acc[j].Add(outs[j], reference_[i][j], metric_[j] == OutputMetric::kArgmax));
      }
    }
    Measured m;
    for (size_t j = 0; j < acc.size(); ++j) {
      QuantOutputError e = FinishOutputError(acc[j], metric_[j]);
      e.name = g_.value(g_.outputs()[j]).name;
      e.tolerance = tolerance_[j];
      const double ratio = e.tolerance > 0 ? e.error / e.tolerance : (e.error > 0 ? INFINITY : 0);
      m.worst = std::max(m.worst, std::isnan(ratio) ? INFINITY : ratio);
      m.outputs.push_back(std::move(e));
    }
    return m;
  }

  Result<Measured> Evaluate(const std::set<std::string>& keep, size_t count) {
    KILN_ASSIGN_OR_RETURN(auto session, Build(keep));
    ++report_.model_runs;
    return Measure(*session, count);
  }

  // Activation QDQ pairs of the model under `keep` (the conversions between int8 and float).
  Result<int> Conversions(const std::set<std::string>& keep) {
    KILN_ASSIGN_OR_RETURN(QdqPlan plan, PlanQdq(g_, stats_, o_, per_channel_, keep));
    QuantizeReport scratch;
    KILN_ASSIGN_OR_RETURN(Graph qg, EmitQdq(g_, plan, o_, opset_, &scratch));
    return scratch.activations_quantized;
  }

  // Median ms of the float model and of `keep`'s quantized model on the first sample,
  // alternating runs.
  Status Time(const std::set<std::string>& keep, int runs) {
    if (runs <= 0 || o_.samples.empty()) return Status::Ok();
    KILN_ASSIGN_OR_RETURN(auto q, Build(keep));
    const NamedTensors& in = o_.samples[0];
    for (int w = 0; w < 2; ++w) {
      KILN_RETURN_IF_ERROR(float_session_->Run(in).status());
      KILN_RETURN_IF_ERROR(q->Run(in).status());
    }
    std::vector<double> fm, qm;
    // At least `runs` pairs, and more (up to 20x) until the float runs add up to 0.5 s: a
    // millisecond model's median over 10 runs is noise on a loaded machine.
    double spent_ms = 0;
    for (int r = 0; r < runs || (spent_ms < 500 && r < 20 * runs); ++r) {
      auto a = Clock::now();
      KILN_RETURN_IF_ERROR(float_session_->Run(in).status());
      fm.push_back(Seconds(a) * 1e3);
      spent_ms += fm.back();
      a = Clock::now();
      KILN_RETURN_IF_ERROR(q->Run(in).status());
      qm.push_back(Seconds(a) * 1e3);
      if (o_.progress) o_.progress("timing", r + 1, std::max(runs, r + 1));
    }
    std::sort(fm.begin(), fm.end());
    std::sort(qm.begin(), qm.end());
    report_.float_ms = fm[fm.size() / 2];
    report_.quantized_ms = qm[qm.size() / 2];
    report_.timed_runs = static_cast<int>(fm.size());
    // Not faster by at least 5 % (timing noise): the float model is the better choice here.
    report_.float_recommended = report_.quantized_ms * 1.05 > report_.float_ms;
    return Status::Ok();
  }

 private:
  const Model& model_;
  const Graph& g_;
  const CalibrationStats& stats_;
  const QuantizeOptions& o_;
  bool per_channel_;
  QuantizeReport& report_;
  int opset_ = 13;
  std::unique_ptr<Session> float_session_;
  std::vector<std::vector<Tensor>> reference_;
  std::vector<OutputMetric> metric_;
  std::vector<double> tolerance_;
};

std::string Worst(const Measured& m) {
  std::string s;
  for (const QuantOutputError& e : m.outputs) {
    if (!s.empty()) s += ", ";
    s += e.name + " " + e.metric + " " + Fmt(e.error);
  }
  return s;
}

}  // namespace

Status MeasureAndSearch(const Model& model, const CalibrationStats& stats,
                        const QuantizeOptions& o, bool per_channel, bool search,
                        std::set<std::string>& keep, QuantizeReport& report) {
  const auto start = Clock::now();
  const Graph& g = model.graph;
  Search s(model, stats, o, per_channel, report);
  KILN_RETURN_IF_ERROR(s.Init());
  report.measure_samples = static_cast<int>(o.samples.size());
  const size_t all = o.samples.size();
  std::map<std::string, std::string> op_of;
  for (const Node& node : g.nodes()) op_of[node.name] = node.op_type;
  auto progress = [&](const std::string& phase, int done, int total) {
    if (o.progress) o.progress(phase, done, std::max(done, total));
  };

  if (!search) {
    KILN_ASSIGN_OR_RETURN(Measured m, s.Evaluate(keep, all));
    report.output_errors = m.outputs;
    return s.Time(keep, o.search.speed_runs);
  }
  report.searched = true;
  const std::set<std::string> explicit_keep = keep;

  // Candidates: the layers the plan quantizes (pass-through ops only follow their input), in
  // topological order.
  KILN_ASSIGN_OR_RETURN(QdqPlan plan0, PlanQdq(g, stats, o, per_channel, keep));
  KILN_ASSIGN_OR_RETURN(std::vector<NodeId> order, g.TopologicalOrder());
  std::vector<std::string> candidates;
  std::map<std::string, size_t> position;
  for (NodeId id : order) {
    const Node& n = g.node(id);
    if (!plan0.nodes[id.v].quantized || IsPassThroughQuantOp(n.op_type)) continue;
    position[n.name] = candidates.size();
    candidates.push_back(n.name);
  }

  // The all-int8 model (with the explicit keeps) on every measuring sample.
  KILN_ASSIGN_OR_RETURN(Measured base, s.Evaluate(keep, all));
  report.all_int8_errors = base.outputs;
  Measured final = base;
  std::vector<std::string> kept;  // by the search, most sensitive first
  std::map<std::string, double> sensitivity;
  if (!base.passes() && !candidates.empty()) {
    // 1. Ranking.
    const size_t rank_n = std::min<size_t>(all, static_cast<size_t>(std::max(1, o.search.rank_samples)));
    double base_rank = 0;
    if (o.search.ranking == SensitivityRanking::kLeaveOut) {
      KILN_ASSIGN_OR_RETURN(Measured b, s.Evaluate(keep, rank_n));
      base_rank = b.worst;
    }
    std::set<std::string> everything = keep;
    for (const std::string& c : candidates) everything.insert(c);
    int done = 0;
    for (const std::string& c : candidates) {
      std::set<std::string> k;
      if (o.search.ranking == SensitivityRanking::kAlone) {
        k = everything;
        k.erase(c);
      } else {
        k = keep;
        k.insert(c);
      }
      KILN_ASSIGN_OR_RETURN(Measured m, s.Evaluate(k, rank_n));
      sensitivity[c] = o.search.ranking == SensitivityRanking::kAlone ? m.worst : base_rank - m.worst;
      progress("ranking layers", ++done, static_cast<int>(candidates.size()));
    }
    std::vector<std::string> ranked = candidates;
    std::stable_sort(ranked.begin(), ranked.end(), [&](const std::string& a, const std::string& b) {
      return sensitivity[a] > sensitivity[b];
    });
    for (const std::string& c : ranked) report.layer_errors.push_back({c, op_of[c], sensitivity[c]});

    // 2. The shortest passing prefix.
    auto with = [&](const std::vector<std::string>& names) {
      std::set<std::string> k = explicit_keep;
      k.insert(names.begin(), names.end());
      return k;
    };
    auto prefix = [&](size_t k) {
      return std::vector<std::string>(ranked.begin(), ranked.begin() + static_cast<long>(k));
    };
    int evals = 0;
    const int expected = 2 * static_cast<int>(std::ceil(std::log2(ranked.size() + 1.0)));
    Measured best;
    auto passes = [&](size_t k) -> Result<bool> {
      KILN_ASSIGN_OR_RETURN(Measured m, s.Evaluate(with(prefix(k)), all));
      progress("searching", ++evals, expected);
      if (!m.passes()) return false;
      best = std::move(m);
      return true;
    };
    // More than max_kept_fraction of the layers float is not an int8 model worth having (and
    // usually means broken calibration data): the search gives up there.
    const double fraction = std::clamp(o.search.max_kept_fraction, 0.0, 1.0);
    const size_t limit = std::max<size_t>(
        1, static_cast<size_t>(std::floor(fraction * static_cast<double>(ranked.size()))));
    KILN_ASSIGN_OR_RETURN(std::optional<size_t> count,
                          SmallestPassingCount(std::min(limit, ranked.size()), passes));
    if (!count) {
      report.search_gave_up = true;
      report.notes.push_back(
          "the tolerance is not reached with " + std::to_string(limit) + " of " +
          std::to_string(ranked.size()) + " quantizable layers float (the most sensitive ones; "
          "worst " + Worst(final) + " all int8): int8 does not pay off for this model at this "
          "tolerance (or the calibration data is broken); written all int8 beyond the explicit "
          "selection, beyond tolerance: use the float model, or choose with --keep-float");
    } else {
      kept = prefix(*count);
      final = best;
      // 3. Prune, least sensitive first.
      if (o.search.prune && kept.size() > 1) {
        int tried = 0;
        const int to_try = static_cast<int>(kept.size());
        for (size_t i = kept.size(); i-- > 0;) {
          if (kept.size() <= 1) break;
          std::vector<std::string> without = kept;
          without.erase(without.begin() + static_cast<long>(i));
          KILN_ASSIGN_OR_RETURN(Measured m, s.Evaluate(with(without), all));
          progress("pruning", ++tried, to_try);
          if (m.passes()) {
            kept = std::move(without);
            final = std::move(m);
          }
        }
      }
    }
    // 4. Small gaps between kept layers, when filling them removes conversions.
    std::vector<std::string> filled;
    if (o.search.max_gap > 0 && kept.size() > 1) {
      std::set<std::string> k = with(kept);
      KILN_ASSIGN_OR_RETURN(int conv, s.Conversions(k));
      std::vector<size_t> pos;
      pos.reserve(kept.size());
      for (const std::string& c : kept) pos.push_back(position[c]);
      std::sort(pos.begin(), pos.end());
      for (size_t i = 0; i + 1 < pos.size(); ++i) {
        const size_t gap = pos[i + 1] - pos[i] - 1;
        if (gap == 0 || gap > static_cast<size_t>(o.search.max_gap)) continue;
        std::set<std::string> k2 = k;
        for (size_t p = pos[i] + 1; p < pos[i + 1]; ++p) k2.insert(candidates[p]);
        KILN_ASSIGN_OR_RETURN(int conv2, s.Conversions(k2));
        if (conv2 < conv) {
          for (size_t p = pos[i] + 1; p < pos[i + 1]; ++p) filled.push_back(candidates[p]);
          k = std::move(k2);
          conv = conv2;
        }
      }
      if (!filled.empty()) {
        KILN_ASSIGN_OR_RETURN(Measured m, s.Evaluate(k, all));
        if (m.passes() || m.worst <= final.worst) {
          final = std::move(m);
        } else {
          filled.clear();
        }
      }
    }
    for (const std::string& c : kept) {
      keep.insert(c);
      report.kept.push_back(
          {c, op_of[c], "searched: sensitivity " + Fmt(sensitivity[c]) + " x tolerance (" +
                            SensitivityRankingName(o.search.ranking) + "), needed to stay within it"});
    }
    for (const std::string& c : filled) {
      keep.insert(c);
      report.kept.push_back({c, op_of[c], "fills a gap between kept layers (fewer conversions)"});
    }
  }
  report.output_errors = final.outputs;
  report.search_seconds = Seconds(start);
  KILN_RETURN_IF_ERROR(s.Time(keep, o.search.speed_runs));
  if (report.search_gave_up) report.float_recommended = true;
  return Status::Ok();
}

Result<QuantOutputError> MeasureOutputErrorImpl(const std::vector<const Tensor*>& candidate,
                                           const std::vector<const Tensor*>& reference,
                                           OutputMetric metric) {
  if (candidate.size() != reference.size()) {
    return InvalidArgument("output error: " + std::to_string(candidate.size()) +
                           " candidate samples for " + std::to_string(reference.size()) +
                           " reference ones");
  }
  if (metric == OutputMetric::kAuto) {
    bool dist = !reference.empty();
    for (const Tensor* r : reference) dist = dist && IsDistribution(*r);
    metric = dist ? OutputMetric::kArgmax : OutputMetric::kRelL2;
  }
  OutputAccumulator acc;
  for (size_t i = 0; i < reference.size(); ++i) {
    KILN_RETURN_IF_ERROR(acc.Add(*candidate[i], *reference[i], metric == OutputMetric::kArgmax));
  }
  QuantOutputError e = FinishOutputError(acc, metric);
  e.tolerance = DefaultTolerance(metric);
  return e;
}

}  // namespace kiln::quant_internal

namespace kiln {

Result<QuantOutputError> MeasureOutputError(const std::vector<const Tensor*>& candidate,
                                           const std::vector<const Tensor*>& reference,
                                           OutputMetric metric) {
  return quant_internal::MeasureOutputErrorImpl(candidate, reference, metric);
}

}  // namespace kiln
