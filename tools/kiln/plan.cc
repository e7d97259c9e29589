// kiln plan MODEL [--shape NAME=D0,...]... [-i NAME=FILE.npy]... [--units U] [--threads N]
//                 [--backends ...] [--pin OP=BACKEND]... [--no-fallback]
//                 [--model-type program|network] [--format table|json|dot|html] [-o FILE]
// Shows where every node of a model runs for concrete input shapes: partitions, backends,
// units, precision and why nodes fell back; border conversions, weights, workspace and the
// arena; nodes folded at plan time. The plan is the one `kiln run` would execute.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <string>

#include "commands.h"
#include "plan/partitioner.h"
#include "plan_render.h"
#include "runtime/session.h"
#include "odc/serving_session.h"
#include "package/package.h"
#include "tool_util.h"

namespace kiln::cli {
namespace {

namespace fs = std::filesystem;

PlanValueInfo ValueInfo(const Graph& g, const ExecutionPlan& plan, ValueId v) {
  PlanValueInfo info;
  if (!v.valid()) return info;
  const Value& val = g.value(v);
  info.name = val.name;
  info.type = v.v < plan.types.size() ? plan.types[v.v].ToString() : val.info.ToString();
  info.constant = val.kind == ValueKind::kInitializer || plan.constants.count(v.v) > 0;
  return info;
}

// Graphviz-quoted string.
std::string DotQuote(const std::string& s) {
  std::string q = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') q += '\\';
    q += c == '\n' ? ' ' : c;
  }
  return q + "\"";
}

struct PlanOptions {
  std::string model;
  std::vector<std::string> inputs;
  std::vector<std::string> shapes;
  SessionFlags session;
  std::vector<std::string> configs;
  std::string format;  // empty: from -o's extension, else table
  std::string out;
};

Result<std::string> ChooseFormat(const PlanOptions& o) {
  std::string f = o.format;
  if (f.empty() && !o.out.empty()) {
    const std::string ext = fs::path(o.out).extension().string();
    if (ext == ".json") f = "json";
    if (ext == ".dot" || ext == ".gv") f = "dot";
    if (ext == ".html" || ext == ".htm") f = "html";
  }
  if (f.empty()) f = "table";
  if (f != "table" && f != "json" && f != "dot" && f != "html") {
    return InvalidArgument("--format '" + f + "': expected table, json, dot or html");
  }
  return f;
}

// Checks that `path` can be written before the (possibly slow) planning starts.
Status CheckOutputPath(const std::string& path) {
  const fs::path p(path);
  std::error_code ec;
  if (fs::is_directory(p, ec)) return InvalidArgument("-o " + path + " is a folder, not a file");
  const fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
  if (!fs::is_directory(dir, ec)) {
    return NotFound("cannot write " + path + ": folder " + dir.string() + " does not exist");
  }
  if (access(dir.c_str(), W_OK) != 0) {
    return IoError("cannot write " + path + ": folder " + dir.string() + " is not writable");
  }
  return Status::Ok();
}

// Writes a temporary file next to `path`, then renames it over `path`: readers never see a
// half-written report.
Status WriteFileAtomically(const std::string& path, const std::string& text) {
  const fs::path p(path);
  const fs::path tmp =
      p.parent_path() / ("." + p.filename().string() + ".tmp" + std::to_string(getpid()));
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) return IoError("cannot write " + path + ": cannot create " + tmp.string());
    f << text;
    f.flush();
    if (!f) {
      f.close();
      std::error_code ec;
      fs::remove(tmp, ec);
      return IoError("cannot write " + path + " (disk full?)");
    }
  }
  std::error_code ec;
  fs::rename(tmp, p, ec);
  if (ec) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    return IoError("cannot write " + path + ": " + ec.message());
  }
  return Status::Ok();
}

