// The backend interface: what a backend tells the partitioner, and how it runs a partition.
//
// A backend is one implementation of ops on one compute unit (cpu, gpu, npu). For every node
// the partitioner asks Supports() with the node's specialised input/output types and shapes
// (and the values of inputs known at plan time, e.g. weights); the answer says yes with the
// precision the backend will really compute in and an estimated cost, or no with a reason a
// person can read ("Resize mode 'cubic'", "input 1 is not a constant"). A backend's kernel
// table must be the single source of both that answer and its dispatch: Supports() and
// Compile() consult the same entries.
//
// The partitioner then hands each partition (a set of nodes on one backend, closed under the
// rules in partitioner.h) to Compile(), which may pack weights, fuse nodes, choose layouts and
// allocate workspace. The executor calls CompiledPartition::Run with the partition's border
// inputs (in PartitionSpec::inputs order, in the graph's element types and NCHW layout) and the
// border outputs it allocated with the planned types and shapes. Layout changes and casts the
// backend needs at its borders happen inside Run and are listed by border_conversions().
//
// The reference backend (backends/ref) is special only in one way: its partitions run node by
// node inside the executor (it needs the executor's arena, nested graphs and data-dependent
// shapes), so `runs_in_executor()` is true and Compile() is never called for it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/cpu_features.h"
#include "core/status.h"
#include "core/tensor.h"
#include "core/thread_pool.h"
#include "ir/graph.h"

namespace kiln {

enum class ComputeUnit { kCpu, kGpu, kNpu };
const char* ComputeUnitName(ComputeUnit u);  // "cpu" / "gpu" / "npu"

// One node as the partitioner shows it to a backend.
struct NodeQuery {
  const Graph* graph = nullptr;
  const Node* node = nullptr;
  // Specialised types per input / output (nullptr for an omitted optional one).
  std::vector<const TypeInfo*> inputs;
  std::vector<const TypeInfo*> outputs;
  // Per input: its value when known at plan time (initializer or folded constant), else nullptr.
  std::vector<const Tensor*> constants;
  ModelType model_type = ModelType::kProgram;
  int threads = 1;
  // The instruction-set level the backend's own kernels may use (session option isa / config
  // key CpuIsa, capped by the CPU: EffectiveCpuIsa). Backends choose kernels at compile time.
  CpuIsa isa = CpuIsa::kPortable;
};

struct NodeSupport {
  bool supported = false;
  std::string reason;  // why not (when !supported); optional note otherwise
  // The element type the backend computes this node in; kUndefined: exactly the stated types.
  // A float16 node that a backend computes in float32 says kFloat32 ("f16 raised to f32").
  ElementType compute_type = ElementType::kUndefined;
  // Estimated time of this node on this backend, in microseconds (see plan/cost.h).
  double cost_us = 0;

  static NodeSupport Yes(double cost_us, ElementType compute = ElementType::kUndefined) {
    NodeSupport s;
    s.supported = true;
    s.cost_us = cost_us;
    s.compute_type = compute;
    return s;
  }
  static NodeSupport No(std::string why) {
    NodeSupport s;
    s.reason = std::move(why);
    return s;
  }
};

// A partition handed to Compile().
struct PartitionSpec {
  const Graph* graph = nullptr;
  std::vector<NodeId> nodes;     // in execution order
  std::vector<ValueId> inputs;   // values read by the nodes and produced outside (no constants)
  std::vector<ValueId> outputs;  // values produced here and read outside, or graph outputs
  const std::vector<TypeInfo>* types = nullptr;  // specialised type of every value id
  // Initializers and values folded at plan time (weights, shapes), else nullptr.
  std::function<const Tensor*(ValueId)> constant;
  ModelType model_type = ModelType::kProgram;
  ThreadPool* pool = nullptr;
  int threads = 1;
  CpuIsa isa = CpuIsa::kPortable;  // as NodeQuery::isa
  // Measure, over a partition's first runs, which steps are faster on the pool than on the
  // calling thread alone (SessionOptions::tune_threads); a backend may ignore it.
  bool tune_threads = true;
  // The int8 conv kernel choice and exact int8 Add / Mul (SessionOptions::int8_kernel,
  // exact_int8); backends without such kernels ignore them.
  Int8Kernel int8_kernel = Int8Kernel::kAuto;
  bool exact_int8 = false;
  // Time every step of Run (SessionOptions::profile); CompiledPartition::Profile reports them.
  bool profile = false;
  // A backend calls this when node `n` has copied its constant input `v` into a packed form of
  // its own and will never read v's data again (the executor may release v's pages then).
  std::function<void(const Node& n, ValueId v)> packed_constant;
};

// Time spent in one step of a compiled partition, summed over the runs profiled.
struct StepTime {
  const Node* node = nullptr;  // null: the partition's border conversions
  std::string what;  // e.g. "xnnpack operator", "own loop" (", 1 thread": off the pool), "borders"
  double total_us = 0;
};

class CompiledPartition {
 public:
  virtual ~CompiledPartition() = default;
  // inputs: one per PartitionSpec::inputs; outputs: one per PartitionSpec::outputs, already
  // allocated with the planned element type and shape. Must write every output element.
  virtual Status Run(const std::vector<const Tensor*>& inputs,
                     const std::vector<Tensor*>& outputs) = 0;
  // Conversions done at the borders, for the plan report ("x: NCHW->NHWC", "y: f32->f16").
  virtual std::vector<std::string> border_conversions() const { return {}; }
  // Bytes of weights the partition keeps (packed or converted copies), and of its workspace.
  virtual int64_t weight_bytes() const { return 0; }
  virtual int64_t workspace_bytes() const { return 0; }
  // With PartitionSpec::profile: the time of each step, summed over every Run so far (empty
  // when the backend does not time its steps).
  virtual std::vector<StepTime> Profile() const { return {}; }
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  virtual ComputeUnit unit() const = 0;
  // Whether nodes are run one by one by the executor (the reference backend).
  virtual bool runs_in_executor() const { return false; }
  virtual NodeSupport Supports(const NodeQuery& q) const = 0;
  virtual Result<std::unique_ptr<CompiledPartition>> Compile(const PartitionSpec& spec) const = 0;
};

}  // namespace kiln
