// Tests of the reference RNN, GRU and LSTM kernels: single steps against the formulas evaluated
// by hand, and multi-step properties (bidirectional = forward + reverse, sequence_lens, layout).
#include <gtest/gtest.h>

#include <cmath>

#include "backends/ref/eager.h"
#include "ir/op_schema.h"

namespace kiln {
namespace {

Tensor F32(std::vector<float> v, Shape s) { return Tensor::FromVector(v, std::move(s)); }

double Sig(double x) { return 1 / (1 + std::exp(-x)); }

// Deterministic pseudo-random values in [-1, 1).
std::vector<float> Ramp(size_t n, int seed) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i)
    v[i] = static_cast<float>(((i * 37 + seed * 11) % 23) / 11.5 - 1.0);
  return v;
}

TEST(RefRnn, TwoStepsMatchFormula) {
  Attributes attrs;
  attrs.Add(Attribute::Int("hidden_size", 1));
  auto r = RunOpEager("RNN", 14,
                      {F32({1, 2}, {2, 1, 1}), F32({0.5f}, {1, 1, 1}), F32({0.25f}, {1, 1, 1})}, 2,
                      attrs);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const double h1 = std::tanh(0.5);
  const double h2 = std::tanh(1.0 + 0.25 * h1);
  EXPECT_EQ((*r)[0].shape(), (Shape{2, 1, 1, 1}));
  EXPECT_NEAR((*r)[0].GetAsDouble(0), h1, 1e-6);
  EXPECT_NEAR((*r)[0].GetAsDouble(1), h2, 1e-6);
  EXPECT_NEAR((*r)[1].GetAsDouble(0), h2, 1e-6);
}

TEST(RefRnn, CustomActivation) {
  Attributes attrs;
  attrs.Add(Attribute::Int("hidden_size", 1));
  attrs.Add(Attribute::Strings("activations", {"Relu"}));
  auto r = RunOpEager(
      "RNN", 14, {F32({-1, 2}, {2, 1, 1}), F32({1}, {1, 1, 1}), F32({0.5f}, {1, 1, 1})}, 2, attrs);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)[0].GetAsDouble(0), 0.0);
  EXPECT_EQ((*r)[0].GetAsDouble(1), 2.0);
}

TEST(RefLstm, OneStepWithPeepholesAndBiasMatchesFormula) {
  Attributes attrs;
  attrs.Add(Attribute::Int("hidden_size", 1));
  const Tensor x = F32({2}, {1, 1, 1});
  const Tensor w = F32({0.1f, 0.2f, 0.3f, 0.4f}, {1, 4, 1});  // gates i, o, f, c
  const Tensor r = F32({0.5f, 0.6f, 0.7f, 0.8f}, {1, 4, 1});
  const Tensor b = F32({0.01f, 0.02f, 0.03f, 0.04f, 0, 0, 0, 0}, {1, 8});
  const Tensor h0 = F32({0.5f}, {1, 1, 1});
  const Tensor c0 = F32({0.25f}, {1, 1, 1});
  const Tensor p = F32({0.1f, 0.2f, 0.3f}, {1, 3});  // i, o, f
  auto out = RunOpEager("LSTM", 14, {x, w, r, b, Tensor(), h0, c0, p}, 3, attrs);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  const double i = Sig(0.1 * 2 + 0.5 * 0.5 + 0.01 + 0.1 * 0.25);
  const double f = Sig(0.3 * 2 + 0.7 * 0.5 + 0.03 + 0.3 * 0.25);
  const double cc = std::tanh(0.4 * 2 + 0.8 * 0.5 + 0.04);
  const double c = f * 0.25 + i * cc;
  const double o = Sig(0.2 * 2 + 0.6 * 0.5 + 0.02 + 0.2 * c);
  const double h = o * std::tanh(c);
  EXPECT_NEAR((*out)[0].GetAsDouble(0), h, 1e-6);
  EXPECT_NEAR((*out)[1].GetAsDouble(0), h, 1e-6);
  EXPECT_NEAR((*out)[2].GetAsDouble(0), c, 1e-6);
}

