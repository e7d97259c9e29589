// The fuse-qdq pass (src/passes/qdq_fusion.h) and Kiln's int8 kernels (ai.kiln QGemm, QAdd,
// QMul, QAveragePool, QGlobalAveragePool, QLut; src/backends/ref/quant_fused.cc).
//
// Each test builds a small QDQ model as ONNX Runtime's quantizer writes them (float input ->
// Q -> DQ -> float op -> Q -> DQ -> float output; weights int8 initializers with DQ, biases
// int32), runs it unfused node by node with the reference kernels (the float QDQ path), fuses
// it, checks that the fused graph holds the integer ops and no DQ -> op -> Q for them, and that
// its outputs are within one quantization step of the float path (counting exact matches).
// One model also runs in ONNX Runtime (tests/models/ort_run.js), which must agree within a step.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <random>

#include "backends/ref/eager.h"
#include "core/npy.h"
#include "ir/verifier.h"
#include "onnx/exporter.h"
#include "onnx/importer.h"
#include "passes/qdq_fusion.h"
#include "qdq_builder.h"
#include "runtime/session.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

using testing::Ints;
using testing::QdqBuilder;
using testing::RunSession;
using testing::Uniform;

// The unfused model node by node with the reference kernels: the float QDQ path.
std::vector<Tensor> RunFloatPath(const Model& m, const NamedTensors& inputs) {
  const Graph& g = m.graph;
  std::map<uint32_t, Tensor> env;
  for (uint32_t i = 0; i < g.num_values(); ++i) {
    if (g.value(ValueId(i)).kind == ValueKind::kInitializer)
      env[i] = g.value(ValueId(i)).initializer;
  }
  for (const auto& [name, t] : inputs) env[g.FindValue(name)->v] = t;
  auto order = g.TopologicalOrder();
  EXPECT_TRUE(order.ok());
  for (NodeId id : *order) {
    const Node& n = g.node(id);
    std::vector<Tensor> in;
    for (ValueId v : n.inputs) in.push_back(v.valid() ? env.at(v.v) : Tensor());
    auto out = RunNodeEager(n, in);
    EXPECT_TRUE(out.ok()) << out.status().ToString();
    if (!out.ok()) return {};
    for (size_t i = 0; i < n.outputs.size(); ++i) {
      if (n.outputs[i].valid()) env[n.outputs[i].v] = (*out)[i];
    }
  }
  std::vector<Tensor> outs;
  for (ValueId v : g.outputs()) outs.push_back(env.at(v.v));
  return outs;
}

std::map<std::string, int> OpCounts(const Graph& g) {
  std::map<std::string, int> c;
  for (const Node& n : g.nodes()) c[(n.domain.empty() ? "" : n.domain + "::") + n.op_type]++;
  return c;
}

// Whether a DQ feeds a node of `op` whose output a Q reads.
bool HasQdqAround(const Graph& g, const std::string& op) {
  std::map<uint32_t, const Node*> producer;
  for (const Node& n : g.nodes())
    for (ValueId o : n.outputs) producer[o.v] = &n;
  for (const Node& n : g.nodes()) {
    if (n.op_type != op || n.domain != "") continue;
    bool dq_in = false;
    for (ValueId v : n.inputs) {
      auto it = producer.find(v.v);
      dq_in = dq_in || (it != producer.end() && it->second->op_type == "DequantizeLinear");
    }
    bool q_out = false;
    for (const Node& r : g.nodes()) {
      q_out = q_out || (r.op_type == "QuantizeLinear" && r.inputs[0] == n.outputs[0]);
    }
    if (dq_in && q_out) return true;
  }
  return false;
}

// max |a - b| in steps of `scale`, and how many elements differ.
std::pair<double, int64_t> Steps(const Tensor& a, const Tensor& b, float scale) {
  EXPECT_EQ(a.shape(), b.shape());
  double worst = 0;
  int64_t differ = 0;
  for (int64_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    const double d = std::fabs(a.GetAsDouble(i) - b.GetAsDouble(i)) / scale;
    worst = std::max(worst, d);
    differ += d > 1e-3;
  }
  return {worst, differ};
}

