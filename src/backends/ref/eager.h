// Runs one node eagerly with the reference kernels: inputs in, freshly allocated outputs out.
// Used for constant folding at plan time and by kernel unit tests.
//
//   Node n; n.op_type = "Add"; n.opset = 17; n.inputs/outputs sized to the arity;
//   auto outs = RunNodeEager(n, {a, b});
#pragma once

#include <functional>
#include <vector>

#include "backends/ref/kernel.h"

namespace kiln {

// Runs a nested graph; provided by an executor. Null means "no subgraphs here".
using SubgraphRunner =
    std::function<Result<std::vector<Tensor>>(const Graph&, const std::vector<Tensor>&)>;

// `inputs` may contain undefined tensors for omitted optional inputs. The node's outputs vector
// fixes the number of outputs (an invalid ValueId marks an unused optional output).
Result<std::vector<Tensor>> RunNodeEager(const Node& node, const std::vector<Tensor>& inputs,
                                         ThreadPool* pool = nullptr,
                                         SubgraphRunner subgraphs = nullptr);

// Convenience for tests: builds the node from op type, attributes and arities.
Result<std::vector<Tensor>> RunOpEager(const std::string& op_type, int opset,
                                       const std::vector<Tensor>& inputs, size_t num_outputs,
                                       Attributes attrs = {});

}  // namespace kiln
