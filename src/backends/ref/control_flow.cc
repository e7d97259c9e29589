// Reference kernels for If, Loop and Scan. Bodies run through KernelContext::RunSubgraph, which
// hands back owned tensors, so values carried from one iteration to the next never alias the
// body's arena.
#include <algorithm>
#include <cstring>

#include "backends/ref/kernel.h"
#include "core/run_limits.h"

namespace kiln {
namespace {

// Copies `count` elements from src[src_off...] to dst[dst_off...] (element offsets).
void CopyElements(const Tensor& src, int64_t src_off, Tensor& dst, int64_t dst_off, int64_t count) {
  if (count <= 0) return;
  if (src.type() == ElementType::kString) {
    for (int64_t i = 0; i < count; ++i) {
      dst.data<std::string>()[dst_off + i] = src.data<std::string>()[src_off + i];
    }
    return;
  }
  const size_t es = ElementSize(src.type());
  std::memcpy(static_cast<char*>(dst.raw()) + dst_off * es,
              static_cast<const char*>(src.raw()) + src_off * es, static_cast<size_t>(count) * es);
}

Status SetOutput(KernelContext& ctx, size_t i, const Tensor& value) {
  if (!value.is_tensor()) return ctx.SetValue(i, value);  // a sequence or optional, as it is
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.output(i, value.type(), value.shape()));
  CopyElements(value, 0, *out, 0, value.size());
  return Status::Ok();
}

Status If(KernelContext& ctx) {
  const Tensor* cond = ctx.input(0);
  if (cond == nullptr || cond->size() != 1) return ctx.Error("cond must be a single boolean");
  const Graph* body = ctx.attrs().GetGraph(cond->GetAsInt64(0) ? "then_branch" : "else_branch");
  if (body == nullptr) return ctx.Error("missing branch graph");
  KILN_ASSIGN_OR_RETURN(std::vector<Tensor> outs, ctx.RunSubgraph(*body, {}));
  if (outs.size() != ctx.num_outputs()) {
    return ctx.Error("branch produced " + std::to_string(outs.size()) + " outputs, expected " +
                     std::to_string(ctx.num_outputs()));
  }
  for (size_t i = 0; i < outs.size(); ++i) KILN_RETURN_IF_ERROR(SetOutput(ctx, i, outs[i]));
  return Status::Ok();
}

// Stacks equally shaped tensors along a new axis inserted at `axis`.
Status StackInto(KernelContext& ctx, size_t out_index, const std::vector<Tensor>& items,
                 int64_t axis, ElementType type, const Shape& empty_elem) {
  Shape elem = items.empty() ? empty_elem : items[0].shape();
  const int r = static_cast<int>(elem.size()) + 1;
  if (axis < 0) axis += r;
  if (axis < 0 || axis >= r) return ctx.Error("scan output axis out of range");
  for (const Tensor& t : items) {
    if (t.shape() != elem) {
      return ctx.Error("scan output changes shape between iterations: " + ShapeToString(elem) +
                       " then " + ShapeToString(t.shape()));
    }
  }
  Shape shape = elem;
  shape.insert(shape.begin() + axis, static_cast<int64_t>(items.size()));
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.output(out_index, items.empty() ? type : items[0].type(), shape));
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < axis; ++d) outer *= elem[d];
  for (size_t d = static_cast<size_t>(axis); d < elem.size(); ++d) inner *= elem[d];
  const int64_t n = static_cast<int64_t>(items.size());
  for (int64_t k = 0; k < n; ++k) {
    for (int64_t o = 0; o < outer; ++o) CopyElements(items[k], o * inner, *out, (o * n + k) * inner, inner);
  }
  return Status::Ok();
}

