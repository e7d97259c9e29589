// The XNNPACK backend: Supports() from the op table, and Compile(), which fuses followers into
// their producers (Conv+BatchNorm, Conv/FC/binary + Relu/Clip, the x*clip(x+3,0,6)/6 and
// x*HardSigmoid(x) HardSwish patterns), runs each op's build function, plans the workspace by
// liveness and sets every XNNPACK operator up once on its fixed buffers.
#include "backends/xnnpack/xnnpack_backend.h"

#include <pthreadpool.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <set>

#include "backends/xnnpack/xnn_internal.h"
#include "backends/xnnpack/xnn_ops.h"
#include "plan/memory_plan.h"

namespace kiln {
namespace xnn {

// ---- Builder ----

int Builder::BufferOf(ValueId v) const {
  for (const auto& [id, b] : value_buffer_) {
    if (id == v.v) return b;
  }
  return -1;
}

int Builder::Use(int b) {
  BufferInfo& info = buffers_[static_cast<size_t>(b)];
  const int step = static_cast<int>(steps_.size());
  if (info.first < 0 || step < info.first) info.first = step;
  info.last = std::max(info.last, step);
  return b;
}

int Builder::Buffer(ValueId v) {
  int b = BufferOf(v);
  if (b < 0) {
    b = static_cast<int>(buffers_.size());
    BufferInfo info;
    info.floats = NumElements(shape(v));
    info.name = graph().value(v).name;
    buffers_.push_back(info);
    value_buffer_.push_back({v.v, b});
  }
  return Use(b);
}

int Builder::Scratch(int64_t floats) {
  const int b = static_cast<int>(buffers_.size());
  BufferInfo info;
  info.floats = floats;
  info.name = "(scratch)";
  buffers_.push_back(info);
  return Use(b);
}

int Builder::LogicalIn(ValueId v) {
  const int src = Buffer(v);
  const std::vector<int> p = perm(v);
  if (IsIdentity(p)) return src;
  const Shape logical = shape(v);
  const Shape phys = Permuted(logical, p);
  std::vector<int> inv(p.size());
  for (size_t i = 0; i < p.size(); ++i) inv[static_cast<size_t>(p[i])] = static_cast<int>(i);
  const int dst = Scratch(NumElements(logical));
  AddLoop([=](const Workspace& ws, pthreadpool_t pool) {
    PermuteCopy(ws.f(src), phys, inv, ws.f(dst), pool);
  });
  return Use(dst);  // live at the consuming step too
}

int Builder::LogicalOut(ValueId v) {
  if (IsIdentity(perm(v))) return Buffer(v);
  return Scratch(NumElements(shape(v)));
}

void Builder::FinishLogicalOut(ValueId v, int logical_buffer) {
  const std::vector<int> p = perm(v);
  if (IsIdentity(p)) return;
  Use(logical_buffer);
  const int dst = Buffer(v);
  const Shape logical = shape(v);
  AddLoop([=](const Workspace& ws, pthreadpool_t pool) {
    PermuteCopy(ws.f(logical_buffer), logical, p, ws.f(dst), pool);
  });
}

void Builder::AddXnn(const Node& n, XnnOp op,
                     std::function<xnn_status(const Workspace&, pthreadpool_t)> setup,
                     const char* setup_name) {
  Step s;
  s.op = std::move(op);
  s.setup = std::move(setup);
  s.setup_name = setup_name;
  s.node = &n;
  steps_.push_back(std::move(s));
}

void Builder::AddLoop(std::function<void(const Workspace&, pthreadpool_t)> fn) {
  Step s;
  s.loop = std::move(fn);
  steps_.push_back(std::move(s));
}

namespace {

// ---- Fusion ----

class FusionPlanner {
 public:
  explicit FusionPlanner(const PartitionSpec& spec) : spec_(spec) {
    const Graph& g = *spec.graph;
    uses_.assign(g.num_values(), 0);
    for (const Node& n : g.nodes()) {
      for (ValueId v : n.inputs) {
        if (v.valid()) ++uses_[v.v];
      }
    }
    for (ValueId v : g.outputs()) uses_[v.v] += 2;
    for (ValueId v : spec.outputs) uses_[v.v] += 2;
    for (NodeId id : spec.nodes) in_partition_.insert(&g.node(id));
  }

