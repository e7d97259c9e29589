// kiln quantize MODEL.onnx -o OUT.onnx (--data DIR | --stats FILE)... [--method M]
//               [--per-channel on|off] [--activations u8|s8] [--weight-rounding sum|nearest]
//               [--weight-bits 8|7]
//               [--keep-float none|auto|auto:TOL|SELECTOR] [--metric auto|argmax|rel_l2|cosine]
//               [--holdout F] [--search-ranking alone|leave-out] [--max-gap N]
//               [--speed-runs N] [--samples N] [--save-stats FILE] [--threads N]
//               [--no-optimize]
//
// Runs the default graph passes (as kiln convert does), holds out a quarter of the samples in
// DIR (at least 4; all of them are used for both with fewer than 8), records calibration
// statistics on the others (src/quant/record.h) and/or merges saved statistics files, then
// writes the QDQ model (src/quant/quantize.h). By default the accuracy search keeps the layers
// float that the held-out samples say must be (AccuracySearchOptions); the report says what was
// kept and why, the measured error per output, the search time and the measured speed against
// the float model at --threads. Exit status 0 also when int8 is not faster (it says so). Defaults: --method mse and --weight-rounding sum (on PP-OCRv4
// rec, 512 lines, these read 98.0 % of lines exactly like fp32; percentile:99.99 with nearest
// rounding 94.7 %, minmax 35 %: bench/ocr/README.md). A progress bar is drawn on stderr when it
// is a terminal.
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "commands.h"
#include "onnx/exporter.h"
#include "onnx/importer.h"
#include "passes/pass_manager.h"
#include "quant/quantize.h"

