// Graph passes (src/passes): the pass manager, BatchNormalization folding, bias-Add fusion and
// dead-code elimination on small models (results before vs after on the reference backend), the
// cases that must be left alone, `kiln convert`'s use of them, and PP-OCRv4 det/rec/cls before vs
// after the default passes.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>

#include "onnx/importer.h"
#include "passes/pass_manager.h"
#include "runtime/session.h"
#include "test_images.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

const fs::path kSource = KILN_SOURCE_DIR;
const fs::path kOcr =
    kSource / ".deps" / "npm" / "node_modules" / "@gutenye" / "ocr-models" / "assets";

std::vector<float> Random(size_t n, float lo, float hi, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

Tensor RandomTensor(const Shape& shape, uint64_t seed) {
  Tensor t = Tensor::Allocate(ElementType::kF32, shape).value();
  std::vector<float> v = Random(static_cast<size_t>(t.size()), -1, 1, seed);
  std::copy(v.begin(), v.end(), t.data<float>());
  return t;
}

size_t Count(const std::vector<int64_t>& dims) {
  size_t n = 1;
  for (int64_t d : dims) n *= static_cast<size_t>(d);
  return n;
}

// Builds small ONNX models in memory.
class Builder {
 public:
  explicit Builder(int opset = 13) {
    m_.set_ir_version(8);
    m_.add_opset_import()->set_version(opset);
    g_ = m_.mutable_graph();
    g_->set_name("test");
  }
  void Input(const std::string& name, const std::vector<int64_t>& dims,
             int type = onnx::TensorProto::FLOAT) {
    Info(g_->add_input(), name, dims, type);
  }
  void Output(const std::string& name, int type = onnx::TensorProto::FLOAT) {
    auto* vi = g_->add_output();
    vi->set_name(name);
    vi->mutable_type()->mutable_tensor_type()->set_elem_type(type);
  }
  // A float initializer (or, with as_node, a Constant node) holding `vals`.
  void Const(const std::string& name, const std::vector<int64_t>& dims,
             const std::vector<float>& vals, bool as_node = false,
             int type = onnx::TensorProto::FLOAT) {
    onnx::TensorProto t;
    t.set_name(name);
    t.set_data_type(type);
    for (int64_t d : dims) t.add_dims(d);
    for (float v : vals) {
      if (type == onnx::TensorProto::FLOAT16) {
        Tensor h = Tensor::Allocate(ElementType::kF16, {}).value();
        h.data<Half>()[0] = v;
        t.add_int32_data(h.data<Half>()[0].bits);
      } else {
        t.add_float_data(v);
      }
    }
    if (!as_node) {
      *g_->add_initializer() = t;
      return;
    }
    auto* n = Node("Constant", {}, {name}, name + "_const");
    auto* a = n->add_attribute();
    a->set_name("value");
    a->set_type(onnx::AttributeProto::TENSOR);
    *a->mutable_t() = t;
  }
  void RandomConst(const std::string& name, const std::vector<int64_t>& dims, float lo, float hi,
                   uint64_t seed, bool as_node = false) {
    Const(name, dims, Random(Count(dims), lo, hi, seed), as_node);
  }
  // BatchNormalization parameters name_{scale,B,mean,var} with `c` channels.
  std::vector<std::string> BnParams(const std::string& name, int64_t c, uint64_t seed) {
    RandomConst(name + "_scale", {c}, 0.5f, 1.5f, seed);
    RandomConst(name + "_B", {c}, -0.5f, 0.5f, seed + 1);
    RandomConst(name + "_mean", {c}, -0.5f, 0.5f, seed + 2);
    RandomConst(name + "_var", {c}, 0.1f, 2.f, seed + 3);
    return {name + "_scale", name + "_B", name + "_mean", name + "_var"};
  }
  onnx::NodeProto* Node(const std::string& op, const std::vector<std::string>& ins,
                        const std::vector<std::string>& outs, const std::string& name) {
    auto* n = g_->add_node();
    n->set_name(name);
    n->set_op_type(op);
    for (const auto& i : ins) n->add_input(i);
    for (const auto& o : outs) n->add_output(o);
    return n;
  }
  onnx::NodeProto* Bn(const std::string& x, const std::string& y, const std::string& name,
                      int64_t c, uint64_t seed) {
    std::vector<std::string> ins = {x};
    for (const std::string& p : BnParams(name, c, seed)) ins.push_back(p);
    auto* n = Node("BatchNormalization", ins, {y}, name);
    Float(n, "epsilon", 1e-3f);
    return n;
  }
  static void Int(onnx::NodeProto* n, const std::string& name, int64_t v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(v);
  }
  static void Ints(onnx::NodeProto* n, const std::string& name, const std::vector<int64_t>& v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INTS);
    for (int64_t x : v) a->add_ints(x);
  }
  static void Float(onnx::NodeProto* n, const std::string& name, float v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::FLOAT);
    a->set_f(v);
  }
  Model Import() const {
    std::string bytes = m_.SerializeAsString();
    auto model = ImportOnnxBytes(bytes.data(), bytes.size());
    EXPECT_TRUE(model.ok()) << model.status().ToString();
    return std::move(model).value();
  }
  const onnx::ModelProto& proto() const { return m_; }

 private:
  static void Info(onnx::ValueInfoProto* vi, const std::string& name,
                   const std::vector<int64_t>& dims, int type) {
    vi->set_name(name);
    auto* tt = vi->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(type);
    for (int64_t d : dims) tt->mutable_shape()->add_dim()->set_dim_value(d);
  }
  onnx::ModelProto m_;
  onnx::GraphProto* g_;
};