  bool absorbed(const Node* n) const { return absorbed_.count(n) != 0; }

  // The node that is the only reader of v, when it is in this partition and free.
  const Node* SoleConsumer(ValueId v) const {
    if (!v.valid() || uses_[v.v] != 1) return nullptr;
    for (const Node* n : in_partition_) {
      for (ValueId in : n->inputs) {
        if (in == v) return absorbed(n) ? nullptr : n;
      }
    }
    return nullptr;
  }

  const Tensor* Const(ValueId v) const { return v.valid() ? spec_.constant(v) : nullptr; }

  bool IsScalarConst(ValueId v, float want) const {
    const Tensor* t = Const(v);
    return t != nullptr && t->size() == 1 && std::fabs(t->GetAsDouble(0) - want) < 1e-6;
  }

  // Relu, or Clip with constant bounds.
  bool ActivationBounds(const Node& n, float* lo, float* hi) const {
    if (n.op_type == "Relu") {
      *lo = 0;
      *hi = INFINITY;
      return true;
    }
    if (n.op_type == "Clip") {
      return ClipBounds(n, [this](ValueId v) { return Const(v); }, lo, hi);
    }
    return false;
  }

  void Absorb(Fusion& f, const Node* n) {
    absorbed_.insert(n);
    f.absorbed.push_back(n);
    f.out = n->outputs[0];
  }

  Fusion Plan(const Node& n, const OpDef& def) {
    Fusion f;
    f.out = n.outputs[0];
    if (n.op_type == "Conv") {
      const Node* bn = SoleConsumer(f.out);
      if (bn && bn->op_type == "BatchNormalization" && bn->inputs[0] == f.out &&
          Const(bn->inputs[1]) && Const(bn->inputs[2]) && Const(bn->inputs[3]) &&
          Const(bn->inputs[4]) && (bn->outputs.size() == 1 || !bn->outputs[1].valid())) {
        Absorb(f, bn);
        f.batch_norm = bn;
      }
    }
    if (def.takes_activation) {
      const Node* act = SoleConsumer(f.out);
      float lo, hi;
      if (act && act->inputs[0] == f.out && ActivationBounds(*act, &lo, &hi)) {
        Absorb(f, act);
        f.out_min = std::max(f.out_min, lo);
        f.out_max = std::min(f.out_max, hi);
      }
    }
    return f;
  }

