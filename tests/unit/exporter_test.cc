// The ONNX exporter: field-by-field checks of what it writes (read back with the ONNX protobuf
// classes), round trips of the conformance suite's node models and of PP-OCRv4 rec (the exported
// file also runs in ONNX Runtime), and atomic file writes.
#include "onnx/exporter.h"

#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <thread>

#include "core/npy.h"
#include "core/tensor_compare.h"
#include "onnx/importer.h"
#include "runtime/session.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

const fs::path kSource = KILN_SOURCE_DIR;
const fs::path kNodeTests = "/usr/share/libonnx-testdata/data/node";
const fs::path kRecModel = kSource / ".deps" / "npm" / "node_modules" / "@gutenye" / "ocr-models" /
                           "assets" / "ch_PP-OCRv4_rec_infer.onnx";

// The conformance runner's tolerance (tests/conformance/main.cc).
constexpr double kRtol = 1e-3;
constexpr double kAtol = 1e-7;

onnx::ModelProto ParseProto(const std::string& bytes) {
  onnx::ModelProto mp;
  EXPECT_TRUE(mp.ParseFromString(bytes));
  return mp;
}

const onnx::ValueInfoProto* FindInfo(
    const google::protobuf::RepeatedPtrField<onnx::ValueInfoProto>& list, const std::string& name) {
  for (const auto& vi : list) {
    if (vi.name() == name) return &vi;
  }
  return nullptr;
}

Attribute MakeAttr(const std::string& name, Attribute::Kind kind) {
  Attribute a;
  a.name = name;
  a.kind = kind;
  return a;
}

// A body for If: reads the outer value `x` by name, adds its own constant `one`, returns z.
std::shared_ptr<Graph> AddOneBody(const std::string& name) {
  auto body = std::make_shared<Graph>();
  body->name = name;
  ValueId x = body->AddValue("x", ElementType::kF32, DimVector{Dim::Symbol("N"), 3});
  body->value(x).kind = ValueKind::kOuterScope;
  ValueId one = body->AddInitializer(name + "_one", Tensor::FromVector<float>({1.f}, {}));
  ValueId z = body->AddValue(name + "_z", ElementType::kF32);
  body->AddNode(name + "_add", "Add", {x, one}, {z}, {}, "", 17);
  body->MarkOutput(z);
  return body;
}

