// Resource limits (SessionOptions max_tensor_bytes / max_arena_bytes / max_constant_bytes /
// max_loop_iterations, config keys MaxTensorBytes / MaxArenaBytes / MaxConstantBytes /
// MaxLoopIterations, the subgraph nesting depth) and bad inputs: each case ends in a clear error
// before the memory is allocated or the loop runs away, fast, and names what is wrong.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <chrono>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "onnx/importer.h"
#include "package/config.h"
#include "runtime/session.h"

namespace kiln {
namespace {

onnx::ValueInfoProto Info(const std::string& name, int type, const std::vector<int64_t>& dims,
                          bool with_shape = true) {
  onnx::ValueInfoProto vi;
  vi.set_name(name);
  auto* t = vi.mutable_type()->mutable_tensor_type();
  t->set_elem_type(type);
  if (with_shape) {
    auto* s = t->mutable_shape();
    for (int64_t d : dims) {
      if (d < 0) {
        s->add_dim()->set_dim_param("N");
      } else {
        s->add_dim()->set_dim_value(d);
      }
    }
  }
  return vi;
}

onnx::NodeProto* AddNode(onnx::GraphProto* g, const std::string& op,
                         const std::vector<std::string>& in, const std::vector<std::string>& out) {
  auto* n = g->add_node();
  n->set_op_type(op);
  n->set_name(op + "_" + out[0]);
  for (const auto& i : in) n->add_input(i);
  for (const auto& o : out) n->add_output(o);
  return n;
}

void AddInt64Initializer(onnx::GraphProto* g, const std::string& name,
                         const std::vector<int64_t>& values, bool scalar = false) {
  auto* t = g->add_initializer();
  t->set_name(name);
  t->set_data_type(onnx::TensorProto::INT64);
  if (!scalar) t->add_dims(static_cast<int64_t>(values.size()));
  for (int64_t v : values) t->add_int64_data(v);
}

onnx::ModelProto NewModel() {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(17);
  m.mutable_graph()->set_name("main");
  return m;
}

Result<Model> Import(const onnx::ModelProto& m) {
  const std::string bytes = m.SerializeAsString();
  return ImportOnnxBytes(bytes.data(), bytes.size());
}

void ExpectError(const Status& s, const std::vector<std::string>& fragments) {
  ASSERT_FALSE(s.ok()) << "expected an error";
  for (const auto& f : fragments) {
    EXPECT_NE(s.message().find(f), std::string::npos) << "'" << f << "' not in: " << s.message();
  }
}

// Runs the model on `inputs` (or plans it, with no inputs given), expecting an error containing
// every fragment, within a second (nothing huge was allocated or computed).
void ExpectRunError(const onnx::ModelProto& m, const NamedTensors& inputs,
                    const std::vector<std::string>& fragments, SessionOptions o = {}) {
  const auto start = std::chrono::steady_clock::now();
  auto model = Import(m);
  Status s = model.status();
  if (model.ok()) {
    auto session = Session::Create(std::move(model).value(), o);
    s = session.status();
    if (session.ok()) s = (*session)->Run(inputs).status();
  }
  ExpectError(s, fragments);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 5.0);
}

// y = ConstantOfShape([2^20, 2^20]) + x: a 2^40-element tensor, planned from shapes.
TEST(Limits, HugeTensorFromShapeIsRefusedBeforeAllocation) {
  onnx::ModelProto m = NewModel();
  auto* g = m.mutable_graph();
  *g->add_input() = Info("x", onnx::TensorProto::FLOAT, {1});
  *g->add_output() = Info("y", onnx::TensorProto::FLOAT, {}, false);
  AddInt64Initializer(g, "shape", {int64_t{1} << 20, int64_t{1} << 20});
  AddNode(g, "ConstantOfShape", {"shape"}, {"big"});
  AddNode(g, "Add", {"big", "x"}, {"y"});
  NamedTensors in = {{"x", Tensor::FromVector<float>({1.0f}, {1})}};
  ExpectRunError(m, in, {"big", "ConstantOfShape", "4398046511104 bytes", "MaxTensorBytes"});
  // With a limit below the default the same check names the configured limit.
  SessionOptions o;
  o.max_tensor_bytes = 1000;
  g->mutable_initializer(0)->set_int64_data(0, 1);
  g->mutable_initializer(0)->set_int64_data(1, 1000);
  ExpectRunError(m, in, {"big", "4000 bytes", "limit of 1000 bytes"}, o);
}

// Expand / Reshape to absurd shapes: a clear error each, no allocation.
TEST(Limits, AbsurdReshapeAndExpandAreClearErrors) {
  {
    onnx::ModelProto m = NewModel();
    auto* g = m.mutable_graph();
    *g->add_input() = Info("x", onnx::TensorProto::FLOAT, {1, 3});
    *g->add_output() = Info("y", onnx::TensorProto::FLOAT, {}, false);
    AddInt64Initializer(g, "shape", {int64_t{1} << 20, int64_t{1} << 20, 3});
    AddNode(g, "Expand", {"x", "shape"}, {"y"});
    ExpectRunError(m, {{"x", Tensor::Allocate(ElementType::kF32, {1, 3}).value()}},
                   {"y", "Expand", "MaxTensorBytes"});
  }
  {
    onnx::ModelProto m = NewModel();
    auto* g = m.mutable_graph();
    *g->add_input() = Info("x", onnx::TensorProto::FLOAT, {2, 3});
    *g->add_output() = Info("y", onnx::TensorProto::FLOAT, {}, false);
    AddInt64Initializer(g, "shape", {int64_t{1} << 40, int64_t{1} << 40});
    AddNode(g, "Reshape", {"x", "shape"}, {"y"});
    ExpectRunError(m, {{"x", Tensor::Allocate(ElementType::kF32, {2, 3}).value()}}, {"Reshape"});
  }
  {  // an initializer that declares 2^40 elements but holds none
    onnx::ModelProto m = NewModel();
    auto* g = m.mutable_graph();
    *g->add_input() = Info("x", onnx::TensorProto::FLOAT, {1});
    *g->add_output() = Info("y", onnx::TensorProto::FLOAT, {}, false);
    auto* t = g->add_initializer();
    t->set_name("w");
    t->set_data_type(onnx::TensorProto::FLOAT);
    t->add_dims(int64_t{1} << 40);
    AddNode(g, "Add", {"x", "w"}, {"y"});
    ExpectRunError(m, {{"x", Tensor::Allocate(ElementType::kF32, {1}).value()}}, {"w"});
  }
}

// Loop with a trip count of 2^40 whose body emits a f32[1024] scan output each trip, with no
// iteration limit: refused when the scan output outgrows the tensor limit, not after exhausting
// memory.
TEST(Limits, LoopWithHugeTripCountStopsAtTheTensorLimit) {
  onnx::ModelProto m = NewModel();
  auto* g = m.mutable_graph();
  *g->add_input() = Info("x", onnx::TensorProto::FLOAT, {1024});
  *g->add_output() = Info("scan", onnx::TensorProto::FLOAT, {}, false);
  AddInt64Initializer(g, "M", {int64_t{1} << 40}, true);
  auto* loop = AddNode(g, "Loop", {"M", ""}, {"scan"});
  auto* a = loop->add_attribute();
  a->set_name("body");
  a->set_type(onnx::AttributeProto::GRAPH);
  auto* body = a->mutable_g();
  body->set_name("body");
  *body->add_input() = Info("i", onnx::TensorProto::INT64, {});
  *body->add_input() = Info("c", onnx::TensorProto::BOOL, {});
  *body->add_output() = Info("c_out", onnx::TensorProto::BOOL, {});
  *body->add_output() = Info("s", onnx::TensorProto::FLOAT, {1024});
  AddNode(body, "Identity", {"c"}, {"c_out"});
  AddNode(body, "Identity", {"x"}, {"s"});
  SessionOptions o;
  o.max_tensor_bytes = 1 << 20;
  o.max_loop_iterations = 0;  // else the iteration limit refuses M first (the next tests)
  ExpectRunError(m, {{"x", Tensor::Allocate(ElementType::kF32, {1024}).value()}},
                 {"Loop", "scan output", "trip count 1099511627776", "MaxTensorBytes"}, o);
}

// 40 Ifs nested in each other's branches: refused at import, naming the depth.
TEST(Limits, DeeplyNestedSubgraphsAreRefused) {
  onnx::ModelProto m = NewModel();
  auto* g = m.mutable_graph();
  *g->add_input() = Info("c", onnx::TensorProto::BOOL, {});
  *g->add_output() = Info("y", onnx::TensorProto::FLOAT, {}, false);
  onnx::GraphProto* cur = g;
  std::string out = "y";
  for (int depth = 0; depth < 40; ++depth) {
    auto* n = AddNode(cur, "If", {"c"}, {out});
    onnx::GraphProto* branches[2];
    for (int b = 0; b < 2; ++b) {
      auto* a = n->add_attribute();
      a->set_name(b == 0 ? "then_branch" : "else_branch");
      a->set_type(onnx::AttributeProto::GRAPH);
      branches[b] = a->mutable_g();
      branches[b]->set_name("g" + std::to_string(depth) + "_" + std::to_string(b));
      *branches[b]->add_output() = Info("o" + std::to_string(depth), onnx::TensorProto::FLOAT, {1});
    }
    auto* k = AddNode(branches[1], "Constant", {}, {"o" + std::to_string(depth)});
    auto* v = k->add_attribute();
    v->set_name("value");
    v->set_type(onnx::AttributeProto::TENSOR);
    v->mutable_t()->set_data_type(onnx::TensorProto::FLOAT);
    v->mutable_t()->add_dims(1);
    v->mutable_t()->add_float_data(1.0f);
    cur = branches[0];
    out = "o" + std::to_string(depth);
  }
  auto* k = AddNode(cur, "Constant", {}, {out});
  auto* v = k->add_attribute();
  v->set_name("value");
  v->set_type(onnx::AttributeProto::TENSOR);
  v->mutable_t()->set_data_type(onnx::TensorProto::FLOAT);
  v->mutable_t()->add_dims(1);
  v->mutable_t()->add_float_data(2.0f);
  ExpectError(Import(m).status(), {"nested", "levels deep", "at most 32"});
}

// A Loop summing 1.0 per iteration: acc_out = acc + 1, scan output i (the iteration number).
// `with_cond`: the loop has a condition input ("c0", true) and the body's condition output is
// i + 1 < `stop_at` (stop_at < 0: the condition is passed through unchanged, always true);
// without it the trip count M (an initializer) alone decides.
onnx::ModelProto CountingLoop(int64_t m, bool with_cond, int64_t stop_at = -1) {
  onnx::ModelProto mp = NewModel();
  auto* g = mp.mutable_graph();
  *g->add_input() = Info("acc0", onnx::TensorProto::FLOAT, {1});
  *g->add_output() = Info("acc", onnx::TensorProto::FLOAT, {1});
  *g->add_output() = Info("iters", onnx::TensorProto::INT64, {}, false);
  AddInt64Initializer(g, "M", {m}, true);
  if (with_cond) {
    auto* c = g->add_initializer();
    c->set_name("c0");
    c->set_data_type(onnx::TensorProto::BOOL);
    c->add_int32_data(1);
  }
  auto* loop = AddNode(g, "Loop", {"M", with_cond ? "c0" : "", "acc0"}, {"acc", "iters"});
  loop->set_name("counting_loop");
  auto* a = loop->add_attribute();
  a->set_name("body");
  a->set_type(onnx::AttributeProto::GRAPH);
  auto* body = a->mutable_g();
  body->set_name("body");
  *body->add_input() = Info("i", onnx::TensorProto::INT64, {});
  *body->add_input() = Info("c", onnx::TensorProto::BOOL, {});
  *body->add_input() = Info("a", onnx::TensorProto::FLOAT, {1});
  *body->add_output() = Info("c_out", onnx::TensorProto::BOOL, {});
  *body->add_output() = Info("a_out", onnx::TensorProto::FLOAT, {1});
  *body->add_output() = Info("i_out", onnx::TensorProto::INT64, {});
  auto* one = body->add_initializer();
  one->set_name("one");
  one->set_data_type(onnx::TensorProto::FLOAT);
  one->add_dims(1);
  one->add_float_data(1.0f);
  AddNode(body, "Add", {"a", "one"}, {"a_out"});
  AddNode(body, "Identity", {"i"}, {"i_out"});
  if (stop_at >= 0) {
    AddInt64Initializer(body, "i1", {1}, true);
    AddInt64Initializer(body, "stop", {stop_at}, true);
    AddNode(body, "Add", {"i", "i1"}, {"next"});
    AddNode(body, "Less", {"next", "stop"}, {"c_out"});
  } else {
    AddNode(body, "Identity", {"c"}, {"c_out"});
  }
  return mp;
}

Result<std::vector<Tensor>> RunCountingLoop(const onnx::ModelProto& m, SessionOptions o = {}) {
  KILN_ASSIGN_OR_RETURN(Model model, Import(m));
  KILN_ASSIGN_OR_RETURN(auto session, Session::Create(std::move(model), o));
  return session->Run({{"acc0", Tensor::FromVector<float>({0.5f}, {1})}});
}

// A trip count above the limit with no condition input: refused before the first iteration,
// naming the node, M and the limit (the default limit too).
TEST(Limits, LoopTripCountAboveTheIterationLimitIsRefused) {
  const NamedTensors in = {{"acc0", Tensor::FromVector<float>({0.5f}, {1})}};
  ExpectRunError(CountingLoop(int64_t{1} << 40, /*with_cond=*/false), in,
                 {"Loop 'counting_loop'", "trip count M = 1099511627776",
                  "limit of 16777216 iterations", "max_loop_iterations", "MaxLoopIterations"});
  SessionOptions o;
  o.max_loop_iterations = 100;
  auto r = RunCountingLoop(CountingLoop(101, false), o);
  ExpectError(r.status(), {"counting_loop", "trip count M = 101", "limit of 100 iterations"});
}

// A condition that never turns false (M = 2^40 as exporters write for while loops, or no M at
// all): stops with an error once the limit is reached, not after 2^40 iterations.
TEST(Limits, LoopWhoseConditionNeverEndsStopsAtTheIterationLimit) {
  SessionOptions o;
  o.max_loop_iterations = 1000;
  const NamedTensors in = {{"acc0", Tensor::FromVector<float>({0.5f}, {1})}};
  ExpectRunError(CountingLoop(int64_t{1} << 40, /*with_cond=*/true), in,
                 {"Loop 'counting_loop'", "still running after 1000 iterations",
                  "M = 1099511627776", "the condition still true", "limit of 1000 iterations",
                  "MaxLoopIterations"},
                 o);
  // The same without M: only the condition could end it.
  onnx::ModelProto no_m = CountingLoop(0, true);
  no_m.mutable_graph()->mutable_node(0)->set_input(0, "");
  ExpectRunError(no_m, in, {"counting_loop", "trip count none", "limit of 1000 iterations"}, o);
}

// Loops within the limit run normally, up to exactly the limit; a huge M whose condition ends
// the loop early is fine (only iterations count); 0 turns the limit off.
TEST(Limits, LoopsWithinTheIterationLimitRun) {
  SessionOptions o;
  o.max_loop_iterations = 100;
  {  // M = 100 = the limit, no condition: 100 iterations, acc = 0.5 + 100, iters = 0..99
    auto r = RunCountingLoop(CountingLoop(100, false), o);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_EQ(r->size(), 2u);
    EXPECT_EQ((*r)[0].data<float>()[0], 100.5f);
    ASSERT_EQ((*r)[1].shape(), (Shape{100}));
    for (int64_t i = 0; i < 100; ++i) EXPECT_EQ((*r)[1].data<int64_t>()[i], i);
  }
  {  // M = 2^40 with a condition that turns false after 7 iterations
    auto r = RunCountingLoop(CountingLoop(int64_t{1} << 40, true, /*stop_at=*/7), o);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ((*r)[0].data<float>()[0], 7.5f);
    EXPECT_EQ((*r)[1].shape(), (Shape{7}));
  }
  {  // the condition turns false exactly at the limit: 100 iterations, no error
    auto r = RunCountingLoop(CountingLoop(int64_t{1} << 40, true, /*stop_at=*/100), o);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ((*r)[0].data<float>()[0], 100.5f);
  }
  {  // no limit: M = 101 runs
    SessionOptions none;
    none.max_loop_iterations = 0;
    auto r = RunCountingLoop(CountingLoop(101, false), none);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ((*r)[0].data<float>()[0], 101.5f);
  }
  {  // default options: a real-sized loop
    auto r = RunCountingLoop(CountingLoop(5000, false));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ((*r)[0].data<float>()[0], 5000.5f);
  }
}

// A graph built in code (no importer check) nested deeper than kMaxGraphNesting: refused when
// the session is created, naming the depth; one level less is accepted by the check.
TEST(Limits, DeeplyNestedGraphsBuiltInCodeAreRefusedBySessionCreate) {
  auto nested = [](int levels) {
    Model m;
    m.opsets[""] = 17;
    Graph* cur = &m.graph;
    cur->name = "main";
    for (int depth = 0; depth < levels; ++depth) {
      ValueId c = cur->AddValue("c" + std::to_string(depth), ElementType::kBool, {});
      if (depth == 0) cur->MarkInput(c);
      ValueId y = cur->AddValue("y" + std::to_string(depth), ElementType::kF32, DimVector{Dim(1)});
      NodeId n = cur->AddNode("if" + std::to_string(depth), "If", {c}, {y});
      cur->MarkOutput(y);
      Attribute a;
      a.name = "then_branch";
      a.kind = Attribute::Kind::kGraph;
      a.g = std::make_shared<Graph>();
      a.g->name = "level" + std::to_string(depth + 1);
      Graph* next = a.g.get();
      cur->node(n).attrs.Add(std::move(a));
      cur = next;
    }
    return m;
  };
  ExpectError(Session::Create(nested(kMaxGraphNesting + 1)).status(),
              {"graph 'level33'", "nested 33 levels deep", "at most 32"});
  Status ok_depth = Session::Create(nested(kMaxGraphNesting)).status();
  EXPECT_EQ(ok_depth.message().find("levels deep"), std::string::npos) << ok_depth.message();
}

// y = x + x for x: f32[N, 64]: the arena holds the intermediates of a bigger N.
TEST(Limits, ArenaAndConstantLimits) {
  onnx::ModelProto m = NewModel();
  auto* g = m.mutable_graph();
  *g->add_input() = Info("x", onnx::TensorProto::FLOAT, {-1, 64});
  *g->add_output() = Info("y", onnx::TensorProto::FLOAT, {}, false);
  auto* w = g->add_initializer();
  w->set_name("w");
  w->set_data_type(onnx::TensorProto::FLOAT);
  w->add_dims(64);
  for (int i = 0; i < 64; ++i) w->add_float_data(static_cast<float>(i));
  AddNode(g, "Add", {"x", "w"}, {"a"});
  AddNode(g, "Mul", {"a", "a"}, {"b"});
  AddNode(g, "Add", {"b", "x"}, {"y"});
  SessionOptions o = SessionOptions::Reference();
  o.max_arena_bytes = 64 * 1024;
  auto model = Import(m);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  auto session = Session::Create(std::move(model).value(), o);
  ASSERT_TRUE(session.ok()) << session.status().ToString();
  // N = 16: 4 KiB per intermediate, fits; N = 4096: 1 MiB each, refused naming the setting.
  EXPECT_TRUE((*session)->Run({{"x", Tensor::Allocate(ElementType::kF32, {16, 64}).value()}}).ok());
  ExpectError((*session)->Run({{"x", Tensor::Allocate(ElementType::kF32, {4096, 64}).value()}})
                  .status(),
              {"arena", "limit of 65536 bytes", "MaxArenaBytes"});
  SessionOptions c;
  c.max_constant_bytes = 100;  // w is 256 bytes
  ExpectError(Session::Create(Import(m).value(), c).status(),
              {"weights", "256 bytes", "limit of 100 bytes", "MaxConstantBytes"});
}

TEST(Limits, ConfigKeysSetTheSessionOptions) {
  auto c = ParseConfigText("MaxTensorBytes = 1024\nMaxArenaBytes = 0\nMaxConstantBytes = 7\n",
                           "config.cfg");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  auto o = c->ToSessionOptions();
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->max_tensor_bytes, 1024);
  EXPECT_EQ(o->max_arena_bytes, 0);
  EXPECT_EQ(o->max_constant_bytes, 7);
  EXPECT_EQ(SessionOptions().max_tensor_bytes, int64_t{4} << 30);  // the documented default
  EXPECT_EQ(SessionOptions().max_loop_iterations, int64_t{1} << 24);  // the documented default
  auto l = ParseConfigText("MaxLoopIterations = 5000\n", "config.cfg");
  ASSERT_TRUE(l.ok()) << l.status().ToString();
  ASSERT_TRUE(l->ToSessionOptions().ok());
  EXPECT_EQ(l->ToSessionOptions()->max_loop_iterations, 5000);
  EXPECT_EQ(l->Get("MaxLoopIterations"), "5000");
  ExpectError(ParseConfigText("MaxLoopIterations = -3\n", "config.cfg").status(),
              {"config.cfg:1", "MaxLoopIterations", "-3"});
  ExpectError(ParseConfigText("MaxTensorBytes = -1\n", "config.cfg").status(),
              {"config.cfg:1", "MaxTensorBytes", "-1"});
  ExpectError(ParseConfigText("MaxArenaBytes = lots\n", "config.cfg").status(),
              {"MaxArenaBytes", "lots"});
}