  // x*clip(x+3,0,6)/6 starting at the Add, or x*HardSigmoid(x) (alpha 1/6, beta 0.5) starting
  // at the HardSigmoid: the input x and the fused group, else false.
  bool MatchHardSwish(const Node& n, ValueId* x, Fusion* f) {
    if (n.op_type == "HardSigmoid") {
      if (std::fabs(n.attrs.GetFloat("alpha", 0.2f) - 1.0f / 6) > 1e-6 ||
          std::fabs(n.attrs.GetFloat("beta", 0.5f) - 0.5f) > 1e-6) {
        return false;
      }
      const ValueId in = n.inputs[0];
      // x feeds both the HardSigmoid and the Mul: two uses.
      const Node* mul = SoleConsumer(n.outputs[0]);
      if (!mul || mul->op_type != "Mul" || uses_[in.v] < 2) return false;
      const ValueId other = mul->inputs[0] == n.outputs[0] ? mul->inputs[1] : mul->inputs[0];
      if (other != in) return false;
      *x = in;
      f->out = n.outputs[0];
      Absorb(*f, mul);
      return true;
    }
    if (n.op_type != "Add") return false;
    ValueId in;
    if (IsScalarConst(n.inputs[1], 3)) {
      in = n.inputs[0];
    } else if (IsScalarConst(n.inputs[0], 3)) {
      in = n.inputs[1];
    } else {
      return false;
    }
    const Node* clip = SoleConsumer(n.outputs[0]);
    float lo, hi;
    if (!clip || clip->op_type != "Clip" || clip->inputs[0] != n.outputs[0] ||
        !ActivationBounds(*clip, &lo, &hi) || lo != 0 || hi != 6) {
      return false;
    }
    const Node* mul = SoleConsumer(clip->outputs[0]);
    if (!mul || mul->op_type != "Mul") return false;
    const ValueId other = mul->inputs[0] == clip->outputs[0] ? mul->inputs[1] : mul->inputs[0];
    if (other != in) return false;
    const Node* div = SoleConsumer(mul->outputs[0]);
    if (!div || div->op_type != "Div" || div->inputs[0] != mul->outputs[0] ||
        !IsScalarConst(div->inputs[1], 6)) {
      return false;
    }
    // The types must agree (all float, same shape as x).
    const auto& types = *spec_.types;
    if (!types[in.v].has_static_shape() || !types[div->outputs[0].v].has_static_shape() ||
        types[in.v].static_shape() != types[div->outputs[0].v].static_shape()) {
      return false;
    }
    *x = in;
    f->out = n.outputs[0];
    Absorb(*f, clip);
    Absorb(*f, mul);
    Absorb(*f, div);
    return true;
  }

 private:
  const PartitionSpec& spec_;
  std::vector<int> uses_;
  std::set<const Node*> in_partition_;
  std::set<const Node*> absorbed_;
};

// ---- The compiled partition ----

struct PoolDeleter {
  void operator()(pthreadpool_t p) const {
    if (p) pthreadpool_destroy(p);
  }
};
using PoolPtr = std::shared_ptr<pthreadpool>;

class XnnPartition final : public CompiledPartition {
 public:
  Status Run(const std::vector<const Tensor*>& inputs,
             const std::vector<Tensor*>& outputs) override {
    if (inputs.size() != in_.size() || outputs.size() != out_.size()) {
      return InvalidArgument("xnnpack partition takes " + std::to_string(in_.size()) +
                             " inputs and " + std::to_string(out_.size()) + " outputs, got " +
                             std::to_string(inputs.size()) + " and " +
                             std::to_string(outputs.size()));
    }
    pthreadpool_t pool = pool_.get();
    for (size_t i = 0; i < inputs.size(); ++i) {
      const Border& b = in_[i];
      const Tensor& t = *inputs[i];
      if (t.shape() != b.shape || t.type() != b.type) {
        return InvalidArgument("xnnpack partition input '" + b.name + "' expects " +
                               ElementTypeName(b.type) + ShapeToString(b.shape) + ", got " +
                               t.Describe());
      }
      if (b.buffer < 0) continue;
      if (b.type == ElementType::kF16) {
        PermuteCopyF16ToF32(static_cast<const uint16_t*>(t.raw()), b.shape, b.perm,
                            ws_.f(b.buffer), pool);
      } else {
        PermuteCopy(t.data<float>(), b.shape, b.perm, ws_.f(b.buffer), pool);
      }
    }
    for (Builder::Step& s : steps_) {
      if (s.op) {
        const xnn_status st = xnn_run_operator(s.op.get(), pool);
        if (st != xnn_status_success) return XnnError(*s.node, "xnn_run_operator", st);
      } else {
        s.loop(ws_, pool);
      }
    }
    for (size_t i = 0; i < outputs.size(); ++i) {
      const Border& b = out_[i];
      Tensor& t = *outputs[i];
      if (t.shape() != b.shape || t.type() != b.type) {
        return InvalidArgument("xnnpack partition output '" + b.name + "' expects " +
                               ElementTypeName(b.type) + ShapeToString(b.shape) + ", got " +
                               t.Describe());
      }
      const Shape phys = Permuted(b.shape, b.perm);
      if (b.type == ElementType::kF16) {
        PermuteCopyF32ToF16(ws_.f(b.buffer), phys, b.inverse, static_cast<uint16_t*>(t.raw()),
                            pool);
      } else {
        PermuteCopy(ws_.f(b.buffer), phys, b.inverse, t.data<float>(), pool);
      }
    }
    return Status::Ok();
  }