// x: f32[N,3] (N symbolic), c: bool[] -> If(c, x + 1, x + 1) -> Relu -> y; plus initializers of
// every type and a custom-domain node that carries every attribute kind.
Model BuildModel() {
  Model m;
  m.ir_version = 3;
  m.opsets = {{"", 17}, {"com.kiln.test", 1}};
  m.producer_name = "someone else";
  m.metadata = {{"kiln.precision", "fp16"}, {"note", "hello"}};
  Graph& g = m.graph;
  g.name = "main";
  ValueId x = g.AddValue("x", ElementType::kF32, DimVector{Dim::Symbol("N"), 3});
  g.MarkInput(x);
  ValueId c = g.AddValue("c", ElementType::kBool, DimVector{});
  g.MarkInput(c);
  ValueId u = g.AddValue("u", ElementType::kF32, DimVector{Dim(), 3});  // unknown first dim
  g.MarkInput(u);

  Tensor h = Tensor::Allocate(ElementType::kF16, {3}).value();
  Tensor b = Tensor::Allocate(ElementType::kBF16, {2}).value();
  for (int i = 0; i < 3; ++i) h.data<Half>()[i] = Half(0.5f * static_cast<float>(i) - 1.f);
  b.data<BFloat16>()[0] = BFloat16(3.f);
  b.data<BFloat16>()[1] = BFloat16(-0.25f);
  Tensor s = Tensor::Allocate(ElementType::kString, {2}).value();
  s.data<std::string>()[0] = "a";
  s.data<std::string>()[1] = std::string("b\0c", 3);
  g.AddInitializer("w_f16", h);
  g.AddInitializer("w_bf16", b);
  g.AddInitializer("w_bool", Tensor::FromVector<bool>({true, false, true}, {3}));
  g.AddInitializer("w_str", s);
  g.AddInitializer("w_i8", Tensor::FromVector<int8_t>({-128, 0, 127}, {3}));
  g.AddInitializer("w_u64", Tensor::FromVector<uint64_t>({~0ull, 1}, {2, 1}));
  g.AddInitializer("w_f64", Tensor::FromVector<double>({1e300}, {}));

  ValueId t = g.AddValue("t", ElementType::kF32, DimVector{Dim::Symbol("N"), 3});
  Attributes if_attrs;
  Attribute then_branch = MakeAttr("then_branch", Attribute::Kind::kGraph);
  then_branch.g = AddOneBody("then");
  Attribute else_branch = MakeAttr("else_branch", Attribute::Kind::kGraph);
  else_branch.g = AddOneBody("else");
  if_attrs.Add(then_branch);
  if_attrs.Add(else_branch);
  g.AddNode("if0", "If", {c}, {t}, std::move(if_attrs), "", 17);
  ValueId y = g.AddValue("y", ElementType::kF32, DimVector{Dim::Symbol("N"), 3});
  g.AddNode("relu0", "Relu", {t}, {y}, {}, "", 17);
  g.MarkOutput(y);

  // Every attribute kind, an omitted optional input and an omitted output in the middle.
  Attributes all;
  Attribute a = MakeAttr("f", Attribute::Kind::kFloat);
  a.f = 2.5f;
  all.Add(a);
  a = MakeAttr("i", Attribute::Kind::kInt);
  a.i = -7;
  all.Add(a);
  a = MakeAttr("s", Attribute::Kind::kString);
  a.s = "text";
  all.Add(a);
  a = MakeAttr("t", Attribute::Kind::kTensor);
  a.t = Tensor::FromVector<int64_t>({4, 5}, {2});
  all.Add(a);
  a = MakeAttr("g", Attribute::Kind::kGraph);
  a.g = AddOneBody("attr_g");
  all.Add(a);
  a = MakeAttr("fs", Attribute::Kind::kFloats);
  a.floats = {1.f, -2.f};
  all.Add(a);
  a = MakeAttr("is", Attribute::Kind::kInts);
  a.ints = {};  // an empty list keeps its kind
  all.Add(a);
  a = MakeAttr("ss", Attribute::Kind::kStrings);
  a.strings = {"p", "q"};
  all.Add(a);
  a = MakeAttr("ts", Attribute::Kind::kTensors);
  a.tensors = {Tensor::FromVector<float>({1.f}, {1}), h};
  all.Add(a);
  a = MakeAttr("gs", Attribute::Kind::kGraphs);
  a.graphs = {AddOneBody("gs0"), AddOneBody("gs1")};
  all.Add(a);
  ValueId o0 = g.AddValue("o0", ElementType::kF32, DimVector{Dim(2)});
  ValueId o2 = g.AddValue("o2");  // type unknown: no value_info
  g.AddNode("custom0", "Everything", {x, ValueId(), u}, {o0, ValueId(), o2}, std::move(all),
            "com.kiln.test", 1);
  return m;
}