Status DoPlan(const PlanOptions& o) {
  KILN_ASSIGN_OR_RETURN(std::string format, ChooseFormat(o));
  if (!o.out.empty()) KILN_RETURN_IF_ERROR(CheckOutputPath(o.out));
  KILN_ASSIGN_OR_RETURN(auto given, ParseInputFiles(o.inputs));
  KILN_ASSIGN_OR_RETURN(auto shapes, ParseShapes(o.shapes));
  // A model or a package as `kiln run` opens it (a package: what serves it on this device, its
  // best compiled plan or its model), without recording.
  KILN_ASSIGN_OR_RETURN(ServeOptions serve, ToServeOptions(o.session, o.configs));
  serve.record = false;
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<ServingSession> serving, ServingSession::Open(o.model, serve));
  std::shared_ptr<Session> session = serving->session();
  if (serving->is_package()) {
    for (const std::string& note : serving->notes()) std::fprintf(stderr, "note: %s\n", note.c_str());
    std::fprintf(stderr, "serving: %s\n", serving->ServedBy().c_str());
  }
  KILN_ASSIGN_OR_RETURN(NamedTensors inputs, MakeInputs(session->graph(), given, shapes, 0, true));
  KILN_ASSIGN_OR_RETURN(std::shared_ptr<const ExecutionPlan> plan, session->Plan(inputs));
  const PlanReport report =
      CollectPlanReport(*session, *plan, fs::path(o.model).filename().string());
  std::string text;
  if (format == "json") {
    text = RenderPlanJson(report);
  } else if (format == "dot") {
    text = RenderPlanDot(report);
  } else if (format == "html") {
    text = RenderPlanHtml(report);
  } else {
    text = RenderPlanTable(report);
  }
  if (o.out.empty()) {
    std::fwrite(text.data(), 1, text.size(), stdout);
    return Status::Ok();
  }
  KILN_RETURN_IF_ERROR(WriteFileAtomically(o.out, text));
  std::printf("%s\nwrote %s (%s)\n", report.SummaryLine().c_str(), o.out.c_str(), format.c_str());
  return Status::Ok();
}

}  // namespace

size_t PlanReport::folded_count() const {
  size_t n = 0;
  for (const auto& node : nodes) n += node.folded ? 1 : 0;
  return n;
}

std::vector<std::pair<std::string, size_t>> PlanReport::NodesPerBackend() const {
  std::vector<std::pair<std::string, size_t>> out;
  for (const auto& [name, unit] : backends) {
    size_t n = 0;
    for (const auto& node : nodes) n += !node.folded && node.backend == name ? 1 : 0;
    if (n > 0) out.emplace_back(name, n);
  }
  return out;
}

std::string PlanReport::SummaryLine() const {
  std::string per;
  for (const auto& [name, n] : NodesPerBackend()) {
    per += (per.empty() ? "" : ", ") + name + " " + std::to_string(n);
  }
  return std::to_string(nodes.size()) + " nodes (" + std::to_string(folded_count()) + " folded), " +
         std::to_string(partitions.size()) + " partitions (" + per + "), model type " + model_type +
         ", units " + units + ", threads " + std::to_string(threads);
}

PlanReport CollectPlanReport(const Session& session, const ExecutionPlan& plan,
                             const std::string& model_file) {
  const Graph& g = session.graph();
  const auto& backends = session.backends();
  PlanReport r;
  r.model = model_file;
  r.model_type = ModelTypeName(session.model_type());
  r.units = ComputeUnitsName(session.options().units);
  r.threads = session.options().threads;
  for (const auto& b : backends) r.backends.emplace_back(b->name(), ComputeUnitName(b->unit()));
  r.notes = session.notes();
  for (ValueId v : g.inputs()) r.inputs.push_back(ValueInfo(g, plan, v));
  for (ValueId v : g.outputs()) r.outputs.push_back(ValueInfo(g, plan, v));
  const auto& placement = plan.partitioning.placement;
  for (uint32_t id = 0; id < g.num_nodes(); ++id) {
    const Node& n = g.node(NodeId(id));
    PlanNodeInfo info;
    info.id = id;
    info.name = n.name;
    info.op_type = n.domain.empty() ? n.op_type : n.domain + "." + n.op_type;
    for (ValueId v : n.inputs) info.inputs.push_back(ValueInfo(g, plan, v));
    for (ValueId v : n.outputs) info.outputs.push_back(ValueInfo(g, plan, v));
    const NodePlacement* p = id < placement.size() ? &placement[id] : nullptr;
    if (p == nullptr || p->partition < 0 || p->backend < 0 ||
        p->backend >= static_cast<int>(backends.size())) {
      info.folded = true;
    } else {
      info.partition = p->partition;
      info.backend = backends[p->backend]->name();
      info.unit = ComputeUnitName(backends[p->backend]->unit());
      const ElementType actual = p->actual == ElementType::kUndefined ? p->stated : p->actual;
      info.stated = ElementTypeName(p->stated);
      info.actual = ElementTypeName(actual);
      info.precision = PrecisionLabel(p->stated, p->actual);
      info.reason = p->reason;
      info.cost_us = p->cost_us;
    }
    r.nodes.push_back(std::move(info));
  }
  std::set<std::pair<uint32_t, uint32_t>> seen;
  for (uint32_t id = 0; id < g.num_nodes(); ++id) {
    const Node& n = g.node(NodeId(id));
    std::vector<ValueId> reads = n.inputs;
    for (ValueId v : g.ImplicitInputs(n)) reads.push_back(v);
    for (ValueId v : reads) {
      if (!v.valid() || !g.value(v).producer.valid()) continue;
      const uint32_t from = g.value(v).producer.v;
      if (from != id && seen.insert({from, id}).second)
        r.edges.push_back({from, id, g.value(v).name});
    }
  }
  const auto& parts = plan.partitioning.partitions;
  for (size_t p = 0; p < parts.size(); ++p) {
    const Partition& part = parts[p];
    PlanPartitionInfo info;
    info.index = static_cast<int>(p);
    if (part.backend >= 0 && part.backend < static_cast<int>(backends.size())) {
      info.backend = backends[part.backend]->name();
      info.unit = ComputeUnitName(backends[part.backend]->unit());
    }
    for (NodeId n : part.nodes) info.nodes.push_back(n.v);
    info.cost_us = part.cost_us;
    info.border_cost_us = part.border_cost_us;
    for (ValueId v : part.inputs) info.inputs.push_back(ValueInfo(g, plan, v));
    for (ValueId v : part.outputs) info.outputs.push_back(ValueInfo(g, plan, v));
    for (const CompiledStep& c : plan.compiled) {
      if (c.partition != static_cast<int>(p) || c.program == nullptr) continue;
      info.compiled = true;
      info.border_conversions = c.program->border_conversions();
      info.weight_bytes = c.program->weight_bytes();
      info.workspace_bytes = c.program->workspace_bytes();
    }
    r.partitions.push_back(std::move(info));
  }
  r.arena_bytes = plan.memory.arena_bytes;
  r.unshared_bytes = plan.memory.unshared_bytes;
  r.arena_buffers = plan.memory.buffers.size();
  return r;
}

