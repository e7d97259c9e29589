#include "precision/convert.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>

#include "ir/shape_inference.h"
#include "precision/internal.h"

namespace kiln {

using namespace precision_internal;

const char* PrecisionName(Precision p) {
  switch (p) {
    case Precision::kFp32: return "fp32";
    case Precision::kFp16: return "fp16";
    case Precision::kMixed: return "mixed";
  }
  return "?";
}

Result<Precision> ParsePrecision(const std::string& s) {
  if (s == "fp32") return Precision::kFp32;
  if (s == "fp16") return Precision::kFp16;
  if (s == "mixed") return Precision::kMixed;
  return InvalidArgument("--precision '" + s + "': expected fp32, fp16 or mixed");
}

namespace {

void SelectExplicit(const Graph& g, const KeepSelector& sel, std::set<std::string>& keep,
                    ConvertReport& report) {
  for (const Node& n : g.nodes()) {
    std::string item = sel.MatchingItem(n);
    if (!item.empty() && keep.insert(n.name).second) {
      report.kept.push_back({n.name, n.op_type, "selected by " + item});
    }
    for (const Attribute& a : n.attrs.items()) {
      if (a.g) SelectExplicit(*a.g, sel, keep, report);
      for (const auto& sub : a.graphs) SelectExplicit(*sub, sel, keep, report);
    }
  }
}

// A float32 constant beyond the f16 range cannot be converted: its readers stay fp32, in every
// mode (e.g. a BatchNormalization running variance of 1e8 in PP-OCRv4 det).
const Tensor* ConstantOf(const Graph& g, ValueId v) {
  const Value& val = g.value(v);
  if (val.kind == ValueKind::kInitializer) return &val.initializer;
  if (!val.producer.valid()) return nullptr;
  const Node& p = g.node(val.producer);
  return p.op_type == "Constant" ? p.attrs.GetTensor("value") : nullptr;
}

void KeepOutOfRange(const Graph& g, std::set<std::string>& keep, ConvertReport& report) {
  for (const Node& n : g.nodes()) {
    for (const Attribute& a : n.attrs.items()) {
      if (a.g) KeepOutOfRange(*a.g, keep, report);
      for (const auto& sub : a.graphs) KeepOutOfRange(*sub, keep, report);
    }
    if (keep.count(n.name) || !ConvertibleOp(n)) continue;
    for (size_t s = 0; s < n.inputs.size(); ++s) {
      if (!n.inputs[s].valid() || FixedFloatInput(n, s)) continue;
      const Tensor* t = ConstantOf(g, n.inputs[s]);
      if (!t || t->type() != ElementType::kF32) continue;
      double max_abs = 0;
      for (int64_t i = 0; i < t->size(); ++i) {
        const double x = std::fabs(t->data<float>()[i]);
        if (std::isfinite(x)) max_abs = std::max(max_abs, x);
      }
      if (max_abs > 65504.0) {
        keep.insert(n.name);
        char buf[48];
        std::snprintf(buf, sizeof(buf), "%.3g", max_abs);
        report.kept.push_back({n.name, n.op_type, "overflow: constant '" + g.value(n.inputs[s]).name +
                                                      "' exceeds the fp16 range (max |x| " + buf + ")"});
        break;
      }
    }
  }
}

int64_t WeightBytes(const Graph& g) {
  int64_t bytes = 0;
  for (const Value& v : g.values()) {
    if (v.kind == ValueKind::kInitializer) bytes += static_cast<int64_t>(v.initializer.bytes());
  }
  for (const Node& n : g.nodes()) {
    for (const Attribute& a : n.attrs.items()) {
      if (a.kind == Attribute::Kind::kTensor && n.op_type == "Constant") bytes += a.t.bytes();
      if (a.g) bytes += WeightBytes(*a.g);
      for (const auto& sub : a.graphs) bytes += WeightBytes(*sub);
    }
  }
  return bytes;
}

int CastOpset(const Model& model) {
  auto it = model.opsets.find("");
  return it == model.opsets.end() ? 13 : it->second;
}

}  // namespace

Result<ConvertReport> ConvertPrecision(Model& model, const PrecisionOptions& options) {
  ConvertReport report;
  report.weight_bytes_before = WeightBytes(model.graph);
  if (options.precision != Precision::kFp32) {
    NameUnnamedNodes(model.graph);

    std::set<std::string> keep;
    SelectExplicit(model.graph, options.keep_fp32, keep, report);
    KeepOutOfRange(model.graph, keep, report);
    if (options.keep_fp32.auto_tolerance) {
      KILN_RETURN_IF_ERROR(
          AutoSelect(model, *options.keep_fp32.auto_tolerance, options, keep, report));
    }
    RewriteStats stats;
    KILN_ASSIGN_OR_RETURN(Graph g, RewriteGraph(model.graph, keep, true, !options.keep_io_types,
                                                CastOpset(model), &stats));
    Graph old = std::move(model.graph);
    model.graph = std::move(g);
    Status s = InferShapes(model.graph, InferShapesOptions{});
    if (!s.ok()) {
      model.graph = std::move(old);
      return Internal("the converted model fails shape inference: " + s.message());
    }
    report.converted = stats.converted;
    report.casts_inserted = stats.casts;
    report.initializers_converted = stats.initializers;
  } else if (!options.keep_fp32.text.empty()) {
    report.notes.push_back("--keep-fp32 has no effect with --precision fp32");
  }
  report.weight_bytes_after = WeightBytes(model.graph);

  std::string kept;
  for (const KeptNode& k : report.kept) kept += (kept.empty() ? "" : ",") + k.name;
  model.metadata["kiln.model_type"] = ModelTypeName(options.model_type);
  model.metadata["kiln.precision"] = PrecisionName(options.precision);
  model.metadata["kiln.keep_fp32"] = options.keep_fp32.text;
  model.metadata["kiln.keep_io_types"] = options.keep_io_types ? "true" : "false";
  model.metadata["kiln.kept_fp32_nodes"] = kept;
  model.metadata["kiln.converter"] = kPrecisionConverterVersion;
  return report;
}

}  // namespace kiln
