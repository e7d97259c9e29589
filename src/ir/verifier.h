// Structural checks of a graph: every input of every node is defined (graph input, initializer,
// node output or outer-scope value), graph outputs are defined, the graph is acyclic, and nested
// graphs verify too, at most kMaxGraphNesting levels deep (ir/graph.h). Errors name the node
// and value at fault.
#pragma once

#include "core/status.h"
#include "ir/graph.h"

namespace kiln {

Status VerifyGraph(const Graph& graph);
// Only the nesting depth: subgraphs at most kMaxGraphNesting levels deep, or an error naming the
// graph and its depth. Session creation checks it (graphs built in code or loaded from a plan
// reach the executor, which recurses once per level, without the importer's check).
Status CheckGraphNesting(const Graph& graph);

}  // namespace kiln
