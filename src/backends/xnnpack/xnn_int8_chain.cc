// XNNPACK backend: fusion of elementwise chains that are a function of one 8-bit value into one
// 256-entry table. Starting at an int8 node whose only computed input is x (QAdd / QMul with a
// constant scalar, QLut, Clip / Relu on int8, DequantizeLinear), the chain grows over readers
// whose computed inputs are all x or chain values: QAdd / QMul (of chain values and constant
// scalars), QLut, Clip, DequantizeLinear, float Add / Sub / Mul / Div by constant scalars, float
// Relu / Clip, QuantizeLinear; it ends at one 8-bit value (every other chain value read only
// inside the chain). The table is the chain evaluated for each of x's 256 values with the
// reference kernels' arithmetic (quant_fused.cc, quant.cc; float ops in f32), so it is exact.
// The quantized HardSwish of PP-OCR (QAdd(x, 3) with Clip, QMul(x, .), DQ, Div 6, Q) becomes one
// lookup pass instead of five.
#include <algorithm>
#include <array>
#include <cmath>
#include <map>

#include "backends/xnnpack/xnn_fusion.h"
#include "backends/xnnpack/xnn_internal.h"
#include "backends/xnnpack/xnn_ops.h"

namespace kiln::xnn {

namespace {

// One chain value for each of x's 256 storage bytes: raw integers of an 8-bit type, or floats.
struct Sim {
  bool is_float = false;
  ElementType type = ElementType::kU8;
  std::array<double, 256> v{};
};

double Saturate(ElementType t, double q) {
  if (std::isnan(q)) return 0;
  return t == ElementType::kU8 ? std::clamp(q, 0.0, 255.0) : std::clamp(q, -128.0, 127.0);
}

class ChainSim {
 public:
  ChainSim(Builder& b, ValueId x) : b_(b) {
    Sim s;
    s.type = b.type(x);
    for (int u = 0; u < 256; ++u) {
      const int stored = static_cast<int8_t>(static_cast<uint8_t>(u));
      s.v[static_cast<size_t>(u)] = s.type == ElementType::kU8 ? stored + 128 : stored;
    }
    vals_[x.v] = s;
  }

  bool Has(ValueId v) const { return vals_.count(v.v) != 0; }
  const Sim& Get(ValueId v) const { return vals_.at(v.v); }

