// kiln convert MODEL.onnx -o OUT.onnx --precision fp32|fp16|mixed [--keep-fp32 SELECTOR]
//              [--keep-io-types] [--model-type program|network] [-i NAME=FILE.npy]...
//              [--shape NAME=D0,D1,...]... [--seed S] [--threads N] [--no-optimize]
//
// Runs the default graph passes (src/passes/pass_manager.h: BatchNormalization and bias folding,
// dead code) before the precision conversion unless --no-optimize; they are recorded in the
// metadata key kiln.passes.
#include <cstdio>
#include <filesystem>

#include "commands.h"
#include "onnx/exporter.h"
#include "onnx/importer.h"
#include "passes/pass_manager.h"
#include "precision/convert.h"
#include "tool_util.h"

namespace kiln::cli {
namespace {

struct ConvertOptions {
  std::string model;
  std::string output;
  std::string precision = "fp16";
  std::string keep_fp32;
  bool keep_io_types = false;
  std::string model_type = "program";
  std::vector<std::string> inputs;
  std::vector<std::string> shapes;
  uint64_t seed = 0;
  int threads = 1;
  bool no_optimize = false;
};

std::string Bytes(int64_t b) {
  char buf[32];
  if (b >= (1 << 20)) {
    std::snprintf(buf, sizeof(buf), "%.2f MiB", b / 1048576.0);
  } else {
    std::snprintf(buf, sizeof(buf), "%.1f KiB", b / 1024.0);
  }
  return buf;
}

Status DoConvert(const ConvertOptions& o) {
  PrecisionOptions p;
  KILN_ASSIGN_OR_RETURN(p.precision, ParsePrecision(o.precision));
  KILN_ASSIGN_OR_RETURN(p.model_type, ParseModelType(o.model_type));
  KILN_ASSIGN_OR_RETURN(p.keep_fp32, ParseKeepSelector(o.keep_fp32));
  p.keep_io_types = o.keep_io_types;
  p.threads = o.threads;
  KILN_ASSIGN_OR_RETURN(Model model, ImportOnnxFile(o.model));
  if (o.no_optimize) {
    std::printf("graph passes: off (--no-optimize)\n");
  } else {
    KILN_ASSIGN_OR_RETURN(std::vector<PassResult> passes,
                          RunPasses(model, DefaultOptimizationPasses()));
    constexpr size_t kMaxNotes = 6;  // per pass; the first says what it did
    for (const PassResult& r : passes) {
      std::printf("pass %s: %d rewrites\n", r.name.c_str(), r.rewrites);
      for (size_t i = 0; i < r.notes.size() && i < kMaxNotes; ++i) {
        std::printf("  %s\n", r.notes[i].c_str());
      }
      if (r.notes.size() > kMaxNotes) {
        std::printf("  ... and %zu more candidates left alone\n", r.notes.size() - kMaxNotes);
      }
    }
  }
  if (p.keep_fp32.auto_tolerance) {
    KILN_ASSIGN_OR_RETURN(auto given, ParseInputFiles(o.inputs));
    KILN_ASSIGN_OR_RETURN(auto shapes, ParseShapes(o.shapes));
    KILN_ASSIGN_OR_RETURN(p.auto_inputs, MakeInputs(model.graph, given, shapes, o.seed, true));
  } else if (!o.inputs.empty() || !o.shapes.empty()) {
    std::fprintf(stderr, "note: -i/--shape are only used by --keep-fp32 auto:TOL\n");
  }
  KILN_ASSIGN_OR_RETURN(ConvertReport r, ConvertPrecision(model, p));
  KILN_RETURN_IF_ERROR(ExportOnnxFile(model, o.output, ExportOptions{.value_info = false}));

  std::printf("precision %s, model type %s%s\n", PrecisionName(p.precision),
              ModelTypeName(p.model_type), p.keep_io_types ? ", inputs/outputs kept f32" : "");
  int total = 0;
  std::string by_op;
  for (const auto& [op, count] : r.converted) {
    total += count;
    by_op += " " + op + "=" + std::to_string(count);
  }
  std::printf("converted to fp16: %d nodes%s%s\n", total, by_op.empty() ? "" : ":", by_op.c_str());
  std::printf("constants converted to fp16: %d; casts inserted: %d\n", r.initializers_converted,
              r.casts_inserted);
  std::printf("kept in fp32: %zu nodes\n", r.kept.size());
  for (const KeptNode& k : r.kept) {
    std::printf("  %-32s %-20s %s\n", k.name.c_str(), k.op_type.c_str(), k.reason.c_str());
  }
  if (p.keep_fp32.auto_tolerance) {
    std::printf("auto: %d model runs; output errors (relative L2 vs fp32):\n", r.model_runs);
    for (const OutputError& e : r.output_errors) {
      std::printf("  %-32s %.3g\n", e.name.c_str(), e.relative_l2);
    }
  }
  for (const std::string& n : r.notes) std::printf("note: %s\n", n.c_str());
  std::error_code ec1, ec2;
  const auto in_size = std::filesystem::file_size(o.model, ec1);
  const auto out_size = std::filesystem::file_size(o.output, ec2);
  std::printf("weights: %s -> %s\n", Bytes(r.weight_bytes_before).c_str(),
              Bytes(r.weight_bytes_after).c_str());
  if (!ec1 && !ec2 && in_size > 0) {
    std::printf("file: %s (%s) -> %s (%s), ratio %.3f\n", o.model.c_str(),
                Bytes(static_cast<int64_t>(in_size)).c_str(), o.output.c_str(),
                Bytes(static_cast<int64_t>(out_size)).c_str(),
                static_cast<double>(out_size) / static_cast<double>(in_size));
  }
  return Status::Ok();
}

}  // namespace

Command AddConvertCommand(CLI::App& app) {
  auto o = std::make_shared<ConvertOptions>();
  CLI::App* sub = app.add_subcommand("convert", "Convert a model's precision (fp32/fp16/mixed)");
  sub->add_option("model", o->model, "ONNX model file")->required();
  sub->add_option("-o,--output", o->output, "Converted ONNX model file")->required();
  sub->add_option("--precision", o->precision, "fp32, fp16 or mixed")->required();
  sub->add_option("--keep-fp32", o->keep_fp32,
                  "Nodes kept in fp32: comma-separated op:TYPE, name:REGEX, auto:TOL");
  sub->add_flag("--keep-io-types", o->keep_io_types, "Keep float inputs and outputs f32");
  sub->add_option("--model-type", o->model_type, "program (typed values) or network (typed io)");
  sub->add_option("-i,--input", o->inputs, "auto: input from a .npy file: NAME=FILE.npy (repeatable)");
  sub->add_option("--shape", o->shapes, "auto: shape for random inputs: NAME=D0,D1,... (repeatable)");
  sub->add_option("--seed", o->seed, "auto: seed for random inputs");
  sub->add_option("--threads", o->threads, "Threads for auto's runs")->check(CLI::Range(1, 256));
  sub->add_flag("--no-optimize", o->no_optimize,
                "Skip the graph passes (BatchNormalization/bias folding, dead code)");
  return {sub, [o] { return DoConvert(*o); }};
}

}  // namespace kiln::cli
