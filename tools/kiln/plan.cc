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
#include <string>

#include "commands.h"
#include "onnx/importer.h"
#include "plan_render.h"
#include "runtime/session.h"
#include "tool_util.h"

namespace kiln::cli {
namespace {

namespace fs = std::filesystem;

struct PlanOptions {
  std::string model;
  std::vector<std::string> inputs;
  std::vector<std::string> shapes;
  SessionFlags session;
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
  const fs::path tmp = p.parent_path() / ("." + p.filename().string() + ".tmp" +
                                          std::to_string(getpid()));
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
  KILN_ASSIGN_OR_RETURN(SessionOptions options, ToSessionOptions(o.session));
  KILN_ASSIGN_OR_RETURN(Model model, ImportOnnxFile(o.model));
  KILN_ASSIGN_OR_RETURN(auto given, ParseInputFiles(o.inputs));
  KILN_ASSIGN_OR_RETURN(auto shapes, ParseShapes(o.shapes));
  KILN_ASSIGN_OR_RETURN(NamedTensors inputs, MakeInputs(model.graph, given, shapes, 0, true));
  KILN_ASSIGN_OR_RETURN(auto session, Session::Create(std::move(model), options));
  KILN_ASSIGN_OR_RETURN(const ExecutionPlan* plan, session->Plan(inputs));
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

Command AddPlanCommand(CLI::App& app) {
  auto o = std::make_shared<PlanOptions>();
  CLI::App* sub = app.add_subcommand(
      "plan", "Show where every node runs: partitions, backends, precision, memory");
  sub->add_option("model", o->model, "ONNX model file")->required();
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
