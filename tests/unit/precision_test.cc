// Precision conversion (src/passes/precision_*.cc): selector parsing, the typed rewrite
// (f16 values and weights, Casts only where precision changes), auto:TOL on an overflowing
// model, and PP-OCRv4 converted to fp16 against fp32 in Kiln and in ONNX Runtime.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <cstdlib>
#include <filesystem>
#include <random>
#include <unistd.h>

#include "core/npy.h"
#include "onnx/exporter.h"
#include "onnx/importer.h"
#include "passes/pass_manager.h"
#include "precision/convert.h"
#include "runtime/session.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

const fs::path kSource = KILN_SOURCE_DIR;
const fs::path kOcr = kSource / ".deps" / "npm" / "node_modules" / "@gutenye" / "ocr-models" / "assets";

Tensor Uniform(const Shape& shape, float lo, float hi, uint64_t seed) {
  Tensor t = Tensor::Allocate(ElementType::kF32, shape).value();
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  for (int64_t i = 0; i < t.size(); ++i) t.data<float>()[i] = d(rng);
  return t;
}

Tensor ToHalf(const Tensor& t) {
  Tensor h = Tensor::Allocate(ElementType::kF16, t.shape()).value();
  for (int64_t i = 0; i < t.size(); ++i) h.data<Half>()[i] = t.data<float>()[i];
  return h;
}

// Independent of the pass's own helpers: ||a-b|| / ||b|| in double, inf on non-finite a.
double RelL2(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  double num = 0, den = 0;
  for (int64_t i = 0; i < a.size(); ++i) {
    const double x = a.GetAsDouble(i), y = b.GetAsDouble(i);
    if (!std::isfinite(x)) return INFINITY;
    num += (x - y) * (x - y);
    den += y * y;
  }
  return std::sqrt(num / den);
}

bool HasNonFinite(const Tensor& t) {
  for (int64_t i = 0; i < t.size(); ++i) {
    if (!std::isfinite(t.GetAsDouble(i))) return true;
  }
  return false;
}

std::vector<Tensor> RunModel(Model model, const NamedTensors& inputs) {
  auto session = Session::Create(std::move(model), SessionOptions::Threads(2));
  EXPECT_TRUE(session.ok()) << session.status().ToString();
  if (!session.ok()) return {};
  auto outs = (*session)->Run(inputs);
  EXPECT_TRUE(outs.ok()) << outs.status().ToString();
  return outs.ok() ? *outs : std::vector<Tensor>{};
}

Model Import(const onnx::ModelProto& m) {
  std::string bytes = m.SerializeAsString();
  auto model = ImportOnnxBytes(bytes.data(), bytes.size());
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  return std::move(model).value();
}

onnx::ValueInfoProto Info(const std::string& name, std::vector<int64_t> dims) {
  onnx::ValueInfoProto vi;
  vi.set_name(name);
  auto* tt = vi.mutable_type()->mutable_tensor_type();
  tt->set_elem_type(onnx::TensorProto::FLOAT);
  for (int64_t d : dims) tt->mutable_shape()->add_dim()->set_dim_value(d);
  return vi;
}

void AddConst(onnx::GraphProto* g, const std::string& name, std::vector<int64_t> dims,
              const std::vector<float>& vals) {
  auto* t = g->add_initializer();
  t->set_name(name);
  t->set_data_type(onnx::TensorProto::FLOAT);
  for (int64_t d : dims) t->add_dims(d);
  for (float v : vals) t->add_float_data(v);
}

void AddNode(onnx::GraphProto* g, const std::string& name, const std::string& op,
             std::vector<std::string> ins, std::vector<std::string> outs) {
  auto* n = g->add_node();
  n->set_name(name);
  n->set_op_type(op);
  for (auto& i : ins) n->add_input(i);
  for (auto& o : outs) n->add_output(o);
}

// x[2,8] -> MatMul W -> Add b -> Softmax -> Mul s -> Relu 'relu_head' -> y
onnx::ModelProto HeadModel() {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(17);
  auto* g = m.mutable_graph();
  g->set_name("head");
  *g->add_input() = Info("x", {2, 8});
  *g->add_output() = Info("y", {2, 4});
  std::vector<float> w(32);
  for (size_t i = 0; i < w.size(); ++i) w[i] = 0.1f * static_cast<float>(i % 7) - 0.3f;
  AddConst(g, "W", {8, 4}, w);
  AddConst(g, "b", {4}, {0.1f, -0.2f, 0.3f, 0.f});
  AddConst(g, "s", {}, {3.f});
  AddNode(g, "mm0", "MatMul", {"x", "W"}, {"h0"});
  AddNode(g, "add0", "Add", {"h0", "b"}, {"h1"});
  AddNode(g, "sm", "Softmax", {"h1"}, {"h2"});
  AddNode(g, "mul1", "Mul", {"h2", "s"}, {"h3"});
  AddNode(g, "relu_head", "Relu", {"h3"}, {"y"});
  return m;
}

