// Weights resident once (SessionOptions::release_packed_weights): a weight read from the model
// file that a backend packed is released from the model's copy, read back for a plan of new
// shapes, kept when something else reads it, and a file changed in place is refused, never
// read wrong. Results are compared with a session that keeps every weight.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>
#include <vector>

#include "ir/shape_inference.h"
#include "onnx/exporter.h"
#include "onnx/importer.h"
#include "runtime/session.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

Tensor RandomTensor(const Shape& shape, uint32_t seed) {
  Tensor t = Tensor::Allocate(ElementType::kF32, shape).value();
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-0.5f, 0.5f);
  for (int64_t i = 0; i < t.size(); ++i) t.data<float>()[i] = d(rng);
  return t;
}

// x[1, 32, H, W] -> Conv 3x3 (w1, 72 KiB) -> Relu -> Conv 1x1 (w2, 64 KiB) -> GlobalAveragePool
// -> Flatten -> MatMul (w3, 300 KiB) = y; Flatten -> MatMul (w5) and MatMul (w5) again, added
// = y2 (w5 read by two nodes); a small bias b1 (below the reloadable size).
struct Weights {
  static constexpr int64_t kW1 = 64 * 32 * 9 * 4, kW2 = 256 * 64 * 4, kW3 = 256 * 300 * 4,
                           kW5 = 256 * 100 * 4;
};

// as_constants: w1, w2 and w3 stored as Constant nodes (PaddlePaddle's export) instead of
// initializers.
fs::path WriteModel(const std::string& name, bool as_constants = false) {
  Model m;
  m.opsets[""] = 17;
  Graph& g = m.graph;
  ValueId x = g.AddValue("x", ElementType::kF32,
                         DimVector{Dim(1), Dim(32), Dim::Symbol("H"), Dim::Symbol("W")});
  g.MarkInput(x);
  auto weight = [&](const std::string& wname, Tensor t) {
    if (!as_constants) return g.AddInitializer(wname, std::move(t));
    ValueId v = g.AddValue(wname);
    Attributes a;
    Attribute value;
    value.name = "value";
    value.kind = Attribute::Kind::kTensor;
    value.t = std::move(t);
    a.Add(std::move(value));
    g.AddNode(wname + "_const", "Constant", {}, {v}, std::move(a), "", 17);
    return v;
  };
  ValueId w1 = weight("w1", RandomTensor({64, 32, 3, 3}, 1));
  ValueId b1 = g.AddInitializer("b1", RandomTensor({64}, 2));
  ValueId w2 = weight("w2", RandomTensor({256, 64, 1, 1}, 3));
  ValueId w3 = weight("w3", RandomTensor({256, 300}, 4));
  ValueId w5 = g.AddInitializer("w5", RandomTensor({256, 100}, 5));
  ValueId c1 = g.AddValue("c1"), r1 = g.AddValue("r1"), c2 = g.AddValue("c2"),
          p = g.AddValue("p"), f = g.AddValue("f"), y = g.AddValue("y"), m1 = g.AddValue("m1"),
          m2 = g.AddValue("m2"), y2 = g.AddValue("y2");
  Attributes conv_attrs;
  conv_attrs.Add(Attribute::Ints("pads", {1, 1, 1, 1}));
  g.AddNode("conv1", "Conv", {x, w1, b1}, {c1}, conv_attrs, "", 17);
  g.AddNode("relu", "Relu", {c1}, {r1}, {}, "", 17);
  g.AddNode("conv2", "Conv", {r1, w2}, {c2}, {}, "", 17);
  g.AddNode("gap", "GlobalAveragePool", {c2}, {p}, {}, "", 17);
  g.AddNode("flat", "Flatten", {p}, {f}, {}, "", 17);
  g.AddNode("fc", "MatMul", {f, w3}, {y}, {}, "", 17);
  g.AddNode("fc_a", "MatMul", {f, w5}, {m1}, {}, "", 17);
  g.AddNode("fc_b", "MatMul", {f, w5}, {m2}, {}, "", 17);
  g.AddNode("sum", "Add", {m1, m2}, {y2}, {}, "", 17);
  g.MarkOutput(y);
  g.MarkOutput(y2);
  EXPECT_TRUE(InferShapes(g, {}).ok());
  const fs::path dir = fs::path(::testing::TempDir()) / "kiln_weights_release";
  fs::create_directories(dir);
  const fs::path path = dir / name;
  EXPECT_TRUE(ExportOnnxFile(m, path.string()).ok());
  return path;
}