TEST(Exporter, WritesModelFields) {
  Model m = BuildModel();
  auto bytes = ExportOnnxBytes(m);
  ASSERT_TRUE(bytes.ok()) << bytes.status().ToString();
  onnx::ModelProto mp = ParseProto(*bytes);
  EXPECT_EQ(mp.ir_version(), 8);  // raised from 3: at least 7, and opset 17 needs IR 8
  EXPECT_EQ(mp.producer_name(), "kiln");
  std::map<std::string, int64_t> opsets;
  for (const auto& op : mp.opset_import()) opsets[op.domain()] = op.version();
  EXPECT_EQ(opsets, (std::map<std::string, int64_t>{{"", 17}, {"com.kiln.test", 1}}));
  std::map<std::string, std::string> meta;
  for (const auto& p : mp.metadata_props()) meta[p.key()] = p.value();
  EXPECT_EQ(meta, m.metadata);

  const auto& g = mp.graph();
  EXPECT_EQ(g.name(), "main");
  ASSERT_EQ(g.input_size(), 3);
  EXPECT_EQ(g.input(0).name(), "x");
  const auto& xt = g.input(0).type().tensor_type();
  EXPECT_EQ(xt.elem_type(), onnx::TensorProto::FLOAT);
  ASSERT_EQ(xt.shape().dim_size(), 2);
  EXPECT_EQ(xt.shape().dim(0).dim_param(), "N");
  EXPECT_FALSE(xt.shape().dim(0).has_dim_value());
  EXPECT_EQ(xt.shape().dim(1).dim_value(), 3);
  const auto& ct = g.input(1).type().tensor_type();
  EXPECT_EQ(ct.elem_type(), onnx::TensorProto::BOOL);
  EXPECT_TRUE(ct.has_shape());
  EXPECT_EQ(ct.shape().dim_size(), 0);  // a scalar, not an unknown rank
  const auto& ud = g.input(2).type().tensor_type().shape().dim(0);
  EXPECT_FALSE(ud.has_dim_value());
  EXPECT_FALSE(ud.has_dim_param());
  ASSERT_EQ(g.output_size(), 1);
  EXPECT_EQ(g.output(0).name(), "y");
  EXPECT_EQ(g.output(0).type().tensor_type().shape().dim(0).dim_param(), "N");

  // value_info: intermediates with a known type only.
  EXPECT_NE(FindInfo(g.value_info(), "t"), nullptr);
  ASSERT_NE(FindInfo(g.value_info(), "o0"), nullptr);
  EXPECT_EQ(FindInfo(g.value_info(), "o0")->type().tensor_type().shape().dim(0).dim_value(), 2);
  EXPECT_EQ(FindInfo(g.value_info(), "o2"), nullptr);
  EXPECT_EQ(FindInfo(g.value_info(), "y"), nullptr);
  EXPECT_EQ(FindInfo(g.value_info(), "x"), nullptr);

  std::map<std::string, const onnx::TensorProto*> inits;
  for (const auto& t : g.initializer()) inits[t.name()] = &t;
  ASSERT_EQ(inits.size(), 7u);
  const auto* f16 = inits["w_f16"];
  EXPECT_EQ(f16->data_type(), onnx::TensorProto::FLOAT16);
  ASSERT_EQ(f16->raw_data().size(), 6u);
  // -1.0, -0.5, 0.0 as IEEE half bit patterns, little endian.
  EXPECT_EQ(f16->raw_data(), std::string("\x00\xbc\x00\xb8\x00\x00", 6));
  const auto* bf16 = inits["w_bf16"];
  EXPECT_EQ(bf16->data_type(), onnx::TensorProto::BFLOAT16);
  EXPECT_EQ(bf16->raw_data(), std::string("\x40\x40\x80\xbe", 4));  // 3.0, -0.25
  const auto* bools = inits["w_bool"];
  EXPECT_EQ(bools->data_type(), onnx::TensorProto::BOOL);
  EXPECT_EQ(bools->raw_data(), std::string("\x01\x00\x01", 3));
  const auto* strs = inits["w_str"];
  EXPECT_EQ(strs->data_type(), onnx::TensorProto::STRING);
  EXPECT_FALSE(strs->has_raw_data());
  ASSERT_EQ(strs->string_data_size(), 2);
  EXPECT_EQ(strs->string_data(1), std::string("b\0c", 3));
  const auto* u64 = inits["w_u64"];
  EXPECT_EQ(u64->data_type(), onnx::TensorProto::UINT64);
  EXPECT_EQ(std::vector<int64_t>(u64->dims().begin(), u64->dims().end()),
            (std::vector<int64_t>{2, 1}));
  EXPECT_EQ(u64->raw_data().size(), 16u);
  EXPECT_EQ(inits["w_f64"]->dims_size(), 0);
  EXPECT_EQ(inits["w_i8"]->raw_data(), std::string("\x80\x00\x7f", 3));

  // Nodes in topological order; the custom node's omitted values are empty names.
  ASSERT_EQ(g.node_size(), 3);
  const onnx::NodeProto* custom = nullptr;
  const onnx::NodeProto* if_node = nullptr;
  for (const auto& n : g.node()) {
    if (n.name() == "custom0") custom = &n;
    if (n.name() == "if0") if_node = &n;
  }
  ASSERT_NE(custom, nullptr);
  ASSERT_NE(if_node, nullptr);
  EXPECT_EQ(custom->op_type(), "Everything");
  EXPECT_EQ(custom->domain(), "com.kiln.test");
  EXPECT_EQ(std::vector<std::string>(custom->input().begin(), custom->input().end()),
            (std::vector<std::string>{"x", "", "u"}));
  EXPECT_EQ(std::vector<std::string>(custom->output().begin(), custom->output().end()),
            (std::vector<std::string>{"o0", "", "o2"}));
  std::map<std::string, const onnx::AttributeProto*> attrs;
  for (const auto& a : custom->attribute()) attrs[a.name()] = &a;
  ASSERT_EQ(attrs.size(), 10u);
  EXPECT_EQ(attrs["f"]->type(), onnx::AttributeProto::FLOAT);
  EXPECT_EQ(attrs["f"]->f(), 2.5f);
  EXPECT_EQ(attrs["i"]->type(), onnx::AttributeProto::INT);
  EXPECT_EQ(attrs["i"]->i(), -7);
  EXPECT_EQ(attrs["s"]->type(), onnx::AttributeProto::STRING);
  EXPECT_EQ(attrs["s"]->s(), "text");
  EXPECT_EQ(attrs["t"]->type(), onnx::AttributeProto::TENSOR);
  EXPECT_EQ(attrs["t"]->t().data_type(), onnx::TensorProto::INT64);
  EXPECT_EQ(attrs["t"]->t().raw_data().size(), 16u);
  EXPECT_EQ(attrs["g"]->type(), onnx::AttributeProto::GRAPH);
  EXPECT_EQ(attrs["g"]->g().name(), "attr_g");
  EXPECT_EQ(attrs["fs"]->type(), onnx::AttributeProto::FLOATS);
  EXPECT_EQ(attrs["fs"]->floats_size(), 2);
  EXPECT_EQ(attrs["fs"]->floats(1), -2.f);
  EXPECT_EQ(attrs["is"]->type(), onnx::AttributeProto::INTS);
  EXPECT_EQ(attrs["is"]->ints_size(), 0);
  EXPECT_EQ(attrs["ss"]->type(), onnx::AttributeProto::STRINGS);
  EXPECT_EQ(attrs["ss"]->strings(1), "q");
  EXPECT_EQ(attrs["ts"]->type(), onnx::AttributeProto::TENSORS);
  ASSERT_EQ(attrs["ts"]->tensors_size(), 2);
  EXPECT_EQ(attrs["ts"]->tensors(1).data_type(), onnx::TensorProto::FLOAT16);
  EXPECT_EQ(attrs["gs"]->type(), onnx::AttributeProto::GRAPHS);
  ASSERT_EQ(attrs["gs"]->graphs_size(), 2);
  EXPECT_EQ(attrs["gs"]->graphs(1).name(), "gs1");

  // Bodies: the outer value x is referenced by name only, never an input or initializer.
  ASSERT_EQ(if_node->attribute_size(), 2);
  const auto& then_g = if_node->attribute(0).g();
  EXPECT_EQ(then_g.name(), "then");
  EXPECT_EQ(then_g.input_size(), 0);
  ASSERT_EQ(then_g.initializer_size(), 1);
  EXPECT_EQ(then_g.initializer(0).name(), "then_one");
  EXPECT_EQ(FindInfo(then_g.value_info(), "x"), nullptr);
  ASSERT_EQ(then_g.node_size(), 1);
  EXPECT_EQ(then_g.node(0).input(0), "x");
  ASSERT_EQ(then_g.output_size(), 1);
  EXPECT_EQ(then_g.output(0).name(), "then_z");
}