  std::vector<std::string> border_conversions() const override {
    std::vector<std::string> out;
    auto describe = [&](const Border& b, bool in) {
      std::string s;
      if (!IsIdentity(b.perm)) s += in ? "NCHW->NHWC" : "NHWC->NCHW";
      if (b.type == ElementType::kF16) s += std::string(s.empty() ? "" : ", ") + (in ? "f16->f32" : "f32->f16");
      if (!s.empty()) out.push_back(b.name + ": " + s);
    };
    for (const Border& b : in_) describe(b, true);
    for (const Border& b : out_) describe(b, false);
    return out;
  }
  int64_t weight_bytes() const override { return weight_bytes_; }
  int64_t workspace_bytes() const override { return workspace_bytes_; }

  struct Border {
    std::string name;
    ElementType type;
    Shape shape;  // logical
    std::vector<int> perm, inverse;
    int buffer = -1;
  };
  std::vector<Border> in_, out_;
  std::vector<Builder::Step> steps_;
  Workspace ws_;
  std::shared_ptr<void> arena_;
  PoolPtr pool_;
  int64_t weight_bytes_ = 0;
  int64_t workspace_bytes_ = 0;
};

}  // namespace

// ---- The backend ----

class XnnBackend final : public Backend {
 public:
  std::string name() const override { return "xnnpack"; }
  ComputeUnit unit() const override { return ComputeUnit::kCpu; }

  NodeSupport Supports(const NodeQuery& q) const override {
    const Node& n = *q.node;
    if (!n.domain.empty() && n.domain != "ai.onnx") {
      return NodeSupport::No("domain '" + n.domain + "' is not supported");
    }
    const OpDef* def = FindOp(n.op_type);
    if (def == nullptr) return NodeSupport::No("op " + n.op_type + " is not in the XNNPACK backend");
    return def->supports(q);
  }

