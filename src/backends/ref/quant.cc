// Reference kernels for the quantization op family: QuantizeLinear, DequantizeLinear,
// DynamicQuantizeLinear here; the integer matmul/conv ops in quant_gemm.cc.
//
// Math follows the ONNX definitions in float32 (as ONNX Runtime does, so ties round alike):
//   QuantizeLinear:   y = saturate(round_half_even(x / scale) + zero_point)
//   DequantizeLinear: y = (float)((int32)x - zero_point) * scale
//   DynamicQuantizeLinear (u8): lo = min(0, min x), hi = max(0, max x), scale = (hi - lo) / 255,
//                     zero_point = saturate(round_half_even(-lo / scale)), y quantized as above.
// Scale and zero point are per tensor (one element), from opset 13 per index along `axis`, and
// from opset 21 per block of `block_size` elements along `axis` (blocked quantization); opset 21
// also adds 16-bit types and QuantizeLinear's output_dtype.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "backends/ref/quant_internal.h"
#include "ir/infer_util.h"

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

// Where the scale (and zero point) of each element of x sits: per tensor, per index along
// `axis` (1-D scale, opset 13), or blocked (opset 21: scale of x's rank, dim `axis` of it
// ceil(x_axis / block_size), the other dims equal to x's; element index a along the axis uses
// scale index a / block_size).
struct QuantLayout {
  bool per_tensor = true;
  int64_t inner = 1;       // product of x's dims after the axis
  int64_t axis_len = 1;    // x's dim at the axis
  int64_t block = 0;       // block_size, 0 when not blocked
  int64_t scale_axis = 1;  // the scale's dim at the axis (blocked)

  int64_t ScaleIndex(int64_t i) const {
    if (per_tensor) return 0;
    const int64_t a = (i / inner) % axis_len;
    if (block == 0) return a;
    const int64_t outer = i / (inner * axis_len);
    return (outer * scale_axis + a / block) * inner + i % inner;
  }
};

Result<QuantLayout> ResolveLayout(const KernelContext& ctx, const Tensor& x, const Tensor& scale,
                                  const Tensor* zp, const char* scale_name) {
  QuantLayout l;
  const int64_t block = ctx.opset() >= 21 ? ctx.attrs().GetInt("block_size", 0) : 0;
  if (zp != nullptr && zp->shape() != scale.shape()) {
    return ctx.Error(std::string("zero point ") + zp->Describe() + " and " + scale_name + " " +
                     scale.Describe() + " must have the same shape");
  }
  if (block < 0) return ctx.Error("block_size must be >= 0, found " + std::to_string(block));
  if (block == 0 && scale.size() == 1 && scale.rank() <= 1) return l;  // per tensor
  if (ctx.opset() < 13) {
    return ctx.Error(std::string("per-axis scales need opset 13, found ") + scale_name + " " +
                     scale.Describe());
  }
  const int64_t axis_attr = ctx.attrs().GetInt("axis", 1);
  const int rank = x.rank();
  if (axis_attr < -rank || axis_attr >= rank) {
    return ctx.Error("axis " + std::to_string(axis_attr) + " is out of range for rank " +
                     std::to_string(rank));
  }
  const int axis = static_cast<int>(axis_attr < 0 ? axis_attr + rank : axis_attr);
  l.per_tensor = false;
  l.axis_len = x.dim(axis);
  for (int i = axis + 1; i < rank; ++i) l.inner *= x.dim(i);
  if (block == 0) {
    if (scale.rank() != 1 || scale.dim(0) != l.axis_len) {
      return ctx.Error(std::string(scale_name) + " must have 1 element or shape [" +
                       std::to_string(l.axis_len) + "], found " + scale.Describe());
    }
    return l;
  }
  // Blocked.
  l.block = block;
  l.scale_axis = (l.axis_len + block - 1) / block;
  Shape want = x.shape();
  want[axis] = l.scale_axis;
  if (scale.shape() != want) {
    return ctx.Error(std::string(scale_name) + " must have shape " + ShapeToString(want) +
                     " for block_size " + std::to_string(block) + " along axis " +
                     std::to_string(axis) + " of x " + x.Describe() + ", found " +
                     scale.Describe());
  }
  return l;
}

std::vector<double> AllValues(const Tensor* t) {
  std::vector<double> v;
  if (t == nullptr) return v;
  v.resize(static_cast<size_t>(t->size()));
  for (int64_t i = 0; i < t->size(); ++i) v[static_cast<size_t>(i)] = t->GetAsDouble(i);
  return v;
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
  KILN_ASSIGN_OR_RETURN(
      const ElementType out_type,
      QuantizeOutputType(ctx.node(), zp != nullptr ? zp->type() : ElementType::kUndefined));
  KILN_ASSIGN_OR_RETURN(QuantLayout l, ResolveLayout(ctx, *x, *scale, zp, "y_scale"));
  const std::vector<double> scales = AllValues(scale), zps = AllValues(zp);
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.output(0, out_type, x->shape()));
  Dispatch<kDispatchSigned | kDispatchUnsigned>(out_type, [&](auto tag) {
    using T = decltype(tag);
    // Saturation bounds of the output type (8 or 16 bits: exact in float).
    const float lo = static_cast<float>(std::numeric_limits<T>::lowest());
    const float hi = static_cast<float>(std::numeric_limits<T>::max());
    T* yd = y->data<T>();
    for (int64_t i = 0; i < x->size(); ++i) {
      const size_t k = static_cast<size_t>(l.ScaleIndex(i));
      const float s = static_cast<float>(scales[k]);
      const float z = zps.empty() ? 0.0f : static_cast<float>(zps[k]);
      const float q = RoundHalfEven(static_cast<float>(x->GetAsDouble(i)) / s) + z;
      yd[i] = std::isnan(q) ? T(0) : static_cast<T>(std::max(lo, std::min(hi, q)));
    }
  });
  return Status::Ok();
}

Status DequantizeLinear(KernelContext& ctx) {
  const Tensor* x = ctx.input(0);
  const Tensor* scale = ctx.input(1);
  const Tensor* zp = ctx.input(2);
  if (x == nullptr || scale == nullptr) return ctx.Error("expected inputs x and x_scale");
  const ElementType xt = x->type();
  const bool wide = ctx.opset() >= 21 && (xt == ElementType::kU16 || xt == ElementType::kI16);
  if (xt != ElementType::kU8 && xt != ElementType::kI8 && xt != ElementType::kI32 && !wide) {
    return ctx.UnsupportedType(xt);
  }
  if (!IsFloating(scale->type()))
    return ctx.Error("x_scale must be a float tensor, found " + scale->Describe());
  if (zp != nullptr && zp->type() != xt) {
    return ctx.Error("x_zero_point must have the type of x, found " + zp->Describe());
  }
  KILN_ASSIGN_OR_RETURN(QuantLayout l, ResolveLayout(ctx, *x, *scale, zp, "x_scale"));
  const std::vector<double> scales = AllValues(scale), zps = AllValues(zp);
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.output(0, scale->type(), x->shape()));
  Dispatch<kDispatchFloat>(scale->type(), [&](auto tag) {
    using T = decltype(tag);
    T* yd = y->data<T>();
    for (int64_t i = 0; i < x->size(); ++i) {
      const size_t k = static_cast<size_t>(l.ScaleIndex(i));
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
