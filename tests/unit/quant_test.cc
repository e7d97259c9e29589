// Tests of src/quant: calibration statistics against values computed here, the statistics file
// (round trip, truncated and corrupted files), the QDQ rewrite on a small conv model (Kiln's
// reference backend and ONNX Runtime agree on the QDQ file), auto:TOL on a model with one
// quantization-hostile layer, and the PP-OCR models (cls, rec, det at 160x160) from random
// calibration inputs.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>

#include "core/npy.h"
#include "ir/shape_inference.h"
#include "onnx/exporter.h"
#include "onnx/importer.h"
#include "passes/pass_manager.h"
#include "passes/qdq_fusion.h"
#include "quant/quantize.h"

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

double RelL2(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  double num = 0, den = 0;
  for (int64_t i = 0; i < a.size() && i < b.size(); ++i) {
    const double x = a.GetAsDouble(i), y = b.GetAsDouble(i);
    if (!std::isfinite(x)) return INFINITY;
    num += (x - y) * (x - y);
    den += y * y;
  }
  return std::sqrt(num / den);
}

// Fraction of rows (slices along the last axis) with the same argmax.
double ArgmaxAgreement(const Tensor& a, const Tensor& b, int64_t* rows_out = nullptr) {
  const int64_t n = a.shape().back();
  const int64_t rows = a.size() / n;
  int64_t same = 0;
  for (int64_t r = 0; r < rows; ++r) {
    int64_t ia = 0, ib = 0;
    for (int64_t k = 1; k < n; ++k) {
      if (a.GetAsDouble(r * n + k) > a.GetAsDouble(r * n + ia)) ia = k;
      if (b.GetAsDouble(r * n + k) > b.GetAsDouble(r * n + ib)) ib = k;
    }
    same += ia == ib;
  }
  if (rows_out) *rows_out = rows;
  return rows ? static_cast<double>(same) / static_cast<double>(rows) : 1.0;
}

std::vector<Tensor> RunRef(Model model, const NamedTensors& inputs) {
  auto session = Session::Create(std::move(model), SessionOptions::Reference(2));
  EXPECT_TRUE(session.ok()) << session.status().ToString();
  if (!session.ok()) return {};
  auto outs = (*session)->Run(inputs);
  EXPECT_TRUE(outs.ok()) << outs.status().ToString();
  return outs.ok() ? *outs : std::vector<Tensor>{};
}

std::string Sanitize(std::string s) {
  for (char& c : s) {
    if (!isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') c = '_';
  }
  return s;
}

bool HaveOrt() {
  return std::system("node --version > /dev/null 2>&1") == 0 &&
         fs::exists(kSource / ".deps" / "npm" / "node_modules" / "onnxruntime-node");
}

// Runs an ONNX file with ONNX Runtime (tests/models/ort_run.js); outputs in graph order.
std::vector<Tensor> RunOrt(const fs::path& model, const NamedTensors& inputs,
                           const std::vector<std::string>& outputs) {
  const fs::path work = fs::temp_directory_path() /
                        ("kiln_quant_ort_" + std::to_string(getpid()) + "_" + model.stem().string());
  fs::remove_all(work);
  fs::create_directories(work / "in");
  for (const auto& [name, t] : inputs) {
    EXPECT_TRUE(WriteNpy((work / "in" / (Sanitize(name) + ".npy")).string(), t).ok());
  }
  const std::string cmd = "node '" + (kSource / "tests" / "models" / "ort_run.js").string() + "' '" +
                          model.string() + "' '" + (work / "in").string() + "' '" +
                          (work / "ort").string() + "' 1";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << "ONNX Runtime failed: " << cmd;
  std::vector<Tensor> result;
  for (const std::string& name : outputs) {
    auto t = ReadNpy((work / "ort" / (Sanitize(name) + ".npy")).string());
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    if (t.ok()) result.push_back(*t);
  }
  fs::remove_all(work);
  return result;
}

// --- statistics --------------------------------------------------------------------------

TEST(QuantStats, MinMaxAndHistogramMatchIndependentCounts) {
  Tensor t = Uniform({1000}, -3.0f, 5.0f, 1);
  CalibrationStats stats;
  ASSERT_TRUE(stats.Add("x", t).ok());
  const TensorStats* s = stats.Find("x");
  ASSERT_NE(s, nullptr);
  double lo = INFINITY, hi = -INFINITY;
  for (int64_t i = 0; i < t.size(); ++i) {
    lo = std::min(lo, t.GetAsDouble(i));
    hi = std::max(hi, t.GetAsDouble(i));
  }
  EXPECT_EQ(s->count, 1000);
  EXPECT_EQ(s->min, lo);
  EXPECT_EQ(s->max, hi);
  // |x| < 5, so the range is 8 (the smallest power of two above max |x|), bin width 16/4096.
  EXPECT_EQ(s->range, 8.0);
  std::vector<int64_t> want(kHistogramBins, 0);
  for (int64_t i = 0; i < t.size(); ++i) {
    ++want[static_cast<size_t>(std::floor((t.GetAsDouble(i) + 8.0) / (16.0 / kHistogramBins)))];
  }
  EXPECT_EQ(s->hist, want);
}

TEST(QuantStats, MergeOfTwoRecordingsEqualsOneRecordingOfBoth) {
  Tensor a = Uniform({3000}, -0.7f, 0.9f, 2), b = Uniform({2000}, -40.0f, 20.0f, 3);
  Tensor inf = Tensor::FromVector<float>({INFINITY, 1.0f}, {2});
  CalibrationStats both, first, second;
  ASSERT_TRUE(both.Add("x", a).ok());
  ASSERT_TRUE(both.Add("x", b).ok());
  ASSERT_TRUE(both.Add("y", inf).ok());
  both.AddRuns(2);
  ASSERT_TRUE(first.Add("x", b).ok());  // the wider one first: the other side doubles
  first.AddRuns(1);
  ASSERT_TRUE(second.Add("x", a).ok());
  ASSERT_TRUE(second.Add("y", inf).ok());
  second.AddRuns(1);
  ASSERT_TRUE(first.Merge(second).ok());
  EXPECT_EQ(first.Serialize(), both.Serialize());
  EXPECT_EQ(first.runs(), 2);
  EXPECT_EQ(first.Find("y")->nonfinite, 1);
  EXPECT_EQ(first.Find("x")->count, 5000);
}

TEST(QuantStats, PercentileAndEntropyRanges) {
  // 99,000 values in [0, 1) and 1,000 outliers at 100: the 99th percentile of |x| is < 1.
  Tensor t = Tensor::Allocate(ElementType::kF32, {100000}).value();
  std::mt19937_64 rng(4);
  std::uniform_real_distribution<float> d(0.0f, 1.0f);
  std::vector<double> abs;
  for (int64_t i = 0; i < t.size(); ++i) {
    t.data<float>()[i] = i % 100 == 0 ? 100.0f : d(rng);
    abs.push_back(std::fabs(t.data<float>()[i]));
  }
  std::sort(abs.begin(), abs.end());
  TensorStats s;
  ASSERT_TRUE(s.Add(t).ok());
  const double width = 2 * s.range / kHistogramBins;
  auto p = ComputeRange(s, ParseCalibrationMethod("percentile:98.5").value(), true);
  ASSERT_TRUE(p.ok());
  const double want = abs[static_cast<size_t>(std::ceil(0.985 * abs.size())) - 1];
  EXPECT_NEAR(p->second, want, width);
  EXPECT_EQ(p->first, -p->second);
  auto mm = ComputeRange(s, ParseCalibrationMethod("minmax").value(), false);
  ASSERT_TRUE(mm.ok());
  EXPECT_EQ(mm->first, s.min);
  EXPECT_EQ(mm->second, 100.0);
  // Entropy: a normal bulk (sigma 1) with 0.01% outliers at 40: the KL-optimal threshold keeps
  // the bulk and clips the outliers. (Like TensorRT's, the search starts at 128 bins, range / 16.)
  TensorStats rare;
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int64_t i = 0; i < t.size(); ++i) t.data<float>()[i] = i % 10000 == 0 ? 40.0f : normal(rng);
  ASSERT_TRUE(rare.Add(t).ok());
  auto ent = ComputeRange(rare, ParseCalibrationMethod("entropy").value(), true);
  ASSERT_TRUE(ent.ok());
  std::printf("  entropy threshold %.3g (max 40)\n", ent->second);
  EXPECT_GT(ent->second, 2.5);
  EXPECT_LT(ent->second, 20.0);
  EXPECT_FALSE(ParseCalibrationMethod("percentile:120").ok());
  EXPECT_FALSE(ParseCalibrationMethod("kl").ok());
}

