// Error statistics (core/error_stats.h) against values computed by hand, and `kiln compare`'s
// core (tools/kiln/compare.h) on an fp32 model and its fp16 copy, built here with the ONNX
// protobuf classes, where an intermediate value exceeds the f16 range (65504).
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <cmath>
#include <limits>

#include "core/error_stats.h"
#include "core/half.h"
#include "onnx/importer.h"

// The model tests call tools/kiln/compare.cc, which the unit test target compiles together with
// tools/kiln/tool_util.cc when it defines KILN_UNIT_TESTS_HAVE_TOOLS (see CMakeLists.txt).
#ifdef KILN_UNIT_TESTS_HAVE_TOOLS
#include "kiln/compare.h"
#endif

namespace kiln {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// ---------------------------------------------------------------------------------------------
// Statistics

TEST(ErrorStats, HandComputedValues) {
  // a - b = [0, 0, -1, 1]; rows [1,2]/[1,2] (argmax 1 and 1), [3,5]/[4,4] (argmax 1 and 0).
  Tensor a = Tensor::FromVector<float>({1, 2, 3, 5}, {2, 2});
  Tensor b = Tensor::FromVector<float>({1, 2, 4, 4}, {2, 2});
  auto s = ComputeErrorStats(a, b);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->elements, 4);
  EXPECT_DOUBLE_EQ(s->max_abs_error, 1.0);
  EXPECT_DOUBLE_EQ(s->max_rel_error, 0.25);           // 1/4 twice
  EXPECT_DOUBLE_EQ(s->rel_l2, std::sqrt(2.0 / 37.0));  // sum b^2 = 1+4+16+16
  EXPECT_DOUBLE_EQ(s->cosine, 37.0 / std::sqrt(39.0 * 37.0));  // <a,b> = 37, |a|^2 = 39
  EXPECT_DOUBLE_EQ(s->snr_db, 10 * std::log10(37.0 / 2.0));
  EXPECT_EQ(s->argmax_rows, 2);
  EXPECT_DOUBLE_EQ(s->argmax_agreement, 0.5);
  EXPECT_EQ(s->non_finite, 0);
}

TEST(ErrorStats, EqualTensorsOfDifferentTypes) {
  Tensor a = Tensor::FromVector<int32_t>({3, -1, 7}, {3});
  Tensor b = Tensor::FromVector<double>({3, -1, 7}, {3});
  auto s = ComputeErrorStats(a, b);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->max_abs_error, 0);
  EXPECT_EQ(s->max_rel_error, 0);
  EXPECT_EQ(s->rel_l2, 0);
  EXPECT_DOUBLE_EQ(s->cosine, 1.0);
  EXPECT_EQ(s->snr_db, kInf);
  EXPECT_EQ(s->argmax_rows, 1);
  EXPECT_EQ(s->argmax_agreement, 1.0);
}

TEST(ErrorStats, HalfCandidate) {
  // 0.1 in f16 is 0.0999755859375; 131008 overflows to inf.
  Tensor a = Tensor::FromVector<Half>({Half(0.1f), Half(131008.0f)}, {2});
  Tensor b = Tensor::FromVector<float>({0.1f, 131008.0f}, {2});
  auto s = ComputeErrorStats(a, b);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->non_finite, 1);
  EXPECT_EQ(s->max_abs_error, kInf);
  EXPECT_EQ(s->rel_l2, kInf);
  EXPECT_EQ(s->snr_db, -kInf);
  EXPECT_TRUE(std::isnan(s->cosine));
  // Only the finite element: |0.0999755859375 - 0.1f| exactly.
  auto f = ComputeErrorStats(Tensor::FromVector<Half>({Half(0.1f)}, {1}),
                             Tensor::FromVector<float>({0.1f}, {1}));
  ASSERT_TRUE(f.ok());
  EXPECT_DOUBLE_EQ(f->max_abs_error, std::fabs(0.0999755859375 - static_cast<double>(0.1f)));
  EXPECT_LT(f->rel_l2, 1e-3);
}