  Result<std::unique_ptr<CompiledPartition>> Compile(const PartitionSpec& spec) const override {
    const Graph& g = *spec.graph;
    Builder b(spec);
    auto part = std::make_unique<XnnPartition>();
    // Border inputs first: live from step 0.
    for (ValueId v : spec.inputs) {
      const TypeInfo& ti = (*spec.types)[v.v];
      if (!ti.has_static_shape()) {
        return InvalidArgument("xnnpack: input '" + g.value(v).name + "' has no static shape");
      }
      XnnPartition::Border br;
      br.name = g.value(v).name;
      br.type = ti.type;
      br.shape = ti.static_shape();
      br.perm = PhysicalPerm(static_cast<int>(br.shape.size()));
      br.buffer = b.Buffer(v);
      part->in_.push_back(std::move(br));
    }
    FusionPlanner fusion(spec);
    for (NodeId id : spec.nodes) {
      const Node& n = g.node(id);
      if (fusion.absorbed(&n)) continue;
      const OpDef* def = FindOp(n.op_type);
      if (def == nullptr) return Unimplemented("xnnpack: no op " + n.Describe());
      Fusion f;
      ValueId x;
      Status st = Status::Ok();
      if (fusion.MatchHardSwish(n, &x, &f)) {
        st = BuildHardSwish(b, n, x, f);
      } else {
        f = fusion.Plan(n, *def);
        st = def->build(b, n, f);
      }
      if (!st.ok()) return st.WithContext("xnnpack: " + n.Describe());
    }
    // Border outputs live past the last step.
    for (ValueId v : spec.outputs) {
      const int buf = b.BufferOf(v);
      if (buf < 0) {
        return Internal("xnnpack: partition output '" + g.value(v).name + "' was not produced");
      }
      b.buffers()[static_cast<size_t>(buf)].last = static_cast<int>(b.steps().size());
      XnnPartition::Border br;
      br.name = g.value(v).name;
      br.type = (*spec.types)[v.v].type;
      br.shape = (*spec.types)[v.v].static_shape();
      br.perm = PhysicalPerm(static_cast<int>(br.shape.size()));
      br.inverse.resize(br.perm.size());
      for (size_t i = 0; i < br.perm.size(); ++i) br.inverse[static_cast<size_t>(br.perm[i])] = static_cast<int>(i);
      br.buffer = buf;
      part->out_.push_back(std::move(br));
    }
    // Workspace: one arena planned by liveness. XNNPACK may read XNN_EXTRA_BYTES past inputs.
    std::vector<BufferRequest> reqs;
    for (size_t i = 0; i < b.buffers().size(); ++i) {
      const Builder::BufferInfo& info = b.buffers()[i];
      BufferRequest r;
      r.id = static_cast<uint32_t>(i);
      r.name = info.name;
      r.bytes = info.floats * 4 + XNN_EXTRA_BYTES;
      r.first = std::max(0, info.first);
      r.last = std::max(r.first, info.last);
      reqs.push_back(std::move(r));
    }
    MemoryPlan mp = PlanMemory(std::move(reqs));
    const size_t bytes = static_cast<size_t>(std::max<int64_t>(mp.arena_bytes, 64));
    void* arena = std::aligned_alloc(MemoryPlan::kAlignment,
                                     (bytes + MemoryPlan::kAlignment - 1) / MemoryPlan::kAlignment *
                                         MemoryPlan::kAlignment);
    if (arena == nullptr) return Internal("xnnpack: cannot allocate a " + std::to_string(bytes) + "-byte workspace");
    part->arena_ = std::shared_ptr<void>(arena, [](void* p) { std::free(p); });
    part->workspace_bytes_ = mp.arena_bytes;
    part->ws_.ptrs_.resize(b.buffers().size());
    for (size_t i = 0; i < mp.buffers.size(); ++i) {
      part->ws_.ptrs_[mp.buffers[i].id] =
          reinterpret_cast<float*>(static_cast<char*>(arena) + mp.offsets[i]);
    }
    part->pool_ = PoolFor(spec.threads);
    for (Builder::Step& s : b.steps()) {
      if (!s.op) continue;
      const xnn_status st = s.setup(part->ws_, part->pool_.get());
      if (st != xnn_status_success) return XnnError(*s.node, s.setup_name, st);
    }
    part->steps_ = std::move(b.steps());
    part->weight_bytes_ = b.weight_bytes();
    return std::unique_ptr<CompiledPartition>(std::move(part));
  }

 private:
  // One pthreadpool per thread count, shared by this backend's partitions (null for 1 thread:
  // XNNPACK then runs on the caller's thread).
  PoolPtr PoolFor(int threads) const {
    if (threads <= 1) return nullptr;
    std::lock_guard<std::mutex> lock(mu_);
    PoolPtr& p = pools_[threads];
    if (!p) p = PoolPtr(pthreadpool_create(static_cast<size_t>(threads)), PoolDeleter());
    return p;
  }
  mutable std::mutex mu_;
  mutable std::map<int, PoolPtr> pools_;
};

}  // namespace xnn

std::shared_ptr<Backend> MakeXnnpackBackend() {
  static const xnn_status init = xnn_initialize(nullptr);
  if (init != xnn_status_success) return nullptr;
  return std::make_shared<xnn::XnnBackend>();
}

}  // namespace kiln