// ONNX Runtime's outputs for `m` (it runs the QDQ model with its own int8 kernels), or nothing
// when onnxruntime-node is not installed (scripts/setup.sh installs it).
std::optional<std::vector<Tensor>> RunOrt(const Model& m, const NamedTensors& inputs) {
  const fs::path src = KILN_SOURCE_DIR;
  if (!fs::exists(src / ".deps/npm/node_modules/onnxruntime-node")) return std::nullopt;
  static int run = 0;
  const fs::path work =
      fs::temp_directory_path() / ("kiln_qdq_" + std::to_string(getpid()) + "_" + std::to_string(run++));
  fs::create_directories(work / "in");
  EXPECT_TRUE(ExportOnnxFile(m, (work / "m.onnx").string()).ok());
  for (const auto& [name, t] : inputs) {
    EXPECT_TRUE(WriteNpy((work / "in" / (name + ".npy")).string(), t).ok());
  }
  const std::string cmd = "node '" + (src / "tests/models/ort_run.js").string() + "' '" +
                          (work / "m.onnx").string() + "' '" + (work / "in").string() + "' '" +
                          (work / "ort").string() + "' 1 > /dev/null";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::vector<Tensor> outs;
  for (ValueId v : m.graph.outputs()) {
    auto t = ReadNpy((work / "ort" / (m.graph.value(v).name + ".npy")).string());
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    if (!t.ok()) return std::nullopt;
    outs.push_back(std::move(t).value());
  }
  fs::remove_all(work);
  return outs;
}

// How many distinct values `t` holds (a check that a test output is not all saturated).
size_t Distinct(const Tensor& t) {
  std::set<double> s;
  for (int64_t i = 0; i < t.size(); ++i) s.insert(t.GetAsDouble(i));
  return s.size();
}

struct Expect {
  std::map<std::string, int> ops;      // op -> count expected after fusion
  std::vector<std::string> no_qdq_around;  // ops that must not remain as DQ -> op -> Q
};

// Builds the model twice (`build` is deterministic), runs the float path on one and the fused
// model on the other (reference backend alone, and the default backends), and checks.
template <typename Build>
void CheckFusion(Build build, const NamedTensors& inputs, const Expect& expect,
                 const std::string& label) {
  QdqBuilder plain = build();
  QdqBuilder fused = build();
  const std::vector<Tensor> want = RunFloatPath(plain.model, inputs);
  auto r = FuseQdqPass(fused.model);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  for (const std::string& note : r->notes) std::printf("  [%s] %s\n", label.c_str(), note.c_str());
  ASSERT_TRUE(VerifyGraph(fused.model.graph).ok());
  const auto ops = OpCounts(fused.model.graph);
  for (const auto& [op, count] : expect.ops) {
    EXPECT_EQ(ops.count(op) ? ops.at(op) : 0, count) << label << ": count of " << op;
  }
  for (const std::string& op : expect.no_qdq_around) {
    EXPECT_FALSE(HasQdqAround(fused.model.graph, op)) << label << ": DQ -> " << op << " -> Q left";
  }
  // The fused model is not fused again by a session that fuses: FuseQdq finds nothing left.
  const std::vector<float> scales = fused.output_scales;
  const auto ref = RunSession(std::move(fused.model), inputs, SessionOptions::Reference());
  QdqBuilder fused2 = build();
  ASSERT_TRUE(FuseQdq(fused2.model).ok());
  const auto dflt = RunSession(std::move(fused2.model), inputs, SessionOptions::Threads(2));
  const auto ort = RunOrt(plain.model, inputs);
  ASSERT_EQ(ref.size(), want.size());
  ASSERT_EQ(dflt.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_GE(Distinct(want[i]), std::min<size_t>(static_cast<size_t>(want[i].size()) / 4, 8))
        << label << " output " << i << " is nearly constant: a weak test";
    const auto [worst, differ] = Steps(ref[i], want[i], scales[i]);
    std::printf("  [%s] output %zu %s: int8 vs float QDQ path: max %.0f step, %lld of %lld differ\n",
                label.c_str(), i, want[i].Describe().c_str(), worst,
                static_cast<long long>(differ), static_cast<long long>(want[i].size()));
    EXPECT_LE(worst, 1.0 + 1e-3) << label << " output " << i;
    const auto [worst2, differ2] = Steps(dflt[i], want[i], scales[i]);
    EXPECT_LE(worst2, 1.0 + 1e-3) << label << " output " << i << " (default backends)";
    if (!ort) continue;
    const auto [worst3, differ3] = Steps(ref[i], (*ort)[i], scales[i]);
    std::printf("  [%s] output %zu: int8 vs ONNX Runtime: max %.0f step, %lld differ\n",
                label.c_str(), i, worst3, static_cast<long long>(differ3));
    EXPECT_LE(worst3, 1.0 + 1e-3) << label << " output " << i << " vs ONNX Runtime";
  }
  if (!ort) {
    GTEST_SKIP() << label << ": the comparison with ONNX Runtime did not run: "
                 << ".deps/npm/node_modules/onnxruntime-node is missing (bash scripts/setup.sh "
                    "installs it); the int8 vs float QDQ checks above did run";
  }
}

