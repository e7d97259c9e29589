// IR tables, topological order, shape inference with folding, the memory planner and the
// executor's per-shape plan cache.
#include <gtest/gtest.h>

#include <random>

#include "backends/ref/eager.h"
#include "ir/printer.h"
#include "ir/shape_inference.h"
#include "ir/verifier.h"
#include "plan/memory_plan.h"
#include "runtime/session.h"

namespace kiln {
namespace {

TEST(Graph, TopologicalOrderFollowsDependenciesAndKeepsFileOrder) {
  Graph g;
  ValueId x = g.AddValue("x", ElementType::kF32, DimVector{2});
  g.MarkInput(x);
  ValueId a = g.AddValue("a"), b = g.AddValue("b"), c = g.AddValue("c");
  // Listed out of order: c needs a and b.
  g.AddNode("n_c", "Add", {a, b}, {c}, {}, "", 17);
  g.AddNode("n_a", "Relu", {x}, {a}, {}, "", 17);
  g.AddNode("n_b", "Relu", {x}, {b}, {}, "", 17);
  g.MarkOutput(c);
  auto order = g.TopologicalOrder();
  ASSERT_TRUE(order.ok());
  ASSERT_EQ(order->size(), 3u);
  EXPECT_EQ(g.node((*order)[0]).name, "n_a");
  EXPECT_EQ(g.node((*order)[1]).name, "n_b");
  EXPECT_EQ(g.node((*order)[2]).name, "n_c");
  EXPECT_TRUE(VerifyGraph(g).ok());
  EXPECT_NE(PrintGraph(g).find("%c : ? = Add 'n_c' (%a, %b)"), std::string::npos) << PrintGraph(g);
}

TEST(Graph, CycleIsReportedWithANode) {
  Graph g;
  ValueId a = g.AddValue("a"), b = g.AddValue("b");
  g.AddNode("n1", "Relu", {b}, {a});
  g.AddNode("n2", "Relu", {a}, {b});
  auto order = g.TopologicalOrder();
  ASSERT_FALSE(order.ok());
  EXPECT_NE(order.status().message().find("cycle"), std::string::npos);
}

TEST(ShapeInference, BroadcastAndSymbolicDims) {
  Graph g;
  ValueId x = g.AddValue("x", ElementType::kF32, DimVector{Dim::Symbol("N"), Dim(1), Dim(3)});
  ValueId y = g.AddValue("y", ElementType::kF32, DimVector{Dim(4), Dim(1)});
  g.MarkInput(x);
  g.MarkInput(y);
  ValueId z = g.AddValue("z");
  g.AddNode("add", "Add", {x, y}, {z}, {}, "", 17);
  g.MarkOutput(z);
  ASSERT_TRUE(InferShapes(g, {}).ok());
  EXPECT_EQ(g.value(z).info.ToString(), "f32[N,4,3]");
}

TEST(ShapeInference, FoldsShapeChainsIntoExactShapes) {
  // Reshape(x, Concat(Gather(Shape(x), 0), [-1])) on x: f32[6,2,2] gives f32[6,4].
  Graph g;
  ValueId x = g.AddValue("x", ElementType::kF32, DimVector{6, 2, 2});
  g.MarkInput(x);
  ValueId shape = g.AddValue("shape"), first = g.AddValue("first"), target = g.AddValue("target");
  ValueId idx = g.AddInitializer("idx", Tensor::FromVector<int64_t>({0}, {1}));
  ValueId minus1 = g.AddInitializer("minus1", Tensor::FromVector<int64_t>({-1}, {1}));
  ValueId out = g.AddValue("out");
  g.AddNode("shape", "Shape", {x}, {shape}, {}, "", 17);
  g.AddNode("gather", "Gather", {shape, idx}, {first}, {}, "", 17);
  Attributes axis;
  Attribute ax;
  ax.name = "axis";
  ax.i = 0;
  axis.Add(ax);
  g.AddNode("concat", "Concat", {first, minus1}, {target}, axis, "", 17);
  g.AddNode("reshape", "Reshape", {x, target}, {out}, {}, "", 17);
  g.MarkOutput(out);
  InferShapesOptions opts;
  opts.folder = [](const Node& n, const std::vector<Tensor>& in) { return RunNodeEager(n, in); };
  ASSERT_TRUE(InferShapes(g, opts).ok());
  EXPECT_EQ(g.value(out).info.ToString(), "f32[6,4]");
  // Without folding the shape is only known to be rank 2.
  Graph& g2 = g;
  g2.value(out).info = TypeInfo{};
  for (uint32_t i = 0; i < g2.num_values(); ++i) {
    if (g2.value(ValueId(i)).kind == ValueKind::kIntermediate) g2.value(ValueId(i)).info = TypeInfo{};
  }
  ASSERT_TRUE(InferShapes(g2, {}).ok());
  ASSERT_TRUE(g2.value(out).info.shape.has_value());
  EXPECT_EQ(g2.value(out).info.shape->size(), 2u);
}

TEST(MemoryPlan, ReusesMemoryOfDeadBuffersOnly) {
  // a [0,1], b [1,2], c [2,3]: a and c may share, b overlaps both.
  MemoryPlan p = PlanMemory({{0, "a", 1000, 0, 1}, {1, "b", 1000, 1, 2}, {2, "c", 1000, 2, 3}});
  EXPECT_EQ(p.offsets[0], p.offsets[2]);
  EXPECT_NE(p.offsets[0], p.offsets[1]);
  EXPECT_EQ(p.arena_bytes, 2 * 1024);
  EXPECT_EQ(p.unshared_bytes, 3 * 1024);
  EXPECT_NE(p.ToString().find("arena: 2048 bytes"), std::string::npos);
}

TEST(MemoryPlan, RandomPlansNeverOverlapLiveBuffersAndAreDeterministic) {
  std::mt19937 rng(11);
  for (int trial = 0; trial < 50; ++trial) {
    std::vector<BufferRequest> reqs;
    for (uint32_t i = 0; i < 60; ++i) {
      int first = static_cast<int>(rng() % 40);
      reqs.push_back({i, "v" + std::to_string(i), static_cast<int64_t>(rng() % 5000 + 1), first,
                      first + static_cast<int>(rng() % 10)});
    }
    MemoryPlan p = PlanMemory(reqs);
    MemoryPlan q = PlanMemory(reqs);
    EXPECT_EQ(p.offsets, q.offsets);
    EXPECT_LE(p.arena_bytes, p.unshared_bytes);
    for (size_t i = 0; i < reqs.size(); ++i) {
      EXPECT_EQ(p.offsets[i] % MemoryPlan::kAlignment, 0);
      for (size_t j = i + 1; j < reqs.size(); ++j) {
        const bool live_overlap = !(reqs[i].last < reqs[j].first || reqs[j].last < reqs[i].first);
        const bool mem_overlap = p.offsets[i] < p.offsets[j] + reqs[j].bytes &&
                                 p.offsets[j] < p.offsets[i] + reqs[i].bytes;
        EXPECT_FALSE(live_overlap && mem_overlap) << i << " and " << j;
      }
    }
  }
}

TEST(Executor, ReplansOncePerNewShapeAndCaches) {
  // y = Relu(x) * x, x: f32[N, 3]
  Model m;
  Graph& g = m.graph;
  ValueId x = g.AddValue("x", ElementType::kF32, DimVector{Dim::Symbol("N"), Dim(3)});
  g.MarkInput(x);
  ValueId r = g.AddValue("r"), y = g.AddValue("y");
  g.AddNode("relu", "Relu", {x}, {r}, {}, "", 17);
  g.AddNode("mul", "Mul", {r, x}, {y}, {}, "", 17);
  g.MarkOutput(y);
  m.opsets[""] = 17;
  ASSERT_TRUE(InferShapes(g, {}).ok());
  auto session = Session::Create(std::move(m));
  ASSERT_TRUE(session.ok());
  for (int64_t n : {2, 5, 2, 5, 7}) {
    Tensor in = Tensor::Allocate(ElementType::kF32, {n, 3}).value();
    for (int64_t i = 0; i < in.size(); ++i) in.data<float>()[i] = static_cast<float>(i % 5) - 2.0f;
    auto out = (*session)->Run({{"x", in}});
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    ASSERT_EQ((*out)[0].shape(), (Shape{n, 3}));
    for (int64_t i = 0; i < in.size(); ++i) {
      const float v = in.data<float>()[i];
      EXPECT_EQ((*out)[0].data<float>()[i], v > 0 ? v * v : 0.0f);
    }
  }
  EXPECT_EQ((*session)->cached_plan_count(), 3u);  // N = 2, 5, 7
  auto plan = (*session)->DescribePlan({{"x", Tensor::Allocate(ElementType::kF32, {7, 3}).value()}});
  ASSERT_TRUE(plan.ok());
  EXPECT_NE(plan->find("arena:"), std::string::npos) << *plan;
}

TEST(Executor, WrongInputTypeOrShapeIsAClearError) {
  Model m;
  Graph& g = m.graph;
  ValueId x = g.AddValue("x", ElementType::kF32, DimVector{Dim::Symbol("N"), Dim(3)});
  g.MarkInput(x);
  ValueId y = g.AddValue("y");
  g.AddNode("relu", "Relu", {x}, {y}, {}, "", 17);
  g.MarkOutput(y);
  auto session = Session::Create(std::move(m));
  ASSERT_TRUE(session.ok());
  auto bad_type = (*session)->Run({{"x", Tensor::Allocate(ElementType::kI64, {2, 3}).value()}});
  ASSERT_FALSE(bad_type.ok());
  EXPECT_NE(bad_type.status().message().find("'x' expects f32[N,3], got i64[2,3]"), std::string::npos)
      << bad_type.status().message();
  auto bad_shape = (*session)->Run({{"x", Tensor::Allocate(ElementType::kF32, {2, 4}).value()}});
  ASSERT_FALSE(bad_shape.ok());
  auto missing = (*session)->Run({});
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("'x' was not given"), std::string::npos);
  auto unknown = (*session)->Run({{"x", Tensor::Allocate(ElementType::kF32, {2, 3}).value()},
                                  {"q", Tensor::Allocate(ElementType::kF32, {1}).value()}});
  ASSERT_FALSE(unknown.ok());
}

Model MatMulModel() {
  Model m;
  Graph& g = m.graph;
  ValueId a = g.AddValue("a", ElementType::kF32, DimVector{64, 48});
  ValueId b = g.AddValue("b", ElementType::kF32, DimVector{48, 32});
  g.MarkInput(a);
  g.MarkInput(b);
  ValueId c = g.AddValue("c");
  g.AddNode("mm", "MatMul", {a, b}, {c}, {}, "", 17);
  g.MarkOutput(c);
  EXPECT_TRUE(InferShapes(g, {}).ok());
  return m;
}

TEST(Executor, MatMulMatchesADoubleReferenceAtOneAndTwoThreads) {
  Tensor ta = Tensor::Allocate(ElementType::kF32, {64, 48}).value();
  Tensor tb = Tensor::Allocate(ElementType::kF32, {48, 32}).value();
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> d(-1, 1);
  for (int64_t i = 0; i < ta.size(); ++i) ta.data<float>()[i] = d(rng);
  for (int64_t i = 0; i < tb.size(); ++i) tb.data<float>()[i] = d(rng);
  for (int threads : {1, 2}) {
  auto s1 = Session::Create(MatMulModel(), SessionOptions::Threads(threads));
  ASSERT_TRUE(s1.ok());
  auto r1 = (*s1)->Run({{"a", ta}, {"b", tb}});
  ASSERT_TRUE(r1.ok()) << r1.status().ToString();
  // Double-precision reference.
  for (int i = 0; i < 64; ++i) {
    for (int j = 0; j < 32; ++j) {
      double acc = 0;
      for (int k = 0; k < 48; ++k) acc += double(ta.data<float>()[i * 48 + k]) * tb.data<float>()[k * 32 + j];
      EXPECT_NEAR((*r1)[0].data<float>()[i * 32 + j], acc, 1e-4);
    }
  }
  }
}

}  // namespace
}  // namespace kiln
