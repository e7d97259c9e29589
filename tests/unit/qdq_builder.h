// Test helpers for QDQ models (tests/unit/qdq_test.cc, xnnpack_int8_test.cc,
// xnnpack_qconv_u7_test.cc): a builder of QuantizeLinear/DequantizeLinear graphs with random int8
// weights, int32 biases and Q->DQ'd outputs, plus small attribute, input and session helpers.
#pragma once

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "ir/graph.h"
#include "runtime/session.h"

namespace kiln::testing {

struct QdqBuilder {
  Model model;
  int counter = 0;
  std::mt19937 rng;
  explicit QdqBuilder(uint32_t seed, int opset = 13) : rng(seed) {
    model.opsets[""] = opset;
    model.ir_version = 8;
    model.graph.name = "qdq";
  }
  Graph& g() { return model.graph; }
  std::string Name(const std::string& base) { return base + std::to_string(counter++); }

  ValueId Input(const std::string& name, Shape s) {
    ValueId v = g().AddValue(name, ElementType::kF32, DimVector(s.begin(), s.end()));
    g().MarkInput(v);
    return v;
  }
  ValueId Init(const std::string& base, Tensor t) { return g().AddInitializer(Name(base), t); }
  ValueId Scale(float s) { return Init("scale", Tensor::FromVector(std::vector<float>{s}, {})); }
  ValueId Scales(const std::vector<float>& s) {
    return Init("scales", Tensor::FromVector(s, {static_cast<int64_t>(s.size())}));
  }
  ValueId Zp(ElementType t, int64_t z, int64_t n = 0) {
    Tensor v = Tensor::Allocate(t, n == 0 ? Shape{} : Shape{n}).value();
    for (int64_t i = 0; i < std::max<int64_t>(n, 1); ++i) {
      if (t == ElementType::kI8) v.data<int8_t>()[i] = static_cast<int8_t>(z);
      if (t == ElementType::kU8) v.data<uint8_t>()[i] = static_cast<uint8_t>(z);
      if (t == ElementType::kI32) v.data<int32_t>()[i] = static_cast<int32_t>(z);
    }
    return Init("zp", v);
  }
  ValueId Op(const std::string& op, std::vector<ValueId> in, Attributes attrs = {}) {
    const std::string name = Name(op);
    ValueId out = g().AddValue(name + "_out");
    g().AddNode(name, op, std::move(in), {out}, std::move(attrs), "", model.opsets[""]);
    return out;
  }
  // Q then DQ of a float value (an activation), per tensor.
  ValueId QuantAct(ValueId x, float scale, int64_t zp, ElementType t) {
    ValueId s = Scale(scale), z = Zp(t, zp);
    return Op("DequantizeLinear", {Op("QuantizeLinear", {x, s, z}), s, z});
  }
  // A random int8 weight [shape] with DQ (per channel along `axis` when per_channel, else per
  // tensor), symmetric; returns the DQ output and stores the scales.
  std::vector<float> last_scales;
  ValueId Weight(Shape shape, bool per_channel, int axis = 0) {
    std::uniform_real_distribution<float> u(-0.5f, 0.5f);
    Tensor w = Tensor::Allocate(ElementType::kI8, shape).value();
    const int64_t channels = per_channel ? shape[static_cast<size_t>(axis)] : 1;
    int64_t inner = 1;
    for (size_t i = static_cast<size_t>(axis) + 1; i < shape.size(); ++i) inner *= shape[i];
    std::vector<float> f(static_cast<size_t>(w.size()));
    for (float& v : f) v = u(rng);
    std::vector<float> maxabs(static_cast<size_t>(channels), 1e-6f);
    for (int64_t i = 0; i < w.size(); ++i) {
      const int64_t c = per_channel ? (i / inner) % channels : 0;
      maxabs[c] = std::max(maxabs[c], std::fabs(f[i]));
    }
    last_scales.clear();
    for (float m : maxabs) last_scales.push_back(m / 127.0f);
    for (int64_t i = 0; i < w.size(); ++i) {
      const int64_t c = per_channel ? (i / inner) % channels : 0;
      w.data<int8_t>()[i] = static_cast<int8_t>(std::nearbyint(f[i] / last_scales[c]));
    }
    ValueId wq = Init("w", w);
    ValueId s = per_channel ? Scales(last_scales) : Scale(last_scales[0]);
    ValueId z = Zp(ElementType::kI8, 0, per_channel ? channels : 0);
    Attributes a;
    if (per_channel) a.Add(Attribute::Int("axis", axis));
    return Op("DequantizeLinear", {wq, s, z}, std::move(a));
  }
  // An int32 bias of `count` values with scale x_scale * w_scale (per channel when several).
  ValueId Bias(int64_t count, float x_scale, const std::vector<float>& w_scales) {
    std::uniform_real_distribution<float> u(-0.3f, 0.3f);
    Tensor b = Tensor::Allocate(ElementType::kI32, {count}).value();
    std::vector<float> s;
    for (int64_t m = 0; m < count; ++m) {
      s.push_back(x_scale * w_scales[w_scales.size() == 1 ? 0 : m]);
      b.data<int32_t>()[m] = static_cast<int32_t>(std::nearbyint(u(rng) / s.back()));
    }
    Attributes a;
    a.Add(Attribute::Int("axis", 0));
    return Op("DequantizeLinear", {Init("b", b), Scales(s), Zp(ElementType::kI32, 0, count)},
              std::move(a));
  }
  // Q -> DQ -> graph output named `name`.
  void Output(ValueId y, float scale, int64_t zp, ElementType t, const std::string& name) {
    ValueId s = Scale(scale), z = Zp(t, zp);
    ValueId q = Op("QuantizeLinear", {y, s, z});
    ValueId out = g().AddValue(name);
    g().AddNode(Name("dq_out"), "DequantizeLinear", {q, s, z}, {out}, {}, "", model.opsets[""]);
    g().MarkOutput(out);
    output_scales.push_back(scale);
  }
  std::vector<float> output_scales;
};

inline Attributes Ints(std::initializer_list<std::pair<const char*, std::vector<int64_t>>> l) {
  Attributes a;
  for (const auto& [k, v] : l) a.Add(Attribute::Ints(k, v));
  return a;
}

inline Tensor Uniform(Shape shape, float lo, float hi, uint32_t seed) {
  Tensor t = Tensor::Allocate(ElementType::kF32, shape).value();
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  for (int64_t i = 0; i < t.size(); ++i) t.data<float>()[i] = u(rng);
  return t;
}

// A session with options `o` on `m`, run once; failures are test failures (empty result).
inline std::vector<Tensor> RunSession(Model m, const NamedTensors& inputs, SessionOptions o) {
  auto s = Session::Create(std::move(m), std::move(o));
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  if (!s.ok()) return {};
  auto out = (*s)->Run(inputs);
  EXPECT_TRUE(out.ok()) << out.status().ToString();
  return out.ok() ? std::move(out).value() : std::vector<Tensor>();
}

}  // namespace kiln::testing