constexpr auto kU8 = ElementType::kU8;
constexpr auto kI8 = ElementType::kI8;

TEST(QdqFusion, ConvU8PerTensorWithBiasAndReluFolded) {
  auto build = [] {
    QdqBuilder b(1);
    ValueId x = b.QuantAct(b.Input("x", {1, 3, 10, 10}), 2.0f / 255, 128, kU8);
    ValueId w = b.Weight({8, 3, 3, 3}, false);
    ValueId bias = b.Bias(8, 2.0f / 255, b.last_scales);
    Attributes a = Ints({{"pads", {1, 1, 1, 1}}, {"strides", {2, 1}}});
    ValueId y = b.Op("Relu", {b.Op("Conv", {x, w, bias}, std::move(a))});
    b.Output(y, 1.5f / 255, 0, kU8, "y");  // zero point 0: the Relu is the u8 range itself
    return b;
  };
  CheckFusion(build, {{"x", Uniform({1, 3, 10, 10}, -1, 1, 7)}},
              {{{"QLinearConv", 1}, {"Conv", 0}, {"Relu", 0}, {"Clip", 0}}, {"Conv"}}, "conv u8");
}

TEST(QdqFusion, ConvS8PerChannelGroupsClipKept) {
  auto build = [] {
    QdqBuilder b(2);
    ValueId x = b.QuantAct(b.Input("x", {2, 4, 7, 6}), 1.0f / 127, 3, kI8);
    ValueId w = b.Weight({6, 2, 3, 2}, true);
    ValueId bias = b.Bias(6, 1.0f / 127, b.last_scales);
    Attributes a = Ints({{"pads", {0, 1, 1, 0}}, {"dilations", {1, 2}}});
    a.Add(Attribute::Int("group", 2));
    ValueId lo = b.Init("lo", Tensor::FromVector(std::vector<float>{-0.2f}, {}));
    ValueId hi = b.Init("hi", Tensor::FromVector(std::vector<float>{0.6f}, {}));
    ValueId y = b.Op("Clip", {b.Op("Conv", {x, w, bias}, std::move(a)), lo, hi});
    b.Output(y, 1.2f / 255, -10, kI8, "y");
    return b;
  };
  CheckFusion(build, {{"x", Uniform({2, 4, 7, 6}, -1, 1, 8)}},
              {{{"QLinearConv", 1}, {"Clip", 1}, {"Conv", 0}}, {"Conv"}}, "conv s8 per-channel");
}

TEST(QdqFusion, DepthwiseConvU8PerChannelNoBias) {
  auto build = [] {
    QdqBuilder b(3);
    ValueId x = b.QuantAct(b.Input("x", {1, 5, 9, 9}), 2.0f / 255, 120, kU8);
    ValueId w = b.Weight({5, 1, 3, 3}, true);
    Attributes a = Ints({{"pads", {1, 1, 1, 1}}});
    a.Add(Attribute::Int("group", 5));
    b.Output(b.Op("Conv", {x, w}, std::move(a)), 1.0f / 255, 128, kU8, "y");
    return b;
  };
  CheckFusion(build, {{"x", Uniform({1, 5, 9, 9}, -1, 1, 9)}}, {{{"QLinearConv", 1}}, {"Conv"}},
              "depthwise");
}

