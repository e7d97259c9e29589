#include "runtime/executor.h"

#include <chrono>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <set>

#include "backends/ref/eager.h"
#include "backends/ref/ref_backend.h"
#include "ir/shape_inference.h"

namespace kiln {

const Tensor* Frame::Lookup(const std::string& name) const {
  for (const Frame* f = this; f != nullptr; f = f->parent) {
    auto id = f->graph->FindValue(name);
    if (id && (*f->slots)[id->v].defined()) return &(*f->slots)[id->v];
  }
  return nullptr;
}

bool Frame::IsConstant(const std::string& name) const {
  for (const Frame* f = this; f != nullptr; f = f->parent) {
    auto id = f->graph->FindValue(name);
    if (!id || !(*f->slots)[id->v].defined()) continue;
    return f->plan != nullptr && f->plan->ConstantOf(*f->graph, *id) != nullptr;
  }
  return false;
}

namespace {

constexpr size_t kMaxCachedPlans = 32;

std::string SignatureOf(const Tensor& t) {
  if (t.is_tensor()) return std::string(ElementTypeName(t.type())) + ShapeToString(t.shape());
  // Containers: the kind and the items' signatures (a plan is specialised for them too).
  std::string s = t.is_sequence() ? "seq(" : "opt(";
  for (const Tensor& item : t.items()) s += SignatureOf(item) + ",";
  return s + ElementTypeName(t.type()) + ")";
}

}  // namespace

class ExecContext final : public KernelContext {
 public:
  ExecContext(GraphExecutor& ex, ExecutionPlan& plan, std::vector<Tensor>& slots,
              const Frame& frame, const Node& node)
      : ex_(ex), plan_(plan), slots_(slots), frame_(frame), node_(node) {}

  const Node& node() const override { return node_; }
  size_t num_inputs() const override { return node_.inputs.size(); }
  const Tensor* input(size_t i) const override {
    if (i >= node_.inputs.size() || !node_.inputs[i].valid()) return nullptr;
    const Tensor& t = slots_[node_.inputs[i].v];
    return t.defined() ? &t : nullptr;
  }
  size_t num_outputs() const override { return node_.outputs.size(); }
  bool output_used(size_t i) const override {
    return i < node_.outputs.size() && node_.outputs[i].valid();
  }
  Result<Tensor*> output(size_t i, ElementType type, const Shape& shape) override {
    if (i >= node_.outputs.size()) {
      return Error("kernel produced output " + std::to_string(i) + " but the node has " +
                   std::to_string(node_.outputs.size()));
    }
    ValueId id = node_.outputs[i];
    if (!id.valid()) {
      // Unused optional output: scratch storage.
      auto t = Tensor::Allocate(type, shape);
      if (!t.ok()) return t.status().WithContext(node_.Describe());
      scratch_.push_back(std::move(t).value());
      return &scratch_.back();
    }
    Tensor& slot = slots_[id.v];
    auto count = CheckedNumElements(shape);
    if (!count.ok()) return Error("output " + std::to_string(i) + ": " + count.status().message());
    const int64_t bytes = *count * static_cast<int64_t>(ElementSize(type));
    const int64_t offset = plan_.arena_offset[id.v];
    if (offset >= 0 && type != ElementType::kString && bytes <= plan_.arena_bytes_of[id.v]) {
      slot = Tensor::Wrap(type, shape, static_cast<char*>(plan_.arena.get()) + offset);
    } else {
      auto t = Tensor::Allocate(type, shape);
      if (!t.ok()) return t.status().WithContext(node_.Describe());
      slot = std::move(t).value();
    }
    return &slot;
  }
  Status SetValue(size_t i, Tensor value) override {
    if (i >= node_.outputs.size()) {
      return Error("kernel set output " + std::to_string(i) + " but the node has " +
                   std::to_string(node_.outputs.size()));
    }
    if (!node_.outputs[i].valid()) return Status::Ok();  // unused optional output
    if (value.is_tensor() && !value.owns_storage()) value = value.Clone();
    slots_[node_.outputs[i].v] = std::move(value);
    return Status::Ok();
  }
  ThreadPool* thread_pool() const override { return ex_.pool_; }
  Result<std::vector<Tensor>> RunSubgraph(const Graph& body,
                                          const std::vector<Tensor>& inputs) override {
    KILN_ASSIGN_OR_RETURN(GraphExecutor * sub, ex_.SubExecutor(body));
    return sub->Run(inputs, &frame_);
  }

