// The partitioner and the typed rules, proved with a stand-in accelerator (tests/unit/
// test_npu_backend.h, a TEST DOUBLE: unit npu, fp16 only, a subset of ops, executing through the
// reference kernels with fp16 rounding) next to the real reference backend.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "core/tensor_compare.h"
#include "runtime/session.h"
#include "test_npu_backend.h"

namespace kiln {
namespace {

using testing::TestNpuBackend;

constexpr int64_t kOnnxFloat = 1;
constexpr int64_t kOnnxFloat16 = 10;

struct Builder {
  Model model;
  int counter = 0;
  Builder(ModelType type) {
    model.opsets[""] = 17;
    model.ir_version = 8;
    model.metadata["kiln.model_type"] = ModelTypeName(type);
    model.graph.name = "g";
  }
  Graph& g() { return model.graph; }
  ValueId Input(const std::string& name, ElementType t, Shape s) {
    ValueId v = g().AddValue(name, t, DimVector(s.begin(), s.end()));
    g().MarkInput(v);
    return v;
  }
  ValueId Const(ElementType t, float value) {
    Tensor c = Tensor::Allocate(t, {1}).value();
    if (t == ElementType::kF16) {
      c.data<Half>()[0] = Half(value);
    } else {
      c.data<float>()[0] = value;
    }
    return g().AddInitializer("c" + std::to_string(counter++), c);
  }
  // op(inputs) -> new value; node named `name` (default op + counter).
  ValueId Op(const std::string& op, std::vector<ValueId> in, std::string name = "",
             Attributes attrs = {}) {
    if (name.empty()) name = op + "_" + std::to_string(counter);
    ValueId out = g().AddValue(name + "_out");
    ++counter;
    g().AddNode(name, op, std::move(in), {out}, std::move(attrs), "", 17);
    return out;
  }
  ValueId Cast(ValueId x, int64_t to) {
    Attributes a;
    a.Add(Attribute::Int("to", to));
    return Op("Cast", {x}, "", std::move(a));
  }
  void Output(ValueId v) { g().MarkOutput(v); }
};

// A chain of cheap unary/binary ops with `unsupported` (an op the npu lacks) at the given
// positions, named "odd<i>".
ValueId Chain(Builder& b, ValueId x, ElementType t, int length, std::vector<int> unsupported) {
  // Chosen so that values keep depending on x (no Relu after a Neg).
  static const char* kOps[] = {"Relu", "Add", "Sigmoid", "Neg", "Abs", "Mul"};
  for (int i = 0; i < length; ++i) {
    if (std::find(unsupported.begin(), unsupported.end(), i) != unsupported.end()) {
      x = b.Op("Tanh", {x}, "odd" + std::to_string(i));
      continue;
    }
    const std::string op = kOps[i % 6];
    if (op == "Add" || op == "Mul") {
      x = b.Op(op, {x, b.Const(t, op == "Add" ? 0.25f : 1.5f)});
    } else {
      x = b.Op(op, {x});
    }
  }
  return x;
}

Tensor Random(ElementType t, Shape shape, uint32_t seed) {
  Tensor x = Tensor::Allocate(t, shape).value();
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-2, 2);
  for (int64_t i = 0; i < x.size(); ++i) {
    if (t == ElementType::kF16) {
      x.data<Half>()[i] = Half(u(rng));
    } else {
      x.data<float>()[i] = u(rng);
    }
  }
  return x;
}

struct Outcome {
  std::unique_ptr<Session> session;
  std::shared_ptr<const ExecutionPlan> plan;
  std::vector<Tensor> outputs;
};

Outcome RunWith(Model model, SessionOptions o, const Tensor& x) {
  Outcome r;
  auto s = Session::Create(std::move(model), std::move(o));
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  if (!s.ok()) return r;
  r.session = std::move(s).value();
  auto plan = r.session->Plan({{"x", x}});
  EXPECT_TRUE(plan.ok()) << plan.status().ToString();
  if (!plan.ok()) return r;
  r.plan = *plan;
  auto out = r.session->Run({{"x", x}});
  EXPECT_TRUE(out.ok()) << out.status().ToString();
  if (out.ok()) r.outputs = std::move(out).value();
  return r;
}

SessionOptions WithNpu(std::shared_ptr<TestNpuBackend> npu, std::vector<std::string> order = {"test-npu", "ref"}) {
  SessionOptions o;
  o.extra_backends = {npu};
  o.backends = std::move(order);
  return o;
}

std::string BackendOf(const Outcome& r, const std::string& node_name) {
  const Graph& g = r.session->graph();
  for (uint32_t i = 0; i < g.num_nodes(); ++i) {
    if (g.node(NodeId(i)).name != node_name) continue;
    const NodePlacement& p = r.plan->partitioning.placement[i];
    if (p.backend < 0) return "(not placed)";
    return r.session->backends()[p.backend]->name();
  }
  return "(no such node)";
}

bool BitEqual(const Tensor& a, const Tensor& b) {
  return a.type() == b.type() && a.shape() == b.shape() &&
         std::memcmp(a.raw(), b.raw(), a.bytes()) == 0;
}

Model ChainModel(ModelType type, ElementType t, int length, std::vector<int> unsupported,
                 Shape shape = {1, 8, 16, 16}) {
  Builder b(type);
  ValueId x = b.Input("x", t, shape);
  b.Output(Chain(b, x, t, length, std::move(unsupported)));
  return std::move(b.model);
}

TEST(Partition, OneUnsupportedOpInAChainOfThirtyGivesThreePartitions) {
  auto npu = std::make_shared<TestNpuBackend>();
  const Tensor x = Random(ElementType::kF16, {1, 8, 16, 16}, 1);
  Outcome r = RunWith(ChainModel(ModelType::kProgram, ElementType::kF16, 31, {15}),
                  WithNpu(npu), x);
  ASSERT_NE(r.plan, nullptr);
  const auto& parts = r.plan->partitioning.partitions;
  ASSERT_EQ(parts.size(), 3u) << PartitionResultToString(r.session->graph(), r.plan->partitioning,
                                                         r.session->backends());
  EXPECT_EQ(r.session->backends()[parts[0].backend]->name(), "test-npu");
  EXPECT_EQ(r.session->backends()[parts[1].backend]->name(), "ref");
  EXPECT_EQ(r.session->backends()[parts[2].backend]->name(), "test-npu");
  EXPECT_EQ(parts[1].nodes.size(), 1u);
  EXPECT_EQ(BackendOf(r, "odd15"), "ref");
  // The npu ran the other 30 nodes, on float16 inputs only.
  EXPECT_EQ(npu->log().size(), 30u);
  for (const auto& e : npu->log()) {
    for (ElementType t : e.input_types) EXPECT_EQ(t, ElementType::kF16) << e.node;
  }
  // Same fp16 arithmetic as the reference backend: bit-identical results.
  Outcome ref = RunWith(ChainModel(ModelType::kProgram, ElementType::kF16, 31, {15}),
                    SessionOptions::Reference(), x);
  ASSERT_EQ(r.outputs.size(), 1u);
  ASSERT_EQ(ref.outputs.size(), 1u);
  EXPECT_TRUE(BitEqual(r.outputs[0], ref.outputs[0]));
}

TEST(Partition, UnsupportedNodeReasonNamesTheBackend) {
  auto npu = std::make_shared<TestNpuBackend>();
  Outcome r = RunWith(ChainModel(ModelType::kProgram, ElementType::kF16, 5, {2}), WithNpu(npu),
                  Random(ElementType::kF16, {1, 8, 16, 16}, 2));
  ASSERT_NE(r.plan, nullptr);
  const Graph& g = r.session->graph();
  for (uint32_t i = 0; i < g.num_nodes(); ++i) {
    if (g.node(NodeId(i)).name != "odd2") continue;
    EXPECT_NE(r.plan->partitioning.placement[i].reason.find("test-npu: op Tanh is not in the npu's op set"),
              std::string::npos)
        << r.plan->partitioning.placement[i].reason;
  }
}

Model Diamond() {
  // a = Relu(x) [npu]; b = Tanh(a) [ref]; c.. = a chain on a [npu]; y = Add(b, c..) and a chain
  // after it [npu]. One partition holding a, the c chain and y would need b's result (computed
  // outside) in the middle of it: a cycle between partitions.
  Builder bld(ModelType::kProgram);
  ValueId x = bld.Input("x", ElementType::kF16, {1, 16, 64, 64});
  ValueId a = bld.Op("Relu", {x}, "a");
  ValueId b = bld.Op("Tanh", {a}, "b");
  ValueId c = Chain(bld, a, ElementType::kF16, 6, {});
  ValueId y = bld.Op("Add", {b, c}, "y");
  bld.Output(Chain(bld, y, ElementType::kF16, 6, {}));
  return std::move(bld.model);
}

TEST(Partition, DiamondAroundAnUnsupportedBranchHasNoCycle) {
  auto npu = std::make_shared<TestNpuBackend>();
  const Tensor in = Random(ElementType::kF16, {1, 16, 64, 64}, 3);
  Outcome r = RunWith(Diamond(), WithNpu(npu), in);
  ASSERT_NE(r.plan, nullptr);
  // Every partition only reads values produced by earlier partitions (or graph inputs).
  const auto& parts = r.plan->partitioning.partitions;
  const Graph& g = r.session->graph();
  std::vector<int> produced_in(g.num_values(), -1);
  for (size_t p = 0; p < parts.size(); ++p) {
    for (NodeId n : parts[p].nodes) {
      for (ValueId o : g.node(n).outputs) produced_in[o.v] = static_cast<int>(p);
    }
  }
  for (size_t p = 0; p < parts.size(); ++p) {
    for (ValueId v : parts[p].inputs) EXPECT_LT(produced_in[v.v], static_cast<int>(p));
  }
  EXPECT_EQ(parts.size(), 3u) << PartitionResultToString(g, r.plan->partitioning, r.session->backends());
  EXPECT_EQ(BackendOf(r, "a"), "test-npu");
  EXPECT_EQ(BackendOf(r, "b"), "ref");
  EXPECT_EQ(BackendOf(r, "y"), "test-npu");
  ASSERT_EQ(r.outputs.size(), 1u);
  // Reference: fp16 everywhere, same rounding.
  Outcome ref = RunWith(Diamond(), SessionOptions::Reference(), in);
  EXPECT_TRUE(BitEqual(r.outputs[0], ref.outputs[0]));
}

TEST(Partition, ProgramFp32ValuesNeverGoToAnFp16OnlyUnit) {
  auto npu = std::make_shared<TestNpuBackend>();
  Outcome r = RunWith(ChainModel(ModelType::kProgram, ElementType::kF32, 12, {}), WithNpu(npu),
                  Random(ElementType::kF32, {1, 8, 16, 16}, 4));
  ASSERT_NE(r.plan, nullptr);
  for (const Partition& p : r.plan->partitioning.partitions) {
    EXPECT_EQ(r.session->backends()[p.backend]->name(), "ref");
  }
  EXPECT_TRUE(npu->log().empty());
  const Graph& g = r.session->graph();
  for (uint32_t i = 0; i < g.num_nodes(); ++i) {
    const auto& reason = r.plan->partitioning.placement[i].reason;
    EXPECT_NE(reason.find("never lower"), std::string::npos) << g.node(NodeId(i)).name << ": " << reason;
  }
}

// Issue 3's "never lower": in a mixed program, the ops kept in fp32 never run with an fp16
// kernel, even when the fp16 unit is preferred and supports the op; pinning one there fails.
Model MixedModel() {
  Builder b(ModelType::kProgram);
  ValueId x = b.Input("x", ElementType::kF16, {1, 16, 64, 64});
  ValueId h = b.Op("Relu", {x}, "h1");
  h = b.Op("Sigmoid", {h}, "h2");
  h = Chain(b, h, ElementType::kF16, 4, {});
  ValueId f = b.Cast(h, kOnnxFloat);
  f = b.Op("Mul", {f, b.Const(ElementType::kF32, 3.0f)}, "f32_mul");
  f = b.Op("Add", {f, b.Const(ElementType::kF32, 0.5f)}, "f32_add");
  ValueId back = b.Cast(f, kOnnxFloat16);
  b.Output(Chain(b, b.Op("Abs", {back}, "h3"), ElementType::kF16, 4, {}));
  return std::move(b.model);
}

TEST(Partition, NeverLowerAProgramsFp32Ops) {
  auto npu = std::make_shared<TestNpuBackend>();
  const Tensor x = Random(ElementType::kF16, {1, 16, 64, 64}, 5);
  Outcome r = RunWith(MixedModel(), WithNpu(npu), x);
  ASSERT_NE(r.plan, nullptr);
  EXPECT_EQ(BackendOf(r, "h1"), "test-npu");
  EXPECT_EQ(BackendOf(r, "h3"), "test-npu");
  EXPECT_EQ(BackendOf(r, "f32_mul"), "ref");
  EXPECT_EQ(BackendOf(r, "f32_add"), "ref");
  for (const auto& e : npu->log()) {
    EXPECT_NE(e.node, "f32_mul");
    EXPECT_NE(e.node, "f32_add");
    for (ElementType t : e.input_types) EXPECT_EQ(t, ElementType::kF16) << e.node;
  }
  // The fp32 ops computed in fp32: the result equals the reference backend's bit for bit.
  Outcome ref = RunWith(MixedModel(), SessionOptions::Reference(), x);
  EXPECT_TRUE(BitEqual(r.outputs[0], ref.outputs[0]));

  // Pinning an fp32 op to the fp16-only unit is refused with the reason.
  SessionOptions pinned = WithNpu(npu);
  pinned.op_backend["Mul"] = "test-npu";
  auto s = Session::Create(MixedModel(), pinned);
  ASSERT_TRUE(s.ok());
  auto plan = (*s)->Plan({{"x", x}});
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("f32_mul"), std::string::npos) << plan.status().message();
  EXPECT_NE(plan.status().message().find("never lower"), std::string::npos) << plan.status().message();
}

