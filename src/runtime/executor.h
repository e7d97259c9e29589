// GraphExecutor: runs one graph (the main graph or a nested If/Loop/Scan body) with the
// reference kernels, from an execution plan specialised for the concrete input shapes.
//
// Life of a run: the input signature (types and shapes of inputs and of the outer-scope values
// the graph reads) selects a cached ExecutionPlan, or builds one: shape inference with constant
// folding for those shapes (nodes whose outputs fold to constants are dropped from the steps),
// then liveness analysis and the arena layout of memory_plan.h for every value whose size is
// known. Values of unknown size (data-dependent shapes) live on the heap and are released after
// their last use. Graph outputs are always owned tensors handed to the caller.
//
// Thread safety: a GraphExecutor runs one Run at a time (Session serialises).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "backends/ref/kernel.h"
#include "core/status.h"
#include "core/tensor.h"
#include "core/thread_pool.h"
#include "ir/graph.h"
#include "plan/backend.h"
#include "plan/memory_plan.h"
#include "plan/partitioner.h"

namespace kiln {

// Called after every executed node (in nested bodies too) with the node's outputs (nullptr for
// an unused optional output); for debugging tools such as `kiln compare`'s search for the first
// non-finite value. Not called for nodes folded at plan time.
using NodeObserver =
    std::function<void(const Graph& graph, const Node& node, const std::vector<const Tensor*>& outputs)>;

struct ExecutionPlan;

// Values visible to a running graph, for name lookups by nested bodies.
struct Frame {
  const Graph* graph = nullptr;
  const std::vector<Tensor>* slots = nullptr;
  const Frame* parent = nullptr;
  const NodeObserver* observer = nullptr;
  // The plan `slots` follow (its folded constants); null: none known.
  const ExecutionPlan* plan = nullptr;
  const Tensor* Lookup(const std::string& name) const;
  // True when the frame that holds `name` has it as an initializer or a value its plan folded
  // to a constant: the same tensor for every run of that plan.
  bool IsConstant(const std::string& name) const;
};

// The backends a graph may use and the partitioning rules. The reference backend must be among
// them (the executor runs its nodes itself).
struct ExecutorConfig {
  std::vector<std::shared_ptr<Backend>> backends;  // preference order
  PartitionOptions partition;
  // Config for nested bodies (If/Loop/Scan); null: the same as this one.
  std::shared_ptr<const ExecutorConfig> nested;
  // Limits checked when a plan is built (SessionOptions, 0: none): every statically shaped
  // value, and the arena.
  int64_t max_tensor_bytes = 0;
  int64_t max_arena_bytes = 0;
  // > 0 (nested bodies): a graph compiles partitions on the fast backends for at most this
  // many input signatures; plans for further ones run on the reference kernels, so that a
  // Loop body whose shapes change every iteration does not compile a partition each time.
  int max_fast_signatures = 0;
  // Weights resident once (SessionOptions::release_packed_weights): an initializer read from a
  // model file (Tensor::reloadable) whose only reader is a node that a backend has packed it
  // into its own form, in every cached plan, has its pages released while the plan builds;
  // a plan built later (new shapes) reads it back from the file first.
  bool release_packed_weights = false;
};

// One step of a plan: a node run by the reference kernels, or a compiled partition.
struct PlanStep {
  NodeId node;         // valid for a reference node
  int compiled = -1;   // >= 0: index into ExecutionPlan::compiled
};

struct CompiledStep {
  int partition = -1;  // index into ExecutionPlan::partitioning.partitions
  std::shared_ptr<Backend> backend;
  std::unique_ptr<CompiledPartition> program;
};

struct ExecutionPlan {
  std::string signature;
  std::vector<TypeInfo> types;                       // specialised, per value id
  std::unordered_map<uint32_t, Tensor> constants;    // folded values, per value id
  std::vector<PlanStep> steps;                       // in execution order
  PartitionResult partitioning;                      // where every node runs, and why
  std::vector<CompiledStep> compiled;
  std::vector<int64_t> arena_offset;                 // per value id; -1: not in the arena
  std::vector<int64_t> arena_bytes_of;               // per value id, planned size
  std::vector<std::vector<uint32_t>> release_after;  // per step: values dead after it
  MemoryPlan memory;
  std::shared_ptr<void> arena;
  // (node, value id) pairs: the node's backend packed that constant input into its own form.
  std::set<std::pair<const Node*, uint32_t>> packed;
  // With PartitionOptions::profile: per step, microseconds summed over `runs` runs.
  std::vector<double> step_us;
  int64_t runs = 0;

