// Reference kernels for the quantization op family: QuantizeLinear, DequantizeLinear,
// DynamicQuantizeLinear here; the integer matmul/conv ops in quant_gemm.cc.
//
// Math follows the ONNX definitions in float32 (as ONNX Runtime does, so ties round alike):
//   QuantizeLinear:   y = saturate(round_half_even(x / scale) + zero_point)
//   DequantizeLinear: y = (float)((int32)x - zero_point) * scale
//   DynamicQuantizeLinear (u8): lo = min(0, min x), hi = max(0, max x), scale = (hi - lo) / 255,
//                     zero_point = saturate(round_half_even(-lo / scale)), y quantized as above.
// Scale and zero point are per tensor (one element) or, from opset 13, per index along `axis`.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "backends/ref/quant_internal.h"

namespace kiln {

namespace quant_ref {

Result<std::vector<double>> ReadQuantOperand(const KernelContext& ctx, const Tensor* t,
                                             int64_t axis_len, const char* what) {
  std::vector<double> v;
  if (t == nullptr) return v;
  if (t->size() == 1 && t->rank() <= 1) {
    v.push_back(t->GetAsDouble(0));
    return v;
  }
  if (t->rank() != 1 || t->dim(0) != axis_len) {
    return ctx.Error(std::string(what) + " must have 1 element or shape [" +
                     std::to_string(axis_len) + "], found " + t->Describe());
  }
  for (int64_t i = 0; i < t->size(); ++i) v.push_back(t->GetAsDouble(i));
  return v;
}

}  // namespace quant_ref

namespace {

using namespace quant_ref;  // NOLINT

// Resolves the quantization axis of x and the inner stride: element i sits at index
// (i / inner) % axis_len along the axis.
struct AxisInfo {
  int64_t axis_len = 1;
  int64_t inner = 1;
};

Result<AxisInfo> ResolveAxis(const KernelContext& ctx, const Tensor& x, const Tensor& scale) {
  AxisInfo info;
  if (scale.size() == 1 && scale.rank() <= 1) return info;  // per tensor
  if (ctx.opset() < 13) {
    return ctx.Error("per-axis scales need opset 13, found scale " + scale.Describe());
  }
  const int64_t axis_attr = ctx.attrs().GetInt("axis", 1);
  const int rank = x.rank();
  if (axis_attr < -rank || axis_attr >= rank) {
    return ctx.Error("axis " + std::to_string(axis_attr) + " is out of range for rank " +
                     std::to_string(rank));
  }
  const int axis = static_cast<int>(axis_attr < 0 ? axis_attr + rank : axis_attr);
  info.axis_len = x.dim(axis);
  for (int i = axis + 1; i < rank; ++i) info.inner *= x.dim(i);
  return info;
}

Status QuantizeLinear(KernelContext& ctx) {
  const Tensor* x = ctx.input(0);
  const Tensor* scale = ctx.input(1);
  const Tensor* zp = ctx.input(2);
  if (x == nullptr || scale == nullptr) return ctx.Error("expected inputs x and y_scale");
  if (!IsFloating(x->type()) && x->type() != ElementType::kI32)
    return ctx.UnsupportedType(x->type());
  if (!IsFloating(scale->type()))
    return ctx.Error("y_scale must be a float tensor, found " + scale->Describe());
  const ElementType out_type = zp != nullptr ? zp->type() : ElementType::kU8;
  if (out_type != ElementType::kU8 && out_type != ElementType::kI8)
    return ctx.UnsupportedType(out_type);
  KILN_ASSIGN_OR_RETURN(AxisInfo ax, ResolveAxis(ctx, *x, *scale));
  KILN_ASSIGN_OR_RETURN(auto scales, ReadQuantOperand(ctx, scale, ax.axis_len, "y_scale"));
  KILN_ASSIGN_OR_RETURN(auto zps, ReadQuantOperand(ctx, zp, ax.axis_len, "y_zero_point"));
  if (zp != nullptr && zps.size() != scales.size())
    return ctx.Error("y_scale and y_zero_point sizes differ");
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.output(0, out_type, x->shape()));
  const bool is_signed = out_type == ElementType::kI8;
  for (int64_t i = 0; i < x->size(); ++i) {
    const size_t k = scales.size() == 1 ? 0 : static_cast<size_t>((i / ax.inner) % ax.axis_len);
    const float s = static_cast<float>(scales[k]);
    const float z = zps.empty() ? 0.0f : static_cast<float>(zps[k]);
    const float q = RoundHalfEven(static_cast<float>(x->GetAsDouble(i)) / s) + z;
    const int32_t v = Saturate8(q, is_signed);
    if (is_signed) {
      y->data<int8_t>()[i] = static_cast<int8_t>(v);
    } else {
      y->data<uint8_t>()[i] = static_cast<uint8_t>(v);
    }
  }
  return Status::Ok();
}

Status DequantizeLinear(KernelContext& ctx) {
  const Tensor* x = ctx.input(0);
  const Tensor* scale = ctx.input(1);
  const Tensor* zp = ctx.input(2);
  if (x == nullptr || scale == nullptr) return ctx.Error("expected inputs x and x_scale");
  if (x->type() != ElementType::kU8 && x->type() != ElementType::kI8 &&
      x->type() != ElementType::kI32) {
    return ctx.UnsupportedType(x->type());
  }
  if (!IsFloating(scale->type()))
    return ctx.Error("x_scale must be a float tensor, found " + scale->Describe());
  if (zp != nullptr && zp->type() != x->type()) {
    return ctx.Error("x_zero_point must have the type of x, found " + zp->Describe());
  }
  KILN_ASSIGN_OR_RETURN(AxisInfo ax, ResolveAxis(ctx, *x, *scale));
  KILN_ASSIGN_OR_RETURN(auto scales, ReadQuantOperand(ctx, scale, ax.axis_len, "x_scale"));
  KILN_ASSIGN_OR_RETURN(auto zps, ReadQuantOperand(ctx, zp, ax.axis_len, "x_zero_point"));
  if (zp != nullptr && zps.size() != scales.size())
    return ctx.Error("x_scale and x_zero_point sizes differ");
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.output(0, scale->type(), x->shape()));
  Dispatch<kDispatchFloat>(scale->type(), [&](auto tag) {
    using T = decltype(tag);
    T* yd = y->data<T>();
    for (int64_t i = 0; i < x->size(); ++i) {
      const size_t k = scales.size() == 1 ? 0 : static_cast<size_t>((i / ax.inner) % ax.axis_len);
      const int64_t q = x->GetAsInt64(i) - (zps.empty() ? 0 : static_cast<int64_t>(zps[k]));
      const float v = static_cast<float>(q) * static_cast<float>(scales[k]);
      yd[i] = static_cast<T>(v);
    }
  });
  return Status::Ok();
}