std::vector<Tensor> RunModel(Model model, const NamedTensors& inputs) {
  auto session = Session::Create(std::move(model), SessionOptions::Reference(2));
  EXPECT_TRUE(session.ok()) << session.status().ToString();
  if (!session.ok()) return {};
  auto outs = (*session)->Run(inputs);
  EXPECT_TRUE(outs.ok()) << outs.status().ToString();
  return outs.ok() ? *outs : std::vector<Tensor>{};
}

// ||a-b|| / ||b|| in double.
double RelL2(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  if (a.shape() != b.shape()) return INFINITY;
  double num = 0, den = 0;
  for (int64_t i = 0; i < a.size(); ++i) {
    const double x = a.GetAsDouble(i), y = b.GetAsDouble(i);
    if (!std::isfinite(x)) return INFINITY;
    num += (x - y) * (x - y);
    den += y * y;
  }
  return std::sqrt(num / den);
}

// max |a-b| / max |b|.
double MaxRel(const Tensor& a, const Tensor& b) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < a.size(); ++i) {
    num = std::max(num, std::abs(a.GetAsDouble(i) - b.GetAsDouble(i)));
    den = std::max(den, std::abs(b.GetAsDouble(i)));
  }
  return num / den;
}

int CountOp(const Graph& g, const std::string& op) {
  int c = 0;
  for (const Node& n : g.nodes()) c += n.op_type == op;
  return c;
}

const Node* FindNode(const Graph& g, const std::string& name) {
  for (const Node& n : g.nodes()) {
    if (n.name == name) return &n;
  }
  return nullptr;
}

// Runs `passes` on a copy of the model and compares outputs with the original's on `inputs`
// (within 1e-5 relative); returns the pass results and the rewritten model in *out.
std::vector<PassResult> CheckPassesKeepResults(const Builder& b, const NamedTensors& inputs,
                                               const std::vector<std::string>& passes,
                                               Model* out = nullptr) {
  Model model = b.Import();
  auto results = RunPasses(model, passes);
  EXPECT_TRUE(results.ok()) << results.status().ToString();
  if (!results.ok()) return {};
  const Graph& g = model.graph;
  std::vector<std::string> out_names;
  for (ValueId v : g.outputs()) out_names.push_back(g.value(v).name);
  Model ref = b.Import();
  std::vector<std::string> ref_names;
  for (ValueId v : ref.graph.outputs()) ref_names.push_back(ref.graph.value(v).name);
  EXPECT_EQ(out_names, ref_names) << "graph outputs keep their names";
  std::vector<Tensor> want = RunModel(std::move(ref), inputs);
  Model copy = b.Import();
  EXPECT_TRUE(RunPasses(copy, passes).ok());
  std::vector<Tensor> got = RunModel(std::move(copy), inputs);
  EXPECT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size() && i < want.size(); ++i) {
    EXPECT_EQ(got[i].type(), want[i].type());
    EXPECT_LE(MaxRel(got[i], want[i]), 1e-5) << "output " << i;
    EXPECT_LE(RelL2(got[i], want[i]), 1e-5) << "output " << i;
  }
  if (out) *out = std::move(model);
  return std::move(results).value();
}