  // Evaluates node n if every computed input is a chain value; false if it cannot.
  bool Eval(const Node& n) {
    for (ValueId in : n.inputs) {
      if (in.valid() && !Has(in) && b_.constant(in) == nullptr) return false;
    }
    if (n.outputs.empty() || !n.outputs[0].valid()) return false;
    for (size_t i = 1; i < n.outputs.size(); ++i) {
      if (n.outputs[i].valid()) return false;
    }
    const ValueId y = n.outputs[0];
    const ElementType yt = b_.type(y);
    Sim out;
    out.type = yt;
    const std::string& op = n.op_type;
    if (op == "QAdd" || op == "QMul") {
      if (n.inputs.size() < 7 || !Is8Bit(yt)) return false;
      double a[256], c[256];
      if (!Ints(n.inputs[0], a) || !Ints(n.inputs[3], c)) return false;
      float sa, sb, sy;
      double za, zb, zy;
      if (!Affine(n, 1, 2, &sa, &za) || !Affine(n, 4, 5, &sb, &zb) || !Affine(n, 6, 7, &sy, &zy))
        return false;
      const bool mul = op == "QMul";
      for (size_t u = 0; u < 256; ++u) {
        const int64_t av = static_cast<int64_t>(a[u] - za), bv = static_cast<int64_t>(c[u] - zb);
        const double v = mul ? static_cast<double>(av * bv) * (static_cast<double>(sa) * sb)
                             : static_cast<double>(av) * sa + static_cast<double>(bv) * sb;
        out.v[u] = Saturate(yt, std::nearbyint(v / static_cast<double>(sy)) + zy);
      }
    } else if (op == "QLut") {
      const Tensor* t = n.inputs.size() > 1 ? b_.constant(n.inputs[1]) : nullptr;
      if (t == nullptr || t->size() != 256 || !Is8Bit(t->type()) || !Has(n.inputs[0])) return false;
      const Sim& x = Get(n.inputs[0]);
      if (x.is_float) return false;
      const double lowest = x.type == ElementType::kI8 ? -128 : 0;
      out.type = t->type();
      for (size_t u = 0; u < 256; ++u)
        out.v[u] = static_cast<double>(t->GetAsInt64(static_cast<int64_t>(x.v[u] - lowest)));
    } else if (op == "Relu" || op == "Clip") {
      if (!Has(n.inputs[0])) return false;
      const Sim& x = Get(n.inputs[0]);
      float lo = -INFINITY, hi = INFINITY;
      if (op == "Relu") {
        lo = 0;
      } else if (!ClipBounds(n, [&](ValueId v) { return b_.constant(v); }, &lo, &hi)) {
        return false;
      }
      out.is_float = x.is_float;
      out.type = x.type;
      for (size_t u = 0; u < 256; ++u) {
        if (x.is_float) {
          const float f = static_cast<float>(x.v[u]);
          out.v[u] = std::min(hi, std::max(lo, f));
        } else {
          out.v[u] = std::min<double>(hi, std::max<double>(lo, x.v[u]));
        }
      }
    } else if (op == "DequantizeLinear") {
      if (!Has(n.inputs[0]) || yt != ElementType::kF32) return false;
      const Sim& x = Get(n.inputs[0]);
      float s;
      double z;
      if (x.is_float || !Affine(n, 1, 2, &s, &z)) return false;
      out.is_float = true;
      for (size_t u = 0; u < 256; ++u) out.v[u] = static_cast<float>(x.v[u] - z) * s;
    } else if (op == "QuantizeLinear") {
      if (!Has(n.inputs[0]) || !Is8Bit(yt)) return false;
      const Sim& x = Get(n.inputs[0]);
      float s;
      double z;
      if (!x.is_float || !Affine(n, 1, 2, &s, &z)) return false;
      for (size_t u = 0; u < 256; ++u) {
        const float q = std::nearbyint(static_cast<float>(x.v[u]) / s) + static_cast<float>(z);
        out.v[u] = Saturate(yt, q);
      }
    } else if (op == "Add" || op == "Sub" || op == "Mul" || op == "Div") {
      if (n.inputs.size() != 2 || yt != ElementType::kF32) return false;
      float a[256], c[256];
      if (!Floats(n.inputs[0], a) || !Floats(n.inputs[1], c)) return false;
      out.is_float = true;
      for (size_t u = 0; u < 256; ++u) {
        float r;
        if (op == "Add") {
          r = a[u] + c[u];
        } else if (op == "Sub") {
          r = a[u] - c[u];
        } else if (op == "Mul") {
          r = a[u] * c[u];
        } else {
          r = a[u] / c[u];
        }
        out.v[u] = r;
      }
    } else {
      return false;
    }
    vals_[y.v] = out;
    return true;
  }