std::unique_ptr<Session> Open(const fs::path& path, bool release,
                              std::map<std::string, std::string> pins = {}) {
  SessionOptions o;
  o.release_packed_weights = release;
  o.op_backend = std::move(pins);
  auto model = ImportOnnxFile(path.string());
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  auto s = Session::Create(std::move(model).value(), o);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return std::move(s).value();
}

NamedTensors In(int64_t h, int64_t w, uint32_t seed) {
  return {{"x", RandomTensor({1, 32, h, w}, seed)}};
}

void ExpectSame(Session& a, Session& b, const NamedTensors& in) {
  auto ya = a.Run(in);
  auto yb = b.Run(in);
  ASSERT_TRUE(ya.ok()) << ya.status().ToString();
  ASSERT_TRUE(yb.ok()) << yb.status().ToString();
  ASSERT_EQ(ya->size(), yb->size());
  for (size_t i = 0; i < ya->size(); ++i) {
    const Tensor& p = (*ya)[i];
    const Tensor& q = (*yb)[i];
    ASSERT_EQ(p.shape(), q.shape());
    for (int64_t k = 0; k < p.size(); ++k) {
      ASSERT_EQ(p.data<float>()[k], q.data<float>()[k]) << "output " << i << " element " << k;
    }
  }
}

// The weight tensor named `name`: an initializer, or a Constant node's value.
const Tensor* WeightOf(const Graph& g, const std::string& name) {
  auto v = g.FindValue(name);
  if (!v) return nullptr;
  const Value& val = g.value(*v);
  if (val.kind == ValueKind::kInitializer) return &val.initializer;
  return val.producer.valid() ? g.node(val.producer).attrs.GetTensor("value") : nullptr;
}

bool Released(const Session& s, const std::string& name) {
  const Tensor* t = WeightOf(s.graph(), name);
  return t != nullptr && t->pages_released();
}

TEST(WeightsRelease, PackedWeightsReleasedAndReadBackForNewShapes) {
  const fs::path path = WriteModel("release.onnx");
  auto lean = Open(path, true);
  auto full = Open(path, false);
  EXPECT_EQ(lean->released_weight_bytes(), 0);
  ExpectSame(*lean, *full, In(8, 8, 10));
  // w1, w2 and w3 are packed by their only readers; w5 has two readers, b1 is small.
  const int64_t packed = Weights::kW1 + Weights::kW2 + Weights::kW3;
  EXPECT_GE(lean->released_weight_bytes(), packed);
  EXPECT_LT(lean->released_weight_bytes(), packed + Weights::kW5);
  EXPECT_TRUE(Released(*lean, "w1") && Released(*lean, "w2") && Released(*lean, "w3"));
  EXPECT_FALSE(Released(*lean, "w5"));
  EXPECT_FALSE(Released(*lean, "b1"));
  EXPECT_EQ(full->released_weight_bytes(), 0);
  EXPECT_FALSE(Released(*full, "w1"));
  // New shapes build new plans from weights read back from the file; the old plan still runs.
  ExpectSame(*lean, *full, In(12, 10, 11));
  EXPECT_GE(lean->released_weight_bytes(), packed);
  ExpectSame(*lean, *full, In(8, 8, 12));
  ExpectSame(*lean, *full, In(5, 17, 13));
  // A caller that takes the model gets every weight resident, and none is released after.
  const Model& m = lean->model();
  EXPECT_EQ(lean->released_weight_bytes(), 0);
  const Tensor& w3 = m.graph.value(*m.graph.FindValue("w3")).initializer;
  EXPECT_FALSE(w3.pages_released());
  EXPECT_EQ(w3.data<float>()[w3.size() - 1], RandomTensor({256, 300}, 4).data<float>()[w3.size() - 1]);
  ExpectSame(*lean, *full, In(6, 6, 14));
  EXPECT_EQ(lean->released_weight_bytes(), 0);
}

// Weights stored as Constant nodes are released and read back the same way.
TEST(WeightsRelease, ConstantNodeWeightsReleasedAndReadBackForNewShapes) {
  const fs::path path = WriteModel("release_constants.onnx", true);
  auto lean = Open(path, true);
  auto full = Open(path, false);
  ExpectSame(*lean, *full, In(8, 8, 60));
  const int64_t packed = Weights::kW1 + Weights::kW2 + Weights::kW3;
  EXPECT_GE(lean->released_weight_bytes(), packed);
  EXPECT_TRUE(Released(*lean, "w1") && Released(*lean, "w2") && Released(*lean, "w3"));
  EXPECT_FALSE(Released(*full, "w1"));
  ExpectSame(*lean, *full, In(12, 10, 61));
  ExpectSame(*lean, *full, In(8, 8, 62));
  EXPECT_GE(lean->released_weight_bytes(), packed);
  const Model& m = lean->model();
  EXPECT_EQ(lean->released_weight_bytes(), 0);
  const Tensor* w3 = WeightOf(m.graph, "w3");
  ASSERT_NE(w3, nullptr);
  EXPECT_FALSE(w3->pages_released());
  EXPECT_EQ(w3->data<float>()[w3->size() - 1],
            RandomTensor({256, 300}, 4).data<float>()[w3->size() - 1]);
  ExpectSame(*lean, *full, In(6, 6, 63));
}

