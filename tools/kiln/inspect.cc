// kiln inspect MODEL [--graph] [--shape NAME=D0,...]... [session flags]: inputs, outputs,
// opsets, op histogram, parameters by element type, and the resident weight memory once a
// session has planned the model (the model's own weights at their stated types plus the copies
// backends make, e.g. packed or f16-raised-to-f32 weights), with the measured process RSS.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>

#include "commands.h"
#include "ir/printer.h"
#include "onnx/importer.h"
#include "package/package.h"
#include "tool_util.h"

namespace kiln::cli {
namespace {

struct Stats {
  std::map<std::string, int> ops;
  std::map<std::string, int64_t> bytes_by_type;
  int64_t params = 0;
  int64_t param_bytes = 0;
  int64_t initializers = 0;
  int nodes = 0;
  int subgraphs = 0;
};

void Collect(const Graph& g, Stats& s) {
  for (const Value& v : g.values()) {
    if (v.kind != ValueKind::kInitializer) continue;
    ++s.initializers;
    s.params += v.initializer.size();
    s.param_bytes += static_cast<int64_t>(v.initializer.bytes());
    s.bytes_by_type[ElementTypeName(v.initializer.type())] += static_cast<int64_t>(v.initializer.bytes());
  }
  for (const Node& n : g.nodes()) {
    ++s.nodes;
    ++s.ops[n.domain.empty() ? n.op_type : n.domain + "." + n.op_type];
    for (const Attribute& a : n.attrs.items()) {
      if (a.kind == Attribute::Kind::kTensor && n.op_type == "Constant") {
        s.params += a.t.size();
        s.param_bytes += static_cast<int64_t>(a.t.bytes());
        s.bytes_by_type[ElementTypeName(a.t.type())] += static_cast<int64_t>(a.t.bytes());
        ++s.initializers;
      }
      if (a.g) {
        ++s.subgraphs;
        Collect(*a.g, s);
      }
      for (const auto& sub : a.graphs) {
        ++s.subgraphs;
        Collect(*sub, s);
      }
    }
  }
}

// Resident set size of this process in bytes (Linux /proc), or -1.
int64_t ResidentBytes() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
  }
  return -1;
}

double Mb(int64_t b) { return static_cast<double>(b) / 1e6; }

struct InspectOptions {
  std::string path;
  bool print_graph = false;
  bool no_plan = false;
  std::vector<std::string> shapes;
  SessionFlags session;
};

// Plans the model in a session and reports the weight memory it holds.
Status ReportResidentWeights(const InspectOptions& o, const Stats& s, int64_t rss_before) {
  KILN_ASSIGN_OR_RETURN(Model model, ImportOnnxFile(o.path));
  KILN_ASSIGN_OR_RETURN(auto shapes, ParseShapes(o.shapes));
  KILN_ASSIGN_OR_RETURN(NamedTensors inputs, MakeInputs(model.graph, {}, shapes, 0, false));
  KILN_ASSIGN_OR_RETURN(SessionOptions so, ToSessionOptions(o.session));
  KILN_ASSIGN_OR_RETURN(auto session, Session::Create(std::move(model), so));
  KILN_ASSIGN_OR_RETURN(std::shared_ptr<const ExecutionPlan> plan, session->Plan(inputs));
  const int64_t rss_after = ResidentBytes();
  int64_t copies = 0;
  std::map<std::string, int64_t> copies_by_backend;
  for (const CompiledStep& cs : plan->compiled) {
    copies += cs.program->weight_bytes();
    copies_by_backend[cs.backend->name()] += cs.program->weight_bytes();
  }
  int raised = 0, nodes = 0;
  std::map<std::string, int> raised_by;
  const Graph& g = session->graph();
  for (uint32_t i = 0; i < g.num_nodes(); ++i) {
    const NodePlacement& p = plan->partitioning.placement[i];
    if (p.backend < 0) continue;
    ++nodes;
    if (p.actual != p.stated && p.actual != ElementType::kUndefined) {
      ++raised;
      raised_by[PrecisionLabel(p.stated, p.actual) + " on " + session->backends()[p.backend]->name()]++;
    }
  }
  std::printf("resident weights (model type %s, planned for", ModelTypeName(session->model_type()));
  for (const auto& [name, t] : inputs) std::printf(" %s=%s", name.c_str(), t.Describe().c_str());
  std::printf("):\n");
  std::printf("  model weights as stored:  %.3f MB", Mb(s.param_bytes));
  for (const auto& [type, bytes] : s.bytes_by_type) std::printf(", %s %.3f MB", type.c_str(), Mb(bytes));
  std::printf("\n");
  for (const auto& [backend, bytes] : copies_by_backend) {
    std::printf("  %s copies (packed/converted): %.3f MB\n", backend.c_str(), Mb(bytes));
  }
  const int64_t released = session->released_weight_bytes();
  if (released > 0) {
    std::printf("  model weights released after packing (ReleasePackedWeights): %.3f MB\n",
                Mb(released));
  }
  std::printf("  total: %.3f MB\n", Mb(std::max<int64_t>(0, s.param_bytes + copies - released)));
  for (const std::string& note : session->notes()) std::printf("  note: %s\n", note.c_str());
  std::printf("  %d of %d placed nodes run above their stated precision", raised, nodes);
  for (const auto& [label, count] : raised_by) std::printf("; %d %s", count, label.c_str());
  std::printf("\n");
  if (rss_before > 0 && rss_after > 0) {
    std::printf("  process RSS: %.1f MB before loading, %.1f MB after planning (+%.1f MB, arena %.1f MB)\n",
                Mb(rss_before), Mb(rss_after), Mb(rss_after - rss_before),
                Mb(plan->memory.arena_bytes));
  }
  return Status::Ok();
}