TEST(ErrorStats, NonFiniteElements) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  // Same NaN and same inf agree (left out of the sums); the inf at [0] is an overflow.
  Tensor a = Tensor::FromVector<float>({inf, 1, nan, -inf, 2}, {5});
  Tensor b = Tensor::FromVector<float>({1, 1, nan, -inf, 2}, {5});
  auto s = ComputeErrorStats(a, b);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->non_finite, 1);
  EXPECT_EQ(s->max_abs_error, kInf);
  EXPECT_EQ(s->max_rel_error, kInf);
  EXPECT_EQ(s->rel_l2, kInf);
  EXPECT_EQ(s->snr_db, -kInf);
  EXPECT_TRUE(std::isnan(s->cosine));
  EXPECT_EQ(s->argmax_agreement, 1.0);  // the first NaN (index 2) is the argmax of both
  // Without the overflow the rest agrees exactly.
  Tensor a2 = Tensor::FromVector<float>({1, 1, nan, -inf, 2}, {5});
  auto t = ComputeErrorStats(a2, b);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->non_finite, 0);
  EXPECT_EQ(t->max_abs_error, 0);
  EXPECT_EQ(t->snr_db, kInf);
  EXPECT_DOUBLE_EQ(t->cosine, 1.0);
  EXPECT_EQ(t->argmax_agreement, 1.0);
  // A NaN candidate where the reference is finite counts as non-finite too; a non-finite
  // reference with a finite candidate is a mismatch but not counted.
  auto u = ComputeErrorStats(Tensor::FromVector<float>({nan, 5}, {2}),
                             Tensor::FromVector<float>({0, inf}, {2}));
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->non_finite, 1);
  EXPECT_EQ(u->max_abs_error, kInf);
}

TEST(ErrorStats, ZeroReference) {
  auto s = ComputeErrorStats(Tensor::FromVector<float>({0, 1e-6f}, {2}),
                             Tensor::FromVector<float>({0, 0}, {2}));
  ASSERT_TRUE(s.ok());
  EXPECT_DOUBLE_EQ(s->max_rel_error, static_cast<double>(1e-6f) / kRelativeErrorFloor);
  EXPECT_EQ(s->rel_l2, kInf);
  EXPECT_EQ(s->cosine, 0.0);
  EXPECT_EQ(s->snr_db, -kInf);
  auto z = ComputeErrorStats(Tensor::FromVector<float>({0, 0}, {2}),
                             Tensor::FromVector<float>({0, 0}, {2}));
  ASSERT_TRUE(z.ok());
  EXPECT_EQ(z->rel_l2, 0);
  EXPECT_EQ(z->cosine, 1.0);
  EXPECT_EQ(z->snr_db, kInf);
}

TEST(ErrorStats, PoolsSamples) {
  ErrorStatsAccumulator acc;
  // Sample 1: a-b = [1,-1]; sum err^2 2, sum b^2 2, sum a^2 4, <a,b> 2; argmax 0/0 agree.
  ASSERT_TRUE(acc.Add(Tensor::FromVector<float>({2, 0}, {2}), Tensor::FromVector<float>({1, 1}, {2})).ok());
  // Sample 2: a-b = [0,1]; 1, 18, 25, 21; max rel 1/3; argmax 1/0 disagree.
  ASSERT_TRUE(acc.Add(Tensor::FromVector<float>({3, 4}, {2}), Tensor::FromVector<float>({3, 3}, {2})).ok());
  const ErrorStats s = acc.Result();
  EXPECT_EQ(acc.samples(), 2);
  EXPECT_EQ(s.elements, 4);
  EXPECT_DOUBLE_EQ(s.max_abs_error, 1.0);
  EXPECT_DOUBLE_EQ(s.max_rel_error, 1.0);
  EXPECT_DOUBLE_EQ(s.rel_l2, std::sqrt(3.0 / 20.0));
  EXPECT_DOUBLE_EQ(s.cosine, 23.0 / std::sqrt(29.0 * 20.0));
  EXPECT_DOUBLE_EQ(s.snr_db, 10 * std::log10(20.0 / 3.0));
  EXPECT_EQ(s.argmax_rows, 2);
  EXPECT_DOUBLE_EQ(s.argmax_agreement, 0.5);
}

TEST(ErrorStats, Errors) {
  auto s = ComputeErrorStats(Tensor::FromVector<float>({1, 2}, {2}),
                             Tensor::FromVector<float>({1, 2}, {1, 2}));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("shapes differ"), std::string::npos) << s.status().message();
  Tensor str = Tensor::Allocate(ElementType::kString, {1}).value();
  EXPECT_FALSE(ComputeErrorStats(str, str).ok());
}

TEST(ErrorStats, AllFinite) {
  EXPECT_TRUE(AllFinite(Tensor::FromVector<float>({1, -2}, {2})));
  EXPECT_FALSE(AllFinite(Tensor::FromVector<float>({1, std::numeric_limits<float>::infinity()}, {2})));
  EXPECT_FALSE(AllFinite(Tensor::FromVector<double>({std::nan("")}, {1})));
  EXPECT_FALSE(AllFinite(Tensor::FromVector<Half>({Half(70000.0f)}, {1})));
  EXPECT_TRUE(AllFinite(Tensor::FromVector<double>({1e300}, {1})));
  EXPECT_TRUE(AllFinite(Tensor::FromVector<int64_t>({5}, {1})));
}