const std::vector<std::string> kDefault = DefaultOptimizationPasses();

// Rewrites by the pass `name` over all its runs.
int Rewrites(const std::vector<PassResult>& results, const std::string& name) {
  int n = 0;
  for (const PassResult& r : results) n += r.name == name ? r.rewrites : 0;
  return n;
}
std::string Notes(const std::vector<PassResult>& results, const std::string& name) {
  std::string s;
  for (const PassResult& r : results) {
    for (const std::string& n : r.notes) s += r.name == name ? n + "\n" : "";
  }
  return s;
}

TEST(PassManager, UnknownPassIsNamedAndNothingRuns) {
  Builder b;
  b.Input("x", {1, 3, 4, 4});
  b.Output("y");
  b.RandomConst("W", {2, 3, 1, 1}, -1, 1, 1);
  b.Node("Conv", {"x", "W"}, {"c"}, "conv");
  b.Bn("c", "y", "bn", 2, 10);
  Model model = b.Import();
  auto r = RunPasses(model, {"fold-batchnorm", "fold-everything"});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("'fold-everything'"), std::string::npos)
      << r.status().message();
  EXPECT_NE(r.status().message().find("eliminate-dead"), std::string::npos) << "lists known passes";
  EXPECT_EQ(CountOp(model.graph, "BatchNormalization"), 1) << "nothing ran";
  EXPECT_EQ(model.metadata.count("kiln.passes"), 0u);
}

TEST(PassManager, DefaultPassesRecordedInMetadata) {
  Builder b;
  b.Input("x", {1, 1, 2, 2});
  b.Output("y");
  b.Node("Relu", {"x"}, {"y"}, "relu");
  Model model = b.Import();
  ASSERT_EQ(kDefault, (std::vector<std::string>{"fuse-bias-add", "fold-batchnorm", "fuse-bias-add",
                                                "eliminate-dead"}));
  auto r = RunPasses(model, kDefault);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 4u);
  for (size_t i = 0; i < r->size(); ++i) {
    EXPECT_EQ((*r)[i].name, kDefault[i]);
    EXPECT_EQ((*r)[i].rewrites, 0);
  }
  EXPECT_EQ(model.metadata["kiln.passes"],
            "fuse-bias-add,fold-batchnorm,fuse-bias-add,eliminate-dead");
  ASSERT_TRUE(RunPasses(model, {"eliminate-dead"}).ok());
  EXPECT_EQ(model.metadata["kiln.passes"],
            "fuse-bias-add,fold-batchnorm,fuse-bias-add,eliminate-dead,eliminate-dead")
      << "appended";
  for (const PassInfo& p : AllPasses()) EXPECT_NE(p.run, nullptr) << p.name;
}

// Conv (with/without bias, groups, strides, pads; weights as initializers or Constant nodes)
// -> BN -> Relu: the BN goes, the results stay within 1e-5, its parameters are gone.
struct ConvCase {
  const char* name;
  std::vector<int64_t> x, w;
  int64_t group;
  bool bias, const_nodes;
};

class PassFoldBatchNormConv : public ::testing::TestWithParam<ConvCase> {};