 private:
  GraphExecutor& ex_;
  ExecutionPlan& plan_;
  std::vector<Tensor>& slots_;
  const Frame& frame_;
  const Node& node_;
  std::vector<Tensor> scratch_;
};

namespace {
std::shared_ptr<const ExecutorConfig> RefOnlyConfig() {
  static const std::shared_ptr<const ExecutorConfig> config = [] {
    auto c = std::make_shared<ExecutorConfig>();
    c->backends.push_back(MakeRefBackend());
    return c;
  }();
  return config;
}
}  // namespace

Result<std::unique_ptr<GraphExecutor>> GraphExecutor::Create(
    const Graph& graph, ThreadPool* pool, std::shared_ptr<const ExecutorConfig> config) {
  if (config == nullptr) config = RefOnlyConfig();
  bool has_ref = false;
  for (const auto& b : config->backends) has_ref |= b->runs_in_executor();
  if (!has_ref) return InvalidArgument("an executor needs the reference backend among its backends");
  std::unique_ptr<GraphExecutor> ex(new GraphExecutor(graph, pool, std::move(config)));
  KILN_RETURN_IF_ERROR(ex->Prepare());
  return ex;
}

Status GraphExecutor::Prepare() {
  KILN_ASSIGN_OR_RETURN(order_, graph_.TopologicalOrder());
  kernels_.assign(graph_.num_nodes(), nullptr);
  implicit_inputs_.assign(graph_.num_nodes(), {});
  for (NodeId id : order_) {
    const Node& n = graph_.node(id);
    const KernelDef* k = FindRefKernel(n.domain, n.op_type);
    if (k == nullptr) {
      return Unimplemented("no kernel for node " + n.Describe() + " (opset " +
                           std::to_string(n.opset) + ")");
    }
    kernels_[id.v] = k;
    implicit_inputs_[id.v] = graph_.ImplicitInputs(n);
    // Validate nested graphs up front so that a missing kernel is reported at load time.
    for (const Attribute& a : n.attrs.items()) {
      if (a.g) KILN_RETURN_IF_ERROR(SubExecutor(*a.g).status());
      for (const auto& sub : a.graphs) KILN_RETURN_IF_ERROR(SubExecutor(*sub).status());
    }
  }
  captured_ = graph_.OuterScopeValues();
  uses_.assign(graph_.num_values(), 0);
  for (NodeId id : order_) {
    for (ValueId v : graph_.node(id).inputs) {
      if (v.valid()) ++uses_[v.v];
    }
    for (ValueId v : implicit_inputs_[id.v]) {
      if (v.valid()) ++uses_[v.v];
    }
  }
  for (ValueId v : graph_.outputs()) ++uses_[v.v];
  releasable_.assign(graph_.num_values(), false);
  for (uint32_t v = 0; v < graph_.num_values(); ++v) {
    const Tensor* t = WeightTensor(ValueId(v));
    releasable_[v] = t != nullptr && t->reloadable() && !t->shares_storage();
  }
  return Status::Ok();
}

const Tensor* GraphExecutor::WeightTensor(ValueId v) const {
  const Value& val = graph_.value(v);
  if (val.kind == ValueKind::kInitializer) return &val.initializer;
  // Weights stored as Constant nodes (PaddlePaddle's export): the node's value.
  if (!val.producer.valid()) return nullptr;
  const Node& n = graph_.node(val.producer);
  if (n.op_type != "Constant" || !n.domain.empty() || n.outputs.size() != 1) return nullptr;
  return n.attrs.GetTensor("value");
}

void GraphExecutor::OnPacked(ExecutionPlan& plan, const Node& n, ValueId v) {
  plan.packed.insert({&n, v.v});
  if (!config_->release_packed_weights || keep_resident_) return;
  // Only this node reads it (once), and every other cached plan packed it too.
  if (!releasable_[v.v] || uses_[v.v] != 1) return;
  for (const auto& [sig, q] : plans_) {
    if (q->packed.count({&n, v.v}) == 0) return;
  }
  const int64_t bytes = WeightTensor(v)->ReleasePages();
  if (bytes > 0) {
    released_.push_back(v);
    released_bytes_ += bytes;
  }
}

Status GraphExecutor::RestoreReleasedWeights() {
  while (!released_.empty()) {
    const Value& val = graph_.value(released_.back());
    KILN_RETURN_IF_ERROR(WeightTensor(released_.back())->RestorePages().WithContext(
        "reading weight '" + val.name + "' back for a new plan"));
    released_.pop_back();
  }
  released_bytes_ = 0;
  return Status::Ok();
}

Status GraphExecutor::KeepWeightsResident() {
  keep_resident_ = true;
  return RestoreReleasedWeights();
}

Result<GraphExecutor*> GraphExecutor::SubExecutor(const Graph& body) {
  auto it = subs_.find(&body);
  if (it != subs_.end()) return it->second.get();
  KILN_ASSIGN_OR_RETURN(auto ex, Create(body, pool_, config_->nested ? config_->nested : config_));
  GraphExecutor* raw = ex.get();
  subs_[&body] = std::move(ex);
  return raw;
}

Result<std::shared_ptr<const ExecutionPlan>> GraphExecutor::PlanFor(
    const std::vector<Tensor>& inputs, const Frame* outer) {
  const auto& gin = graph_.inputs();
  if (inputs.size() != gin.size()) {
    return InvalidArgument("graph '" + graph_.name + "' takes " + std::to_string(gin.size()) +
                           " inputs, got " + std::to_string(inputs.size()));
  }
  std::string sig;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Value& v = graph_.value(gin[i]);
    const Tensor& t = inputs[i];
    if (!t.defined()) return InvalidArgument("input '" + v.name + "' is missing");
    if (v.info.kind != t.kind() &&
        !(v.info.kind == TensorKind::kTensor && v.info.type == ElementType::kUndefined)) {
      return InvalidArgument("input '" + v.name + "' expects " + v.info.ToString() + ", got " +
                             t.Describe());
    }
    if (v.info.type != ElementType::kUndefined && t.type() != ElementType::kUndefined &&
        v.info.type != t.type()) {
      return InvalidArgument("input '" + v.name + "' expects " + v.info.ToString() + ", got " +
                             t.Describe());
    }
    if (v.info.shape && t.is_tensor()) {
      bool ok = v.info.shape->size() == static_cast<size_t>(t.rank());
      for (size_t d = 0; ok && d < v.info.shape->size(); ++d) {
        const Dim& dim = (*v.info.shape)[d];
        if (dim.is_static() && dim.value != t.shape()[d]) ok = false;
      }
      if (!ok) {
        return InvalidArgument("input '" + v.name + "' expects shape " + v.info.ToString() +
                               ", got " + t.Describe());
      }
    }
    sig += SignatureOf(t) + ";";
  }
  // Captured values the enclosing plan holds as constants (weights stored as Constant nodes in
  // an If branch, folded values) are constants of this plan too, so that work on them folds
  // here once instead of running every time. The signature names their storage, which the
  // plan keeps alive (its constants share it), so a cached plan is never matched with other
  // data at a reused address.
  std::vector<const Tensor*> captured;
  std::vector<bool> captured_constant;
  for (ValueId c : captured_) {
    const std::string& name = graph_.value(c).name;
    const Tensor* t = outer ? outer->Lookup(name) : nullptr;
    if (t == nullptr) {
      return InvalidArgument("graph '" + graph_.name + "' reads outer value '" + name +
                             "' which is not available");
    }
    const bool constant = t->is_tensor() && outer->IsConstant(name);
    captured.push_back(t);
    captured_constant.push_back(constant);
    sig += "|" + SignatureOf(*t);
    if (constant) {
      char at[32];
      std::snprintf(at, sizeof(at), "@%p", t->raw());
      sig += at;
    }
  }
  auto it = plans_.find(sig);
  if (it != plans_.end()) return std::shared_ptr<const ExecutionPlan>(it->second);
  // A new plan reads the weights (folding, packing): released ones are read back first.
  KILN_RETURN_IF_ERROR(RestoreReleasedWeights());
  KILN_ASSIGN_OR_RETURN(auto plan, BuildPlan(inputs, captured, captured_constant, sig));
  if (std::getenv("KILN_TRACE") != nullptr) {
    std::fprintf(stderr, "[kiln] graph '%s' %s", graph_.name.c_str(), plan->ToString(graph_).c_str());
  }
  if (plans_.size() >= kMaxCachedPlans) plans_.clear();
  std::shared_ptr<ExecutionPlan> shared = std::move(plan);
  plans_[sig] = shared;
  return std::shared_ptr<const ExecutionPlan>(std::move(shared));
}

