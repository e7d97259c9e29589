// The squeeze-excitation pieces of the XNNPACK backend's own loops (efficientnet, mobilenet_v3,
// regnet_y): GlobalAveragePool over NHWC (channels in register blocks of 64/32/16/8 and a scalar
// tail, split over the pool by channel ranges) and Mul of an activation by a computed
// [N, C, 1, 1] gate (either operand order), on every ISA level and at 1, 2 and 3 threads, against
// the reference kernels: the gate multiply is one float product per element, so bit-equal; the
// pool sums in another order, so within float rounding of the sum.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "core/cpu_features.h"
#include "qdq_builder.h"
#include "runtime/session.h"

namespace kiln {
namespace {

constexpr ElementType kF32 = ElementType::kF32;

// x [2, c, h, w] -> GlobalAveragePool -> Relu (fused as a clamp) -> "pool"; x * Sigmoid(pool) (the
// gate, operands in the order gate_first says) -> "scaled".
Model SeModel(int64_t c, int64_t h, int64_t w, bool gate_first) {
  Model m;
  m.opsets[""] = 17;
  m.ir_version = 8;
  Graph& g = m.graph;
  ValueId x = g.AddValue("x", kF32, DimVector{2, c, h, w});
  g.MarkInput(x);
  ValueId gap = g.AddValue("gap"), pool = g.AddValue("pool"), gate = g.AddValue("gate");
  ValueId y = g.AddValue("scaled");
  g.AddNode("gap", "GlobalAveragePool", {x}, {gap}, {}, "", 17);
  g.AddNode("relu", "Relu", {gap}, {pool}, {}, "", 17);
  g.AddNode("sig", "Sigmoid", {gap}, {gate}, {}, "", 17);
  g.AddNode("mul", "Mul", gate_first ? std::vector<ValueId>{gate, x} : std::vector<ValueId>{x, gate},
            {y}, {}, "", 17);
  g.MarkOutput(pool);
  g.MarkOutput(y);
  return m;
}

TEST(XnnSqueezeExcitation, PoolAndGateMatchReference) {
  struct Case {
    int64_t c, h, w;
  };
  // Channel counts: below one vector, odd, each register block and a tail, and many channels
  // over few pixels (split over threads by channel ranges).
  const Case cases[] = {{3, 9, 7}, {37, 13, 11}, {64, 28, 28}, {200, 14, 14}, {1152, 7, 7}};
  int index = 0;
  for (const Case& k : cases) {
    for (bool gate_first : {false, true}) {
      const NamedTensors in = {
          {"x", testing::Uniform({2, k.c, k.h, k.w}, -3.0f, 3.0f, static_cast<uint32_t>(5 + index))}};
      auto ref = Session::Create(SeModel(k.c, k.h, k.w, gate_first), SessionOptions::Reference());
      ASSERT_TRUE(ref.ok()) << ref.status().ToString();
      auto want = (*ref)->Run(in);
      ASSERT_TRUE(want.ok()) << want.status().ToString();
      for (CpuIsa isa : {CpuIsa::kPortable, CpuIsa::kAvx2, CpuIsa::kAvx512}) {
        if (EffectiveCpuIsa(isa) != isa) continue;
        for (int threads : {1, 2, 3}) {
          SessionOptions o = SessionOptions::Threads(threads);
          o.isa = isa;
          o.op_backend["GlobalAveragePool"] = "xnnpack";
          o.op_backend["Mul"] = "xnnpack";
          o.op_backend["Sigmoid"] = "xnnpack";
          o.op_backend["Relu"] = "xnnpack";
          o.profile = true;
          auto s = Session::Create(SeModel(k.c, k.h, k.w, gate_first), o);
          ASSERT_TRUE(s.ok()) << s.status().ToString();
          auto got = (*s)->Run(in);
          ASSERT_TRUE(got.ok()) << got.status().ToString();
          int own = 0;
          for (const ProfileRow& row : (*s)->Profile()) {
            own += (row.op_type == "GlobalAveragePool" || row.op_type == "Mul") &&
                   row.what.rfind("own loop", 0) == 0;
          }
          EXPECT_EQ(own, 2) << "the pool and the gate multiply run the own loops";
          const std::string where = "c " + std::to_string(k.c) + " " + CpuIsaName(isa) +
                                    " threads " + std::to_string(threads);
          const float* gp = (*got)[0].data<float>();
          const float* rp = (*want)[0].data<float>();
          for (int64_t i = 0; i < (*want)[0].size(); ++i) {
            // A mean of h*w values in [-3, 3] summed in another order.
            ASSERT_NEAR(gp[i], rp[i], 1e-5 * (1 + std::fabs(rp[i]))) << where << " pool " << i;
          }
          // The gate multiplies x by sigmoid(pool): the pool's rounding difference passes
          // through the sigmoid (slope <= 1/4) times |x| <= 3.
          const float* gy = (*got)[1].data<float>();
          const float* ry = (*want)[1].data<float>();
          for (int64_t i = 0; i < (*want)[1].size(); ++i) {
            ASSERT_NEAR(gy[i], ry[i], 1e-5 * (1 + std::fabs(ry[i]))) << where << " scaled " << i;
          }
        }
      }
      ++index;
    }
  }
}

}  // namespace
}  // namespace kiln
