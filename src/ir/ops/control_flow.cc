// Shape and type inference for If, Loop and Scan. Output types come from the bodies' declared
// outputs; shapes are merged across branches (If) or iterations (Loop: dims that may change
// between iterations become unknown).
#include "ir/infer_util.h"
#include "ir/op_schema.h"

namespace kiln {
namespace {

TypeInfo BodyOutput(const Graph& body, size_t i) {
  if (i >= body.outputs().size()) return {};
  return body.value(body.outputs()[i]).info;
}

// The shape both may have: equal static dims stay, others become unknown.
std::optional<DimVector> MergeShapes(const std::optional<DimVector>& a,
                                     const std::optional<DimVector>& b) {
  if (!a || !b || a->size() != b->size()) return std::nullopt;
  DimVector out(a->size());
  for (size_t i = 0; i < a->size(); ++i) out[i] = (*a)[i] == (*b)[i] ? (*a)[i] : Dim();
  return out;
}

Status InferIf(InferContext& ctx) {
  const Graph* then_g = ctx.attrs().GetGraph("then_branch");
  const Graph* else_g = ctx.attrs().GetGraph("else_branch");
  if (then_g == nullptr || else_g == nullptr) {
    return ctx.Error("needs graph attributes then_branch and else_branch");
  }
  if (then_g->outputs().size() != ctx.num_outputs() || else_g->outputs().size() != ctx.num_outputs()) {
    return ctx.Error("then_branch has " + std::to_string(then_g->outputs().size()) +
                     " outputs and else_branch " + std::to_string(else_g->outputs().size()) +
                     ", the node has " + std::to_string(ctx.num_outputs()));
  }
  const Tensor* cond = ctx.input_value(0);
  for (size_t i = 0; i < ctx.num_outputs(); ++i) {
    TypeInfo t = BodyOutput(*then_g, i), e = BodyOutput(*else_g, i);
    if (cond != nullptr && cond->size() == 1) {
      ctx.set_output(i, cond->GetAsInt64(0) ? t : e);
      continue;
    }
    if (t.type != ElementType::kUndefined && e.type != ElementType::kUndefined && t.type != e.type) {
      return ctx.Error("output " + std::to_string(i) + " is " + ElementTypeName(t.type) +
                       " in then_branch but " + ElementTypeName(e.type) + " in else_branch");
    }
    ctx.set_output(i, t.type != ElementType::kUndefined ? t.type : e.type, MergeShapes(t.shape, e.shape));
  }
  return Status::Ok();
}

Status InferLoop(InferContext& ctx) {
  const Graph* body = ctx.attrs().GetGraph("body");
  if (body == nullptr) return ctx.Error("needs a graph attribute 'body'");
  const size_t carried = ctx.num_inputs() >= 2 ? ctx.num_inputs() - 2 : 0;
  if (body->inputs().size() != carried + 2) {
    return ctx.Error("body takes " + std::to_string(body->inputs().size()) + " inputs, expected " +
                     std::to_string(carried + 2) + " (iteration, condition, loop-carried values)");
  }
  if (body->outputs().size() < carried + 1) {
    return ctx.Error("body has " + std::to_string(body->outputs().size()) +
                     " outputs, expected at least " + std::to_string(carried + 1));
  }
  for (size_t i = 0; i < ctx.num_outputs(); ++i) {
    TypeInfo b = BodyOutput(*body, i + 1);
    if (i < carried) {
      TypeInfo in = ctx.input(i + 2);
      ctx.set_output(i, in.type != ElementType::kUndefined ? in.type : b.type, MergeShapes(in.shape, b.shape));
    } else {
      std::optional<DimVector> s;
      if (b.shape) {
        s = DimVector{Dim()};
        s->insert(s->end(), b.shape->begin(), b.shape->end());
      }
      ctx.set_output(i, b.type, s);
    }
  }
  return Status::Ok();
}

Status InferScan(InferContext& ctx) {
  const Graph* body = ctx.attrs().GetGraph("body");
  if (body == nullptr) return ctx.Error("needs a graph attribute 'body'");
  const int64_t m = ctx.attrs().GetInt("num_scan_inputs", -1);
  const size_t first = ctx.opset() < 9 ? 1 : 0;  // opset 8: sequence_lens comes first
  if (m < 1 || static_cast<size_t>(m) + first > ctx.num_inputs()) {
    return ctx.Error("num_scan_inputs must be between 1 and the number of inputs");
  }
  const size_t n = ctx.num_inputs() - first - static_cast<size_t>(m);
  for (size_t i = 0; i < ctx.num_outputs(); ++i) {
    TypeInfo b = BodyOutput(*body, i);
    if (i < n) {
      ctx.set_output(i, ctx.input(first + i));
      continue;
    }
    std::optional<DimVector> s;
    if (b.shape && ctx.opset() >= 9) {
      auto axes = ctx.attrs().GetInts("scan_output_axes");
      int64_t axis = i - n < axes.size() ? axes[i - n] : 0;
      const int r = static_cast<int>(b.shape->size()) + 1;
      if (axis < 0) axis += r;
      if (axis < 0 || axis >= r) return ctx.Error("scan_output_axes out of range");
      s = *b.shape;
      s->insert(s->begin() + axis, Dim());
    }
    ctx.set_output(i, b.type, s);
  }
  return Status::Ok();
}

constexpr OpSchema kSchemas[] = {
    {"If", "", InferIf},
    {"Loop", "", InferLoop},
    {"Scan", "", InferScan},
};

}  // namespace

std::span<const OpSchema> ControlFlowSchemas() { return kSchemas; }

}  // namespace kiln
