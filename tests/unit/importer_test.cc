// The ONNX importer on malformed input: each case must give one clear error naming the problem,
// never a crash. Models are built here with the ONNX protobuf classes.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "onnx/importer.h"
#include "runtime/session.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

onnx::ValueInfoProto TensorInfo(const std::string& name, int elem, std::vector<int64_t> dims) {
  onnx::ValueInfoProto vi;
  vi.set_name(name);
  auto* tt = vi.mutable_type()->mutable_tensor_type();
  tt->set_elem_type(elem);
  auto* shape = tt->mutable_shape();
  for (int64_t d : dims) shape->add_dim()->set_dim_value(d);
  return vi;
}

// x: f32[2,3] -> Relu -> y
onnx::ModelProto ReluModel() {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(17);
  auto* g = m.mutable_graph();
  g->set_name("relu");
  *g->add_input() = TensorInfo("x", onnx::TensorProto::FLOAT, {2, 3});
  *g->add_output() = TensorInfo("y", onnx::TensorProto::FLOAT, {2, 3});
  auto* n = g->add_node();
  n->set_op_type("Relu");
  n->set_name("relu0");
  n->add_input("x");
  n->add_output("y");
  return m;
}

Status Import(const onnx::ModelProto& m) {
  std::string bytes = m.SerializeAsString();
  return ImportOnnxBytes(bytes.data(), bytes.size()).status();
}

void ExpectError(const Status& s, const std::vector<std::string>& fragments) {
  ASSERT_FALSE(s.ok());
  for (const auto& f : fragments) {
    EXPECT_NE(s.message().find(f), std::string::npos) << "'" << f << "' not in: " << s.message();
  }
}

TEST(Importer, ValidModelImportsAndRuns) {
  onnx::ModelProto m = ReluModel();
  std::string bytes = m.SerializeAsString();
  auto model = ImportOnnxBytes(bytes.data(), bytes.size());
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  auto session = Session::Create(std::move(model).value());
  ASSERT_TRUE(session.ok());
  Tensor x = Tensor::FromVector<float>({-1, 2, -3, 4, -5, 6}, {2, 3});
  auto out = (*session)->Run({{"x", x}});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  const float expected[] = {0, 2, 0, 4, 0, 6};
  for (int i = 0; i < 6; ++i) EXPECT_EQ((*out)[0].data<float>()[i], expected[i]);
}

TEST(Importer, TruncatedBytesAreRejected) {
  std::string bytes = ReluModel().SerializeAsString();
  for (size_t cut : {bytes.size() / 2, bytes.size() - 1, size_t{3}}) {
    auto r = ImportOnnxBytes(bytes.data(), cut);
    ASSERT_FALSE(r.ok()) << "cut at " << cut;
  }
  ExpectError(ImportOnnxBytes(bytes.data(), 0).status(), {"empty"});
}

TEST(Importer, RandomBytesNeverCrash) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    std::string bytes(static_cast<size_t>(rng() % 512 + 1), '\0');
    for (char& c : bytes) c = static_cast<char>(rng());
    auto r = ImportOnnxBytes(bytes.data(), bytes.size());
    EXPECT_FALSE(r.ok());
    EXPECT_FALSE(r.status().message().empty());
  }
  // Random mutations of a valid model: errors are fine, crashes are not.
  const std::string valid = ReluModel().SerializeAsString();
  for (int trial = 0; trial < 300; ++trial) {
    std::string bytes = valid;
    bytes[rng() % bytes.size()] = static_cast<char>(rng());
    auto r = ImportOnnxBytes(bytes.data(), bytes.size());
    if (r.ok()) {
      auto s = Session::Create(std::move(r).value());
      (void)s;
    }
  }
}

TEST(Importer, DanglingInputNamesTheValue) {
  onnx::ModelProto m = ReluModel();
  m.mutable_graph()->mutable_node(0)->set_input(0, "ghost");
  ExpectError(Import(m), {"ghost", "nothing produces", "relu0"});
}

TEST(Importer, UnknownOpNamesOpDomainAndVersion) {
  onnx::ModelProto m = ReluModel();
  m.mutable_graph()->mutable_node(0)->set_op_type("FrobnicateX");
  ExpectError(Import(m), {"FrobnicateX", "ai.onnx", "17"});
  onnx::ModelProto m2 = ReluModel();
  auto* op = m2.add_opset_import();
  op->set_domain("com.example");
  op->set_version(3);
  m2.mutable_graph()->mutable_node(0)->set_domain("com.example");
  ExpectError(Import(m2), {"Relu", "com.example", "3"});
}