// x[1,64] in [0,1) -> Add 0.5 -> Mul 300 -> Mul 300 (up to 135000: beyond fp16's 65504)
// -> Div 90000 -> Relu -> y: finite inputs and outputs, an overflowing path between.
onnx::ModelProto OverflowModel() {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(17);
  auto* g = m.mutable_graph();
  g->set_name("overflow");
  *g->add_input() = Info("x", {1, 64});
  *g->add_output() = Info("y", {1, 64});
  AddConst(g, "half", {}, {0.5f});
  AddConst(g, "c300", {}, {300.f});
  AddConst(g, "c90000", {}, {90000.f});
  AddNode(g, "a0", "Add", {"x", "half"}, {"t0"});
  AddNode(g, "m1", "Mul", {"t0", "c300"}, {"t1"});
  AddNode(g, "m2", "Mul", {"t1", "c300"}, {"t2"});
  AddNode(g, "d", "Div", {"t2", "c90000"}, {"t3"});
  AddNode(g, "r", "Relu", {"t3"}, {"y"});
  return m;
}

ElementType TypeOf(const Graph& g, ValueId v) { return g.value(v).info.type; }

// Every Cast changes precision; float values of kept nodes are f32, of other nodes f16.
void CheckTyping(const Graph& g, const std::set<std::string>& kept) {
  for (const Node& n : g.nodes()) {
    if (n.op_type == "Cast") {
      EXPECT_NE(TypeOf(g, n.inputs[0]), TypeOf(g, n.outputs[0])) << n.name << " casts to its own type";
      continue;
    }
    if (n.op_type == "Constant") continue;
    const ElementType want = kept.count(n.name) ? ElementType::kF32 : ElementType::kF16;
    for (ValueId v : n.inputs) {
      if (v.valid() && IsFloating(TypeOf(g, v))) {
        EXPECT_EQ(TypeOf(g, v), want) << n.name << " input";
      }
    }
    for (ValueId v : n.outputs) {
      if (v.valid() && IsFloating(TypeOf(g, v))) {
        EXPECT_EQ(TypeOf(g, v), want) << n.name << " output";
      }
    }
  }
}

int CountOp(const Graph& g, const std::string& op) {
  int c = 0;
  for (const Node& n : g.nodes()) c += n.op_type == op;
  return c;
}

TEST(PrecisionSelector, ParsesItems) {
  auto s = ParseKeepSelector("op:Softmax,name:conv_[0-9]+,auto:1e-3");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->op_types, std::vector<std::string>{"Softmax"});
  ASSERT_EQ(s->name_patterns.size(), 1u);
  EXPECT_DOUBLE_EQ(*s->auto_tolerance, 1e-3);
  Node n;
  n.op_type = "Conv";
  n.name = "conv_12";
  EXPECT_TRUE(s->Matches(n));
  n.name = "conv_12x";  // full match only
  EXPECT_FALSE(s->Matches(n));
  EXPECT_TRUE(ParseKeepSelector("").ok());
}

TEST(PrecisionSelector, BadItemsAreNamed) {
  for (const std::string bad : {"op:Softmax,bogus", "name:(", "auto:-1", "auto:x", "kind:1",
                                "op:", "op:Relu,,op:Add"}) {
    auto s = ParseKeepSelector(bad);
    ASSERT_FALSE(s.ok()) << bad;
    EXPECT_NE(s.status().message().find("--keep-fp32 item"), std::string::npos) << s.status().ToString();
  }
  auto s = ParseKeepSelector("op:Relu,name:(ab");
  EXPECT_NE(s.status().message().find("'name:(ab'"), std::string::npos) << s.status().ToString();
}