// Inputs of the wrong name, type, rank or shape, or missing: refused, saying what was expected.
TEST(Limits, WrongInputsSayWhatWasExpected) {
  onnx::ModelProto m = NewModel();
  auto* g = m.mutable_graph();
  *g->add_input() = Info("x", onnx::TensorProto::FLOAT, {-1, 3});
  *g->add_output() = Info("y", onnx::TensorProto::FLOAT, {}, false);
  AddNode(g, "Relu", {"x"}, {"y"});
  auto session = Session::Create(Import(m).value());
  ASSERT_TRUE(session.ok());
  Session& s = **session;
  const Tensor good = Tensor::Allocate(ElementType::kF32, {2, 3}).value();
  EXPECT_TRUE(s.Run({{"x", good}}).ok());
  ExpectError(s.Run({{"z", good}}).status(), {"no input named 'z'", "inputs: x"});
  ExpectError(s.Run({}).status(), {"'x'", "not given"});
  ExpectError(s.Run({{"x", Tensor::Allocate(ElementType::kI32, {2, 3}).value()}}).status(),
              {"'x'", "expects", "f32", "i32"});
  ExpectError(s.Run({{"x", Tensor::Allocate(ElementType::kF32, {2, 3, 1}).value()}}).status(),
              {"'x'", "expects", "[N,3]", "[2,3,1]"});
  ExpectError(s.Run({{"x", Tensor::Allocate(ElementType::kF32, {2, 4}).value()}}).status(),
              {"'x'", "expects", "[N,3]", "[2,4]"});
  ExpectError(s.Run({{"x", good}, {"x", good}}).status(), {"'x'", "twice"});
}

}  // namespace
}  // namespace kiln
