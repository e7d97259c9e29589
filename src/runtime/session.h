// Session: a loaded model ready to run. Owns the model, the thread pool and the executor of the
// main graph (which owns the executors of nested bodies).
//
//   auto model = ImportOnnxFile("m.onnx");
//   auto session = Session::Create(std::move(model).value(), SessionOptions::Threads(2));
//   auto outputs = (*session)->Run({{"x", x}});
//
// Run is safe to call from several threads; calls are serialised.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/cpu_features.h"
#include "core/status.h"
#include "core/tensor.h"
#include "core/thread_pool.h"
#include "ir/graph.h"
#include "runtime/executor.h"

namespace kiln {

struct SessionOptions {
  int threads = 1;
  // Which compute units may run nodes (DESIGN.md "Partitioned execution").
  ComputeUnits units = ComputeUnits::kAll;
  // Backend preference by name (e.g. {"xnnpack", "ref"}); empty: accelerators first, then the
  // CPU backends, the reference backend last. Named backends go first in the given order; with
  // a non-empty list only the named backends (plus "ref" while fallback is on) are used.
  std::vector<std::string> backends;
  // Per-op pins: op type -> backend name (config key OpBackend.<OpType>).
  std::map<std::string, std::string> op_backend;
  // May nodes that no preferred backend takes run on the reference backend?
  bool fallback = true;
  // Overrides the model's kiln.model_type metadata when set.
  std::optional<ModelType> model_type;
  // Run QDQ models (QuantizeLinear/DequantizeLinear around float ops) as int8 kernels
  // (passes/qdq_fusion.h); off: run them as written, in float.
  bool fuse_qdq = true;
  // Backends added to the built-in ones (for tests: a stand-in accelerator).
  std::vector<std::shared_ptr<Backend>> extra_backends;
  // Resource limits (0: none; config keys MaxTensorBytes, MaxArenaBytes, MaxConstantBytes). A
  // model or input over one is refused with an error naming the value and the limit, before
  // the memory is allocated: one tensor (planned from shapes, or allocated by a kernel on the
  // calling thread, also while constant folding and Loop scan outputs grow), the planned
  // activation arena of a graph, and the weights (initializers and Constant values, nested
  // graphs included) checked when the session is created.
  int64_t max_tensor_bytes = int64_t{4} << 30;
  int64_t max_arena_bytes = int64_t{16} << 30;
  int64_t max_constant_bytes = int64_t{16} << 30;
  // The most iterations one Loop node may run (0: none; config key MaxLoopIterations). A trip
  // count M above it is refused before iterating when M alone decides the count (no condition
  // input); otherwise the loop stops with an error naming the node and the limit once the body
  // still asks for another iteration after this many (a condition that never turns false).
  // The default, 2^24, is far above the loops of real models (time steps, decoding steps,
  // boxes: thousands to a few hundred thousand) and ends a runaway loop with a trivial body in
  // tens of seconds.
  int64_t max_loop_iterations = int64_t{1} << 24;
  // Weights resident once (config key ReleasePackedWeights): a weight read from the model file
  // that the only node reading it has copied into its backend's packed form (convolutions,
  // fully connected layers) has the model's copy of its pages given back to the system while
  // the plan is built; a plan for new input shapes reads it back from the file first. Off:
  // the model's weights stay resident beside the packed ones (twice the weight memory).
  bool release_packed_weights = true;
  // The highest instruction-set level Kiln's own kernels may use (config key CpuIsa, kiln
  // --isa): nullopt (auto) is the best the CPU has; a lower level forces that path (tests run
  // every path on one machine); a level above the CPU's is capped to it (EffectiveCpuIsa).
  // Part of the compiled plan's cache key. XNNPACK's own kernels dispatch by themselves.
  std::optional<CpuIsa> isa;
  // Time every step of every run (kiln bench --profile): Session::Profile reports them. Costs
  // two clock reads per step.
  bool profile = false;
  // Thread tuning (config key ThreadTuning, kiln --no-thread-tuning to turn it off): with 2+
  // threads, a compiled partition times its first runs with every step on the thread pool and
  // with every step on the calling thread alone, and keeps for each step the faster (or either
  // whole plan, when the mix is not faster): a small op whose parallel dispatch costs more than
  // it saves runs on one thread. About 10 runs, then fixed. Off: every step the backend splits
  // runs on the pool.
  bool tune_threads = true;
  // The int8 convolution kernel of XNNPACK partitions (config key Int8Kernel, kiln
  // --int8-kernel; Int8Kernel in core/cpu_features.h): auto, or one forced (tests and
  // benchmarks run every int8 path on one machine). Part of the compiled plan like isa.
  Int8Kernel int8_kernel = Int8Kernel::kAuto;
  // Same-shape int8 Add / Mul whose operands are both computed run a 64 KiB table of the
  // reference's results (exact) instead of XNNPACK's fixed-point kernels where those accept the
  // scales (within one step of the reference) (config key ExactInt8, kiln --exact-int8).
  bool exact_int8 = false;