Status Loop(KernelContext& ctx) {
  const Graph* body = ctx.attrs().GetGraph("body");
  if (body == nullptr) return ctx.Error("missing body graph");
  int64_t max_trips = INT64_MAX;
  if (const Tensor* m = ctx.input(0)) {
    if (m->size() != 1) return ctx.Error("M must be a scalar");
    max_trips = m->GetAsInt64(0);
  }
  bool cond = true;
  if (const Tensor* c = ctx.input(1)) {
    if (c->size() != 1) return ctx.Error("cond must be a scalar");
    cond = c->GetAsInt64(0) != 0;
  }
  const size_t carried_n = ctx.num_inputs() - 2;
  std::vector<Tensor> carried;
  for (size_t i = 0; i < carried_n; ++i) {
    const Tensor* t = ctx.input(i + 2);
    if (t == nullptr) return ctx.Error("loop-carried input " + std::to_string(i) + " is missing");
    carried.push_back(*t);
  }
  const size_t scan_n = body->outputs().size() - 1 - carried_n;
  std::vector<std::vector<Tensor>> scans(scan_n);
  // A loop with neither a trip count nor a condition input would never end.
  if (ctx.input(0) == nullptr && ctx.input(1) == nullptr) {
    return ctx.Error("has neither a trip count M nor a condition: it would never end");
  }
  // The iteration limit (SessionOptions::max_loop_iterations): with no condition input the trip
  // count alone decides, so a larger one is refused up front; otherwise the body's condition may
  // end the loop early (exporters write M = INT64_MAX for while loops), so it is checked when
  // the loop still wants another iteration after `max_iterations`.
  const int64_t max_iterations = LoopIterationLimit();
  const auto over_limit = [&](const std::string& what) {
    return ctx.Error(what + " the limit of " + std::to_string(max_iterations) +
                     " iterations for one Loop (session option max_loop_iterations, config key "
                     "MaxLoopIterations)");
  };
  if (max_iterations > 0 && ctx.input(1) == nullptr && max_trips > max_iterations) {
    return over_limit("trip count M = " + std::to_string(max_trips) + " is above");
  }
  for (int64_t iter = 0; iter < max_trips && cond; ++iter) {
    if (max_iterations > 0 && iter == max_iterations) {
      return over_limit(std::string("still running after ") + std::to_string(iter) +
                        " iterations (trip count " +
                        (ctx.input(0) != nullptr ? "M = " + std::to_string(max_trips) : "none") +
                        ", the condition still true): reached");
    }
    std::vector<Tensor> in;
    in.push_back(Tensor::FromVector<int64_t>({iter}, {}));
    in.push_back(Tensor::FromVector<bool>({cond}, {}));
    for (const Tensor& t : carried) in.push_back(t);
    KILN_ASSIGN_OR_RETURN(std::vector<Tensor> outs, ctx.RunSubgraph(*body, in));
    if (outs.size() != 1 + carried_n + scan_n) return ctx.Error("body produced a wrong number of outputs");
    if (outs[0].size() != 1) return ctx.Error("body condition output must be a scalar");
    cond = outs[0].GetAsInt64(0) != 0;
    for (size_t i = 0; i < carried_n; ++i) carried[i] = outs[1 + i];
    for (size_t k = 0; k < scan_n; ++k) {
      scans[k].push_back(outs[1 + carried_n + k]);
      // The stacked scan output must fit in one tensor: checked as it grows (a huge trip count
      // ends here, not in an out-of-memory), before the stacked tensor is allocated.
      const int64_t limit = TensorByteLimit();
      const Tensor& item = scans[k].back();
      if (limit <= 0 || !item.is_tensor()) continue;
      // Each kept iteration also costs its allocation and tensor handle (~256 bytes).
      const int64_t per_trip = static_cast<int64_t>(item.bytes()) + 256;
      if (static_cast<int64_t>(scans[k].size()) > limit / per_trip) {
        return ctx.Error("scan output " + std::to_string(k) + " (" + item.Describe() +
                         " per iteration) would take more than the limit of " +
                         std::to_string(limit) + " bytes for one tensor after " +
                         std::to_string(scans[k].size()) + " iterations (trip count " +
                         (ctx.input(0) != nullptr ? std::to_string(max_trips) : "none") +
                         "; session option max_tensor_bytes, config key MaxTensorBytes)");
      }
    }
  }
  for (size_t i = 0; i < carried_n; ++i) KILN_RETURN_IF_ERROR(SetOutput(ctx, i, carried[i]));
  for (size_t k = 0; k < scan_n && carried_n + k < ctx.num_outputs(); ++k) {
    const Value& bv = body->value(body->outputs()[1 + carried_n + k]);
    Shape empty_elem;
    if (bv.info.has_static_shape()) empty_elem = bv.info.static_shape();
    KILN_RETURN_IF_ERROR(StackInto(ctx, carried_n + k, scans[k], 0, bv.info.type, empty_elem));
  }
  return Status::Ok();
}

