// Static int8 quantization: rewrites a float model into a QDQ model (QuantizeLinear ->
// DequantizeLinear pairs, as ONNX Runtime's quantization tool writes them) from calibration
// statistics (calibration.h).
//
// What is quantized (default-domain nodes with float32 data, not kept in float):
//   Conv, ConvTranspose, MatMul, Gemm   activation inputs QDQ per tensor; constant weights int8
//                                       symmetric, per output channel (Conv axis 0, ConvTranspose
//                                       axis 1, MatMul last axis, Gemm B by transB) or per tensor;
//                                       Conv/ConvTranspose/Gemm biases int32 with scale
//                                       input_scale * weight_scale, zero point 0
//   Add, Mul, Concat, AveragePool,      every float input and the output QDQ (constant inputs
//   GlobalAveragePool                   stored quantized, per tensor, in the activation type)
//   MaxPool, Resize, Reshape, Transpose, input 0 and output share one scale; quantized only when
//   Squeeze, Unsqueeze, Flatten          input 0 is already quantized by a neighbour
//   Relu, Clip                          fused: when a quantized node's output is read only by a
//                                       Relu/Clip, that output is not quantized and the Relu/Clip
//                                       output carries the range instead (ONNX Runtime removes
//                                       the Relu/Clip when it fuses, Kiln runs it in float)
//   elementwise regions                 nodes (Add/Sub/Mul/Div/Max/Min/Pow with scalar
//                                       constants, Relu, Clip, Sigmoid, HardSwish, Tanh, ...)
//                                       whose computed inputs all descend, through such nodes,
//                                       from one value compute a function of it alone: they stay
//                                       float, the value is quantized, and of the region's values
//                                       only those read outside it are (one rounding per chain,
//                                       not one per op; fuse-qdq makes the chain one table)
// Everything else (Softmax, LayerNorm's reductions, ...) stays float; its inputs read the
// dequantized values when their producer is quantized. Graph inputs and outputs stay float:
// outputs are never quantized, inputs get a QDQ pair after them. Activations are uint8
// asymmetric (zero point from the range, which always includes 0) or int8 symmetric.
//
// Per-axis scales need opset 13: a model with a lower default-domain opset is upgraded to 13
// first (Clip, Slice, Squeeze/Unsqueeze, Softmax-family, ReduceSum, Split, Pad, TopK and
// Dropout rewritten to their opset-13 forms); with an op it cannot upgrade, a model at opset
// 10-12 falls back to per-tensor weights (noted in the report) and one below 10 is an error.
//
// Bias correction (QuantizeOptions::bias_correction, off by default): for a quantized Conv (any
// group count) or Gemm (transA 0) with a per-channel mean of its input recorded (calibration.h),
// sum over input channels c and taps k of (W - dq(q(W)))[o, c, k] * E[x_c] is added to output
// o's bias before the bias is quantized; a Conv without a bias gets one. Zero padding is ignored
// (the mean is assumed at the borders too), and the input's own rounding is not corrected.
//
// A node whose float input has no recorded statistics (and is not a constant) stays float,
// with a note. Unnamed nodes are named "<OpType>_<k>" first (as precision conversion does).
//
// Metadata written: kiln.quantization (JSON: method, activations, weights, per_channel,
// keep_float, kept_float_nodes, calibration_runs, search), kiln.quantizer.
//
// By default the accuracy search (AccuracySearchOptions) decides which layers stay float, on
// measuring samples held out from the calibration data:
//
//   SampleSplit split = SplitCalibrationSamples(samples);  // 25 % held out (at least 4)
//   CalibrationStats stats;
//   KILN_RETURN_IF_ERROR(RecordStatistics(model, split.calibration, {}, stats));
//   QuantizeOptions o;
//   KILN_RETURN_IF_ERROR(ParseQuantizeKeepFloat("", o));  // or "none", "auto:0.02", "op:Softmax"
//   o.samples = split.measure;
//   KILN_ASSIGN_OR_RETURN(QuantizeReport r, QuantizeModel(model, stats, o));
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "ir/graph.h"
#include "precision/selector.h"
#include "quant/calibration.h"
#include "quant/record.h"