  // The steps with their output types, then the memory plan.
  std::string ToString(const Graph& graph) const;
  // Value v when it is known at plan time (an initializer of `graph` or a folded value).
  const Tensor* ConstantOf(const Graph& graph, ValueId v) const {
    const Value& val = graph.value(v);
    if (val.kind == ValueKind::kInitializer) return &val.initializer;
    auto it = constants.find(v.v);
    return it == constants.end() ? nullptr : &it->second;
  }
};

class GraphExecutor {
 public:
  // Checks that every node (also in nested graphs) has a kernel; error lists the first missing.
  // `config` null: the reference backend only.
  static Result<std::unique_ptr<GraphExecutor>> Create(
      const Graph& graph, ThreadPool* pool,
      std::shared_ptr<const ExecutorConfig> config = nullptr);

  // `inputs` in the order of graph.inputs(). `outer` resolves outer-scope values (nested bodies).
  // `observer` (or, when null, the enclosing frame's) sees every executed node.
  Result<std::vector<Tensor>> Run(const std::vector<Tensor>& inputs, const Frame* outer = nullptr,
                                  const NodeObserver* observer = nullptr);
  // The plan Run would use for these inputs (built if needed). Shared: it stays valid when a
  // later call with new shapes evicts it from the cache.
  Result<std::shared_ptr<const ExecutionPlan>> PlanFor(const std::vector<Tensor>& inputs,
                                       const Frame* outer = nullptr);
  const Graph& graph() const { return graph_; }
  const ExecutorConfig& config() const { return *config_; }
  size_t cached_plans() const { return plans_.size(); }
  // Bytes of weights whose pages are released now (ExecutorConfig::release_packed_weights).
  int64_t released_weight_bytes() const { return released_bytes_; }
  // Reads every released weight back and releases none from now on (a caller reads the model's
  // constants); the error when a weight cannot be read back from its file.
  Status KeepWeightsResident();
  // Every cached plan (for Session::Profile).
  std::vector<std::shared_ptr<const ExecutionPlan>> cached_plan_list() const {
    std::vector<std::shared_ptr<const ExecutionPlan>> out;
    for (const auto& [sig, p] : plans_) out.push_back(p);
    return out;
  }

 private:
  GraphExecutor(const Graph& graph, ThreadPool* pool, std::shared_ptr<const ExecutorConfig> c)
      : graph_(graph), pool_(pool), config_(std::move(c)) {}
  Status PlanSteps(ExecutionPlan& plan, const std::vector<NodeId>& nodes);
  Status CheckPlannedSizes(const ExecutionPlan& plan) const;
  Status RunCompiled(ExecutionPlan& plan, const CompiledStep& step, std::vector<Tensor>& slots,
                     const NodeObserver* observer);
  Status Prepare();
  Result<std::unique_ptr<ExecutionPlan>> BuildPlan(const std::vector<Tensor>& inputs,
                                                   const std::vector<const Tensor*>& captured,
                                                   const std::vector<bool>& captured_constant,
                                                   std::string signature);
  Result<GraphExecutor*> SubExecutor(const Graph& body);
  // A backend of `plan` packed constant `v`, input of `n`: records it and releases v's pages
  // where nothing else reads them (ExecutorConfig::release_packed_weights).
  void OnPacked(ExecutionPlan& plan, const Node& n, ValueId v);
  Status RestoreReleasedWeights();

  const Graph& graph_;
  ThreadPool* pool_;
  std::shared_ptr<const ExecutorConfig> config_;
  std::vector<NodeId> order_;
  std::vector<const KernelDef*> kernels_;            // per node id
  std::vector<std::vector<ValueId>> implicit_inputs_;  // per node id: values read by bodies
  std::vector<ValueId> captured_;                     // this graph's outer-scope values
  std::map<std::string, std::shared_ptr<ExecutionPlan>> plans_;
  int fast_plans_ = 0;  // plans built with the fast backends (ExecutorConfig::max_fast_signatures)
  std::map<const Graph*, std::unique_ptr<GraphExecutor>> subs_;
  std::vector<int> uses_;           // per value id: node inputs, body reads and graph outputs
  // Per value id: a reloadable initializer or Constant node value whose storage only this graph
  // held when the executor was created (one shared with another model, e.g. by CopyModel, is
  // never released; the plans' own constants share it later, read only while packing).
  std::vector<bool> releasable_;
  // The weight tensor of `v`: its initializer, or the value of the Constant node producing it;
  // nullptr otherwise.
  const Tensor* WeightTensor(ValueId v) const;
  std::vector<ValueId> released_;   // weights whose pages are released
  int64_t released_bytes_ = 0;
  bool keep_resident_ = false;

  friend class ExecContext;
};

}  // namespace kiln