TEST(WeightsRelease, WeightReadByReferenceKernelStaysResident) {
  const fs::path path = WriteModel("pinned.onnx");
  // MatMul pinned to the reference kernels, which read w3 at every run.
  auto lean = Open(path, true, {{"MatMul", "ref"}});
  auto full = Open(path, false, {{"MatMul", "ref"}});
  ExpectSame(*lean, *full, In(8, 8, 20));
  EXPECT_TRUE(Released(*lean, "w1"));
  EXPECT_FALSE(Released(*lean, "w3"));
  ExpectSame(*lean, *full, In(8, 8, 21));
  ExpectSame(*lean, *full, In(9, 7, 22));
  EXPECT_FALSE(Released(*lean, "w3"));
}

TEST(WeightsRelease, WeightsSharedWithAnotherModelStayResident) {
  // A session over a copy of a model (CopyModel shares the weights' storage, as the quantizer
  // and the ODC job do) releases nothing: the other model may read its weights at any time.
  const fs::path path = WriteModel("shared.onnx");
  Model m = ImportOnnxFile(path.string()).value();
  SessionOptions o;
  o.release_packed_weights = true;
  auto lean = Session::Create(CopyModel(m), o).value();
  auto full = Open(path, false);
  ExpectSame(*lean, *full, In(8, 8, 40));
  EXPECT_EQ(lean->released_weight_bytes(), 0);
  const Tensor& w1 = m.graph.value(*m.graph.FindValue("w1")).initializer;
  ASSERT_TRUE(w1.reloadable());
  EXPECT_FALSE(w1.pages_released());
  const Tensor expect = RandomTensor({64, 32, 3, 3}, 1);
  for (int64_t i = 0; i < w1.size(); ++i) ASSERT_EQ(w1.data<float>()[i], expect.data<float>()[i]);
}

// One session from 4 threads over 6 shapes (new plans read released weights back while other
// threads wait on the session's lock, cached ones run): every output equals the kept-weights
// session's (scripts/tsan.sh runs this too).
TEST(WeightsRelease, SessionThreadsWithNewShapes) {
  const fs::path path = WriteModel("threads.onnx");
  auto lean = Open(path, true);
  auto full = Open(path, false);
  const int64_t hw[6][2] = {{8, 8}, {9, 7}, {6, 11}, {8, 8}, {12, 5}, {9, 7}};
  std::vector<std::vector<Tensor>> expected;
  std::vector<NamedTensors> inputs;
  for (int i = 0; i < 6; ++i) {
    inputs.push_back(In(hw[i][0], hw[i][1], static_cast<uint32_t>(50 + i)));
    expected.push_back(full->Run(inputs.back()).value());
  }
  std::atomic<int> mismatches{0}, failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int r = 0; r < 12; ++r) {
        const int i = (t + r) % 6;
        auto y = lean->Run(inputs[static_cast<size_t>(i)]);
        if (!y.ok()) {
          ++failures;
          continue;
        }
        for (size_t o = 0; o < y->size(); ++o) {
          const Tensor& a = (*y)[o];
          const Tensor& b = expected[static_cast<size_t>(i)][o];
          for (int64_t k = 0; k < a.size(); ++k) mismatches += a.data<float>()[k] != b.data<float>()[k];
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(mismatches.load(), 0);
  EXPECT_GT(lean->released_weight_bytes(), 0);
}

TEST(WeightsRelease, FileChangedInPlaceIsRefusedNotReadWrong) {
  const fs::path path = WriteModel("changed.onnx");
  auto lean = Open(path, true);
  auto full = Open(path, false);
  ExpectSame(*lean, *full, In(8, 8, 30));
  ASSERT_GT(lean->released_weight_bytes(), 0);
  {
    std::ofstream f(path, std::ios::binary | std::ios::app);
    f << "appended";
  }
  auto r = lean->Run(In(10, 10, 31));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("changed in place"), std::string::npos)
      << r.status().ToString();
  // The plan already built keeps serving.
  ExpectSame(*lean, *full, In(8, 8, 32));
}

}  // namespace
}  // namespace kiln
