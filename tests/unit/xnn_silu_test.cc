// SiLU as PyTorch exports it (x * Sigmoid(x)) runs as one own loop in XNNPACK partitions
// (xnn_ops_elementwise.cc, BuildSilu) on every ISA path; each element must match the reference
// kernels (Sigmoid then Mul) closely, from the saturated tails to zero.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "core/cpu_features.h"
#include "qdq_builder.h"
#include "runtime/session.h"

namespace kiln {
namespace {

constexpr ElementType kF32 = ElementType::kF32;

// x [1, 5, 11, 13] (715 elements: tails after 16- and 8-wide vectors) -> Conv 1x1 -> SiLU,
// and x -> SiLU directly (Mul operands in the other order).
Model SiluModel() {
  Model m;
  m.opsets[""] = 17;
  m.ir_version = 8;
  Graph& g = m.graph;
  ValueId x = g.AddValue("x", kF32, DimVector{1, 5, 11, 13});
  g.MarkInput(x);
  std::mt19937 gen(3);
  std::uniform_real_distribution<float> u(-1, 1);
  Tensor w = Tensor::Allocate(kF32, {5, 5, 1, 1}).value();
  for (int64_t i = 0; i < w.size(); ++i) w.data<float>()[i] = 4 * u(gen);
  ValueId wv = g.AddInitializer("w", std::move(w));
  ValueId c = g.AddValue("c"), s1 = g.AddValue("s1"), y1 = g.AddValue("y1");
  ValueId s2 = g.AddValue("s2"), y2 = g.AddValue("y2");
  g.AddNode("conv", "Conv", {x, wv}, {c}, {}, "", 17);
  g.AddNode("sig1", "Sigmoid", {c}, {s1}, {}, "", 17);
  g.AddNode("mul1", "Mul", {c, s1}, {y1}, {}, "", 17);
  g.AddNode("sig2", "Sigmoid", {x}, {s2}, {}, "", 17);
  g.AddNode("mul2", "Mul", {s2, x}, {y2}, {}, "", 17);
  g.MarkOutput(y1);
  g.MarkOutput(y2);
  return m;
}

TEST(XnnSilu, EveryIsaMatchesReference) {
  Tensor x = Tensor::Allocate(kF32, {1, 5, 11, 13}).value();
  std::mt19937 gen(11);
  std::uniform_real_distribution<float> u(-12, 12);
  float* xd = x.data<float>();
  for (int64_t i = 0; i < x.size(); ++i) xd[i] = u(gen);
  // Saturated and special values: exp(-|x|) underflows below -87, sigmoid(0) = 0.5.
  const float special[] = {0.0f, -0.0f, 1e-8f, -1e-8f, 30.0f, -30.0f, 87.0f, -87.0f, 88.5f,
                           -88.5f, 100.0f, -100.0f, 1e6f, -1e6f, 0.6931472f, -0.6931472f};
  for (size_t i = 0; i < sizeof(special) / sizeof(special[0]); ++i) xd[i * 7] = special[i];
  const NamedTensors in = {{"x", x}};
  auto ref = Session::Create(SiluModel(), SessionOptions::Reference());
  ASSERT_TRUE(ref.ok()) << ref.status().ToString();
  auto want = (*ref)->Run(in);
  ASSERT_TRUE(want.ok()) << want.status().ToString();
  for (CpuIsa isa : {CpuIsa::kPortable, CpuIsa::kAvx2, CpuIsa::kAvx512}) {
    for (int threads : {1, 2}) {
      SessionOptions o = SessionOptions::Threads(threads);
      o.isa = isa;
      o.op_backend["Sigmoid"] = "xnnpack";
      o.op_backend["Mul"] = "xnnpack";
      o.profile = true;
      auto s = Session::Create(SiluModel(), o);
      ASSERT_TRUE(s.ok()) << s.status().ToString();
      auto plan = (*s)->Plan(in);
      ASSERT_TRUE(plan.ok()) << plan.status().ToString();
      EXPECT_EQ((*plan)->partitioning.partitions.size(), 1u);
      auto got = (*s)->Run(in);
      ASSERT_TRUE(got.ok()) << got.status().ToString();
      // Each Sigmoid is one own-loop step that also did its Mul.
      int sigmoid_loops = 0, muls = 0;
      for (const ProfileRow& row : (*s)->Profile()) {
        sigmoid_loops += row.op_type == "Sigmoid" && row.what.rfind("own loop", 0) == 0;
        muls += row.op_type == "Mul";
      }
      EXPECT_EQ(sigmoid_loops, 2);
      EXPECT_EQ(muls, 0);
      for (size_t o_i = 0; o_i < 2; ++o_i) {
        const float* g = (*got)[o_i].data<float>();
        const float* r = (*want)[o_i].data<float>();
        int bad = 0;
        for (int64_t i = 0; i < (*want)[o_i].size(); ++i) {
          // Output 1 is SiLU of the input itself: the loop's own error only. Output 0 follows a
          // convolution whose kernels sum in another order than the reference's.
          const double scale = std::max(1.0, std::fabs(static_cast<double>(r[i])));
          const double tol = o_i == 1 ? 4e-7 * scale : 1e-5 * scale;
          if (!(std::fabs(static_cast<double>(g[i]) - r[i]) <= tol) && bad++ < 5) {
            ADD_FAILURE() << CpuIsaName(isa) << " threads " << threads << " output " << o_i
                          << " element " << i << ": got " << g[i] << ", reference " << r[i];
          }
        }
      }
    }
  }
}

// The largest |got - want| / max(1, |want|) over the elements (float tensors of one shape).
double WorstScaledError(const Tensor& got, const Tensor& want) {
  const float* g = got.data<float>();
  const float* r = want.data<float>();
  double worst = 0;
  for (int64_t i = 0; i < want.size(); ++i) {
    const double scale = std::max(1.0, std::fabs(static_cast<double>(r[i])));
    worst = std::max(worst, std::fabs(static_cast<double>(g[i]) - r[i]) / scale);
  }
  return worst;
}

// Conv [+ BatchNormalization] + SiLU fused into the own kernels' epilogues (efficientnet's
// blocks): a 3x3 conv that runs Winograd (64 -> 64 channels, 14x14), a dense 1x1 (96 -> 80: a
// narrow last panel), a 3x3 depthwise stride 2 and a 5x5 depthwise (the own fixed-size rows);
// every ISA level, 1 and 2 threads, against the reference kernels; no Sigmoid or Mul step is left
// where the own kernels run.
Model ConvSiluModel() {
  Model m;
  m.opsets[""] = 17;
  m.ir_version = 8;
  Graph& g = m.graph;
  std::mt19937 gen(5);
  std::uniform_real_distribution<float> u(-1, 1);
  auto init = [&](const char* name, std::vector<int64_t> shape, float scale, float shift) {
    Tensor t = Tensor::Allocate(kF32, Shape(shape.begin(), shape.end())).value();
    for (int64_t i = 0; i < t.size(); ++i) t.data<float>()[i] = shift + scale * u(gen);
    return g.AddInitializer(name, std::move(t));
  };
  ValueId x = g.AddValue("x", kF32, DimVector{1, 64, 14, 14});
  g.MarkInput(x);
  int step = 0;
  auto silu = [&](ValueId in) {
    const std::string k = std::to_string(step++);
    ValueId sg = g.AddValue("sg" + k), y = g.AddValue("silu" + k);
    g.AddNode("sig" + k, "Sigmoid", {in}, {sg}, {}, "", 17);
    g.AddNode("mul" + k, "Mul", step % 2 ? std::vector<ValueId>{in, sg} : std::vector<ValueId>{sg, in},
              {y}, {}, "", 17);
    return y;
  };
  auto conv = [&](ValueId in, int64_t cin, int64_t cout, int64_t k, int64_t stride, int64_t group,
                  bool bn) {
    const std::string n = std::to_string(step);
    ValueId w = init(("w" + n).c_str(), {cout, cin / group, k, k}, 0.25f, 0.0f);
    ValueId b = init(("b" + n).c_str(), {cout}, 0.5f, 0.0f);
    ValueId y = g.AddValue("c" + n);
    Attributes a;
    a.Add(Attribute::Ints("pads", {k / 2, k / 2, k / 2, k / 2}));
    a.Add(Attribute::Ints("strides", {stride, stride}));
    a.Add(Attribute::Int("group", group));
    g.AddNode("conv" + n, "Conv", {in, w, b}, {y}, std::move(a), "", 17);
    if (!bn) return y;
    ValueId z = g.AddValue("bn" + n);
    g.AddNode("bnn" + n, "BatchNormalization",
              {y, init(("g" + n).c_str(), {cout}, 0.3f, 1.0f), init(("be" + n).c_str(), {cout}, 0.3f, 0.0f),
               init(("m" + n).c_str(), {cout}, 0.3f, 0.0f), init(("v" + n).c_str(), {cout}, 0.2f, 1.0f)},
              {z}, {}, "", 17);
    return z;
  };
  ValueId h = silu(conv(x, 64, 64, 3, 1, 1, true));  // Winograd
  h = silu(conv(h, 64, 96, 1, 1, 1, false));          // dense 1x1, K = 64
  h = silu(conv(h, 96, 80, 1, 1, 1, true));           // 80 channels: a narrow last panel
  h = silu(conv(h, 80, 80, 3, 2, 80, true));          // depthwise 3x3 stride 2
  h = silu(conv(h, 80, 80, 5, 1, 80, true));          // depthwise 5x5
  g.MarkOutput(h);
  return m;
}

TEST(XnnSilu, FusedIntoConvEpiloguesMatchesReference) {
  const NamedTensors in = {{"x", testing::Uniform({1, 64, 14, 14}, -2.0f, 2.0f, 4)}};
  auto ref = Session::Create(ConvSiluModel(), SessionOptions::Reference());
  ASSERT_TRUE(ref.ok()) << ref.status().ToString();
  auto want = (*ref)->Run(in);
  ASSERT_TRUE(want.ok()) << want.status().ToString();
  for (CpuIsa isa : {CpuIsa::kPortable, CpuIsa::kAvx2, CpuIsa::kAvx512}) {
    // The level sessions run at (below this CPU's, or portable when forced: KILN_CPU_PORTABLE).
    if (EffectiveCpuIsa(isa) != isa) continue;
    for (int threads : {1, 2}) {
      SessionOptions o = SessionOptions::Threads(threads);
      o.isa = isa;
      o.profile = true;
      auto s = Session::Create(ConvSiluModel(), o);
      ASSERT_TRUE(s.ok()) << s.status().ToString();
      auto got = (*s)->Run(in);
      ASSERT_TRUE(got.ok()) << got.status().ToString();
      int sigmoid_steps = 0, own_convs = 0;
      for (const ProfileRow& row : (*s)->Profile()) {
        sigmoid_steps += row.op_type == "Sigmoid" || row.op_type == "Mul";
        own_convs += row.op_type == "Conv" && row.what.rfind("own loop", 0) == 0;
      }
      if (isa != CpuIsa::kPortable) {
        EXPECT_EQ(own_convs, 5) << CpuIsaName(isa);
        EXPECT_EQ(sigmoid_steps, 0) << CpuIsaName(isa) << ": every SiLU fused into its conv";
      }
      const double worst = WorstScaledError((*got)[0], (*want)[0]);
      // Five layers of fp32 convs summed in other orders (Winograd's transforms among them).
      EXPECT_LE(worst, 2e-4) << CpuIsaName(isa) << " threads " << threads;
    }
  }
}

// Expansion 1x1 conv + depthwise conv run as one step (Fusion::dw, ExpandDepthwiseBuild): with
// SiLU or ReLU6 after each, 3x3 / 5x5 depthwise at stride 1 and 2 (padding rows above and below
// through the zero row), 40 and 24 expanded channels (vector tails), batch 2, odd image sizes;
// 1, 2 and 3 threads (the output rows split per thread, each part recomputing its first rows);
// against the reference kernels; one Conv step per block, nothing of the pair left.
Model ExpandDepthwiseModel(bool silu, int64_t k, int64_t stride, int64_t cmid) {
  Model m;
  m.opsets[""] = 17;
  m.ir_version = 8;
  Graph& g = m.graph;
  std::mt19937 gen(static_cast<uint32_t>(7 + k + stride + cmid));
  std::uniform_real_distribution<float> u(-1, 1);
  auto init = [&](const std::string& name, Shape shape, float scale, float shift) {
    Tensor t = Tensor::Allocate(kF32, shape).value();
    for (int64_t i = 0; i < t.size(); ++i) t.data<float>()[i] = shift + scale * u(gen);
    return g.AddInitializer(name, std::move(t));
  };
  ValueId x = g.AddValue("x", kF32, DimVector{2, 12, 61, 47});
  g.MarkInput(x);
  auto act = [&](ValueId in, const std::string& k2) {
    ValueId y = g.AddValue("act" + k2);
    if (silu) {
      ValueId sg = g.AddValue("sg" + k2);
      g.AddNode("sig" + k2, "Sigmoid", {in}, {sg}, {}, "", 17);
      g.AddNode("mul" + k2, "Mul", {in, sg}, {y}, {}, "", 17);
    } else {
      g.AddNode("clip" + k2, "Clip", {in, init("lo" + k2, {}, 0, 0), init("hi" + k2, {}, 0, 6)}, {y},
                {}, "", 17);
    }
    return y;
  };
  ValueId e = g.AddValue("e");
  g.AddNode("expand", "Conv", {x, init("we", {cmid, 12, 1, 1}, 0.4f, 0), init("be", {cmid}, 0.5f, 0)},
            {e}, {}, "", 17);
  ValueId bn = g.AddValue("bn");
  g.AddNode("bn", "BatchNormalization",
            {e, init("g", {cmid}, 0.3f, 1), init("b", {cmid}, 0.3f, 0), init("m", {cmid}, 0.3f, 0),
             init("v", {cmid}, 0.2f, 1)},
            {bn}, {}, "", 17);
  ValueId h = act(bn, "1");
  ValueId d = g.AddValue("d");
  Attributes a;
  a.Add(Attribute::Ints("pads", {k / 2, k / 2, k / 2, k / 2}));
  a.Add(Attribute::Ints("strides", {stride, stride}));
  a.Add(Attribute::Int("group", cmid));
  g.AddNode("dw", "Conv", {h, init("wd", {cmid, 1, k, k}, 0.4f, 0), init("bd", {cmid}, 0.5f, 0)},
            {d}, std::move(a), "", 17);
  ValueId out = act(d, "2");
  // A projection after it, as in the blocks (a separate step).
  ValueId p = g.AddValue("p");
  g.AddNode("project", "Conv", {out, init("wp", {8, cmid, 1, 1}, 0.3f, 0)}, {p}, {}, "", 17);
  g.MarkOutput(p);
  return m;
}

TEST(XnnFusion, ExpandDepthwiseMatchesReference) {
  const NamedTensors in = {{"x", testing::Uniform({2, 12, 61, 47}, -1.5f, 1.5f, 9)}};
  int fused_cases = 0;
  for (bool silu : {true, false}) {
    for (int64_t k : {3, 5}) {
      for (int64_t stride : {1, 2}) {
        const int64_t cmid = k == 3 ? 40 : 24;
        auto ref = Session::Create(ExpandDepthwiseModel(silu, k, stride, cmid),
                                   SessionOptions::Reference());
        ASSERT_TRUE(ref.ok()) << ref.status().ToString();
        auto want = (*ref)->Run(in);
        ASSERT_TRUE(want.ok()) << want.status().ToString();
        for (CpuIsa isa : {CpuIsa::kAvx2, CpuIsa::kAvx512}) {
          if (EffectiveCpuIsa(isa) != isa) continue;
          for (int threads : {1, 2, 3}) {
            SessionOptions o = SessionOptions::Threads(threads);
            o.isa = isa;
            o.profile = true;
            auto s = Session::Create(ExpandDepthwiseModel(silu, k, stride, cmid), o);
            ASSERT_TRUE(s.ok()) << s.status().ToString();
            auto got = (*s)->Run(in);
            ASSERT_TRUE(got.ok()) << got.status().ToString();
            int convs = 0, others = 0;
            for (const ProfileRow& row : (*s)->Profile()) {
              if (!row.op_type.empty() && row.op_type[0] == '(') continue;  // borders, overhead
              convs += row.op_type == "Conv";
              others += row.op_type != "Conv";
            }
            EXPECT_EQ(convs, 2) << "expand + depthwise in one step, then the projection";
            EXPECT_EQ(others, 0);
            const double worst = WorstScaledError((*got)[0], (*want)[0]);
            EXPECT_LE(worst, 1e-4) << "silu " << silu << " k " << k << " stride " << stride << " "
                                   << CpuIsaName(isa) << " threads " << threads;
            ++fused_cases;
          }
        }
      }
    }
  }
  if (fused_cases == 0) GTEST_SKIP() << "no AVX2 here: the step needs the own kernels";
}

}  // namespace
}  // namespace kiln