TEST(Importer, DomainNotImportedIsAnError) {
  onnx::ModelProto m = ReluModel();
  m.mutable_graph()->mutable_node(0)->set_domain("com.nowhere");
  ExpectError(Import(m), {"com.nowhere"});
}

TEST(Importer, OutputTypeMismatchIsAnError) {
  onnx::ModelProto m = ReluModel();
  *m.mutable_graph()->mutable_output(0) = TensorInfo("y", onnx::TensorProto::INT64, {2, 3});
  ExpectError(Import(m), {"'y'", "i64", "f32"});
}

TEST(Importer, OutputRankMismatchIsAnError) {
  onnx::ModelProto m = ReluModel();
  *m.mutable_graph()->mutable_output(0) = TensorInfo("y", onnx::TensorProto::FLOAT, {6});
  ExpectError(Import(m), {"'y'", "rank"});
}

TEST(Importer, AddOperandTypeMismatchIsAnError) {
  onnx::ModelProto m = ReluModel();
  auto* g = m.mutable_graph();
  *g->add_input() = TensorInfo("z", onnx::TensorProto::INT64, {2, 3});
  auto* n = g->mutable_node(0);
  n->set_op_type("Add");
  n->add_input("z");
  ExpectError(Import(m), {"Add", "relu0"});
}

TEST(Importer, ShapeElementCountOverflowIsAnError) {
  onnx::ModelProto m = ReluModel();
  auto* init = m.mutable_graph()->add_initializer();
  init->set_name("huge");
  init->set_data_type(onnx::TensorProto::FLOAT);
  for (int i = 0; i < 4; ++i) init->add_dims(int64_t{1} << 20);
  ExpectError(Import(m), {"huge", "overflow"});
}

TEST(Importer, InitializerDataSizeMismatchIsAnError) {
  onnx::ModelProto m = ReluModel();
  auto* init = m.mutable_graph()->add_initializer();
  init->set_name("w");
  init->set_data_type(onnx::TensorProto::FLOAT);
  init->add_dims(4);
  init->set_raw_data(std::string(12, '\0'));
  ExpectError(Import(m), {"'w'", "12", "16"});
}

TEST(Importer, ModelWithoutGraphIsAnError) {
  onnx::ModelProto m;
  m.set_ir_version(8);
  ExpectError(Import(m), {"no graph"});
}

TEST(Importer, UnsupportedOpsetIsAnError) {
  onnx::ModelProto m = ReluModel();
  m.mutable_opset_import(0)->set_version(99);
  ExpectError(Import(m), {"opset 99"});
}

TEST(Importer, CycleIsAnError) {
  onnx::ModelProto m = ReluModel();
  auto* g = m.mutable_graph();
  // a = Relu(b); b = Relu(a)
  auto* n0 = g->mutable_node(0);
  n0->set_input(0, "b");
  n0->set_output(0, "a");
  auto* n1 = g->add_node();
  n1->set_op_type("Relu");
  n1->set_name("relu1");
  n1->add_input("a");
  n1->add_output("b");
  auto* n2 = g->add_node();
  n2->set_op_type("Relu");
  n2->set_name("relu2");
  n2->add_input("x");
  n2->add_output("y");
  ExpectError(Import(m), {"cycle"});
}

TEST(Importer, ValueProducedTwiceIsAnError) {
  onnx::ModelProto m = ReluModel();
  *m.mutable_graph()->add_node() = m.graph().node(0);
  ExpectError(Import(m), {"'y'", "twice"});
}

class ExternalData : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("kiln_ext_" + std::to_string(getpid()));
    fs::create_directories(dir_ / "model");
    std::ofstream(dir_ / "model" / "weights.bin", std::ios::binary).write("\0\0\x80?\0\0\0@", 8);
    std::ofstream(dir_ / "secret.bin", std::ios::binary).write("\0\0\x80?\0\0\0@", 8);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // y = x + w, with w (f32[2]) stored in `location`.
  Status ImportWith(const std::string& location, int64_t offset = 0) {
    onnx::ModelProto m;
    m.set_ir_version(8);
    m.add_opset_import()->set_version(17);
    auto* g = m.mutable_graph();
    *g->add_input() = TensorInfo("x", onnx::TensorProto::FLOAT, {2});
    *g->add_output() = TensorInfo("y", onnx::TensorProto::FLOAT, {2});
    auto* w = g->add_initializer();
    w->set_name("w");
    w->set_data_type(onnx::TensorProto::FLOAT);
    w->add_dims(2);
    w->set_data_location(onnx::TensorProto::EXTERNAL);
    auto* kv = w->add_external_data();
    kv->set_key("location");
    kv->set_value(location);
    auto* off = w->add_external_data();
    off->set_key("offset");
    off->set_value(std::to_string(offset));
    auto* n = g->add_node();
    n->set_op_type("Add");
    n->add_input("x");
    n->add_input("w");
    n->add_output("y");
    const fs::path file = dir_ / "model" / "m.onnx";
    std::ofstream(file, std::ios::binary) << m.SerializeAsString();
    auto model = ImportOnnxFile(file.string());
    if (!model.ok()) return model.status();
    const Tensor& t = model->graph.value(*model->graph.FindValue("w")).initializer;
    EXPECT_EQ(t.data<float>()[0], 1.0f);
    EXPECT_EQ(t.data<float>()[1], 2.0f);
    return Status::Ok();
  }

  fs::path dir_;
};

