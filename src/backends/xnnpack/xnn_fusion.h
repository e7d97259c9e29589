// Private to the XNNPACK backend: the fusion planner, which finds the groups of nodes that one
// step computes: Conv / ConvTranspose + BatchNormalization / Mul / Add / Sub by per-channel
// constants (folded into weights and bias) + Relu / Clip; MatMul + constant bias Add; the
// HardSwish patterns (x*clip(x+3,0,6)/6, x*HardSigmoid(x)) + scalar affine; SiLU (x*Sigmoid(x)); the LayerNorm chain;
// and the squeeze-excitation residual x + x*s; Conv (own fp32 kernel) + Add of a computed
// residual. Only nodes of this partition whose intermediate
// values nothing else reads are absorbed.
#pragma once

#include <cmath>
#include <map>
#include <set>
#include <vector>

#include "backends/xnnpack/xnn_internal.h"
#include "backends/xnnpack/xnn_ops.h"

namespace kiln::xnn {

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
    produced_at_.assign(g.num_values(), -1);
    for (size_t i = 0; i < spec.nodes.size(); ++i) {
      const Node& n = g.node(spec.nodes[i]);
      position_[&n] = static_cast<int>(i);
      for (ValueId v : n.outputs) {
        if (v.valid()) produced_at_[v.v] = static_cast<int>(i);
      }
    }
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
      return ClipBounds(
          n, [this](ValueId v) { return Const(v); }, lo, hi);
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

