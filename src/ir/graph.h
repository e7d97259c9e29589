// Kiln's IR: a graph of nodes and values held in dense tables, addressed by strong ids.
//
// A Graph owns its values and nodes. Each value has a name, an element type, a (possibly
// symbolic or unknown) shape, optional quantization parameters, a producer node (or none for
// graph inputs, initializers and outer-scope captures) and, for initializers, its constant data.
// Nodes list input and output value ids; an omitted optional input is an invalid ValueId.
// Nested graphs (If/Loop/Scan bodies) are Graph objects owned by their node's attributes; a
// body refers to a value of an enclosing graph through a value of kind kOuterScope with the
// same name, resolved by the executor at run time.
//
// Usage:
//   Graph g;
//   ValueId x = g.AddValue("x", ElementType::kF32, {Dim(1), Dim(3)});
//   g.MarkInput(x);
//   ValueId y = g.AddValue("y");
//   g.AddNode("relu0", "Relu", {x}, {y});
//   g.MarkOutput(y);
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/tensor.h"
#include "ir/attribute.h"

namespace kiln {

// The deepest nesting of subgraphs (If/Loop/Scan bodies inside bodies) Kiln accepts: the
// importer and the verifier refuse a deeper graph naming the depth, since every later stage
// (inference, passes, executor) recurses once per level. Real models nest a few levels.
constexpr int kMaxGraphNesting = 32;

template <typename Tag>
struct Id {
  static constexpr uint32_t kInvalid = 0xffffffffu;
  uint32_t v = kInvalid;
  constexpr Id() = default;
  constexpr explicit Id(uint32_t x) : v(x) {}
  bool valid() const { return v != kInvalid; }
  bool operator==(const Id& o) const { return v == o.v; }
  bool operator!=(const Id& o) const { return v != o.v; }
  bool operator<(const Id& o) const { return v < o.v; }
};
struct ValueTag {};
struct NodeTag {};
using ValueId = Id<ValueTag>;
using NodeId = Id<NodeTag>;

// One dimension: a static size (value >= 0), a named symbol ("batch"), or unknown.
struct Dim {
  int64_t value = -1;
  std::string symbol;
  Dim() = default;
  Dim(int64_t v) : value(v) {}  // NOLINT: implicit so that {1, 3, 224} reads naturally
  static Dim Symbol(std::string s) {
    Dim d;
    d.symbol = std::move(s);
    return d;
  }
  bool is_static() const { return value >= 0; }
  bool operator==(const Dim& o) const { return value == o.value && symbol == o.symbol; }
  std::string ToString() const;
};
using DimVector = std::vector<Dim>;

// A value's static type: element type plus shape (nullopt when even the rank is unknown).
// For a sequence or optional value (kind, see core/tensor.h's TensorKind) `type` and `shape`
// describe the tensors inside; such values never have a static shape (no arena slot).
struct TypeInfo {
  ElementType type = ElementType::kUndefined;
  std::optional<DimVector> shape;
  TensorKind kind = TensorKind::kTensor;
  bool of_sequence = false;  // kind kOptional: an optional sequence
  bool is_tensor() const { return kind == TensorKind::kTensor; }
  bool has_static_shape() const;
  Shape static_shape() const;  // requires has_static_shape()
  std::string ToString() const;  // "f32[1,3,N,?]" / "f32[*]" / "?" / "seq(f32[*])"
};

// The type of a runtime value (a tensor's shape, or a container's kind and element type).
TypeInfo TypeInfoOf(const Tensor& t);

// Affine quantization: real = scale * (q - zero_point). Per tensor (axis = -1, one scale) or per
// axis (one scale and zero point per index along `axis`).
struct QuantParams {
  std::vector<float> scales;
  std::vector<int64_t> zero_points;
  int axis = -1;
  bool empty() const { return scales.empty(); }
};

enum class ValueKind { kIntermediate, kInput, kInitializer, kOuterScope };

struct Value {
  std::string name;
  ValueKind kind = ValueKind::kIntermediate;
  TypeInfo info;
  QuantParams quant;
  NodeId producer;      // invalid unless produced by a node
  Tensor initializer;   // data for kInitializer
  bool is_output = false;
};

struct Node {
  std::string name;
  std::string op_type;
  std::string domain;  // "" is the default ONNX domain
  int opset = 0;       // opset version of `domain` in force for this node
  std::vector<ValueId> inputs;
  std::vector<ValueId> outputs;
  Attributes attrs;
  // "Conv 'conv1'" for messages.
  std::string Describe() const;
};

class Graph {
 public:
  Graph() = default;
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;
  Graph(Graph&&) = default;
  Graph& operator=(Graph&&) = default;