Status DynamicQuantizeLinear(KernelContext& ctx) {
  const Tensor* x = ctx.input(0);
  if (x == nullptr) return ctx.Error("missing input x");
  if (!IsFloating(x->type())) return ctx.UnsupportedType(x->type());
  float lo = 0;
  float hi = 0;
  for (int64_t i = 0; i < x->size(); ++i) {
    const float v = static_cast<float>(x->GetAsDouble(i));
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  const float scale = (hi - lo) / 255.0f;
  const int32_t zero_point = scale == 0 ? 0 : Saturate8(RoundHalfEven((0.0f - lo) / scale), false);
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.output(0, ElementType::kU8, x->shape()));
  for (int64_t i = 0; i < x->size(); ++i) {
    const float v = static_cast<float>(x->GetAsDouble(i));
    const int32_t q =
        scale == 0 ? 0
                   : Saturate8(RoundHalfEven(v / scale) + static_cast<float>(zero_point), false);
    y->data<uint8_t>()[i] = static_cast<uint8_t>(q);
  }
  if (ctx.num_outputs() > 1) {
    KILN_ASSIGN_OR_RETURN(Tensor * s, ctx.output(1, ElementType::kF32, {}));
    s->data<float>()[0] = scale;
  }
  if (ctx.num_outputs() > 2) {
    KILN_ASSIGN_OR_RETURN(Tensor * z, ctx.output(2, ElementType::kU8, {}));
    z->data<uint8_t>()[0] = static_cast<uint8_t>(zero_point);
  }
  return Status::Ok();
}

constexpr KernelDef kKernels[] = {
    {"QuantizeLinear", "", QuantizeLinear},
    {"DequantizeLinear", "", DequantizeLinear},
    {"DynamicQuantizeLinear", "", DynamicQuantizeLinear},
    {"MatMulInteger", "", MatMulInteger},
    {"QLinearMatMul", "", QLinearMatMul},
    {"ConvInteger", "", ConvInteger},
    {"QLinearConv", "", QLinearConv},
};

}  // namespace

std::span<const KernelDef> QuantKernels() { return kKernels; }

}  // namespace kiln