// ---------------------------------------------------------------------------------------------
// Comparing models
#ifdef KILN_UNIT_TESTS_HAVE_TOOLS

onnx::ValueInfoProto TensorInfo(const std::string& name, int elem, std::vector<int64_t> dims) {
  onnx::ValueInfoProto vi;
  vi.set_name(name);
  auto* tt = vi.mutable_type()->mutable_tensor_type();
  tt->set_elem_type(elem);
  for (int64_t d : dims) tt->mutable_shape()->add_dim()->set_dim_value(d);
  return vi;
}

void AddScalar(onnx::GraphProto* g, const std::string& name, float v, bool f16) {
  auto* t = g->add_initializer();
  t->set_name(name);
  if (f16) {
    t->set_data_type(onnx::TensorProto::FLOAT16);
    const uint16_t bits = FloatToHalfBits(v);
    t->set_raw_data(std::string(reinterpret_cast<const char*>(&bits), 2));
  } else {
    t->set_data_type(onnx::TensorProto::FLOAT);
    t->add_float_data(v);
  }
}

void AddNode(onnx::GraphProto* g, const std::string& op, const std::string& name,
             std::vector<std::string> in, const std::string& out) {
  auto* n = g->add_node();
  n->set_op_type(op);
  n->set_name(name);
  for (const auto& i : in) n->add_input(i);
  n->add_output(out);
}

void AddCast(onnx::GraphProto* g, const std::string& name, const std::string& in,
             const std::string& out, int to) {
  AddNode(g, "Cast", name, {in}, out);
  auto* a = g->mutable_node(g->node_size() - 1)->add_attribute();
  a->set_name("to");
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(to);
}

enum class Io { kF32, kF32WithCasts, kF16 };

// y = x * 300 * 300 / 300 / 300 (h2 = x * 90000 exceeds 65504 in f16 for x > 0.728), y2 = x + x.
// compute_f16: the same graph in f16 with f16 initializers; `io` says how its inputs and
// outputs are typed (f32 with Cast nodes at the boundary, or f16).
Model OverflowModel(bool compute_f16, Io io) {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(17);
  auto* g = m.mutable_graph();
  g->set_name("overflow");
  const int io_type = io == Io::kF16 ? onnx::TensorProto::FLOAT16 : onnx::TensorProto::FLOAT;
  *g->add_input() = TensorInfo("x", io_type, {2, 4});
  *g->add_output() = TensorInfo("y", io_type, {2, 4});
  *g->add_output() = TensorInfo("y2", io_type, {2, 4});
  AddScalar(g, "c300", 300, compute_f16);
  std::string x = "x", y = "y", y2 = "y2";
  if (io == Io::kF32WithCasts) {
    AddCast(g, "cast_in", "x", "x16", onnx::TensorProto::FLOAT16);
    x = "x16";
    y = "y16";
    y2 = "y2_16";
  }
  AddNode(g, "Mul", "mul1", {x, "c300"}, "h1");
  AddNode(g, "Mul", "mul2", {"h1", "c300"}, "h2");
  AddNode(g, "Div", "div1", {"h2", "c300"}, "h3");
  AddNode(g, "Div", "div2", {"h3", "c300"}, y);
  AddNode(g, "Add", "add", {x, x}, y2);
  if (io == Io::kF32WithCasts) {
    AddCast(g, "cast_out", "y16", "y", onnx::TensorProto::FLOAT);
    AddCast(g, "cast_out2", "y2_16", "y2", onnx::TensorProto::FLOAT);
  }
  const std::string bytes = m.SerializeAsString();
  auto model = ImportOnnxBytes(bytes.data(), bytes.size());
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  return std::move(model).value();
}

// Three of the eight values overflow in f16: 0.8, 0.9 and 0.95 times 90000 exceed 65504.
cli::CompareOptions GivenX() {
  cli::CompareOptions o;
  o.inputs["x"] = Tensor::FromVector<float>({0.1f, 0.5f, 0.8f, 0.9f, 0.2f, 0.3f, 0.95f, 0.05f}, {2, 4});
  return o;
}