TEST_P(PassFoldBatchNormConv, ConvBnFoldsExactly) {
  const ConvCase& c = GetParam();
  Builder b;
  b.Input("x", c.x);
  b.Output("y");
  b.RandomConst("W", c.w, -1, 1, 1, c.const_nodes);
  std::vector<std::string> ins = {"x", "W"};
  if (c.bias) {
    b.RandomConst("B", {c.w[0]}, -1, 1, 2, c.const_nodes);
    ins.push_back("B");
  }
  auto* conv = b.Node("Conv", ins, {"c"}, "conv");
  Builder::Int(conv, "group", c.group);
  std::vector<int64_t> pads(2 * (c.w.size() - 2), 1);
  Builder::Ints(conv, "pads", pads);
  auto* bn = b.Bn("c", "bn_out", "bn", c.w[0], 20);
  if (c.const_nodes) bn->mutable_attribute()->Clear();  // default epsilon
  b.Node("Relu", {"bn_out"}, {"y"}, "relu");
  Model model;
  auto results = CheckPassesKeepResults(b, {{"x", RandomTensor(c.x, 3)}}, kDefault, &model);
  EXPECT_EQ(Rewrites(results, "fold-batchnorm"), 1);
  const Graph& g = model.graph;
  EXPECT_EQ(CountOp(g, "BatchNormalization"), 0);
  EXPECT_EQ(CountOp(g, "Constant"), 0) << "the replaced constants are dead";
  EXPECT_EQ(g.num_nodes(), 2u);
  for (const char* gone : {"bn_scale", "bn_B", "bn_mean", "bn_var", "W", "B", "c"}) {
    EXPECT_FALSE(g.FindValue(gone).has_value()) << gone << " should be removed";
  }
  const Node* folded = FindNode(g, "conv");
  ASSERT_NE(folded, nullptr);
  EXPECT_EQ(g.value(folded->outputs[0]).name, "bn_out") << "the BN's output keeps its name";
  ASSERT_EQ(folded->inputs.size(), 3u);
  EXPECT_EQ(g.value(folded->inputs[1]).kind, ValueKind::kInitializer);
  EXPECT_EQ(g.value(folded->inputs[2]).info.static_shape(), (Shape{c.w[0]}));
}

INSTANTIATE_TEST_SUITE_P(
    Pass, PassFoldBatchNormConv,
    ::testing::Values(ConvCase{"NoBias", {1, 3, 7, 6}, {4, 3, 3, 3}, 1, false, false},
                      ConvCase{"Bias", {2, 3, 5, 5}, {5, 3, 3, 3}, 1, true, false},
                      ConvCase{"Grouped", {1, 4, 6, 6}, {6, 2, 3, 3}, 2, true, false},
                      ConvCase{"Depthwise", {1, 4, 6, 6}, {4, 1, 3, 3}, 4, false, true},
                      ConvCase{"ConstantNodes1d", {1, 3, 9}, {4, 3, 3}, 1, true, true},
                      ConvCase{"Conv3d", {1, 2, 4, 4, 4}, {3, 2, 3, 3, 3}, 1, true, false}),
    [](const ::testing::TestParamInfo<ConvCase>& info) { return std::string(info.param.name); });

// ConvTranspose's weight is [C, M/group, k...]: with groups, output channel m of group g scales
// W[g*C/group .. , m - g*M/group, ...].
TEST(PassFoldBatchNorm, ConvTransposeWithGroups) {
  for (bool bias : {false, true}) {
    Builder b;
    b.Input("x", {1, 4, 5, 5});
    b.Output("y");
    b.RandomConst("W", {4, 3, 3, 3}, -1, 1, 1);  // group 2: M = 6
    std::vector<std::string> ins = {"x", "W"};
    if (bias) {
      b.RandomConst("B", {6}, -1, 1, 2);
      ins.push_back("B");
    }
    auto* conv = b.Node("ConvTranspose", ins, {"c"}, "deconv");
    Builder::Int(conv, "group", 2);
    Builder::Ints(conv, "strides", {2, 2});
    b.Bn("c", "y", "bn", 6, 30);  // the BN's output is the graph output
    Model model;
    auto results =
        CheckPassesKeepResults(b, {{"x", RandomTensor({1, 4, 5, 5}, 4)}}, kDefault, &model);
    EXPECT_EQ(Rewrites(results, "fold-batchnorm"), 1) << "bias " << bias;
    EXPECT_EQ(CountOp(model.graph, "BatchNormalization"), 0);
    EXPECT_EQ(model.graph.value(model.graph.outputs()[0]).name, "y");
  }
}

