#include "runtime/session.h"

#include <algorithm>
#include <cstdio>
#include <set>

#include "backends/ref/ref_backend.h"
#include "backends/xnnpack/xnnpack_backend.h"
#include "core/run_limits.h"
#include "ir/verifier.h"
#include "plan/cost.h"

namespace kiln {

namespace {

// Built-in and extra backends, filtered by unit and ordered by preference.
Result<std::vector<std::shared_ptr<Backend>>> ChooseBackends(const SessionOptions& o) {
  std::vector<std::shared_ptr<Backend>> all = o.extra_backends;
  if (auto x = MakeXnnpackBackend()) all.push_back(std::move(x));
  all.push_back(MakeRefBackend());
  std::vector<std::shared_ptr<Backend>> chosen;
  auto take = [&](const std::shared_ptr<Backend>& b) {
    for (const auto& c : chosen) {
      if (c->name() == b->name()) return;
    }
    chosen.push_back(b);
  };
  if (!o.backends.empty()) {
    for (const std::string& name : o.backends) {
      std::shared_ptr<Backend> found;
      std::string names;
      for (const auto& b : all) {
        names += (names.empty() ? "" : ", ") + b->name();
        if (b->name() == name) found = b;
      }
      if (found == nullptr) {
        return InvalidArgument("backend '" + name + "' is not available (available: " + names + ")");
      }
      if (!UnitAllowed(o.units, found->unit())) {
        return InvalidArgument("backend '" + name + "' runs on the " +
                               ComputeUnitName(found->unit()) + ", which compute units " +
                               ComputeUnitsName(o.units) + " does not allow");
      }
      take(found);
    }
  } else {
    for (ComputeUnit u : {ComputeUnit::kNpu, ComputeUnit::kGpu, ComputeUnit::kCpu}) {
      for (const auto& b : all) {
        if (b->unit() == u && !b->runs_in_executor() && UnitAllowed(o.units, u)) take(b);
      }
    }
  }
  // The reference backend runs in the executor: it is always present, and last. With fallback
  // off the partitioner refuses to put nodes on it.
  for (const auto& b : all) {
    if (b->runs_in_executor()) take(b);
  }
  std::vector<std::shared_ptr<Backend>> ordered;
  for (const auto& b : chosen) {
    if (!b->runs_in_executor()) ordered.push_back(b);
  }
  for (const auto& b : chosen) {
    if (b->runs_in_executor()) ordered.push_back(b);
  }
  return ordered;
}

// Bytes of every initializer and Constant node value, nested graphs included.
int64_t ConstantBytes(const Graph& g) {
  int64_t bytes = 0;
  for (uint32_t v = 0; v < g.num_values(); ++v) {
    const Value& val = g.value(ValueId(v));
    if (val.kind == ValueKind::kInitializer && val.initializer.is_tensor()) {
      bytes += static_cast<int64_t>(val.initializer.bytes());
    }
  }
  for (const Node& n : g.nodes()) {
    for (const Attribute& a : n.attrs.items()) {
      if (n.op_type == "Constant" && a.t.defined() && a.t.is_tensor()) {
        bytes += static_cast<int64_t>(a.t.bytes());
      }
      if (a.g != nullptr) bytes += ConstantBytes(*a.g);
      for (const auto& sub : a.graphs) {
        if (sub != nullptr) bytes += ConstantBytes(*sub);
      }
    }
  }
  return bytes;
}

}  // namespace

Result<std::unique_ptr<Session>> Session::CreatePrepared(Model model, SessionOptions options,
                                                         std::vector<std::string> notes) {
  if (options.threads < 1) return InvalidArgument("threads must be at least 1");
  ModelType type = ModelType::kProgram;
  if (options.model_type) {
    type = *options.model_type;
  } else {
    KILN_ASSIGN_OR_RETURN(type, model.model_type());
  }
  KILN_RETURN_IF_ERROR(CheckGraphNesting(model.graph));
  if (options.max_constant_bytes > 0) {
    const int64_t bytes = ConstantBytes(model.graph);
    if (bytes > options.max_constant_bytes) {
      return OutOfRange("the model's weights (initializers and Constant values) take " +
                        std::to_string(bytes) + " bytes, above the limit of " +
                        std::to_string(options.max_constant_bytes) +
                        " bytes (session option max_constant_bytes, config key MaxConstantBytes)");
    }
  }
  ScopedTensorByteLimit limit(options.max_tensor_bytes);
  ScopedLoopIterationLimit loop_limit(options.max_loop_iterations);
  std::unique_ptr<Session> s(new Session(std::move(model), options));
  s->notes_ = std::move(notes);
  s->config_ = std::make_shared<ExecutorConfig>();
  KILN_ASSIGN_OR_RETURN(s->config_->backends, ChooseBackends(options));
  s->config_->partition.model_type = type;
  s->config_->partition.op_backend = options.op_backend;
  s->config_->partition.fallback = options.fallback;
  s->config_->partition.threads = options.threads;
  s->config_->partition.isa = EffectiveCpuIsa(options.isa);
  s->config_->partition.profile = options.profile;
  s->config_->partition.tune_threads = options.tune_threads;
  s->config_->partition.int8_kernel = options.int8_kernel;
  s->config_->partition.exact_int8 = options.exact_int8;
  s->config_->max_tensor_bytes = options.max_tensor_bytes;
  s->config_->max_arena_bytes = options.max_arena_bytes;
  s->config_->release_packed_weights = options.release_packed_weights;
  // Nested bodies (If/Loop/Scan) are partitioned like the main graph, on the same backends and
  // pins, always with fallback (a body's op no fast backend takes runs on the reference
  // kernels); a body whose input shapes keep changing compiles for its first
  // kMaxFastBodySignatures signatures only.
  constexpr int kMaxFastBodySignatures = 8;
  auto nested = std::make_shared<ExecutorConfig>();
  nested->backends = s->config_->backends;
  nested->max_tensor_bytes = options.max_tensor_bytes;
  nested->max_arena_bytes = options.max_arena_bytes;
  nested->partition = s->config_->partition;
  nested->partition.fallback = true;
  nested->max_fast_signatures = kMaxFastBodySignatures;
  s->config_->nested = nested;
  KILN_ASSIGN_OR_RETURN(s->executor_,
                        GraphExecutor::Create(s->model_.graph, &s->pool_, s->config_));
  return s;
}

Result<std::vector<Tensor>> Session::OrderInputs(const NamedTensors& inputs) const {
  const Graph& g = model_.graph;
  std::vector<Tensor> ordered(g.inputs().size());
  std::set<std::string> seen;
  for (const auto& [name, t] : inputs) {
    bool found = false;
    for (size_t i = 0; i < g.inputs().size(); ++i) {
      if (g.value(g.inputs()[i]).name == name) {
        if (!seen.insert(name).second) return InvalidArgument("input '" + name + "' given twice");
        ordered[i] = t;
        found = true;
      }
    }
    if (!found) {
      std::string names;
      for (ValueId v : g.inputs()) names += (names.empty() ? "" : ", ") + g.value(v).name;
      return InvalidArgument("the model has no input named '" + name + "' (inputs: " + names + ")");
    }
  }
  for (size_t i = 0; i < ordered.size(); ++i) {
    if (!ordered[i].defined()) {
      return InvalidArgument("input '" + g.value(g.inputs()[i]).name + "' was not given");
    }
  }
  return ordered;
}

Result<std::vector<Tensor>> Session::Run(const NamedTensors& inputs,
                                         const NodeObserver* observer) {
  KILN_ASSIGN_OR_RETURN(auto ordered, OrderInputs(inputs));
  std::lock_guard<std::mutex> lock(mu_);
  ScopedTensorByteLimit limit(options_.max_tensor_bytes);
  ScopedLoopIterationLimit loop_limit(options_.max_loop_iterations);
  ThreadPool::RunScope spin(pool_);
  return executor_->Run(ordered, nullptr, observer);
}

const Model& Session::model() const {
  std::lock_guard<std::mutex> lock(mu_);
  Status st = executor_->KeepWeightsResident();
  if (!st.ok()) std::fprintf(stderr, "kiln: %s\n", st.ToString().c_str());
  return model_;
}

int64_t Session::released_weight_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return executor_->released_weight_bytes();
}