TEST(Exporter, HandBuiltModelReimportsAndRuns) {
  Model m = BuildModel();
  auto bytes = ExportOnnxBytes(m);
  ASSERT_TRUE(bytes.ok()) << bytes.status().ToString();
  ImportOptions no_infer;
  no_infer.infer_shapes = false;  // the custom node has no schema
  auto back = ImportOnnxBytes(bytes->data(), bytes->size(), no_infer);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  const Graph& g = back->graph;
  EXPECT_EQ(back->metadata, m.metadata);
  auto h = g.FindValue("w_f16");
  ASSERT_TRUE(h.has_value());
  Status same = AllClose(m.graph.value(*m.graph.FindValue("w_f16")).initializer,
                         g.value(*h).initializer, 0, 0);
  EXPECT_TRUE(same.ok()) << same.ToString();
  for (const char* name : {"w_bf16", "w_bool", "w_str", "w_i8", "w_u64", "w_f64"}) {
    const Tensor& want = m.graph.value(*m.graph.FindValue(name)).initializer;
    auto v = g.FindValue(name);
    ASSERT_TRUE(v.has_value()) << name;
    const Tensor& got = g.value(*v).initializer;
    ASSERT_EQ(got.type(), want.type()) << name;
    ASSERT_EQ(got.shape(), want.shape()) << name;
    if (want.type() == ElementType::kString) {
      for (int64_t i = 0; i < want.size(); ++i) {
        EXPECT_EQ(got.data<std::string>()[i], want.data<std::string>()[i]);
      }
    } else {
      EXPECT_EQ(std::memcmp(got.raw(), want.raw(), want.bytes()), 0) << name;
    }
  }
  const Node* custom = nullptr;
  for (const Node& n : g.nodes()) {
    if (n.name == "custom0") custom = &n;
  }
  ASSERT_NE(custom, nullptr);
  EXPECT_FALSE(custom->inputs[1].valid());
  EXPECT_FALSE(custom->outputs[1].valid());
  ASSERT_EQ(custom->attrs.items().size(), 10u);
  for (size_t i = 0; i < 10; ++i) {
    EXPECT_EQ(custom->attrs.items()[i].kind, m.graph.nodes()[2].attrs.items()[i].kind) << i;
  }
  const Graph* body = custom->attrs.GetGraph("g");
  ASSERT_NE(body, nullptr);
  auto bx = body->FindValue("x");
  ASSERT_TRUE(bx.has_value());
  EXPECT_EQ(body->value(*bx).kind, ValueKind::kOuterScope);

  // Without the custom node the model runs: If(c) of x + 1, then Relu.
  Model runnable = BuildModel();
  auto runnable_bytes = ExportOnnxBytes(runnable);
  ASSERT_TRUE(runnable_bytes.ok());
  onnx::ModelProto mp = ParseProto(*runnable_bytes);
  mp.mutable_graph()->mutable_node()->RemoveLast();  // custom0 sorts last (it feeds nothing)
  ASSERT_EQ(mp.graph().node(mp.graph().node_size() - 1).name(), "relu0");
  std::string pruned = mp.SerializeAsString();
  auto m2 = ImportOnnxBytes(pruned.data(), pruned.size());
  ASSERT_TRUE(m2.ok()) << m2.status().ToString();
  auto session = Session::Create(std::move(m2).value());
  ASSERT_TRUE(session.ok()) << session.status().ToString();
  auto out = (*session)->Run({{"x", Tensor::FromVector<float>({-3, -1, 0, 1, 2, -0.5f}, {2, 3})},
                              {"c", Tensor::FromVector<bool>({true}, {})},
                              {"u", Tensor::FromVector<float>({0, 0, 0}, {1, 3})}});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  Status close =
      AllClose(Tensor::FromVector<float>({0, 0, 1, 2, 3, 0.5f}, {2, 3}), (*out)[0], 0, 0);
  EXPECT_TRUE(close.ok()) << close.ToString();
}