TEST(QdqFusion, MatMulPerColumnAndGemmWithBias) {
  auto build = [] {
    QdqBuilder b(4);
    ValueId x = b.QuantAct(b.Input("x", {3, 16}), 2.0f / 255, 128, kU8);
    ValueId w = b.Weight({16, 10}, true, 1);
    ValueId h = b.Op("MatMul", {x, w});
    ValueId hq = b.QuantAct(h, 3.0f / 255, 128, kU8);
    ValueId w2 = b.Weight({7, 10}, true, 0);
    ValueId bias = b.Bias(7, 3.0f / 255, b.last_scales);
    Attributes a;
    a.Add(Attribute::Int("transB", 1));
    b.Output(b.Op("Gemm", {hq, w2, bias}, std::move(a)), 2.5f / 255, 128, kU8, "y");
    return b;
  };
  CheckFusion(build, {{"x", Uniform({3, 16}, -1, 1, 10)}},
              {{{"QLinearMatMul", 1}, {"ai.kiln::QGemm", 1}, {"Gemm", 0}}, {"MatMul", "Gemm"}},
              "matmul+gemm");
}

TEST(QdqFusion, AddMulAndAddRelu) {
  auto build = [] {
    QdqBuilder b(5);
    ValueId x = b.Input("x", {2, 3, 4, 5});
    ValueId y = b.Input("y", {3, 1, 5});
    ValueId xa = b.QuantAct(x, 2.0f / 255, 128, kU8);
    ValueId ya = b.QuantAct(y, 1.0f / 127, -3, kI8);
    ValueId s = b.Op("Add", {xa, ya});
    ValueId sq = b.QuantAct(s, 4.0f / 255, 128, kU8);
    ValueId p = b.Op("Mul", {sq, xa});
    b.Output(p, 4.0f / 255, 128, kU8, "prod");
    b.Output(b.Op("Relu", {b.Op("Add", {sq, xa})}), 3.0f / 255, 100, kU8, "sum_relu");
    return b;
  };
  CheckFusion(build, {{"x", Uniform({2, 3, 4, 5}, -1, 1, 11)}, {"y", Uniform({3, 1, 5}, -1, 1, 12)}},
              {{{"ai.kiln::QAdd", 2}, {"ai.kiln::QMul", 1}, {"Clip", 1}, {"Add", 0}, {"Mul", 0}},
               {"Add", "Mul"}},
              "add/mul");
}

TEST(QdqFusion, Pools) {
  auto build = [] {
    QdqBuilder b(6);
    ValueId x = b.QuantAct(b.Input("x", {1, 4, 9, 8}), 2.0f / 255, 128, kU8);
    Attributes avg = Ints({{"kernel_shape", {3, 3}}, {"pads", {1, 1, 1, 1}}, {"strides", {2, 2}}});
    b.Output(b.Op("AveragePool", {x}, avg), 1.0f / 255, 128, kU8, "avg");
    Attributes avg_pad = Ints({{"kernel_shape", {2, 3}}, {"pads", {1, 0, 1, 2}}});
    avg_pad.Add(Attribute::Int("count_include_pad", 1));
    avg_pad.Add(Attribute::Int("ceil_mode", 1));
    b.Output(b.Op("AveragePool", {x}, avg_pad), 1.0f / 255, 128, kU8, "avg_pad");
    b.Output(b.Op("GlobalAveragePool", {x}), 0.5f / 255, 128, kU8, "gap");
    Attributes mp = Ints({{"kernel_shape", {2, 2}}, {"strides", {2, 2}}});
    b.Output(b.Op("MaxPool", {x}, mp), 2.0f / 255, 128, kU8, "max");
    return b;
  };
  CheckFusion(build, {{"x", Uniform({1, 4, 9, 8}, -1, 1, 13)}},
              {{{"ai.kiln::QAveragePool", 2}, {"ai.kiln::QGlobalAveragePool", 1}, {"MaxPool", 1}},
               {"AveragePool", "GlobalAveragePool", "MaxPool"}},
              "pools");
}