TEST(QuantStats, FileRoundTripAndBadFiles) {
  CalibrationStats stats;
  ASSERT_TRUE(stats.Add("conv_out", Uniform({500}, -2, 3, 5)).ok());
  ASSERT_TRUE(stats.Add("zeros", Tensor::Allocate(ElementType::kF32, {4}).value()).ok());
  stats.AddRuns(1);
  const fs::path dir = fs::temp_directory_path() / ("kiln_quant_stats_" + std::to_string(getpid()));
  fs::create_directories(dir);
  const std::string path = (dir / "stats.json").string();
  ASSERT_TRUE(SaveCalibrationStats(stats, path).ok());
  auto loaded = LoadCalibrationStats(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(loaded->Serialize(), stats.Serialize());

  const std::string text = stats.Serialize();
  {
    std::ofstream f(dir / "truncated.json");
    f << text.substr(0, text.size() / 2);
  }
  auto truncated = LoadCalibrationStats((dir / "truncated.json").string());
  ASSERT_FALSE(truncated.ok());
  EXPECT_NE(truncated.status().message().find("truncated.json"), std::string::npos);
  EXPECT_NE(truncated.status().message().find("truncated or corrupted"), std::string::npos);

  std::string corrupted = text;
  const size_t at = corrupted.find("\"count\":500");
  ASSERT_NE(at, std::string::npos);
  corrupted.replace(at, 11, "\"count\":501");
  auto bad = CalibrationStats::Parse(corrupted, "stats.json");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("conv_out"), std::string::npos) << bad.status().message();
  EXPECT_NE(bad.status().message().find("add up"), std::string::npos);
  EXPECT_FALSE(CalibrationStats::Parse("{\"format\":\"other\"}", "x.json").ok());
  EXPECT_FALSE(LoadCalibrationStats((dir / "missing.json").string()).ok());
  fs::remove_all(dir);
}

// --- models ------------------------------------------------------------------------------

Tensor Weights(const Shape& shape, float scale, uint64_t seed) {
  return Uniform(shape, -scale, scale, seed);
}

// x[1,4,12,12] -> Conv 3x3 (8) -> Clip(0,6) -> Conv 3x3 (8) -> Relu -> MaxPool 2x2 -> Conv 1x1
// (4) -> Add(skip of a GlobalAveragePool) -> y
Model SmallConvModel(uint64_t seed) {
  Model m;
  m.opsets[""] = 13;
  Graph& g = m.graph;
  ValueId x = g.AddValue("x", ElementType::kF32, DimVector{1, 4, 12, 12});
  g.MarkInput(x);
  auto conv = [&](const std::string& name, ValueId in, int64_t cin, int64_t cout, int64_t k,
                  uint64_t s) {
    ValueId w = g.AddInitializer(name + ".w", Weights({cout, cin, k, k}, 0.5f, s));
    ValueId b = g.AddInitializer(name + ".b", Weights({cout}, 0.2f, s + 100));
    ValueId out = g.AddValue(name + ".out");
    Attributes a;
    a.Add(Attribute::Ints("pads", {k / 2, k / 2, k / 2, k / 2}));
    g.AddNode(name, "Conv", {in, w, b}, {out}, a, "", 13);
    return out;
  };
  ValueId c1 = conv("conv1", x, 4, 8, 3, seed);
  ValueId lo = g.AddInitializer("clip.lo", Tensor::FromVector<float>({0.0f}, {}));
  ValueId hi = g.AddInitializer("clip.hi", Tensor::FromVector<float>({6.0f}, {}));
  ValueId r1 = g.AddValue("clip1.out");
  g.AddNode("clip1", "Clip", {c1, lo, hi}, {r1}, {}, "", 13);
  ValueId c2 = conv("conv2", r1, 8, 8, 3, seed + 1);
  ValueId r2 = g.AddValue("relu2.out");
  g.AddNode("relu2", "Relu", {c2}, {r2}, {}, "", 13);
  ValueId p = g.AddValue("pool.out");
  Attributes pa;
  pa.Add(Attribute::Ints("kernel_shape", {2, 2}));
  pa.Add(Attribute::Ints("strides", {2, 2}));
  g.AddNode("pool", "MaxPool", {r2}, {p}, pa, "", 13);
  ValueId c3 = conv("conv3", p, 8, 4, 1, seed + 2);
  ValueId gap = g.AddValue("gap.out");
  g.AddNode("gap", "GlobalAveragePool", {c3}, {gap}, {}, "", 13);
  ValueId y = g.AddValue("y");
  g.AddNode("add", "Add", {c3, gap}, {y}, {}, "", 13);
  g.MarkOutput(y);
  EXPECT_TRUE(InferShapes(g, InferShapesOptions{}).ok());
  return m;
}