TEST(Exporter, UnnamedValuesGetFreshNamesAndIrVersionIsKept) {
  Model m;
  m.ir_version = 9;
  m.opsets = {{"", 13}};
  ValueId x = m.graph.AddValue("x", ElementType::kF32, DimVector{2});
  m.graph.MarkInput(x);
  ValueId mid = m.graph.AddValue("", ElementType::kF32, DimVector{2});
  ValueId clash = m.graph.AddValue("kiln_value_0", ElementType::kF32, DimVector{2});
  m.graph.AddNode("n0", "Relu", {x}, {mid}, {}, "", 13);
  m.graph.AddNode("n1", "Neg", {mid}, {clash}, {}, "", 13);
  m.graph.MarkOutput(clash);
  auto bytes = ExportOnnxBytes(m);
  ASSERT_TRUE(bytes.ok()) << bytes.status().ToString();
  onnx::ModelProto mp = ParseProto(*bytes);
  EXPECT_EQ(mp.ir_version(), 9);
  ASSERT_EQ(mp.graph().node_size(), 2);
  const std::string fresh = mp.graph().node(0).output(0);
  EXPECT_FALSE(fresh.empty());
  EXPECT_NE(fresh, "kiln_value_0");
  EXPECT_EQ(mp.graph().node(1).input(0), fresh);
  auto back = ImportOnnxBytes(bytes->data(), bytes->size());
  ASSERT_TRUE(back.ok()) << back.status().ToString();
}

TEST(Exporter, NodesAreWrittenInTopologicalOrder) {
  // A pass may append a producer after its consumer; ONNX needs producers first.
  Model m;
  m.opsets = {{"", 17}};
  ValueId x = m.graph.AddValue("x", ElementType::kF32, DimVector{2});
  m.graph.MarkInput(x);
  ValueId a = m.graph.AddValue("a");
  ValueId y = m.graph.AddValue("y");
  m.graph.AddNode("late", "Neg", {a}, {y}, {}, "", 17);
  m.graph.AddNode("early", "Relu", {x}, {a}, {}, "", 17);
  m.graph.MarkOutput(y);
  auto bytes = ExportOnnxBytes(m);
  ASSERT_TRUE(bytes.ok()) << bytes.status().ToString();
  onnx::ModelProto mp = ParseProto(*bytes);
  ASSERT_EQ(mp.graph().node_size(), 2);
  EXPECT_EQ(mp.graph().node(0).name(), "early");
  EXPECT_EQ(mp.graph().node(1).name(), "late");
  EXPECT_EQ(mp.ir_version(), 8);
}