TEST(QdqFusion, ConcatDataMovementAndLut) {
  auto build = [] {
    QdqBuilder b(7, 14);  // HardSwish is opset 14
    ValueId x = b.QuantAct(b.Input("x", {1, 2, 4, 4}), 1.0f / 127, 0, kI8);
    ValueId y = b.QuantAct(b.Input("y", {1, 3, 4, 4}), 1.0f / 127, 0, kI8);
    Attributes axis;
    axis.Add(Attribute::Int("axis", 1));
    ValueId c = b.QuantAct(b.Op("Concat", {x, y}, axis), 1.0f / 127, 0, kI8);
    ValueId t = b.QuantAct(b.Op("Transpose", {c}, Ints({{"perm", {0, 2, 3, 1}}})), 1.0f / 127, 0,
                           kI8);
    ValueId shape = b.Init("shape", Tensor::FromVector(std::vector<int64_t>{4, 20}, {2}));
    ValueId r = b.Op("Reshape", {t, shape});
    ValueId rq = b.QuantAct(r, 1.0f / 127, 0, kI8);
    b.Output(b.Op("Sigmoid", {rq}), 1.0f / 255, -128, kI8, "sig");
    b.Output(b.Op("Relu", {rq}), 1.0f / 127, 0, kI8, "relu");
    b.Output(b.Op("HardSwish", {rq}), 1.0f / 200, 20, kI8, "hswish");
    return b;
  };
  CheckFusion(build, {{"x", Uniform({1, 2, 4, 4}, -1, 1, 14)}, {"y", Uniform({1, 3, 4, 4}, -1, 1, 15)}},
              {{{"Concat", 1}, {"Transpose", 1}, {"Reshape", 1}, {"ai.kiln::QLut", 2}, {"Clip", 1},
                {"Sigmoid", 0}},
               {"Concat", "Transpose", "Reshape", "Sigmoid", "Relu", "HardSwish"}},
              "concat/lut");
}

// A float region between one DQ and one Q computing from that value alone (scalar affine,
// HardSwish written as PP-OCR writes it, scalar affine again): one QLut whose table is the float
// path's results. u8 and i8.
TEST(QdqFusion, ElementwiseRegionIsOneTable) {
  for (ElementType t : {kU8, kI8}) {
    const int64_t z = t == kU8 ? 128 : 0;
    auto build = [t, z] {
      QdqBuilder b(9);
      auto scalar = [&](float v) {
        return b.Init("c", Tensor::FromVector(std::vector<float>{v}, {}));
      };
      ValueId x = b.QuantAct(b.Input("x", {1, 3, 5, 7}), 0.04f, z + 3, t);
      ValueId a = b.Op("Add", {b.Op("Mul", {x, scalar(0.8f)}), scalar(0.3f)});
      ValueId c = b.Op("Clip", {b.Op("Add", {a, scalar(3.0f)}), scalar(0.0f), scalar(6.0f)});
      ValueId h = b.Op("Div", {b.Op("Mul", {a, c}), scalar(6.0f)});
      ValueId y = b.Op("Add", {b.Op("Mul", {scalar(1.3f), h}), scalar(-0.1f)});
      b.Output(y, 0.02f, z - 40, t, "y");
      return b;
    };
    CheckFusion(build, {{"x", Uniform({1, 3, 5, 7}, -5, 5, 3)}},
                {{{"ai.kiln::QLut", 1}, {"Mul", 0}, {"Add", 0}, {"Div", 0}, {"Clip", 0},
                  {"DequantizeLinear", 1}, {"QuantizeLinear", 1}},
                 {}},
                std::string("region ") + ElementTypeName(t));
  }
}

TEST(QdqFusion, BiasWithOtherScaleIsRescaledAndFloatBiasQuantized) {
  auto build = [] {
    QdqBuilder b(8);
    ValueId x = b.QuantAct(b.Input("x", {1, 2, 5, 5}), 2.0f / 255, 128, kU8);
    ValueId w = b.Weight({3, 2, 1, 1}, true);
    // The bias DQ'd with twice the expected scale; a second conv with a float bias.
    Tensor bq = Tensor::FromVector(std::vector<int32_t>{100, -250, 7}, {3});
    std::vector<float> s;
    for (float ws : b.last_scales) s.push_back(2 * (2.0f / 255) * ws);
    Attributes a;
    a.Add(Attribute::Int("axis", 0));
    ValueId bias = b.Op("DequantizeLinear", {b.Init("b", bq), b.Scales(s), b.Zp(ElementType::kI32, 0, 3)}, a);
    b.Output(b.Op("Conv", {x, w, bias}), 1.0f / 255, 128, kU8, "y1");
    ValueId fb = b.Init("fb", Tensor::FromVector(std::vector<float>{0.1f, -0.05f, 0.2f}, {3}));
    b.Output(b.Op("Conv", {x, w, fb}), 1.0f / 255, 128, kU8, "y2");
    return b;
  };
  CheckFusion(build, {{"x", Uniform({1, 2, 5, 5}, -1, 1, 16)}}, {{{"QLinearConv", 2}}, {"Conv"}},
              "bias rescale");
}