TEST(Precision, OpAndNameSelectorsKeepExactlyThoseNodes) {
  Model ref = Import(HeadModel());
  Model model = Import(HeadModel());
  PrecisionOptions o;
  o.keep_fp32 = ParseKeepSelector("op:Softmax,name:relu_.*").value();
  auto r = ConvertPrecision(model, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const Graph& g = model.graph;
  CheckTyping(g, {"sm", "relu_head"});
  // add0 -> sm, sm -> mul1, mul1 -> relu_head, relu_head -> y (f16 output): 4 Casts.
  EXPECT_EQ(CountOp(g, "Cast"), 4);
  EXPECT_EQ(TypeOf(g, g.inputs()[0]), ElementType::kF16);
  EXPECT_EQ(TypeOf(g, g.outputs()[0]), ElementType::kF16);
  EXPECT_EQ(g.value(g.outputs()[0]).name, "y");
  for (const Value& v : g.values()) {
    if (v.kind == ValueKind::kInitializer) {
      EXPECT_EQ(v.initializer.type(), ElementType::kF16) << v.name;
    }
  }
  ASSERT_EQ(r->kept.size(), 2u);
  EXPECT_EQ(model.metadata["kiln.kept_fp32_nodes"], "sm,relu_head");
  EXPECT_EQ(model.metadata["kiln.precision"], "fp16");
  EXPECT_EQ(model.metadata["kiln.model_type"], "program");
  EXPECT_EQ(model.metadata["kiln.keep_fp32"], "op:Softmax,name:relu_.*");

  Tensor x = Uniform({2, 8}, -1, 1, 7);
  auto want = RunModel(std::move(ref), {{"x", x}});
  auto got = RunModel(std::move(model), {{"x", ToHalf(x)}});
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].type(), ElementType::kF16);
  EXPECT_LE(RelL2(got[0], want[0]), 1e-2);
}

TEST(Precision, KeepIoTypesCastsAtTheBoundary) {
  Model model = Import(HeadModel());
  PrecisionOptions o;
  o.keep_io_types = true;
  ASSERT_TRUE(ConvertPrecision(model, o).ok());
  const Graph& g = model.graph;
  EXPECT_EQ(TypeOf(g, g.inputs()[0]), ElementType::kF32);
  EXPECT_EQ(TypeOf(g, g.outputs()[0]), ElementType::kF32);
  EXPECT_EQ(g.value(g.inputs()[0]).name, "x");
  EXPECT_EQ(g.value(g.outputs()[0]).name, "y");
  EXPECT_EQ(CountOp(g, "Cast"), 2);  // x -> f16, relu output -> f32
  CheckTyping(g, {});
}

TEST(Precision, InitializerOfAKeptNodeStaysF32) {
  Model model = Import(HeadModel());
  PrecisionOptions o;
  o.keep_fp32 = ParseKeepSelector("name:mul1").value();
  ASSERT_TRUE(ConvertPrecision(model, o).ok());
  const Graph& g = model.graph;
  auto s = g.FindValue("s");
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(g.value(*s).initializer.type(), ElementType::kF32);
  EXPECT_EQ(g.value(*g.FindValue("W")).initializer.type(), ElementType::kF16);
  CheckTyping(g, {"mul1"});
}

