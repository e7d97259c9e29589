// kiln compare REFERENCE CANDIDATE [-i NAME=FILE.npy]... [--shape NAME=D0,..]... [--samples N]
//              [--seed S] [--threads N] [--json FILE]
#include "compare.h"

#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "commands.h"
#include "onnx/importer.h"
#include "runtime/session.h"
#include "tool_util.h"

namespace kiln::cli {
namespace {

// `t` converted to the floating type `to` (rounding to nearest, overflow to inf).
Tensor CastFloat(const Tensor& t, ElementType to) {
  Tensor out = Tensor::Allocate(to, t.shape()).value();
  Dispatch<kDispatchFloat>(to, [&](auto tag) {
    using T = decltype(tag);
    T* p = out.template data<T>();
    for (int64_t i = 0; i < t.size(); ++i) {
      if constexpr (std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>) {
        p[i] = T(static_cast<float>(t.GetAsDouble(i)));
      } else {
        p[i] = static_cast<T>(t.GetAsDouble(i));
      }
    }
  });
  return out;
}

std::string ValueName(const Graph& g, ValueId id) { return id.valid() ? g.value(id).name : ""; }

// The candidate's inputs: the reference's tensors by name, float ones cast to the candidate's
// declared type where it differs.
Result<NamedTensors> CandidateInputs(const Graph& ref, const Graph& cand, const NamedTensors& in,
                                     std::vector<std::string>* notes) {
  for (ValueId id : ref.inputs()) {
    const std::string& name = ref.value(id).name;
    auto v = cand.FindValue(name);
    if (!v || cand.value(*v).kind != ValueKind::kInput) {
      return InvalidArgument("the candidate has no input named '" + name +
                             "', an input of the reference");
    }
  }
  NamedTensors out;
  for (ValueId id : cand.inputs()) {
    const Value& v = cand.value(id);
    const Tensor* t = nullptr;
    for (const auto& [name, tensor] : in) {
      if (name == v.name) t = &tensor;
    }
    if (t == nullptr) {
      return InvalidArgument("the candidate's input '" + v.name + "' is not an input of the reference");
    }
    if (IsFloating(v.info.type) && IsFloating(t->type()) && v.info.type != t->type()) {
      if (notes) {
        notes->push_back(std::string("input '") + v.name + "' cast from " +
                         ElementTypeName(t->type()) + " to the candidate's " +
                         ElementTypeName(v.info.type));
      }
      out.emplace_back(v.name, CastFloat(*t, v.info.type));
    } else {
      out.emplace_back(v.name, *t);
    }
  }
  return out;
}

std::string OutputName(const Graph& g, size_t i) { return g.value(g.outputs()[i]).name; }

nlohmann::ordered_json Number(double x) {
  if (std::isnan(x)) return "nan";
  if (std::isinf(x)) return x > 0 ? "inf" : "-inf";
  return x;
}

}  // namespace

std::string NonFiniteOrigin::Describe() const {
  const std::string s = " (sample " + std::to_string(sample) + ")";
  if (is_graph_input) return "graph input '" + value_name + "' after the cast to the candidate's type" + s;
  return op_type + " '" + node_name + "' output '" + value_name + "'" + s;
}

Result<CompareResult> CompareModels(Model reference, Model candidate, const CompareOptions& o) {
  const int samples = std::max(1, o.samples);
  // MakeInputs needs the reference's graph; keep it alive in the session and read it there.
  KILN_ASSIGN_OR_RETURN(auto ref_session,
                        Session::Create(std::move(reference), SessionOptions::Threads(o.threads)));
  KILN_ASSIGN_OR_RETURN(auto cand_session,
                        Session::Create(std::move(candidate), SessionOptions::Threads(o.threads)));
  const Graph& rg = ref_session->graph();
  const Graph& cg = cand_session->graph();

  // Reference output i -> candidate output index, by name.
  std::vector<size_t> cand_index;
  for (size_t i = 0; i < rg.outputs().size(); ++i) {
    const std::string name = OutputName(rg, i);
    size_t found = cg.outputs().size();
    for (size_t j = 0; j < cg.outputs().size(); ++j) {
      if (OutputName(cg, j) == name) found = j;
    }
    if (found == cg.outputs().size()) {
      return InvalidArgument("the candidate has no output named '" + name + "'");
    }
    cand_index.push_back(found);
  }

  CompareResult result;
  result.samples = samples;
  std::vector<ErrorStatsAccumulator> acc(rg.outputs().size());
  result.outputs.resize(rg.outputs().size());
  for (int s = 0; s < samples; ++s) {
    KILN_ASSIGN_OR_RETURN(NamedTensors in, MakeInputs(rg, o.inputs, o.shapes, o.seed + s,
                                                      o.verbose && s == 0));
    KILN_ASSIGN_OR_RETURN(NamedTensors cand_in,
                          CandidateInputs(rg, cg, in, s == 0 ? &result.notes : nullptr));
    const bool search = !result.first_non_finite.has_value();
    if (search) {
      for (size_t i = 0; i < cand_in.size() && !result.first_non_finite; ++i) {
        for (const auto& [name, t] : in) {
          if (name == cand_in[i].first && AllFinite(t) && !AllFinite(cand_in[i].second)) {
            result.first_non_finite = NonFiniteOrigin{true, "", "", name, s};
          }
        }
      }
    }

    // The reference's finiteness per value name (AND over every time a value is produced).
    std::unordered_map<std::string, bool> ref_finite;
    NodeObserver ref_observer = [&](const Graph& g, const Node& n,
                                    const std::vector<const Tensor*>& outs) {
      for (size_t k = 0; k < outs.size() && k < n.outputs.size(); ++k) {
        if (outs[k] == nullptr) continue;
        auto [it, inserted] = ref_finite.emplace(ValueName(g, n.outputs[k]), true);
        it->second = it->second && AllFinite(*outs[k]);
      }
    };
    std::optional<NonFiniteOrigin> first;
    NodeObserver cand_observer = [&](const Graph& g, const Node& n,
                                     const std::vector<const Tensor*>& outs) {
      if (first) return;
      for (size_t k = 0; k < outs.size() && k < n.outputs.size(); ++k) {
        if (outs[k] == nullptr || AllFinite(*outs[k])) continue;
        const std::string name = ValueName(g, n.outputs[k]);
        auto it = ref_finite.find(name);
        if (it == ref_finite.end() || it->second) {
          first = NonFiniteOrigin{false, n.op_type, n.name, name, s};
          return;
        }
      }
    };
    auto ref_out = ref_session->Run(in, search ? &ref_observer : nullptr);
    if (!ref_out.ok()) return ref_out.status().WithContext("reference (sample " + std::to_string(s) + ")");
    auto cand_out = cand_session->Run(cand_in, search ? &cand_observer : nullptr);
    if (!cand_out.ok()) return cand_out.status().WithContext("candidate (sample " + std::to_string(s) + ")");
    if (search && first) result.first_non_finite = first;

    for (size_t i = 0; i < acc.size(); ++i) {
      const Tensor& r = (*ref_out)[i];
      const Tensor& c = (*cand_out)[cand_index[i]];
      OutputComparison& oc = result.outputs[i];
      if (s == 0) {
        oc.name = OutputName(rg, i);
        oc.reference_type = ElementTypeName(r.type());
        oc.candidate_type = ElementTypeName(c.type());
        oc.shape = r.shape();
      }
      KILN_RETURN_IF_ERROR(acc[i].Add(c, r).WithContext("output '" + oc.name + "'"));
    }
  }
  for (size_t i = 0; i < acc.size(); ++i) result.outputs[i].stats = acc[i].Result();
  return result;
}

std::string FormatCompareTable(const CompareResult& r) {
  std::string out;
  char buf[512];
  size_t width = 6;
  for (const auto& oc : r.outputs) width = std::max(width, oc.name.size());
  std::snprintf(buf, sizeof(buf), "%-*s  %-9s  %11s %11s %11s %11s %9s %8s %10s\n",
                static_cast<int>(width), "output", "types", "max_abs", "max_rel", "rel_l2",
                "cosine", "snr_db", "argmax", "non_finite");
  out += buf;
  for (const auto& oc : r.outputs) {
    const ErrorStats& s = oc.stats;
    const std::string types = oc.reference_type + "/" + oc.candidate_type;
    char argmax[32] = "-";
    if (s.argmax_rows > 0) std::snprintf(argmax, sizeof(argmax), "%.4f", s.argmax_agreement);
    std::snprintf(buf, sizeof(buf), "%-*s  %-9s  %11.4g %11.4g %11.4g %11.6f %9.2f %8s %10lld\n",
                  static_cast<int>(width), oc.name.c_str(), types.c_str(), s.max_abs_error,
                  s.max_rel_error, s.rel_l2, s.cosine, s.snr_db, argmax,
                  static_cast<long long>(s.non_finite));
    out += buf;
  }
  out += "first non-finite in candidate: " +
         (r.first_non_finite ? r.first_non_finite->Describe() : std::string("none")) + "\n";
  return out;
}

std::string CompareResultToJson(const CompareResult& r, const std::string& reference_path,
                                const std::string& candidate_path) {
  nlohmann::ordered_json j;
  j["reference"] = reference_path;
  j["candidate"] = candidate_path;
  j["samples"] = r.samples;
  j["outputs"] = nlohmann::ordered_json::array();
  for (const auto& oc : r.outputs) {
    const ErrorStats& s = oc.stats;
    j["outputs"].push_back({
        {"name", oc.name},
        {"reference_type", oc.reference_type},
        {"candidate_type", oc.candidate_type},
        {"shape", oc.shape},
        {"elements", s.elements},
        {"max_abs_error", Number(s.max_abs_error)},
        {"max_rel_error", Number(s.max_rel_error)},
        {"rel_l2", Number(s.rel_l2)},
        {"cosine", Number(s.cosine)},
        {"snr_db", Number(s.snr_db)},
        {"argmax_agreement", s.argmax_rows > 0 ? Number(s.argmax_agreement) : nlohmann::ordered_json()},
        {"argmax_rows", s.argmax_rows},
        {"non_finite", s.non_finite},
    });
  }
  if (r.first_non_finite) {
    const NonFiniteOrigin& f = *r.first_non_finite;
    j["first_non_finite"] = {{"kind", f.is_graph_input ? "graph_input" : "node"},
                             {"op_type", f.op_type},
                             {"node", f.node_name},
                             {"value", f.value_name},
                             {"sample", f.sample}};
  } else {
    j["first_non_finite"] = nullptr;
  }
  j["notes"] = r.notes;
  return j.dump(2) + "\n";
}

namespace {

struct CompareCliOptions {
  std::string reference, candidate;
  std::vector<std::string> inputs, shapes;
  int samples = 1;
  uint64_t seed = 0;
  int threads = 1;
  std::string json;
};

Status DoCompare(const CompareCliOptions& o) {
  auto ref = ImportOnnxFile(o.reference);
  if (!ref.ok()) return ref.status().WithContext("reference " + o.reference);
  auto cand = ImportOnnxFile(o.candidate);
  if (!cand.ok()) return cand.status().WithContext("candidate " + o.candidate);
  CompareOptions co;
  KILN_ASSIGN_OR_RETURN(co.inputs, ParseInputFiles(o.inputs));
  KILN_ASSIGN_OR_RETURN(co.shapes, ParseShapes(o.shapes));
  co.samples = o.samples;
  co.seed = o.seed;
  co.threads = o.threads;
  co.verbose = true;
  KILN_ASSIGN_OR_RETURN(CompareResult r,
                        CompareModels(std::move(ref).value(), std::move(cand).value(), co));
  for (const auto& note : r.notes) std::fprintf(stderr, "note: %s\n", note.c_str());
  std::printf("%s", FormatCompareTable(r).c_str());
  if (!o.json.empty()) {
    std::ofstream f(o.json, std::ios::binary | std::ios::trunc);
    f << CompareResultToJson(r, o.reference, o.candidate);
    f.close();
    if (!f) return IoError("cannot write " + o.json);
  }
  return Status::Ok();
}

}  // namespace

Command AddCompareCommand(CLI::App& app) {
  auto o = std::make_shared<CompareCliOptions>();
  CLI::App* sub = app.add_subcommand(
      "compare", "Run a reference and a candidate model on the same inputs and report the error");
  sub->add_option("reference", o->reference, "Reference ONNX model (e.g. fp32)")->required();
  sub->add_option("candidate", o->candidate, "Candidate ONNX model (e.g. fp16)")->required();
  sub->add_option("-i,--input", o->inputs, "Input from a .npy file: NAME=FILE.npy (repeatable)");
  sub->add_option("--shape", o->shapes,
                  "Fix an input's shape for random data: NAME=D0,D1,... (repeatable)");
  sub->add_option("--samples", o->samples, "Random input draws (seeds S, S+1, ...)")
      ->check(CLI::Range(1, 100000));
  sub->add_option("--seed", o->seed, "Seed of the first random draw");
  sub->add_option("--threads", o->threads, "Threads for kernels")->check(CLI::Range(1, 256));
  sub->add_option("--json", o->json, "Also write the report as JSON to this file");
  return {sub, [o] { return DoCompare(*o); }};
}

}  // namespace kiln::cli
