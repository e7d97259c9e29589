// The kiln command line end to end: real processes, real files. Malformed models and bad
// options must give one line on stderr and exit status 1; `run` writes one .npy per output.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "core/half.h"
#include "core/npy.h"
#include "core/tensor_compare.h"
#include "onnx/importer.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

struct Outcome {
  int status = -1;
  std::string out, err;
};

Outcome Kiln(const std::string& args) {
  const fs::path dir = fs::temp_directory_path() / ("kiln_cli_" + std::to_string(getpid()));
  fs::create_directories(dir);
  const std::string cmd = std::string(KILN_BINARY) + " " + args + " >" + (dir / "out").string() +
                          " 2>" + (dir / "err").string() + " </dev/null";
  const int raw = std::system(cmd.c_str());
  Outcome o;
  o.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
  std::stringstream a, b;
  a << std::ifstream(dir / "out").rdbuf();
  b << std::ifstream(dir / "err").rdbuf();
  o.out = a.str();
  o.err = b.str();
  return o;
}

const std::string kTestData = "/usr/share/libonnx-testdata/data/node/";

class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("kiln_cli_files_" + std::to_string(getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string Write(const std::string& name, const std::string& bytes) {
    const fs::path p = dir_ / name;
    std::ofstream(p, std::ios::binary) << bytes;
    return p.string();
  }
  void ExpectOneLineError(const Outcome& o, const std::string& fragment) {
    EXPECT_EQ(o.status, 1) << o.err;
    EXPECT_EQ(std::count(o.err.begin(), o.err.end(), '\n'), 1) << o.err;
    EXPECT_EQ(o.err.rfind("error: ", 0), 0u) << o.err;
    EXPECT_NE(o.err.find(fragment), std::string::npos) << "'" << fragment << "' not in " << o.err;
  }
  fs::path dir_;
};

TEST_F(Cli, HelpOnEveryCommand) {
  for (const char* cmd : {"--help", "run --help", "inspect --help"}) {
    Outcome o = Kiln(cmd);
    EXPECT_EQ(o.status, 0) << cmd;
    EXPECT_NE(o.out.find("Usage"), std::string::npos) << cmd << ": " << o.out;
  }
}

TEST_F(Cli, MalformedModelsGiveOneLineAndStatusOne) {
  std::string valid;
  {
    std::stringstream s;
    s << std::ifstream(kTestData + "test_relu/model.onnx", std::ios::binary).rdbuf();
    valid = s.str();
  }
  ASSERT_FALSE(valid.empty());
  ExpectOneLineError(Kiln("run " + Write("trunc.onnx", valid.substr(0, valid.size() / 2))), "trunc.onnx");
  std::mt19937 rng(5);
  std::string noise(4096, '\0');
  for (char& c : noise) c = static_cast<char>(rng());
  ExpectOneLineError(Kiln("run " + Write("noise.onnx", noise)), "not a valid ONNX");
  ExpectOneLineError(Kiln("inspect " + Write("empty.onnx", "")), "empty");
  ExpectOneLineError(Kiln("run " + (dir_ / "missing.onnx").string()), "missing.onnx");
}

TEST_F(Cli, BadOptionsGiveOneLineAndStatusOne) {
  const std::string relu = kTestData + "test_relu/model.onnx";
  ExpectOneLineError(Kiln("run " + relu + " --threads 0"), "threads");
  ExpectOneLineError(Kiln("run " + relu + " --shape nosuch=1,2"), "nosuch");
  ExpectOneLineError(Kiln("run " + relu + " --shape x=3,4,five"), "five");
  ExpectOneLineError(Kiln("run " + relu + " -i x=" + (dir_ / "none.npy").string()), "none.npy");
  ExpectOneLineError(Kiln("run " + relu + " --shape x=99999999,99999999,99999999"), "overflow");
  ExpectOneLineError(Kiln("frobnicate"), "frobnicate");
}

TEST_F(Cli, RunWritesOutputsThatMatchOnnxExpectedValues) {
  // test_relu's model and its expected output from the ONNX test suite, through .npy files.
  const std::string model = kTestData + "test_relu/model.onnx";
  const std::string in = (dir_ / "x.npy").string();
  // Convert the suite's input to .npy with the library, then run the CLI on it.
  Outcome conv = Kiln("inspect " + model);
  ASSERT_EQ(conv.status, 0) << conv.err;
  EXPECT_NE(conv.out.find("Relu"), std::string::npos);
  Tensor x = Tensor::Allocate(ElementType::kF32, {3, 4, 5}).value();
  for (int64_t i = 0; i < x.size(); ++i) x.data<float>()[i] = static_cast<float>(i % 7) - 3.0f;
  ASSERT_TRUE(WriteNpy(in, x).ok());
  Outcome o = Kiln("run " + model + " -i x=" + in + " -o " + (dir_ / "out").string());
  ASSERT_EQ(o.status, 0) << o.err;
  auto y = ReadNpy((dir_ / "out" / "y.npy").string());
  ASSERT_TRUE(y.ok()) << y.status().ToString() << "\n" << o.out;
  ASSERT_EQ(y->shape(), x.shape());
  for (int64_t i = 0; i < x.size(); ++i) EXPECT_EQ(y->data<float>()[i], std::max(0.0f, x.data<float>()[i]));
  EXPECT_NE(o.out.find("run: first"), std::string::npos) << o.out;
}

TEST_F(Cli, OutputFileNamesAreSanitized) {
  // Relu with the output named "../a/b:c d": the file must be ".._a_b_c_d.npy" inside -o.
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(17);
  auto* g = m.mutable_graph();
  auto add_info = [](onnx::ValueInfoProto* vi, const std::string& name) {
    vi->set_name(name);
    auto* tt = vi->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(onnx::TensorProto::FLOAT);
    tt->mutable_shape()->add_dim()->set_dim_value(4);
  };
  add_info(g->add_input(), "x");
  add_info(g->add_output(), "../a/b:c d");
  auto* n = g->add_node();
  n->set_op_type("Relu");
  n->add_input("x");
  n->add_output("../a/b:c d");
  const std::string model = Write("named.onnx", m.SerializeAsString());
  Outcome o = Kiln("run " + model + " -o " + (dir_ / "o").string());
  ASSERT_EQ(o.status, 0) << o.err;
  EXPECT_TRUE(fs::exists(dir_ / "o" / ".._a_b_c_d.npy")) << o.out;
  EXPECT_FALSE(fs::exists(dir_ / "a"));
}

// `kiln run` with .npy data of another float type than the input declares: f32 data into an
// f16 program and f16 data into an f32 model, each converted with a note on stderr.
TEST_F(Cli, RunConvertsFloatDataToTheDeclaredType) {
  auto relu_model = [&](int elem_type, const std::string& name) {
    onnx::ModelProto m;
    m.set_ir_version(8);
    m.add_opset_import()->set_version(17);
    auto* g = m.mutable_graph();
    for (auto* vi : {g->add_input(), g->add_output()}) {
      vi->set_name(vi == &g->input(0) ? "x" : "y");
      auto* tt = vi->mutable_type()->mutable_tensor_type();
      tt->set_elem_type(elem_type);
      tt->mutable_shape()->add_dim()->set_dim_value(3);
    }
    auto* n = g->add_node();
    n->set_op_type("Relu");
    n->add_input("x");
    n->add_output("y");
    return Write(name, m.SerializeAsString());
  };
  const std::string half = relu_model(onnx::TensorProto::FLOAT16, "half.onnx");
  const std::string full = relu_model(onnx::TensorProto::FLOAT, "full.onnx");
  const std::string f32 = (dir_ / "x32.npy").string();
  ASSERT_TRUE(WriteNpy(f32, Tensor::FromVector<float>({0.1f, -2.0f, 3.0f}, {3})).ok());
  Outcome o = Kiln("run " + half + " -i x=" + f32 + " -o " + (dir_ / "h").string());
  ASSERT_EQ(o.status, 0) << o.err;
  EXPECT_NE(o.err.find("note: input 'x': f32 data converted to f16"), std::string::npos) << o.err;
  auto y = ReadNpy((dir_ / "h" / "y.npy").string());
  ASSERT_TRUE(y.ok()) << y.status().ToString();
  ASSERT_EQ(y->type(), ElementType::kF16);
  EXPECT_EQ(y->data<Half>()[0].bits, Half(0.1f).bits);
  EXPECT_EQ(static_cast<float>(y->data<Half>()[1]), 0.0f);
  // And back: that f16 output as the input of the f32 model.
  o = Kiln("run " + full + " -i x=" + (dir_ / "h" / "y.npy").string() + " -o " + (dir_ / "f").string());
  ASSERT_EQ(o.status, 0) << o.err;
  EXPECT_NE(o.err.find("note: input 'x': f16 data converted to f32"), std::string::npos) << o.err;
  auto z = ReadNpy((dir_ / "f" / "y.npy").string());
  ASSERT_TRUE(z.ok());
  ASSERT_EQ(z->type(), ElementType::kF32);
  EXPECT_EQ(z->data<float>()[0], static_cast<float>(Half(0.1f)));
  EXPECT_EQ(z->data<float>()[2], 3.0f);
}

}  // namespace
}  // namespace kiln