TEST(Quantize, SmallConvModelRunsInKilnAndOrtAlike) {
  std::vector<NamedTensors> samples;
  for (int i = 0; i < 8; ++i) samples.push_back({{"x", Uniform({1, 4, 12, 12}, -1, 1, 10 + i)}});
  Model model = SmallConvModel(7);
  CalibrationStats stats;
  ASSERT_TRUE(RecordStatistics(model, samples, {}, stats).ok());
  EXPECT_EQ(stats.runs(), 8);
  ASSERT_NE(stats.Find("conv2.out"), nullptr);
  QuantizeOptions o;
  auto report = QuantizeModel(model, stats, o);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->quantized["Conv"], 3);
  EXPECT_EQ(report->quantized["MaxPool"], 1);
  EXPECT_EQ(report->biases_quantized, 3);
  int q = 0, dq = 0;
  for (const Node& n : model.graph.nodes()) {
    q += n.op_type == "QuantizeLinear";
    dq += n.op_type == "DequantizeLinear";
    // Relu and Clip are fused: the conv outputs they read are not quantized themselves.
    if (n.op_type == "QuantizeLinear") {
      EXPECT_NE(model.graph.value(n.inputs[0]).name, "conv1.out");
      EXPECT_NE(model.graph.value(n.inputs[0]).name, "conv2.out");
    }
  }
  EXPECT_GT(q, 0);
  EXPECT_GT(dq, q);  // weights and biases have a DequantizeLinear only
  EXPECT_NE(model.metadata["kiln.quantization"].find("\"method\":\"mse\""), std::string::npos);

  const fs::path dir = fs::temp_directory_path() / ("kiln_quant_small_" + std::to_string(getpid()));
  fs::create_directories(dir);
  const fs::path file = dir / "small_qdq.onnx";
  ASSERT_TRUE(ExportOnnxFile(model, file.string()).ok());
  Tensor x = Uniform({1, 4, 12, 12}, -1, 1, 99);
  auto want = RunRef(SmallConvModel(7), {{"x", x}});
  auto kiln = RunRef(ImportOnnxFile(file.string()).value(), {{"x", x}});
  ASSERT_EQ(kiln.size(), 1u);
  const double err = RelL2(kiln[0], want[0]);
  std::printf("  small conv: int8 QDQ vs float relative error %.3g\n", err);
  EXPECT_LE(err, 0.05);
  if (!HaveOrt()) GTEST_SKIP() << "ONNX Runtime missing: run scripts/setup.sh";
  auto ort = RunOrt(file, {{"x", x}}, {"y"});
  ASSERT_EQ(ort.size(), 1u);
  const double agree = RelL2(ort[0], kiln[0]);
  std::printf("  small conv: ONNX Runtime vs Kiln on the QDQ file %.3g\n", agree);
  EXPECT_LE(agree, 0.02);
  fs::remove_all(dir);
}

// Conv -> scalar affine -> Swish (x * Sigmoid(x)) -> Conv: the chain between the convs is a
// function of the first conv's output alone, so only its end is quantized (one rounding), and
// fuse-qdq turns it into one table; Kiln and ONNX Runtime agree on the file.
TEST(Quantize, ElementwiseChainIsQuantizedOnceAtItsEnd) {
  Model model;
  model.opsets[""] = 13;
  Graph& g = model.graph;
  ValueId x = g.AddValue("x", ElementType::kF32, DimVector{1, 4, 10, 10});
  g.MarkInput(x);
  auto scalar = [&](const std::string& name, float v) {
    return g.AddInitializer(name, Tensor::FromVector<float>({v}, {}));
  };
  auto node = [&](const std::string& op, std::vector<ValueId> in) {
    ValueId out = g.AddValue(op + std::to_string(g.num_nodes()) + ".out");
    g.AddNode(op + std::to_string(g.num_nodes()), op, std::move(in), {out}, {}, "", 13);
    return out;
  };
  ValueId c1 = node("Conv", {x, g.AddInitializer("w1", Weights({6, 4, 1, 1}, 0.5f, 3)),
                             g.AddInitializer("b1", Weights({6}, 0.2f, 4))});
  ValueId a = node("Add", {node("Mul", {c1, scalar("s", 1.5f)}), scalar("t", -0.2f)});
  ValueId sw = node("Mul", {a, node("Sigmoid", {a})});
  ValueId y = node("Conv", {sw, g.AddInitializer("w2", Weights({3, 6, 1, 1}, 0.5f, 5)),
                            g.AddInitializer("b2", Weights({3}, 0.2f, 6))});
  g.value(y).name = "y";
  g.MarkOutput(y);
  const std::string c1_name = g.value(c1).name, sw_name = g.value(sw).name;
  ASSERT_TRUE(InferShapes(g, InferShapesOptions{}).ok());
  Model original = CopyModel(model);
  std::vector<NamedTensors> samples;
  for (int i = 0; i < 6; ++i) samples.push_back({{"x", Uniform({1, 4, 10, 10}, -1, 1, 40 + i)}});
  CalibrationStats stats;
  ASSERT_TRUE(RecordStatistics(model, samples, {}, stats).ok());
  auto report = QuantizeModel(model, stats, QuantizeOptions{});
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  std::set<std::string> quantized;
  for (const Node& n : model.graph.nodes()) {
    if (n.op_type == "QuantizeLinear") quantized.insert(model.graph.value(n.inputs[0]).name);
  }
  EXPECT_EQ(quantized, (std::set<std::string>{"x", c1_name, sw_name}))
      << "x, the first conv's output and the chain's end only";
  Model fused = CopyModel(model);
  ASSERT_TRUE(FuseQdq(fused).ok());
  int luts = 0, floats = 0;
  for (const Node& n : fused.graph.nodes()) {
    luts += n.op_type == "QLut";
    floats += n.op_type == "Mul" || n.op_type == "Add" || n.op_type == "Sigmoid";
  }
  EXPECT_EQ(luts, 1);
  EXPECT_EQ(floats, 0);
  Tensor in = Uniform({1, 4, 10, 10}, -1, 1, 77);
  auto want = RunRef(std::move(original), {{"x", in}});
  const fs::path dir = fs::temp_directory_path() / ("kiln_quant_chain_" + std::to_string(getpid()));
  fs::create_directories(dir);
  const fs::path file = dir / "chain_qdq.onnx";
  ASSERT_TRUE(ExportOnnxFile(model, file.string()).ok());
  auto kiln = RunRef(ImportOnnxFile(file.string()).value(), {{"x", in}});
  ASSERT_EQ(kiln.size(), 1u);
  const double err = RelL2(kiln[0], want[0]);
  std::printf("  chain: int8 QDQ vs float relative error %.3g\n", err);
  EXPECT_LE(err, 0.05);
  if (!HaveOrt()) GTEST_SKIP() << "ONNX Runtime missing: run scripts/setup.sh";
  auto ort = RunOrt(file, {{"x", in}}, {"y"});
  ASSERT_EQ(ort.size(), 1u);
  const double agree = RelL2(ort[0], kiln[0]);
  std::printf("  chain: ONNX Runtime vs Kiln on the QDQ file %.3g\n", agree);
  EXPECT_LE(agree, 0.01);
  fs::remove_all(dir);
}

