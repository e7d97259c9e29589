// The partitioner: places every node of a specialised graph on a backend and groups the nodes
// into few, large partitions.
//
// 1. Placement. Each node goes to the first backend in the given order that supports it
//    (Backend::Supports) and may run it under the typed rules: in a `program`, a backend that
//    would compute any float value below its stated precision ("f32 value computed in f16") is
//    refused, raising is allowed and recorded; in a `network`, a backend computes in its own
//    precision and the partition casts at its borders. A pinned op type (OpBackend.<Op>) goes to
//    its backend only. The reference backend is the fallback; with fallback off, a node that no
//    other backend takes is an error, and the error lists every such node with the reasons.
// 2. Grouping. A topological order is built that keeps running nodes of the current backend
//    while any is ready; each maximal run of one backend in that order is a partition. Runs of a
//    topological order can never form a cycle between partitions.
// 3. Cost. A compiled (non-reference) partition whose border crossings cost more than the time
//    it saves over the reference kernels is given back to the fallback backend, and grouping is
//    redone: a stray node must not cost two round trips for nothing.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/cpu_features.h"
#include "core/status.h"
#include "ir/graph.h"
#include "plan/backend.h"

namespace kiln {

enum class ComputeUnits { kCpuOnly, kCpuAndGpu, kCpuAndNpu, kAll };
const char* ComputeUnitsName(ComputeUnits u);  // "cpu_only", ...
Result<ComputeUnits> ParseComputeUnits(const std::string& s);
bool UnitAllowed(ComputeUnits allowed, ComputeUnit unit);

struct PartitionOptions {
  ModelType model_type = ModelType::kProgram;
  std::map<std::string, std::string> op_backend;  // op type -> backend name (pins)
  bool fallback = true;  // may nodes no preferred backend takes run on the reference backend?
  int threads = 1;
  CpuIsa isa = CpuIsa::kPortable;  // the level own kernels may use (EffectiveCpuIsa)
  bool profile = false;             // time steps (SessionOptions::profile)
  bool tune_threads = true;         // SessionOptions::tune_threads
  Int8Kernel int8_kernel = Int8Kernel::kAuto;  // SessionOptions::int8_kernel
  bool exact_int8 = false;                     // SessionOptions::exact_int8
  // Place every node on the backend that runs in the executor (the reference kernels).
  bool reference_only = false;
};

// Where one node runs and why.
struct NodePlacement {
  int partition = -1;
  int backend = -1;                               // index into the backends given
  ElementType stated = ElementType::kUndefined;   // the node's float type (or first output type)
  ElementType actual = ElementType::kUndefined;   // what the backend computes it in
  double cost_us = 0;
  // Why backends before the chosen one declined ("xnnpack: Resize mode 'cubic'"); empty when
  // the first choice took it.
  std::string reason;
};

struct Partition {
  int backend = -1;
  std::vector<NodeId> nodes;     // in execution order
  std::vector<ValueId> inputs;   // border inputs (no constants)
  std::vector<ValueId> outputs;  // border outputs (read by other partitions, or graph outputs)
  double cost_us = 0;            // estimated time of its nodes
  double border_cost_us = 0;     // estimated cost of its border crossings
};

struct PartitionResult {
  std::vector<Partition> partitions;     // in execution order
  std::vector<NodePlacement> placement;  // per node id (partition -1: not a step, e.g. folded)
  int cost_rounds = 0;                   // how many partitions the cost rule gave back
};

// `types`: specialised type per value id. `constant(v)`: plan-time value or nullptr. `nodes`:
// the nodes to place, in a topological order. `backends`: in preference order; exactly one of
// them must run in the executor (the reference backend, the fallback).
// The query for `node` from the specialised types of every value and the constants known at
// plan time (options' fields are left at their defaults).
NodeQuery MakeNodeQuery(const Graph& graph, const Node& node, const std::vector<TypeInfo>& types,
                        const std::function<const Tensor*(ValueId)>& constant);

Result<PartitionResult> PartitionGraph(const Graph& graph, const std::vector<TypeInfo>& types,
                                       const std::function<const Tensor*(ValueId)>& constant,
                                       const std::vector<NodeId>& nodes,
                                       const std::vector<std::shared_ptr<Backend>>& backends,
                                       const PartitionOptions& options);

// One line per partition, then per node: partition, backend, unit, precision, reason.
std::string PartitionResultToString(const Graph& graph, const PartitionResult& r,
                                    const std::vector<std::shared_ptr<Backend>>& backends);

// "f16" / "f32 raised from f16" style label: actual precision, noting raises.
std::string PrecisionLabel(ElementType stated, ElementType actual);

}  // namespace kiln