TEST(Partition, NetworkModelRunsInTheUnitsPrecisionWithCastsAtItsBorders) {
  auto npu = std::make_shared<TestNpuBackend>();
  const Tensor x = Random(ElementType::kF32, {1, 8, 16, 16}, 6);
  Outcome r = RunWith(ChainModel(ModelType::kNetwork, ElementType::kF32, 12, {}), WithNpu(npu), x);
  ASSERT_NE(r.plan, nullptr);
  ASSERT_EQ(r.plan->partitioning.partitions.size(), 1u);
  ASSERT_EQ(r.plan->compiled.size(), 1u);
  const auto conv = r.plan->compiled[0].program->border_conversions();
  ASSERT_EQ(conv.size(), 2u);
  EXPECT_EQ(conv[0], "x: f32->f16");
  EXPECT_NE(conv[1].find("f16->f32"), std::string::npos);
  const Graph& g = r.session->graph();
  for (uint32_t i = 0; i < g.num_nodes(); ++i) {
    const NodePlacement& p = r.plan->partitioning.placement[i];
    EXPECT_EQ(p.stated, ElementType::kF32);
    EXPECT_EQ(p.actual, ElementType::kF16);
  }
  // It really computed in fp16: close to fp32, but not equal.
  Outcome ref = RunWith(ChainModel(ModelType::kNetwork, ElementType::kF32, 12, {}),
                    SessionOptions::Reference(), x);
  ASSERT_EQ(r.outputs[0].type(), ElementType::kF32);
  const double err = RelativeL2Error(r.outputs[0], ref.outputs[0]).value();
  std::printf("  npu ran %zu nodes; first outputs %g vs %g\n", npu->log().size(),
              r.outputs[0].data<float>()[0], ref.outputs[0].data<float>()[0]);
  EXPECT_GT(err, 0.0);
  EXPECT_LT(err, 1e-2);
}

