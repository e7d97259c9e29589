// QuantizeModel: naming, opset upgrade, keep-float selection (explicit and auto:TOL), the QDQ
// rewrite and the metadata (see quantize.h).
#include "quant/quantize.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>

#include <nlohmann/json.hpp>

#include "ir/shape_inference.h"
#include "passes/pass_manager.h"
#include "quant/internal.h"

namespace kiln {

using namespace quant_internal;  // NOLINT

const char* ActivationTypeName(ActivationType t) { return t == ActivationType::kS8 ? "s8" : "u8"; }

Result<ActivationType> ParseActivationType(const std::string& s) {
  if (s == "u8") return ActivationType::kU8;
  if (s == "s8") return ActivationType::kS8;
  return InvalidArgument("--activations '" + s + "': expected u8 or s8");
}

const char* WeightRoundingName(WeightRounding r) {
  return r == WeightRounding::kNearest ? "nearest" : "sum";
}

Result<WeightRounding> ParseWeightRounding(const std::string& s) {
  if (s == "nearest") return WeightRounding::kNearest;
  if (s == "sum") return WeightRounding::kSumPreserving;
  return InvalidArgument("--weight-rounding '" + s + "': expected sum or nearest");
}

const char* OutputMetricName(OutputMetric m) {
  switch (m) {
    case OutputMetric::kAuto: return "auto";
    case OutputMetric::kArgmax: return "argmax";
    case OutputMetric::kRelL2: return "rel_l2";
    case OutputMetric::kCosine: return "cosine";
  }
  return "?";
}

Result<OutputMetric> ParseOutputMetric(const std::string& s) {
  if (s == "auto") return OutputMetric::kAuto;
  if (s == "argmax") return OutputMetric::kArgmax;
  if (s == "rel_l2") return OutputMetric::kRelL2;
  if (s == "cosine") return OutputMetric::kCosine;
  return InvalidArgument("--metric '" + s + "': expected auto, argmax, rel_l2 or cosine");
}

double DefaultTolerance(OutputMetric m) {
  switch (m) {
    case OutputMetric::kArgmax: return kDefaultArgmaxTolerance;
    case OutputMetric::kCosine: return kDefaultCosineTolerance;
    default: return kDefaultRelL2Tolerance;
  }
}

const char* SensitivityRankingName(SensitivityRanking r) {
  return r == SensitivityRanking::kLeaveOut ? "leave-out" : "alone";
}

Result<SensitivityRanking> ParseSensitivityRanking(const std::string& s) {
  if (s == "alone") return SensitivityRanking::kAlone;
  if (s == "leave-out") return SensitivityRanking::kLeaveOut;
  return InvalidArgument("--search-ranking '" + s + "': expected alone or leave-out");
}

Status ParseQuantizeKeepFloat(const std::string& text, QuantizeOptions& o) {
  o.keep_float = KeepSelector{};
  o.search.enabled = true;
  if (text.empty()) return Status::Ok();
  if (text == "none") {
    o.keep_float.text = "none";
    o.search.enabled = false;
    return Status::Ok();
  }
  // A bare "auto" is the search at the default tolerances; the other items are the selector's.
  std::string rest;
  bool bare_auto = false;
  size_t begin = 0;
  while (begin <= text.size()) {
    size_t end = text.find(',', begin);
    if (end == std::string::npos) end = text.size();
    const std::string item = text.substr(begin, end - begin);
    if (item == "auto") {
      bare_auto = true;
    } else if (item == "none") {
      return InvalidArgument("--keep-float '" + text + "': 'none' cannot be combined with other "
                             "items");
    } else {
      rest += (rest.empty() ? "" : ",") + item;
    }
    begin = end + 1;
  }
  auto sel = ParseKeepSelector(rest);
  if (!sel.ok()) {
    std::string m = sel.status().message();
    const std::string from = "--keep-fp32";
    if (m.rfind(from, 0) == 0) m = "--keep-float" + m.substr(from.size());
    return InvalidArgument(m);
  }
  o.keep_float = std::move(sel).value();
  o.keep_float.text = text;
  const bool explicit_items = !o.keep_float.op_types.empty() || !o.keep_float.name_patterns.empty();
  o.search.enabled = bare_auto || o.keep_float.auto_tolerance.has_value() || !explicit_items;
  return Status::Ok();
}

SampleSplit SplitCalibrationSamples(const std::vector<NamedTensors>& samples, double fraction,
                                    int min_measure) {
  SampleSplit s;
  const int n = static_cast<int>(samples.size());
  min_measure = std::max(1, min_measure);
  if (n < 2 * min_measure || !(fraction > 0 && fraction < 1)) {
    s.calibration = samples;
    s.measure = samples;
    return s;
  }
  // Every `step`-th sample, spread over the set (sample folders are often in drawing order).
  const int held = std::max(min_measure, static_cast<int>(std::lround(fraction * n)));
  std::vector<bool> out(static_cast<size_t>(n), false);
  for (int k = 0; k < held; ++k) out[static_cast<size_t>((2 * k + 1) * n / (2 * held))] = true;
  for (int i = 0; i < n; ++i) (out[i] ? s.measure : s.calibration).push_back(samples[i]);
  s.held_out = true;
  return s;
}

namespace {

int DefaultOpset(const Model& m) {
  auto it = m.opsets.find("");
  return it == m.opsets.end() ? 0 : it->second;
}

}  // namespace

Result<QuantizeReport> QuantizeModel(Model& model, const CalibrationStats& stats,
                                     const QuantizeOptions& options) {
  QuantizeReport report;
  NameUnnamedNodes(model.graph);
  report.opset_before = DefaultOpset(model);
  bool per_channel = options.per_channel;
  if (report.opset_before < 13) {
    Status up = UpgradeToOpset13(model);
    if (!up.ok()) {
      if (report.opset_before < 10) {
        return InvalidArgument("QuantizeLinear needs opset 10 and the model's opset " +
                               std::to_string(report.opset_before) +
                               " cannot be upgraded: " + up.message());
      }
      if (per_channel) {
        per_channel = false;
        report.notes.push_back("weights per tensor: per-channel scales need opset 13 and " +
                               up.message());
      }
    } else {
      KILN_RETURN_IF_ERROR(InferShapes(model.graph, InferShapesOptions{}));
    }
  }
  report.opset_after = DefaultOpset(model);
  report.per_channel = per_channel;

  std::set<std::string> keep;
  for (const Node& n : model.graph.nodes()) {
    const std::string item = options.keep_float.MatchingItem(n);
    if (!item.empty() && keep.insert(n.name).second) {
      report.kept.push_back({n.name, n.op_type, "selected by " + item});
    }
  }
  const bool search = options.search.enabled || options.keep_float.auto_tolerance.has_value();
  if (!options.samples.empty()) {
    KILN_RETURN_IF_ERROR(
        MeasureAndSearch(model, stats, options, per_channel, search, keep, report));
  } else if (options.keep_float.auto_tolerance) {
    return InvalidArgument("auto:TOL needs samples to measure on (--data)");
  } else if (search) {
    report.notes.push_back("no samples to measure on: nothing kept float by measurement, the "
                           "accuracy of the int8 model is not checked");
  }
  KILN_ASSIGN_OR_RETURN(QdqPlan plan, PlanQdq(model.graph, stats, options, per_channel, keep));
  for (const std::string& n : plan.notes) report.notes.push_back(n);
  KILN_ASSIGN_OR_RETURN(Graph g, EmitQdq(model.graph, plan, options, report.opset_after, &report));
  model.graph = std::move(g);
  KILN_RETURN_IF_ERROR(EliminateDeadPass(model).status());
  Status inferred = InferShapes(model.graph, InferShapesOptions{});
  if (!inferred.ok()) {
    return Internal("the quantized model fails shape inference: " + inferred.message());
  }

  nlohmann::json q;
  q["method"] = options.method.ToString();
  q["activations"] = ActivationTypeName(options.activations);
  q["weights"] = "s8";
  q["weight_bits"] = options.weight_bits;
  q["per_channel"] = per_channel;
  q["bias_correction"] = options.bias_correction;
  q["weight_rounding"] = WeightRoundingName(options.weight_rounding);
  q["keep_float"] = options.keep_float.text;
  std::vector<std::string> kept;
  for (const QuantKeptNode& k : report.kept) kept.push_back(k.name);
  q["kept_float_nodes"] = kept;
  q["calibration_runs"] = stats.runs();
  if (report.searched) {
    nlohmann::json errs = nlohmann::json::array();
    for (const QuantOutputError& e : report.output_errors) {
      errs.push_back({{"output", e.name}, {"metric", e.metric}, {"error", e.error},
                      {"tolerance", e.tolerance}});
    }
    q["search"] = {{"measure_samples", report.measure_samples},
                   {"ranking", SensitivityRankingName(options.search.ranking)},
                   {"output_errors", errs}};
  }
  model.metadata["kiln.quantization"] = q.dump();
  model.metadata["kiln.quantizer"] = kQuantizerVersion;
  return report;
}

}  // namespace kiln
