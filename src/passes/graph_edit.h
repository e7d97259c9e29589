// Helpers shared by the graph passes (src/passes/*.cc): reading constants, asking who reads a
// value, and editing a graph in place — removing nodes, moving a node's output to another value,
// adding initializers — then compacting the tables in one step.
//
// A Graph's tables only grow (ids are indices), so an edit marks nodes and values as removed and
// Commit() rebuilds the graph without them, keeping the order of what remains, every name, the
// graph's inputs and outputs, and nested bodies (which refer to this graph's values by name).
//
//   GraphEditor e(model.graph);
//   if (auto reader = e.SoleReader(conv.outputs[0]); reader && *reader == bn_id) {
//     e.MoveOutput(conv_id, 0, bn.outputs[0]);  // conv now writes the BN's output
//     e.RemoveNode(bn_id);
//   }
//   KILN_RETURN_IF_ERROR(e.Commit());  // the editor is spent afterwards
#pragma once

#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"
#include "ir/graph.h"

namespace kiln::passes {

// The data of `v` when it is a constant: an initializer (not a graph input, whose value a caller
// may override) or the output of a default-domain Constant node (value, value_float,
// value_floats). nullopt otherwise. The tensor shares the graph's storage: do not write to it.
std::optional<Tensor> ConstantValue(const Graph& g, ValueId v);

// Whether `node` is in the default ONNX domain ("" or "ai.onnx").
bool IsDefaultDomain(const Node& node);

// A new tensor of floating type `type` (f16, bf16, f32 or f64) and `shape` holding `values`
// (one per element, rounded to `type`). An error for other types.
Result<Tensor> FloatTensorFromDoubles(ElementType type, const Shape& shape,
                                      const std::vector<double>& values);
// A floating tensor's elements in double.
std::vector<double> ToDoubles(const Tensor& t);

// Conv and ConvTranspose (default domain) are the convolutions the fusion passes rewrite.
bool IsConvolution(const Node& node);
// A convolution's output channel count M from its weight shape: Conv W is [M, C/group, k...],
// ConvTranspose W is [C, M/group, k...]. nullopt when the shape is not static, has rank < 3, or
// disagrees with the node's group.
std::optional<int64_t> ConvOutputChannels(const Node& conv, const TypeInfo& weight);

class GraphEditor {
 public:
  explicit GraphEditor(Graph& graph);

  Graph& graph() { return graph_; }
  const Graph& graph() const { return graph_; }
  bool removed(NodeId n) const { return removed_nodes_[n.v]; }

  // The one live node reading `v`, when `v` is read by exactly one input slot of one node, is
  // not a graph output and is not captured by a nested body; nullopt otherwise.
  std::optional<NodeId> SoleReader(ValueId v) const;
  // How many input slots of live nodes read `v` (nested-body captures count one each).
  size_t ReaderCount(ValueId v) const;

  // Input `slot` of node `n` reads `v` from now on (the input list grows with omitted inputs
  // when `slot` is past its end).
  void SetInput(NodeId n, size_t slot, ValueId v);
  // Node `n` writes output `slot` into `v` (whose previous producer must be removed) instead of
  // its current value, which is left without a producer and dropped on Commit unless read.
  void MoveOutput(NodeId n, size_t slot, ValueId v);
  // Removes node `n`; its outputs must be unread, or moved to another node first.
  void RemoveNode(NodeId n);
  // Drops initializer `v` on Commit (it must be unread by then).
  void RemoveInitializer(ValueId v);
  // A new initializer named after `base`, made unique in this graph and its nested bodies.
  ValueId AddInitializer(const std::string& base, Tensor data);

  // Rebuilds the graph without removed nodes, removed initializers, and intermediate values that
  // no live node produces or reads. An error when a removed node's output is still read.
  Status Commit();

 private:
  void CollectNames(const Graph& g);

  Graph& graph_;
  std::vector<bool> removed_nodes_;
  std::vector<bool> removed_values_;
  std::vector<std::vector<NodeId>> readers_;  // per value: one entry per reading input slot
  std::vector<int> captures_;                 // per value: nested-body captures by live nodes
  std::unordered_set<std::string> names_;     // every value name here and in nested bodies
};

}  // namespace kiln::passes