 private:
  // Raw integers of a chain value or a constant 8-bit scalar.
  bool Ints(ValueId v, double* out) const {
    if (Has(v)) {
      const Sim& s = Get(v);
      if (s.is_float) return false;
      std::copy(s.v.begin(), s.v.end(), out);
      return true;
    }
    const Tensor* c = b_.constant(v);
    if (c == nullptr || c->size() != 1 || !Is8Bit(c->type())) return false;
    std::fill(out, out + 256, static_cast<double>(c->GetAsInt64(0)));
    return true;
  }
  bool Floats(ValueId v, float* out) const {
    if (Has(v)) {
      const Sim& s = Get(v);
      if (!s.is_float) return false;
      for (size_t u = 0; u < 256; ++u) out[u] = static_cast<float>(s.v[u]);
      return true;
    }
    const Tensor* c = b_.constant(v);
    if (c == nullptr || c->size() != 1 || c->type() != ElementType::kF32) return false;
    std::fill(out, out + 256, static_cast<float>(c->GetAsDouble(0)));
    return true;
  }
  // Per-tensor scale (input si) and zero point (input zi, optional).
  bool Affine(const Node& n, size_t si, size_t zi, float* s, double* z) const {
    const Tensor* st = si < n.inputs.size() ? b_.constant(n.inputs[si]) : nullptr;
    if (st == nullptr || st->size() != 1 || !IsFloating(st->type())) return false;
    *s = static_cast<float>(st->GetAsDouble(0));
    if (!(*s > 0) || !std::isfinite(*s)) return false;
    *z = 0;
    if (zi < n.inputs.size() && n.inputs[zi].valid()) {
      const Tensor* zt = b_.constant(n.inputs[zi]);
      if (zt == nullptr || zt->size() != 1) return false;
      *z = static_cast<double>(zt->GetAsInt64(0));
    }
    return true;
  }

  Builder& b_;
  std::map<uint32_t, Sim> vals_;
};

}  // namespace

bool BuildInt8Chain(Builder& b, FusionPlanner& fp, const Node& n, Status* status) {
  static const char* kStarts[] = {"QAdd", "QMul", "QLut", "Clip", "Relu", "DequantizeLinear"};
  if (std::none_of(std::begin(kStarts), std::end(kStarts),
                   [&](const char* s) { return n.op_type == s; })) {
    return false;
  }
  // x: the one computed input.
  ValueId x;
  for (ValueId in : n.inputs) {
    if (!in.valid() || b.constant(in) != nullptr) continue;
    if (x.valid() && in != x) return false;
    x = in;
  }
  if (!x.valid() || !Is8Bit(b.type(x))) return false;
  const Shape xs = b.shape(x);
  ChainSim sim(b, x);
  if (!sim.Eval(n) || b.shape(n.outputs[0]) != xs) return false;
  std::vector<const Node*> chain = {&n};
  std::vector<ValueId> produced = {n.outputs[0]};
  size_t best = 0;  // chain length of the last closed prefix
  ValueId best_out;
  auto closed = [&](ValueId* out) {
    int open = 0;
    for (ValueId v : produced) {
      int inside = 0;
      for (const Node* c : chain) {
        for (ValueId in : c->inputs) inside += in == v ? 1 : 0;
      }
      if (inside != fp.uses(v)) {
        ++open;
        *out = v;
      }
    }
    return open == 1 && !sim.Get(*out).is_float && Is8Bit(b.type(*out));
  };
  ValueId out;
  if (closed(&out)) {
    best = 1;
    best_out = out;
  }
  for (bool grew = true; grew && chain.size() < 16;) {
    grew = false;
    for (size_t i = 0; i < produced.size() && !grew; ++i) {
      for (const Node* c : fp.Consumers(produced[i])) {
        if (std::find(chain.begin(), chain.end(), c) != chain.end()) continue;
        if (c->outputs.empty() || !c->outputs[0].valid() || b.shape(c->outputs[0]) != xs) continue;
        if (!sim.Eval(*c)) continue;
        chain.push_back(c);
        produced.push_back(c->outputs[0]);
        grew = true;
        break;
      }
    }
    if (grew && closed(&out)) {
      best = chain.size();
      best_out = out;
    }
  }
  if (best == 0) return false;
  const Sim& r = sim.Get(best_out);
  std::array<uint8_t, 256> table{};
  for (size_t u = 0; u < 256; ++u) {
    const auto raw = static_cast<int64_t>(r.v[u]);
    table[u] = static_cast<uint8_t>(r.type == ElementType::kU8 ? raw - 128 : raw);
  }
  Fusion f;
  for (size_t i = 1; i < best; ++i) fp.Absorb(f, chain[i]);
  AddTableLoop(b, x, best_out, table);
  *status = Status::Ok();
  return true;
}

}  // namespace kiln::xnn