TEST(RefGru, OneStepBothResetVariantsMatchFormula) {
  const Tensor x = F32({1}, {1, 1, 1});
  const Tensor w = F32({0.1f, 0.2f, 0.3f}, {1, 3, 1});  // gates z, r, h
  const Tensor r = F32({0.4f, 0.5f, 0.6f}, {1, 3, 1});
  const Tensor b = F32({0.01f, 0.02f, 0.03f, 0.04f, 0.05f, 0.06f}, {1, 6});
  const Tensor h0 = F32({0.5f}, {1, 1, 1});
  const double z = Sig(0.1 + 0.4 * 0.5 + 0.01 + 0.04);
  const double rg = Sig(0.2 + 0.5 * 0.5 + 0.02 + 0.05);
  for (int lbr : {0, 1}) {
    Attributes attrs;
    attrs.Add(Attribute::Int("hidden_size", 1));
    attrs.Add(Attribute::Int("linear_before_reset", lbr));
    auto out = RunOpEager("GRU", 14, {x, w, r, b, Tensor(), h0}, 2, attrs);
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    const double hh = lbr ? std::tanh(0.3 + rg * (0.6 * 0.5 + 0.06) + 0.03)
                          : std::tanh(0.3 + 0.6 * (rg * 0.5) + 0.06 + 0.03);
    const double h = (1 - z) * hh + z * 0.5;
    EXPECT_NEAR((*out)[1].GetAsDouble(0), h, 1e-6) << "linear_before_reset=" << lbr;
  }
}

// Runs op over X [seq=3, batch=2, input=3] with hidden 2 and the given direction.
Result<std::vector<Tensor>> RunSmall(const std::string& op, const std::string& direction,
                                     const Tensor& w, const Tensor& r,
                                     const Tensor& lens = Tensor()) {
  Attributes attrs;
  attrs.Add(Attribute::Int("hidden_size", 2));
  attrs.Add(Attribute::String("direction", direction));
  const Tensor x = F32(Ramp(18, 1), {3, 2, 3});
  return RunOpEager(op, 14, {x, w, r, Tensor(), lens}, 2, attrs);
}

TEST(RefRecurrent, BidirectionalEqualsForwardAndReverse) {
  for (const std::string op : {"RNN", "GRU", "LSTM"}) {
    const int64_t g = op == "RNN" ? 1 : op == "GRU" ? 3 : 4;
    const auto wf = Ramp(static_cast<size_t>(g * 2 * 3), 2),
               wr = Ramp(static_cast<size_t>(g * 2 * 3), 3);
    const auto rf = Ramp(static_cast<size_t>(g * 2 * 2), 4),
               rr = Ramp(static_cast<size_t>(g * 2 * 2), 5);
    std::vector<float> wb = wf, rb = rf;
    wb.insert(wb.end(), wr.begin(), wr.end());
    rb.insert(rb.end(), rr.begin(), rr.end());
    auto fwd = RunSmall(op, "forward", F32(wf, {1, g * 2, 3}), F32(rf, {1, g * 2, 2}));
    auto rev = RunSmall(op, "reverse", F32(wr, {1, g * 2, 3}), F32(rr, {1, g * 2, 2}));
    auto bi = RunSmall(op, "bidirectional", F32(wb, {2, g * 2, 3}), F32(rb, {2, g * 2, 2}));
    ASSERT_TRUE(fwd.ok() && rev.ok() && bi.ok()) << op;
    // Y [3, 2, 2, 2]: direction d of step t is at (t * 2 + d) * 4.
    for (int64_t t = 0; t < 3; ++t) {
      for (int64_t k = 0; k < 4; ++k) {
        EXPECT_FLOAT_EQ((*bi)[0].data<float>()[(t * 2 + 0) * 4 + k],
                        (*fwd)[0].data<float>()[t * 4 + k])
            << op;
        EXPECT_FLOAT_EQ((*bi)[0].data<float>()[(t * 2 + 1) * 4 + k],
                        (*rev)[0].data<float>()[t * 4 + k])
            << op;
      }
    }
    for (int64_t k = 0; k < 4; ++k) {
      EXPECT_FLOAT_EQ((*bi)[1].data<float>()[k], (*fwd)[1].data<float>()[k]) << op;
      EXPECT_FLOAT_EQ((*bi)[1].data<float>()[4 + k], (*rev)[1].data<float>()[k]) << op;
    }
  }
}

