// The XNNPACK backend's own loops for ops of opsets 18-23 (src/backends/xnnpack/xnn_ops_modern.cc:
// Gelu, Mish, GroupNormalization, RMSNormalization) against the reference kernels: small graphs
// run in a default session (XNNPACK first) and in a Reference() session; outputs must agree and
// the plan must keep transformer / CNN blocks using these ops in one XNNPACK partition.
#include <gtest/gtest.h>

#include <random>
#include <string>

#include "core/cpu_features.h"
#include "core/tensor_compare.h"
#include "runtime/executor.h"
#include "runtime/session.h"

namespace kiln {
namespace {

constexpr ElementType kF32 = ElementType::kF32;

Tensor Random(const Shape& shape, uint32_t seed, float lo = -1, float hi = 1) {
  Tensor t = Tensor::Allocate(kF32, shape).value();
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  for (int64_t i = 0; i < t.size(); ++i) t.data<float>()[i] = u(gen);
  return t;
}

Attributes Attrs(std::vector<Attribute> list) {
  Attributes at;
  for (auto& a : list) at.Add(a);
  return at;
}

// A model around `g` (one graph input "x") at `opset`.
struct Built {
  Model model;
  Tensor input;
  NamedTensors more_inputs;  // graph inputs after "x"

  // An op type pinned to XNNPACK: a lone small node would otherwise stay on the reference
  // kernels (its partition's borders cost more than XNNPACK saves).
  std::string pin;
};

struct Placement {
  int partitions = 0;
  int on_xnnpack = 0;  // nodes in XNNPACK partitions
  std::string reasons;
};

Placement PlanOf(Session& s, const NamedTensors& in) {
  Placement p;
  auto plan = s.Plan(in);
  EXPECT_TRUE(plan.ok()) << plan.status().ToString();
  if (!plan.ok()) return p;
  const auto& pr = (*plan)->partitioning;
  p.partitions = static_cast<int>(pr.partitions.size());
  for (const Partition& part : pr.partitions) {
    if (s.backends()[static_cast<size_t>(part.backend)]->name() == "xnnpack") {
      p.on_xnnpack += static_cast<int>(part.nodes.size());
    }
  }
  for (const NodePlacement& np : pr.placement) {
    if (!np.reason.empty()) p.reasons += np.reason + "; ";
  }
  return p;
}

// Runs `b` on the default session and the reference one; returns the default plan's placement
// after checking every output within `tol` (relative L2).
Placement RunBoth(Built b, double tol = 1e-5) {
  NamedTensors in = {{"x", b.input}};
  for (auto& t : b.more_inputs) in.push_back(t);
  Model copy = CopyModel(b.model);
  auto ref = Session::Create(std::move(copy), SessionOptions::Reference());
  EXPECT_TRUE(ref.ok()) << ref.status().ToString();
  SessionOptions opts = SessionOptions::Threads(2);
  if (!b.pin.empty()) opts.op_backend[b.pin] = "xnnpack";
  auto fast = Session::Create(std::move(b.model), opts);
  EXPECT_TRUE(fast.ok()) << fast.status().ToString();
  if (!ref.ok() || !fast.ok()) return {};
  auto want = (*ref)->Run(in);
  auto got = (*fast)->Run(in);
  EXPECT_TRUE(want.ok()) << want.status().ToString();
  EXPECT_TRUE(got.ok()) << got.status().ToString();
  if (!want.ok() || !got.ok()) return {};
  EXPECT_EQ(want->size(), got->size());
  for (size_t i = 0; i < want->size() && i < got->size(); ++i) {
    EXPECT_EQ((*want)[i].shape(), (*got)[i].shape());
    auto err = RelativeL2Error((*got)[i], (*want)[i]);
    EXPECT_TRUE(err.ok()) << err.status().ToString();
    if (err.ok()) EXPECT_LE(*err, tol) << "output " << i;
  }
  return PlanOf(**fast, in);
}

// One node `op` over input x (and constant inputs `consts`).
Built OneNode(const std::string& op, int opset, const Tensor& x, std::vector<Tensor> consts,
              Attributes attrs) {
  Built b;
  b.input = x;
  Graph& g = b.model.graph;
  ValueId xv = g.AddValue("x", x.type(), DimVector(x.shape().begin(), x.shape().end()));
  g.MarkInput(xv);
  std::vector<ValueId> ins = {xv};
  for (size_t i = 0; i < consts.size(); ++i) {
    ins.push_back(g.AddInitializer("c" + std::to_string(i), std::move(consts[i])));
  }
  ValueId y = g.AddValue("y");
  g.AddNode("node", op, ins, {y}, std::move(attrs), "", opset);
  g.MarkOutput(y);
  b.model.opsets[""] = opset;
  b.model.ir_version = 9;
  b.pin = op;
  return b;
}

TEST(XnnpackModern, GeluAndMish) {
  for (const char* mode : {"none", "tanh"}) {
    Placement p = RunBoth(OneNode("Gelu", 20, Random({2, 5, 7}, 1, -4, 4), {},
                                  Attrs({Attribute::String("approximate", mode)})));
    EXPECT_EQ(p.partitions, 1);
    EXPECT_EQ(p.on_xnnpack, 1) << p.reasons;
  }
  // Rank 4: stored NHWC inside the partition.
  Placement p = RunBoth(OneNode("Mish", 18, Random({1, 3, 4, 5}, 2, -6, 6), {}, {}));
  EXPECT_EQ(p.on_xnnpack, 1) << p.reasons;
}

TEST(XnnpackModern, GroupNormalization) {
  // Opset 18: scale/bias per group; opset 21: per channel. Ranks 3, 4 (NHWC storage) and 5.
  struct Case {
    int opset;
    Shape x;
    int64_t groups;
  };
  for (const Case& c : {Case{18, {2, 6, 5}, 3}, Case{21, {2, 6, 4, 5}, 2},
                        Case{21, {1, 8, 3, 4, 2}, 4}, Case{18, {1, 4, 3, 3}, 4}}) {
    const int64_t k = c.opset >= 21 ? c.x[1] : c.groups;
    Placement p = RunBoth(OneNode(
        "GroupNormalization", c.opset, Random(c.x, 3, -2, 3), {Random({k}, 4), Random({k}, 5)},
        Attrs({Attribute::Int("num_groups", c.groups), Attribute::Float("epsilon", 1e-4f)})));
    EXPECT_EQ(p.on_xnnpack, 1) << "opset " << c.opset << ": " << p.reasons;
  }
}

TEST(XnnpackModern, RmsNormalization) {
  // Last axis (transformer layout); axis 1 of a rank-4 value (read back in logical order);
  // a scalar scale.
  Placement p =
      RunBoth(OneNode("RMSNormalization", 23, Random({2, 7, 16}, 6), {Random({16}, 7)}, {}));
  EXPECT_EQ(p.on_xnnpack, 1) << p.reasons;
  p = RunBoth(OneNode("RMSNormalization", 23, Random({2, 3, 4, 5}, 8), {Random({3, 4, 5}, 9)},
                      Attrs({Attribute::Int("axis", 1), Attribute::Float("epsilon", 1e-3f)})));
  EXPECT_EQ(p.on_xnnpack, 1) << p.reasons;
  p = RunBoth(OneNode("RMSNormalization", 23, Random({4, 6}, 10), {Random({}, 11)}, {}));
  EXPECT_EQ(p.on_xnnpack, 1) << p.reasons;
  // A scale that broadcasts inside the normalized axes stays on the reference kernel, with why.
  Built declined = OneNode("RMSNormalization", 23, Random({2, 3, 4}, 12), {Random({3, 1}, 13)},
                           Attrs({Attribute::Int("axis", 1)}));
  declined.pin.clear();
  p = RunBoth(std::move(declined));
  EXPECT_EQ(p.on_xnnpack, 0);
  EXPECT_NE(p.reasons.find("scale broadcasts"), std::string::npos) << p.reasons;
}

TEST(XnnpackModern, RotaryEmbedding) {
  // 4-D X, constant caches indexed by constant position_ids (rows 2..6 of a 10-row cache).
  Tensor ids = Tensor::Allocate(ElementType::kI64, {2, 5}).value();
  for (int64_t i = 0; i < 10; ++i) ids.data<int64_t>()[i] = 2 + i % 5 + (i / 5) * 3;
  Built b = OneNode("RotaryEmbedding", 23, Random({2, 3, 5, 8}, 80),
                    {Random({10, 4}, 81), Random({10, 4}, 82), std::move(ids)}, {});
  Placement p = RunBoth(std::move(b));
  EXPECT_EQ(p.on_xnnpack, 1) << p.reasons;
  // 3-D X (3 heads of 8), interleaved, rotary_embedding_dim 4, computed caches per token.
  Built c;
  c.input = Random({2, 5, 24}, 83);
  c.more_inputs = {{"cos", Random({2, 5, 2}, 84)}, {"sin", Random({2, 5, 2}, 85)}};
  Graph& g = c.model.graph;
  std::vector<ValueId> ins = {g.AddValue("x", kF32, DimVector{2, 5, 24}),
                              g.AddValue("cos", kF32, DimVector{2, 5, 2}),
                              g.AddValue("sin", kF32, DimVector{2, 5, 2})};
  for (ValueId v : ins) g.MarkInput(v);
  ValueId y = g.AddValue("y");
  g.AddNode("rope", "RotaryEmbedding", ins, {y},
            Attrs({Attribute::Int("num_heads", 3), Attribute::Int("interleaved", 1),
                   Attribute::Int("rotary_embedding_dim", 4)}),
            "", 23);
  g.MarkOutput(y);
  c.model.opsets[""] = 23;
  c.model.ir_version = 9;
  c.pin = "RotaryEmbedding";
  p = RunBoth(std::move(c));
  EXPECT_EQ(p.on_xnnpack, 1) << p.reasons;
}

TEST(XnnpackModern, Attention) {
  // 4-D, grouped-query heads, a constant float mask, is_causal and softcap (pinned: one node).
  Built b;
  b.input = Random({2, 4, 3, 8}, 60, -2, 2);
  b.more_inputs = {{"k", Random({2, 2, 5, 8}, 61, -2, 2)}, {"v", Random({2, 2, 5, 6}, 62)}};
  Graph& g = b.model.graph;
  std::vector<ValueId> ins;
  ins.push_back(g.AddValue("x", kF32, DimVector{2, 4, 3, 8}));
  ins.push_back(g.AddValue("k", kF32, DimVector{2, 2, 5, 8}));
  ins.push_back(g.AddValue("v", kF32, DimVector{2, 2, 5, 6}));
  for (ValueId v : ins) g.MarkInput(v);
  ins.push_back(g.AddInitializer("mask", Random({2, 1, 3, 5}, 63)));
  ValueId y = g.AddValue("y");
  g.AddNode("attn", "Attention", ins, {y},
            Attrs({Attribute::Int("is_causal", 1), Attribute::Float("softcap", 2.5f)}), "", 23);
  g.MarkOutput(y);
  b.model.opsets[""] = 23;
  b.model.ir_version = 9;
  b.pin = "Attention";
  Placement p = RunBoth(std::move(b));
  EXPECT_EQ(p.on_xnnpack, 1) << p.reasons;
}

TEST(XnnpackModern, AttentionWithKvCache) {
  // 3-D Q/K/V (4 query heads over 2 KV heads), past_key/past_value of 3 positions, is_causal:
  // Y, present_key and present_value (4-D, stored NHWC inside the partition) all compared.
  Built b;
  b.input = Random({1, 2, 32}, 90);
  b.more_inputs = {{"k", Random({1, 2, 16}, 91)},
                   {"v", Random({1, 2, 12}, 92)},
                   {"past_k", Random({1, 2, 3, 8}, 93)},
                   {"past_v", Random({1, 2, 3, 6}, 94)}};
  Graph& g = b.model.graph;
  std::vector<ValueId> ins = {g.AddValue("x", kF32, DimVector{1, 2, 32}),
                              g.AddValue("k", kF32, DimVector{1, 2, 16}),
                              g.AddValue("v", kF32, DimVector{1, 2, 12}),
                              ValueId(),
                              g.AddValue("past_k", kF32, DimVector{1, 2, 3, 8}),
                              g.AddValue("past_v", kF32, DimVector{1, 2, 3, 6})};
  for (ValueId v : ins) {
    if (v.valid()) g.MarkInput(v);
  }
  ValueId y = g.AddValue("y"), pk = g.AddValue("present_k"), pv = g.AddValue("present_v");
  g.AddNode("attn", "Attention", ins, {y, pk, pv},
            Attrs({Attribute::Int("q_num_heads", 4), Attribute::Int("kv_num_heads", 2),
                   Attribute::Int("is_causal", 1)}),
            "", 23);
  for (ValueId v : {y, pk, pv}) g.MarkOutput(v);
  b.model.opsets[""] = 23;
  b.model.ir_version = 9;
  b.pin = "Attention";
  Placement p = RunBoth(std::move(b));
  EXPECT_EQ(p.on_xnnpack, 1) << p.reasons;
}

TEST(XnnpackModern, SelfAttentionBlockIsOnePartition) {
  // x -> MatMul Q/K/V projections -> Attention (3-D, 4 query heads over 2 KV heads, a constant
  // boolean mask with a fully masked row) -> MatMul: one partition.
  Built b;
  b.input = Random({1, 6, 32}, 70);
  Graph& g = b.model.graph;
  ValueId x = g.AddValue("x", kF32, DimVector{1, 6, 32});
  g.MarkInput(x);
  ValueId q = g.AddValue("q"), k = g.AddValue("k"), v = g.AddValue("v"), a = g.AddValue("a"),
          y = g.AddValue("y");
  g.AddNode("wq", "MatMul", {x, g.AddInitializer("Wq", Random({32, 32}, 71, -0.5f, 0.5f))}, {q}, {},
            "", 23);
  g.AddNode("wk", "MatMul", {x, g.AddInitializer("Wk", Random({32, 16}, 72, -0.5f, 0.5f))}, {k}, {},
            "", 23);
  g.AddNode("wv", "MatMul", {x, g.AddInitializer("Wv", Random({32, 16}, 73))}, {v}, {}, "", 23);
  Tensor mask = Tensor::Allocate(ElementType::kBool, {6, 6}).value();
  for (int64_t i = 0; i < 36; ++i) mask.data<bool>()[i] = (i % 7) != 3 && i / 6 != 4;
  g.AddNode("attn", "Attention", {q, k, v, g.AddInitializer("mask", std::move(mask))}, {a},
            Attrs({Attribute::Int("q_num_heads", 4), Attribute::Int("kv_num_heads", 2)}), "", 23);
  g.AddNode("wo", "MatMul", {a, g.AddInitializer("Wo", Random({32, 32}, 74, -0.5f, 0.5f))}, {y}, {},
            "", 23);
  g.MarkOutput(y);
  b.model.opsets[""] = 23;
  b.model.ir_version = 9;
  Placement p = RunBoth(std::move(b));
  EXPECT_EQ(p.partitions, 1) << p.reasons;
  EXPECT_EQ(p.on_xnnpack, 5) << p.reasons;
}

Tensor ToF16(const Tensor& t) {
  Tensor h = Tensor::Allocate(ElementType::kF16, t.shape()).value();
  for (int64_t i = 0; i < t.size(); ++i) h.data<Half>()[i] = Half(t.data<float>()[i]);
  return h;
}

TEST(XnnpackModern, Float16RaisedToFloat32) {
  // f16 values are computed in f32 inside the partition; the reference rounds each op to f16.
  Built b = OneNode("GroupNormalization", 21, ToF16(Random({1, 4, 5, 6}, 100, -2, 2)),
                    {ToF16(Random({4}, 101)), ToF16(Random({4}, 102))},
                    Attrs({Attribute::Int("num_groups", 2)}));
  Placement p = RunBoth(std::move(b), 2e-3);
  EXPECT_EQ(p.on_xnnpack, 1) << p.reasons;
  Built r =
      OneNode("RMSNormalization", 23, ToF16(Random({3, 16}, 103)), {ToF16(Random({16}, 104))}, {});
  p = RunBoth(std::move(r), 2e-3);
  EXPECT_EQ(p.on_xnnpack, 1) << p.reasons;
}

TEST(XnnpackModern, TransformerBlockIsOnePartition) {
  // x -> MatMul -> Gelu(tanh) -> MatMul -> Add x -> RMSNormalization, twice: one partition.
  Built b;
  b.input = Random({1, 16, 32}, 20, -2, 2);
  Graph& g = b.model.graph;
  ValueId cur = g.AddValue("x", kF32, DimVector{1, 16, 32});
  g.MarkInput(cur);
  for (int i = 0; i < 2; ++i) {
    const std::string k = std::to_string(i);
    ValueId m1 = g.AddValue("m1_" + k), ge = g.AddValue("ge" + k), m2 = g.AddValue("m2_" + k),
            r = g.AddValue("r" + k), y = g.AddValue("y" + k);
    g.AddNode("fc1_" + k, "MatMul",
              {cur, g.AddInitializer("w1_" + k, Random({32, 64}, 21 + i, -0.3f, 0.3f))}, {m1}, {},
              "", 23);
    g.AddNode("gelu" + k, "Gelu", {m1}, {ge}, Attrs({Attribute::String("approximate", "tanh")}), "",
              23);
    g.AddNode("fc2_" + k, "MatMul",
              {ge, g.AddInitializer("w2_" + k, Random({64, 32}, 31 + i, -0.3f, 0.3f))}, {m2}, {},
              "", 23);
    g.AddNode("res" + k, "Add", {m2, cur}, {r}, {}, "", 23);
    g.AddNode("rms" + k, "RMSNormalization", {r, g.AddInitializer("s" + k, Random({32}, 41 + i))},
              {y}, {}, "", 23);
    cur = y;
  }
  g.MarkOutput(cur);
  b.model.opsets[""] = 23;
  b.model.ir_version = 9;
  Placement p = RunBoth(std::move(b));
  EXPECT_EQ(p.partitions, 1) << p.reasons;
  EXPECT_EQ(p.on_xnnpack, 10) << p.reasons;
}

TEST(XnnpackModern, CnnBlockIsOnePartition) {
  // Conv -> GroupNormalization-21 -> Mish -> Conv -> GroupNormalization-21 -> Relu.
  Built b;
  b.input = Random({1, 4, 9, 9}, 50);
  Graph& g = b.model.graph;
  ValueId x = g.AddValue("x", kF32, DimVector{1, 4, 9, 9});
  g.MarkInput(x);
  auto pads = Attrs({Attribute::Ints("pads", {1, 1, 1, 1})});
  auto gn = Attrs({Attribute::Int("num_groups", 4)});
  ValueId c1 = g.AddValue("c1"), n1 = g.AddValue("n1"), a1 = g.AddValue("a1"),
          c2 = g.AddValue("c2"), n2 = g.AddValue("n2"), y = g.AddValue("y");
  g.AddNode("conv1", "Conv", {x, g.AddInitializer("w1", Random({8, 4, 3, 3}, 51, -0.5f, 0.5f))},
            {c1}, pads, "", 21);
  g.AddNode("gn1", "GroupNormalization",
            {c1, g.AddInitializer("s1", Random({8}, 52)), g.AddInitializer("b1", Random({8}, 53))},
            {n1}, gn, "", 21);
  g.AddNode("mish", "Mish", {n1}, {a1}, {}, "", 21);
  g.AddNode("conv2", "Conv", {a1, g.AddInitializer("w2", Random({8, 8, 3, 3}, 54, -0.3f, 0.3f))},
            {c2}, pads, "", 21);
  g.AddNode("gn2", "GroupNormalization",
            {c2, g.AddInitializer("s2", Random({8}, 55)), g.AddInitializer("b2", Random({8}, 56))},
            {n2}, gn, "", 21);
  g.AddNode("relu", "Relu", {n2}, {y}, {}, "", 21);
  g.MarkOutput(y);
  b.model.opsets[""] = 21;
  b.model.ir_version = 9;
  Placement p = RunBoth(std::move(b));
  EXPECT_EQ(p.partitions, 1) << p.reasons;
  EXPECT_EQ(p.on_xnnpack, 6) << p.reasons;
}

}  // namespace
}  // namespace kiln

