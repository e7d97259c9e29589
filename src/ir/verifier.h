// Structural checks of a graph: every input of every node is defined (graph input, initializer,
// node output or outer-scope value), graph outputs are defined, the graph is acyclic, and nested
// graphs verify too. Errors name the node and value at fault.
#pragma once

#include "core/status.h"
#include "ir/graph.h"

namespace kiln {

Status VerifyGraph(const Graph& graph);

}  // namespace kiln