std::string RenderPlanTable(const PlanReport& r) {
  std::string s;
  char buf[512];
  s += "model: " + r.model + "\n";
  s += "summary: " + r.SummaryLine() + "\n";
  std::string bl;
  for (const auto& [name, unit] : r.backends)
    bl += (bl.empty() ? "" : ", ") + name + " (" + unit + ")";
  s += "backends (preference order): " + bl + "\n";
  for (const auto& note : r.notes) s += "note: " + note + "\n";
  s += "inputs: " + ValueList(r.inputs) + "\n";
  s += "outputs: " + ValueList(r.outputs) + "\n";
  s += "memory: arena " + FormatBytes(r.arena_bytes) + " (" + FormatBytes(r.unshared_bytes) +
       " without reuse), " + std::to_string(r.arena_buffers) + " buffers\n";
  s += "\npartitions:\n";
  std::snprintf(buf, sizeof(buf), "  %3s  %-10s %-4s %6s %11s %11s %4s %4s %11s %11s\n", "#",
                "backend", "unit", "nodes", "est us", "border us", "in", "out", "weights",
                "workspace");
  s += buf;
  for (const auto& p : r.partitions) {
    std::snprintf(buf, sizeof(buf), "  %3d  %-10s %-4s %6zu %11.1f %11.1f %4zu %4zu %11s %11s\n",
                  p.index, p.backend.c_str(), p.unit.c_str(), p.nodes.size(), p.cost_us,
                  p.border_cost_us, p.inputs.size(), p.outputs.size(),
                  p.compiled ? FormatBytes(p.weight_bytes).c_str() : "-",
                  p.compiled ? FormatBytes(p.workspace_bytes).c_str() : "-");
    s += buf;
    s += "       border inputs: " + ValueList(p.inputs) + "\n";
    s += "       border outputs: " + ValueList(p.outputs) + "\n";
    if (!p.border_conversions.empty()) {
      std::string c;
      for (const auto& x : p.border_conversions) c += (c.empty() ? "" : "; ") + x;
      s += "       border conversions: " + c + "\n";
    }
  }
  s += "\nnodes (execution order):\n";
  std::snprintf(buf, sizeof(buf), "  %4s  %-13s %-24s %-16s %s\n", "part", "backend/unit",
                "precision", "op", "name  [why preferred backends declined]");
  s += buf;
  for (const auto& p : r.partitions) {
    for (uint32_t id : p.nodes) {
      const PlanNodeInfo& n = r.nodes[id];
      std::snprintf(buf, sizeof(buf), "  %4d  %-13s %-24s %-16s ", n.partition,
                    (n.backend + "/" + n.unit).c_str(), n.precision.c_str(), n.op_type.c_str());
      s += buf + n.name;
      if (!n.reason.empty()) s += "  [" + n.reason + "]";
      s += "\n";
    }
  }
  s += "\nfolded at plan time (" + std::to_string(r.folded_count()) + "):\n";
  for (const auto& n : r.nodes) {
    if (n.folded) s += "  " + n.op_type + " '" + n.name + "' -> " + ValueList(n.outputs) + "\n";
  }
  return s;
}