// Every value whose inferred shape is static must fit in one tensor (and its element count in
// int64): the error names the value and the node that makes it, before anything is allocated.
Status GraphExecutor::CheckPlannedSizes(const ExecutionPlan& plan) const {
  std::vector<int> producer(graph_.num_values(), -1);
  for (uint32_t i = 0; i < graph_.num_nodes(); ++i) {
    for (ValueId o : graph_.node(NodeId(i)).outputs) {
      if (o.valid()) producer[o.v] = static_cast<int>(i);
    }
  }
  const int64_t limit = config_->max_tensor_bytes;
  for (uint32_t v = 0; v < graph_.num_values(); ++v) {
    const TypeInfo& ti = plan.types[v];
    if (!ti.is_tensor() || !ti.has_static_shape() || ti.type == ElementType::kUndefined) continue;
    const Value& val = graph_.value(ValueId(v));
    std::string what = "value '" + val.name + "' (" + ti.ToString();
    if (producer[v] >= 0) {
      const Node& n = graph_.node(NodeId(static_cast<uint32_t>(producer[v])));
      what += ", output of node '" + n.name + "' (" + n.op_type + ")";
    }
    what += ")";
    auto count = CheckedNumElements(ti.static_shape());
    if (!count.ok()) return OutOfRange(what + ": " + count.status().message());
    const int64_t bytes = *count * static_cast<int64_t>(ElementSize(ti.type));
    if (limit > 0 && bytes > limit) return TensorTooLarge(what, bytes, limit);
  }
  return Status::Ok();
}

