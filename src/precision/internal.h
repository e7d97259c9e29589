// Private to the precision pass (precision_convert.cc, precision_rewrite.cc, precision_auto.cc).
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "precision/convert.h"

namespace kiln::precision_internal {

struct RewriteStats {
  std::map<std::string, int> converted;  // op_type -> converted nodes
  int casts = 0;
  int initializers = 0;
  // Inserted Cast node name -> names of the nodes that read its output.
  std::map<std::string, std::vector<std::string>> cast_consumers;
};

// Builds the converted copy of `src`: nodes named in `keep` (and nodes of other domains) stay
// fp32, all other float nodes become fp16. `convert` false gives an exact copy (all kept, io
// f32). `io_f16`: float graph inputs/outputs become f16.
Result<Graph> RewriteGraph(const Graph& src, const std::set<std::string>& keep, bool convert,
                           bool io_f16, int cast_opset, RewriteStats* stats);

// Whether input `slot` / output `slot` of `node` keeps its float32 type even in a converted node.
bool FixedFloatInput(const Node& node, size_t slot);
bool FixedFloatOutput(const Node& node, size_t slot);
// Default-domain ops only; ops of other domains are never converted.
bool ConvertibleOp(const Node& node);
bool HasSubgraph(const Node& node);

Tensor ToF16(const Tensor& t);  // f32 -> f16 (other types unchanged)
bool AllFinite(const Tensor& t);
// ||a - b|| / ||b|| in double; +inf when a has non-finite values.
double RelError(const Tensor& a, const Tensor& b);

// auto:TOL: the nodes to keep beyond `keep` (which it extends), with reasons.
Status AutoSelect(const Model& model, double tolerance, const PrecisionOptions& options,
                  std::set<std::string>& keep, ConvertReport& report);

}  // namespace kiln::precision_internal
