// A readable text form of a graph, one node per line:
//
//   graph 'main'
//     input  %x : f32[1,3,N,N]
//     const  %w : f32[8,3,3,3]
//     %y : f32[1,8,?,?] = Conv 'conv0' (%x, %w) {pads=[1,1,1,1], strides=[1,1]}
//     output %y
//
// Nested graphs are printed indented under their node.
#pragma once

#include <string>

#include "ir/graph.h"

namespace kiln {

std::string PrintGraph(const Graph& graph, int indent = 0);

}  // namespace kiln
