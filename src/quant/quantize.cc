// QuantizeModel: naming, opset upgrade, keep-float selection (explicit and auto:TOL), the QDQ
// rewrite and the metadata (see quantize.h).
#include "quant/quantize.h"

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
  if (options.keep_float.auto_tolerance) {
    KILN_RETURN_IF_ERROR(AutoSelect(model, stats, options, per_channel,
                                    *options.keep_float.auto_tolerance, keep, report));
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
  model.metadata["kiln.quantization"] = q.dump();
  model.metadata["kiln.quantizer"] = kQuantizerVersion;
  return report;
}

}  // namespace kiln