// --weight-bits 7: every weight integer in [-63, 63] with each channel's largest at +-63, and the
// model still close to float (a little further than 8 bits).
TEST(Quantize, SevenBitWeights) {
  std::vector<NamedTensors> samples;
  for (int i = 0; i < 4; ++i) samples.push_back({{"x", Uniform({1, 4, 12, 12}, -1, 1, 60 + i)}});
  CalibrationStats stats;
  ASSERT_TRUE(RecordStatistics(SmallConvModel(7), samples, {}, stats).ok());
  Tensor x = Uniform({1, 4, 12, 12}, -1, 1, 98);
  auto want = RunRef(SmallConvModel(7), {{"x", x}});
  double err[2];
  for (int bits : {8, 7}) {
    Model m = SmallConvModel(7);
    QuantizeOptions o;
    o.weight_bits = bits;
    auto r = QuantizeModel(m, stats, o);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    int weights = 0;
    for (const Node& n : m.graph.nodes()) {
      if (n.op_type != "Conv") continue;
      const Node& dq = m.graph.node(m.graph.value(n.inputs[1]).producer);
      const Tensor q = m.graph.value(dq.inputs[0]).initializer;
      ASSERT_EQ(q.type(), ElementType::kI8);
      const int64_t per = q.size() / q.dim(0);
      for (int64_t c = 0; c < q.dim(0); ++c) {
        int64_t amax = 0;
        for (int64_t i = 0; i < per; ++i) amax = std::max(amax, std::abs(q.GetAsInt64(c * per + i)));
        EXPECT_EQ(amax, bits == 7 ? 63 : 127) << n.name << " channel " << c;
      }
      ++weights;
    }
    EXPECT_EQ(weights, 3);
    auto got = RunRef(std::move(m), {{"x", x}});
    ASSERT_EQ(got.size(), 1u);
    err[bits - 7] = RelL2(got[0], want[0]);
  }
  std::printf("  relative error vs float: 8-bit weights %.3g, 7-bit %.3g\n", err[1], err[0]);
  EXPECT_LE(err[0], 0.06);
  EXPECT_GE(err[0], err[1] * 0.8);  // fewer levels cannot be much better
}

// x -> Conv A (reads x, whose range is dominated by rare outliers) -> Clip(0,6) -> Conv B ->
// Relu -> Conv C -> y. Quantizing x wipes out its normal values; keeping A float keeps x float.
TEST(Quantize, AutoTolKeepsTheHostileLayerFloat) {
  Model model;
  model.opsets[""] = 13;
  Graph& g = model.graph;
  ValueId x = g.AddValue("x", ElementType::kF32, DimVector{1, 4, 8, 8});
  g.MarkInput(x);
  auto conv = [&](const std::string& name, ValueId in, int64_t cin, int64_t cout, uint64_t s) {
    ValueId w = g.AddInitializer(name + ".w", Weights({cout, cin, 3, 3}, 0.4f, s));
    ValueId b = g.AddInitializer(name + ".b", Weights({cout}, 0.1f, s + 50));
    ValueId out = g.AddValue(name + ".out");
    Attributes a;
    a.Add(Attribute::Ints("pads", {1, 1, 1, 1}));
    g.AddNode(name, "Conv", {in, w, b}, {out}, a, "", 13);
    return out;
  };
  ValueId a = conv("A", x, 4, 8, 1);
  ValueId lo = g.AddInitializer("lo", Tensor::FromVector<float>({0.0f}, {}));
  ValueId hi = g.AddInitializer("hi", Tensor::FromVector<float>({6.0f}, {}));
  ValueId ca = g.AddValue("clipA.out");
  g.AddNode("clipA", "Clip", {a, lo, hi}, {ca}, {}, "", 13);
  ValueId b = conv("B", ca, 8, 8, 2);
  ValueId rb = g.AddValue("reluB.out");
  g.AddNode("reluB", "Relu", {b}, {rb}, {}, "", 13);
  ValueId c = conv("C", rb, 8, 4, 3);
  g.MarkOutput(c);
  ASSERT_TRUE(InferShapes(g, InferShapesOptions{}).ok());

  std::vector<NamedTensors> samples;
  for (int i = 0; i < 6; ++i) {
    Tensor t = Uniform({1, 4, 8, 8}, 0, 1, 20 + i);
    t.data<float>()[(i * 37) % t.size()] = 500.0f;  // one outlier per sample
    samples.push_back({{"x", t}});
  }
  CalibrationStats stats;
  ASSERT_TRUE(RecordStatistics(model, samples, {}, stats).ok());
  Model plain = CopyModel(model);
  Model float_model = CopyModel(model);
  ASSERT_TRUE(QuantizeModel(plain, stats, QuantizeOptions{}).ok());
  double plain_err = 0;
  for (const auto& s : samples) {
    const auto want = RunRef(CopyModel(float_model), s);
    const auto got = RunRef(CopyModel(plain), s);
    plain_err = std::max(plain_err, RelL2(got[0], want[0]));
  }
  std::printf("  hostile model, everything quantized: error %.3g\n", plain_err);
  EXPECT_GT(plain_err, 0.2);

  constexpr double kTol = 0.05;
  QuantizeOptions o;
  o.keep_float = ParseKeepSelector("auto:0.05").value();
  o.samples = samples;
  auto report = QuantizeModel(model, stats, o);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  ASSERT_EQ(report->kept.size(), 1u);
  EXPECT_EQ(report->kept[0].name, "A");
  ASSERT_FALSE(report->layer_errors.empty());
  EXPECT_EQ(report->layer_errors[0].name, "A");
  ASSERT_EQ(report->output_errors.size(), 1u);
  EXPECT_LE(report->output_errors[0].relative_l2, kTol);
  EXPECT_NE(model.metadata["kiln.quantization"].find("\"kept_float_nodes\":[\"A\"]"),
            std::string::npos);
  // Checked independently: the written model on every sample.
  for (const auto& s : samples) {
    const auto want = RunRef(CopyModel(float_model), s);
    const auto got = RunRef(CopyModel(model), s);
    EXPECT_LE(RelL2(got[0], want[0]), 2 * kTol);
  }
  for (const auto& e : report->layer_errors) {
    std::printf("  layer %-4s %-5s %.3g\n", e.name.c_str(), e.op_type.c_str(), e.sensitivity);
  }
  std::printf("  auto:%.2g kept %s, output error %.3g after %d evaluations\n", kTol,
              report->kept[0].name.c_str(), report->output_errors[0].relative_l2,
              report->model_runs);
}

