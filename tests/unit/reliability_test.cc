// Reliability: one session used from several threads with different shapes (the plan cache
// evicting while plans are read), the portable (non-AVX2) kernel paths.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <thread>
#include <vector>

#include "core/cpu_features.h"
#include "ir/shape_inference.h"
#include "runtime/session.h"

namespace kiln {
namespace {

// y = Relu(x) * x + x, x: f32[N, 3] (exact in float, so every result can be checked).
Model ReluMulModel() {
  Model m;
  Graph& g = m.graph;
  ValueId x = g.AddValue("x", ElementType::kF32, DimVector{Dim::Symbol("N"), Dim(3)});
  g.MarkInput(x);
  ValueId r = g.AddValue("r"), p = g.AddValue("p"), y = g.AddValue("y");
  g.AddNode("relu", "Relu", {x}, {r}, {}, "", 17);
  g.AddNode("mul", "Mul", {r, x}, {p}, {}, "", 17);
  g.AddNode("add", "Add", {p, x}, {y}, {}, "", 17);
  g.MarkOutput(y);
  m.opsets[""] = 17;
  EXPECT_TRUE(InferShapes(g, {}).ok());
  return m;
}

Tensor Input(int64_t n, int seed) {
  Tensor in = Tensor::Allocate(ElementType::kF32, {n, 3}).value();
  for (int64_t i = 0; i < in.size(); ++i)
    in.data<float>()[i] = static_cast<float>((i * 7 + seed) % 11) - 5.0f;
  return in;
}

// Session.h promises Run is safe from several threads. 4 threads x 60 runs over 80 distinct
// shapes (the cache holds 32, so plans are evicted all the time) while a fifth thread keeps
// taking plans and describing them: every output is checked, nothing may crash (TSan: see
// README "Sanitizers").
TEST(SessionThreads, RunFromSeveralThreadsWithDifferentShapes) {
  SessionOptions o = SessionOptions::Threads(2);
  auto session = Session::Create(ReluMulModel(), o);
  ASSERT_TRUE(session.ok()) << session.status().ToString();
  Session& s = **session;
  std::atomic<int> failures{0};
  std::atomic<bool> done{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 60; ++i) {
        const int64_t n = 1 + t * 20 + (i * 7) % 20;
        const Tensor in = Input(n, t + i);
        auto out = s.Run({{"x", in}});
        if (!out.ok() || (*out)[0].shape() != Shape{n, 3}) {
          ++failures;
          continue;
        }
        for (int64_t k = 0; k < in.size(); ++k) {
          const float v = in.data<float>()[k];
          if ((*out)[0].data<float>()[k] != (v > 0 ? v * v : 0.0f) + v) {
            ++failures;
            break;
          }
        }
      }
    });
  }
  std::thread planner([&] {
    int64_t n = 1;
    while (!done.load()) {
      auto plan = s.Plan({{"x", Input(n, 0)}});
      auto text = s.DescribePlan({{"x", Input(n + 1, 0)}});
      if (!plan.ok() || !text.ok() || (*plan)->steps.empty() ||
          text->find("arena:") == std::string::npos) {
        ++failures;
      }
      (void)s.cached_plan_count();
      n = n % 79 + 1;
    }
  });
  for (auto& th : threads) th.join();
  done.store(true);
  planner.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_LE(s.cached_plan_count(), 32u);
}

// A plan taken from the session stays valid after other shapes have evicted it from the cache.
TEST(SessionThreads, PlanOutlivesEviction) {
  auto session = Session::Create(ReluMulModel());
  ASSERT_TRUE(session.ok());
  auto plan = (*session)->Plan({{"x", Input(1000, 0)}});
  ASSERT_TRUE(plan.ok());
  for (int64_t n = 1; n <= 40; ++n) ASSERT_TRUE((*session)->Run({{"x", Input(n, 1)}}).ok());
  EXPECT_EQ((*plan)->types.size(), (*session)->graph().num_values());
  EXPECT_FALSE((*plan)->ToString((*session)->graph()).empty());
}

// The switch the unit_portable test (CTest) and a CPU without AVX2 take: CpuHasAvx2() false.
TEST(CpuFeatures, PortableSwitch) {
  const bool had = CpuHasAvx2();
  ForcePortableKernelsForTesting(true);
  EXPECT_FALSE(CpuHasAvx2());
  ForcePortableKernelsForTesting(false);
  EXPECT_EQ(CpuHasAvx2(), had);
#if defined(__x86_64__)
  EXPECT_EQ(had, getenv("KILN_CPU_PORTABLE") == nullptr && __builtin_cpu_supports("avx2") &&
                     __builtin_cpu_supports("fma"));
#endif
}

}  // namespace
}  // namespace kiln