namespace kiln {
namespace {

// Sequence inputs and outputs through .npy files: ONNX's SequenceInsert test, its sequence
// input given element by element (-i NAME=A.npy,B.npy,...), its sequence output written as
// NAME.<i>.npy and compared with the suite's expected elements.
TEST_F(Cli, RunTakesAndWritesSequencesElementByElement) {
  const std::string dir = kTestData + "test_sequence_insert_at_back/";
  auto seq = ReadValueProtoFile(dir + "test_data_set_0/input_0.pb", TensorKind::kSequence);
  auto tensor = ReadValueProtoFile(dir + "test_data_set_0/input_1.pb", TensorKind::kTensor);
  auto expected = ReadValueProtoFile(dir + "test_data_set_0/output_0.pb", TensorKind::kSequence);
  ASSERT_TRUE(seq.ok() && tensor.ok() && expected.ok());
  std::string files;
  for (size_t k = 0; k < seq->items().size(); ++k) {
    const std::string f = (dir_ / ("e" + std::to_string(k) + ".npy")).string();
    ASSERT_TRUE(WriteNpy(f, seq->items()[k]).ok());
    files += (k ? "," : "") + f;
  }
  const std::string t = (dir_ / "t.npy").string();
  ASSERT_TRUE(WriteNpy(t, *tensor).ok());
  const fs::path out = dir_ / "out";
  Outcome o = Kiln("run " + dir + "model.onnx -i sequence=" + files + " -i tensor=" + t + " -o " +
                   out.string());
  ASSERT_EQ(o.status, 0) << o.err;
  EXPECT_NE(o.out.find("sequence of " + std::to_string(expected->items().size()) + " elements"),
            std::string::npos)
      << o.out;
  for (size_t k = 0; k < expected->items().size(); ++k) {
    auto got = ReadNpy((out / ("output_sequence." + std::to_string(k) + ".npy")).string());
    ASSERT_TRUE(got.ok()) << got.status().ToString() << "\n" << o.out;
    const Tensor& want = expected->items()[k];
    ASSERT_EQ(got->shape(), want.shape()) << k;
    ASSERT_EQ(got->type(), want.type()) << k;
    EXPECT_EQ(std::memcmp(got->raw(), want.raw(), want.bytes()), 0) << k;
  }
  // Without the sequence: an error saying how to give one.
  ExpectOneLineError(Kiln("run " + dir + "model.onnx -i tensor=" + t),
                     "-i sequence=A.npy,B.npy");
}

}  // namespace
}  // namespace kiln