TEST(QdqFusion, LeavesWhatItCannotFuse) {
  QdqBuilder b(9);
  ValueId x = b.QuantAct(b.Input("x", {1, 2, 4, 4}), 2.0f / 255, 128, kU8);
  // A float (not DQ'd) weight: not a candidate. Softmax: not handled. A conv whose float output
  // is a graph output: its Q is not its only reader.
  ValueId wf = b.Init("wf", Uniform({2, 2, 1, 1}, -1, 1, 3));
  b.Output(b.Op("Conv", {x, wf}), 1.0f / 255, 128, kU8, "float_weight");
  b.Output(b.Op("Softmax", {x}), 1.0f / 255, 0, kU8, "softmax");
  ValueId w = b.Weight({2, 2, 1, 1}, false);
  ValueId c = b.Op("Conv", {x, w});
  b.g().MarkOutput(c);
  b.Output(c, 1.0f / 255, 128, kU8, "c_q");
  auto r = FuseQdqPass(b.model);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->rewrites, 0);
  const auto ops = OpCounts(b.model.graph);
  EXPECT_EQ(ops.at("Conv"), 2);
  EXPECT_EQ(ops.at("Softmax"), 1);
  bool noted = false;
  for (const std::string& n : r->notes) noted = noted || n.find("not fused") != std::string::npos;
  EXPECT_TRUE(noted);
}

// The Kiln-domain kernels on hand-computed values.
TEST(QdqKernels, HandComputedValues) {
  auto u8 = [](std::vector<uint8_t> v, Shape s) { return Tensor::FromVector(v, s); };
  auto f = [](float v) { return Tensor::FromVector(std::vector<float>{v}, {}); };
  auto zu = [](uint8_t v) { return Tensor::FromVector(std::vector<uint8_t>{v}, {}); };
  // QAdd: a = (q - 10) * 0.5, b = (q - 0) * 0.25, y = round((a + b) / 0.5) + 5.
  Node n;
  n.op_type = "QAdd";
  n.domain = kKilnDomain;
  n.opset = 1;
  n.inputs.assign(8, ValueId(0));
  n.outputs.assign(1, ValueId(0));
  auto out = RunNodeEager(n, {u8({10, 12, 20}, {3}), f(0.5f), zu(10), u8({1, 2, 255}, {3}),
                              f(0.25f), zu(0), f(0.5f), zu(5)});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  // (0 + 0.25) / 0.5 = 0.5 -> 0 (half to even) + 5 = 5; (1 + 0.5)/0.5 = 3 -> 8;
  // (5 + 63.75)/0.5 = 137.5 -> 138 + 5 = 143.
  EXPECT_EQ((*out)[0].data<uint8_t>()[0], 5);
  EXPECT_EQ((*out)[0].data<uint8_t>()[1], 8);
  EXPECT_EQ((*out)[0].data<uint8_t>()[2], 143);
  // QMul saturates: (255 - 0) * (255 - 0) * 1 / 1 -> 255.
  n.op_type = "QMul";
  out = RunNodeEager(n, {u8({255}, {1}), f(1), zu(0), u8({255}, {1}), f(1), zu(0), f(1), zu(0)});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ((*out)[0].data<uint8_t>()[0], 255);
  // QLut on i8 indexes by x + 128.
  n.op_type = "QLut";
  n.inputs.assign(2, ValueId(0));
  Tensor table = Tensor::Allocate(ElementType::kU8, {256}).value();
  for (int i = 0; i < 256; ++i) table.data<uint8_t>()[i] = static_cast<uint8_t>(255 - i);
  out = RunNodeEager(n, {Tensor::FromVector(std::vector<int8_t>{-128, 0, 127}, {3}), table});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ((*out)[0].data<uint8_t>()[0], 255);
  EXPECT_EQ((*out)[0].data<uint8_t>()[1], 127);
  EXPECT_EQ((*out)[0].data<uint8_t>()[2], 0);
  // A bad table is an error naming the node, not a crash.
  out = RunNodeEager(n, {Tensor::FromVector(std::vector<int8_t>{0}, {1}), u8({1, 2}, {2})});
  EXPECT_FALSE(out.ok());
}