  static SessionOptions Threads(int n) {
    SessionOptions o;
    o.threads = n;
    return o;
  }
  // The reference backend alone: the oracle (exact fp16 rounding per op, every op and type).
  static SessionOptions Reference(int n = 1) {
    SessionOptions o = Threads(n);
    o.backends = {"ref"};
    return o;
  }
};

// One row of Session::Profile: a reference-kernel node, one step of a compiled partition, or a
// partition's border conversions.
struct ProfileRow {
  std::string signature;  // the plan's input signature
  int partition = -1;     // index in the plan's partitioning
  std::string backend;
  std::string node;       // node name ("" for borders)
  std::string op_type;    // node op type, or "(borders)"
  std::string what;       // backend's label of the step
  double us_per_run = 0;
  int64_t runs = 0;
  double macs = 0;        // multiply-adds of the node per run (0: not a MAC op)
};

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

class Session {
 public:
  // An imported model: runs the rewrites a session needs first (QDQ patterns to int8 ops; a
  // network's f16 values raised to f32: PrepareModelForSession), then CreatePrepared. Defined
  // in the compiler library (src/passes/session_create.cc).
  static Result<std::unique_ptr<Session>> Create(Model model, SessionOptions options = {});
  // A model already prepared (a compiled plan's graph, or the result of
  // PrepareModelForSession): no pass runs. Part of the runtime library. `notes` are kept as
  // the session's notes.
  static Result<std::unique_ptr<Session>> CreatePrepared(Model model, SessionOptions options = {},
                                                         std::vector<std::string> notes = {});

  // The model as the session runs it. Its weights are all resident from this call on (weights
  // released after packing are read back first, and none is released later).
  const Model& model() const;
  // Bytes of the model's weights given back to the system after packing, now
  // (SessionOptions::release_packed_weights).
  int64_t released_weight_bytes() const;
  const Graph& graph() const { return model_.graph; }
  const SessionOptions& options() const { return options_; }

  // Inputs by name; every graph input must be given once. Outputs in graph output order.
  Result<std::vector<Tensor>> Run(const NamedTensors& inputs,
                                  const NodeObserver* observer = nullptr);
  // The execution plan (steps, folded values, memory layout) for these inputs.
  Result<std::string> DescribePlan(const NamedTensors& inputs);
  // The plan itself (placement, partitions, memory), for reports such as `kiln plan`. Shared:
  // it stays valid while other threads run the session with other shapes (which may evict it
  // from the session's cache of plans).
  Result<std::shared_ptr<const ExecutionPlan>> Plan(const NamedTensors& inputs);
  // The backends in preference order, and the model type this session runs the model as.
  const std::vector<std::shared_ptr<Backend>>& backends() const { return config_->backends; }
  ModelType model_type() const { return config_->partition.model_type; }
  // Notes from Create (e.g. "network model: f16 values raised to f32 for the CPU").
  const std::vector<std::string>& notes() const { return notes_; }
  // With SessionOptions::profile: measured time per step of every plan run so far, per node
  // where the backend times its steps, with the node's work (multiply-adds) for GFLOP/s.
  std::vector<ProfileRow> Profile() const;
  // How many shape-specialised plans the main graph holds (one per distinct input signature).
  size_t cached_plan_count() const {
    std::lock_guard<std::mutex> lock(mu_);
    return executor_->cached_plans();
  }

 private:
  Session(Model model, SessionOptions options)
      : model_(std::move(model)), options_(std::move(options)), pool_(options_.threads) {}
  Result<std::vector<Tensor>> OrderInputs(const NamedTensors& inputs) const;

  Model model_;
  SessionOptions options_;
  ThreadPool pool_;
  std::shared_ptr<ExecutorConfig> config_;
  std::vector<std::string> notes_;
  std::unique_ptr<GraphExecutor> executor_;
  mutable std::mutex mu_;
};

// The rewrites Session::Create applies to an imported model before CreatePrepared, with their
// notes. Compiled plans store the model after them. Defined in the compiler library.
Result<std::vector<std::string>> PrepareModelForSession(Model& model,
                                                        const SessionOptions& options);

}  // namespace kiln