// kLayers 3x3 convs (8 channels, Relu between) -> Softmax over the last axis. Channel 0 of every
// layer's output is dead (zero weights, bias -1, then Relu: always 0). The layers in
// `hypersensitive` carry a weight of 1000 on that dead input channel in every filter: it adds
// nothing in float, but sets each filter's per-channel int8 scale to 1000/127, so the real
// weights (|w| <= 0.35) all round to 0 or to a step of 7.9: int8 destroys those layers alone.
constexpr int kLayers = 12;
Model HypersensitiveModel(const std::set<int>& hypersensitive) {
  Model m;
  m.opsets[""] = 13;
  Graph& g = m.graph;
  ValueId x = g.AddValue("x", ElementType::kF32, DimVector{1, 8, 8, 8});
  g.MarkInput(x);
  ValueId cur = x;
  for (int l = 0; l < kLayers; ++l) {
    const std::string name = "conv" + std::to_string(l);
    Tensor w = Weights({8, 8, 3, 3}, 0.35f, 300 + l);
    Tensor b = Weights({8}, 0.05f, 400 + l);
    for (int k = 0; k < 8 * 9; ++k) w.data<float>()[k] = 0;  // output channel 0: dead
    b.data<float>()[0] = -1;
    for (int o = 0; o < 8; ++o) {
      for (int k = 0; k < 9; ++k) {
        // Input channel 0 is dead too (l > 0; the graph input's channel 0 is 0 as well).
        w.data<float>()[(o * 8 + 0) * 9 + k] = hypersensitive.count(l) && o > 0 ? 1000.0f : 0.0f;
      }
    }
    ValueId wv = g.AddInitializer(name + ".w", w);
    ValueId bv = g.AddInitializer(name + ".b", b);
    ValueId out = g.AddValue(name + ".out");
    Attributes a;
    a.Add(Attribute::Ints("pads", {1, 1, 1, 1}));
    g.AddNode(name, "Conv", {cur, wv, bv}, {out}, a, "", 13);
    if (l + 1 == kLayers) {
      cur = out;
      break;
    }
    ValueId r = g.AddValue(name + ".relu");
    g.AddNode(name + "_relu", "Relu", {out}, {r}, {}, "", 13);
    cur = r;
  }
  ValueId y = g.AddValue("y");
  Attributes sa;
  sa.Add(Attribute::Int("axis", -1));
  g.AddNode("softmax", "Softmax", {cur}, {y}, sa, "", 13);
  g.MarkOutput(y);
  EXPECT_TRUE(InferShapes(g, InferShapesOptions{}).ok());
  return m;
}

std::vector<NamedTensors> HypersensitiveSamples(int n, uint64_t seed) {
  std::vector<NamedTensors> samples;
  for (int i = 0; i < n; ++i) {
    Tensor t = Uniform({1, 8, 8, 8}, 0, 1, seed + i);
    for (int k = 0; k < 64; ++k) t.data<float>()[k] = 0;  // channel 0: dead
    samples.push_back({{"x", t}});
  }
  return samples;
}

// Mean over rows (last axis) of |q[c*] - f[c*]| with c* the float argmax; computed here.
double ChosenChange(const Tensor& q, const Tensor& f) {
  const int64_t n = f.shape().back();
  double sum = 0;
  for (int64_t r = 0; r < f.size() / n; ++r) {
    int64_t c = 0;
    for (int64_t k = 1; k < n; ++k) c = f.GetAsDouble(r * n + k) > f.GetAsDouble(r * n + c) ? k : c;
    sum += std::fabs(q.GetAsDouble(r * n + c) - f.GetAsDouble(r * n + c));
  }
  return sum / static_cast<double>(f.size() / n);
}

TEST(QuantizeSearch, KeepsExactlyTheHypersensitiveLayers) {
  const std::set<int> bad = {3, 9};
  const std::vector<NamedTensors> all = HypersensitiveSamples(16, 500);
  const SampleSplit split = SplitCalibrationSamples(all);
  ASSERT_TRUE(split.held_out);
  EXPECT_EQ(split.measure.size(), 4u);
  EXPECT_EQ(split.calibration.size(), 12u);
  const std::vector<NamedTensors> fresh = HypersensitiveSamples(6, 900);
  auto fresh_error = [&](const Model& written) {
    double worst = 0;
    for (const auto& s : fresh) {
      const auto want = RunRef(HypersensitiveModel(bad), s);
      const auto got = RunRef(CopyModel(written), s);
      if (got.empty() || want.empty()) return static_cast<double>(INFINITY);
      worst = std::max(worst, ChosenChange(got[0], want[0]));
    }
    return worst;
  };
  CalibrationStats stats;
  {
    Model m = HypersensitiveModel(bad);
    ASSERT_TRUE(RecordStatistics(m, split.calibration, {}, stats).ok());
  }
  auto quantize = [&](const std::string& keep, Model& m) {
    QuantizeOptions o;
    EXPECT_TRUE(ParseQuantizeKeepFloat(keep, o).ok()) << keep;
    o.samples = split.measure;
    o.search.speed_runs = 2;
    m = HypersensitiveModel(bad);
    auto r = QuantizeModel(m, stats, o);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : QuantizeReport{};
  };
  auto kept_names = [](const QuantizeReport& r) {
    std::set<std::string> k;
    for (const auto& n : r.kept) k.insert(n.name);
    return k;
  };

  // The default: exactly the two hypersensitive layers.
  Model def;
  const QuantizeReport r = quantize("", def);
  EXPECT_TRUE(r.searched);
  EXPECT_EQ(kept_names(r), (std::set<std::string>{"conv3", "conv9"}));
  EXPECT_EQ(r.quantized.at("Conv"), kLayers - 2);
  ASSERT_EQ(r.output_errors.size(), 1u);
  EXPECT_EQ(r.output_errors[0].metric, "argmax");  // softmax output: detected
  EXPECT_LE(r.output_errors[0].error, kDefaultArgmaxTolerance);
  ASSERT_EQ(r.all_int8_errors.size(), 1u);
  EXPECT_GT(r.all_int8_errors[0].error, kDefaultArgmaxTolerance);
  ASSERT_GE(r.layer_errors.size(), 2u);
  EXPECT_EQ((std::set<std::string>{r.layer_errors[0].name, r.layer_errors[1].name}),
            (std::set<std::string>{"conv3", "conv9"}));
  EXPECT_GT(r.float_ms, 0);
  EXPECT_GT(r.quantized_ms, 0);
  const double def_err = fresh_error(def);
  std::printf("  default: kept %zu, held-out chosen-class change %.4g (all int8 %.4g), fresh "
              "samples %.4g, %d evaluations, %.2f s\n",
              r.kept.size(), r.output_errors[0].error, r.all_int8_errors[0].error, def_err,
              r.model_runs, r.search_seconds);
  EXPECT_LE(def_err, 2 * kDefaultArgmaxTolerance);  // independent: samples the search never saw

  // The other ranking finds the same set.
  {
    QuantizeOptions o;
    o.samples = split.measure;
    o.search.ranking = SensitivityRanking::kLeaveOut;
    o.search.speed_runs = 0;
    Model m = HypersensitiveModel(bad);
    auto lo = QuantizeModel(m, stats, o);
    ASSERT_TRUE(lo.ok()) << lo.status().ToString();
    EXPECT_EQ(kept_names(*lo), (std::set<std::string>{"conv3", "conv9"}));
  }

  // none: all int8, no search, and the loss is measured and reported.
  Model none;
  const QuantizeReport rn = quantize("none", none);
  EXPECT_FALSE(rn.searched);
  EXPECT_TRUE(rn.kept.empty());
  EXPECT_EQ(rn.quantized.at("Conv"), kLayers);
  ASSERT_EQ(rn.output_errors.size(), 1u);
  EXPECT_GT(rn.output_errors[0].error, kDefaultArgmaxTolerance);
  EXPECT_GT(fresh_error(none), 5 * def_err);

  // auto:TOL: a loose tolerance keeps nothing, a strict one at least the two.
  Model loose;
  const QuantizeReport rl = quantize("auto:10", loose);
  EXPECT_TRUE(rl.searched);
  EXPECT_TRUE(rl.kept.empty());
  EXPECT_DOUBLE_EQ(rl.output_errors[0].tolerance, 10);
  // An unreachable one: the search gives up at half the layers float (all int8, float
  // recommended) ...
  Model strict;
  const QuantizeReport rs = quantize("auto:1e-9", strict);
  EXPECT_TRUE(rs.search_gave_up);
  EXPECT_TRUE(rs.float_recommended);
  EXPECT_TRUE(rs.kept.empty());
  // ... unless allowed to keep everything float.
  {
    QuantizeOptions o;
    ASSERT_TRUE(ParseQuantizeKeepFloat("auto:1e-9", o).ok());
    o.samples = split.measure;
    o.search.max_kept_fraction = 1.0;
    o.search.speed_runs = 0;
    Model m = HypersensitiveModel(bad);
    auto all_float = QuantizeModel(m, stats, o);
    ASSERT_TRUE(all_float.ok()) << all_float.status().ToString();
    const std::set<std::string> ks = kept_names(*all_float);
    EXPECT_TRUE(ks.count("conv3") && ks.count("conv9"));
    EXPECT_GT(ks.size(), 2u);
  }

  // Explicit items only: just those, no search.
  Model named;
  const QuantizeReport re = quantize("name:conv3", named);
  EXPECT_FALSE(re.searched);
  EXPECT_EQ(kept_names(re), (std::set<std::string>{"conv3"}));
  // ... plus auto: the search adds conv9.
  Model both;
  const QuantizeReport rb = quantize("name:conv3,auto", both);
  EXPECT_EQ(kept_names(rb), (std::set<std::string>{"conv3", "conv9"}));

  QuantizeOptions bad_opt;
  EXPECT_FALSE(ParseQuantizeKeepFloat("none,op:Conv", bad_opt).ok());
  EXPECT_FALSE(ParseQuantizeKeepFloat("auto:x", bad_opt).ok());
  EXPECT_FALSE(ParseOutputMetric("l1").ok());
}