// A small network: conv+relu, maxpool, depthwise conv, residual add, global pool, flatten, gemm.
QdqBuilder SmallNet() {
  QdqBuilder b(10);
  ValueId x = b.QuantAct(b.Input("x", {1, 3, 16, 16}), 2.0f / 255, 128, kU8);
  ValueId w1 = b.Weight({8, 3, 3, 3}, true);
  ValueId b1 = b.Bias(8, 2.0f / 255, b.last_scales);
  ValueId c1 = b.Op("Relu", {b.Op("Conv", {x, w1, b1}, Ints({{"pads", {1, 1, 1, 1}}}))});
  ValueId c1q = b.QuantAct(c1, 2.0f / 255, 0, kU8);
  ValueId p = b.QuantAct(b.Op("MaxPool", {c1q}, Ints({{"kernel_shape", {2, 2}}, {"strides", {2, 2}}})),
                         2.0f / 255, 0, kU8);
  ValueId w2 = b.Weight({8, 1, 3, 3}, true);
  ValueId b2 = b.Bias(8, 2.0f / 255, b.last_scales);
  Attributes dw = Ints({{"pads", {1, 1, 1, 1}}});
  dw.Add(Attribute::Int("group", 8));
  ValueId c2 = b.QuantAct(b.Op("Conv", {p, w2, b2}, std::move(dw)), 2.0f / 255, 128, kU8);
  ValueId s = b.QuantAct(b.Op("Add", {c2, p}), 3.0f / 255, 100, kU8);
  b.g().MarkOutput(s);  // a DQ output read by the next op and the graph: the DQ stays
  b.output_scales.push_back(3.0f / 255);
  ValueId g = b.QuantAct(b.Op("GlobalAveragePool", {s}), 1.0f / 255, 100, kU8);
  Attributes fl;
  fl.Add(Attribute::Int("axis", 1));
  ValueId f = b.QuantAct(b.Op("Flatten", {g}, fl), 1.0f / 255, 100, kU8);
  ValueId w3 = b.Weight({5, 8}, true, 0);
  ValueId b3 = b.Bias(5, 1.0f / 255, b.last_scales);
  Attributes tb;
  tb.Add(Attribute::Int("transB", 1));
  b.Output(b.Op("Gemm", {f, w3, b3}, std::move(tb)), 1.0f / 255, 128, kU8, "logits");
  return b;
}

TEST(QdqFusion, SmallNet) {
  const NamedTensors inputs = {{"x", Uniform({1, 3, 16, 16}, -1, 1, 17)}};
  CheckFusion(SmallNet, inputs,
              {{{"QLinearConv", 2}, {"MaxPool", 1}, {"ai.kiln::QAdd", 1},
                {"ai.kiln::QGlobalAveragePool", 1}, {"Flatten", 1}, {"ai.kiln::QGemm", 1},
                {"QuantizeLinear", 1}, {"DequantizeLinear", 2}, {"Relu", 0}},
               {"Conv", "MaxPool", "Add", "GlobalAveragePool", "Flatten", "Gemm"}},
              "small net");
  // The fused model (with its ai.kiln ops) survives export and import and runs the same.
  QdqBuilder fused = SmallNet();
  ASSERT_TRUE(FuseQdq(fused.model).ok());
  auto bytes = ExportOnnxBytes(fused.model);
  ASSERT_TRUE(bytes.ok()) << bytes.status().ToString();
  auto back = ImportOnnxBytes(bytes->data(), bytes->size());
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->opsets.count(kKilnDomain), 1u);
  const auto a = RunSession(std::move(fused.model), inputs, SessionOptions::Reference());
  const auto b = RunSession(std::move(back).value(), inputs, SessionOptions::Reference());
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(Steps(a[i], b[i], 1.0f).second, 0);
}

}  // namespace
}  // namespace kiln
