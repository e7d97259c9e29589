// Op schemas: what Kiln knows about each operator independent of any backend — today its shape
// and type inference. Each op family lists its schemas in one file under src/ir/ops/ and the
// registry (op_schema.cc) gathers those lists explicitly; no static self-registration. Which op
// versions of opsets 18-23 Kiln implements is the table of ir/op_versions.h.
//
// Inference contract: given input element types and shapes (symbolic or unknown dims allowed)
// and, when known, the constant values of inputs (initializers, or values folded by the
// planner), set every output's element type and the most precise shape derivable. An output
// whose shape depends on unknown data gets an unknown rank or unknown dims, never a guess.
// Inconsistent inputs (rank or type mismatch) are an error naming the node.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "ir/graph.h"

namespace kiln {

class InferContext {
 public:
  InferContext(const Node& node, std::vector<TypeInfo> inputs,
               std::vector<const Tensor*> input_values)
      : node_(node),
        inputs_(std::move(inputs)),
        values_(std::move(input_values)),
        outputs_(node.outputs.size()) {}

  const Node& node() const { return node_; }
  const Attributes& attrs() const { return node_.attrs; }
  int opset() const { return node_.opset; }

  size_t num_inputs() const { return inputs_.size(); }
  // False for an omitted optional input (or one past the end). A present input may still have
  // an unknown element type (kUndefined) and shape.
  bool has_input(size_t i) const {
    if (i >= inputs_.size()) return false;
    if (i < node_.inputs.size()) return node_.inputs[i].valid();
    return inputs_[i].type != ElementType::kUndefined;  // node built without value ids (tests)
  }
  const TypeInfo& input(size_t i) const { return inputs_[i]; }
  ElementType input_type(size_t i) const { return inputs_[i].type; }
  // Constant value of input i when known, else nullptr.
  const Tensor* input_value(size_t i) const { return i < values_.size() ? values_[i] : nullptr; }

  size_t num_outputs() const { return outputs_.size(); }
  void set_output(size_t i, TypeInfo t) {
    if (i < outputs_.size()) outputs_[i] = std::move(t);
  }
  void set_output(size_t i, ElementType type, std::optional<DimVector> shape) {
    set_output(i, TypeInfo{type, std::move(shape)});
  }
  const std::vector<TypeInfo>& outputs() const { return outputs_; }

  // An InvalidArgument status prefixed with the node's op type and name.
  Status Error(const std::string& message) const {
    return InvalidArgument(node_.Describe() + ": " + message);
  }

 private:
  const Node& node_;
  std::vector<TypeInfo> inputs_;
  std::vector<const Tensor*> values_;
  std::vector<TypeInfo> outputs_;
};

using InferFn = Status (*)(InferContext&);

struct OpSchema {
  const char* op_type;
  const char* domain;  // "" for ai.onnx
  InferFn infer;
  // Newest opset of the op's domain Kiln implements. Not consulted for ai.onnx, whose versions
  // 18-23 are listed in ir/op_versions.h.
  int max_opset = 17;
};

// The schema for (domain, op_type), or nullptr when Kiln does not know the op.
const OpSchema* FindOpSchema(std::string_view domain, std::string_view op_type);
// Every known schema, for listings and test matrices.
std::vector<const OpSchema*> AllOpSchemas();

// Per-family schema lists (src/ir/ops/*.cc), gathered by the registry.
std::span<const OpSchema> ElementwiseSchemas();
std::span<const OpSchema> TensorSchemas();
std::span<const OpSchema> NnSchemas();
std::span<const OpSchema> ReduceSchemas();
std::span<const OpSchema> RnnSchemas();
std::span<const OpSchema> ControlFlowSchemas();
std::span<const OpSchema> QuantSchemas();
std::span<const OpSchema> MiscSchemas();
std::span<const OpSchema> SequenceSchemas();
std::span<const OpSchema> ModernSchemas();  // ops/modern.cc: ops new in opsets 18-23

// Runs the schema's inference for `node`; unknown ops are an error naming op, domain and opset.
Status InferNode(InferContext& ctx);

}  // namespace kiln
