// Shape and type inference for the reduce op family: ReduceSum/Mean/Max/Min/Prod/L1/L2/LogSum/
// LogSumExp/SumSquare.
//
// Axes come from the `axes` attribute, except for ReduceSum from opset 13 and every reduce from
// opset 18, where they are an optional second input (then `noop_with_empty_axes` decides whether
// an empty axes list means "reduce everything" or "identity").
#include <algorithm>
#include <string>
#include <vector>

#include "ir/infer_util.h"
#include "ir/op_schema.h"

namespace kiln {

namespace {

bool AxesFromInput(const InferContext& ctx) {
  return ctx.opset() >= 18 || (ctx.node().op_type == "ReduceSum" && ctx.opset() >= 13);
}

Status InferReduce(InferContext& ctx) {
  if (!ctx.has_input(0)) return ctx.Error("missing input 0 (data)");
  const TypeInfo& in = ctx.input(0);
  // ReduceMax-20 / ReduceMin-20 also take bool (any / all).
  const bool bool_ok =
      ctx.opset() >= 20 && (ctx.node().op_type == "ReduceMax" || ctx.node().op_type == "ReduceMin");
  if (!IsFloating(in.type) && !IsInteger(in.type) && !(bool_ok && in.type == ElementType::kBool)) {
    return ctx.Error(std::string("expected a numeric input") + (bool_ok ? " or bool" : "") +
                     ", found " + ElementTypeName(in.type));
  }
  const bool keepdims = ctx.attrs().GetInt("keepdims", 1) != 0;
  const bool noop = ctx.attrs().GetInt("noop_with_empty_axes", 0) != 0;
  std::vector<int64_t> axes;
  bool axes_known = true;
  if (AxesFromInput(ctx)) {
    if (ctx.has_input(1)) {
      if (const Tensor* t = ctx.input_value(1)) {
        axes = t->ToInt64Vector();
      } else {
        axes_known = false;
        // An axes input of static length 0 is as good as known.
        const auto& s = ctx.input(1).shape;
        if (s && s->size() == 1 && (*s)[0].is_static() && (*s)[0].value == 0) axes_known = true;
      }
    }
  } else {
    axes = ctx.attrs().GetInts("axes");
  }
  if (!in.shape) {
    ctx.set_output(0, in.type, std::nullopt);
    return Status::Ok();
  }
  const DimVector& dims = *in.shape;
  const int rank = static_cast<int>(dims.size());
  if (!axes_known) {
    if (keepdims) {
      ctx.set_output(0, in.type, DimVector(dims.size(), Dim()));
    } else {
      ctx.set_output(0, in.type, std::nullopt);
    }
    return Status::Ok();
  }
  if (axes.empty() && noop) {
    ctx.set_output(0, in);
    return Status::Ok();
  }
  std::vector<bool> reduced(dims.size(), axes.empty());
  for (int64_t a : axes) {
    KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(a, rank, ctx));
    if (reduced[static_cast<size_t>(ax)] && !axes.empty()) {
      return ctx.Error("axis " + std::to_string(a) + " appears twice in axes");
    }
    reduced[static_cast<size_t>(ax)] = true;
  }
  DimVector out;
  for (size_t i = 0; i < dims.size(); ++i) {
    if (!reduced[i]) {
      out.push_back(dims[i]);
    } else if (keepdims) {
      out.push_back(Dim(1));
    }
  }
  ctx.set_output(0, in.type, std::move(out));
  return Status::Ok();
}

constexpr OpSchema kSchemas[] = {
    {"ReduceSum", "", InferReduce},       {"ReduceMean", "", InferReduce},
    {"ReduceMax", "", InferReduce},       {"ReduceMin", "", InferReduce},
    {"ReduceProd", "", InferReduce},      {"ReduceL1", "", InferReduce},
    {"ReduceL2", "", InferReduce},        {"ReduceLogSum", "", InferReduce},
    {"ReduceLogSumExp", "", InferReduce}, {"ReduceSumSquare", "", InferReduce},
};

}  // namespace

std::span<const OpSchema> ReduceSchemas() { return kSchemas; }

}  // namespace kiln