TEST(Partition, FallbackOffListsEveryUnsupportedNodeWithItsReason) {
  auto npu = std::make_shared<TestNpuBackend>();
  SessionOptions o = WithNpu(npu);
  o.fallback = false;
  auto s = Session::Create(ChainModel(ModelType::kProgram, ElementType::kF16, 10, {3, 7}), o);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  auto plan = (*s)->Plan({{"x", Random(ElementType::kF16, {1, 8, 16, 16}, 7)}});
  ASSERT_FALSE(plan.ok());
  const std::string& m = plan.status().message();
  EXPECT_NE(m.find("2 node(s)"), std::string::npos) << m;
  EXPECT_NE(m.find("odd3"), std::string::npos) << m;
  EXPECT_NE(m.find("odd7"), std::string::npos) << m;
  EXPECT_NE(m.find("not in the npu's op set"), std::string::npos) << m;
}

TEST(Partition, ComputeUnitsCpuOnlyLeavesTheNpuOut) {
  auto npu = std::make_shared<TestNpuBackend>();
  SessionOptions o;
  o.extra_backends = {npu};
  o.units = ComputeUnits::kCpuOnly;
  Outcome r = RunWith(ChainModel(ModelType::kProgram, ElementType::kF16, 8, {}), o,
                  Random(ElementType::kF16, {1, 8, 16, 16}, 8));
  ASSERT_NE(r.session, nullptr);
  for (const auto& b : r.session->backends()) EXPECT_NE(b->name(), "test-npu");
  EXPECT_TRUE(npu->log().empty());
  // Naming the npu explicitly under cpu_only is an error that says why.
  o.backends = {"test-npu"};
  auto s = Session::Create(ChainModel(ModelType::kProgram, ElementType::kF16, 8, {}), o);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("cpu_only"), std::string::npos) << s.status().message();
}