Status DoInspect(const InspectOptions& in) {
  InspectOptions o = in;
  if (IsPackagePath(o.path)) {
    KILN_ASSIGN_OR_RETURN(SessionOptions so, ToSessionOptions(o.session));
    KILN_RETURN_IF_ERROR(InspectPackage(o.path, so));
    KILN_ASSIGN_OR_RETURN(Package pkg, Package::Open(o.path));
    o.path = pkg.Path(pkg.manifest().default_model);
    std::printf("\n");
  }
  const std::string& path = o.path;
  const bool print_graph = o.print_graph;
  const int64_t rss_before = ResidentBytes();
  KILN_ASSIGN_OR_RETURN(Model m, ImportOnnxFile(path));
  const Graph& g = m.graph;
  std::printf("model: %s\n", path.c_str());
  std::printf("ir version: %lld, producer: %s %s\n", static_cast<long long>(m.ir_version),
              m.producer_name.c_str(), m.producer_version.c_str());
  std::printf("opsets:");
  for (const auto& [domain, v] : m.opsets) {
    std::printf(" %s=%d", domain.empty() ? "ai.onnx" : domain.c_str(), v);
  }
  std::printf("\ninputs:\n");
  for (ValueId id : g.inputs()) {
    std::printf("  %-32s %s\n", g.value(id).name.c_str(), g.value(id).info.ToString().c_str());
  }
  std::printf("outputs:\n");
  for (ValueId id : g.outputs()) {
    std::printf("  %-32s %s\n", g.value(id).name.c_str(), g.value(id).info.ToString().c_str());
  }
  Stats s;
  Collect(g, s);
  std::printf("nodes: %d (%d nested graphs)\n", s.nodes, s.subgraphs);
  std::printf("parameters: %lld in %lld initializers and constants, %.3f MB",
              static_cast<long long>(s.params), static_cast<long long>(s.initializers),
              static_cast<double>(s.param_bytes) / 1e6);
  for (const auto& [type, bytes] : s.bytes_by_type) std::printf(", %s %.3f MB", type.c_str(), Mb(bytes));
  std::printf("\n");
  std::vector<std::pair<int, std::string>> hist;
  for (const auto& [op, count] : s.ops) hist.emplace_back(-count, op);
  std::sort(hist.begin(), hist.end());
  std::printf("ops:\n");
  for (const auto& [neg, op] : hist) std::printf("  %-28s %d\n", op.c_str(), -neg);
  if (print_graph) std::printf("\n%s", PrintGraph(g).c_str());
  if (!m.metadata.empty()) {
    std::printf("metadata:\n");
    for (const auto& [k, v] : m.metadata) std::printf("  %s = %s\n", k.c_str(), v.c_str());
  }
  if (!o.no_plan) {
    Status st = ReportResidentWeights(o, s, rss_before);
    if (!st.ok()) std::printf("resident weights: not planned: %s\n", st.message().c_str());
  }
  return Status::Ok();
}

}  // namespace

Command AddInspectCommand(CLI::App& app) {
  auto o = std::make_shared<InspectOptions>();
  CLI::App* sub = app.add_subcommand(
      "inspect", "Describe a model: inputs, outputs, ops, parameters, resident weight memory");
  sub->add_option("model", o->path, "ONNX model file or Kiln package")->required();
  sub->add_flag("--graph", o->print_graph, "Also print the whole graph after inference");
  sub->add_option("--shape", o->shapes, "NAME=D0,D1,...: input shape for planning (dynamic dims default to 1)");
  sub->add_flag("--no-plan", o->no_plan, "Skip planning (no resident weight report)");
  AddSessionFlags(sub, o->session);
  return {sub, [o] { return DoInspect(*o); }};
}

}  // namespace kiln::cli