  // Per-channel values of a constant that broadcasts along axis 1 of a rank-4 output of c
  // channels (a scalar counts); empty if it does not.
  std::vector<double> ChannelConst(ValueId v, int64_t c, bool vector = false) const {
    const Tensor* t = Const(v);
    if (t == nullptr) return {};
    if (vector) {  // BatchNormalization parameters: [c]
      if (t->rank() != 1 || t->size() != c) return {};
      std::vector<double> out(static_cast<size_t>(c));
      for (int64_t i = 0; i < c; ++i) out[static_cast<size_t>(i)] = t->GetAsDouble(i);
      return out;
    }
    std::vector<double> out(static_cast<size_t>(c));
    if (t->size() == 1) {
      for (double& x : out) x = t->GetAsDouble(0);
      return out;
    }
    const Shape s = t->shape();
    if (t->size() != c || s.size() > 4) return {};
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] != 1 && i + (4 - s.size()) != 1) return {};
    }
    for (int64_t i = 0; i < c; ++i) out[static_cast<size_t>(i)] = t->GetAsDouble(i);
    return out;
  }

  // Conv / ConvTranspose followed by BatchNormalization / Mul / Add / Sub by per-channel or
  // scalar constants: folded into f.channel_scale / f.channel_shift.
  void PlanChannelAffine(Fusion& f) {
    const auto& types = *spec_.types;
    if (!types[f.out.v].has_static_shape() || types[f.out.v].shape->size() != 4) return;
    const Shape ys = types[f.out.v].static_shape();
    const int64_t c = ys[1];
    std::vector<double> s(static_cast<size_t>(c), 1.0), t(static_cast<size_t>(c), 0.0);
    bool any = false;
    while (true) {
      const Node* e = SoleConsumer(f.out);
      if (e == nullptr || e->outputs.empty() || !types[e->outputs[0].v].has_static_shape() ||
          types[e->outputs[0].v].static_shape() != ys) {
        break;
      }
      if (e->op_type == "BatchNormalization") {
        if (e->inputs.size() < 5 || e->inputs[0] != f.out ||
            (e->outputs.size() > 1 && e->outputs[1].valid()) ||
            e->attrs.GetInt("training_mode", 0) != 0) {
          break;
        }
        const std::vector<double> g = ChannelConst(e->inputs[1], c, true),
                                  b = ChannelConst(e->inputs[2], c, true),
                                  m = ChannelConst(e->inputs[3], c, true),
                                  var = ChannelConst(e->inputs[4], c, true);
        if (g.empty() || b.empty() || m.empty() || var.empty()) break;
        const double eps = e->attrs.GetFloat("epsilon", 1e-5f);
        for (size_t i = 0; i < s.size(); ++i) {
          const double k = g[i] / std::sqrt(var[i] + eps);
          s[i] *= k;
          t[i] = (t[i] - m[i]) * k + b[i];
        }
      } else if (e->op_type == "Mul" || e->op_type == "Add" || e->op_type == "Sub") {
        if (e->inputs.size() != 2) break;
        const bool first = e->inputs[0] == f.out;
        const ValueId other = first ? e->inputs[1] : e->inputs[0];
        if (other == f.out || (e->op_type == "Sub" && !first)) break;
        const std::vector<double> k = ChannelConst(other, c);
        if (k.empty()) break;
        for (size_t i = 0; i < s.size(); ++i) {
          if (e->op_type == "Mul") {
            s[i] *= k[i];
            t[i] *= k[i];
          } else {
            t[i] += e->op_type == "Add" ? k[i] : -k[i];
          }
        }
      } else {
        break;
      }
      Absorb(f, e);
      any = true;
    }
    if (any) {
      f.channel_scale = std::move(s);
      f.channel_shift = std::move(t);
    }
  }

  // Conv (own fp32 kernel) [+ folded affine] followed by Add(y, r) with r computed before the
  // Conv in this partition's order (or a partition input) and of y's shape: f.residual = r.
  void PlanResidual(const Node& conv, Fusion& f) {
    const Node* add = SoleConsumer(f.out);
    if (add == nullptr || add->op_type != "Add" || add->inputs.size() != 2 ||
        add->outputs.size() != 1) {
      return;
    }
    const ValueId other = add->inputs[0] == f.out ? add->inputs[1] : add->inputs[0];
    if (!other.valid() || other == f.out || Const(other) != nullptr) return;
    const auto& types = *spec_.types;
    for (ValueId v : {other, add->outputs[0]}) {
      if (!types[v.v].has_static_shape() ||
          types[v.v].static_shape() != types[f.out.v].static_shape() ||
          types[v.v].type != types[f.out.v].type) {
        return;
      }
    }
    const int at = produced_at_[other.v];
    if (at >= 0 && at >= position_.at(&conv)) return;  // not computed yet at the Conv's step
    Absorb(f, add);
    f.residual = other;
  }

  // f.out read by exactly Sigmoid(f.out) and Mul(f.out, that Sigmoid) (either order), free and
  // in this partition: both absorbed, f.silu.
  bool PlanSilu(Fusion& f) {
    const Node* sig = nullptr;
    const Node* mul = nullptr;
    if (!FindSilu(f.out, &sig, &mul)) return false;
    Absorb(f, sig);
    Absorb(f, mul);
    f.silu = true;
    return true;
  }

  // f.out read only by a LeakyRelu of the same shape in this partition: absorbed, its alpha in
  // f.leaky_alpha.
  bool PlanLeaky(Fusion& f) {
    const Node* act = SoleConsumer(f.out);
    if (act == nullptr || act->op_type != "LeakyRelu" || act->inputs.size() != 1 ||
        act->outputs.size() != 1 || act->inputs[0] != f.out) {
      return false;
    }
    const auto& types = *spec_.types;
    const ValueId y = act->outputs[0];
    if (!types[y.v].has_static_shape() || !types[f.out.v].has_static_shape() ||
        types[y.v].static_shape() != types[f.out.v].static_shape()) {
      return false;
    }
    Absorb(f, act);
    f.leaky_alpha = act->attrs.GetFloat("alpha", 0.01f);
    return true;
  }

  // The Sigmoid and Mul of a SiLU of v (PlanSilu's pattern), without absorbing them.
  bool FindSilu(ValueId v, const Node** sig_out, const Node** mul_out) const {
    if (!v.valid() || uses_[v.v] != 2) return false;
    const Node* sig = nullptr;
    const Node* mul = nullptr;
    for (const Node* n : in_partition_) {
      for (ValueId in : n->inputs) {
        if (in != v) continue;
        if (n->op_type == "Sigmoid" && n->inputs.size() == 1 && n->outputs.size() == 1) sig = n;
        if (n->op_type == "Mul" && n->inputs.size() == 2 && n->outputs.size() == 1) mul = n;
      }
    }
    if (sig == nullptr || mul == nullptr || absorbed(sig) || absorbed(mul)) return false;
    if (SoleConsumer(sig->outputs[0]) != mul) return false;
    const ValueId other = mul->inputs[0] == v ? mul->inputs[1] : mul->inputs[0];
    if (other != sig->outputs[0]) return false;
    const auto& types = *spec_.types;
    if (!types[mul->outputs[0].v].has_static_shape() || !types[v.v].has_static_shape() ||
        types[mul->outputs[0].v].static_shape() != types[v.v].static_shape() ||
        types[mul->outputs[0].v].type != types[v.v].type) {
      return false;
    }
    *sig_out = sig;
    *mul_out = mul;
    return true;
  }

  // The activation after a conv (SiLU, else Relu / Clip with constant bounds) absorbed into f.
  void PlanConvActivation(Fusion& f) {
    if (!PlanSilu(f)) PlanBounds(f);
  }

  // A following Relu / Clip with constant bounds absorbed into f's output bounds.
  void PlanBounds(Fusion& f) {
    const Node* act = SoleConsumer(f.out);
    float lo, hi;
    if (act && act->inputs[0] == f.out && ActivationBounds(*act, &lo, &hi)) {
      Absorb(f, act);
      f.out_min = std::max(f.out_min, lo);
      f.out_max = std::min(f.out_max, hi);
    }
  }

  // The depthwise conv that reads v, through an optional SiLU / Relu / Clip (not absorbed), when
  // it has a fixed-size row loop and nothing else reads the values between.
  const Node* FixedDepthwiseAfter(ValueId v) const {
    const Node* sig = nullptr;
    const Node* mul = nullptr;
    ValueId cur = v;
    float lo, hi;
    if (FindSilu(v, &sig, &mul)) {
      cur = mul->outputs[0];
    } else if (const Node* act = SoleConsumer(v);
               act != nullptr && act->inputs[0] == v && ActivationBounds(*act, &lo, &hi)) {
      cur = act->outputs[0];
    }
    const Node* d = SoleConsumer(cur);
    if (d == nullptr || d->op_type != "Conv" || d->inputs.empty() || d->inputs[0] != cur ||
        d->outputs.size() != 1 || !ConvIsFixedDepthwise(spec_, *d)) {
      return nullptr;
    }
    return d;
  }

  // Expansion conv n (f after its affine) + activation + fixed depthwise conv + its affine and
  // activation: one step (Fusion::dw).
  bool PlanExpandDepthwise(const Node& n, Fusion& f) {
    if (!ConvIsExpansion(spec_, n) || FixedDepthwiseAfter(f.out) == nullptr) return false;
    PlanConvActivation(f);
    const Node* d = SoleConsumer(f.out);
    Absorb(f, d);
    Fusion g;
    g.out = d->outputs[0];
    PlanChannelAffine(g);
    PlanConvActivation(g);
    f.dw = d;
    f.dw_scale = std::move(g.channel_scale);
    f.dw_shift = std::move(g.channel_shift);
    f.dw_silu = g.silu;
    f.dw_min = g.out_min;
    f.dw_max = g.out_max;
    f.absorbed.insert(f.absorbed.end(), g.absorbed.begin(), g.absorbed.end());
    f.out = g.out;
    return true;
  }

  Fusion Plan(const Node& n, const OpDef& def) {
    Fusion f;
    f.out = n.outputs[0];
    if (n.op_type == "Conv" || n.op_type == "ConvTranspose") PlanChannelAffine(f);
    if (n.op_type == "Conv" && !def.int8 && PlanExpandDepthwise(n, f)) return f;
    if (n.op_type == "Conv" && !def.int8 && ConvRunsOwnKernel(spec_, n, true) && PlanSilu(f)) {
      return f;  // SiLU ends the group (a residual or clamp after it is not in the epilogue)
    }
    if (n.op_type == "Conv" && !def.int8 && ConvRunsOwnKernel(spec_, n) && PlanLeaky(f)) {
      return f;  // as SiLU
    }
    if (n.op_type == "Conv" && !def.int8 && ConvRunsOwnKernel(spec_, n)) PlanResidual(n, f);
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
    if (def.takes_activation) PlanBounds(f);
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

  // SiLU / Swish as exported (x * Sigmoid(x)), starting at the Sigmoid: x and the group.
  bool MatchSilu(const Node& n, ValueId* x, Fusion* f) {
    if (n.op_type != "Sigmoid" || n.inputs.size() != 1 || n.outputs.size() != 1) return false;
    const ValueId in = n.inputs[0];
    if (!in.valid() || uses_[in.v] < 2) return false;
    const Node* mul = SoleConsumer(n.outputs[0]);
    if (mul == nullptr || mul->op_type != "Mul" || mul->inputs.size() != 2) return false;
    const ValueId other = mul->inputs[0] == n.outputs[0] ? mul->inputs[1] : mul->inputs[0];
    if (other != in) return false;
    const auto& types = *spec_.types;
    if (!types[in.v].has_static_shape() || !types[mul->outputs[0].v].has_static_shape() ||
        types[in.v].static_shape() != types[mul->outputs[0].v].static_shape()) {
      return false;
    }
    *x = in;
    f->out = n.outputs[0];
    Absorb(*f, mul);
    return true;
  }

  // GELU as PyTorch exports it: Div(x, sqrt 2) (or Mul by 1/sqrt 2) -> Erf -> Add 1 -> Mul x ->
  // Mul 0.5 (the halving may come first, on x), starting at the Div: x and the group.
  bool MatchGeluErf(const Node& n, ValueId* x, Fusion* f) {
    float v;
    if (n.op_type != "Div" && n.op_type != "Mul") return false;
    if (n.inputs.size() != 2 || !n.inputs[0].valid()) return false;
    const ValueId in = n.inputs[0];
    if (n.op_type == "Div" ? !IsScalarConst(n.inputs[1], 1.4142135623730951f)
                           : !IsScalarConst(n.inputs[1], 0.7071067811865476f)) {
      return false;
    }
    const Node* erf = SoleConsumer(n.outputs[0]);
    if (erf == nullptr || erf->op_type != "Erf") return false;
    const Node* add = SoleConsumer(erf->outputs[0]);
    if (!ScalarWith(add, "Add", erf->outputs[0], &v) || v != 1.0f) return false;
    const Node* mul = SoleConsumer(add->outputs[0]);
    if (mul == nullptr || mul->op_type != "Mul" || mul->inputs.size() != 2) return false;
    const ValueId other = mul->inputs[0] == add->outputs[0] ? mul->inputs[1] : mul->inputs[0];
    if (other != in) return false;
    const Node* half = SoleConsumer(mul->outputs[0]);
    if (!ScalarWith(half, "Mul", mul->outputs[0], &v) || v != 0.5f) return false;
    const auto& types = *spec_.types;
    if (!types[in.v].has_static_shape() || !types[half->outputs[0].v].has_static_shape() ||
        types[in.v].static_shape() != types[half->outputs[0].v].static_shape()) {
      return false;
    }
    *x = in;
    f->out = n.outputs[0];
    Absorb(*f, erf);
    Absorb(*f, add);
    Absorb(*f, mul);
    Absorb(*f, half);
    return true;
  }

  // Channel shuffle (ShuffleNet): x [N, C, H, W] -> Reshape [N, g, C/g, H, W] -> Transpose
  // (0, 2, 1, 3, 4) -> Reshape [N, C, H, W], starting at the first Reshape: x and g.
  bool MatchChannelShuffle(const Node& n, ValueId* x, int64_t* groups, Fusion* f) {
    if (n.op_type != "Reshape" || n.inputs.empty() || n.outputs.size() != 1) return false;
    const auto& types = *spec_.types;
    const ValueId in = n.inputs[0];
    if (!in.valid() || !types[in.v].has_static_shape() ||
        !types[n.outputs[0].v].has_static_shape()) {
      return false;
    }
    const Shape xs = types[in.v].static_shape(), r1 = types[n.outputs[0].v].static_shape();
    if (xs.size() != 4 || r1.size() != 5 || r1[0] != xs[0] || r1[1] * r1[2] != xs[1] ||
        r1[3] != xs[2] || r1[4] != xs[3]) {
      return false;
    }
    const Node* tr = SoleConsumer(n.outputs[0]);
    if (tr == nullptr || tr->op_type != "Transpose" ||
        tr->attrs.GetInts("perm") != std::vector<int64_t>{0, 2, 1, 3, 4}) {
      return false;
    }
    const Node* r2 = SoleConsumer(tr->outputs[0]);
    if (r2 == nullptr || r2->op_type != "Reshape" || r2->inputs[0] != tr->outputs[0] ||
        !types[r2->outputs[0].v].has_static_shape() ||
        types[r2->outputs[0].v].static_shape() != xs) {
      return false;
    }
    *x = in;
    *groups = r1[1];
    f->out = n.outputs[0];
    Absorb(*f, tr);
    Absorb(*f, r2);
    return true;
  }

  // x + x * s with s [N, C, 1, 1] computed (a squeeze-excitation residual), starting at the Mul.
  bool MatchScaleResidual(const Node& n, ValueId* x, ValueId* scale, Fusion* f) {
    if (n.op_type != "Mul" || n.inputs.size() != 2) return false;
    const auto& types = *spec_.types;
    for (int k = 0; k < 2; ++k) {
      const ValueId a = n.inputs[static_cast<size_t>(k)], sv = n.inputs[static_cast<size_t>(1 - k)];
      if (!a.valid() || !sv.valid() || a == sv || Const(a) || Const(sv) ||
          !types[a.v].has_static_shape() || !types[sv.v].has_static_shape()) {
        continue;
      }
      const Shape xs = types[a.v].static_shape(), ss = types[sv.v].static_shape();
      if (xs.size() != 4 || ss.size() != 4 || ss[0] != xs[0] || ss[1] != xs[1] || ss[2] != 1 ||
          ss[3] != 1 || types[n.outputs[0].v].static_shape() != xs) {
        continue;
      }
      const Node* add = SoleConsumer(n.outputs[0]);
      if (!add || add->op_type != "Add" || add->inputs.size() != 2) continue;
      const ValueId other = add->inputs[0] == n.outputs[0] ? add->inputs[1] : add->inputs[0];
      if (other != a || !types[add->outputs[0].v].has_static_shape() ||
          types[add->outputs[0].v].static_shape() != xs) {
        continue;
      }
      *x = a;
      *scale = sv;
      f->out = n.outputs[0];
      Absorb(*f, add);
      return true;
    }
    return false;
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
    if (pow->op_type != "Pow" || pow->inputs[0] != d || !IsScalarConst(pow->inputs[1], 2))
      return false;
    if (div->op_type != "Div" || div->inputs[0] != d) return false;
    const Node* mean2 = SoleConsumer(pow->outputs[0]);
    if (!mean2 || !LastAxisMean(*mean2, rank)) return false;
    const Node* add = SoleConsumer(mean2->outputs[0]);
    if (!add || add->op_type != "Add" || add->inputs.size() != 2 ||
        add->inputs[0] != mean2->outputs[0]) {
      return false;
    }
    const Tensor* eps = Const(add->inputs[1]);
    if (eps == nullptr || eps->size() != 1) return false;
    const Node* sqrt = SoleConsumer(add->outputs[0]);
    if (!sqrt || sqrt->op_type != "Sqrt" || SoleConsumer(sqrt->outputs[0]) != div ||
        div->inputs[1] != sqrt->outputs[0]) {
      return false;
    }
    if (!types[div->outputs[0].v].has_static_shape() ||
        types[div->outputs[0].v].static_shape() != xs) {
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
      if (!types[e->outputs[0].v].has_static_shape() ||
          types[e->outputs[0].v].static_shape() != xs) {
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

  // Reads of v (graph and partition outputs count twice each).
  int uses(ValueId v) const { return v.valid() ? uses_[v.v] : 0; }

 private:
  const PartitionSpec& spec_;
  std::vector<int> uses_;
  std::set<const Node*> in_partition_;
  std::set<const Node*> absorbed_;
  std::map<const Node*, int> position_;  // index in spec_.nodes (execution order)
  std::vector<int> produced_at_;         // value -> position of its producer here, else -1
};

// An elementwise chain that is a function of one 8-bit value, starting at n, as one 256-entry
// table lookup (xnn_int8_chain.cc): true when built (*status says how), false if n starts none.
bool BuildInt8Chain(Builder& b, FusionPlanner& fp, const Node& n, Status* status);

}  // namespace kiln::xnn