TEST(Partition, PinnedOpRunsOnItsBackend) {
  auto npu = std::make_shared<TestNpuBackend>();
  SessionOptions o = WithNpu(npu);
  o.op_backend["Sigmoid"] = "ref";
  Outcome r = RunWith(ChainModel(ModelType::kProgram, ElementType::kF16, 12, {}, {1, 16, 64, 64}), o,
                      Random(ElementType::kF16, {1, 16, 64, 64}, 9));
  ASSERT_NE(r.plan, nullptr);
  const Graph& g = r.session->graph();
  int sigmoids = 0;
  int on_npu = 0;
  for (uint32_t i = 0; i < g.num_nodes(); ++i) {
    const NodePlacement& p = r.plan->partitioning.placement[i];
    const std::string backend = r.session->backends()[p.backend]->name();
    if (g.node(NodeId(i)).op_type == "Sigmoid") {
      ++sigmoids;
      EXPECT_EQ(backend, "ref");
    } else if (backend == "test-npu") {
      ++on_npu;
    } else {
      // Only a short run between two pinned nodes may be given back, and it says why.
      EXPECT_NE(p.reason.find("borders cost"), std::string::npos) << g.node(NodeId(i)).name;
    }
  }
  EXPECT_EQ(sigmoids, 2);
  EXPECT_GE(on_npu, 6);
  o.op_backend["Sigmoid"] = "no-such-backend";
  auto s = Session::Create(ChainModel(ModelType::kProgram, ElementType::kF16, 12, {}), o);
  ASSERT_TRUE(s.ok());
  auto plan = (*s)->Plan({{"x", Random(ElementType::kF16, {1, 8, 16, 16}, 9)}});
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("no-such-backend"), std::string::npos);
}

