// Nested bodies (If branches) and the values they read from the enclosing graph: weights that a
// branch re-arranges (PyTorch's LSTM gate reorder exports as Slice/Concat on Constant nodes
// outside the branch) are folded once when the branch is planned, not computed at every run;
// results stay those of the reference kernels.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <random>
#include <set>
#include <string>
#include <vector>

#include "onnx/importer.h"
#include "runtime/session.h"

namespace kiln {
namespace {

constexpr int kIn = 32, kOut = 64;

onnx::ValueInfoProto TensorInfo(const std::string& name, int type, const std::vector<int64_t>& dims) {
  onnx::ValueInfoProto vi;
  vi.set_name(name);
  auto* t = vi.mutable_type()->mutable_tensor_type();
  t->set_elem_type(type);
  auto* s = t->mutable_shape();
  for (int64_t d : dims) s->add_dim()->set_dim_value(d);
  return vi;
}

onnx::NodeProto* Op(onnx::GraphProto* g, const std::string& type, std::vector<std::string> in,
                    const std::string& out) {
  auto* n = g->add_node();
  n->set_op_type(type);
  n->set_name(type + ":" + out);
  for (const auto& i : in) n->add_input(i);
  n->add_output(out);
  return n;
}

void IntAttr(onnx::NodeProto* n, const std::string& name, int64_t v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(v);
}

void Ints(onnx::GraphProto* g, const std::string& name, int64_t v) {
  auto* t = g->add_initializer();
  t->set_name(name);
  t->set_data_type(onnx::TensorProto::INT64);
  t->add_dims(1);
  t->add_int64_data(v);
}

// main: W = Constant [64, 32] (random); y = If(c, then: Gemm(x, Concat(W[32:], W[:32])^T),
//                                              else: Gemm(x, W^T))
onnx::ModelProto BranchModel(std::vector<float>* w) {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(17);
  auto* g = m.mutable_graph();
  g->set_name("main");
  *g->add_input() = TensorInfo("x", onnx::TensorProto::FLOAT, {1, kIn});
  *g->add_input() = TensorInfo("c", onnx::TensorProto::BOOL, {});
  *g->add_output() = TensorInfo("y", onnx::TensorProto::FLOAT, {1, kOut});
  std::mt19937 gen(7);
  std::uniform_real_distribution<float> u(-1, 1);
  w->resize(kOut * kIn);
  for (float& v : *w) v = u(gen);
  auto* k = Op(g, "Constant", {}, "W");
  auto* a = k->add_attribute();
  a->set_name("value");
  a->set_type(onnx::AttributeProto::TENSOR);
  a->mutable_t()->set_data_type(onnx::TensorProto::FLOAT);
  a->mutable_t()->add_dims(kOut);
  a->mutable_t()->add_dims(kIn);
  for (float v : *w) a->mutable_t()->add_float_data(v);
  Ints(g, "zero", 0);
  Ints(g, "half", kOut / 2);
  Ints(g, "full", kOut);
  auto* n = Op(g, "If", {"c"}, "y");
  for (int b = 0; b < 2; ++b) {
    auto* at = n->add_attribute();
    at->set_name(b == 0 ? "then_branch" : "else_branch");
    at->set_type(onnx::AttributeProto::GRAPH);
    auto* body = at->mutable_g();
    body->set_name(b == 0 ? "swapped" : "plain");
    *body->add_output() = TensorInfo(b == 0 ? "y_then" : "y_else", onnx::TensorProto::FLOAT,
                                     {1, kOut});
    if (b == 0) {
      Op(body, "Slice", {"W", "half", "full", "zero"}, "w_hi");
      Op(body, "Slice", {"W", "zero", "half", "zero"}, "w_lo");
      IntAttr(Op(body, "Concat", {"w_hi", "w_lo"}, "w_swapped"), "axis", 0);
      IntAttr(Op(body, "Gemm", {"x", "w_swapped"}, "y_then"), "transB", 1);
    } else {
      IntAttr(Op(body, "Gemm", {"x", "W"}, "y_else"), "transB", 1);
    }
  }
  return m;
}

TEST(ControlFlow, BranchFoldsWorkOnOuterConstantsOnce) {
  std::vector<float> w;
  const onnx::ModelProto proto = BranchModel(&w);
  const std::string bytes = proto.SerializeAsString();
  std::vector<float> xv(kIn);
  for (int i = 0; i < kIn; ++i) xv[static_cast<size_t>(i)] = 0.05f * static_cast<float>(i - 9);
  const Tensor x = Tensor::FromVector<float>(xv, {1, kIn});
  for (const SessionOptions& options : {SessionOptions::Reference(), SessionOptions()}) {
    auto model = ImportOnnxBytes(bytes.data(), bytes.size());
    ASSERT_TRUE(model.ok()) << model.status().ToString();
    auto session = Session::Create(std::move(model).value(), options);
    ASSERT_TRUE(session.ok()) << session.status().ToString();
    for (bool swapped : {true, false, true}) {
      std::multiset<std::string> ran;
      const NodeObserver observer = [&](const Graph&, const Node& node,
                                        const std::vector<const Tensor*>&) {
        ran.insert(node.op_type);
      };
      NamedTensors in = {{"x", x}, {"c", Tensor::FromVector<bool>({swapped}, {})}};
      auto out = (*session)->Run(in, &observer);
      ASSERT_TRUE(out.ok()) << out.status().ToString();
      ASSERT_EQ((*out)[0].shape(), (Shape{1, kOut}));
      for (int j = 0; j < kOut; ++j) {
        const int row = swapped ? (j + kOut / 2) % kOut : j;
        double expect = 0;
        for (int i = 0; i < kIn; ++i) {
          expect += static_cast<double>(xv[static_cast<size_t>(i)]) *
                    w[static_cast<size_t>(row * kIn + i)];
        }
        EXPECT_NEAR((*out)[0].data<float>()[j], expect, 1e-4) << "column " << j;
      }
      // Slice and Concat read only W (a constant of the enclosing plan): folded, never run.
      EXPECT_EQ(ran.count("Slice"), 0u);
      EXPECT_EQ(ran.count("Concat"), 0u);
      if (options.backends == std::vector<std::string>{"ref"}) {
        EXPECT_EQ(ran.count("Gemm"), 1u) << "the branch's Gemm runs on the reference kernels";
      }
    }
  }
}

}  // namespace
}  // namespace kiln
