// kiln inspect MODEL: inputs, outputs, opsets, op histogram, parameters.
#include <cstdio>
#include <map>

#include "commands.h"
#include "ir/printer.h"
#include "onnx/importer.h"

namespace kiln::cli {
namespace {

struct Stats {
  std::map<std::string, int> ops;
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
  }
  for (const Node& n : g.nodes()) {
    ++s.nodes;
    ++s.ops[n.domain.empty() ? n.op_type : n.domain + "." + n.op_type];
    for (const Attribute& a : n.attrs.items()) {
      if (a.kind == Attribute::Kind::kTensor && n.op_type == "Constant") {
        s.params += a.t.size();
        s.param_bytes += static_cast<int64_t>(a.t.bytes());
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

Status DoInspect(const std::string& path, bool print_graph) {
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
  std::printf("parameters: %lld in %lld initializers and constants, %.3f MB\n",
              static_cast<long long>(s.params), static_cast<long long>(s.initializers),
              static_cast<double>(s.param_bytes) / 1e6);
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
  return Status::Ok();
}

}  // namespace

Command AddInspectCommand(CLI::App& app) {
  auto path = std::make_shared<std::string>();
  auto print_graph = std::make_shared<bool>(false);
  CLI::App* sub = app.add_subcommand("inspect", "Describe a model: inputs, outputs, ops, parameters");
  sub->add_option("model", *path, "ONNX model file")->required();
  sub->add_flag("--graph", *print_graph, "Also print the whole graph after inference");
  return {sub, [path, print_graph] { return DoInspect(*path, *print_graph); }};
}

}  // namespace kiln::cli
