// C API: model conversion (precision) and quantization.
#include "api/api_internal.h"
#include "onnx/exporter.h"
#include "onnx/importer.h"
#include "passes/pass_manager.h"
#include "precision/convert.h"
#include "quant/quantize.h"

namespace kiln::api {
namespace {

Status OptimizeIf(Model& model, int optimize) {
  if (optimize == 0) return Status::Ok();
  auto r = RunPasses(model, DefaultOptimizationPasses());
  return r.ok() ? Status::Ok() : r.status();
}

Status CheckThreads(const char* fn, int threads) {
  if (threads < 1 || threads > 256) {
    return InvalidArgument(std::string(fn) + ": threads is " + std::to_string(threads) +
                           ", expected 1 to 256");
  }
  return Status::Ok();
}

Status Convert(const char* in, const char* out, const kiln_convert_options& c) {
  constexpr const char* fn = "kiln_convert";
  if (c.struct_size < sizeof(kiln_convert_options)) {
    return InvalidArgument(std::string(fn) + ": options.struct_size is " +
                           std::to_string(c.struct_size) + ": call kiln_convert_options_init first");
  }
  KILN_RETURN_IF_ERROR(CheckThreads(fn, c.threads));
  PrecisionOptions p;
  switch (c.precision) {
    case KILN_PRECISION_FP16: p.precision = Precision::kFp16; break;
    case KILN_PRECISION_MIXED: p.precision = Precision::kMixed; break;
    default:
      return InvalidArgument(std::string(fn) + ": options.precision is " +
                             std::to_string(c.precision) +
                             ", expected KILN_PRECISION_FP16 or KILN_PRECISION_MIXED");
  }
  switch (c.model_type) {
    case KILN_MODEL_TYPE_AS_MODEL:
    case KILN_MODEL_TYPE_PROGRAM: p.model_type = ModelType::kProgram; break;
    case KILN_MODEL_TYPE_NETWORK: p.model_type = ModelType::kNetwork; break;
    default:
      return InvalidArgument(std::string(fn) + ": options.model_type is " +
                             std::to_string(c.model_type) + ", not a kiln_model_type value");
  }
  auto sel = ParseKeepSelector(c.keep_fp32 ? c.keep_fp32 : "");
  if (!sel.ok()) return sel.status().WithContext(fn);
  p.keep_fp32 = std::move(sel).value();
  if (p.keep_fp32.auto_tolerance) {
    return Unimplemented(std::string(fn) + ": keep_fp32 auto:TOL needs sample inputs, which the "
                         "C API does not take yet; use op:/name: items or `kiln convert`");
  }
  p.keep_io_types = c.keep_io_types != 0;
  p.threads = c.threads;
  KILN_ASSIGN_OR_RETURN(Model model, ImportOnnxFile(in));
  KILN_RETURN_IF_ERROR(OptimizeIf(model, c.optimize));
  KILN_ASSIGN_OR_RETURN(ConvertReport r, ConvertPrecision(model, p));
  (void)r;
  return ExportOnnxFile(model, out, ExportOptions{.value_info = false});
}

Status Quantize(const char* in, const char* out, const kiln_quantize_options& c) {
  constexpr const char* fn = "kiln_quantize";
  if (c.struct_size < sizeof(kiln_quantize_options)) {
    return InvalidArgument(std::string(fn) + ": options.struct_size is " +
                           std::to_string(c.struct_size) + ": call kiln_quantize_options_init first");
  }
  if (c.data_dir == nullptr) {
    return InvalidArgument(std::string(fn) + ": options.data_dir is NULL: calibration samples "
                           "(DATA_DIR/<sample>/<input>.npy) are required");
  }
  KILN_RETURN_IF_ERROR(CheckThreads(fn, c.threads));
  if (c.samples < 1) {
    return InvalidArgument(std::string(fn) + ": options.samples is " + std::to_string(c.samples) +
                           ", expected at least 1");
  }
  QuantizeOptions o;
  KILN_ASSIGN_OR_RETURN(o.method, ParseCalibrationMethod(c.method ? c.method : "mse"));
  KILN_ASSIGN_OR_RETURN(o.activations, ParseActivationType(c.activations ? c.activations : "u8"));
  if (c.weight_bits != 7 && c.weight_bits != 8) {
    return InvalidArgument(std::string(fn) + ": options.weight_bits is " +
                           std::to_string(c.weight_bits) + ", expected 8 or 7");
  }
  o.weight_bits = c.weight_bits;
  o.per_channel = c.per_channel != 0;
  Status keep = ParseQuantizeKeepFloat(c.keep_float ? c.keep_float : "", o);
  if (!keep.ok()) return keep.WithContext(fn);
  o.threads = c.threads;
  o.search.speed_runs = 0;
  KILN_ASSIGN_OR_RETURN(Model model, ImportOnnxFile(in));
  KILN_RETURN_IF_ERROR(OptimizeIf(model, c.optimize));
  KILN_ASSIGN_OR_RETURN(std::vector<NamedTensors> all,
                        LoadCalibrationSamples(c.data_dir, model.graph, c.samples));
  // As `kiln quantize`: a quarter held out to measure the accuracy search on.
  SampleSplit split = SplitCalibrationSamples(all);
  o.samples = std::move(split.measure);
  CalibrationStats stats;
  RecordOptions r;
  r.threads = c.threads;
  KILN_RETURN_IF_ERROR(RecordStatistics(model, split.calibration, r, stats));
  KILN_ASSIGN_OR_RETURN(QuantizeReport report, QuantizeModel(model, stats, o));
  (void)report;
  return ExportOnnxFile(model, out, ExportOptions{.value_info = false});
}

}  // namespace
}  // namespace kiln::api

