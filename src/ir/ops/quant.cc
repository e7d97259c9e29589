// Shape and type inference for the quantization op family: QuantizeLinear, DequantizeLinear,
// DynamicQuantizeLinear, MatMulInteger, QLinearMatMul, ConvInteger, QLinearConv.
#include <algorithm>
#include <string>
#include <vector>

#include "ir/infer_util.h"
#include "ir/op_schema.h"

namespace kiln {

namespace {

bool Is8Bit(ElementType t) { return t == ElementType::kU8 || t == ElementType::kI8; }

Status InferQuantize(InferContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1)) return ctx.Error("expected inputs x and y_scale");
  KILN_ASSIGN_OR_RETURN(const ElementType t,
                        QuantizeOutputType(ctx.node(), ctx.has_input(2) ? ctx.input_type(2)
                                                                        : ElementType::kUndefined));
  ctx.set_output(0, t, ctx.input(0).shape);
  return Status::Ok();
}

Status InferDequantize(InferContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1)) return ctx.Error("expected inputs x and x_scale");
  if (!IsFloating(ctx.input_type(1))) return ctx.Error("x_scale must be a float tensor");
  const ElementType xt = ctx.input_type(0);
  const bool wide = ctx.opset() >= 21 && (xt == ElementType::kU16 || xt == ElementType::kI16);
  if (xt != ElementType::kUndefined && !Is8Bit(xt) && xt != ElementType::kI32 && !wide) {
    return ctx.Error(std::string("x must be uint8, int8 or int32") +
                     (ctx.opset() >= 21 ? ", uint16 or int16" : " (16-bit from opset 21)") +
                     ", found " + ElementTypeName(xt));
  }
  ctx.set_output(0, ctx.input_type(1), ctx.input(0).shape);
  return Status::Ok();
}

Status InferDynamicQuantize(InferContext& ctx) {
  if (!ctx.has_input(0) || !IsFloating(ctx.input_type(0)))
    return ctx.Error("x must be a float tensor");
  ctx.set_output(0, ElementType::kU8, ctx.input(0).shape);
  ctx.set_output(1, ElementType::kF32, DimVector{});
  ctx.set_output(2, ElementType::kU8, DimVector{});
  return Status::Ok();
}

// Numpy matmul shape of inputs a and b.
Result<std::optional<DimVector>> MatMulDims(const InferContext& ctx, size_t ia, size_t ib) {
  const auto& as = ctx.input(ia).shape;
  const auto& bs = ctx.input(ib).shape;
  if (!as || !bs) return std::optional<DimVector>();
  if (as->empty() || bs->empty()) return ctx.Error("matmul operands must have rank >= 1");
  DimVector a = *as;
  DimVector b = *bs;
  if (a.size() == 1) a.insert(a.begin(), Dim(1));
  if (b.size() == 1) b.push_back(Dim(1));
  const Dim& k1 = a.back();
  const Dim& k2 = b[b.size() - 2];
  if (k1.is_static() && k2.is_static() && k1.value != k2.value) {
    return ctx.Error("matmul inner dims differ: " + ctx.input(ia).ToString() + " x " +
                     ctx.input(ib).ToString());
  }
  auto batch = BroadcastDims(DimVector(a.begin(), a.end() - 2), DimVector(b.begin(), b.end() - 2));
  if (!batch.ok()) return ctx.Error(batch.status().message());
  DimVector out = std::move(batch).value();
  if (as->size() > 1) out.push_back(a[a.size() - 2]);
  if (bs->size() > 1) out.push_back(b.back());
  return std::optional<DimVector>(std::move(out));
}

Status InferMatMulInteger(InferContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1)) return ctx.Error("expected inputs A and B");
  if (!Is8Bit(ctx.input_type(0)) || !Is8Bit(ctx.input_type(1)))
    return ctx.Error("A and B must be u8 or i8");
  KILN_ASSIGN_OR_RETURN(auto dims, MatMulDims(ctx, 0, 1));
  ctx.set_output(0, ElementType::kI32, std::move(dims));
  return Status::Ok();
}