namespace kiln {
namespace {

// Erf (GELU as PyTorch exports it: x * 0.5 * (1 + Erf(x / sqrt 2))) in XNNPACK partitions: the
// vector series / Abramowitz-Stegun loop on every ISA against erf in double, element by element:
// relative error at most 4e-7 where |erf| >= 1e-3 (the series region keeps it relative down to
// denormal inputs), absolute at most 3e-7 everywhere (A&S: 1.5e-7, plus rounding).
TEST(XnnErf, EveryIsaMatchesErfInDouble) {
  Model m;
  m.opsets[""] = 17;
  m.ir_version = 8;
  Graph& g = m.graph;
  const int64_t n = 40003;  // a tail after the 16- and 8-wide vectors
  ValueId x = g.AddValue("x", kF32, DimVector{1, n});
  g.MarkInput(x);
  ValueId y = g.AddValue("y");
  g.AddNode("erf", "Erf", {x}, {y}, {}, "", 17);
  g.MarkOutput(y);
  Tensor xt = Tensor::Allocate(kF32, {1, n}).value();
  float* xd = xt.data<float>();
  std::mt19937 gen(5);
  std::uniform_real_distribution<float> u(-6, 6);
  for (int64_t i = 0; i < n; ++i) {
    xd[i] = i % 3 == 0 ? u(gen) : i % 3 == 1 ? u(gen) / 6 : u(gen) * 1e-4f;
  }
  const float special[] = {0.0f, -0.0f, 1e-30f, -1e-30f, 0.999999f, 1.0f, -1.0f, 1.000001f, 9.0f,
                           -9.0f, 40.0f, -40.0f, 1e20f, -1e20f};
  for (size_t i = 0; i < sizeof(special) / sizeof(special[0]); ++i) xd[i * 11] = special[i];
  const NamedTensors in = {{"x", xt}};
  for (CpuIsa isa : {CpuIsa::kPortable, CpuIsa::kAvx2, CpuIsa::kAvx512}) {
    SessionOptions o = SessionOptions::Threads(2);
    o.isa = isa;
    o.op_backend["Erf"] = "xnnpack";
    auto s = Session::Create(CopyModel(m), o);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    auto got = (*s)->Run(in);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    const float* gd = (*got)[0].data<float>();
    double worst_rel = 0, worst_abs = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double want = std::erf(static_cast<double>(xd[i]));
      const double err = std::fabs(static_cast<double>(gd[i]) - want);
      worst_abs = std::max(worst_abs, err);
      if (std::fabs(want) >= 1e-3) worst_rel = std::max(worst_rel, err / std::fabs(want));
      if (std::fabs(want) < 1e-3 && want != 0) {
        ASSERT_LE(err / std::fabs(want), 1e-6) << CpuIsaName(isa) << " x " << xd[i];
      }
    }
    EXPECT_LE(worst_rel, 4e-7) << CpuIsaName(isa);
    EXPECT_LE(worst_abs, 3e-7) << CpuIsaName(isa);
    std::printf("%s: erf worst relative %.3g, absolute %.3g\n", CpuIsaName(isa), worst_rel,
                worst_abs);
  }
}

}  // namespace
}  // namespace kiln