Result<std::unique_ptr<ExecutionPlan>> GraphExecutor::BuildPlan(
    const std::vector<Tensor>& inputs, const std::vector<const Tensor*>& captured,
    const std::vector<bool>& captured_constant, std::string signature) {
  auto plan = std::make_unique<ExecutionPlan>();
  plan->signature = std::move(signature);
  plan->types = DeclaredTypes(graph_);
  for (size_t i = 0; i < inputs.size(); ++i) {
    plan->types[graph_.inputs()[i].v] = TypeInfoOf(inputs[i]);
  }
  std::unordered_map<std::string, TypeInfo> outer_types;
  for (size_t i = 0; i < captured_.size(); ++i) {
    const Tensor& t = *captured[i];
    outer_types[graph_.value(captured_[i]).name] = TypeInfoOf(t);
  }
  InferShapesOptions opts;
  std::unordered_map<uint32_t, Tensor> known;
  for (size_t i = 0; i < captured_.size(); ++i) {
    if (captured_constant[i]) known[captured_[i].v] = *captured[i];
  }
  opts.known = &known;
  opts.outer_types = &outer_types;
  ThreadPool* pool = pool_;
  opts.folder = [pool](const Node& n, const std::vector<Tensor>& in) -> Result<std::vector<Tensor>> {
    // A Constant's tensor is shared, not copied (weights stored as Constant nodes: a copy
    // would cost the whole model's bytes at every signature's plan build). Constants are
    // read-only everywhere, as initializers are.
    if (n.op_type == "Constant" && n.domain.empty() && n.outputs.size() == 1) {
      const Tensor* value = n.attrs.GetTensor("value");
      if (value != nullptr && value->defined()) return std::vector<Tensor>{*value};
    }
    return RunNodeEager(n, in, pool);
  };
  Status inferred = InferShapes(graph_, plan->types, opts);
  if (!inferred.ok()) return inferred;
  KILN_RETURN_IF_ERROR(CheckPlannedSizes(*plan));

  // Steps: every node not entirely folded. Initializers stay in the graph, not in constants.
  std::vector<bool> is_const(graph_.num_values(), false);
  for (auto& [id, t] : known) {
    if (graph_.value(ValueId(id)).kind == ValueKind::kInitializer) continue;
    plan->constants[id] = t;
    is_const[id] = true;
  }
  // Constant nodes too large for the folder are constants all the same (weights stored as
  // Constant nodes): their tensors are shared, not copied, and compiled backends see them.
  for (NodeId id : order_) {
    const Node& n = graph_.node(id);
    if (n.op_type != "Constant" || !n.domain.empty() || n.outputs.size() != 1 ||
        !n.outputs[0].valid() || is_const[n.outputs[0].v]) {
      continue;
    }
    const Tensor* value = n.attrs.GetTensor("value");
    if (value == nullptr || !value->defined()) continue;
    plan->constants[n.outputs[0].v] = *value;
    is_const[n.outputs[0].v] = true;
  }
  std::vector<NodeId> running;
  for (NodeId id : order_) {
    const Node& n = graph_.node(id);
    bool folded = !n.outputs.empty();
    for (ValueId o : n.outputs) folded &= !o.valid() || is_const[o.v];
    if (!folded) running.push_back(id);
  }
  KILN_RETURN_IF_ERROR(PlanSteps(*plan, running));
  // Liveness over steps: a compiled partition reads its border inputs and writes its border
  // outputs; values inside it never reach the executor.
  const size_t nv = graph_.num_values();
  std::vector<int> first(nv, -1), last(nv, -1);
  auto step_io = [&](const PlanStep& st, std::vector<ValueId>& reads, std::vector<ValueId>& writes) {
    reads.clear();
    writes.clear();
    if (st.compiled >= 0) {
      const Partition& part =
          plan->partitioning.partitions[plan->compiled[st.compiled].partition];
      reads = part.inputs;
      writes = part.outputs;
      return;
    }
    const Node& n = graph_.node(st.node);
    reads = n.inputs;
    reads.insert(reads.end(), implicit_inputs_[st.node.v].begin(), implicit_inputs_[st.node.v].end());
    writes = n.outputs;
  };
  std::vector<ValueId> reads, writes;
  for (size_t s = 0; s < plan->steps.size(); ++s) {
    step_io(plan->steps[s], reads, writes);
    for (ValueId o : writes) {
      if (o.valid()) first[o.v] = last[o.v] = static_cast<int>(s);
    }
  }
  for (size_t s = 0; s < plan->steps.size(); ++s) {
    step_io(plan->steps[s], reads, writes);
    for (ValueId v : reads) {
      if (v.valid() && first[v.v] >= 0) last[v.v] = std::max(last[v.v], static_cast<int>(s));
    }
  }
  plan->arena_offset.assign(nv, -1);
  plan->arena_bytes_of.assign(nv, 0);
  plan->release_after.assign(plan->steps.size(), {});
  std::vector<BufferRequest> requests;
  for (uint32_t v = 0; v < nv; ++v) {
    if (first[v] < 0) continue;
    const Value& val = graph_.value(ValueId(v));
    if (val.is_output) continue;
    plan->release_after[static_cast<size_t>(last[v])].push_back(v);
    const TypeInfo& ti = plan->types[v];
    if (!ti.has_static_shape() || ti.type == ElementType::kString ||
        ti.type == ElementType::kUndefined) {
      continue;
    }
    auto count = CheckedNumElements(ti.static_shape());
    if (!count.ok()) continue;
    BufferRequest r;
    r.id = v;
    r.name = val.name;
    r.bytes = *count * static_cast<int64_t>(ElementSize(ti.type));
    r.first = first[v];
    r.last = last[v];
    requests.push_back(std::move(r));
  }
  plan->memory = PlanMemory(std::move(requests));
  for (size_t i = 0; i < plan->memory.buffers.size(); ++i) {
    const uint32_t v = plan->memory.buffers[i].id;
    plan->arena_offset[v] = plan->memory.offsets[i];
    plan->arena_bytes_of[v] = plan->memory.buffers[i].bytes;
  }
  if (config_->max_arena_bytes > 0 && plan->memory.arena_bytes > config_->max_arena_bytes) {
    return OutOfRange("graph '" + graph_.name + "': the planned arena for these input shapes takes " +
                      std::to_string(plan->memory.arena_bytes) + " bytes, above the limit of " +
                      std::to_string(config_->max_arena_bytes) +
                      " bytes (session option max_arena_bytes, config key MaxArenaBytes)");
  }
  if (plan->memory.arena_bytes > 0) {
    const size_t bytes = static_cast<size_t>(plan->memory.arena_bytes);
    void* p = std::aligned_alloc(MemoryPlan::kAlignment, bytes);
    if (p == nullptr) {
      return InvalidArgument("cannot allocate the " + std::to_string(bytes) + "-byte arena");
    }
    plan->arena = std::shared_ptr<void>(p, [](void* q) { std::free(q); });
  }
  return plan;
}

