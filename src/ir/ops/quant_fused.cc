// Shape and type inference for Kiln's fused int8 ops (domain "ai.kiln"; kernels and math in
// src/backends/ref/quant_fused.cc): QGemm, QAdd, QMul, QAveragePool, QGlobalAveragePool, QLut.
// The output element type is the y_zero_point's (QLut: the table's; QGemm without y_scale: f32).
#include <string>
#include <vector>

#include "ir/infer_util.h"
#include "ir/op_schema.h"

namespace kiln {
namespace {

bool Is8Bit(ElementType t) { return t == ElementType::kU8 || t == ElementType::kI8; }

// Operand inputs must be u8/i8 (or not yet known); the output type is input `zi`'s.
Result<ElementType> Check(const InferContext& ctx, std::initializer_list<size_t> operands,
                          size_t zi) {
  for (size_t i : operands) {
    if (!ctx.has_input(i)) return ctx.Error("input " + std::to_string(i) + " is required");
    const ElementType t = ctx.input_type(i);
    if (t != ElementType::kUndefined && !Is8Bit(t)) {
      return ctx.Error("input " + std::to_string(i) + " must be u8 or i8, found " +
                       ElementTypeName(t));
    }
  }
  const ElementType out = ctx.has_input(zi) ? ctx.input_type(zi) : ElementType::kU8;
  if (out != ElementType::kUndefined && !Is8Bit(out)) {
    return ctx.Error(std::string("y_zero_point must be u8 or i8, found ") + ElementTypeName(out));
  }
  return out;
}

Status InferQGemm(InferContext& ctx) {
  KILN_ASSIGN_OR_RETURN(ElementType out, Check(ctx, {0, 3}, 8));
  if (!ctx.has_input(7)) {  // no y_scale: a float output (the last layer of a QDQ model)
    if (ctx.has_input(8)) return ctx.Error("y_zero_point without y_scale");
    out = ElementType::kF32;
  }
  const auto& as = ctx.input(0).shape;
  const auto& bs = ctx.input(3).shape;
  if ((as && as->size() != 2) || (bs && bs->size() != 2)) {
    return ctx.Error("A and B must be 2-D, found " + ctx.input(0).ToString() + " and " +
                     ctx.input(3).ToString());
  }
  const bool ta = ctx.attrs().GetInt("transA", 0) != 0;
  const bool tb = ctx.attrs().GetInt("transB", 0) != 0;
  const Dim m = as ? (*as)[ta ? 1 : 0] : Dim();
  const Dim n = bs ? (*bs)[tb ? 0 : 1] : Dim();
  if (as && bs) {
    const Dim& k1 = (*as)[ta ? 0 : 1];
    const Dim& k2 = (*bs)[tb ? 1 : 0];
    if (k1.is_static() && k2.is_static() && k1.value != k2.value) {
      return ctx.Error("inner dims differ: " + ctx.input(0).ToString() + " x " +
                       ctx.input(3).ToString());
    }
  }
  ctx.set_output(0, out, DimVector{m, n});
  return Status::Ok();
}

Status InferQBinary(InferContext& ctx) {
  KILN_ASSIGN_OR_RETURN(ElementType out, Check(ctx, {0, 3}, 7));
  const auto& as = ctx.input(0).shape;
  const auto& bs = ctx.input(3).shape;
  if (!as || !bs) {
    ctx.set_output(0, out, std::nullopt);
    return Status::Ok();
  }
  auto dims = BroadcastDims(*as, *bs);
  if (!dims.ok()) return ctx.Error(dims.status().message());
  ctx.set_output(0, out, std::move(dims).value());
  return Status::Ok();
}

// The float pool's inference on the same attributes gives the shape; the type is y_zp's.
Status InferQPoolAs(InferContext& ctx, const char* float_op) {
  KILN_ASSIGN_OR_RETURN(ElementType out, Check(ctx, {0}, 4));
  const OpSchema* s = FindOpSchema("", float_op);
  if (s == nullptr) return Internal(std::string("no schema for ") + float_op);
  KILN_RETURN_IF_ERROR(s->infer(ctx));
  TypeInfo t = ctx.outputs()[0];
  t.type = out;
  ctx.set_output(0, std::move(t));
  return Status::Ok();
}

Status InferQAveragePool(InferContext& ctx) { return InferQPoolAs(ctx, "AveragePool"); }
Status InferQGlobalAveragePool(InferContext& ctx) {
  return InferQPoolAs(ctx, "GlobalAveragePool");
}

Status InferQLut(InferContext& ctx) {
  KILN_ASSIGN_OR_RETURN(ElementType out, Check(ctx, {0, 1}, 1));
  ctx.set_output(0, out, ctx.input(0).shape);
  return Status::Ok();
}

constexpr OpSchema kSchemas[] = {
    {"QGemm", "ai.kiln", InferQGemm, 1},
    {"QAdd", "ai.kiln", InferQBinary, 1},
    {"QMul", "ai.kiln", InferQBinary, 1},
    {"QAveragePool", "ai.kiln", InferQAveragePool, 1},
    {"QGlobalAveragePool", "ai.kiln", InferQGlobalAveragePool, 1},
    {"QLut", "ai.kiln", InferQLut, 1},
};

}  // namespace

std::span<const OpSchema> QuantFusedSchemas() { return kSchemas; }

}  // namespace kiln