namespace kiln {
namespace {

// GELU as PyTorch exports it (x / sqrt 2 -> Erf -> + 1 -> * x -> * 0.5) is one own-loop step on
// every ISA (no Erf, Add or Mul step left), matching the reference's five ops.
TEST(XnnErf, ExportedGeluIsOneStep) {
  Model m;
  m.opsets[""] = 13;
  m.ir_version = 8;
  Graph& g = m.graph;
  ValueId x = g.AddValue("x", kF32, DimVector{3, 7, 61});
  g.MarkInput(x);
  auto scalar = [&](const char* name, float v) {
    return g.AddInitializer(name, Tensor::FromVector<float>({v}, {}));
  };
  ValueId d = g.AddValue("d"), e = g.AddValue("e"), a = g.AddValue("a"), mm = g.AddValue("m"),
          y = g.AddValue("y");
  g.AddNode("div", "Div", {x, scalar("sqrt2", 1.4142135623730951f)}, {d}, {}, "", 13);
  g.AddNode("erf", "Erf", {d}, {e}, {}, "", 13);
  g.AddNode("add", "Add", {e, scalar("one", 1.0f)}, {a}, {}, "", 13);
  g.AddNode("mul", "Mul", {x, a}, {mm}, {}, "", 13);
  g.AddNode("half", "Mul", {mm, scalar("half", 0.5f)}, {y}, {}, "", 13);
  g.MarkOutput(y);
  Tensor xt = Tensor::Allocate(kF32, {3, 7, 61}).value();
  std::mt19937 gen(9);
  std::uniform_real_distribution<float> u(-5, 5);
  for (int64_t i = 0; i < xt.size(); ++i) xt.data<float>()[i] = u(gen);
  const NamedTensors in = {{"x", xt}};
  auto ref = Session::Create(CopyModel(m), SessionOptions::Reference());
  ASSERT_TRUE(ref.ok());
  auto want = (*ref)->Run(in);
  ASSERT_TRUE(want.ok());
  for (CpuIsa isa : {CpuIsa::kPortable, CpuIsa::kAvx2, CpuIsa::kAvx512}) {
    SessionOptions o = SessionOptions::Threads(1);
    o.isa = isa;
    o.profile = true;
    for (const char* op : {"Div", "Erf", "Add", "Mul"}) o.op_backend[op] = "xnnpack";
    auto s = Session::Create(CopyModel(m), o);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    auto got = (*s)->Run(in);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    for (int64_t i = 0; i < xt.size(); ++i) {
      const float w = (*want)[0].data<float>()[i], v = (*got)[0].data<float>()[i];
      ASSERT_NEAR(v, w, 4e-7 * std::max(1.0f, std::fabs(w))) << CpuIsaName(isa) << " at " << i;
    }
    int steps = 0;
    for (const ProfileRow& row : (*s)->Profile()) {
      if (row.op_type == "(borders)" || row.op_type.rfind("(", 0) == 0) continue;
      ++steps;
      EXPECT_EQ(row.op_type, "Div") << CpuIsaName(isa);
    }
    EXPECT_EQ(steps, 1) << CpuIsaName(isa);
  }
}

}  // namespace
}  // namespace kiln