TEST(Quantize, BadCalibrationDataIsAClearError) {
  Model model = SmallConvModel(1);
  auto none = LoadCalibrationSamples("/nonexistent/kiln", model.graph, 4);
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("not a directory"), std::string::npos);
  const fs::path dir = fs::temp_directory_path() / ("kiln_quant_data_" + std::to_string(getpid()));
  fs::create_directories(dir);
  ASSERT_TRUE(WriteNpy((dir / "a.npy").string(), Uniform({1, 4, 12, 13}, 0, 1, 1)).ok());
  auto wrong = LoadCalibrationSamples(dir.string(), model.graph, 4);
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.status().message().find("a.npy"), std::string::npos);
  ASSERT_TRUE(WriteNpy((dir / "a.npy").string(), Uniform({1, 4, 12, 12}, 0, 1, 1)).ok());
  ASSERT_TRUE(WriteNpy((dir / "b.npy").string(), Uniform({1, 4, 12, 12}, 0, 1, 2)).ok());
  auto ok = LoadCalibrationSamples(dir.string(), model.graph, 1);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->size(), 1u);
  fs::remove_all(dir);
}

// A PP-OCR model quantized from random calibration inputs: Kiln (reference) and ONNX Runtime
// run the QDQ file alike; the int8 error vs float must stay within `max_float_err` (about 1.5x
// what was measured when the bound was set: cls 0.039, rec 0.101, det 0.565; inputs and
// calibration are seeded, so a bigger error is a change in quantization, not noise).
// A synthetic document page (light paper, dark stroke "words", shifted by `seed`), normalised as
// PaddleOCR does: the detector's output on pure noise is ~0 everywhere, which makes a relative
// error meaningless.
Tensor Page(const Shape& shape, uint64_t seed) {
  Tensor t = Tensor::Allocate(ElementType::kF32, shape).value();
  const int64_t h = shape[2], w = shape[3];
  std::mt19937_64 rng(seed);
  const int64_t dy = static_cast<int64_t>(rng() % 16), dx = static_cast<int64_t>(rng() % 24);
  std::uniform_real_distribution<float> noise(-0.1f, 0.1f);
  for (int64_t c = 0; c < 3; ++c) {
    for (int64_t y = 0; y < h; ++y) {
      for (int64_t x = 0; x < w; ++x) {
        const int64_t yy = y + dy, xx = x + dx;
        const bool ink = (yy % 32) >= 10 && (yy % 32) < 22 && (xx % 48) < 36 && (xx / 3) % 3 != 0;
        t.data<float>()[(c * h + y) * w + x] = (ink ? -1.7f : 1.9f) + noise(rng);
      }
    }
  }
  return t;
}