namespace kiln {
namespace {

// Ops that shattered torchvision's convnext_tiny (47 partitions), swin_t (111) and densenet121
// (7) into XNNPACK islands around reference kernels; each now runs inside XNNPACK partitions.
TEST(XnnpackModern, LayerNormalization) {
  // Rank 4 over the last axis (stored NHWC inside the partition: the loop reads logical rows),
  // over the last two axes, a scalar scale without bias, and a rank-3 transformer shape.
  struct Case {
    Shape x;
    int64_t axis;
    Shape scale;
    bool bias;
  };
  const Case cases[] = {{{1, 7, 7, 96}, -1, {96}, true},
                        {{2, 3, 5, 6}, 2, {5, 6}, true},
                        {{2, 9, 16}, -1, {1}, false},
                        {{1, 4, 33}, 1, {4, 33}, true}};
  uint32_t seed = 40;
  for (const Case& c : cases) {
    std::vector<Tensor> consts = {Random(c.scale, seed++, 0.5f, 1.5f)};
    if (c.bias) consts.push_back(Random(c.scale, seed++));
    Placement p = RunBoth(OneNode("LayerNormalization", 17, Random(c.x, seed++, -3, 5), consts,
                                  Attrs({Attribute::Int("axis", c.axis),
                                         Attribute::Float("epsilon", 1e-3f)})));
    EXPECT_EQ(p.on_xnnpack, 1) << p.reasons;
  }
  // Every ISA path of the row loop (AVX-512, AVX2, portable) on a row with a vector tail.
  Built one = OneNode("LayerNormalization", 17, Random({3, 5, 77}, 90, -2, 6),
                      {Random({77}, 91, 0.5f, 1.5f), Random({77}, 92)}, {});
  auto ref = Session::Create(CopyModel(one.model), SessionOptions::Reference());
  ASSERT_TRUE(ref.ok());
  auto want = (*ref)->Run({{"x", one.input}});
  ASSERT_TRUE(want.ok());
  for (CpuIsa isa : {CpuIsa::kPortable, CpuIsa::kAvx2, CpuIsa::kAvx512}) {
    SessionOptions o = SessionOptions::Threads(1);
    o.isa = isa;
    o.op_backend["LayerNormalization"] = "xnnpack";
    auto s = Session::Create(CopyModel(one.model), o);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    auto got = (*s)->Run({{"x", one.input}});
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_LE(*RelativeL2Error((*got)[0], (*want)[0]), 1e-6) << CpuIsaName(isa);
  }
}

TEST(XnnpackModern, ConstantPad) {
  // Opset 13 (pads and value inputs) on a rank-4 value (stored NHWC: pads permuted) and rank 3;
  // opset 2 (attributes). Negative pads (cropping) and other modes stay on the reference kernels.
  Tensor pads4 = Tensor::FromVector<int64_t>({0, 1, 2, 0, 0, 2, 1, 3}, {8});
  Tensor value = Tensor::FromVector<float>({-0.75f}, {});
  Placement p = RunBoth(OneNode("Pad", 13, Random({1, 3, 5, 4}, 50), {pads4, value}, {}));
  EXPECT_EQ(p.on_xnnpack, 1) << p.reasons;
  Tensor pads3 = Tensor::FromVector<int64_t>({1, 0, 2, 0, 3, 1}, {6});
  p = RunBoth(OneNode("Pad", 13, Random({2, 4, 6}, 51), {pads3}, {}));
  EXPECT_EQ(p.on_xnnpack, 1) << p.reasons;
  p = RunBoth(OneNode("Pad", 2, Random({2, 4, 6}, 52), {},
                      Attrs({Attribute::Ints("pads", {0, 1, 1, 0, 2, 0}),
                             Attribute::Float("value", 2.5f)})));
  EXPECT_EQ(p.on_xnnpack, 1) << p.reasons;
  // Not pinned: the partitioner places them on the reference kernels and says why.
  Tensor crop = Tensor::FromVector<int64_t>({0, 0, -1, 0, 0, 0}, {6});
  Built b = OneNode("Pad", 13, Random({2, 4, 6}, 53), {crop}, {});
  b.pin.clear();
  p = RunBoth(std::move(b));
  EXPECT_EQ(p.on_xnnpack, 0);
  EXPECT_NE(p.reasons.find("negative pads"), std::string::npos) << p.reasons;
  b = OneNode("Pad", 13, Random({2, 4, 6}, 54), {pads3}, Attrs({Attribute::String("mode", "reflect")}));
  b.pin.clear();
  p = RunBoth(std::move(b));
  EXPECT_EQ(p.on_xnnpack, 0);
  EXPECT_NE(p.reasons.find("mode is not constant"), std::string::npos) << p.reasons;
}

TEST(XnnpackModern, IdentityAndDropoutThatDropsNothing) {
  Placement p = RunBoth(OneNode("Identity", 16, Random({1, 3, 4, 5}, 60), {}, {}));
  EXPECT_EQ(p.on_xnnpack, 1) << p.reasons;
  // Inference (no training_mode), and training_mode true with ratio 0 (swin_t's export).
  p = RunBoth(OneNode("Dropout", 13, Random({2, 6, 5}, 61), {}, {}));
  EXPECT_EQ(p.on_xnnpack, 1) << p.reasons;
  Tensor zero = Tensor::FromVector<float>({0.0f}, {});
  Tensor yes = Tensor::FromVector<bool>({true}, {});
  p = RunBoth(OneNode("Dropout", 13, Random({2, 6, 5}, 62), {zero, yes}, {}));
  EXPECT_EQ(p.on_xnnpack, 1) << p.reasons;
  // A real dropout in training mode draws random masks: reference kernels.
  Tensor half = Tensor::FromVector<float>({0.5f}, {});
  Built b = OneNode("Dropout", 13, Random({2, 6, 5}, 63), {half, yes}, {});
  auto s = Session::Create(std::move(b.model), SessionOptions::Threads(1));
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  const Placement q = PlanOf(**s, {{"x", b.input}});
  EXPECT_EQ(q.on_xnnpack, 0);
  EXPECT_NE(q.reasons.find("ratio other than a constant 0"), std::string::npos) << q.reasons;
}

}  // namespace
}  // namespace kiln

