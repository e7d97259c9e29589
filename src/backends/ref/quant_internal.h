// Private helpers of the reference quantization kernels (quant.cc, quant_gemm.cc).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "backends/ref/kernel.h"

namespace kiln::quant_ref {

// Rounds half to even (the current rounding mode is round-to-nearest-even).
inline float RoundHalfEven(float v) { return std::nearbyint(v); }

// Clamps v to the range of an 8-bit type given by its signedness.
inline int32_t Saturate8(float v, bool is_signed) {
  const float lo = is_signed ? -128.0f : 0.0f;
  const float hi = is_signed ? 127.0f : 255.0f;
  if (std::isnan(v)) return 0;
  return static_cast<int32_t>(std::max(lo, std::min(hi, v)));
}

// Reads a scale or zero-point operand as per-tensor (1 element) or per-index along one axis of
// length `axis_len` (1-D, that many elements). `what` names it in errors.
Result<std::vector<double>> ReadQuantOperand(const KernelContext& ctx, const Tensor* t,
                                             int64_t axis_len, const char* what);

// quant_gemm.cc
Status MatMulInteger(KernelContext& ctx);
Status QLinearMatMul(KernelContext& ctx);
Status ConvInteger(KernelContext& ctx);
Status QLinearConv(KernelContext& ctx);

}  // namespace kiln::quant_ref