namespace kiln {

inline constexpr const char* kQuantizerVersion = "kiln-quant 1";

enum class ActivationType { kU8, kS8 };
const char* ActivationTypeName(ActivationType t);  // "u8" / "s8"
Result<ActivationType> ParseActivationType(const std::string& s);

// How weights become integers: to nearest, or to nearest with each output channel's integer sum
// kept at its rounded real sum (the default; see QuantizeWeight in qdq.cc).
enum class WeightRounding { kNearest, kSumPreserving };
const char* WeightRoundingName(WeightRounding r);  // "nearest" / "sum"
Result<WeightRounding> ParseWeightRounding(const std::string& s);

// How the accuracy search measures an output of the quantized model against the float model's
// on the measuring samples (QuantizeOptions::samples):
//   argmax  for an output that is a distribution over classes along its last axis (softmax:
//           non-negative, every row sums to 1): the error is the mean over rows of
//           |q[c*] - f[c*]|, the change of the probability of the class c* the float model
//           chooses (a flipped argmax moves it by about the margin); the argmax agreement is
//           reported beside it. On PP-OCRv4 rec it separates configurations that lose and keep
//           exact lines where relative L2 hardly does (bench/ocr/README.md).
//   rel_l2  ||q - f|| / ||f|| pooled over the samples (any other output)
//   cosine  1 - cos(q, f), pooled
//   auto    argmax for a distribution output (decided on the float outputs), else rel_l2
enum class OutputMetric { kAuto, kArgmax, kRelL2, kCosine };
const char* OutputMetricName(OutputMetric m);  // "auto" / "argmax" / "rel_l2" / "cosine"
Result<OutputMetric> ParseOutputMetric(const std::string& s);

// Default tolerances, per metric, of the accuracy search: about one point of task accuracy on
// the PP-OCR models (rec exact lines, det box recall; measured in bench/ocr/README.md).
inline constexpr double kDefaultArgmaxTolerance = 0.01;
inline constexpr double kDefaultRelL2Tolerance = 0.2;
inline constexpr double kDefaultCosineTolerance = 0.02;
double DefaultTolerance(OutputMetric m);  // m resolved (not kAuto)

// How the search ranks layers before searching over that order.
//   kAlone    the outputs' error with only that layer quantized (every other candidate float)
//   kLeaveOut the improvement of the all-int8 error when only that layer is kept float
enum class SensitivityRanking { kAlone, kLeaveOut };
const char* SensitivityRankingName(SensitivityRanking r);  // "alone" / "leave-out"
Result<SensitivityRanking> ParseSensitivityRanking(const std::string& s);

// The accuracy search (auto.cc): which layers to keep float so that every output stays within
// its tolerance on the measuring samples, keeping as few as it can.
//   1. rank the candidate layers (quantized Conv/MatMul/Gemm/Add/Mul/Concat/pools) by
//      sensitivity (`ranking`, on the first `rank_samples` measuring samples);
//   2. the smallest prefix of that order kept float that brings every output within tolerance,
//      measuring the whole model on every measuring sample (exponential, then binary search);
//   3. prune: each kept layer, least sensitive first, is quantized again if the model still
//      passes without it;
//   4. gaps of at most `max_gap` quantized candidates between kept ones (in topological order)
//      are kept float too when that removes activation conversions (QDQ pairs), checked by a
//      final measurement.
// Then the float and the quantized model are timed on this machine (`speed_runs`).
struct AccuracySearchOptions {
  // Search when measuring samples are given. Off: only what keep_float selects explicitly
  // (`--keep-float none` or op:/name: items). keep_float.auto_tolerance turns it on.
  bool enabled = true;
  std::optional<double> tolerance;  // nullopt: DefaultTolerance of each output's metric
  // Multiplies each output's tolerance (the default's or `tolerance`): on-device compilation's
  // retry searches at half its tolerance.
  double tolerance_scale = 1.0;
  OutputMetric metric = OutputMetric::kAuto;
  SensitivityRanking ranking = SensitivityRanking::kAlone;
  int rank_samples = 8;
  bool prune = true;
  int max_gap = 2;
  // When keeping at most this fraction of the candidate layers float (most sensitive first)
  // does not reach the tolerance, the search gives up: nothing is kept beyond keep_float's
  // explicit items, the report says so and recommends the float model (search_gave_up).
  double max_kept_fraction = 0.5;
  // Timed runs of the float and the quantized model after the search, alternating (more, up to
  // 20x, until the float runs add up to 0.5 s; 0: not timed).
  int speed_runs = 10;
};

struct QuantizeOptions {
  CalibrationMethod method = {RangeMethod::kMse, 99.99};
  WeightRounding weight_rounding = WeightRounding::kSumPreserving;
  // 8: weights in [-127, 127]; 7: group-1 Conv weights in [-63, 63], which Kiln's AVX2 dense
  // int8 convolution needs to run u8 x s8 byte products (vpmaddubsw) without saturation on CPUs
  // without VNNI (ONNX Runtime's reduce_range does the same for them), at some accuracy cost;
  // depthwise and matmul weights keep 8 bits.
  int weight_bits = 8;
  ActivationType activations = ActivationType::kU8;
  bool per_channel = true;
  // Bias correction: each quantized Conv/Gemm weight's rounding error times the calibration
  // mean of its input channels is added to the bias (needs channel means in the statistics).
  // Off by default: on PP-OCR it did not help enough (bench/ocr/README.md, int8).
  bool bias_correction = false;
  // Explicit keep-float items (op:, name:) and auto:TOL (sets search.tolerance and turns the
  // search on).
  KeepSelector keep_float;
  AccuracySearchOptions search;
  // Measuring samples for the search (the float model's outputs on them are the reference):
  // best not the samples the statistics were recorded on (SplitCalibrationSamples). Without
  // samples nothing is measured and nothing is kept float but what keep_float selects.
  std::vector<NamedTensors> samples;
  int threads = 1;
  ProgressFn progress;
};

struct QuantKeptNode {
  std::string name;
  std::string op_type;
  std::string reason;  // "selected by op:Softmax", "measured error ..."
};

struct LayerError {
  std::string name;
  std::string op_type;
  // What the search ranked by (SensitivityRanking), as a fraction of the tolerance: kAlone, the
  // worst output's error / tolerance with only this layer quantized; kLeaveOut, how much the
  // all-int8 worst error / tolerance drops with only this layer float.
  double sensitivity = 0;
};

struct QuantOutputError {
  std::string name;
  std::string metric;  // "argmax", "rel_l2" or "cosine" (resolved)
  double error = 0;    // in the metric's units, compared with `tolerance`
  double tolerance = 0;
  double relative_l2 = 0;        // pooled over the measuring samples, QDQ model vs float
  double argmax_agreement = -1;  // argmax metric: rows with the float model's argmax
  double chosen_change = -1;     // argmax metric: mean |q[c*] - f[c*]| (= error)
};

struct QuantizeReport {
  std::map<std::string, int> quantized;  // op_type -> quantized nodes
  int weights_quantized = 0;             // int8 weight tensors
  int biases_quantized = 0;              // int32 bias tensors
  int biases_corrected = 0;              // of which bias-corrected (bias_correction)
  int activations_quantized = 0;         // activation tensors with a QDQ pair
  int opset_before = 0, opset_after = 0;
  bool per_channel = true;               // after a possible fallback
  std::vector<QuantKeptNode> kept;
  // With measuring samples: the written model's output errors, and the all-int8 model's (when
  // the search ran).
  std::vector<QuantOutputError> output_errors;
  std::vector<QuantOutputError> all_int8_errors;
  int measure_samples = 0;
  // The search: every ranked layer (most sensitive first), whole-model evaluations, seconds.
  bool searched = false;
  bool search_gave_up = false;  // see AccuracySearchOptions::max_kept_fraction
  std::vector<LayerError> layer_errors;
  int model_runs = 0;
  double search_seconds = 0;
  // Timed on this machine (search.speed_runs, QuantizeOptions::threads), median ms per run on
  // the first measuring sample; 0 when not timed.
  double float_ms = 0, quantized_ms = 0;
  int timed_runs = 0;
  bool float_recommended = false;  // the quantized model is not faster than the float one
  std::vector<std::string> notes;
};

// One output's error of a candidate vs the float model, pooled over samples, as the accuracy
// search measures it (`metric`; kAuto: argmax when every reference is a distribution over its
// last axis, else rel_l2); `tolerance` is the metric's default. On-device compilation's gate
// uses it too.
Result<QuantOutputError> MeasureOutputError(const std::vector<const Tensor*>& candidate,
                                           const std::vector<const Tensor*>& reference,
                                           OutputMetric metric = OutputMetric::kAuto);

// Rewrites `model` (a float model, after the default graph passes) into a QDQ model.
Result<QuantizeReport> QuantizeModel(Model& model, const CalibrationStats& stats,
                                     const QuantizeOptions& options);

// `--keep-float` of `kiln quantize` (and the C API): "" = the default (the accuracy search at
// the default tolerances), "none" = nothing float and no search (all int8), otherwise the
// selector grammar (precision/selector.h) plus a bare "auto" (the search at the default
// tolerances); op:/name: items without auto turn the search off.
Status ParseQuantizeKeepFloat(const std::string& text, QuantizeOptions& options);

// Calibration samples split into the ones statistics are recorded on and the held-out ones
// the search measures on: every round(1 / fraction)-th sample (at least `min_measure`) is held
// out. With fewer than 2 * min_measure samples both sets are all samples (`held_out` false).
struct SampleSplit {
  std::vector<NamedTensors> calibration, measure;
  bool held_out = false;
};
SampleSplit SplitCalibrationSamples(const std::vector<NamedTensors>& samples,
                                    double fraction = 0.25, int min_measure = 4);

}  // namespace kiln