namespace kiln {
namespace {

// ShuffleNet's channel shuffle (Reshape to [N, g, C/g, H, W], Transpose (0,2,1,3,4), Reshape
// back) between convolutions: one own gather step on the NHWC pixels, no Transpose step, the
// reference's result.
TEST(XnnpackModern, ChannelShuffleIsOneGather) {
  Built b;
  Graph& g = b.model.graph;
  b.model.opsets[""] = 13;
  b.model.ir_version = 8;
  b.input = Random({2, 12, 5, 7}, 70);
  ValueId x = g.AddValue("x", kF32, DimVector{2, 12, 5, 7});
  g.MarkInput(x);
  ValueId c1 = g.AddValue("c1"), r1 = g.AddValue("r1"), t = g.AddValue("t"), r2 = g.AddValue("r2"),
          y = g.AddValue("y");
  g.AddNode("conv", "Conv", {x, g.AddInitializer("w", Random({12, 12, 1, 1}, 71))}, {c1}, {}, "", 13);
  g.AddNode("r1", "Reshape",
            {c1, g.AddInitializer("s1", Tensor::FromVector<int64_t>({2, 3, 4, 5, 7}, {5}))}, {r1}, {},
            "", 13);
  g.AddNode("tr", "Transpose", {r1}, {t}, Attrs({Attribute::Ints("perm", {0, 2, 1, 3, 4})}), "", 13);
  g.AddNode("r2", "Reshape",
            {t, g.AddInitializer("s2", Tensor::FromVector<int64_t>({2, 12, 5, 7}, {4}))}, {r2}, {}, "",
            13);
  g.AddNode("relu", "Relu", {r2}, {y}, {}, "", 13);
  g.MarkOutput(y);
  Model copy = CopyModel(b.model);
  Placement p = RunBoth(std::move(b));
  EXPECT_EQ(p.partitions, 1);
  EXPECT_EQ(p.on_xnnpack, 5) << p.reasons;
  SessionOptions o = SessionOptions::Threads(1);
  o.profile = true;
  auto s = Session::Create(std::move(copy), o);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  ASSERT_TRUE((*s)->Run({{"x", Random({2, 12, 5, 7}, 70)}}).ok());
  int transposes = 0, gathers = 0;
  for (const ProfileRow& row : (*s)->Profile()) {
    transposes += row.op_type == "Transpose";
    gathers += row.op_type == "Reshape" && row.what.rfind("own loop", 0) == 0;
  }
  EXPECT_EQ(transposes, 0);
  EXPECT_EQ(gathers, 1);
}

}  // namespace
}  // namespace kiln

