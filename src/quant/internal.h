// Private to src/quant: the QDQ plan shared by the rewrite (qdq.cc), the opset upgrade
// (upgrade.cc) and the accuracy search (auto.cc).
#pragma once

#include <optional>
#include <set>
#include <string>
#include <vector>

#include "quant/quantize.h"

namespace kiln::quant_internal {

// Rewrites every default-domain node of the main graph and its bodies to opset 13 (see
// quantize.h for the ops handled). An error naming the first node it cannot upgrade.
Status UpgradeToOpset13(Model& model);

// How a quantized node reads one input slot.
enum class SlotRole : uint8_t {
  kFloat,       // as is (or the dequantized value when its producer's output is quantized)
  kActivation,  // through the value's QDQ pair
  kWeight,      // a constant, int8 symmetric (per channel along `weight_axis` or per tensor)
  kBias,        // a constant, int32, scale input_scale * weight_scale
  kConstant,    // a constant of an elementwise op, per tensor in the activation type
};

struct NodePlan {
  bool quantized = false;
  bool fused_activation = false;  // a Relu/Clip whose output carries its producer's range
  std::vector<SlotRole> roles;    // per input slot (quantized nodes)
  int weight_axis = -1;           // kWeight slot: the channel axis; -1 per tensor
  int weight_bits = 8;            // kWeight slot: 8 or 7 (QuantizeOptions::weight_bits)
  int bias_group_channels = 0;    // kBias: weight channels along weight_axis (bias index % this)
  // Bias correction (Conv, Gemm): added to the float bias before it is quantized; a Conv without
  // a bias gets one (add_bias). Empty when not corrected.
  std::vector<double> bias_delta;
  bool add_bias = false;
};

struct QParams {
  float scale = 1;
  int32_t zero_point = 0;
  ElementType type = ElementType::kU8;
};

struct QdqPlan {
  std::vector<NodePlan> nodes;               // per node id of the main graph
  std::vector<std::optional<QParams>> acts;  // per value id: the QDQ pair's parameters
  std::vector<std::string> notes;
};

// Scale and zero point for a real interval in the activation type (the interval is widened to
// hold 0).
QParams ParamsForRange(double lo, double hi, ActivationType type);

// Decides what to quantize in `g` (nodes named in `keep` stay float).
Result<QdqPlan> PlanQdq(const Graph& g, const CalibrationStats& stats,
                        const QuantizeOptions& options, bool per_channel,
                        const std::set<std::string>& keep);

// The QDQ graph of `g` under `plan`; `opset` for the inserted Q/DQ nodes. Counts into `report`
// when given.
Result<Graph> EmitQdq(const Graph& g, const QdqPlan& plan, const QuantizeOptions& options,
                      int opset, QuantizeReport* report);

// A weight's int8 values and per-channel scales (one scale when axis < 0).
struct QuantizedWeight {
  Tensor q;  // int8, the weight's shape
  std::vector<float> scales;
};
// bits 8: integers in [-127, 127]; 7: [-63, 63] (for CPUs whose fastest int8 instructions
// saturate 8-bit products summed in pairs, see QuantizeOptions::weight_bits).
QuantizedWeight QuantizeWeight(const Tensor& w, int axis, WeightRounding rounding, int bits);
// Dequantized copies (float32) of what the QDQ model computes with.
Tensor FakeQuantize(const Tensor& x, const QParams& p);
// The integers QuantizeLinear writes for x under p (u8 or i8 per p.type).
Tensor QuantizeValues(const Tensor& x, const QParams& p);
// Per-tensor parameters for a constant input of an elementwise op: its finite range (with 0).
QParams ConstantParams(const Tensor& c, ActivationType type);
Tensor DequantizeWeight(const QuantizedWeight& w, int axis);

// MaxPool, Resize, Reshape, ...: quantized only to pass their input's quantization on.
bool IsPassThroughQuantOp(const std::string& op);

// The measurement and the accuracy search (auto.cc) on options.samples: with `search`, extends
// `keep` with the layers that must stay float (AccuracySearchOptions); always fills the
// report's output errors and timings.
Status MeasureAndSearch(const Model& model, const CalibrationStats& stats,
                        const QuantizeOptions& o, bool per_channel, bool search,
                        std::set<std::string>& keep, QuantizeReport& report);

}  // namespace kiln::quant_internal
