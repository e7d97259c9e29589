// XNNPACK backend data-movement ops, done with own copy loops so that partitions stay large:
// Concat (along the physical position of the axis), Reshape / Flatten / Squeeze / Unsqueeze
// (logical order preserved across the NHWC <-> row-major change of rank), and Transpose
// (one permuting copy composed with both physical layouts).
#include <algorithm>
#include <cstring>

#include "backends/xnnpack/xnn_internal.h"
#include "backends/xnnpack/xnn_ops.h"

namespace kiln::xnn {

namespace {

constexpr double kGbytes = 10;

std::vector<int> Inverse(const std::vector<int>& p) {
  std::vector<int> inv(p.size());
  for (size_t i = 0; i < p.size(); ++i) inv[static_cast<size_t>(p[i])] = static_cast<int>(i);
  return inv;
}

// ---- Concat ----

NodeSupport ConcatSupports(const NodeQuery& q) {
  std::vector<int> all;
  for (size_t i = 0; i < q.inputs.size(); ++i) all.push_back(static_cast<int>(i));
  std::string e = CheckFloatNode(q, all, 6);
  if (!e.empty()) return NodeSupport::No(e);
  if (q.outputs[0]->shape->empty()) return NodeSupport::No("scalar Concat");
  return YesFloat(q, 1, kGbytes);
}

Status ConcatBuild(Builder& b, const Node& n, const Fusion& f) {
  const Shape y = b.shape(n.outputs[0]);
  const int r = static_cast<int>(y.size());
  int64_t axis = n.attrs.GetInt("axis", 0);
  if (axis < 0) axis += r;
  const std::vector<int> p = PhysicalPerm(r);
  int pa = 0;
  for (int i = 0; i < r; ++i) {
    if (p[static_cast<size_t>(i)] == axis) pa = i;
  }
  const Shape yp = Permuted(y, p);
  int64_t outer = 1;
  for (int i = 0; i < pa; ++i) outer *= yp[static_cast<size_t>(i)];
  const bool q8 = Is8Bit(b.type(f.out));
  const size_t es = q8 ? 1 : sizeof(float);  // bytes per element
  struct Part {
    int buffer = -1;
    std::shared_ptr<std::vector<float>> constant;  // floats, or the int8 storage bytes
    int64_t chunk = 0;  // elements per outer index
  };
  std::vector<Part> parts;
  for (ValueId v : n.inputs) {
    Part part;
    part.chunk = NumElements(b.shape(v)) / outer;
    if (const Tensor* c = b.constant(v)) {
      if (q8) {
        part.constant = std::make_shared<std::vector<float>>((c->size() + 3) / 4);
        PermuteCopyBytes(static_cast<const uint8_t*>(c->raw()), b.shape(v), p,
                         reinterpret_cast<uint8_t*>(part.constant->data()), nullptr,
                         c->type() == ElementType::kU8 ? 0x80 : 0);
      } else {
        const std::vector<float> vals = ConstantFloats(*c);
        part.constant = std::make_shared<std::vector<float>>(vals.size());
        PermuteCopy(vals.data(), b.shape(v), p, part.constant->data(), nullptr);
      }
    } else {
      part.buffer = b.Buffer(v);
    }
    parts.push_back(std::move(part));
  }
  const int64_t total_chunk = NumElements(y) / outer;
  const int out = b.Buffer(f.out);
  b.AddLoop([=](const Workspace& ws, pthreadpool_t pool) {
    char* dst = reinterpret_cast<char*>(ws.f(out));
    ParallelFor(pool, outer, 1, [&](int64_t s, int64_t e) {
      for (int64_t o = s; o < e; ++o) {
        char* d = dst + static_cast<size_t>(o * total_chunk) * es;
        for (const Part& part : parts) {
          const char* src = reinterpret_cast<const char*>(
              part.buffer >= 0 ? ws.f(part.buffer) : part.constant->data());
          const size_t bytes = static_cast<size_t>(part.chunk) * es;
          std::memcpy(d, src + static_cast<size_t>(o) * bytes, bytes);
          d += bytes;
        }
      }
    });
  });
  return Status::Ok();
}

// ---- Reshape family ----

NodeSupport ReshapeSupports(const NodeQuery& q) {
  std::string e = CheckFloatNode(q, {0}, 6);
  if (!e.empty()) return NodeSupport::No(e);
  for (size_t i = 1; i < q.inputs.size(); ++i) {
    if (q.inputs[i] != nullptr && q.constants[i] == nullptr) {
      return NodeSupport::No("input " + std::to_string(i) + " is not a constant");
    }
  }
  return YesFloat(q, 1, kGbytes);
}

Status ReshapeBuild(Builder& b, const Node& n, const Fusion& f) {
  const ValueId x = n.inputs[0];
  const Shape xs = b.shape(x), ys = b.shape(f.out);
  const std::vector<int> pin = b.perm(x), pout = b.perm(f.out);
  const bool in_id = IsIdentity(pin), out_id = IsIdentity(pout);
  const bool q8 = Is8Bit(b.type(x));
  if (in_id && out_id) {
    const int in = b.Buffer(x), out = b.Buffer(f.out);
    const size_t bytes = static_cast<size_t>(NumElements(xs)) * (q8 ? 1 : sizeof(float));
    b.AddLoop([=](const Workspace& ws, pthreadpool_t) {
      std::memcpy(ws.f(out), ws.f(in), bytes);
    });
    return Status::Ok();
  }
  if (q8 && (in_id || out_id)) {  // int8: one permuting byte copy
    const int in = b.Buffer(x), out = b.Buffer(f.out);
    const Shape phys = in_id ? xs : Permuted(xs, pin);
    const std::vector<int> q = in_id ? pout : Inverse(pin);
    const Shape src_shape = in_id ? ys : phys;
    b.AddLoop([=](const Workspace& ws, pthreadpool_t pool) {
      PermuteCopyBytes(reinterpret_cast<const uint8_t*>(ws.s8(in)), src_shape, q,
                       reinterpret_cast<uint8_t*>(ws.s8(out)), pool, 0);
    });
    return Status::Ok();
  }
  if (q8) return InvalidArgument("int8 reshape between two rank-4 shapes is not supported");
  if (!in_id && out_id) {  // physical input -> logical order is the output
    const int in = b.Buffer(x), out = b.Buffer(f.out);
    const Shape phys = Permuted(xs, pin);
    const std::vector<int> inv = Inverse(pin);
    b.AddLoop([=](const Workspace& ws, pthreadpool_t pool) {
      PermuteCopy(ws.f(in), phys, inv, ws.f(out), pool);
    });
    return Status::Ok();
  }
  // Input in logical order (its own buffer or a permuted scratch) -> output's physical layout.
  const int logical = b.LogicalIn(x);
  const int out = b.Buffer(f.out);
  b.AddLoop([=](const Workspace& ws, pthreadpool_t pool) {
    PermuteCopy(ws.f(logical), ys, pout, ws.f(out), pool);
  });
  return Status::Ok();
}

// ---- Transpose ----

NodeSupport TransposeSupports(const NodeQuery& q) {
  std::string e = CheckFloatNode(q, {0}, 6);
  if (!e.empty()) return NodeSupport::No(e);
  return YesFloat(q, 1, kGbytes);
}

Status TransposeBuild(Builder& b, const Node& n, const Fusion& f) {
  const ValueId x = n.inputs[0];
  const Shape xs = b.shape(x);
  const int r = static_cast<int>(xs.size());
  std::vector<int64_t> perm = n.attrs.GetInts("perm");
  if (perm.empty()) {
    for (int i = r - 1; i >= 0; --i) perm.push_back(i);
  }
  if (static_cast<int>(perm.size()) != r) return InvalidArgument("perm has the wrong length");
  const std::vector<int> pin = b.perm(x), pout = b.perm(f.out);
  const std::vector<int> inv_in = Inverse(pin);
  // Output physical dim i = logical out dim pout[i] = logical in dim perm[pout[i]].
  std::vector<int> q(static_cast<size_t>(r));
  for (int i = 0; i < r; ++i) {
    q[static_cast<size_t>(i)] =
        inv_in[static_cast<size_t>(perm[static_cast<size_t>(pout[static_cast<size_t>(i)])])];
  }
  const Shape phys_in = Permuted(xs, pin);
  const int in = b.Buffer(x), out = b.Buffer(f.out);
  if (Is8Bit(b.type(x))) {
    b.AddLoop([=](const Workspace& ws, pthreadpool_t pool) {
      PermuteCopyBytes(reinterpret_cast<const uint8_t*>(ws.s8(in)), phys_in, q,
                       reinterpret_cast<uint8_t*>(ws.s8(out)), pool, 0);
    });
    return Status::Ok();
  }
  b.AddLoop([=](const Workspace& ws, pthreadpool_t pool) {
    PermuteCopy(ws.f(in), phys_in, q, ws.f(out), pool);
  });
  return Status::Ok();
}

// ---- int8 entries: the same copies on the int8 storage ----

NodeSupport Int8ConcatSupports(const NodeQuery& q) {
  for (size_t i = 0; i < q.inputs.size(); ++i) {
    std::string e = CheckInt8Value(q.inputs[i], "input " + std::to_string(i));
    if (!e.empty()) return NodeSupport::No(e);
    if (q.constants[i] == nullptr && q.inputs[i]->type != q.outputs[0]->type)
      return NodeSupport::No("mixed element types");
  }
  std::string e = CheckInt8Value(q.outputs[0], "output 0");
  if (!e.empty()) return NodeSupport::No(e);
  if (q.outputs[0]->shape->empty()) return NodeSupport::No("scalar Concat");
  return YesInt8(q, 1);
}

NodeSupport Int8ReshapeSupports(const NodeQuery& q) {
  std::string e = CheckInt8Value(q.inputs[0], "input 0");
  if (e.empty()) e = CheckInt8Value(q.outputs[0], "output 0");
  if (!e.empty()) return NodeSupport::No(e);
  for (size_t i = 1; i < q.inputs.size(); ++i) {
    if (q.inputs[i] != nullptr && q.constants[i] == nullptr) {
      return NodeSupport::No("input " + std::to_string(i) + " is not a constant");
    }
  }
  if (q.inputs[0]->shape->size() == 4 && q.outputs[0]->shape->size() == 4 &&
      q.inputs[0]->static_shape() != q.outputs[0]->static_shape()) {
    return NodeSupport::No("int8 reshape between two rank-4 shapes");
  }
  return YesInt8(q, 1);
}

NodeSupport Int8TransposeSupports(const NodeQuery& q) {
  std::string e = CheckInt8Value(q.inputs[0], "input 0");
  if (e.empty()) e = CheckInt8Value(q.outputs[0], "output 0");
  if (!e.empty()) return NodeSupport::No(e);
  return YesInt8(q, 1);
}

// ---- Identity, and Dropout that drops nothing (inference, or a constant ratio of 0) ----

// Whether anything reads `v` (a node input or a graph output of this graph).
bool IsRead(const Graph& g, ValueId v) {
  if (!v.valid()) return false;
  for (ValueId o : g.outputs()) {
    if (o == v) return true;
  }
  for (const Node& n : g.nodes()) {
    for (ValueId in : n.inputs) {
      if (in == v) return true;
    }
  }
  return false;
}

NodeSupport IdentitySupports(const NodeQuery& query) {
  // Dropout's mask output may be named and unread (checked below): only output 0 is made.
  NodeQuery q = query;
  q.outputs.resize(std::min<size_t>(q.outputs.size(), 1));
  std::string e = CheckFloatNode(q, {0}, 6);
  if (!e.empty()) return NodeSupport::No(e);
  const Node& n = *q.node;
  if (n.op_type == "Dropout") {
    // Training mode drops nothing when the ratio is a constant 0 (torchvision's swin exports
    // its attention dropout so).
    bool training = false;
    if (q.inputs.size() > 2 && q.inputs[2] != nullptr) {
      const Tensor* t = q.constants[2];
      if (t == nullptr || t->size() != 1) return NodeSupport::No("training_mode is not a constant");
      training = t->GetAsDouble(0) != 0;
    }
    if (training) {
      const Tensor* ratio = q.inputs.size() > 1 && q.inputs[1] != nullptr ? q.constants[1] : nullptr;
      if (ratio == nullptr || ratio->size() != 1 || ratio->GetAsDouble(0) != 0) {
        return NodeSupport::No("training_mode is true with a ratio other than a constant 0");
      }
    }
    if (n.outputs.size() > 1 && IsRead(*q.graph, n.outputs[1])) {
      return NodeSupport::No("the mask output is read");
    }
  }
  return YesFloat(q, 1, kGbytes);
}

// y = x: a copy in the partition's layout (both have x's shape and so one physical order).
Status IdentityBuild(Builder& b, const Node& n, const Fusion& f) {
  const ValueId x = n.inputs[0];
  if (b.shape(x) != b.shape(f.out)) return InvalidArgument("output shape differs from input");
  const int in = b.Buffer(x), out = b.Buffer(f.out);
  const size_t bytes = static_cast<size_t>(NumElements(b.shape(x))) * sizeof(float);
  b.AddLoop([=](const Workspace& ws, pthreadpool_t) { std::memcpy(ws.f(out), ws.f(in), bytes); });
  return Status::Ok();
}

// ---- Pad, constant mode (XNNPACK's constant pad over the physical layout) ----

// The pads (begin..., end...) and fill value of a constant-mode Pad with constant, non-negative
// pads over every axis; an error naming what does not fit.
std::string ReadConstantPad(const Node& n, const std::vector<const Tensor*>& consts, int rank,
                            std::vector<int64_t>* pads, float* value) {
  if (n.attrs.GetString("mode", "constant") != "constant") return "mode is not constant";
  *value = 0.0f;
  if (n.opset < 11) {
    *pads = n.attrs.GetInts("pads");
    *value = n.attrs.GetFloat("value", 0.0f);
  } else {
    if (consts.size() < 2 || consts[1] == nullptr) return "pads is not a constant";
    *pads = consts[1]->ToInt64Vector();
    if (consts.size() > 2 && n.inputs.size() > 2 && n.inputs[2].valid()) {
      if (consts[2] == nullptr || consts[2]->size() != 1) return "constant_value is not a constant";
      *value = static_cast<float>(consts[2]->GetAsDouble(0));
    }
    if (n.inputs.size() > 3 && n.inputs[3].valid()) return "axes are given";
  }
  if (static_cast<int>(pads->size()) != 2 * rank) return "pads do not cover every axis";
  for (int64_t p : *pads) {
    if (p < 0) return "negative pads (cropping)";
  }
  return "";
}

NodeSupport PadSupports(const NodeQuery& q) {
  std::string e = CheckFloatNode(q, {0}, 6);
  if (!e.empty()) return NodeSupport::No(e);
  std::vector<int64_t> pads;
  float value;
  e = ReadConstantPad(*q.node, q.constants, static_cast<int>(q.inputs[0]->shape->size()), &pads,
                      &value);
  if (!e.empty()) return NodeSupport::No(e);
  return YesFloat(q, 1, kGbytes);
}

Status PadBuild(Builder& b, const Node& n, const Fusion& f) {
  const ValueId x = n.inputs[0];
  const Shape xs = b.shape(x);
  const int r = static_cast<int>(xs.size());
  std::vector<const Tensor*> consts;
  for (ValueId v : n.inputs) consts.push_back(b.constant(v));
  std::vector<int64_t> pads;
  float value;
  std::string e = ReadConstantPad(n, consts, r, &pads, &value);
  if (!e.empty()) return InvalidArgument(e);
  // Input and output share the physical order of their rank: pad physical dim i by the
  // logical axis it holds.
  const std::vector<int> perm = b.perm(x);
  if (perm != b.perm(f.out)) return InvalidArgument("input and output layouts differ");
  std::vector<size_t> dims(static_cast<size_t>(r)), pre(dims.size()), post(dims.size());
  for (int i = 0; i < r; ++i) {
    const auto a = static_cast<size_t>(perm[static_cast<size_t>(i)]);
    dims[static_cast<size_t>(i)] = static_cast<size_t>(xs[a]);
    pre[static_cast<size_t>(i)] = static_cast<size_t>(pads[a]);
    post[static_cast<size_t>(i)] = static_cast<size_t>(pads[a + static_cast<size_t>(r)]);
  }
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  xnn_operator_t op = nullptr;
  const xnn_status st = xnn_create_constant_pad_nd_x32(&bits, 0, &op);
  if (st != xnn_status_success) return XnnError(n, "xnn_create_constant_pad_nd_x32", st);
  const int in = b.Buffer(x), out = b.Buffer(f.out);
  b.AddXnn(
      n, XnnOp(op),
      [=](const Workspace& ws, pthreadpool_t pool) {
        return xnn_setup_constant_pad_nd_x32(op, dims.size(), dims.data(), pre.data(), post.data(),
                                             ws.f(in), ws.f(out), pool);
      },
      "xnn_setup_constant_pad_nd_x32");
  return Status::Ok();
}

}  // namespace

Status BuildChannelShuffle(Builder& b, const Node& n, ValueId x, int64_t groups, const Fusion& f) {
  (void)n;
  const Shape xs = b.shape(x);  // logical [N, C, H, W], stored NHWC like the output
  if (xs.size() != 4 || b.perm(x) != b.perm(f.out) || groups <= 0 || xs[1] % groups != 0) {
    return InvalidArgument("channel shuffle: unexpected shapes");
  }
  const int64_t c = xs[1], per = c / groups, pixels = xs[0] * xs[2] * xs[3];
  const bool nhwc = b.perm(x) == std::vector<int>{kNhwc[0], kNhwc[1], kNhwc[2], kNhwc[3]};
  if (!nhwc) return InvalidArgument("channel shuffle: the partition does not store NHWC");
  const int in = b.Buffer(x), out = b.Buffer(f.out);
  b.AddLoop([=](const Workspace& ws, pthreadpool_t pool) {
    const float* src = ws.f(in);
    float* dst = ws.f(out);
    ParallelFor(pool, pixels, 64, [&](int64_t p0, int64_t p1) {
      for (int64_t p = p0; p < p1; ++p) {
        const float* sp = src + p * c;
        float* dp = dst + p * c;
        for (int64_t j = 0; j < groups; ++j) {
          for (int64_t i = 0; i < per; ++i) dp[i * groups + j] = sp[j * per + i];
        }
      }
    });
  });
  return Status::Ok();
}

void AddTensorOps(std::vector<OpDef>& table) {
  table.push_back({"Concat", ConcatSupports, ConcatBuild, false});
  for (const char* op : {"Reshape", "Flatten", "Squeeze", "Unsqueeze"}) {
    table.push_back({op, ReshapeSupports, ReshapeBuild, false});
  }
  table.push_back({"Transpose", TransposeSupports, TransposeBuild, false});
  table.push_back({"Identity", IdentitySupports, IdentityBuild, false});
  table.push_back({"Pad", PadSupports, PadBuild, false});
  table.push_back({"Dropout", IdentitySupports, IdentityBuild, false});
  table.push_back({"Concat", Int8ConcatSupports, ConcatBuild, false, true});
  for (const char* op : {"Reshape", "Flatten", "Squeeze", "Unsqueeze"}) {
    table.push_back({op, Int8ReshapeSupports, ReshapeBuild, false, true});
  }
  table.push_back({"Transpose", Int8TransposeSupports, TransposeBuild, false, true});
}

}  // namespace kiln::xnn
