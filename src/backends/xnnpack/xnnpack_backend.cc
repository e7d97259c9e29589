// The XNNPACK backend: Supports() from the op table, and Compile(), which fuses followers into
// their producers (Conv+BatchNorm, Conv/FC/binary + Relu/Clip, the x*clip(x+3,0,6)/6 and
// x*HardSigmoid(x) HardSwish patterns), runs each op's build function, plans the workspace by
// liveness and sets every XNNPACK operator up once on its fixed buffers.
#include "backends/xnnpack/xnnpack_backend.h"

#include <pthreadpool.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
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
  s.node = node_;
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

  // `n` is Mul/Add of v and a constant scalar with an output of v's shape: the scalar.
  bool ScalarWith(const Node* n, const char* op, ValueId v, float* value) const {
    if (n == nullptr || n->op_type != op || n->inputs.size() != 2 || n->outputs.size() != 1) {
      return false;
    }
    const ValueId other = n->inputs[0] == v ? n->inputs[1] : n->inputs[0];
    if (other == v || (n->inputs[0] != v && n->inputs[1] != v)) return false;
    const Tensor* c = Const(other);
    if (c == nullptr || c->size() != 1) return false;
    const auto& types = *spec_.types;
    if (!types[v.v].has_static_shape() || !types[n->outputs[0].v].has_static_shape() ||
        types[v.v].static_shape() != types[n->outputs[0].v].static_shape()) {
      return false;
    }
    *value = static_cast<float>(c->GetAsDouble(0));
    return true;
  }

  // Following Mul and/or Add by constant scalars: y * post_mul + post_add.
  void PlanPostAffine(Fusion& f) {
    float v;
    const Node* mul = SoleConsumer(f.out);
    if (ScalarWith(mul, "Mul", f.out, &v)) {
      Absorb(f, mul);
      f.has_post = true;
      f.post_mul = v;
    }
    const Node* add = SoleConsumer(f.out);
    if (ScalarWith(add, "Add", f.out, &v)) {
      Absorb(f, add);
      f.has_post = true;
      f.post_add = v;
    }
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
      PlanPostAffine(f);
    }
    if (n.op_type == "MatMul" && n.inputs.size() == 2 && Const(n.inputs[1]) &&
        Const(n.inputs[1])->rank() == 2) {
      const Node* add = SoleConsumer(f.out);
      const auto& types = *spec_.types;
      if (add && add->op_type == "Add" && add->inputs.size() == 2) {
        const ValueId other = add->inputs[0] == f.out ? add->inputs[1] : add->inputs[0];
        const Tensor* c = Const(other);
        const int64_t nout = Const(n.inputs[1])->dim(1);
        bool ok = c != nullptr && other != f.out && c->size() == nout &&
                  c->rank() <= static_cast<int>(types[f.out.v].shape->size()) &&
                  types[add->outputs[0].v].has_static_shape() &&
                  types[add->outputs[0].v].static_shape() == types[f.out.v].static_shape();
        if (ok && c->rank() > 0 && c->shape().back() != nout) ok = false;
        if (ok) {
          Absorb(f, add);
          f.bias = c;
        }
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
      f->hard_sigmoid = &n;
      Absorb(*f, mul);
      PlanPostAffine(*f);
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
    PlanPostAffine(*f);
    return true;
  }

  // The consumers of v inside this partition (not yet absorbed).
  std::vector<const Node*> Consumers(ValueId v) const {
    std::vector<const Node*> out;
    for (const Node* n : in_partition_) {
      if (absorbed(n)) continue;
      for (ValueId in : n->inputs) {
        if (in == v) {
          out.push_back(n);
          break;
        }
      }
    }
    return out;
  }

  static bool LastAxisMean(const Node& n, int rank) {
    if (n.op_type != "ReduceMean" || n.inputs.size() != 1 || n.attrs.GetInt("keepdims", 1) != 1) {
      return false;
    }
    const std::vector<int64_t> axes = n.attrs.GetInts("axes");
    return axes.size() == 1 && (axes[0] == -1 || axes[0] == rank - 1);
  }

  // LayerNorm over the last axis, starting at the first ReduceMean (see xnn_ops.h).
  bool MatchLayerNorm(const Node& n, LayerNormMatch* m, Fusion* f) {
    const auto& types = *spec_.types;
    if (n.inputs.empty() || !n.inputs[0].valid() || !types[n.inputs[0].v].has_static_shape()) {
      return false;
    }
    const ValueId x = n.inputs[0];
    const Shape xs = types[x.v].static_shape();
    const int rank = static_cast<int>(xs.size());
    if (rank < 1 || !LastAxisMean(n, rank)) return false;
    const Node* sub = SoleConsumer(n.outputs[0]);
    if (!sub || sub->op_type != "Sub" || sub->inputs[0] != x || sub->inputs[1] != n.outputs[0]) {
      return false;
    }
    const ValueId d = sub->outputs[0];
    if (!types[d.v].has_static_shape() || types[d.v].static_shape() != xs || uses_[d.v] != 2) {
      return false;
    }
    const std::vector<const Node*> dc = Consumers(d);
    if (dc.size() != 2) return false;
    const Node* pow = dc[0]->op_type == "Pow" ? dc[0] : dc[1];
    const Node* div = pow == dc[0] ? dc[1] : dc[0];
    if (pow->op_type != "Pow" || pow->inputs[0] != d || !IsScalarConst(pow->inputs[1], 2)) return false;
    if (div->op_type != "Div" || div->inputs[0] != d) return false;
    const Node* mean2 = SoleConsumer(pow->outputs[0]);
    if (!mean2 || !LastAxisMean(*mean2, rank)) return false;
    const Node* add = SoleConsumer(mean2->outputs[0]);
    if (!add || add->op_type != "Add" || add->inputs.size() != 2 || add->inputs[0] != mean2->outputs[0]) {
      return false;
    }
    const Tensor* eps = Const(add->inputs[1]);
    if (eps == nullptr || eps->size() != 1) return false;
    const Node* sqrt = SoleConsumer(add->outputs[0]);
    if (!sqrt || sqrt->op_type != "Sqrt" || SoleConsumer(sqrt->outputs[0]) != div ||
        div->inputs[1] != sqrt->outputs[0]) {
      return false;
    }
    if (!types[div->outputs[0].v].has_static_shape() || types[div->outputs[0].v].static_shape() != xs) {
      return false;
    }
    m->x = x;
    m->eps = static_cast<float>(eps->GetAsDouble(0));
    f->out = n.outputs[0];
    for (const Node* a : {sub, pow, mean2, add, sqrt, div}) Absorb(*f, a);
    // Optional affine along the last axis.
    auto last_axis_const = [&](const Node* e, const char* op) -> const Tensor* {
      if (!e || e->op_type != op || e->inputs.size() != 2 || e->inputs[0] != f->out) return nullptr;
      const Tensor* c = Const(e->inputs[1]);
      if (c == nullptr || (c->size() != 1 && c->size() != xs.back())) return nullptr;
      if (c->rank() > rank || (c->rank() > 0 && c->shape().back() != c->size())) return nullptr;
      if (!types[e->outputs[0].v].has_static_shape() || types[e->outputs[0].v].static_shape() != xs) {
        return nullptr;
      }
      return c;
    };
    const Node* mul = SoleConsumer(f->out);
    if (const Tensor* g = last_axis_const(mul, "Mul")) {
      m->gamma = g;
      Absorb(*f, mul);
    }
    const Node* bias = SoleConsumer(f->out);
    if (const Tensor* bt = last_axis_const(bias, "Add")) {
      m->beta = bt;
      Absorb(*f, bias);
    }
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
    Clock::time_point t0;
    if (profile_) t0 = Clock::now();
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
    if (profile_) {
      const Clock::time_point t = Clock::now();
      border_us_ += Micros(t0, t);
      t0 = t;
    }
    for (size_t i = 0; i < steps_.size(); ++i) {
      Builder::Step& s = steps_[i];
      if (s.op) {
        const xnn_status st = xnn_run_operator(s.op.get(), pool);
        if (st != xnn_status_success) return XnnError(*s.node, "xnn_run_operator", st);
      } else {
        s.loop(ws_, pool);
      }
      if (profile_) {
        const Clock::time_point t = Clock::now();
        step_us_[i] += Micros(t0, t);
        t0 = t;
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
    if (profile_) {
      border_us_ += Micros(t0, Clock::now());
      ++runs_;
    }
    return Status::Ok();
  }

  ~XnnPartition() override {
    if (profile_ && runs_ > 0) PrintProfile();
  }

  // KILN_XNN_PROFILE=1: per-step times, summed over runs, printed when the partition is freed.
  void EnableProfile() {
    profile_ = true;
    step_us_.assign(steps_.size(), 0.0);
  }

  void PrintProfile() const {
    const double n = static_cast<double>(runs_);
    double total = border_us_;
    std::map<std::string, std::pair<double, int>> by_op;
    for (size_t i = 0; i < steps_.size(); ++i) {
      total += step_us_[i];
      const Builder::Step& s = steps_[i];
      const std::string op = s.node ? s.node->op_type + (s.op ? "" : " (loop)") : "(loop)";
      by_op[op].first += step_us_[i];
      by_op[op].second += 1;
    }
    std::fprintf(stderr, "xnnpack partition profile: %zu steps, %d runs, %.1f us/run (borders %.1f)\n",
                 steps_.size(), runs_, total / n, border_us_ / n);
    std::vector<std::pair<double, std::string>> ops;
    for (const auto& [op, v] : by_op) {
      ops.push_back({v.first, op + " x" + std::to_string(v.second)});
    }
    std::sort(ops.rbegin(), ops.rend());
    for (const auto& [us, op] : ops) {
      std::fprintf(stderr, "  %-36s %9.1f us/run %5.1f%%\n", op.c_str(), us / n, 100 * us / total);
    }
    if (std::getenv("KILN_XNN_PROFILE") && std::string(std::getenv("KILN_XNN_PROFILE")) == "2") {
      for (size_t i = 0; i < steps_.size(); ++i) {
        const Builder::Step& s = steps_[i];
        std::fprintf(stderr, "  step %4zu %-20s %-32s %8.1f us\n", i,
                     s.node ? s.node->op_type.c_str() : "-", s.node ? s.node->name.c_str() : "-",
                     step_us_[i] / n);
      }
    }
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
  bool profile_ = false;
  std::vector<double> step_us_;
  double border_us_ = 0;
  int runs_ = 0;

 private:
  using Clock = std::chrono::steady_clock;
  static double Micros(Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double, std::micro>(b - a).count();
  }
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
      b.set_node(&n);
      LayerNormMatch ln;
      if (fusion.MatchHardSwish(n, &x, &f)) {
        st = BuildHardSwish(b, n, x, f);
      } else if (fusion.MatchLayerNorm(n, &ln, &f)) {
        st = BuildLayerNorm(b, n, ln, f);
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
    if (const char* p = std::getenv("KILN_XNN_PROFILE"); p != nullptr && *p && *p != '0') {
      part->EnableProfile();
    }
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