// ---------------------------------------------------------------------------------------------
// Round trips of the conformance node models.

// The ONNX 1.12 test generator stores bf16 tensors as u16 bit patterns (see the conformance
// runner).
Tensor AsDeclared(Tensor t, ElementType declared) {
  if (t.type() == ElementType::kU16 && declared == ElementType::kBF16) {
    return Tensor::Wrap(ElementType::kBF16, t.shape(), t.raw()).Clone();
  }
  return t;
}

enum class Verdict { kSkipped, kRoundTripped, kBothFailSame, kBroken };

struct CaseResult {
  Verdict verdict = Verdict::kBroken;
  std::string why;
};

// Imports, exports, imports again, runs both on test_data_set_0. kRoundTripped: both ran, their
// outputs are bitwise identical and match the expected ones. kBothFailSame: the original already
// fails (a known conformance failure) and the round trip fails or differs from expected in the
// same way. kBroken: the export changed behaviour.
CaseResult RoundTripCase(const fs::path& dir) {
  auto original = ImportOnnxFile((dir / "model.onnx").string());
  if (!original.ok()) return {Verdict::kSkipped, original.status().ToString()};
  // Models with sequence or optional values are not round-tripped: the exporter does not write
  // container types yet (a re-import then sees plain tensors). Known gap, reported as skipped;
  // the conformance runner checks those models as imported.
  for (ValueId v : original->graph.inputs()) {
    if (!original->graph.value(v).info.is_tensor()) {
      return {Verdict::kSkipped, "sequence/optional input: export of container types missing"};
    }
  }
  for (ValueId v : original->graph.outputs()) {
    if (!original->graph.value(v).info.is_tensor()) {
      return {Verdict::kSkipped, "sequence/optional output: export of container types missing"};
    }
  }
  auto bytes = ExportOnnxBytes(*original);
  if (!bytes.ok()) return {Verdict::kBroken, "export: " + bytes.status().ToString()};
  auto again = ImportOnnxBytes(bytes->data(), bytes->size());
  if (!again.ok()) return {Verdict::kBroken, "re-import: " + again.status().ToString()};

  std::vector<std::string> input_names;
  std::vector<ElementType> input_types, output_types;
  for (ValueId v : original->graph.inputs()) {
    input_names.push_back(original->graph.value(v).name);
    input_types.push_back(original->graph.value(v).info.type);
  }
  for (ValueId v : original->graph.outputs()) {
    output_types.push_back(original->graph.value(v).info.type);
  }
  const fs::path set = dir / "test_data_set_0";
  NamedTensors inputs;
  for (size_t i = 0; fs::exists(set / ("input_" + std::to_string(i) + ".pb")); ++i) {
    auto t = ReadTensorProtoFile((set / ("input_" + std::to_string(i) + ".pb")).string());
    if (!t.ok() || i >= input_names.size())
      return {Verdict::kBroken, "cannot read input " + std::to_string(i)};
    inputs.emplace_back(input_names[i], AsDeclared(std::move(t).value(), input_types[i]));
  }
  std::vector<Tensor> expected;
  for (size_t i = 0; fs::exists(set / ("output_" + std::to_string(i) + ".pb")); ++i) {
    auto t = ReadTensorProtoFile((set / ("output_" + std::to_string(i) + ".pb")).string());
    if (!t.ok() || i >= output_types.size())
      return {Verdict::kBroken, "cannot read output " + std::to_string(i)};
    expected.push_back(AsDeclared(std::move(t).value(), output_types[i]));
  }

  auto run = [&](Model model) -> Result<std::vector<Tensor>> {
    KILN_ASSIGN_OR_RETURN(auto session, Session::Create(std::move(model), SessionOptions::Threads(1)));
    return session->Run(inputs);
  };
  auto r1 = run(std::move(original).value());
  auto r2 = run(std::move(again).value());
  if (r1.ok() != r2.ok()) {
    return {Verdict::kBroken,
            "original " + r1.status().ToString() + ", round trip " + r2.status().ToString()};
  }
  if (!r1.ok()) {
    if (r1.status().code() != r2.status().code()) {
      return {Verdict::kBroken,
              "errors differ: " + r1.status().ToString() + " vs " + r2.status().ToString()};
    }
    return {Verdict::kBothFailSame, r1.status().ToString()};
  }
  if (r1->size() != r2->size()) return {Verdict::kBroken, "output counts differ"};
  for (size_t i = 0; i < r1->size(); ++i) {
    Status same = AllClose((*r1)[i], (*r2)[i], 0, 0);
    if (!same.ok())
      return {Verdict::kBroken, "output " + std::to_string(i) + " differs: " + same.ToString()};
  }
  if (expected.size() > r1->size()) return {Verdict::kBothFailSame, "too few outputs"};
  for (size_t i = 0; i < expected.size(); ++i) {
    Status s = AllClose(expected[i], (*r2)[i], kRtol, kAtol);
    if (!s.ok())
      return {Verdict::kBothFailSame, "output " + std::to_string(i) + ": " + s.ToString()};
  }
  return {Verdict::kRoundTripped, ""};
}

