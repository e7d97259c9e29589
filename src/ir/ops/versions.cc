// The default domain's operator versions 18-23 (ONNX changelog, docs/Changelog.md of ONNX 1.13
// to 1.18) and what Kiln implements of each. See ir/op_versions.h for how the table is used.
#include <algorithm>
#include <string>

#include "ir/op_versions.h"

namespace kiln {
namespace {

using S = OpVersionStatus;

// Kept sorted by op, then version. Rows of kTypesOnly name the types the version added.
constexpr OpVersionRow kRows[] = {
    {"Acos", 22, S::kTypesOnly, "bfloat16"},
    {"Acosh", 22, S::kTypesOnly, "bfloat16"},
    {"AffineGrid", 20, S::kNew, "new op (grid generator for GridSample)"},
    {"Asin", 22, S::kTypesOnly, "bfloat16"},
    {"Asinh", 22, S::kTypesOnly, "bfloat16"},
    {"Atan", 22, S::kTypesOnly, "bfloat16"},
    {"Atanh", 22, S::kTypesOnly, "bfloat16"},
    {"Attention", 23, S::kNew, "new op (scaled dot-product attention with masks, GQA, KV cache)"},
    {"AveragePool", 19, S::kImplemented, "dilations attribute"},
    {"AveragePool", 22, S::kTypesOnly, "bfloat16"},
    {"Bernoulli", 22, S::kTypesOnly, "bfloat16"},
    {"BitwiseAnd", 18, S::kNew, "new op"},
    {"BitwiseNot", 18, S::kNew, "new op"},
    {"BitwiseOr", 18, S::kNew, "new op"},
    {"BitwiseXor", 18, S::kNew, "new op"},
    {"Cast", 19, S::kTypesOnly, "float8 types and the saturate attribute (float8 only)"},
    {"Cast", 21, S::kTypesOnly, "int4/uint4"},
    {"Cast", 23, S::kTypesOnly, "float4e2m1"},
    {"CastLike", 19, S::kTypesOnly, "float8 types and the saturate attribute (float8 only)"},
    {"CastLike", 21, S::kTypesOnly, "int4/uint4"},
    {"CastLike", 23, S::kTypesOnly, "float4e2m1"},
    {"CenterCropPad", 18, S::kNew, "new op"},
    {"Col2Im", 18, S::kNew, "new op"},
    {"Constant", 19, S::kTypesOnly, "float8"},
    {"Constant", 21, S::kTypesOnly, "int4/uint4"},
    {"Constant", 23, S::kTypesOnly, "float4e2m1"},
    {"ConstantOfShape", 20, S::kTypesOnly, "bfloat16, float8"},
    {"ConstantOfShape", 21, S::kTypesOnly, "int4/uint4"},
    {"ConstantOfShape", 23, S::kTypesOnly, "float4e2m1"},
    {"Conv", 22, S::kTypesOnly, "bfloat16"},
    {"ConvTranspose", 22, S::kTypesOnly, "bfloat16"},
    {"Cos", 22, S::kTypesOnly, "bfloat16"},
    {"Cosh", 22, S::kTypesOnly, "bfloat16"},
    {"DFT", 20, S::kImplemented, "dft_length and axis became inputs"},
    {"DeformConv", 19, S::kNew, "new op"},
    {"DeformConv", 22, S::kTypesOnly, "bfloat16"},
    {"DequantizeLinear", 19, S::kTypesOnly, "float8"},
    {"DequantizeLinear", 21, S::kImplemented,
     "blocked scales (block_size), int16/uint16; int4/uint4 (no such Kiln types)"},
    {"DequantizeLinear", 23, S::kTypesOnly, "float4e2m1"},
    {"Det", 22, S::kTypesOnly, "bfloat16"},
    {"Dropout", 22, S::kTypesOnly, "bfloat16"},
    {"Elu", 22, S::kTypesOnly, "bfloat16"},
    {"Equal", 19, S::kTypesOnly, "string"},
    {"EyeLike", 22, S::kTypesOnly, "bfloat16"},
    {"Flatten", 21, S::kTypesOnly, "int4/uint4"},
    {"Flatten", 23, S::kTypesOnly, "float4e2m1"},
    {"GRU", 22, S::kTypesOnly, "bfloat16"},
    {"Gelu", 20, S::kNew, "new op"},
    {"GlobalAveragePool", 22, S::kTypesOnly, "bfloat16"},
    {"GlobalLpPool", 22, S::kTypesOnly, "bfloat16"},
    {"GlobalMaxPool", 22, S::kTypesOnly, "bfloat16"},
    {"GridSample", 20, S::kImplemented, "modes renamed linear/cubic, N-D grids"},
    {"GroupNormalization", 18, S::kNew, "new op (scale and bias per group)"},
    {"GroupNormalization", 21, S::kImplemented, "scale and bias per channel, stash_type"},
    {"HardSigmoid", 22, S::kTypesOnly, "bfloat16"},
    {"HardSwish", 22, S::kTypesOnly, "bfloat16"},
    {"Identity", 19, S::kTypesOnly, "float8"},
    {"Identity", 21, S::kTypesOnly, "int4/uint4"},
    {"Identity", 23, S::kTypesOnly, "float4e2m1"},
    {"If", 19, S::kTypesOnly, "float8"},
    {"If", 21, S::kTypesOnly, "int4/uint4"},
    {"If", 23, S::kTypesOnly, "float4e2m1"},
    {"ImageDecoder", 20, S::kNewMissing, "new op (JPEG/PNG/... decoding; needs image codecs)"},
    {"InstanceNormalization", 22, S::kTypesOnly, "bfloat16"},
    {"IsInf", 20, S::kTypesOnly, "float16, bfloat16, float8"},
    {"IsNaN", 20, S::kTypesOnly, "float16, bfloat16, float8"},
    {"LSTM", 22, S::kTypesOnly, "bfloat16"},
    {"Loop", 19, S::kTypesOnly, "float8"},
    {"Loop", 21, S::kTypesOnly, "int4/uint4"},
    {"Loop", 23, S::kTypesOnly, "float4e2m1"},
    {"LpNormalization", 22, S::kTypesOnly, "bfloat16"},
    {"LpPool", 18, S::kImplemented, "dilations and ceil_mode attributes"},
    {"LpPool", 22, S::kTypesOnly, "bfloat16"},
    {"MaxPool", 22, S::kTypesOnly, "bfloat16"},
    {"MaxRoiPool", 22, S::kTypesOnly, "bfloat16"},
    {"MaxUnpool", 22, S::kTypesOnly, "bfloat16"},
    {"Mish", 18, S::kNew, "new op"},
    {"Mish", 22, S::kTypesOnly, "bfloat16"},
    {"Multinomial", 22, S::kTypesOnly, "bfloat16"},
    {"NegativeLogLikelihoodLoss", 22, S::kTypesOnly, "bfloat16"},
    {"OptionalGetElement", 18, S::kImplemented, "accepts a plain tensor or sequence too"},
    {"OptionalHasElement", 18, S::kImplemented, "accepts a plain tensor or sequence, or no input"},
    {"Pad", 18, S::kImplemented, "axes input"},
    {"Pad", 19, S::kImplemented, "mode wrap"},
    {"Pad", 21, S::kTypesOnly, "int4/uint4"},
    {"Pad", 23, S::kTypesOnly, "float4e2m1"},
    {"QLinearMatMul", 21, S::kTypesOnly, "float8 and float16/bfloat16 scales"},
    {"QuantizeLinear", 19, S::kTypesOnly, "float8 and the saturate attribute (float8 only)"},
    {"QuantizeLinear", 21, S::kImplemented,
     "blocked scales (block_size), output_dtype, int16/uint16; int4/uint4 (no such Kiln types)"},
    {"QuantizeLinear", 23, S::kTypesOnly, "float4e2m1"},
    {"RMSNormalization", 23, S::kNew, "new op"},
    {"RNN", 22, S::kTypesOnly, "bfloat16"},
    {"RandomNormal", 22, S::kTypesOnly, "bfloat16"},
    {"RandomNormalLike", 22, S::kTypesOnly, "bfloat16"},
    {"RandomUniform", 22, S::kTypesOnly, "bfloat16"},
    {"RandomUniformLike", 22, S::kTypesOnly, "bfloat16"},
    {"ReduceL1", 18, S::kImplemented, "axes input, noop_with_empty_axes"},
    {"ReduceL2", 18, S::kImplemented, "axes input, noop_with_empty_axes"},
    {"ReduceLogSum", 18, S::kImplemented, "axes input, noop_with_empty_axes"},
    {"ReduceLogSumExp", 18, S::kImplemented, "axes input, noop_with_empty_axes"},
    {"ReduceMax", 18, S::kImplemented, "axes input, noop_with_empty_axes"},
    {"ReduceMax", 20, S::kImplemented, "bool inputs"},
    {"ReduceMean", 18, S::kImplemented, "axes input, noop_with_empty_axes"},
    {"ReduceMin", 18, S::kImplemented, "axes input, noop_with_empty_axes"},
    {"ReduceMin", 20, S::kImplemented, "bool inputs"},
    {"ReduceProd", 18, S::kImplemented, "axes input, noop_with_empty_axes"},
    {"ReduceSumSquare", 18, S::kImplemented, "axes input, noop_with_empty_axes"},
    {"RegexFullMatch", 20, S::kNewMissing, "new op (needs a regex engine with RE2 semantics)"},
    {"Reshape", 19, S::kTypesOnly, "float8"},
    {"Reshape", 21, S::kTypesOnly, "int4/uint4"},
    {"Reshape", 23, S::kTypesOnly, "float4e2m1"},
    {"Resize", 18, S::kImplemented, "antialias, axes, keep_aspect_ratio_policy"},
    {"Resize", 19, S::kImplemented, "coordinate mode half_pixel_symmetric"},
    {"RoiAlign", 22, S::kTypesOnly, "bfloat16"},
    {"RotaryEmbedding", 23, S::kNew, "new op"},
    {"Round", 22, S::kTypesOnly, "bfloat16"},
    {"Scan", 19, S::kTypesOnly, "float8"},
    {"Scan", 21, S::kTypesOnly, "int4/uint4"},
    {"Scan", 23, S::kTypesOnly, "float4e2m1"},
    {"ScatterElements", 18, S::kImplemented, "reduction min and max"},
    {"ScatterND", 18, S::kImplemented, "reduction min and max"},
    {"Selu", 22, S::kTypesOnly, "bfloat16"},
    {"Shape", 19, S::kTypesOnly, "float8"},
    {"Shape", 21, S::kTypesOnly, "int4/uint4"},
    {"Shape", 23, S::kTypesOnly, "float4e2m1"},
    {"Sin", 22, S::kTypesOnly, "bfloat16"},
    {"Sinh", 22, S::kTypesOnly, "bfloat16"},
    {"Size", 19, S::kTypesOnly, "float8"},
    {"Size", 21, S::kTypesOnly, "int4/uint4"},
    {"Size", 23, S::kTypesOnly, "float4e2m1"},
    {"Softplus", 22, S::kTypesOnly, "bfloat16"},
    {"Softsign", 22, S::kTypesOnly, "bfloat16"},
    {"Split", 18, S::kImplemented, "num_outputs attribute"},
    {"Squeeze", 21, S::kTypesOnly, "int4/uint4"},
    {"Squeeze", 23, S::kTypesOnly, "float4e2m1"},
    {"StringConcat", 20, S::kNewMissing, "new op"},
    {"StringSplit", 20, S::kNewMissing, "new op"},
    {"Tan", 22, S::kTypesOnly, "bfloat16"},
    {"ThresholdedRelu", 22, S::kTypesOnly, "bfloat16"},
    {"Transpose", 21, S::kTypesOnly, "int4/uint4"},
    {"Transpose", 23, S::kTypesOnly, "float4e2m1"},
    {"Unsqueeze", 21, S::kTypesOnly, "int4/uint4"},
    {"Unsqueeze", 23, S::kTypesOnly, "float4e2m1"},
};

bool Implemented(S s) { return s == S::kNew || s == S::kImplemented || s == S::kTypesOnly; }

// The first version of an op that appeared in 18-23, or 0 when it existed at 17.
int FirstVersion(std::string_view op) {
  for (const OpVersionRow& r : kRows) {
    if (op == r.op_type) return r.status == S::kNew || r.status == S::kNewMissing ? r.version : 0;
  }
  return 0;
}

}  // namespace

std::vector<OpVersionRow> AllOpVersionRows() { return {std::begin(kRows), std::end(kRows)}; }

const OpVersionRow* FindOpVersion(std::string_view op_type, int opset) {
  const OpVersionRow* best = nullptr;
  for (const OpVersionRow& r : kRows) {
    if (op_type == r.op_type && r.version <= opset) best = &r;
  }
  return best;
}

Status OpVersionSupport(const Node& node) {
  if (!node.domain.empty() && node.domain != "ai.onnx") return Status::Ok();
  auto where = [&] {
    return "node " + node.Describe() + ": ai.onnx " + node.op_type;
  };
  if (node.opset > kMaxDefaultOpset) {
    return Unimplemented(where() + " at opset " + std::to_string(node.opset) +
                         ": Kiln supports ai.onnx opsets 1 to " +
                         std::to_string(kMaxDefaultOpset));
  }
  const int first = FirstVersion(node.op_type);
  if (first > 0 && node.opset < first) {
    return InvalidArgument(where() + " exists from opset " + std::to_string(first) +
                           ", but the model imports opset " + std::to_string(node.opset));
  }
  const OpVersionRow* r = FindOpVersion(node.op_type, node.opset);
  if (r == nullptr || Implemented(r->status)) return Status::Ok();
  // The newest version Kiln does implement, for the message.
  std::string have = "no version";
  for (const OpVersionRow& o : kRows) {
    if (node.op_type == o.op_type && o.version < r->version && Implemented(o.status)) {
      have = "up to version " + std::to_string(o.version);
    }
  }
  if (have == "no version" && first == 0) have = "up to the version in force at opset 17";
  const std::string tail = have == "no version" ? "Kiln has no kernel for any version of it"
                                                : "Kiln implements " + node.op_type + " " + have;
  return Unimplemented(where() + " version " + std::to_string(r->version) +
                       " (the model imports opset " + std::to_string(node.opset) +
                       ") is not supported by Kiln (" + r->what + "); " + tail);
}

Status CheckOpVersions(const Graph& graph) {
  for (const Node& n : graph.nodes()) {
    KILN_RETURN_IF_ERROR(OpVersionSupport(n));
    for (const Attribute& a : n.attrs.items()) {
      if (a.g) KILN_RETURN_IF_ERROR(CheckOpVersions(*a.g));
      for (const auto& sub : a.graphs) KILN_RETURN_IF_ERROR(CheckOpVersions(*sub));
    }
  }
  return Status::Ok();
}

}  // namespace kiln
