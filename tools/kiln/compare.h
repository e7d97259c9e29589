// The core of `kiln compare`: run a reference and a candidate model (e.g. fp32 and its fp16
// conversion) on the same inputs, report per-output error statistics (core/error_stats.h) and
// the first node, in execution order, whose output holds inf/NaN in the candidate but not in the
// reference.
//
// Inputs: `inputs` (given tensors) are used for both models; other inputs are random
// (tool_util.h MakeInputs on the reference's inputs) with seeds seed, seed+1, ... one per
// sample. When the candidate declares another float type for an input (f16 where the reference
// has f32), the values are cast to it (rounding to the candidate's precision), with a note.
// Outputs are matched by name; every reference output must exist in the candidate with the same
// shape, and are compared in double whatever their element types.
//
// First non-finite: both models run with a NodeObserver. The reference records, per value name,
// whether the value was all-finite (over every time it was produced, nested bodies included);
// the first candidate node output that has non-finite elements while the reference's value of
// the same name is finite or absent (e.g. a Cast inserted by conversion) is reported. A graph
// input that becomes non-finite when cast to the candidate's type is reported as such. Samples
// are searched in order; the first sample with such a node gives the answer. Nodes folded to
// constants at plan time are not observed.
//
// Usage:
//   CompareOptions o{.samples = 4};
//   KILN_ASSIGN_OR_RETURN(CompareResult r, CompareModels(std::move(ref), std::move(cand), o));
//   std::printf("%s", FormatCompareTable(r).c_str());
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/error_stats.h"
#include "core/status.h"
#include "core/tensor.h"
#include "ir/graph.h"

namespace kiln::cli {

struct CompareOptions {
  std::map<std::string, Tensor> inputs;  // given inputs, used for both models in every sample
  std::map<std::string, Shape> shapes;   // shapes of random inputs with dynamic dims
  int samples = 1;
  uint64_t seed = 0;
  int threads = 1;
  bool verbose = false;  // notes about dynamic dims on stderr
};

struct NonFiniteOrigin {
  bool is_graph_input = false;  // a candidate input that is non-finite after the cast
  std::string op_type;          // empty for a graph input
  std::string node_name;
  std::string value_name;
  int sample = 0;
  // "Mul 'mul2' output 'y2' (sample 0)" / "graph input 'x' after the cast (sample 0)"
  std::string Describe() const;
};

struct OutputComparison {
  std::string name;
  std::string reference_type;  // element types, "f32", "f16"
  std::string candidate_type;
  Shape shape;  // of the first sample
  ErrorStats stats;
};

struct CompareResult {
  int samples = 0;
  std::vector<OutputComparison> outputs;  // in the reference's output order
  std::optional<NonFiniteOrigin> first_non_finite;
  std::vector<std::string> notes;  // e.g. inputs cast to the candidate's type
};

Result<CompareResult> CompareModels(Model reference, Model candidate, const CompareOptions& options);

// One row per output with the statistics, then "first non-finite in candidate: ..." ("none").
std::string FormatCompareTable(const CompareResult& result);
// The same as JSON. Non-finite numbers are written as the strings "inf", "-inf", "nan".
std::string CompareResultToJson(const CompareResult& result, const std::string& reference_path,
                                const std::string& candidate_path);

}  // namespace kiln::cli