TEST(Precision, OverflowUnderFp16AndAutoKeepsOnlyOverflowingNodes) {
  Tensor x = Uniform({1, 64}, 0, 1, 3);
  auto want = RunModel(Import(OverflowModel()), {{"x", x}});
  ASSERT_EQ(want.size(), 1u);
  ASSERT_FALSE(HasNonFinite(want[0]));

  Model plain = Import(OverflowModel());
  ASSERT_TRUE(ConvertPrecision(plain, PrecisionOptions{}).ok());
  auto bad = RunModel(std::move(plain), {{"x", ToHalf(x)}});
  ASSERT_EQ(bad.size(), 1u);
  EXPECT_TRUE(HasNonFinite(bad[0])) << "plain fp16 should overflow";

  Model model = Import(OverflowModel());
  PrecisionOptions o;
  o.keep_fp32 = ParseKeepSelector("auto:1e-3").value();
  o.auto_inputs = {{"x", x}};
  auto r = ConvertPrecision(model, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  std::set<std::string> kept;
  for (const KeptNode& k : r->kept) {
    kept.insert(k.name);
    EXPECT_NE(k.reason.find("overflow"), std::string::npos) << k.name << ": " << k.reason;
  }
  EXPECT_EQ(kept, (std::set<std::string>{"m2", "d"}));
  CheckTyping(model.graph, kept);
  auto got = RunModel(std::move(model), {{"x", ToHalf(x)}});
  ASSERT_EQ(got.size(), 1u);
  EXPECT_LE(RelL2(got[0], want[0]), 1e-3);
}

TEST(Precision, Fp32RecordsMetadataOnly) {
  Model model = Import(HeadModel());
  PrecisionOptions o;
  o.precision = Precision::kFp32;
  o.model_type = ModelType::kNetwork;
  ASSERT_TRUE(ConvertPrecision(model, o).ok());
  EXPECT_EQ(CountOp(model.graph, "Cast"), 0);
  EXPECT_EQ(model.metadata["kiln.model_type"], "network");
  EXPECT_EQ(model.metadata["kiln.precision"], "fp32");
  EXPECT_EQ(model.metadata["kiln.converter"], kPrecisionConverterVersion);
}

// PP-OCRv4 rec converted to fp16: f16 weights, runs in Kiln within 1e-2 of fp32; Softmax kept.
TEST(PrecisionModels, RecFp16MatchesFp32) {
  const fs::path path = kOcr / "ch_PP-OCRv4_rec_infer.onnx";
  ASSERT_TRUE(fs::exists(path)) << path << " missing: run scripts/setup.sh";
  auto ref = ImportOnnxFile(path.string());
  ASSERT_TRUE(ref.ok()) << ref.status().ToString();
  Model model = ImportOnnxFile(path.string()).value();
  PrecisionOptions o;
  o.keep_fp32 = ParseKeepSelector("op:Softmax").value();
  auto r = ConvertPrecision(model, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  std::set<std::string> kept;
  for (const KeptNode& k : r->kept) kept.insert(k.name);
  EXPECT_EQ(kept.size(), 3u);
  const Graph& g = model.graph;
  for (const Node& n : g.nodes()) {
    if (n.op_type == "Cast" && n.name.find("_cast_fp") != std::string::npos) {
      EXPECT_NE(TypeOf(g, n.inputs[0]), TypeOf(g, n.outputs[0])) << n.name;
    }
    if (n.op_type == "Softmax") {
      EXPECT_EQ(TypeOf(g, n.inputs[0]), ElementType::kF32);
      EXPECT_EQ(TypeOf(g, n.outputs[0]), ElementType::kF32);
    }
  }
  for (const Value& v : g.values()) {
    if (v.kind == ValueKind::kInitializer && IsFloating(v.initializer.type()) && v.initializer.size() > 1) {
      EXPECT_EQ(v.initializer.type(), ElementType::kF16) << v.name;
    }
  }
  Tensor x = Uniform({1, 3, 48, 320}, -1, 1, 11);
  auto want = RunModel(std::move(ref).value(), {{"x", x}});
  auto got = RunModel(std::move(model), {{"x", ToHalf(x)}});
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_LE(RelL2(got[i], want[i]), 1e-2) << "output " << i;
}

// fp16 files are at most 0.51x the fp32 size, and both Kiln and ONNX Runtime run them within
// 1e-2 of Kiln fp32. With `keep` (a --keep-fp32 selector) the model is converted as mixed.
// As `kiln convert` does, the default graph passes (BatchNormalization folding, ...) run first.
void CheckExportedFp16(const std::string& file, const Tensor& x, const std::string& keep = "") {
  const fs::path path = kOcr / file;
  ASSERT_TRUE(fs::exists(path)) << path << " missing: run scripts/setup.sh";
  ASSERT_EQ(std::system("node --version > /dev/null 2>&1"), 0) << "node missing: run scripts/setup.sh";
  Model ref = ImportOnnxFile(path.string()).value();
  Model model = ImportOnnxFile(path.string()).value();
  auto passes = RunPasses(model, DefaultOptimizationPasses());
  ASSERT_TRUE(passes.ok()) << passes.status().ToString();
  PrecisionOptions po;
  if (!keep.empty()) {
    po.precision = Precision::kMixed;
    po.keep_fp32 = ParseKeepSelector(keep).value();
  }
  auto converted = ConvertPrecision(model, po);
  ASSERT_TRUE(converted.ok()) << converted.status().ToString();
  if (!keep.empty()) {
    EXPECT_FALSE(converted->kept.empty());
  }
  const fs::path work = fs::temp_directory_path() /
                        ("kiln_precision_" + std::to_string(getpid()) + "_" + path.stem().string() +
                         (keep.empty() ? "" : "_mixed"));
  fs::create_directories(work / "in");
  const fs::path out = work / "fp16.onnx";
  Status s = ExportOnnxFile(model, out.string(), ExportOptions{.value_info = false});
  ASSERT_TRUE(s.ok()) << s.ToString();
  const double ratio =
      static_cast<double>(fs::file_size(out)) / static_cast<double>(fs::file_size(path));
  std::printf("  %s: %s file is %.3fx the fp32 file\n", file.c_str(), keep.empty() ? "fp16" : "mixed", ratio);
  if (keep.empty()) {
    EXPECT_LE(ratio, 0.51);
  }
  auto reread = ImportOnnxFile(out.string());
  ASSERT_TRUE(reread.ok()) << reread.status().ToString();
  EXPECT_EQ(reread->metadata["kiln.precision"], keep.empty() ? "fp16" : "mixed");

  const std::string in_name = ref.graph.value(ref.graph.inputs()[0]).name;
  auto want = RunModel(std::move(ref), {{in_name, x}});
  auto kiln = RunModel(std::move(reread).value(), {{in_name, ToHalf(x)}});
  ASSERT_EQ(kiln.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    const double e = RelL2(kiln[i], want[i]);
    std::printf("  Kiln %s vs fp32, output %zu: %.3g\n", keep.empty() ? "fp16" : "mixed", i, e);
    EXPECT_LE(e, 1e-2) << file << " Kiln output " << i;
  }
  ASSERT_TRUE(WriteNpy((work / "in" / (in_name + ".npy")).string(), ToHalf(x)).ok());
  const std::string cmd = "node '" + (kSource / "tests" / "models" / "ort_run.js").string() +
                          "' '" + out.string() + "' '" + (work / "in").string() + "' '" +
                          (work / "ort").string() + "' 1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << "ONNX Runtime failed: " << cmd;
  const Graph& g = model.graph;
  for (size_t i = 0; i < want.size(); ++i) {
    std::string name = g.value(g.outputs()[i]).name;
    for (char& c : name) {
      if (!isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') c = '_';
    }
    auto ort = ReadNpy((work / "ort" / (name + ".npy")).string());
    ASSERT_TRUE(ort.ok()) << ort.status().ToString();
    const double e = RelL2(*ort, want[i]);
    std::printf("  ONNX Runtime %s vs Kiln fp32, output %s: %.3g\n", keep.empty() ? "fp16" : "mixed", name.c_str(), e);
    EXPECT_LE(e, 1e-2) << file << " output " << name;
  }
  fs::remove_all(work);
}

TEST(PrecisionModels, RecFp16ExportSizeAndOrt) {
  CheckExportedFp16("ch_PP-OCRv4_rec_infer.onnx", Uniform({1, 3, 48, 320}, -1, 1, 5));
}
TEST(PrecisionModels, ClsFp16ExportSizeAndOrt) {
  CheckExportedFp16("ch_ppocr_mobile_v2.0_cls_infer.onnx", Uniform({1, 3, 48, 192}, -1, 1, 6));
}
// On pure noise the detector's output is ~1e-6 everywhere (a relative error there measures
// nothing): dark text-like strokes on a light page give it something to find.
Tensor Page(int64_t h, int64_t w) {
  Tensor t = Tensor::Allocate(ElementType::kF32, {1, 3, h, w}).value();
  for (int64_t c = 0; c < 3; ++c) {
    for (int64_t y = 0; y < h; ++y) {
      for (int64_t x = 0; x < w; ++x) {
        const bool ink = (y % 32) >= 10 && (y % 32) < 22 && (x % 48) < 36 && (x / 3) % 3 != 0;
        t.data<float>()[(c * h + y) * w + x] = ink ? -1.7f : 1.9f;
      }
    }
  }
  return t;
}

TEST(PrecisionModels, DetFp16ExportSizeAndOrt) {
  CheckExportedFp16("ch_PP-OCRv4_det_infer.onnx", Page(96, 160));
}

// Mixed: fp16 with the numerically touchy ops kept in fp32, run by Kiln and ONNX Runtime.
TEST(PrecisionModels, RecMixedRunsInKilnAndOrt) {
  CheckExportedFp16("ch_PP-OCRv4_rec_infer.onnx", Uniform({1, 3, 48, 320}, -1, 1, 5),
                    "op:Softmax,op:ReduceMean,op:Pow,op:Sqrt");
}
TEST(PrecisionModels, ClsMixedRunsInKilnAndOrt) {
  CheckExportedFp16("ch_ppocr_mobile_v2.0_cls_infer.onnx", Uniform({1, 3, 48, 192}, -1, 1, 6),
                    "op:Softmax");
}
TEST(PrecisionModels, DetMixedRunsInKilnAndOrt) {
  CheckExportedFp16("ch_PP-OCRv4_det_infer.onnx", Page(96, 160), "op:Sigmoid,op:ConvTranspose");
}

}  // namespace
}  // namespace kiln