// Element `index` of `t` along `axis`, with that axis removed.
Tensor SliceAt(const Tensor& t, int axis, int64_t index) {
  Shape shape = t.shape();
  const int64_t len = shape[static_cast<size_t>(axis)];
  shape.erase(shape.begin() + axis);
  Tensor out = Tensor::Allocate(t.type(), shape).value();
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < axis; ++d) outer *= t.dim(d);
  for (int d = axis + 1; d < t.rank(); ++d) inner *= t.dim(d);
  for (int64_t o = 0; o < outer; ++o) CopyElements(t, (o * len + index) * inner, out, o * inner, inner);
  return out;
}

// One scan over `seq` steps; states in/out; returns per-step scan outputs.
Status ScanLoop(KernelContext& ctx, const Graph& body, std::vector<Tensor>& states,
                const std::vector<Tensor>& scan_inputs, const std::vector<int>& in_axes,
                const std::vector<int64_t>& in_dirs, int64_t seq,
                std::vector<std::vector<Tensor>>& scan_outs) {
  const size_t n = states.size();
  for (int64_t t = 0; t < seq; ++t) {
    std::vector<Tensor> in = states;
    for (size_t j = 0; j < scan_inputs.size(); ++j) {
      const int64_t idx = in_dirs[j] ? seq - 1 - t : t;
      in.push_back(SliceAt(scan_inputs[j], in_axes[j], idx));
    }
    KILN_ASSIGN_OR_RETURN(std::vector<Tensor> outs, ctx.RunSubgraph(body, in));
    if (outs.size() < n) return ctx.Error("body produced too few outputs");
    for (size_t i = 0; i < n; ++i) states[i] = outs[i];
    scan_outs.resize(outs.size() - n);
    for (size_t k = n; k < outs.size(); ++k) scan_outs[k - n].push_back(outs[k]);
  }
  return Status::Ok();
}

