#include "runtime/executor.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <set>

#include "backends/ref/eager.h"
#include "ir/shape_inference.h"

namespace kiln {

const Tensor* Frame::Lookup(const std::string& name) const {
  for (const Frame* f = this; f != nullptr; f = f->parent) {
    auto id = f->graph->FindValue(name);
    if (id && (*f->slots)[id->v].defined()) return &(*f->slots)[id->v];
  }
  return nullptr;
}

namespace {

constexpr size_t kMaxCachedPlans = 32;

std::string SignatureOf(const Tensor& t) {
  return std::string(ElementTypeName(t.type())) + ShapeToString(t.shape());
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

Result<std::unique_ptr<GraphExecutor>> GraphExecutor::Create(const Graph& graph, ThreadPool* pool) {
  std::unique_ptr<GraphExecutor> ex(new GraphExecutor(graph, pool));
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
  return Status::Ok();
}

Result<GraphExecutor*> GraphExecutor::SubExecutor(const Graph& body) {
  auto it = subs_.find(&body);
  if (it != subs_.end()) return it->second.get();
  KILN_ASSIGN_OR_RETURN(auto ex, Create(body, pool_));
  GraphExecutor* raw = ex.get();
  subs_[&body] = std::move(ex);
  return raw;
}

Result<const ExecutionPlan*> GraphExecutor::PlanFor(const std::vector<Tensor>& inputs,
                                                    const Frame* outer) {
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
    if (v.info.type != ElementType::kUndefined && v.info.type != t.type()) {
      return InvalidArgument("input '" + v.name + "' expects " + v.info.ToString() + ", got " +
                             t.Describe());
    }
    if (v.info.shape) {
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
  std::vector<const Tensor*> captured;
  for (ValueId c : captured_) {
    const std::string& name = graph_.value(c).name;
    const Tensor* t = outer ? outer->Lookup(name) : nullptr;
    if (t == nullptr) {
      return InvalidArgument("graph '" + graph_.name + "' reads outer value '" + name +
                             "' which is not available");
    }
    captured.push_back(t);
    sig += "|" + SignatureOf(*t);
  }
  auto it = plans_.find(sig);
  if (it != plans_.end()) return it->second.get();
  KILN_ASSIGN_OR_RETURN(auto plan, BuildPlan(inputs, captured, sig));
  if (std::getenv("KILN_TRACE") != nullptr) {
    std::fprintf(stderr, "[kiln] graph '%s' %s", graph_.name.c_str(), plan->ToString(graph_).c_str());
  }
  if (plans_.size() >= kMaxCachedPlans) plans_.clear();
  const ExecutionPlan* raw = plan.get();
  plans_[sig] = std::move(plan);
  return raw;
}

Result<std::unique_ptr<ExecutionPlan>> GraphExecutor::BuildPlan(
    const std::vector<Tensor>& inputs, const std::vector<const Tensor*>& captured,
    std::string signature) {
  auto plan = std::make_unique<ExecutionPlan>();
  plan->signature = std::move(signature);
  plan->types = DeclaredTypes(graph_);
  for (size_t i = 0; i < inputs.size(); ++i) {
    plan->types[graph_.inputs()[i].v] =
        TypeInfo{inputs[i].type(), DimVector(inputs[i].shape().begin(), inputs[i].shape().end())};
  }
  std::unordered_map<std::string, TypeInfo> outer_types;
  for (size_t i = 0; i < captured_.size(); ++i) {
    const Tensor& t = *captured[i];
    outer_types[graph_.value(captured_[i]).name] =
        TypeInfo{t.type(), DimVector(t.shape().begin(), t.shape().end())};
  }
  InferShapesOptions opts;
  std::unordered_map<uint32_t, Tensor> known;
  opts.known = &known;
  opts.outer_types = &outer_types;
  ThreadPool* pool = pool_;
  opts.folder = [pool](const Node& n, const std::vector<Tensor>& in) {
    return RunNodeEager(n, in, pool);
  };
  Status inferred = InferShapes(graph_, plan->types, opts);
  if (!inferred.ok()) return inferred;

  // Steps: every node not entirely folded. Initializers stay in the graph, not in constants.
  std::vector<bool> is_const(graph_.num_values(), false);
  for (auto& [id, t] : known) {
    if (graph_.value(ValueId(id)).kind == ValueKind::kInitializer) continue;
    plan->constants[id] = t;
    is_const[id] = true;
  }
  for (NodeId id : order_) {
    const Node& n = graph_.node(id);
    bool folded = !n.outputs.empty();
    for (ValueId o : n.outputs) folded &= !o.valid() || is_const[o.v];
    if (!folded) plan->steps.push_back(id);
  }
  // Liveness over steps.
  const size_t nv = graph_.num_values();
  std::vector<int> first(nv, -1), last(nv, -1);
  for (size_t s = 0; s < plan->steps.size(); ++s) {
    const Node& n = graph_.node(plan->steps[s]);
    for (ValueId o : n.outputs) {
      if (o.valid()) first[o.v] = last[o.v] = static_cast<int>(s);
    }
  }
  for (size_t s = 0; s < plan->steps.size(); ++s) {
    const NodeId nid = plan->steps[s];
    const Node& n = graph_.node(nid);
    auto use = [&](ValueId v) {
      if (v.valid() && first[v.v] >= 0) last[v.v] = std::max(last[v.v], static_cast<int>(s));
    };
    for (ValueId in : n.inputs) use(in);
    for (ValueId in : implicit_inputs_[nid.v]) use(in);
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
  KILN_ASSIGN_OR_RETURN(const ExecutionPlan* cplan, PlanFor(inputs, outer));
  ExecutionPlan& plan = const_cast<ExecutionPlan&>(*cplan);
  std::vector<Tensor> slots(graph_.num_values());
  for (size_t i = 0; i < inputs.size(); ++i) slots[graph_.inputs()[i].v] = inputs[i];
  for (uint32_t v = 0; v < graph_.num_values(); ++v) {
    const Value& val = graph_.value(ValueId(v));
    if (val.kind == ValueKind::kInitializer) slots[v] = val.initializer;
  }
  for (ValueId c : captured_) slots[c.v] = *outer->Lookup(graph_.value(c).name);
  for (auto& [id, t] : plan.constants) slots[id] = t;
  Frame frame{&graph_, &slots, outer, observer};
  // KILN_TRACE=1 prints every step with its output shapes (debugging aid, off by default).
  static const bool trace = std::getenv("KILN_TRACE") != nullptr;
  for (size_t s = 0; s < plan.steps.size(); ++s) {
    const Node& n = graph_.node(plan.steps[s]);
    if (trace) std::fprintf(stderr, "[kiln] %s/%zu: %s\n", graph_.name.c_str(), s, n.Describe().c_str());
    ExecContext ctx(*this, plan, slots, frame, n);
    Status st = kernels_[plan.steps[s].v]->run(ctx);
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

std::string ExecutionPlan::ToString(const Graph& graph) const {
  std::string s = "plan for " + signature + "\n";
  for (size_t i = 0; i < steps.size(); ++i) {
    const Node& n = graph.node(steps[i]);
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