std::string RenderPlanDot(const PlanReport& r) {
  std::string s = "// kiln plan: " + r.SummaryLine() + "\ndigraph plan {\n";
  s += "  rankdir=TB;\n  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\", "
       "fontsize=10];\n  edge [color=\"#78909c\", arrowsize=0.6];\n";
  s += "  label=" + DotQuote(r.model + ": " + r.SummaryLine()) + "; labelloc=t;\n";
  auto node_line = [&](const PlanNodeInfo& n) {
    std::string label =
        n.op_type + "\\n" + n.name + "\\n" +
        (n.folded ? std::string("folded") : n.precision + " " + n.backend + "/" + n.unit);
    std::string q = DotQuote(label);
    // DotQuote escapes backslashes; keep the \n line breaks.
    for (size_t i = 0; (i = q.find("\\\\n", i)) != std::string::npos;) q.replace(i, 3, "\\n");
    std::string attrs = "label=" + q + ", fillcolor=\"" + BackendColor(r, n.backend, true) +
                        "\", color=\"" + BackendColor(r, n.backend, false) + "\"";
    if (n.folded) attrs += ", style=\"rounded,dashed,filled\", fontcolor=\"#616161\"";
    if (!n.reason.empty()) attrs += ", tooltip=" + DotQuote(n.reason);
    return "    n" + std::to_string(n.id) + " [" + attrs + "];\n";
  };
  for (const auto& p : r.partitions) {
    char head[256];
    std::snprintf(head, sizeof(head), "P%d %s/%s, %zu nodes, est %.1f us", p.index,
                  p.backend.c_str(), p.unit.c_str(), p.nodes.size(), p.cost_us);
    s += "  subgraph cluster_p" + std::to_string(p.index) + " {\n    label=" + DotQuote(head) +
         "; style=\"rounded,dashed\"; color=\"" + BackendColor(r, p.backend, false) + "\";\n";
    for (uint32_t id : p.nodes) s += node_line(r.nodes[id]);
    s += "  }\n";
  }
  for (const auto& n : r.nodes) {
    if (n.folded) s += node_line(n).substr(2);
  }
  std::map<std::string, uint32_t> producer;
  for (const auto& n : r.nodes) {
    for (const auto& o : n.outputs) producer[o.name] = n.id;
  }
  for (size_t i = 0; i < r.inputs.size(); ++i) {
    s += "  in" + std::to_string(i) +
         " [shape=ellipse, style=filled, fillcolor=\"#eceff1\", label=" +
         DotQuote(r.inputs[i].name + " " + r.inputs[i].type) + "];\n";
  }
  for (size_t i = 0; i < r.outputs.size(); ++i) {
    s += "  out" + std::to_string(i) +
         " [shape=ellipse, style=filled, fillcolor=\"#eceff1\", label=" +
         DotQuote(r.outputs[i].name + " " + r.outputs[i].type) + "];\n";
    if (auto it = producer.find(r.outputs[i].name); it != producer.end()) {
      s += "  n" + std::to_string(it->second) + " -> out" + std::to_string(i) + ";\n";
    }
  }
  for (const auto& n : r.nodes) {
    for (const auto& in : n.inputs) {
      for (size_t i = 0; i < r.inputs.size(); ++i) {
        if (!in.name.empty() && in.name == r.inputs[i].name) {
          s += "  in" + std::to_string(i) + " -> n" + std::to_string(n.id) + ";\n";
        }
      }
    }
  }
  for (const auto& e : r.edges) {
    const PlanNodeInfo& a = r.nodes[e.from];
    const PlanNodeInfo& b = r.nodes[e.to];
    std::string attrs = "tooltip=" + DotQuote(e.value);
    if (a.folded) {
      attrs += ", style=dotted";
    } else if (!b.folded && a.partition != b.partition) {
      attrs += ", style=dashed, color=\"#c62828\", penwidth=1.4";
    }
    s += "  n" + std::to_string(e.from) + " -> n" + std::to_string(e.to) + " [" + attrs + "];\n";
  }
  s += "}\n";
  return s;
}

Command AddPlanCommand(CLI::App& app) {
  auto o = std::make_shared<PlanOptions>();
  CLI::App* sub = app.add_subcommand(
      "plan", "Show where every node runs: partitions, backends, precision, memory");
  sub->add_option("model", o->model, "ONNX model file or Kiln package (kiln pack)")->required();
  AddConfigFlag(sub, o->configs);
  sub->add_option("-i,--input", o->inputs, "Input from a .npy file: NAME=FILE.npy (repeatable)");
  sub->add_option("--shape", o->shapes,
                  "Plan for this input shape: NAME=D0,D1,... (repeatable; dynamic dims else 1)");
  AddSessionFlags(sub, o->session);
  sub->add_option("--format", o->format,
                  "table, json, dot (Graphviz) or html (one self-contained page drawing the "
                  "graph); default: from -o's extension, else table");
  sub->add_option("-o,--output", o->out, "Write the report to this file (else stdout)");
  return {sub, [o] { return DoPlan(*o); }};
}

}  // namespace kiln::cli
