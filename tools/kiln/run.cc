// kiln run MODEL [-i NAME=FILE.npy]... [--shape NAME=D0,D1,...]... [-o OUTDIR] [--threads N]
//          [--seed S] [--repeat N] [--print-plan] [--units U] [--backends B,...] [--pin OP=B]...
//          [--no-fallback] [--model-type program|network]
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <random>

#include "commands.h"
#include "core/npy.h"
#include "odc/serving_session.h"
#include "runtime/session.h"
#include "tool_util.h"

namespace kiln::cli {
namespace {

struct RunOptions {
  std::string model;
  std::vector<std::string> inputs;
  std::vector<std::string> shapes;
  std::string out_dir;
  SessionFlags session;
  uint64_t seed = 0;
  int repeat = 1;
  bool print_plan = false;
  std::vector<std::string> configs;
};

Status DoRun(const RunOptions& o) {
  auto t0 = std::chrono::steady_clock::now();
  KILN_ASSIGN_OR_RETURN(auto given, ParseInputFiles(o.inputs));
  KILN_ASSIGN_OR_RETURN(auto shapes, ParseShapes(o.shapes));
  KILN_ASSIGN_OR_RETURN(ServeOptions serve, ToServeOptions(o.session, o.configs));
  KILN_ASSIGN_OR_RETURN(auto serving, ServingSession::Open(o.model, serve));
  std::shared_ptr<Session> session = serving->session();
  KILN_ASSIGN_OR_RETURN(NamedTensors inputs,
                        MakeInputs(session->graph(), given, shapes, o.seed, true));
  for (const std::string& note : serving->notes()) std::printf("note: %s\n", note.c_str());
  for (const std::string& note : session->notes()) std::printf("note: %s\n", note.c_str());
  if (serving->is_package()) std::printf("serving: %s\n", serving->ServedBy().c_str());
  auto t1 = std::chrono::steady_clock::now();
  if (o.print_plan) {
    KILN_ASSIGN_OR_RETURN(std::string plan, session->DescribePlan(inputs));
    std::printf("%s\n", plan.c_str());
  }
  const size_t notes_before = serving->notes().size();
  std::vector<double> times;
  std::vector<Tensor> outputs;
  double first_record_ms = 0;
  for (int r = 0; r < std::max(1, o.repeat); ++r) {
    auto a = std::chrono::steady_clock::now();
    KILN_ASSIGN_OR_RETURN(outputs, serving->Run(inputs));
    times.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - a).count());
    if (r == 0) first_record_ms = serving->last_record_ms();
  }
  if (serving->is_package()) {
    // Samples are written by the session's recorder thread (and a due job runs there): wait
    // for it, so that what is printed below is what the package now holds.
    serving->WaitForBackgroundJob();
    for (size_t i = notes_before; i < serving->notes().size(); ++i) {
      std::printf("note: %s\n", serving->notes()[i].c_str());
    }
    const nlohmann::json st = serving->OdcStatus();
    if (st.value("enabled", false)) {
      std::printf("odc: %lld of %lld runs recorded, %zu samples kept (recording %.2f ms, "
                  "writing %.2f ms on the recorder thread); serving now: %s\n",
                  static_cast<long long>(st.value("records", int64_t{0})),
                  static_cast<long long>(st.value("records_needed", int64_t{0})),
                  st.value("samples", size_t{0}), first_record_ms,
                  serving->last_record_write_ms(), serving->ServedBy().c_str());
    }
  }
  const Graph& g = session->graph();
  // Sequence outputs: each element (NAME.<i>.npy with -o); optional outputs: the value held
  // (as a tensor or sequence output), or a line saying it is empty (no file).
  struct Written {
    std::string name;
    const Tensor* t;
  };
  std::vector<Written> files;
  for (size_t i = 0; i < outputs.size(); ++i) {
    const std::string& name = g.value(g.outputs()[i]).name;
    const Tensor* t = &outputs[i];
    if (t->is_optional()) {
      if (!t->has_element()) {
        std::printf("output %-24s optional: empty (nothing written)\n", name.c_str());
        continue;
      }
      std::printf("output %-24s optional holding a value:\n", name.c_str());
      t = &t->items()[0];
    }
    if (t->is_sequence()) {
      std::printf("output %-24s sequence of %zu elements\n", name.c_str(), t->items().size());
      for (size_t k = 0; k < t->items().size(); ++k) {
        const std::string en = name + "." + std::to_string(k);
        std::printf("output %-24s %-20s %s\n", en.c_str(), t->items()[k].Describe().c_str(),
                    Summarize(t->items()[k]).c_str());
        files.push_back({en, &t->items()[k]});
      }
      continue;
    }
    std::printf("output %-24s %-20s %s\n", name.c_str(), t->Describe().c_str(),
                Summarize(*t).c_str());
    files.push_back({name, t});
  }
  if (!o.out_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(o.out_dir, ec);
    if (ec) return IoError("cannot create output folder " + o.out_dir + ": " + ec.message());
    for (const Written& w : files) {
      const std::string file =
          (std::filesystem::path(o.out_dir) / (SanitizeFileName(w.name) + ".npy")).string();
      KILN_RETURN_IF_ERROR(WriteNpy(file, *w.t));
      std::printf("wrote %s\n", file.c_str());
    }
  }
  std::vector<double> sorted = times;
  std::sort(sorted.begin(), sorted.end());
  std::printf("load+prepare: %.1f ms; run: first %.2f ms", 
              std::chrono::duration<double, std::milli>(t1 - t0).count(), times[0]);
  if (times.size() > 1) {
    std::printf(", median %.2f ms, min %.2f ms over %zu runs", sorted[sorted.size() / 2], sorted[0],
                times.size());
  }
  std::printf(" (threads %d)\n", o.session.threads);
  return Status::Ok();
}

}  // namespace

Command AddRunCommand(CLI::App& app) {
  auto o = std::make_shared<RunOptions>();
  CLI::App* sub = app.add_subcommand("run", "Run a model on given or random inputs");
  sub->add_option("model", o->model, "ONNX model file or Kiln package (kiln pack)")->required();
  AddConfigFlag(sub, o->configs);
  sub->add_option("-i,--input", o->inputs, "Input from a .npy file: NAME=FILE.npy (repeatable)");
  sub->add_option("--shape", o->shapes,
                  "Fix an input's shape for random data: NAME=D0,D1,... (repeatable)");
  sub->add_option("-o,--output-dir", o->out_dir, "Write one .npy per output into this folder");
  AddSessionFlags(sub, o->session);
  sub->add_option("--seed", o->seed, "Seed for random inputs");
  sub->add_option("--repeat", o->repeat, "Run this many times and report timings")->check(CLI::Range(1, 100000));
  sub->add_flag("--print-plan", o->print_plan, "Print the execution and memory plan");
  return {sub, [o] { return DoRun(*o); }};
}

}  // namespace kiln::cli