namespace kiln::cli {
namespace {

struct QuantizeCliOptions {
  std::string model;
  std::string output;
  std::string data;
  std::vector<std::string> stats;
  std::string save_stats;
  std::string method = "mse";  // see bench/ocr/README.md (int8)
  std::string weight_rounding = "sum";
  int weight_bits = 8;
  std::string per_channel = "on";
  std::string bias_correction = "off";  // see bench/ocr/README.md (int8, bias correction)
  std::string activations = "u8";
  std::string keep_float;
  std::string metric = "auto";
  double holdout = 0.25;
  std::string ranking = "alone";
  int max_gap = 2;
  double max_kept = 0.5;
  int speed_runs = 10;
  int samples = 64;
  int threads = 1;
  bool no_optimize = false;
};

// "calibrating [=========>          ] 12/64" redrawn in place on a terminal.
void DrawProgress(const std::string& phase, int done, int total) {
  constexpr int kWidth = 30;
  const int filled = total > 0 ? done * kWidth / total : kWidth;
  std::string bar(static_cast<size_t>(filled), '=');
  if (filled < kWidth) bar += '>' + std::string(static_cast<size_t>(kWidth - filled - 1), ' ');
  std::fprintf(stderr, "\r%-18s [%s] %d/%d", phase.c_str(), bar.c_str(), done, total);
  if (done >= total) std::fprintf(stderr, "\n");
  std::fflush(stderr);
}

std::string OutputLine(const QuantOutputError& e) {
  char buf[512];
  if (e.metric == "argmax") {
    std::snprintf(buf, sizeof(buf), "%-28s argmax: chosen-class probability change %.4f (tolerance "
                  "%.4g), argmax agreement %.2f %%, rel. L2 %.3g",
                  e.name.c_str(), e.error, e.tolerance, 100 * e.argmax_agreement, e.relative_l2);
  } else {
    std::snprintf(buf, sizeof(buf), "%-28s %s %.4g (tolerance %.4g), rel. L2 %.3g", e.name.c_str(),
                  e.metric == "cosine" ? "1 - cosine" : "relative L2", e.error, e.tolerance,
                  e.relative_l2);
  }
  return buf;
}

Status DoQuantize(const QuantizeCliOptions& c) {
  if (c.data.empty() && c.stats.empty()) {
    return InvalidArgument("give calibration data (--data DIR) or statistics (--stats FILE)");
  }
  QuantizeOptions o;
  KILN_ASSIGN_OR_RETURN(o.method, ParseCalibrationMethod(c.method));
  KILN_ASSIGN_OR_RETURN(o.activations, ParseActivationType(c.activations));
  KILN_ASSIGN_OR_RETURN(o.weight_rounding, ParseWeightRounding(c.weight_rounding));
  if (c.weight_bits != 7 && c.weight_bits != 8) {
    return InvalidArgument("--weight-bits " + std::to_string(c.weight_bits) + ": expected 8 or 7");
  }
  o.weight_bits = c.weight_bits;
  if (c.per_channel != "on" && c.per_channel != "off") {
    return InvalidArgument("--per-channel '" + c.per_channel + "': expected on or off");
  }
  o.per_channel = c.per_channel == "on";
  if (c.bias_correction != "on" && c.bias_correction != "off") {
    return InvalidArgument("--bias-correction '" + c.bias_correction + "': expected on or off");
  }
  o.bias_correction = c.bias_correction == "on";
  KILN_RETURN_IF_ERROR(ParseQuantizeKeepFloat(c.keep_float, o));
  KILN_ASSIGN_OR_RETURN(o.search.metric, ParseOutputMetric(c.metric));
  KILN_ASSIGN_OR_RETURN(o.search.ranking, ParseSensitivityRanking(c.ranking));
  if (!(c.holdout >= 0 && c.holdout < 1)) {
    return InvalidArgument("--holdout " + std::to_string(c.holdout) + ": expected a fraction in "
                           "[0, 1)");
  }
  o.search.max_gap = c.max_gap;
  if (!(c.max_kept > 0 && c.max_kept <= 1)) {
    return InvalidArgument("--max-kept " + std::to_string(c.max_kept) + ": expected a fraction "
                           "in (0, 1]");
  }
  o.search.max_kept_fraction = c.max_kept;
  o.search.speed_runs = c.speed_runs;
  o.threads = c.threads;
  if (isatty(fileno(stderr))) o.progress = DrawProgress;
  if (o.keep_float.auto_tolerance && c.data.empty()) {
    return InvalidArgument("--keep-float auto:TOL needs --data to measure on");
  }

  KILN_ASSIGN_OR_RETURN(Model model, ImportOnnxFile(c.model));
  if (!c.no_optimize) {
    KILN_ASSIGN_OR_RETURN(std::vector<PassResult> passes,
                          RunPasses(model, DefaultOptimizationPasses()));
    for (const PassResult& r : passes) std::printf("pass %s: %d rewrites\n", r.name.c_str(), r.rewrites);
  }
  CalibrationStats stats;
  for (const std::string& f : c.stats) {
    KILN_ASSIGN_OR_RETURN(CalibrationStats s, LoadCalibrationStats(f));
    std::printf("statistics: %s (%lld runs, %zu tensors)\n", f.c_str(),
                static_cast<long long>(s.runs()), s.tensors().size());
    KILN_RETURN_IF_ERROR(stats.Merge(s));
  }
  if (!c.data.empty()) {
    KILN_ASSIGN_OR_RETURN(std::vector<NamedTensors> all,
                          LoadCalibrationSamples(c.data, model.graph, c.samples));
    SampleSplit split = c.holdout > 0 ? SplitCalibrationSamples(all, c.holdout)
                                      : SampleSplit{all, all, false};
    if (split.held_out) {
      std::printf("calibration data: %s (%zu samples: %zu to calibrate, %zu held out to "
                  "measure)\n",
                  c.data.c_str(), all.size(), split.calibration.size(), split.measure.size());
    } else {
      std::printf("calibration data: %s (%zu samples, calibrating and measuring on all of them%s)\n",
                  c.data.c_str(), all.size(),
                  c.holdout > 0 ? ": fewer than 8, none held out" : "");
    }
    o.samples = std::move(split.measure);
    RecordOptions r;
    r.threads = c.threads;
    r.progress = o.progress;
    KILN_RETURN_IF_ERROR(RecordStatistics(model, split.calibration, r, stats));
  }
  if (!c.save_stats.empty()) {
    KILN_RETURN_IF_ERROR(SaveCalibrationStats(stats, c.save_stats));
    std::printf("statistics saved: %s (%lld runs, %zu tensors)\n", c.save_stats.c_str(),
                static_cast<long long>(stats.runs()), stats.tensors().size());
  }
  KILN_ASSIGN_OR_RETURN(QuantizeReport r, QuantizeModel(model, stats, o));
  KILN_RETURN_IF_ERROR(ExportOnnxFile(model, c.output, ExportOptions{.value_info = false}));

  std::printf("method %s, activations %s, weights s8 %s, opset %d -> %d\n",
              o.method.ToString().c_str(), ActivationTypeName(o.activations),
              r.per_channel ? "per channel" : "per tensor", r.opset_before, r.opset_after);
  int total = 0;
  std::string by_op;
  for (const auto& [op, count] : r.quantized) {
    total += count;
    by_op += " " + op + "=" + std::to_string(count);
  }
  std::printf("quantized: %d nodes:%s\n", total, by_op.c_str());
  std::printf("int8 weights/constants: %d; int32 biases: %d (%d bias-corrected); activations with "
              "QDQ: %d\n",
              r.weights_quantized, r.biases_quantized, r.biases_corrected, r.activations_quantized);
  if (!r.layer_errors.empty()) {
    constexpr size_t kShown = 12;
    std::printf("layer sensitivity (%s; x tolerance), most sensitive first, %zu layers:\n",
                o.search.ranking == SensitivityRanking::kAlone
                    ? "worst output error with only that layer quantized"
                    : "drop of the all-int8 worst error with only that layer float",
                r.layer_errors.size());
    for (size_t i = 0; i < r.layer_errors.size() && i < kShown; ++i) {
      const LayerError& e = r.layer_errors[i];
      std::printf("  %-40s %-18s %.3g\n", e.name.c_str(), e.op_type.c_str(), e.sensitivity);
    }
    if (r.layer_errors.size() > kShown) {
      std::printf("  ... and %zu more\n", r.layer_errors.size() - kShown);
    }
  }
  if (!r.all_int8_errors.empty()) {
    std::printf("all int8, on %d held-out samples:\n", r.measure_samples);
    for (const QuantOutputError& e : r.all_int8_errors) std::printf("  %s\n", OutputLine(e).c_str());
  }
  std::printf("kept float: %zu nodes\n", r.kept.size());
  for (const QuantKeptNode& k : r.kept) {
    std::printf("  %-40s %-18s %s\n", k.name.c_str(), k.op_type.c_str(), k.reason.c_str());
  }
  if (r.searched) {
    std::printf("search: %.1f s, %d model evaluations\n", r.search_seconds, r.model_runs);
  }
  if (!r.output_errors.empty()) {
    std::printf("written model, on %d %s samples:\n", r.measure_samples,
                o.samples.empty() ? "" : "measuring");
    for (const QuantOutputError& e : r.output_errors) std::printf("  %s\n", OutputLine(e).c_str());
    bool within = true;
    for (const QuantOutputError& e : r.output_errors) within = within && e.error <= e.tolerance;
    if (!within) std::printf("warning: an output is beyond its tolerance (see above)\n");
    if (r.search_gave_up) {
      std::printf("recommendation: use the float model (the accuracy search gave up, see the "
                  "note below)\n");
    }
  } else {
    std::printf("accuracy not measured (no --data samples)\n");
  }
  if (r.float_ms > 0) {
    std::printf("speed on this machine (%d thread%s, median of %d runs): float %.2f ms, int8 %.2f "
                "ms: %.2fx\n",
                o.threads, o.threads == 1 ? "" : "s", r.timed_runs, r.float_ms,
                r.quantized_ms, r.float_ms / r.quantized_ms);
    if (r.float_recommended && !r.search_gave_up) {
      std::printf("note: the int8 model is not faster than the float model on this machine: use "
                  "the float model here (the int8 file is written anyway)\n");
    }
  }
  constexpr size_t kMaxNotes = 20;
  for (size_t i = 0; i < r.notes.size() && i < kMaxNotes; ++i) {
    std::printf("note: %s\n", r.notes[i].c_str());
  }
  if (r.notes.size() > kMaxNotes) std::printf("note: ... and %zu more\n", r.notes.size() - kMaxNotes);
  std::error_code ec1, ec2;
  const auto in_size = std::filesystem::file_size(c.model, ec1);
  const auto out_size = std::filesystem::file_size(c.output, ec2);
  if (!ec1 && !ec2 && in_size > 0) {
    std::printf("file: %s (%.1f KiB) -> %s (%.1f KiB), ratio %.3f\n", c.model.c_str(),
                in_size / 1024.0, c.output.c_str(), out_size / 1024.0,
                static_cast<double>(out_size) / static_cast<double>(in_size));
  }
  return Status::Ok();
}

}  // namespace

Command AddQuantizeCommand(CLI::App& app) {
  auto o = std::make_shared<QuantizeCliOptions>();
  CLI::App* sub = app.add_subcommand("quantize", "Quantize a float model to int8 (QDQ ONNX)");
  sub->add_option("model", o->model, "ONNX model file")->required();
  sub->add_option("-o,--output", o->output, "Quantized (QDQ) ONNX model file")->required();
  sub->add_option("--data", o->data,
                  "Calibration inputs: DIR/<sample>/NAME.npy, or DIR/<sample>.npy for one input");
  sub->add_option("--stats", o->stats, "Recorded statistics to merge in (repeatable)");
  sub->add_option("--save-stats", o->save_stats, "Write the (merged) statistics to this file");
  sub->add_option("--method", o->method,
                  "Ranges: minmax, percentile:P, entropy or mse (default mse: least squared "
                  "error of each tensor's recorded values)");
  sub->add_option("--weight-rounding", o->weight_rounding,
                  "Weights: sum (default: nearest, keeping each output channel's sum) or nearest");
  sub->add_option("--weight-bits", o->weight_bits,
                  "8 (default) or 7: weights in [-63, 63], for fast int8 on AVX2 CPUs without VNNI");
  sub->add_option("--per-channel", o->per_channel, "Per-channel int8 weights: on or off");
  sub->add_option("--bias-correction", o->bias_correction,
                  "Fold weight rounding error times input channel means into Conv/Gemm biases: "
                  "on or off (default)");
  sub->add_option("--activations", o->activations, "Activation type: u8 (asymmetric) or s8");
  sub->add_option("--keep-float", o->keep_float,
                  "Nodes kept float: default the accuracy search; none (all int8); auto or "
                  "auto:TOL (the search at a tolerance); comma-separated op:TYPE, name:REGEX "
                  "(only those, unless auto is also given)");
  sub->add_option("--metric", o->metric,
                  "How the search measures outputs: auto (argmax for class distributions, else "
                  "rel_l2), argmax, rel_l2 or cosine");
  sub->add_option("--holdout", o->holdout,
                  "Fraction of the --data samples held out to measure on (default 0.25, at least "
                  "4; 0: measure on the calibration samples)");
  sub->add_option("--search-ranking", o->ranking,
                  "Layer order of the search: alone (outputs with only that layer quantized, "
                  "default) or leave-out (all int8 but that layer)");
  sub->add_option("--max-gap", o->max_gap,
                  "Keep gaps of up to N quantized layers between kept ones float when that "
                  "removes conversions (default 2; 0: off)")
      ->check(CLI::Range(0, 1000));
  sub->add_option("--max-kept", o->max_kept,
                  "The search gives up (all int8, float model recommended) when more than this "
                  "fraction of the layers would have to stay float (default 0.5)");
  sub->add_option("--speed-runs", o->speed_runs,
                  "Timed runs of the float and the int8 model (default 10; 0: not timed)")
      ->check(CLI::Range(0, 100000));
  sub->add_option("--samples", o->samples, "Use at most N calibration samples")
      ->check(CLI::Range(1, 1000000));
  sub->add_option("--threads", o->threads, "Threads for the runs")->check(CLI::Range(1, 256));
  sub->add_flag("--no-optimize", o->no_optimize,
                "Skip the graph passes (BatchNormalization/bias folding, dead code)");
  return {sub, [o] { return DoQuantize(*o); }};
}

}  // namespace kiln::cli