using kiln::api::Fail;
using kiln::api::Guard;
using kiln::api::NullArgument;

extern "C" {

kiln_status kiln_convert_options_init(kiln_convert_options* options) {
  if (options == nullptr) return NullArgument("kiln_convert_options_init", "options");
  *options = kiln_convert_options{};
  options->struct_size = sizeof(kiln_convert_options);
  options->precision = KILN_PRECISION_FP16;
  options->model_type = KILN_MODEL_TYPE_PROGRAM;
  options->optimize = 1;
  options->threads = 1;
  return KILN_OK;
}

kiln_status kiln_convert(const char* input_path, const char* output_path,
                         const kiln_convert_options* options) {
  constexpr const char* fn = "kiln_convert";
  return Guard(fn, [&] {
    if (input_path == nullptr) return NullArgument(fn, "input_path");
    if (output_path == nullptr) return NullArgument(fn, "output_path");
    kiln_convert_options defaults;
    kiln_convert_options_init(&defaults);
    kiln::Status s = kiln::api::Convert(input_path, output_path, options ? *options : defaults);
    return s.ok() ? KILN_OK : Fail(s);
  });
}

kiln_status kiln_quantize_options_init(kiln_quantize_options* options) {
  if (options == nullptr) return NullArgument("kiln_quantize_options_init", "options");
  *options = kiln_quantize_options{};
  options->struct_size = sizeof(kiln_quantize_options);
  options->samples = 64;
  options->per_channel = 1;
  options->weight_bits = 8;
  options->optimize = 1;
  options->threads = 1;
  return KILN_OK;
}

kiln_status kiln_quantize(const char* input_path, const char* output_path,
                          const kiln_quantize_options* options) {
  constexpr const char* fn = "kiln_quantize";
  return Guard(fn, [&] {
    if (input_path == nullptr) return NullArgument(fn, "input_path");
    if (output_path == nullptr) return NullArgument(fn, "output_path");
    if (options == nullptr) return NullArgument(fn, "options (data_dir is required)");
    kiln::Status s = kiln::api::Quantize(input_path, output_path, *options);
    return s.ok() ? KILN_OK : Fail(s);
  });
}

}  // extern "C"