// Conv -> BN -> BN: both fold, in one pass.
TEST(PassFoldBatchNorm, ChainOfTwoFolds) {
  Builder b;
  b.Input("x", {1, 3, 5, 5});
  b.Output("y");
  b.RandomConst("W", {4, 3, 3, 3}, -1, 1, 1);
  b.Node("Conv", {"x", "W"}, {"c"}, "conv");
  b.Bn("c", "b1", "bn1", 4, 40);
  b.Bn("b1", "y", "bn2", 4, 50);
  Model model;
  auto results =
      CheckPassesKeepResults(b, {{"x", RandomTensor({1, 3, 5, 5}, 5)}}, kDefault, &model);
  EXPECT_EQ(Rewrites(results, "fold-batchnorm"), 2);
  EXPECT_EQ(model.graph.num_nodes(), 1u);
}

// Cases that must not fold: the conv output has two readers, or is a graph output; the weight is
// a graph input; the BN is in training mode. Results unchanged, the BN stays, the reason is noted.
TEST(PassFoldBatchNorm, LeavesUnsafeCasesAlone) {
  struct Case {
    const char* what;
    const char* reason;  // part of the note
  };
  for (const Case& c : {Case{"two readers", "also read elsewhere (2 readers"},
                        Case{"conv output is a graph output", "a graph output"},
                        Case{"weight is an input", "weight is not a float constant"},
                        Case{"parameters are inputs", "parameters are not float constants"},
                        Case{"training mode", "training_mode is 1"}}) {
    SCOPED_TRACE(c.what);
    const std::string what = c.what;
    Builder b(what == "training mode" ? 15 : 13);
    b.Input("x", {1, 3, 5, 5});
    NamedTensors inputs = {{"x", RandomTensor({1, 3, 5, 5}, 6)}};
    if (what == "weight is an input") {
      b.Input("W", {4, 3, 3, 3});
      inputs.push_back({"W", RandomTensor({4, 3, 3, 3}, 7)});
    } else {
      b.RandomConst("W", {4, 3, 3, 3}, -1, 1, 1);
    }
    b.Output("y");
    b.Node("Conv", {"x", "W"}, {"c"}, "conv");
    if (what == "parameters are inputs") {
      b.Input("scale", {4});
      inputs.push_back({"scale", RandomTensor({4}, 8)});
      b.RandomConst("B", {4}, -1, 1, 9);
      b.RandomConst("mean", {4}, -1, 1, 10);
      b.RandomConst("var", {4}, 0.5, 1, 11);
      b.Node("BatchNormalization", {"c", "scale", "B", "mean", "var"}, {"y"}, "bn");
    } else {
      auto* bn = b.Bn("c", "y", "bn", 4, 60);
      if (what == "training mode") Builder::Int(bn, "training_mode", 1);
    }
    if (what == "two readers") {
      b.Output("r");
      b.Node("Relu", {"c"}, {"r"}, "relu");
    }
    if (what == "conv output is a graph output") b.Output("c");
    Model model;
    auto results = CheckPassesKeepResults(b, inputs, kDefault, &model);
    EXPECT_EQ(Rewrites(results, "fold-batchnorm"), 0);
    EXPECT_EQ(CountOp(model.graph, "BatchNormalization"), 1);
    const std::string notes = Notes(results, "fold-batchnorm");
    EXPECT_NE(notes.find(c.reason), std::string::npos) << notes;
  }
}