TEST(RefRecurrent, SequenceLensZeroPadAndStopEarly) {
  const Tensor w = F32(Ramp(24, 2), {1, 8, 3});
  const Tensor r = F32(Ramp(16, 4), {1, 8, 2});
  const Tensor lens = Tensor::FromVector<int32_t>({3, 1}, {2});
  for (const std::string dir : {"forward", "reverse"}) {
    auto out = RunSmall("LSTM", dir, w, r, lens);
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    const float* y = (*out)[0].data<float>();   // [3, 1, 2, 2]
    const float* yh = (*out)[1].data<float>();  // [1, 2, 2]
    // Batch row 1 has length 1: steps 1 and 2 are zero, and Y_h is its only step.
    for (int64_t t = 1; t < 3; ++t) {
      EXPECT_EQ(y[t * 4 + 2], 0.0f);
      EXPECT_EQ(y[t * 4 + 3], 0.0f);
    }
    EXPECT_FLOAT_EQ(yh[2], y[2]);
    EXPECT_FLOAT_EQ(yh[3], y[3]);
    // Row 0 runs its full length: forward ends at step 2, reverse at step 0.
    const int64_t last = dir == "forward" ? 2 : 0;
    EXPECT_FLOAT_EQ(yh[0], y[last * 4 + 0]);
    EXPECT_NE(y[1 * 4 + 0], 0.0f);
  }
}

TEST(RefRecurrent, BatchMajorLayoutTransposes) {
  const Tensor w = F32(Ramp(18, 2), {1, 6, 3});
  const Tensor r = F32(Ramp(12, 4), {1, 6, 2});
  const auto xs = Ramp(18, 1);  // [seq 3, batch 2, input 3]
  std::vector<float> xb(18);    // [batch 2, seq 3, input 3]
  for (int t = 0; t < 3; ++t) {
    for (int b = 0; b < 2; ++b) {
      for (int i = 0; i < 3; ++i) xb[(b * 3 + t) * 3 + i] = xs[(t * 2 + b) * 3 + i];
    }
  }
  Attributes a0, a1;
  a0.Add(Attribute::Int("hidden_size", 2));
  a1.Add(Attribute::Int("hidden_size", 2));
  a1.Add(Attribute::Int("layout", 1));
  auto s = RunOpEager("GRU", 14, {F32(xs, {3, 2, 3}), w, r}, 2, a0);
  auto b = RunOpEager("GRU", 14, {F32(xb, {2, 3, 3}), w, r}, 2, a1);
  ASSERT_TRUE(s.ok() && b.ok());
  EXPECT_EQ((*b)[0].shape(), (Shape{2, 3, 1, 2}));
  EXPECT_EQ((*b)[1].shape(), (Shape{2, 1, 2}));
  for (int t = 0; t < 3; ++t) {
    for (int bi = 0; bi < 2; ++bi) {
      for (int k = 0; k < 2; ++k) {
        EXPECT_FLOAT_EQ((*b)[0].data<float>()[(bi * 3 + t) * 2 + k],
                        (*s)[0].data<float>()[(t * 2 + bi) * 2 + k]);
      }
    }
  }
}

TEST(RefRecurrent, RejectsMismatchedShapes) {
  Attributes attrs;
  attrs.Add(Attribute::Int("hidden_size", 2));
  EXPECT_FALSE(RunOpEager("LSTM", 14,
                          {F32(Ramp(6, 1), {1, 2, 3}), F32(Ramp(24, 1), {1, 8, 3}),
                           F32(Ramp(8, 1), {1, 4, 2})},
                          2, attrs)
                   .ok());
  const Tensor lens = Tensor::FromVector<int32_t>({5, 1}, {2});
  EXPECT_FALSE(
      RunSmall("RNN", "forward", F32(Ramp(6, 1), {1, 2, 3}), F32(Ramp(4, 1), {1, 2, 2}), lens)
          .ok());
}

TEST(RecurrentInference, ShapesFollowLayoutAndDirection) {
  Node n;
  n.op_type = "LSTM";
  n.opset = 14;
  n.attrs.Add(Attribute::Int("hidden_size", 5));
  n.attrs.Add(Attribute::String("direction", "bidirectional"));
  n.outputs.resize(3);
  InferContext ctx(n,
                   {TypeInfo{ElementType::kF32, DimVector{7, Dim::Symbol("B"), 3}},
                    TypeInfo{ElementType::kF32, DimVector{2, 20, 3}},
                    TypeInfo{ElementType::kF32, DimVector{2, 20, 5}}},
                   {nullptr, nullptr, nullptr});
  {
    Status st = InferNode(ctx);
    ASSERT_TRUE(st.ok()) << st.ToString();
  }
  EXPECT_EQ(ctx.outputs()[0].ToString(),
            TypeInfo({ElementType::kF32, DimVector{7, 2, Dim::Symbol("B"), 5}}).ToString());
  EXPECT_EQ(ctx.outputs()[2].ToString(),
            TypeInfo({ElementType::kF32, DimVector{2, Dim::Symbol("B"), 5}}).ToString());
}

}  // namespace
}  // namespace kiln