Status Scan(KernelContext& ctx) {
  const Graph* body = ctx.attrs().GetGraph("body");
  if (body == nullptr) return ctx.Error("missing body graph");
  const int64_t m = ctx.attrs().GetInt("num_scan_inputs", -1);
  const bool v8 = ctx.opset() < 9;
  const size_t first = v8 ? 1 : 0;
  if (m < 1 || static_cast<size_t>(m) + first > ctx.num_inputs()) {
    return ctx.Error("num_scan_inputs must be between 1 and the number of inputs");
  }
  const size_t n = ctx.num_inputs() - first - static_cast<size_t>(m);
  const size_t k_out = body->outputs().size() - n;
  std::vector<int64_t> in_dirs = ctx.attrs().GetInts(v8 ? "directions" : "scan_input_directions");
  in_dirs.resize(static_cast<size_t>(m), 0);
  std::vector<int64_t> out_dirs = ctx.attrs().GetInts("scan_output_directions");
  out_dirs.resize(k_out, 0);
  std::vector<int64_t> in_axes_attr = ctx.attrs().GetInts("scan_input_axes");
  std::vector<int64_t> out_axes = ctx.attrs().GetInts("scan_output_axes");
  out_axes.resize(k_out, 0);

  // Scan outputs with direction 1 are stacked last step first.
  auto orient_outputs = [&](std::vector<std::vector<Tensor>>& scan_outs) {
    scan_outs.resize(k_out);
    for (size_t k = 0; k < k_out; ++k) {
      if (out_dirs[k]) std::reverse(scan_outs[k].begin(), scan_outs[k].end());
    }
  };

  if (!v8) {
    std::vector<Tensor> states, scans;
    for (size_t i = 0; i < n; ++i) {
      if (!ctx.input(i)) return ctx.Error("state input missing");
      states.push_back(*ctx.input(i));
    }
    std::vector<int> axes;
    int64_t seq = -1;
    for (size_t j = 0; j < static_cast<size_t>(m); ++j) {
      const Tensor* t = ctx.input(n + j);
      if (!t) return ctx.Error("scan input missing");
      int64_t a = j < in_axes_attr.size() ? in_axes_attr[j] : 0;
      if (a < 0) a += t->rank();
      if (a < 0 || a >= t->rank()) return ctx.Error("scan_input_axes out of range");
      axes.push_back(static_cast<int>(a));
      if (seq >= 0 && t->dim(static_cast<int>(a)) != seq) {
        return ctx.Error("scan inputs disagree on the sequence length");
      }
      seq = t->dim(static_cast<int>(a));
      scans.push_back(*t);
    }
    std::vector<std::vector<Tensor>> scan_outs;
    KILN_RETURN_IF_ERROR(ScanLoop(ctx, *body, states, scans, axes, in_dirs, seq, scan_outs));
    orient_outputs(scan_outs);
    for (size_t i = 0; i < n; ++i) KILN_RETURN_IF_ERROR(SetOutput(ctx, i, states[i]));
    for (size_t k = 0; k < k_out; ++k) {
      const Value& bv = body->value(body->outputs()[n + k]);
      Shape empty_elem;
      if (bv.info.has_static_shape()) empty_elem = bv.info.static_shape();
      KILN_RETURN_IF_ERROR(StackInto(ctx, n + k, scan_outs[k], out_axes[k], bv.info.type, empty_elem));
    }
    return Status::Ok();
  }

  // Opset 8: every input has a leading batch axis; the scan axis is 1. Run each batch entry.
  if (ctx.input(0) != nullptr) {
    return Unimplemented(ctx.node().Describe() + ": sequence_lens of Scan-8 is not supported");
  }
  const Tensor* any = ctx.input(first);
  if (any == nullptr || any->rank() < 1) return ctx.Error("inputs need a batch axis");
  const int64_t batch = any->dim(0);
  std::vector<std::vector<Tensor>> final_states(n), stacked(k_out);
  for (int64_t b = 0; b < batch; ++b) {
    std::vector<Tensor> states, scans;
    for (size_t i = 0; i < n; ++i) states.push_back(SliceAt(*ctx.input(first + i), 0, b));
    std::vector<int> axes(static_cast<size_t>(m), 0);
    int64_t seq = -1;
    for (size_t j = 0; j < static_cast<size_t>(m); ++j) {
      Tensor t = SliceAt(*ctx.input(first + n + j), 0, b);
      seq = t.dim(0);
      scans.push_back(t);
    }
    std::vector<std::vector<Tensor>> scan_outs;
    KILN_RETURN_IF_ERROR(ScanLoop(ctx, *body, states, scans, axes, in_dirs, seq, scan_outs));
    orient_outputs(scan_outs);
    for (size_t i = 0; i < n; ++i) final_states[i].push_back(states[i]);
    for (size_t k = 0; k < k_out; ++k) {
      // Stack this batch entry's steps along axis 0.
      const auto& items = scan_outs[k];
      Shape shape = items.empty() ? Shape{} : items[0].shape();
      shape.insert(shape.begin(), static_cast<int64_t>(items.size()));
      Tensor t = Tensor::Allocate(items.empty() ? ElementType::kF32 : items[0].type(), shape).value();
      for (size_t s = 0; s < items.size(); ++s) CopyElements(items[s], 0, t, static_cast<int64_t>(s) * items[s].size(), items[s].size());
      stacked[k].push_back(t);
    }
  }
  for (size_t i = 0; i < n; ++i) {
    KILN_RETURN_IF_ERROR(StackInto(ctx, i, final_states[i], 0, ctx.input(first + i)->type(), {}));
  }
  for (size_t k = 0; k < k_out; ++k) {
    KILN_RETURN_IF_ERROR(StackInto(ctx, n + k, stacked[k], 0, ElementType::kF32, {}));
  }
  return Status::Ok();
}

constexpr KernelDef kKernels[] = {
    {"If", "", If, true},
    {"Loop", "", Loop, true},
    {"Scan", "", Scan},
};

}  // namespace

std::span<const KernelDef> ControlFlowKernels() { return kKernels; }

}  // namespace kiln