Result<std::shared_ptr<const ExecutionPlan>> Session::Plan(const NamedTensors& inputs) {
  KILN_ASSIGN_OR_RETURN(auto ordered, OrderInputs(inputs));
  std::lock_guard<std::mutex> lock(mu_);
  ScopedTensorByteLimit limit(options_.max_tensor_bytes);
  ScopedLoopIterationLimit loop_limit(options_.max_loop_iterations);
  return executor_->PlanFor(ordered);
}

Result<std::string> Session::DescribePlan(const NamedTensors& inputs) {
  KILN_ASSIGN_OR_RETURN(std::shared_ptr<const ExecutionPlan> plan, Plan(inputs));
  return PartitionResultToString(model_.graph, plan->partitioning, config_->backends) +
         plan->ToString(model_.graph);
}

}  // namespace kiln

namespace kiln {

std::vector<ProfileRow> Session::Profile() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<ProfileRow> rows;
  const Graph& g = model_.graph;
  for (const auto& plan : executor_->cached_plan_list()) {
    if (plan->runs == 0 || plan->step_us.size() != plan->steps.size()) continue;
    const double runs = static_cast<double>(plan->runs);
    auto constant = [&](ValueId v) { return plan->ConstantOf(g, v); };
    auto macs_of = [&](const Node& n) {
      return EstimateWork(MakeNodeQuery(g, n, plan->types, constant)).macs;
    };
    for (size_t s = 0; s < plan->steps.size(); ++s) {
      const PlanStep& step = plan->steps[s];
      ProfileRow r;
      r.signature = plan->signature;
      r.runs = plan->runs;
      if (step.compiled < 0) {
        const Node& n = g.node(step.node);
        r.partition = plan->partitioning.placement[step.node.v].partition;
        r.backend = "ref";
        r.node = n.name;
        r.op_type = n.op_type;
        r.what = "reference kernel";
        r.us_per_run = plan->step_us[s] / runs;
        r.macs = macs_of(n);
        rows.push_back(std::move(r));
        continue;
      }
      const CompiledStep& cs = plan->compiled[static_cast<size_t>(step.compiled)];
      r.partition = cs.partition;
      r.backend = cs.backend->name();
      const std::vector<StepTime> inner = cs.program->Profile();
      if (inner.empty()) {
        r.op_type = "(partition)";
        r.what = "whole partition";
        r.us_per_run = plan->step_us[s] / runs;
        rows.push_back(std::move(r));
        continue;
      }
      // The partition's own steps; what they do not account for (the executor's hand-off,
      // output allocation) is reported as its overhead.
      double inside = 0;
      for (const StepTime& t : inner) {
        ProfileRow x = r;
        x.node = t.node ? t.node->name : "";
        x.op_type = t.node ? t.node->op_type : "(borders)";
        x.what = t.what;
        x.us_per_run = t.total_us / runs;
        x.macs = t.node ? macs_of(*t.node) : 0;
        inside += x.us_per_run;
        rows.push_back(std::move(x));
      }
      ProfileRow o = r;
      o.op_type = "(partition overhead)";
      o.what = "executor hand-off";
      o.us_per_run = std::max(0.0, plan->step_us[s] / runs - inside);
      rows.push_back(std::move(o));
    }
  }
  return rows;
}

}  // namespace kiln
