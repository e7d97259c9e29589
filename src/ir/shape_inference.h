// Whole-graph shape and type inference, with optional constant folding.
//
// Walks the graph in topological order and runs each op's schema inference (op_schema.h).
// Known constant values (initializers, and outputs of nodes folded on the way) are handed to
// inference so that shape-computing chains (Shape -> Gather -> Concat -> Reshape) resolve to
// exact shapes. Folding needs kernels, which live in backends; the caller passes a folder.
// Declared types in the model (value_info, graph outputs) are checked against inferred ones: an
// element type or rank disagreement is an error naming the value.
#pragma once

#include <functional>
#include <unordered_map>
#include <vector>

#include "core/status.h"
#include "ir/graph.h"

namespace kiln {

// Computes a node's outputs from constant inputs; returns an error when it cannot.
using ConstantFolder =
    std::function<Result<std::vector<Tensor>>(const Node&, const std::vector<Tensor>&)>;

struct InferShapesOptions {
  // When set, nodes whose inputs are all known and small are evaluated and their outputs become
  // known values too.
  ConstantFolder folder;
  // Largest output (in elements) that folding keeps as a known value; an output no larger than the
  // node's known inputs together is kept too, up to max_folded_weight_elements (weights
  // re-arranged by Slice/Concat/Unsqueeze/Transpose on constants fold once, instead of
  // running at every inference; an Expand or Tile of a small constant stays live).
  int64_t max_folded_elements = 4096;
  int64_t max_folded_weight_elements = int64_t{1} << 22;
  // Known values by value id (filled in and extended by InferShapes).
  std::unordered_map<uint32_t, Tensor>* known = nullptr;
  // Types of outer-scope values by name, for subgraphs.
  const std::unordered_map<std::string, TypeInfo>* outer_types = nullptr;
};

// Infers into `types` (indexed by value id, initialised by the caller, typically from the
// graph's declared types), leaving the graph untouched: used to specialise a graph for
// concrete input shapes.
Status InferShapes(const Graph& graph, std::vector<TypeInfo>& types,
                   const InferShapesOptions& options);
// Infers into the graph's own value types.
Status InferShapes(Graph& graph, const InferShapesOptions& options);
// The declared types of every value of `graph`, indexed by value id.
std::vector<TypeInfo> DeclaredTypes(const Graph& graph);

}  // namespace kiln
