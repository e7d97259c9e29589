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
// keep_float, kept_float_nodes, calibration_runs), kiln.quantizer.
//
//   QuantizeOptions o;
//   KILN_ASSIGN_OR_RETURN(o.method, ParseCalibrationMethod("mse"));  // the default
//   KILN_ASSIGN_OR_RETURN(o.keep_float, ParseKeepSelector("op:Softmax,auto:0.05"));
//   o.samples = samples;  // needed by auto:TOL
//   KILN_ASSIGN_OR_RETURN(QuantizeReport r, QuantizeModel(model, stats, o));
#pragma once

#include <map>
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
  KeepSelector keep_float;
  // Samples for auto:TOL (the float model's outputs on them are the reference).
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
  double relative_l2 = 0;  // the node's own output, quantized vs float, on the auto samples
  // The worst output's relative error with only this node quantized (every other measured node
  // float), on the first few auto samples: what auto:TOL ranks by; -1 when not measured.
  double output_alone = -1;
};

struct QuantOutputError {
  std::string name;
  double relative_l2 = 0;  // pooled over the auto samples, QDQ model vs float
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
  // auto:TOL only: every measured layer (most sensitive first), the final output errors and how
  // many whole-model evaluations the search took.
  std::vector<LayerError> layer_errors;
  std::vector<QuantOutputError> output_errors;
  int model_runs = 0;
  std::vector<std::string> notes;
};

// Rewrites `model` (a float model, after the default graph passes) into a QDQ model.
Result<QuantizeReport> QuantizeModel(Model& model, const CalibrationStats& stats,
                                     const QuantizeOptions& options);

}  // namespace kiln