void ExpectOverflowLocated(const cli::CompareResult& r) {
  ASSERT_TRUE(r.first_non_finite.has_value());
  EXPECT_FALSE(r.first_non_finite->is_graph_input);
  EXPECT_EQ(r.first_non_finite->op_type, "Mul");
  EXPECT_EQ(r.first_non_finite->node_name, "mul2");
  EXPECT_EQ(r.first_non_finite->value_name, "h2");
  ASSERT_EQ(r.outputs.size(), 2u);
  const ErrorStats& y = r.outputs[0].stats;
  EXPECT_EQ(r.outputs[0].name, "y");
  EXPECT_EQ(y.non_finite, 3);
  EXPECT_EQ(y.max_abs_error, kInf);
  EXPECT_EQ(y.rel_l2, kInf);
  EXPECT_EQ(y.snr_db, -kInf);
  EXPECT_TRUE(std::isnan(y.cosine));
  // Row 0 [.1 .5 .8 .9]: argmax 3 in f32, 2 (first inf) in f16; row 1 agrees (the .95).
  EXPECT_EQ(y.argmax_rows, 2);
  EXPECT_DOUBLE_EQ(y.argmax_agreement, 0.5);
  // y2 = 2x only carries the rounding of x to f16 (relative 2^-11 at most).
  const ErrorStats& y2 = r.outputs[1].stats;
  EXPECT_EQ(r.outputs[1].name, "y2");
  EXPECT_EQ(y2.non_finite, 0);
  EXPECT_GT(y2.max_abs_error, 0);
  EXPECT_LE(y2.max_rel_error, 1.0 / 2048);
  EXPECT_LT(y2.rel_l2, 1e-3);
  EXPECT_GT(y2.snr_db, 60);
  EXPECT_EQ(y2.argmax_agreement, 1.0);
  const std::string table = cli::FormatCompareTable(r);
  EXPECT_NE(table.find("first non-finite in candidate: Mul 'mul2' output 'h2'"), std::string::npos)
      << table;
}

TEST(CompareModels, LocatesF16OverflowWithCasts) {
  auto r = cli::CompareModels(OverflowModel(false, Io::kF32), OverflowModel(true, Io::kF32WithCasts),
                              GivenX());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ExpectOverflowLocated(*r);
  EXPECT_EQ(r->outputs[0].candidate_type, "f32");
  EXPECT_TRUE(r->notes.empty());
  const std::string json = cli::CompareResultToJson(*r, "ref.onnx", "cand.onnx");
  EXPECT_NE(json.find("\"node\": \"mul2\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"rel_l2\": \"inf\""), std::string::npos) << json;
}

TEST(CompareModels, CastsInputsToTheCandidatesF16) {
  auto r = cli::CompareModels(OverflowModel(false, Io::kF32), OverflowModel(true, Io::kF16),
                              GivenX());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ExpectOverflowLocated(*r);
  EXPECT_EQ(r->outputs[0].candidate_type, "f16");
  ASSERT_EQ(r->notes.size(), 1u);
  EXPECT_NE(r->notes[0].find("input 'x' cast from f32"), std::string::npos) << r->notes[0];
}

TEST(CompareModels, RandomSamplesWithoutOverflow) {
  // The same f32 model twice: exact agreement over 3 random draws, nothing non-finite.
  cli::CompareOptions o;
  o.samples = 3;
  o.seed = 7;
  auto r = cli::CompareModels(OverflowModel(false, Io::kF32), OverflowModel(false, Io::kF32), o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(r->first_non_finite.has_value());
  EXPECT_EQ(r->samples, 3);
  for (const auto& oc : r->outputs) {
    EXPECT_EQ(oc.stats.elements, 24);
    EXPECT_EQ(oc.stats.max_abs_error, 0);
    EXPECT_EQ(oc.stats.snr_db, kInf);
  }
  EXPECT_NE(cli::FormatCompareTable(*r).find("first non-finite in candidate: none"), std::string::npos);
}

TEST(CompareModels, MissingOutputIsAnError) {
  // A candidate whose only output is named "z": the reference's "y" is missing.
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(17);
  auto* g = m.mutable_graph();
  *g->add_input() = TensorInfo("x", onnx::TensorProto::FLOAT, {2, 4});
  *g->add_output() = TensorInfo("z", onnx::TensorProto::FLOAT, {2, 4});
  AddNode(g, "Relu", "relu", {"x"}, "z");
  const std::string bytes = m.SerializeAsString();
  auto cand = ImportOnnxBytes(bytes.data(), bytes.size());
  ASSERT_TRUE(cand.ok()) << cand.status().ToString();
  auto r = cli::CompareModels(OverflowModel(false, Io::kF32), std::move(cand).value(), GivenX());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("no output named 'y'"), std::string::npos)
      << r.status().message();
}

#endif  // KILN_UNIT_TESTS_HAVE_TOOLS

}  // namespace
}  // namespace kiln