  std::string name;

  ValueId AddValue(std::string value_name, ElementType type = ElementType::kUndefined,
                   std::optional<DimVector> shape = std::nullopt);
  ValueId AddInitializer(std::string value_name, Tensor data);
  NodeId AddNode(std::string node_name, std::string op_type, std::vector<ValueId> inputs,
                 std::vector<ValueId> outputs, Attributes attrs = {}, std::string domain = "",
                 int opset = 0);
  void MarkInput(ValueId v);
  void MarkOutput(ValueId v);

  size_t num_values() const { return values_.size(); }
  size_t num_nodes() const { return nodes_.size(); }
  Value& value(ValueId id) { return values_[id.v]; }
  const Value& value(ValueId id) const { return values_[id.v]; }
  Node& node(NodeId id) { return nodes_[id.v]; }
  const Node& node(NodeId id) const { return nodes_[id.v]; }
  const std::vector<Node>& nodes() const { return nodes_; }
  const std::vector<Value>& values() const { return values_; }
  const std::vector<ValueId>& inputs() const { return inputs_; }
  const std::vector<ValueId>& outputs() const { return outputs_; }
  // Values that enter from an enclosing graph (kind kOuterScope).
  std::vector<ValueId> OuterScopeValues() const;
  std::optional<ValueId> FindValue(const std::string& value_name) const;

  // Values of this graph that a node's nested graphs read by name (outer-scope captures, at any
  // depth). They are inputs of the node as far as ordering and liveness go.
  std::vector<ValueId> ImplicitInputs(const Node& node) const;

  // Node ids in an order where every node follows the producers of its inputs (explicit and
  // implicit); an error
  // naming a node on a cycle otherwise.
  Result<std::vector<NodeId>> TopologicalOrder() const;

 private:
  std::vector<Value> values_;
  std::vector<Node> nodes_;
  std::vector<ValueId> inputs_;
  std::vector<ValueId> outputs_;
  std::unordered_map<std::string, ValueId> by_name_;
};

// A model: its main graph and where it came from.
// How a typed model's element types bind a runtime (DESIGN.md, "Typed execution"):
// kProgram: every value's type is its minimum precision (a backend may raise, never lower);
// kNetwork: only graph inputs and outputs are typed, each compute unit computes in its own
// native precision. Recorded in the metadata key "kiln.model_type"; absent means program.
enum class ModelType { kProgram, kNetwork };
const char* ModelTypeName(ModelType t);  // "program" / "network"
Result<ModelType> ParseModelType(const std::string& s);

struct Model {
  // The model type recorded in the metadata (kProgram when absent); an unknown value is an error.
  Result<ModelType> model_type() const;

  Graph graph;
  std::map<std::string, int> opsets;  // domain -> version ("" is ai.onnx)
  int64_t ir_version = 0;
  std::string producer_name;
  std::string producer_version;
  std::map<std::string, std::string> metadata;
  std::string path;  // file it was read from, if any
};

// Gives every unnamed node, or one whose name repeats an earlier one, a unique name
// "<OpType>_<k>" (nested bodies too), so that selectors, reports and metadata can name every node.
void NameUnnamedNodes(Graph& graph);

// A model with `model`'s opsets, producer, metadata and path around `graph`.
Model WithGraph(const Model& model, Graph graph);

// A copy of `model`'s values and nodes (nested bodies are shared: treat them as read-only).
Model CopyModel(const Model& model);
// Appends every value of `src` (name, type, shape, kind, quantization, initializer) to the empty
// graph `dst`, keeping the ids: nodes of `src` can be added to `dst` as they are.
void CopyValues(const Graph& src, Graph& dst);

}  // namespace kiln
