// The XNNPACK backend: Supports() from the op table, and Compile(), which groups nodes with the
// fusion planner (xnn_fusion.h), runs each op's build function, plans the workspace by liveness
// and sets every XNNPACK operator up once on its fixed buffers. Partitions run on the session's
// thread pool (xnn_threadpool.cc implements the pthreadpool API it is built on).
// KILN_XNN_PROFILE=1 prints per-op-type times of each partition when it is freed (=2: per step).
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

#include "backends/xnnpack/xnn_fusion.h"
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
    const int64_t n = NumElements(shape(v));
    info.floats = Is8Bit(type(v)) ? (n + 3) / 4 : n;
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
  if (Is8Bit(type(v))) {
    const int dst = ScratchBytes(NumElements(logical));
    AddLoop([=](const Workspace& ws, pthreadpool_t pool) {
      PermuteCopyBytes(reinterpret_cast<const uint8_t*>(ws.s8(src)), phys, inv,
                       reinterpret_cast<uint8_t*>(ws.s8(dst)), pool, 0);
    });
    return Use(dst);
  }
  const int dst = Scratch(NumElements(logical));
  AddLoop([=](const Workspace& ws, pthreadpool_t pool) {
    PermuteCopy(ws.f(src), phys, inv, ws.f(dst), pool);
  });
  return Use(dst);  // live at the consuming step too
}

int Builder::LogicalOut(ValueId v) {
  if (IsIdentity(perm(v))) return Buffer(v);
  if (Is8Bit(type(v))) return ScratchBytes(NumElements(shape(v)));
  return Scratch(NumElements(shape(v)));
}