Result<std::vector<Tensor>> GraphExecutor::Run(const std::vector<Tensor>& inputs,
                                               const Frame* outer, const NodeObserver* observer) {
  if (observer == nullptr && outer != nullptr) observer = outer->observer;
  // Held for the whole run: a nested call with new shapes may evict it from the cache.
  KILN_ASSIGN_OR_RETURN(std::shared_ptr<const ExecutionPlan> cplan, PlanFor(inputs, outer));
  ExecutionPlan& plan = const_cast<ExecutionPlan&>(*cplan);
  std::vector<Tensor> slots(graph_.num_values());
  for (size_t i = 0; i < inputs.size(); ++i) slots[graph_.inputs()[i].v] = inputs[i];
  for (uint32_t v = 0; v < graph_.num_values(); ++v) {
    const Value& val = graph_.value(ValueId(v));
    if (val.kind == ValueKind::kInitializer) slots[v] = val.initializer;
  }
  for (ValueId c : captured_) slots[c.v] = *outer->Lookup(graph_.value(c).name);
  for (auto& [id, t] : plan.constants) slots[id] = t;
  Frame frame{&graph_, &slots, outer, observer, &plan};
  // KILN_TRACE=1 prints every step with its output shapes (debugging aid, off by default).
  static const bool trace = std::getenv("KILN_TRACE") != nullptr;
  // Profiling (PartitionOptions::profile): each step's time, summed into the plan.
  const bool profile = config_->partition.profile;
  using Clock = std::chrono::steady_clock;
  Clock::time_point t0;
  auto mark = [&](size_t s) {
    if (!profile) return;
    const Clock::time_point t = Clock::now();
    plan.step_us[s] += std::chrono::duration<double, std::micro>(t - t0).count();
    t0 = t;
  };
  if (profile) {
    if (plan.step_us.size() != plan.steps.size()) plan.step_us.assign(plan.steps.size(), 0.0);
    ++plan.runs;
    t0 = Clock::now();
  }
  for (size_t s = 0; s < plan.steps.size(); ++s) {
    const PlanStep& step = plan.steps[s];
    if (step.compiled >= 0) {
      const CompiledStep& cs = plan.compiled[step.compiled];
      if (trace) {
        std::fprintf(stderr, "[kiln] %s/%zu: partition %d on %s\n", graph_.name.c_str(), s,
                     cs.partition, cs.backend->name().c_str());
      }
      KILN_RETURN_IF_ERROR(RunCompiled(plan, cs, slots, observer));
      for (uint32_t v : plan.release_after[s]) slots[v] = Tensor();
      mark(s);
      continue;
    }
    const Node& n = graph_.node(step.node);
    if (trace) std::fprintf(stderr, "[kiln] %s/%zu: %s\n", graph_.name.c_str(), s, n.Describe().c_str());
    if (!kernels_[step.node.v]->containers) {
      for (size_t i = 0; i < n.inputs.size(); ++i) {
        const ValueId in = n.inputs[i];
        if (in.valid() && slots[in.v].defined() && !slots[in.v].is_tensor()) {
          return InvalidArgument(n.Describe() + ": input " + std::to_string(i) + " ('" +
                                 graph_.value(in).name + "') is " + slots[in.v].Describe() +
                                 "; this op takes tensors only");
        }
      }
    }
    ExecContext ctx(*this, plan, slots, frame, n);
    Status st = kernels_[step.node.v]->run(ctx);
    if (!st.ok()) {
      if (st.message().find(n.name) == std::string::npos) return st.WithContext(n.Describe());
      return st;
    }
    for (size_t i = 0; i < n.outputs.size(); ++i) {
      if (n.outputs[i].valid() && !slots[n.outputs[i].v].defined()) {
        return Internal(n.Describe() + " did not produce output " + std::to_string(i) + " ('" +
                        graph_.value(n.outputs[i]).name + "')");
      }
    }
    if (observer != nullptr) {
      std::vector<const Tensor*> outs;
      for (ValueId o : n.outputs) outs.push_back(o.valid() ? &slots[o.v] : nullptr);
      (*observer)(graph_, n, outs);
    }
    for (uint32_t v : plan.release_after[s]) slots[v] = Tensor();
    mark(s);
  }
  std::vector<Tensor> outputs;
  for (ValueId o : graph_.outputs()) {
    const Tensor& t = slots[o.v];
    if (!t.defined()) {
      return Internal("graph output '" + graph_.value(o).name + "' was not computed");
    }
    outputs.push_back(t.owns_storage() ? t : t.Clone());
  }
  return outputs;
}