void CheckRealModel(const std::string& file, const Shape& shape, int samples, double max_ort_err,
                    double max_float_err, bool argmax_rows, bool page = false) {
  auto input = [&](uint64_t seed) { return page ? Page(shape, seed) : Uniform(shape, -1, 1, seed); };
  const fs::path path = kOcr / file;
  ASSERT_TRUE(fs::exists(path)) << path << " missing: run scripts/setup.sh";
  Model model = ImportOnnxFile(path.string()).value();
  ASSERT_TRUE(RunPasses(model, DefaultOptimizationPasses()).ok());
  Model float_model = CopyModel(model);
  std::vector<NamedTensors> calib;
  for (int i = 0; i < samples; ++i) calib.push_back({{"x", input(100 + i)}});
  CalibrationStats stats;
  ASSERT_TRUE(RecordStatistics(model, calib, {}, stats).ok());
  auto report = QuantizeModel(model, stats, QuantizeOptions{});
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->opset_after, 13);
  EXPECT_TRUE(report->per_channel);
  const fs::path dir = fs::temp_directory_path() / ("kiln_quant_real_" + std::to_string(getpid()));
  fs::create_directories(dir);
  const fs::path out = dir / (path.stem().string() + ".qdq.onnx");
  ASSERT_TRUE(ExportOnnxFile(model, out.string(), ExportOptions{.value_info = false}).ok());
  std::printf("  %s: file %.3fx the float file\n", file.c_str(),
              static_cast<double>(fs::file_size(out)) / static_cast<double>(fs::file_size(path)));
  const Tensor x = input(999);
  const auto want = RunRef(std::move(float_model), {{"x", x}});
  const auto kiln = RunRef(ImportOnnxFile(out.string()).value(), {{"x", x}});
  ASSERT_EQ(kiln.size(), want.size());
  const double float_err = RelL2(kiln[0], want[0]);
  std::printf("  %s: int8 vs float relative error %.3g, argmax agreement %.3f\n", file.c_str(),
              float_err, ArgmaxAgreement(kiln[0], want[0]));
  EXPECT_LE(float_err, max_float_err) << file << ": int8 vs float";
  if (argmax_rows) {
    EXPECT_GE(ArgmaxAgreement(kiln[0], want[0]), 0.95) << file << ": int8 vs float";
  }
  if (!HaveOrt()) GTEST_SKIP() << "ONNX Runtime missing: run scripts/setup.sh";
  const std::string out_name = model.graph.value(model.graph.outputs()[0]).name;
  auto ort = RunOrt(out, {{"x", x}}, {out_name});
  ASSERT_EQ(ort.size(), 1u);
  int64_t rows = 0;
  const double agree = ArgmaxAgreement(ort[0], kiln[0], &rows);
  const double err = RelL2(ort[0], kiln[0]);
  std::printf("  %s: ONNX Runtime vs Kiln on the QDQ file: relative error %.3g, argmax %.3f "
              "(%lld rows)\n", file.c_str(), err, agree, static_cast<long long>(rows));
  EXPECT_LE(err, max_ort_err);
  if (argmax_rows) {
    EXPECT_GE(agree, 0.99);
  }
  fs::remove_all(dir);
}

TEST(QuantizeModels, ClsQdqRunsInKilnAndOrt) {
  CheckRealModel("ch_ppocr_mobile_v2.0_cls_infer.onnx", {1, 3, 48, 192}, 8, 0.05, 0.06, false);
}
TEST(QuantizeModels, RecQdqRunsInKilnAndOrt) {
  CheckRealModel("ch_PP-OCRv4_rec_infer.onnx", {1, 3, 48, 320}, 6, 0.15, 0.15, true);
}
TEST(QuantizeModels, DetQdqRunsInKilnAndOrt) {
  CheckRealModel("ch_PP-OCRv4_det_infer.onnx", {1, 3, 160, 160}, 4, 0.1, 0.85, false, true);
}

// --- bias correction ---------------------------------------------------------------------

// x[1,2,6,6] -> depthwise Conv 3x3 (group 2, no bias, no padding) -> y. Each filter is a
// high-pass filter whose taps all round the same way (scale 0.05: one tap 127 steps, eight taps
// at n + 0.45 steps), so int8 rounding shifts its DC response by 8 * 0.0225 per unit of input.
Model HighPassModel() {
  Model m;
  m.opsets[""] = 13;
  Graph& g = m.graph;
  ValueId x = g.AddValue("x", ElementType::kF32, DimVector{1, 2, 6, 6});
  g.MarkInput(x);
  Tensor w = Tensor::Allocate(ElementType::kF32, {2, 1, 3, 3}).value();
  for (int o = 0; o < 2; ++o) {
    const float sign = o == 0 ? 1.0f : -1.0f;  // channel 1: errors of the other sign
    for (int k = 0; k < 9; ++k) {
      w.data<float>()[o * 9 + k] = k == 4 ? sign * 127 * 0.05f : sign * (-16 + 0.45f) * 0.05f;
    }
  }
  ValueId wv = g.AddInitializer("dw.w", w);
  ValueId y = g.AddValue("y");
  Attributes a;
  a.Add(Attribute::Int("group", 2));
  g.AddNode("dw", "Conv", {x, wv}, {y}, a, "", 13);
  g.MarkOutput(y);
  EXPECT_TRUE(InferShapes(g, InferShapesOptions{}).ok());
  return m;
}

double Mean(const Tensor& t, int64_t channel) {
  const int64_t inner = t.size() / t.dim(1);
  double sum = 0;
  for (int64_t i = 0; i < inner; ++i) sum += t.GetAsDouble(channel * inner + i);
  return sum / static_cast<double>(inner);
}

TEST(QuantStats, ChannelMeansRecordMergeAndLoadOldFiles) {
  Tensor a = Uniform({2, 3, 4}, 0, 1, 1), b = Uniform({1, 3, 5}, -2, 0, 2);
  TensorStats s1, s2, both;
  ASSERT_TRUE(s1.Add(a).ok());
  ASSERT_TRUE(s2.Add(b).ok());
  ASSERT_TRUE(both.Add(a).ok());
  ASSERT_TRUE(both.Add(b).ok());
  s1.Merge(s2);
  ASSERT_TRUE(both.HasChannelMeans());
  ASSERT_TRUE(s1.HasChannelMeans());
  for (int c = 0; c < 3; ++c) {
    double sum = 0;
    for (int n = 0; n < 2; ++n) {
      for (int k = 0; k < 4; ++k) sum += a.GetAsDouble((n * 3 + c) * 4 + k);
    }
    for (int k = 0; k < 5; ++k) sum += b.GetAsDouble(c * 5 + k);
    EXPECT_NEAR(both.ChannelMean(c), sum / 13, 1e-9);
    EXPECT_NEAR(s1.ChannelMean(c), sum / 13, 1e-9);
  }
  // Different channel counts: no means rather than wrong ones.
  TensorStats odd;
  ASSERT_TRUE(odd.Add(Uniform({1, 4, 2}, 0, 1, 3)).ok());
  odd.Merge(s2);
  EXPECT_FALSE(odd.HasChannelMeans());
  // Round trip keeps them; a file without them (written before they existed) loads without.
  CalibrationStats cs;
  ASSERT_TRUE(cs.Add("t", a).ok());
  auto back = CalibrationStats::Parse(cs.Serialize(), "test");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ASSERT_TRUE(back->Find("t")->HasChannelMeans());
  EXPECT_NEAR(back->Find("t")->ChannelMean(1), cs.Find("t")->ChannelMean(1), 1e-12);
  // Drops "KEY":[...] and the comma after it (keys are written sorted, "count" follows).
  auto drop = [](std::string text, const std::string& key) {
    const size_t at = text.find("\"" + key + "\":[");
    EXPECT_NE(at, std::string::npos) << key;
    if (at == std::string::npos) return text;
    return text.substr(0, at) + text.substr(text.find(']', at) + 2);
  };
  const std::string old = drop(cs.Serialize(), "channel_counts");
  // Only sums: a clear error.
  auto half = CalibrationStats::Parse(old, "half.json");
  ASSERT_FALSE(half.ok());
  EXPECT_NE(half.status().message().find("channel_sums"), std::string::npos);
  const std::string no_sums = drop(old, "channel_sums");
  auto legacy = CalibrationStats::Parse(no_sums, "old.json");
  ASSERT_TRUE(legacy.ok()) << legacy.status().ToString() << "\n" << no_sums.substr(0, 300);
  EXPECT_FALSE(legacy->Find("t")->HasChannelMeans());
  EXPECT_EQ(legacy->Find("t")->count, 24);
}

