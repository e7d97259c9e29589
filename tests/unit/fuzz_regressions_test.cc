// Inputs the fuzz targets (tests/fuzz) found crashing, each fed to the same entry point: every
// one must now end in a clean error (or a correct result), never a crash.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <string>
#include <vector>

#include "core/npy.h"
#include "onnx/importer.h"

namespace kiln {
namespace {

// fuzz_npy: a header whose 'shape' value is empty ("'shape': }") made ParseNpy call
// substr(1, ...) on an empty string (std::out_of_range escaped: the process aborted).
TEST(FuzzRegressions, NpyEmptyShapeValue) {
  const std::string bytes(
      "\x93"
      "NUMPY\x01"
      "\x00"
      "v\x00"
      "{'descr': '|u1', 'fortran_order':, e salF'shape': }                                   (0, "
      "3), }                                                          \x0a"
      "",
      164);
  auto t = ParseNpy(bytes, "crash.npy");
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("crash.npy"), std::string::npos) << t.status().message();
}

// The same family: shapes that are not a tuple of integers.
TEST(FuzzRegressions, NpyMalformedShapes) {
  for (const std::string shape :
       {"(2, 3x)", "2, 3", "(", ")", "(2, -1)", "(99999999999, 99999999999)"}) {
    std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }";
    header.resize(118, ' ');
    header += '\n';
    std::string bytes = std::string("\x93NUMPY\x01\x00", 8) + static_cast<char>(header.size()) +
                        '\0' + header + std::string(24, '\0');
    auto t = ParseNpy(bytes, "bad.npy");
    EXPECT_FALSE(t.ok()) << shape;
  }
}

// x: f32[1,1,8,8] -> `op` with the int attributes given -> y, imported (shape inference runs).
Status ImportSpatial(const std::string& op,
                     const std::vector<std::pair<std::string, std::vector<int64_t>>>& ints) {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(17);
  auto* g = m.mutable_graph();
  g->set_name("g");
  auto info = [](onnx::ValueInfoProto* vi, const std::string& name, std::vector<int64_t> dims) {
    vi->set_name(name);
    auto* t = vi->mutable_type()->mutable_tensor_type();
    t->set_elem_type(onnx::TensorProto::FLOAT);
    for (int64_t d : dims) t->mutable_shape()->add_dim()->set_dim_value(d);
  };
  info(g->add_input(), "x", {1, 1, 8, 8});
  auto* y = g->add_output();
  y->set_name("y");
  y->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
  auto* w = g->add_initializer();
  w->set_name("w");
  w->set_data_type(onnx::TensorProto::FLOAT);
  for (int64_t d : {1, 1, 3, 3}) w->add_dims(d);
  for (int i = 0; i < 9; ++i) w->add_float_data(1.0f);
  auto* n = g->add_node();
  n->set_op_type(op);
  n->set_name("n");
  n->add_input("x");
  if (op != "MaxPool") n->add_input("w");
  n->add_output("y");
  for (const auto& [name, values] : ints) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INTS);
    for (int64_t v : values) a->add_ints(v);
  }
  const std::string bytes = m.SerializeAsString();
  return ImportOnnxBytes(bytes.data(), bytes.size()).status();
}

// fuzz_plan_file (tests/fuzz/corpus/plan_file/regression-conv-pads-overflow.kplan): a Conv whose
// pads are near 2^62 overflowed int64 in shape inference (UBSan: signed overflow); the same
// attributes in an ONNX model reach the same code. Now an error naming the attribute.
TEST(FuzzRegressions, ConvHugePadsAreAnError) {
  const Status s =
      ImportSpatial("Conv", {{"pads", {8245895652983177222, 7290201896805990500, 0, 0}}});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("pads"), std::string::npos) << s.message();
  const Status k = ImportSpatial("Conv", {{"strides", {int64_t{1} << 40, 1}}});
  ASSERT_FALSE(k.ok());
  EXPECT_NE(k.message().find("strides"), std::string::npos) << k.message();
  EXPECT_TRUE(ImportSpatial("Conv", {{"pads", {1, 1, 1, 1}}}).ok());
}

// The same arithmetic in ConvTranspose: 2^62 strides times the input overflowed too.
TEST(FuzzRegressions, ConvTransposeHugeStridesAreAnError) {
  const Status s =
      ImportSpatial("ConvTranspose", {{"strides", {int64_t{1} << 62, int64_t{1} << 62}}});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("out of range"), std::string::npos) << s.message();
  const Status p = ImportSpatial("ConvTranspose", {{"pads", {INT64_MAX, INT64_MAX, 0, 0}}});
  ASSERT_FALSE(p.ok());
  EXPECT_TRUE(ImportSpatial("ConvTranspose", {{"strides", {2, 2}}}).ok());
}

}  // namespace
}  // namespace kiln