Status GraphExecutor::PlanSteps(ExecutionPlan& plan, const std::vector<NodeId>& nodes) {
  auto constant = [&](ValueId v) { return plan.ConstantOf(graph_, v); };
  PartitionOptions popts = config_->partition;
  if (config_->max_fast_signatures > 0) {
    if (fast_plans_ >= config_->max_fast_signatures) {
      popts.reference_only = true;
    } else {
      ++fast_plans_;
    }
  }
  KILN_ASSIGN_OR_RETURN(plan.partitioning,
                        PartitionGraph(graph_, plan.types, constant, nodes, config_->backends,
                                       popts));
  for (size_t p = 0; p < plan.partitioning.partitions.size(); ++p) {
    const Partition& part = plan.partitioning.partitions[p];
    const auto& backend = config_->backends[part.backend];
    if (backend->runs_in_executor()) {
      for (NodeId id : part.nodes) plan.steps.push_back(PlanStep{id, -1});
      continue;
    }
    PartitionSpec spec;
    spec.graph = &graph_;
    spec.nodes = part.nodes;
    spec.inputs = part.inputs;
    spec.outputs = part.outputs;
    spec.types = &plan.types;
    spec.constant = constant;
    spec.model_type = config_->partition.model_type;
    spec.pool = pool_;
    spec.threads = config_->partition.threads;
    spec.isa = config_->partition.isa;
    spec.profile = config_->partition.profile;
    spec.tune_threads = config_->partition.tune_threads;
    spec.int8_kernel = config_->partition.int8_kernel;
    spec.exact_int8 = config_->partition.exact_int8;
    spec.packed_constant = [this, &plan](const Node& n, ValueId v) { OnPacked(plan, n, v); };
    for (ValueId v : part.outputs) {
      if (!plan.types[v.v].has_static_shape()) {
        return Internal("partition " + std::to_string(p) + " on " + backend->name() +
                        " produces '" + graph_.value(v).name + "' of unknown shape");
      }
    }
    auto program = backend->Compile(spec);
    if (!program.ok()) {
      return program.status().WithContext("compiling partition " + std::to_string(p) + " (" +
                                          std::to_string(part.nodes.size()) + " nodes) on " +
                                          backend->name());
    }
    CompiledStep cs;
    cs.partition = static_cast<int>(p);
    cs.backend = backend;
    cs.program = std::move(program).value();
    plan.compiled.push_back(std::move(cs));
    plan.steps.push_back(PlanStep{NodeId(), static_cast<int>(plan.compiled.size()) - 1});
  }
  return Status::Ok();
}