TEST(Quantize, BiasCorrectionRestoresTheOutputMean) {
  // A flat "page": channel 0 around 1, channel 1 around 2.
  auto page = [](uint64_t seed) {
    Tensor x = Uniform({1, 2, 6, 6}, -0.1f, 0.1f, seed);
    for (int64_t i = 0; i < x.size(); ++i) x.data<float>()[i] += i < 36 ? 1.0f : 2.0f;
    return x;
  };
  std::vector<NamedTensors> samples;
  for (int i = 0; i < 8; ++i) samples.push_back({{"x", page(20 + i)}});
  CalibrationStats stats;
  ASSERT_TRUE(RecordStatistics(HighPassModel(), samples, {}, stats).ok());
  ASSERT_TRUE(stats.Find("x")->HasChannelMeans());

  // Independently: the mean of x per channel, each filter's rounding error sum, the delta.
  double mean_x[2] = {0, 0};
  for (const auto& smp : samples) {
    for (int c = 0; c < 2; ++c) mean_x[c] += Mean(smp[0].second, c) / 8;
  }
  const float scale = 127 * 0.05f / 127;  // max |w| / 127
  double want_delta[2];
  for (int o = 0; o < 2; ++o) {
    const float sign = o == 0 ? 1.0f : -1.0f;
    double err = 0;
    for (int k = 0; k < 9; ++k) {
      const float wk = k == 4 ? sign * 127 * 0.05f : sign * (-16 + 0.45f) * 0.05f;
      err += wk - std::nearbyint(wk / scale) * scale;
    }
    want_delta[o] = err * mean_x[o];
  }
  EXPECT_NEAR(want_delta[0], 8 * 0.0225, 0.01);
  EXPECT_NEAR(want_delta[1], -2 * 8 * 0.0225, 0.02);

  Model on = HighPassModel(), off = HighPassModel();
  QuantizeOptions o;
  EXPECT_FALSE(o.bias_correction);  // off by default (bench/ocr/README.md)
  o.weight_rounding = WeightRounding::kNearest;  // the rounding error bias correction undoes
  o.bias_correction = true;
  auto r_on = QuantizeModel(on, stats, o);
  ASSERT_TRUE(r_on.ok()) << r_on.status().ToString();
  EXPECT_EQ(r_on->biases_corrected, 1);
  EXPECT_EQ(r_on->biases_quantized, 1);  // created for the bias-less conv
  o.bias_correction = false;
  auto r_off = QuantizeModel(off, stats, o);
  ASSERT_TRUE(r_off.ok()) << r_off.status().ToString();
  EXPECT_EQ(r_off->biases_corrected, 0);
  EXPECT_NE(on.metadata["kiln.quantization"].find("\"bias_correction\":true"), std::string::npos);

  // The created bias holds the delta (up to one int32 step).
  const Graph& g = on.graph;
  for (const Node& n : g.nodes()) {
    if (n.op_type != "Conv") continue;
    ASSERT_EQ(n.inputs.size(), 3u);
    const Node& dq = g.node(g.value(n.inputs[2]).producer);
    ASSERT_EQ(dq.op_type, "DequantizeLinear");
    const Tensor q = g.value(dq.inputs[0]).initializer;
    const Tensor s = g.value(dq.inputs[1]).initializer;
    for (int c = 0; c < 2; ++c) {
      const double b = q.GetAsDouble(c) * s.GetAsDouble(c);
      EXPECT_NEAR(b, want_delta[c], s.GetAsDouble(c)) << "channel " << c;
    }
  }

  Tensor x = page(99);
  auto want = RunRef(HighPassModel(), {{"x", x}});
  auto y_on = RunRef(std::move(on), {{"x", x}});
  auto y_off = RunRef(std::move(off), {{"x", x}});
  ASSERT_EQ(want.size(), 1u);
  ASSERT_EQ(y_on.size(), 1u);
  ASSERT_EQ(y_off.size(), 1u);
  for (int c = 0; c < 2; ++c) {
    const double f = Mean(want[0], c);
    const double e_on = std::fabs(Mean(y_on[0], c) - f), e_off = std::fabs(Mean(y_off[0], c) - f);
    std::printf("  channel %d: float mean %.4f, int8 mean error %.4f corrected, %.4f not\n", c, f,
                e_on, e_off);
    EXPECT_GT(e_off, 0.1 * (c + 1));  // the shift the rounding causes
    EXPECT_LT(e_on, 0.25 * e_off);    // mostly gone
  }

  // The default sum-preserving rounding: no shift to correct. Each channel's integers sum to
  // the rounded real sum, and no weight is more than one step from its real value.
  Model sum = HighPassModel();
  QuantizeOptions d;
  EXPECT_EQ(d.weight_rounding, WeightRounding::kSumPreserving);
  auto r_sum = QuantizeModel(sum, stats, d);
  ASSERT_TRUE(r_sum.ok()) << r_sum.status().ToString();
  EXPECT_NE(sum.metadata["kiln.quantization"].find("\"weight_rounding\":\"sum\""),
            std::string::npos);
  for (const Node& n : sum.graph.nodes()) {
    if (n.op_type != "Conv") continue;
    const Node& dq = sum.graph.node(sum.graph.value(n.inputs[1]).producer);
    const Tensor q = sum.graph.value(dq.inputs[0]).initializer;
    ASSERT_EQ(q.size(), 18);
    for (int o2 = 0; o2 < 2; ++o2) {
      const float sign = o2 == 0 ? 1.0f : -1.0f;
      double real = 0;
      int64_t ints = 0;
      for (int k = 0; k < 9; ++k) {
        const float wk = k == 4 ? sign * 127 * 0.05f : sign * (-16 + 0.45f) * 0.05f;
        const double r = wk / scale;
        real += r;
        ints += q.GetAsInt64(o2 * 9 + k);
        EXPECT_LE(std::fabs(q.GetAsDouble(o2 * 9 + k) - r), 1.0) << "channel " << o2 << " tap " << k;
      }
      EXPECT_EQ(ints, static_cast<int64_t>(std::nearbyint(real))) << "channel " << o2;
    }
  }
  auto y_sum = RunRef(std::move(sum), {{"x", x}});
  ASSERT_EQ(y_sum.size(), 1u);
  for (int c = 0; c < 2; ++c) {
    const double f = Mean(want[0], c);
    const double e_sum = std::fabs(Mean(y_sum[0], c) - f), e_off = std::fabs(Mean(y_off[0], c) - f);
    std::printf("  channel %d: int8 mean error %.4f with sum-preserving rounding\n", c, e_sum);
    EXPECT_LT(e_sum, 0.25 * e_off);
  }
}

}  // namespace
}  // namespace kiln