TEST(Partition, AStrayNodeIsGivenBackWhenItsBordersCostMoreThanItSaves) {
  // Tanh (ref) -> Relu (npu could) -> Tanh (ref) on a large tensor: two border crossings of
  // 2 MB each cost more than running one Relu on the reference backend.
  Builder b(ModelType::kProgram);
  ValueId x = b.Input("x", ElementType::kF16, {1, 64, 128, 128});
  x = b.Op("Tanh", {x}, "t1");
  x = b.Op("Relu", {x}, "stray");
  b.Output(b.Op("Tanh", {x}, "t2"));
  auto npu = std::make_shared<TestNpuBackend>();
  Outcome r = RunWith(std::move(b.model), WithNpu(npu), Random(ElementType::kF16, {1, 64, 128, 128}, 10));
  ASSERT_NE(r.plan, nullptr);
  EXPECT_EQ(BackendOf(r, "stray"), "ref");
  EXPECT_EQ(r.plan->partitioning.partitions.size(), 1u);
  EXPECT_GE(r.plan->partitioning.cost_rounds, 1);
  const Graph& g = r.session->graph();
  for (uint32_t i = 0; i < g.num_nodes(); ++i) {
    if (g.node(NodeId(i)).name == "stray") {
      EXPECT_NE(r.plan->partitioning.placement[i].reason.find("borders cost"), std::string::npos);
    }
  }
  EXPECT_TRUE(npu->log().empty());
}