namespace kiln {
namespace {

// MatMul of two computed operands (attention's Q.K^T and P.V) on every ISA path of the own
// batched GEMM (AVX-512 8x32 blocks, AVX2 4x16, portable), with tails in every dimension and
// broadcast batch dims, against the reference.
TEST(XnnpackModern, BatchedMatMulEveryIsa) {
  Model m;
  m.opsets[""] = 13;
  m.ir_version = 8;
  Graph& g = m.graph;
  ValueId a = g.AddValue("a", kF32, DimVector{2, 3, 37, 19});
  ValueId bv = g.AddValue("b", kF32, DimVector{1, 3, 19, 41});
  g.MarkInput(a);
  g.MarkInput(bv);
  ValueId y = g.AddValue("y");
  g.AddNode("mm", "MatMul", {a, bv}, {y}, {}, "", 13);
  g.MarkOutput(y);
  const NamedTensors in = {{"a", Random({2, 3, 37, 19}, 80)}, {"b", Random({1, 3, 19, 41}, 81)}};
  auto ref = Session::Create(CopyModel(m), SessionOptions::Reference());
  ASSERT_TRUE(ref.ok());
  auto want = (*ref)->Run(in);
  ASSERT_TRUE(want.ok());
  for (CpuIsa isa : {CpuIsa::kPortable, CpuIsa::kAvx2, CpuIsa::kAvx512}) {
    SessionOptions o = SessionOptions::Threads(2);
    o.isa = isa;
    o.op_backend["MatMul"] = "xnnpack";
    auto s = Session::Create(CopyModel(m), o);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    auto got = (*s)->Run(in);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_LE(*RelativeL2Error((*got)[0], (*want)[0]), 1e-6) << CpuIsaName(isa);
  }
}

}  // namespace
}  // namespace kiln