// f16 weights stay f16 after folding (computed in double, rounded once).
TEST(PassFoldBatchNorm, Fp16WeightsStayFp16) {
  Builder b;
  b.Input("x", {1, 3, 5, 5}, onnx::TensorProto::FLOAT16);
  b.Output("y", onnx::TensorProto::FLOAT16);
  b.Const("W", {4, 3, 3, 3}, Random(108, -1, 1, 1), false, onnx::TensorProto::FLOAT16);
  b.Node("Conv", {"x", "W"}, {"c"}, "conv");
  std::vector<std::string> ins = {"c"};
  for (const char* p : {"scale", "B", "mean", "var"}) {
    b.Const(p, {4}, std::string(p) == "var" ? Random(4, 0.5, 2, 2) : Random(4, -0.5, 0.5, 3), false,
            onnx::TensorProto::FLOAT16);
    ins.push_back(p);
  }
  b.Node("BatchNormalization", ins, {"y"}, "bn");
  Model model = b.Import();
  auto r = RunPasses(model, kDefault);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(Rewrites(*r, "fold-batchnorm"), 1);
  const Node* conv = FindNode(model.graph, "conv");
  ASSERT_NE(conv, nullptr);
  EXPECT_EQ(model.graph.value(conv->inputs[1]).initializer.type(), ElementType::kF16);
  EXPECT_EQ(model.graph.value(conv->inputs[2]).initializer.type(), ElementType::kF16);
  Tensor x = Tensor::Allocate(ElementType::kF16, {1, 3, 5, 5}).value();
  std::vector<float> xv = Random(75, -1, 1, 4);
  for (size_t i = 0; i < xv.size(); ++i) x.data<Half>()[i] = xv[i];
  auto want = RunModel(b.Import(), {{"x", x}});
  auto got = RunModel(std::move(model), {{"x", x}});
  ASSERT_EQ(got.size(), 1u);
  ASSERT_EQ(want.size(), 1u);
  EXPECT_EQ(got[0].type(), ElementType::kF16);
  EXPECT_LE(RelL2(got[0], want[0]), 2e-3) << "both round to f16, in different places";
}

// Conv -> Add constant: per-channel shapes become the bias, others are left alone.
TEST(PassFuseBiasAdd, PerChannelConstantsBecomeTheBias) {
  struct Case {
    std::vector<int64_t> c;
    bool conv_bias, constant_first, fused;
  };
  for (const Case& c :
       {Case{{1, 4, 1, 1}, false, false, true}, Case{{4, 1, 1}, true, false, true},
        Case{{}, false, true, true}, Case{{1}, true, false, true},
        Case{{1, 1, 1, 1}, false, true, true}, Case{{1, 4, 5, 5}, false, false, false},
        Case{{5}, false, false, false}, Case{{2, 4, 1, 1}, false, false, false},
        Case{{1, 1, 4, 1, 1}, false, false, false}}) {
    SCOPED_TRACE("constant " + ShapeToString(c.c) + (c.conv_bias ? " conv bias" : ""));
    Builder b;
    b.Input("x", {1, 3, 5, 5});
    b.Output("y");
    b.RandomConst("W", {4, 3, 3, 3}, -1, 1, 1);
    std::vector<std::string> ins = {"x", "W"};
    if (c.conv_bias) {
      b.RandomConst("B", {4}, -1, 1, 2);
      ins.push_back("B");
    }
    auto* conv = b.Node("Conv", ins, {"c"}, "conv");
    Builder::Ints(conv, "pads", {1, 1, 1, 1});
    b.RandomConst("k", c.c, -2, 2, 3, /*as_node=*/c.constant_first);
    if (c.constant_first) {
      b.Node("Add", {"k", "c"}, {"a"}, "add");
    } else {
      b.Node("Add", {"c", "k"}, {"a"}, "add");
    }
    b.Node("Relu", {"a"}, {"y"}, "relu");
    Model model;
    auto results =
        CheckPassesKeepResults(b, {{"x", RandomTensor({1, 3, 5, 5}, 4)}}, kDefault, &model);
    EXPECT_EQ(Rewrites(results, "fuse-bias-add"), c.fused ? 1 : 0);
    EXPECT_EQ(CountOp(model.graph, "Add"), c.fused ? 0 : 1);
    if (c.fused) {
      const Node* fused = FindNode(model.graph, "conv");
      ASSERT_NE(fused, nullptr);
      EXPECT_EQ(model.graph.value(fused->outputs[0]).name, "a");
      EXPECT_FALSE(model.graph.FindValue("k").has_value());
    }
  }
}