Status GraphExecutor::RunCompiled(ExecutionPlan& plan, const CompiledStep& step,
                                  std::vector<Tensor>& slots, const NodeObserver* observer) {
  const Partition& part = plan.partitioning.partitions[step.partition];
  std::vector<const Tensor*> ins;
  for (ValueId v : part.inputs) {
    const Tensor& t = slots[v.v];
    if (!t.defined()) {
      return Internal("partition " + std::to_string(step.partition) + " input '" +
                      graph_.value(v).name + "' is not available");
    }
    ins.push_back(&t);
  }
  std::vector<Tensor*> outs;
  for (ValueId v : part.outputs) {
    const TypeInfo& ti = plan.types[v.v];
    const Shape shape = ti.static_shape();
    Tensor& slot = slots[v.v];
    const int64_t offset = plan.arena_offset[v.v];
    if (offset >= 0) {
      slot = Tensor::Wrap(ti.type, shape, static_cast<char*>(plan.arena.get()) + offset);
    } else {
      KILN_ASSIGN_OR_RETURN(slot, Tensor::Allocate(ti.type, shape));
    }
    outs.push_back(&slot);
  }
  Status st = step.program->Run(ins, outs);
  if (!st.ok()) {
    return st.WithContext("partition " + std::to_string(step.partition) + " on " +
                          step.backend->name());
  }
  if (observer != nullptr) {
    for (ValueId v : part.outputs) {
      const Value& val = graph_.value(v);
      if (!val.producer.valid()) continue;
      const Node& n = graph_.node(val.producer);
      std::vector<const Tensor*> o(n.outputs.size(), nullptr);
      for (size_t i = 0; i < n.outputs.size(); ++i) {
        if (n.outputs[i] == v) o[i] = &slots[v.v];
      }
      (*observer)(graph_, n, o);
    }
  }
  return Status::Ok();
}

std::string ExecutionPlan::ToString(const Graph& graph) const {
  std::string s = "plan for " + signature + "\n";
  for (size_t i = 0; i < steps.size(); ++i) {
    if (steps[i].compiled >= 0) {
      const CompiledStep& cs = compiled[steps[i].compiled];
      const Partition& part = partitioning.partitions[cs.partition];
      s += "  " + std::to_string(i) + ": partition " + std::to_string(cs.partition) + " on " +
           cs.backend->name() + " (" + std::to_string(part.nodes.size()) + " nodes) ->";
      for (ValueId o : part.outputs) s += " " + graph.value(o).name + ":" + types[o.v].ToString();
      s += "\n";
      continue;
    }
    const Node& n = graph.node(steps[i].node);
    s += "  " + std::to_string(i) + ": " + n.Describe() + " ->";
    for (ValueId o : n.outputs) {
      if (o.valid()) s += " " + graph.value(o).name + ":" + types[o.v].ToString();
    }
    s += "\n";
  }
  s += std::to_string(constants.size()) + " values folded to constants\n";
  s += memory.ToString();
  return s;
}

}  // namespace kiln