TEST(Exporter, ConformanceNodeModelsRoundTrip) {
  ASSERT_TRUE(fs::is_directory(kNodeTests)) << kNodeTests << " is missing";
  std::vector<fs::path> dirs;
  for (const auto& e : fs::directory_iterator(kNodeTests)) {
    if (e.is_directory()) dirs.push_back(e.path());
  }
  std::sort(dirs.begin(), dirs.end());
  const auto start = std::chrono::steady_clock::now();
  std::vector<CaseResult> results(dirs.size());
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t i = next++; i < dirs.size(); i = next++) results[i] = RoundTripCase(dirs[i]);
  };
  std::vector<std::thread> workers;
  const unsigned n_workers = std::max(1u, std::min(4u, std::thread::hardware_concurrency()));
  for (unsigned w = 0; w < n_workers; ++w) workers.emplace_back(worker);
  for (auto& w : workers) w.join();
  int counts[4] = {0, 0, 0, 0};
  for (size_t i = 0; i < dirs.size(); ++i) {
    ++counts[static_cast<int>(results[i].verdict)];
    EXPECT_NE(results[i].verdict, Verdict::kBroken)
        << dirs[i].filename().string() << ": " << results[i].why;
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf(
      "  %zu node models: %d round-tripped, %d fail in Kiln before and after, %d not "
      "imported or not compared (sequence/optional values), %d broken by export (%.1f s)\n",
      dirs.size(), counts[1], counts[2], counts[0], counts[3], secs);
  EXPECT_GE(counts[static_cast<int>(Verdict::kRoundTripped)], 850);
}

// ---------------------------------------------------------------------------------------------
// PP-OCRv4 rec: export to a file, run that file in ONNX Runtime and in Kiln.