// ConvTranspose -> BN -> Add of a per-channel constant: both go into the ConvTranspose.
TEST(PassFuseBiasAdd, AfterBatchNormAndOnConvTranspose) {
  Builder b;
  b.Input("x", {1, 4, 5, 5});
  b.Output("y");
  b.RandomConst("W", {4, 3, 3, 3}, -1, 1, 1);
  auto* deconv = b.Node("ConvTranspose", {"x", "W"}, {"c"}, "deconv");
  Builder::Int(deconv, "group", 2);
  b.Bn("c", "n", "bn", 6, 70);
  b.RandomConst("k", {6, 1, 1}, -1, 1, 2, true);
  b.Node("Add", {"n", "k"}, {"y"}, "add");
  Model model;
  auto results =
      CheckPassesKeepResults(b, {{"x", RandomTensor({1, 4, 5, 5}, 5)}}, kDefault, &model);
  EXPECT_EQ(Rewrites(results, "fold-batchnorm"), 1);
  EXPECT_EQ(Rewrites(results, "fuse-bias-add"), 1);
  EXPECT_EQ(model.graph.num_nodes(), 1u);
}

// ConvTranspose -> Add(bias constant) -> BN (PP-OCRv4 det's upsampling): the default order fuses
// the Add first so that the BN folds too.
TEST(PassFuseBiasAdd, BiasAddBeforeBatchNorm) {
  Builder b;
  b.Input("x", {1, 3, 4, 4});
  b.Output("y");
  b.RandomConst("W", {3, 5, 2, 2}, -1, 1, 1);
  auto* deconv = b.Node("ConvTranspose", {"x", "W"}, {"c"}, "deconv");
  Builder::Ints(deconv, "strides", {2, 2});
  b.RandomConst("bias", {1, 5, 1, 1}, -1, 1, 2, true);
  b.Node("Add", {"c", "bias"}, {"a"}, "add");
  b.Bn("a", "n", "bn", 5, 90);
  b.Node("Relu", {"n"}, {"y"}, "relu");
  Model model;
  auto results =
      CheckPassesKeepResults(b, {{"x", RandomTensor({1, 3, 4, 4}, 6)}}, kDefault, &model);
  EXPECT_EQ(Rewrites(results, "fuse-bias-add"), 1);
  EXPECT_EQ(Rewrites(results, "fold-batchnorm"), 1);
  EXPECT_EQ(model.graph.num_nodes(), 2u);
}

// Dead nodes and unread initializers go; graph inputs stay even when unread; other domains stay.
TEST(PassEliminateDead, RemovesUnreadNodesAndInitializers) {
  Builder b;
  b.Input("x", {2, 3});
  b.Input("unused", {2});
  b.Output("y");
  b.RandomConst("k", {3}, -1, 1, 1);
  b.RandomConst("orphan", {64}, -1, 1, 2);
  b.Node("Add", {"x", "k"}, {"t"}, "add");
  b.Node("Relu", {"t"}, {"y"}, "relu");
  b.Node("Exp", {"t"}, {"e"}, "dead_exp");
  b.Node("Neg", {"e"}, {"e2"}, "dead_neg");
  Model model;
  NamedTensors in = {{"x", RandomTensor({2, 3}, 1)}, {"unused", RandomTensor({2}, 2)}};
  auto results = CheckPassesKeepResults(b, in, {"eliminate-dead"}, &model);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].rewrites, 3);
  EXPECT_NE(results[0].notes.at(0).find("removed 2 nodes (Exp 1, Neg 1) and 1 initializers"),
            std::string::npos)
      << results[0].notes[0];
  const Graph& g = model.graph;
  EXPECT_EQ(g.num_nodes(), 2u);
  EXPECT_FALSE(g.FindValue("orphan").has_value());
  EXPECT_FALSE(g.FindValue("e").has_value());
  EXPECT_TRUE(g.FindValue("k").has_value());
  EXPECT_EQ(g.inputs().size(), 2u);
}