void Builder::FinishLogicalOut(ValueId v, int logical_buffer) {
  const std::vector<int> p = perm(v);
  if (IsIdentity(p)) return;
  Use(logical_buffer);
  const int dst = Buffer(v);
  const Shape logical = shape(v);
  if (Is8Bit(type(v))) {
    AddLoop([=](const Workspace& ws, pthreadpool_t pool) {
      PermuteCopyBytes(reinterpret_cast<const uint8_t*>(ws.s8(logical_buffer)), logical, p,
                       reinterpret_cast<uint8_t*>(ws.s8(dst)), pool, 0);
    });
    return;
  }
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

// ---- The compiled partition ----

// Operators below this many multiply-adds (or elements) run on the calling thread: a parallel
// dispatch costs a few microseconds, more when the machine is loaded.
constexpr double kMinParallelWork = 1 << 17;

// Rough work of an XNNPACK step: output elements times multiply-adds per output.
double StepWork(const PartitionSpec& spec, const Node& n) {
  if (n.outputs.empty() || !(*spec.types)[n.outputs[0].v].has_static_shape()) return 1e30;
  double work = static_cast<double>(NumElements((*spec.types)[n.outputs[0].v].static_shape()));
  const bool qconv = n.op_type == "QLinearConv";
  if ((n.op_type == "Conv" || n.op_type == "ConvTranspose" || n.op_type == "MatMul" ||
       n.op_type == "Gemm" || qconv) &&
      n.inputs.size() > (qconv ? 3 : 1)) {
    const Tensor* w = spec.constant(n.inputs[qconv ? 3 : 1]);
    const Shape xs = (*spec.types)[n.inputs[0].v].has_static_shape()
                         ? (*spec.types)[n.inputs[0].v].static_shape()
                         : Shape{};
    if ((n.op_type == "Conv" || qconv) && w != nullptr && w->rank() == 4 && w->dim(0) > 0) {
      work *= static_cast<double>(w->size()) / static_cast<double>(w->dim(0));
    } else if (!xs.empty()) {
      work *= static_cast<double>(n.op_type == "ConvTranspose" ? xs[1] : xs.back());
    }
  }
  return work;
}

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
    }
    // Thread tuning (below): the first call runs the partition over these inputs until the
    // steps' modes are decided (the outputs are written once, after).
    while (tuning_) {
      BordersIn(inputs, pool);
      KILN_RETURN_IF_ERROR(Steps(pool, NextTuneMode()));
    }
    Clock::time_point t0;
    if (profile_) t0 = Clock::now();
    BordersIn(inputs, pool);
    if (profile_) {
      const Clock::time_point t = Clock::now();
      border_us_ += Micros(t0, t);
    }
    KILN_RETURN_IF_ERROR(Steps(pool, TuneMode::kDecided));
    if (profile_) t0 = Clock::now();
    for (size_t i = 0; i < outputs.size(); ++i) {
      const Border& b = out_[i];
      Tensor& t = *outputs[i];
      if (t.shape() != b.shape || t.type() != b.type) {
        return InvalidArgument("xnnpack partition output '" + b.name + "' expects " +
                               ElementTypeName(b.type) + ShapeToString(b.shape) + ", got " +
                               t.Describe());
      }
      const Shape phys = Permuted(b.shape, b.perm);
      if (Is8Bit(b.type)) {
        PermuteCopyBytes(reinterpret_cast<const uint8_t*>(ws_.s8(b.buffer)), phys, b.inverse,
                         static_cast<uint8_t*>(t.raw()), pool,
                         b.type == ElementType::kU8 ? 0x80 : 0);
      } else if (b.type == ElementType::kF16) {
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
    if (print_profile_ && runs_ > 0) PrintProfile();
  }

  std::vector<StepTime> Profile() const override {
    std::vector<StepTime> out;
    if (!profile_) return out;
    out.push_back(StepTime{nullptr, "borders (layout/type conversions in and out)", border_us_});
    for (size_t i = 0; i < steps_.size(); ++i) {
      const Builder::Step& s = steps_[i];
      std::string what = s.op ? "xnnpack operator" : "own loop";
      // On one thread although the partition has a pool: built so, or chosen by thread tuning.
      if (pool_threads_ > 1 && (s.single_thread || (!single_.empty() && single_[i]))) {
        what += ", 1 thread";
      }
      out.push_back(StepTime{s.node, what, step_us_[i]});
    }
    return out;
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
    std::fprintf(stderr,
                 "xnnpack partition profile: %zu steps, %d runs, %.1f us/run (borders %.1f)\n",
                 steps_.size(), runs_, total / n, border_us_ / n);
    std::vector<std::pair<double, std::string>> ops;
    ops.reserve(by_op.size());
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
      if (b.type == ElementType::kF16)
        s += std::string(s.empty() ? "" : ", ") + (in ? "f16->f32" : "f32->f16");
      if (b.type == ElementType::kU8)
        s += std::string(s.empty() ? "" : ", ") + (in ? "u8->s8 (xor 0x80)" : "s8->u8 (xor 0x80)");
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
  bool print_profile_ = false;  // KILN_XNN_PROFILE: print at destruction
  std::vector<double> step_us_;
  double border_us_ = 0;
  CpuIsa isa_ = CpuIsa::kPortable;  // the session's ISA level (PartitionSpec::isa)

  // Thread tuning (PartitionSpec::tune_threads, with a pool of 2+ threads): whether each step
  // runs on the pool or on the calling thread alone is measured, not guessed. On a small
  // partition a parallel dispatch (waking a thread, then the other core reading what this one
  // wrote) can cost more than the step saves: PP-OCR cls took 1.7x as long on 2 threads as on
  // 1. The first Run repeats the partition over its inputs: one untimed run, then kTuneRounds
  // runs with every step on the pool alternating with kTuneRounds on one thread, each step
  // timed; each step takes its faster mode (by its fastest time in each, the least disturbed).
  // Then the three plans (all pool, all one thread, that mix) run in turn, kTuneRounds each,
  // and one leaves the pool for good only when its fastest run beats the pool's by 5%. A
  // partition whose pooled run takes longer than kTuneMaxUs is left on the pool at once (its
  // steps are large enough to split), so the first run costs at most about
  // 5 * kTuneRounds * kTuneMaxUs more.
  enum class TuneMode { kDecided, kWarm, kAllParallel, kAllSingle, kMixed };
  static constexpr int kTuneRounds = 4;
  static constexpr double kTuneMaxUs = 5000;
  void EnableThreadTuning() {
    tuning_ = true;
    single_.assign(steps_.size(), false);
    tune_par_us_.assign(steps_.size(), kNever);
    tune_single_us_.assign(steps_.size(), kNever);
  }
  TuneMode NextTuneMode() const {
    if (tune_run_ == 0) return TuneMode::kWarm;
    if (tune_run_ <= 2 * kTuneRounds) {  // phase 1: per-step times
      return tune_run_ % 2 == 1 ? TuneMode::kAllParallel : TuneMode::kAllSingle;
    }
    switch ((tune_run_ - 2 * kTuneRounds - 1) % 3) {  // phase 2: the three plans in turn
      case 0: return TuneMode::kAllParallel;
      case 1: return TuneMode::kAllSingle;
      default: return TuneMode::kMixed;
    }
  }
  void FinishTuneRun(TuneMode mode, double us) {
    ++tune_run_;
    const bool phase2 = tune_run_ > 2 * kTuneRounds + 1;
    if (mode == TuneMode::kAllParallel && us > kTuneMaxUs) {
      tuning_ = false;  // large steps: stay on the pool
      single_.assign(steps_.size(), false);
      return;
    }
    const int plan = mode == TuneMode::kAllParallel ? 0 : mode == TuneMode::kAllSingle ? 1 : 2;
    if (phase2 && mode != TuneMode::kWarm) tune_total_[plan] = std::min(tune_total_[plan], us);
    if (tune_run_ == 2 * kTuneRounds + 1) {
      for (size_t i = 0; i < steps_.size(); ++i) single_[i] = tune_single_us_[i] < tune_par_us_[i];
    }
    if (tune_run_ == 5 * kTuneRounds + 1) {
      // Off the pool only for a clear gain (5%): the timings are noisy, the pool the default.
      const double par = tune_total_[0];
      if (tune_total_[1] <= tune_total_[2] && tune_total_[1] < 0.95 * par) {
        single_.assign(steps_.size(), true);
      } else if (!(tune_total_[2] < tune_total_[1] && tune_total_[2] < 0.95 * par)) {
        single_.assign(steps_.size(), false);
      }
      tuning_ = false;
    }
  }
  bool tuning_ = false;
  int pool_threads_ = 1;
  int tune_run_ = 0;
  std::vector<bool> single_;  // per step: run on the calling thread only (decided by tuning)
  std::vector<double> tune_par_us_, tune_single_us_;
  static constexpr double kNever = 1e300;
  double tune_total_[3] = {kNever, kNever, kNever};  // fastest run: all pool, one thread, mix
  int runs_ = 0;

 private:
  using Clock = std::chrono::steady_clock;
  static double Micros(Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double, std::micro>(b - a).count();
  }

  // The inputs (checked by Run) converted into the workspace.
  void BordersIn(const std::vector<const Tensor*>& inputs, pthreadpool_t pool) {
    for (size_t i = 0; i < inputs.size(); ++i) {
      const Border& b = in_[i];
      const Tensor& t = *inputs[i];
      if (b.buffer < 0) continue;
      if (Is8Bit(b.type)) {
        PermuteCopyBytes(static_cast<const uint8_t*>(t.raw()), b.shape, b.perm,
                         reinterpret_cast<uint8_t*>(ws_.s8(b.buffer)), pool,
                         b.type == ElementType::kU8 ? 0x80 : 0);
      } else if (b.type == ElementType::kF16) {
        PermuteCopyF16ToF32(static_cast<const uint16_t*>(t.raw()), b.shape, b.perm, ws_.f(b.buffer),
                            pool);
      } else {
        PermuteCopy(t.data<float>(), b.shape, b.perm, ws_.f(b.buffer), pool, isa_);
      }
    }
  }

  // Every step once: on the pool or on the calling thread as `mode` says (kDecided: as
  // tuning decided; a step built single-threaded always is); timed when profiling (kDecided
  // runs only) or tuning.
  Status Steps(pthreadpool_t pool, TuneMode mode) {
    const bool profile = profile_ && mode == TuneMode::kDecided;
    const bool timed = profile || mode != TuneMode::kDecided;
    Clock::time_point start, ts;
    if (timed) start = ts = Clock::now();
    for (size_t i = 0; i < steps_.size(); ++i) {
      Builder::Step& s = steps_[i];
      const bool single = s.single_thread || mode == TuneMode::kAllSingle ||
                          (mode != TuneMode::kAllParallel && !single_.empty() && single_[i]);
      pthreadpool_t p = single ? nullptr : pool;
      if (s.op) {
        const xnn_status st = xnn_run_operator(s.op.get(), p);
        if (st != xnn_status_success) return XnnError(*s.node, "xnn_run_operator", st);
      } else {
        s.loop(ws_, p);
      }
      if (timed) {
        const Clock::time_point t = Clock::now();
        const double us = Micros(ts, t);
        ts = t;
        if (profile) step_us_[i] += us;
        if (mode == TuneMode::kAllParallel) tune_par_us_[i] = std::min(tune_par_us_[i], us);
        if (mode == TuneMode::kAllSingle) tune_single_us_[i] = std::min(tune_single_us_[i], us);
      }
    }
    if (mode != TuneMode::kDecided) FinishTuneRun(mode, Micros(start, ts));
    return Status::Ok();
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
    if (!n.domain.empty() && n.domain != "ai.onnx" && n.domain != "ai.kiln") {
      return NodeSupport::No("domain '" + n.domain + "' is not supported");
    }
    const bool int8 = IsInt8Node(q.inputs, q.outputs);
    const OpDef* def = FindOp(n.op_type, int8);
    if (def == nullptr) {
      return NodeSupport::No("op " + n.op_type + (int8 ? " on int8" : "") +
                             " is not in the XNNPACK backend");
    }
    static const std::set<std::string> kKilnOps = {"QGemm", "QAdd", "QMul", "QAveragePool",
                                                   "QGlobalAveragePool", "QLut"};
    if ((n.domain == "ai.kiln") != (kKilnOps.count(n.op_type) != 0)) {
      return NodeSupport::No("op " + n.domain + "." + n.op_type + " is not in the XNNPACK backend");
    }
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
      std::vector<const TypeInfo*> ins, outs;
      if (!n.inputs.empty() && n.inputs[0].valid()) ins.push_back(&(*spec.types)[n.inputs[0].v]);
      if (!n.outputs.empty() && n.outputs[0].valid())
        outs.push_back(&(*spec.types)[n.outputs[0].v]);
      const OpDef* def = FindOp(n.op_type, IsInt8Node(ins, outs));
      if (def == nullptr) return Unimplemented("xnnpack: no op " + n.Describe());
      Fusion f;
      ValueId x;
      Status st = Status::Ok();
      b.set_node(&n);
      LayerNormMatch ln;
      ValueId scale;
      if (def->int8 && BuildInt8Chain(b, fusion, n, &st)) {
        // one table lookup for the chain
      } else if (def->int8) {
        f = fusion.Plan(n, *def);
        st = def->build(b, n, f);
      } else if (fusion.MatchHardSwish(n, &x, &f)) {
        st = BuildHardSwish(b, n, x, f);
      } else if (fusion.MatchGeluErf(n, &x, &f)) {
        st = BuildGeluErf(b, x, f);
      } else if (fusion.MatchSilu(n, &x, &f)) {
        st = BuildSilu(b, n, x, f);
      } else if (int64_t groups = 0; fusion.MatchChannelShuffle(n, &x, &groups, &f)) {
        st = BuildChannelShuffle(b, n, x, groups, f);
      } else if (fusion.MatchScaleResidual(n, &x, &scale, &f)) {
        st = BuildScaleResidual(b, n, x, scale, f);
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
      for (size_t i = 0; i < br.perm.size(); ++i)
        br.inverse[static_cast<size_t>(br.perm[i])] = static_cast<int>(i);
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
    void* arena = std::aligned_alloc(
        MemoryPlan::kAlignment,
        (bytes + MemoryPlan::kAlignment - 1) / MemoryPlan::kAlignment * MemoryPlan::kAlignment);
    if (arena == nullptr)
      return Internal("xnnpack: cannot allocate a " + std::to_string(bytes) + "-byte workspace");
    part->arena_ = std::shared_ptr<void>(arena, [](void* p) { std::free(p); });
    part->workspace_bytes_ = mp.arena_bytes;
    part->ws_.ptrs_.resize(b.buffers().size());
    for (size_t i = 0; i < mp.buffers.size(); ++i) {
      part->ws_.ptrs_[mp.buffers[i].id] =
          reinterpret_cast<float*>(static_cast<char*>(arena) + mp.offsets[i]);
    }
    // The session's pool (one set of workers for the reference kernels and XNNPACK), else one
    // of this backend's own.
    if (spec.pool != nullptr && spec.pool->threads() == spec.threads) {
      part->pool_ = PoolPtr(spec.pool->pthreadpool(), [](pthreadpool_t) {});
    } else {
      part->pool_ = PoolFor(spec.threads);
    }
    for (Builder::Step& s : b.steps()) {
      if (!s.op) continue;
      s.single_thread = StepWork(spec, *s.node) < kMinParallelWork;
      const xnn_status st = s.setup(part->ws_, s.single_thread ? nullptr : part->pool_.get());
      if (st != xnn_status_success) return XnnError(*s.node, s.setup_name, st);
    }
    part->steps_ = std::move(b.steps());
    part->weight_bytes_ = b.weight_bytes();
    part->isa_ = spec.isa;
    part->pool_threads_ = spec.threads;
    if (spec.tune_threads && spec.threads > 1) part->EnableThreadTuning();
    if (const char* p = std::getenv("KILN_XNN_PROFILE"); p != nullptr && *p && *p != '0') {
      part->EnableProfile();
      part->print_profile_ = true;
    } else if (spec.profile) {
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
  static const xnn_status init = xnn_initialize(xnn::KilnXnnAllocator());
  if (init != xnn_status_success) return nullptr;
  return std::make_shared<xnn::XnnBackend>();
}

}  // namespace kiln