std::string Sanitize(std::string s) {
  for (char& c : s) {
    if (!isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') c = '_';
  }
  return s;
}

TEST(Exporter, PpOcrV4RecRoundTripsThroughAFileAndRunsInOnnxRuntime) {
  ASSERT_TRUE(fs::exists(kRecModel)) << kRecModel << " is missing: run scripts/setup.sh";
  const fs::path work = fs::temp_directory_path() / ("kiln_export_" + std::to_string(getpid()));
  fs::remove_all(work);
  fs::create_directories(work / "in");
  Tensor x = Tensor::Allocate(ElementType::kF32, {1, 3, 48, 320}).value();
  std::mt19937_64 rng(2);
  std::uniform_real_distribution<float> dist(-1, 1);
  for (int64_t i = 0; i < x.size(); ++i) x.data<float>()[i] = dist(rng);
  const NamedTensors inputs = {{"x", x}};

  auto original = ImportOnnxFile(kRecModel.string());
  ASSERT_TRUE(original.ok()) << original.status().ToString();
  const fs::path exported = work / "rec.onnx";
  Status written = ExportOnnxFile(*original, exported.string());
  ASSERT_TRUE(written.ok()) << written.ToString();
  auto session = Session::Create(std::move(original).value(), SessionOptions::Threads(2));
  ASSERT_TRUE(session.ok()) << session.status().ToString();
  auto reference = (*session)->Run(inputs);
  ASSERT_TRUE(reference.ok()) << reference.status().ToString();

  auto reloaded = ImportOnnxFile(exported.string());
  ASSERT_TRUE(reloaded.ok()) << reloaded.status().ToString();
  EXPECT_EQ(reloaded->producer_name, "kiln");
  auto session2 = Session::Create(std::move(reloaded).value(), SessionOptions::Threads(2));
  ASSERT_TRUE(session2.ok()) << session2.status().ToString();
  auto kiln_out = (*session2)->Run(inputs);
  ASSERT_TRUE(kiln_out.ok()) << kiln_out.status().ToString();

  ASSERT_TRUE(WriteNpy((work / "in" / "x.npy").string(), x).ok());
  const std::string cmd = "node '" + (kSource / "tests" / "models" / "ort_run.js").string() +
                          "' '" + exported.string() + "' '" + (work / "in").string() + "' '" +
                          (work / "ort").string() + "' 1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << "ONNX Runtime failed on the exported model: " << cmd;

  const Graph& g = (*session)->graph();
  ASSERT_EQ(reference->size(), g.outputs().size());
  ASSERT_EQ(kiln_out->size(), reference->size());
  for (size_t i = 0; i < reference->size(); ++i) {
    const std::string name = g.value(g.outputs()[i]).name;
    auto kiln_err = RelativeL2Error((*kiln_out)[i], (*reference)[i]);
    ASSERT_TRUE(kiln_err.ok()) << kiln_err.status().ToString();
    EXPECT_LE(*kiln_err, 1e-6) << "Kiln on the exported model, output " << name;
    auto ort = ReadNpy((work / "ort" / (Sanitize(name) + ".npy")).string());
    ASSERT_TRUE(ort.ok()) << ort.status().ToString();
    ASSERT_EQ(ort->shape(), (*reference)[i].shape()) << name;
    auto ort_err = RelativeL2Error(*ort, (*reference)[i]);
    ASSERT_TRUE(ort_err.ok()) << ort_err.status().ToString();
    std::printf(
        "  output %s %s: Kiln(exported) vs Kiln(original) %.3g, ORT(exported) vs "
        "Kiln(original) %.3g\n",
        name.c_str(), (*reference)[i].Describe().c_str(), *kiln_err, *ort_err);
    // Kiln's XNNPACK partitions and ONNX Runtime sum in different orders: ~2e-6 apart.
    EXPECT_LE(*ort_err, 1e-5) << "ONNX Runtime on the exported model, output " << name;
  }
  fs::remove_all(work);
}

// ---------------------------------------------------------------------------------------------
// Atomic writes.

Model TinyModel() {
  Model m;
  m.opsets = {{"", 17}};
  ValueId x = m.graph.AddValue("x", ElementType::kF32, DimVector{2});
  m.graph.MarkInput(x);
  ValueId y = m.graph.AddValue("y", ElementType::kF32, DimVector{2});
  m.graph.AddNode("relu", "Relu", {x}, {y}, {}, "", 17);
  m.graph.MarkOutput(y);
  return m;
}

TEST(Exporter, WriteIntoMissingFolderFailsAndLeavesNoFile) {
  const fs::path dir = fs::temp_directory_path() / ("kiln_no_such_dir_" + std::to_string(getpid()));
  fs::remove_all(dir);
  const fs::path path = dir / "model.onnx";
  Status s = ExportOnnxFile(TinyModel(), path.string());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kIo);
  EXPECT_NE(s.message().find(path.string()), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("No such file or directory"), std::string::npos) << s.message();
  EXPECT_FALSE(fs::exists(path));
  EXPECT_FALSE(fs::exists(dir));
}

TEST(Exporter, FailedRenameRemovesTheTemporaryFile) {
  // The target is an existing folder: the temporary file is written, the rename fails.
  const fs::path dir =
      fs::temp_directory_path() / ("kiln_export_rename_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "target.onnx" / "occupied");
  Status s = ExportOnnxFile(TinyModel(), (dir / "target.onnx").string());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kIo);
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(dir)) left.push_back(e.path().filename().string());
  EXPECT_EQ(left, std::vector<std::string>{"target.onnx"});
  fs::remove_all(dir);
}

TEST(Exporter, WriteReplacesAnExistingFileWhole) {
  const fs::path dir =
      fs::temp_directory_path() / ("kiln_export_replace_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const fs::path path = dir / "m.onnx";
  { std::ofstream(path) << "old contents that are not a model"; }
  ASSERT_TRUE(ExportOnnxFile(TinyModel(), path.string()).ok());
  auto m = ImportOnnxFile(path.string());
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->graph.nodes().size(), 1u);
  size_t entries = 0;
  for (const auto& e : fs::directory_iterator(dir)) entries += e.is_regular_file() ? 1 : 0;
  EXPECT_EQ(entries, 1u);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace kiln