// kiln convert runs the default passes unless --no-optimize, and records them.
TEST(PassConvert, ConvertRunsPassesUnlessNoOptimize) {
  Builder b;
  b.Input("x", {1, 3, 5, 5});
  b.Output("y");
  b.RandomConst("W", {4, 3, 3, 3}, -1, 1, 1);
  b.Node("Conv", {"x", "W"}, {"c"}, "conv");
  b.Bn("c", "y", "bn", 4, 80);
  const fs::path work = fs::temp_directory_path() / ("kiln_passes_" + std::to_string(getpid()));
  fs::create_directories(work);
  const fs::path in = work / "m.onnx";
  {
    std::ofstream f(in, std::ios::binary);
    ASSERT_TRUE(b.proto().SerializeToOstream(&f));
  }
  for (bool optimize : {true, false}) {
    SCOPED_TRACE(optimize ? "default" : "--no-optimize");
    const fs::path out = work / (optimize ? "opt.onnx" : "plain.onnx");
    const fs::path log = work / "log.txt";
    const std::string cmd = std::string(KILN_BINARY) + " convert '" + in.string() + "' -o '" +
                            out.string() + "' --precision fp32" +
                            (optimize ? "" : " --no-optimize") + " > '" + log.string() + "' 2>&1";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    std::ifstream lf(log);
    const std::string text((std::istreambuf_iterator<char>(lf)), std::istreambuf_iterator<char>());
    auto m = ImportOnnxFile(out.string());
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    if (optimize) {
      EXPECT_NE(text.find("pass fold-batchnorm: 1 rewrites"), std::string::npos) << text;
      EXPECT_EQ(m->metadata["kiln.passes"],
                "fuse-bias-add,fold-batchnorm,fuse-bias-add,eliminate-dead");
      EXPECT_EQ(CountOp(m->graph, "BatchNormalization"), 0);
    } else {
      EXPECT_NE(text.find("graph passes: off"), std::string::npos) << text;
      EXPECT_EQ(m->metadata.count("kiln.passes"), 0u);
      EXPECT_EQ(CountOp(m->graph, "BatchNormalization"), 1);
    }
  }
  fs::remove_all(work);
}

// PP-OCRv4 models before vs after the default passes on the reference backend.
void CheckRealModel(const std::string& file, const Tensor& x) {
  const fs::path path = kOcr / file;
  ASSERT_TRUE(fs::exists(path)) << path << " missing: run scripts/setup.sh";
  Model ref = ImportOnnxFile(path.string()).value();
  Model model = ImportOnnxFile(path.string()).value();
  const int bn_before = CountOp(model.graph, "BatchNormalization");
  const size_t nodes_before = model.graph.num_nodes();
  auto results = RunPasses(model, kDefault);
  ASSERT_TRUE(results.ok()) << results.status().ToString();
  std::printf("  %s: %zu -> %zu nodes; BatchNormalization %d -> %d;", file.c_str(), nodes_before,
              model.graph.num_nodes(), bn_before, CountOp(model.graph, "BatchNormalization"));
  for (const PassResult& r : *results) std::printf(" %s %d;", r.name.c_str(), r.rewrites);
  std::printf("\n");
  EXPECT_EQ(CountOp(model.graph, "BatchNormalization"), 0) << "every BN follows a conv";
  const std::string in_name = ref.graph.value(ref.graph.inputs()[0]).name;
  auto want = RunModel(std::move(ref), {{in_name, x}});
  auto got = RunModel(std::move(model), {{in_name, x}});
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    const double err = RelL2(got[i], want[i]);
    std::printf("  %s output %zu: ||a-b||/||b|| = %.3g\n", file.c_str(), i, err);
    EXPECT_LE(err, 1e-5) << file << " output " << i;
  }
}

TEST(PassModels, ClsBeforeVsAfter) {
  CheckRealModel("ch_ppocr_mobile_v2.0_cls_infer.onnx", RandomTensor({1, 3, 48, 192}, 21));
}
TEST(PassModels, RecBeforeVsAfter) {
  CheckRealModel("ch_PP-OCRv4_rec_infer.onnx", RandomTensor({1, 3, 48, 320}, 22));
}
TEST(PassModels, DetBeforeVsAfter) {
  CheckRealModel("ch_PP-OCRv4_det_infer.onnx", testing::TextPage(96, 160));
}

}  // namespace
}  // namespace kiln