TEST_F(ExternalData, LoadsFromTheModelFolder) { EXPECT_TRUE(ImportWith("weights.bin").ok()); }

TEST_F(ExternalData, RejectsPathsLeavingTheModelFolder) {
  ExpectError(ImportWith("../secret.bin"), {"../secret.bin", "leaves"});
  ExpectError(ImportWith((dir_ / "secret.bin").string()), {"absolute"});
}

TEST_F(ExternalData, RejectsMissingFileAndShortData) {
  ExpectError(ImportWith("nope.bin"), {"nope.bin"});
  ExpectError(ImportWith("weights.bin", 4), {"weights.bin", "offset 4"});
}

}  // namespace
}  // namespace kiln

namespace kiln {
namespace {

// t = n random floats in [-1, 1), as raw_data or float_data.
void FillF32(onnx::TensorProto* t, int64_t n, bool raw, std::mt19937& rng) {
  std::uniform_real_distribution<float> u(-1, 1);
  t->set_data_type(onnx::TensorProto::FLOAT);
  t->add_dims(n);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = u(rng);
  if (raw) {
    t->set_raw_data(std::string(reinterpret_cast<const char*>(v.data()), v.size() * 4));
  } else {
    for (float x : v) t->add_float_data(x);
  }
}

// A model with large raw_data initializers (read straight from the file: onnx/slim_proto.h),
// small ones (parsed by protobuf), an int64 one and one in float_data, around an Add and a Mul.
onnx::ModelProto ModelWithWeights(int64_t n_big) {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(17);
  m.set_producer_name("kiln-test");
  auto* g = m.mutable_graph();
  g->set_name("weights");
  std::mt19937 rng(3);
  auto add_f32 = [&](const std::string& name, int64_t n, bool raw) {
    auto* t = g->add_initializer();
    t->set_name(name);
    FillF32(t, n, raw, rng);
  };
  add_f32("big_a", n_big, true);
  add_f32("small", n_big, false);
  add_f32("big_b", n_big, true);
  add_f32("tiny", 3, true);
  auto* shape = g->add_initializer();
  shape->set_name("shape");
  shape->set_data_type(onnx::TensorProto::INT64);
  shape->add_dims(1);
  const int64_t s = n_big;
  shape->set_raw_data(std::string(reinterpret_cast<const char*>(&s), 8));
  *g->add_input() = TensorInfo("x", onnx::TensorProto::FLOAT, {n_big});
  *g->add_output() = TensorInfo("y", onnx::TensorProto::FLOAT, {n_big});
  auto* a = g->add_node();
  a->set_op_type("Add");
  a->add_input("x");
  a->add_input("big_a");
  a->add_output("t");
  auto* b = g->add_node();
  b->set_op_type("Mul");
  b->add_input("t");
  b->add_input("big_b");
  b->add_output("t2");
  auto* c = g->add_node();
  c->set_op_type("Add");
  c->add_input("t2");
  c->add_input("small");
  c->add_output("y");
  return m;
}

class FileImport : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("kiln_file_import_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
            "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string Write(const std::string& bytes) {
    const std::string path = (dir_ / "model.onnx").string();
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }
  fs::path dir_;
};

// The file path reads large initializers from the file; protobuf's own parse of the same bytes
// (ImportOnnxBytes) is the reference: every initializer and the model's output must agree.
TEST_F(FileImport, LargeInitializersReadFromTheFileMatchProtobufsParse) {
  for (int64_t n : {int64_t{1500}, int64_t{100000}}) {
    const std::string bytes = ModelWithWeights(n).SerializeAsString();
    auto from_file = ImportOnnxFile(Write(bytes));
    auto from_bytes = ImportOnnxBytes(bytes.data(), bytes.size());
    ASSERT_TRUE(from_file.ok()) << from_file.status().ToString();
    ASSERT_TRUE(from_bytes.ok()) << from_bytes.status().ToString();
    EXPECT_EQ(from_file->producer_name, "kiln-test");
    for (const char* name : {"big_a", "big_b", "small", "tiny", "shape"}) {
      auto ia = from_file->graph.FindValue(name);
      auto ib = from_bytes->graph.FindValue(name);
      ASSERT_TRUE(ia && ib) << name;
      const Value* a = &from_file->graph.value(*ia);
      const Value* b = &from_bytes->graph.value(*ib);
      ASSERT_EQ(a->initializer.type(), b->initializer.type()) << name;
      ASSERT_EQ(a->initializer.shape(), b->initializer.shape()) << name;
      EXPECT_EQ(std::memcmp(a->initializer.raw(), b->initializer.raw(), b->initializer.bytes()), 0)
          << name;
    }
  }
}

// Weights stored as Constant nodes (PaddlePaddle's export): a large raw_data value is read from
// the file too (reloadable, so that a session can release it after packing), a small one and a
// float_data one are parsed by protobuf; every value equals protobuf's own parse.
TEST_F(FileImport, LargeConstantNodeValuesReadFromTheFileMatchProtobufsParse) {
  onnx::ModelProto m = ModelWithWeights(3000);
  auto* g = m.mutable_graph();
  std::mt19937 rng(9);
  auto add_constant = [&](const std::string& out, int64_t n, bool raw) {
    auto* node = g->add_node();
    node->set_op_type("Constant");
    node->add_output(out);
    auto* a = node->add_attribute();
    a->set_name("value");
    a->set_type(onnx::AttributeProto::TENSOR);
    auto* t = a->mutable_t();
    FillF32(t, n, raw, rng);
  };
  add_constant("c_small", 5, true);
  add_constant("c_big", 40000, true);
  add_constant("c_floats", 3000, false);
  add_constant("c_big2", 20000, true);
  const std::string bytes = m.SerializeAsString();
  auto from_file = ImportOnnxFile(Write(bytes));
  auto from_bytes = ImportOnnxBytes(bytes.data(), bytes.size());
  ASSERT_TRUE(from_file.ok()) << from_file.status().ToString();
  ASSERT_TRUE(from_bytes.ok()) << from_bytes.status().ToString();
  for (const char* name : {"c_small", "c_big", "c_floats", "c_big2"}) {
    auto ia = from_file->graph.FindValue(name);
    auto ib = from_bytes->graph.FindValue(name);
    ASSERT_TRUE(ia && ib) << name;
    const Tensor* a = from_file->graph.node(from_file->graph.value(*ia).producer).attrs.GetTensor("value");
    const Tensor* b = from_bytes->graph.node(from_bytes->graph.value(*ib).producer).attrs.GetTensor("value");
    ASSERT_TRUE(a != nullptr && b != nullptr) << name;
    ASSERT_EQ(a->type(), b->type()) << name;
    ASSERT_EQ(a->shape(), b->shape()) << name;
    EXPECT_EQ(std::memcmp(a->raw(), b->raw(), b->bytes()), 0) << name;
    // At least 64 KB from the file: pages of its own that a session can release.
    EXPECT_EQ(a->reloadable(), a->bytes() >= (64 << 10)) << name;
  }
}

TEST_F(FileImport, ShortLargeInitializerIsAnErrorNamingIt) {
  onnx::ModelProto m = ModelWithWeights(4096);
  // big_b declares 4096 floats but holds 4095 (still large enough to be read from the file).
  auto* t = m.mutable_graph()->mutable_initializer(2);
  ASSERT_EQ(t->name(), "big_b");
  t->mutable_raw_data()->resize(4095 * 4);
  auto r = ImportOnnxFile(Write(m.SerializeAsString()));
  ExpectError(r.status(), {"big_b", "16380", "16384"});
}

TEST_F(FileImport, TruncatedFilesAreRejectedCleanly) {
  const std::string bytes = ModelWithWeights(5000).SerializeAsString();
  for (size_t cut : {size_t{1}, bytes.size() / 3, bytes.size() / 2, bytes.size() - 1}) {
    auto r = ImportOnnxFile(Write(bytes.substr(0, cut)));
    EXPECT_FALSE(r.ok()) << "cut at " << cut;
  }
}

}  // namespace
}  // namespace kiln