// Issue 3: a `network` model typed fp16 runs in fp32 on today's CPU (only its inputs and outputs
// are fp16), so it is closer to the fp32 result than the same model run as a program.
TEST(Partition, Fp16NetworkModelComputesInFp32OnTheCpu) {
  auto make = [](ModelType type, ElementType t) {
    Builder b(type);
    ValueId x = b.Input("x", t, {1, 4, 16, 16});
    for (int i = 0; i < 40; ++i) {
      // Both constants are exact in fp16, so only the rounding of values differs.
      x = b.Op("Mul", {x, b.Const(t, 1.013671875f)});
      x = b.Op("Add", {x, b.Const(t, -0.0068359375f)});
    }
    b.Output(x);
    return std::move(b.model);
  };
  Tensor x32 = Random(ElementType::kF32, {1, 4, 16, 16}, 11);
  Tensor x16 = Tensor::Allocate(ElementType::kF16, x32.shape()).value();
  for (int64_t i = 0; i < x32.size(); ++i) x16.data<Half>()[i] = Half(x32.data<float>()[i]);
  for (int64_t i = 0; i < x32.size(); ++i) x32.data<float>()[i] = static_cast<float>(x16.data<Half>()[i]);
  Outcome fp32 = RunWith(make(ModelType::kProgram, ElementType::kF32), SessionOptions::Reference(), x32);
  // The program on the reference backend: every op rounds to fp16 (a CPU backend may raise a
  // program's fp16 ops to fp32, so the default backends would not show the difference).
  Outcome program =
      RunWith(make(ModelType::kProgram, ElementType::kF16), SessionOptions::Reference(), x16);
  Outcome network = RunWith(make(ModelType::kNetwork, ElementType::kF16), SessionOptions(), x16);
  ASSERT_EQ(network.outputs.size(), 1u);
  ASSERT_EQ(program.outputs.size(), 1u);
  EXPECT_EQ(network.outputs[0].type(), ElementType::kF16);
  ASSERT_FALSE(network.session->notes().empty());
  EXPECT_NE(network.session->notes()[0].find("raised to f32"), std::string::npos);
  auto widen = [](const Tensor& t) {
    Tensor w = Tensor::Allocate(ElementType::kF32, t.shape()).value();
    for (int64_t i = 0; i < t.size(); ++i) w.data<float>()[i] = static_cast<float>(t.data<Half>()[i]);
    return w;
  };
  const double err_network = RelativeL2Error(widen(network.outputs[0]), fp32.outputs[0]).value();
  const double err_program = RelativeL2Error(widen(program.outputs[0]), fp32.outputs[0]).value();
  std::printf("  fp16 network vs fp32: %.3g; fp16 program vs fp32: %.3g\n", err_network, err_program);
  EXPECT_LT(err_network, 5e-4);  // only the output's rounding to fp16
  EXPECT_LT(err_network, err_program);
}

}  // namespace
}  // namespace kiln