Status InferQLinearMatMul(InferContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(3)) return ctx.Error("expected inputs a and b");
  if (!Is8Bit(ctx.input_type(0)) || !Is8Bit(ctx.input_type(3)))
    return ctx.Error("a and b must be u8 or i8");
  KILN_ASSIGN_OR_RETURN(auto dims, MatMulDims(ctx, 0, 3));
  ctx.set_output(0, ctx.has_input(7) ? ctx.input_type(7) : ctx.input_type(0), std::move(dims));
  return Status::Ok();
}

// Conv output shape of x (input ix) and w (input iw) under Conv's attributes.
Result<std::optional<DimVector>> ConvDims(const InferContext& ctx, size_t ix, size_t iw) {
  const auto& xs = ctx.input(ix).shape;
  const auto& ws = ctx.input(iw).shape;
  if (!xs) return std::optional<DimVector>();
  if (xs->size() < 3) return ctx.Error("X must have rank >= 3, found " + ctx.input(ix).ToString());
  const size_t nsp = xs->size() - 2;
  if (ws && ws->size() != xs->size()) return ctx.Error("X and W ranks differ");
  std::vector<int64_t> kernel = ctx.attrs().GetInts("kernel_shape");
  if (kernel.empty() && ws) {
    for (size_t i = 2; i < ws->size(); ++i)
      kernel.push_back((*ws)[i].is_static() ? (*ws)[i].value : -1);
  }
  const auto strides = ctx.attrs().GetInts("strides", std::vector<int64_t>(nsp, 1));
  const auto dilations = ctx.attrs().GetInts("dilations", std::vector<int64_t>(nsp, 1));
  const auto pads = ctx.attrs().GetInts("pads", std::vector<int64_t>(2 * nsp, 0));
  if (strides.size() != nsp || dilations.size() != nsp || pads.size() != 2 * nsp) {
    return ctx.Error("strides, dilations or pads have the wrong length for rank " +
                     std::to_string(xs->size()));
  }
  const std::string auto_pad = ctx.attrs().GetString("auto_pad", "NOTSET");
  DimVector out{(*xs)[0], ws ? (*ws)[0] : Dim()};
  for (size_t i = 0; i < nsp; ++i) {
    const Dim& in = (*xs)[i + 2];
    if (strides[i] <= 0 || dilations[i] <= 0)
      return ctx.Error("strides and dilations must be positive");
    if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      out.push_back(in.is_static() ? Dim((in.value + strides[i] - 1) / strides[i]) : Dim());
      continue;
    }
    if (!in.is_static() || kernel.size() != nsp || kernel[i] < 0) {
      out.push_back(Dim());
      continue;
    }
    const int64_t pad = auto_pad == "VALID" ? 0 : pads[i] + pads[i + nsp];
    const int64_t span = in.value + pad - dilations[i] * (kernel[i] - 1) - 1;
    out.push_back(span < 0 ? Dim(0) : Dim(span / strides[i] + 1));
  }
  return std::optional<DimVector>(std::move(out));
}

Status InferConvInteger(InferContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1)) return ctx.Error("expected inputs x and w");
  KILN_ASSIGN_OR_RETURN(auto dims, ConvDims(ctx, 0, 1));
  ctx.set_output(0, ElementType::kI32, std::move(dims));
  return Status::Ok();
}

Status InferQLinearConv(InferContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(3)) return ctx.Error("expected inputs x and w");
  KILN_ASSIGN_OR_RETURN(auto dims, ConvDims(ctx, 0, 3));
  ctx.set_output(0, ctx.has_input(7) ? ctx.input_type(7) : ctx.input_type(0), std::move(dims));
  return Status::Ok();
}

constexpr OpSchema kSchemas[] = {
    {"QuantizeLinear", "", InferQuantize},
    {"DequantizeLinear", "", InferDequantize},
    {"DynamicQuantizeLinear", "", InferDynamicQuantize},
    {"MatMulInteger", "", InferMatMulInteger},
    {"QLinearMatMul", "", InferQLinearMatMul},
    {"ConvInteger", "", InferConvInteger},
    {"QLinearConv", "", InferQLinearConv},
};

}  // namespace

std::span<const OpSchema> QuantSchemas() { return kSchemas; }

}  // namespace kiln
