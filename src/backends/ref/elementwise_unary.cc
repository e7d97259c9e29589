// Unary elementwise reference kernels: math (Abs ... Erf) and activations (Relu ... Shrink).
//
// Each kernel maps x -> f(x) elementwise with the same element type in and out. Floats compute
// in Compute<T> (float for f16/bf16/f32, double for f64) and round on store; integer inputs, where
// the spec allows them, compute in their own type, or in double for transcendental math (Erf).
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

#include "backends/ref/elementwise_internal.h"

namespace kiln::ew {
namespace {

template <unsigned Set>
bool TypeIn(ElementType t) {
  return Dispatch<Set>(t, [](auto) {});
}

// y = fn(x) over every element; fn takes and returns the compute type (see Compute<T>).
template <unsigned Set, typename Fn>
Status MapUnary(KernelContext& ctx, Fn fn) {
  const Tensor* x = ctx.input(0);
  if (x == nullptr) return ctx.Error("missing input 0");
  if (!TypeIn<Set>(x->type())) return ctx.UnsupportedType(x->type());
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.output(0, x->type(), x->shape()));
  Dispatch<Set>(x->type(), [&](auto tag) {
    using T = decltype(tag);
    using C = Compute<T>;
    UnaryMap(x->data<T>(), y->data<T>(), x->size(), ctx.thread_pool(),
             [&](T v) { return static_cast<T>(fn(static_cast<C>(v))); });
  });
  return Status::Ok();
}

// Float-only unary math: fn is called with float or double.
template <typename Fn>
Status MapFloat(KernelContext& ctx, Fn fn) {
  return MapUnary<kDispatchFloat>(ctx, fn);
}

constexpr unsigned kSignedNumeric = kDispatchFloat | kDispatchSigned;

Status Abs(KernelContext& ctx) {
  return MapUnary<kAllNumeric>(ctx, [](auto v) {
    using C = decltype(v);
    if constexpr (std::is_unsigned_v<C>) {
      return v;
    } else if constexpr (std::is_integral_v<C>) {
      return v < 0 ? WrapSub<C>(0, v) : v;
    } else {
      return std::fabs(v);
    }
  });
}

Status Neg(KernelContext& ctx) {
  return MapUnary<kAllNumeric>(ctx, [](auto v) {
    using C = decltype(v);
    if constexpr (std::is_integral_v<C>) {
      return WrapSub<C>(0, v);
    } else {
      return -v;
    }
  });
}

Status Sign(KernelContext& ctx) {
  // sign(0) = 0 and sign(NaN) = NaN, as numpy.
  return MapUnary<kAllNumeric>(ctx, [](auto v) {
    using C = decltype(v);
    return v > C(0) ? C(1) : (v < C(0) ? static_cast<C>(-1) : v);
  });
}

Status Reciprocal(KernelContext& ctx) {
  return MapFloat(ctx, [](auto v) { return decltype(v)(1) / v; });
}
Status Floor(KernelContext& ctx) {
  return MapFloat(ctx, [](auto v) { return std::floor(v); });
}
Status Ceil(KernelContext& ctx) {
  return MapFloat(ctx, [](auto v) { return std::ceil(v); });
}
Status Round(KernelContext& ctx) {
  // Halves go to the nearest even integer: nearbyint in the default rounding mode.
  return MapFloat(ctx, [](auto v) { return std::nearbyint(v); });
}
Status Sqrt(KernelContext& ctx) {
  return MapFloat(ctx, [](auto v) { return std::sqrt(v); });
}
Status Exp(KernelContext& ctx) {
  return MapFloat(ctx, [](auto v) { return std::exp(v); });
}
Status Log(KernelContext& ctx) {
  return MapFloat(ctx, [](auto v) { return std::log(v); });
}
Status Sin(KernelContext& ctx) {
  return MapFloat(ctx, [](auto v) { return std::sin(v); });
}
Status Cos(KernelContext& ctx) {
  return MapFloat(ctx, [](auto v) { return std::cos(v); });
}
Status Tan(KernelContext& ctx) {
  return MapFloat(ctx, [](auto v) { return std::tan(v); });
}
Status Asin(KernelContext& ctx) {
  return MapFloat(ctx, [](auto v) { return std::asin(v); });
}
Status Acos(KernelContext& ctx) {
  return MapFloat(ctx, [](auto v) { return std::acos(v); });
}
Status Atan(KernelContext& ctx) {
  return MapFloat(ctx, [](auto v) { return std::atan(v); });
}
Status Sinh(KernelContext& ctx) {
  return MapFloat(ctx, [](auto v) { return std::sinh(v); });
}
Status Cosh(KernelContext& ctx) {
  return MapFloat(ctx, [](auto v) { return std::cosh(v); });
}
Status Tanh(KernelContext& ctx) {
  return MapFloat(ctx, [](auto v) { return std::tanh(v); });
}
Status Asinh(KernelContext& ctx) {
  return MapFloat(ctx, [](auto v) { return std::asinh(v); });
}
Status Acosh(KernelContext& ctx) {
  return MapFloat(ctx, [](auto v) { return std::acosh(v); });
}
Status Atanh(KernelContext& ctx) {
  return MapFloat(ctx, [](auto v) { return std::atanh(v); });
}

Status Erf(KernelContext& ctx) {
  // Opset 9+ allows integer inputs: computed in double, truncated back.
  return MapUnary<kAllNumeric>(ctx, [](auto v) {
    using C = decltype(v);
    if constexpr (std::is_integral_v<C>) {
      return static_cast<C>(std::erf(static_cast<double>(v)));
    } else {
      return std::erf(v);
    }
  });
}

Status Relu(KernelContext& ctx) {
  // max(x, 0) with NaN passed through; opset 14 adds signed integers.
  return MapUnary<kSignedNumeric>(ctx, [](auto v) { return v < decltype(v)(0) ? decltype(v)(0) : v; });
}

Status LeakyRelu(KernelContext& ctx) {
  const float alpha = ctx.attrs().GetFloat("alpha", 0.01f);
  return MapUnary<kSignedNumeric>(ctx, [alpha](auto v) {
    using C = decltype(v);
    if constexpr (std::is_integral_v<C>) {
      return v < 0 ? static_cast<C>(static_cast<double>(v) * alpha) : v;
    } else {
      return v < C(0) ? static_cast<C>(alpha) * v : v;
    }
  });
}

Status Elu(KernelContext& ctx) {
  const float alpha = ctx.attrs().GetFloat("alpha", 1.0f);
  return MapFloat(ctx, [alpha](auto v) {
    using C = decltype(v);
    return v < C(0) ? static_cast<C>(alpha) * std::expm1(v) : v;
  });
}

Status Selu(KernelContext& ctx) {
  // Opset 1 documented rounded defaults; opset 6 gave them in full precision.
  const bool old = ctx.opset() < 6;
  const float alpha = ctx.attrs().GetFloat("alpha", old ? 1.6732f : 1.67326319217681884765625f);
  const float gamma = ctx.attrs().GetFloat("gamma", old ? 1.0507f : 1.05070102214813232421875f);
  return MapFloat(ctx, [alpha, gamma](auto v) {
    using C = decltype(v);
    const C a = static_cast<C>(alpha);
    const C g = static_cast<C>(gamma);
    return v > C(0) ? g * v : g * (a * std::exp(v) - a);
  });
}

Status Celu(KernelContext& ctx) {
  const float alpha = ctx.attrs().GetFloat("alpha", 1.0f);
  if (alpha == 0.0f) return ctx.Error("alpha must be non-zero");
  return MapFloat(ctx, [alpha](auto v) {
    using C = decltype(v);
    const C a = static_cast<C>(alpha);
    return v > C(0) ? v : a * std::expm1(v / a);
  });
}

// Bitwise select: a where mask is all ones, b where it is zero.
inline uint32_t SelectBits(uint32_t mask, uint32_t a, uint32_t b) { return (a & mask) | (b & ~mask); }

// Sigmoid in float, written so that GCC vectorizes loops over it at -O2: no float compares or
// conversions under a condition (with -ftrapping-math those block if-conversion), bitwise selects.
// Math: e = e^-|v| via |v| = n ln2 - r (|r| <= ln2/2; n from the 1.5 * 2^23 rounding trick, read
// back from the sum's bits), e^-r by its Taylor series to r^7 (truncation < 1e-8 relative) times
// 2^-n built in the exponent bits; then 1 / (1 + e) for v >= 0 and e / (1 + e) otherwise, which
// never overflows. Accurate to about 2 ulp; |v| > 87.3 (where 2^-n would be denormal) gives exactly
// 0 or 1; NaN passes through.
inline float SigmoidF32(float v) {
  const uint32_t vb = std::bit_cast<uint32_t>(v);
  const uint32_t ab = vb & 0x7fffffffu;
  constexpr uint32_t k87_3 = 0x42ae999au;  // 87.3f
  const uint32_t tiny = 0u - static_cast<uint32_t>(ab > k87_3);
  const float x = std::bit_cast<float>(SelectBits(tiny, k87_3, ab) | 0x80000000u);  // -min(|v|, 87.3)
  constexpr float kShift = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const float t = x * 1.44269504088896341f + kShift;
  const int32_t n_int = std::bit_cast<int32_t>(t) - std::bit_cast<int32_t>(kShift);
  const float n = t - kShift;
  // r = x - n ln2, with ln2 split in a part exact in float and the rest.
  const float r = (x - n * 0.693145751953125f) - n * 1.428606765330187045e-06f;
  float p = 1.0f / 5040;
  p = p * r + 1.0f / 720;
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const float e = p * std::bit_cast<float>(~tiny & (static_cast<uint32_t>(n_int + 127) << 23));
  const uint32_t negative = 0u - (vb >> 31);
  const float num = std::bit_cast<float>(SelectBits(negative, std::bit_cast<uint32_t>(e), 0x3f800000u));
  const float s = num / (1.0f + e);
  const uint32_t nan = 0u - static_cast<uint32_t>(ab > 0x7f800000u);
  return std::bit_cast<float>(SelectBits(nan, vb, std::bit_cast<uint32_t>(s)));
}

Status Sigmoid(KernelContext& ctx) {
  // Float (f32, and f16/bf16 computed in float) uses SigmoidF32; double the same formula with
  // std::exp.
  return MapFloat(ctx, [](auto v) {
    using C = decltype(v);
    if constexpr (std::is_same_v<C, float>) {
      return SigmoidF32(v);
    } else {
      const C e = std::exp(-std::fabs(v));
      return (v >= C(0) ? C(1) : e) / (C(1) + e);
    }
  });
}

Status HardSigmoid(KernelContext& ctx) {
  const float alpha = ctx.attrs().GetFloat("alpha", 0.2f);
  const float beta = ctx.attrs().GetFloat("beta", 0.5f);
  return MapFloat(ctx, [alpha, beta](auto v) {
    using C = decltype(v);
    C r = static_cast<C>(alpha) * v + static_cast<C>(beta);
    r = r < C(0) ? C(0) : r;
    return r > C(1) ? C(1) : r;
  });
}

Status HardSwish(KernelContext& ctx) {
  // x * HardSigmoid(x) with alpha = 1/6, beta = 0.5.
  return MapFloat(ctx, [](auto v) {
    using C = decltype(v);
    C r = static_cast<C>(1.0 / 6.0) * v + C(0.5);
    r = r < C(0) ? C(0) : r;
    r = r > C(1) ? C(1) : r;
    return v * r;
  });
}

Status Softplus(KernelContext& ctx) {
  // log(1 + e^x) = max(x, 0) + log1p(e^-|x|), exact for large |x|.
  return MapFloat(ctx, [](auto v) {
    using C = decltype(v);
    return (v > C(0) ? v : C(0)) + std::log1p(std::exp(-std::fabs(v)));
  });
}

Status Softsign(KernelContext& ctx) {
  return MapFloat(ctx, [](auto v) { return v / (decltype(v)(1) + std::fabs(v)); });
}

Status ThresholdedRelu(KernelContext& ctx) {
  const float alpha = ctx.attrs().GetFloat("alpha", 1.0f);
  return MapFloat(ctx, [alpha](auto v) {
    using C = decltype(v);
    return v > static_cast<C>(alpha) ? v : C(0);
  });
}

Status Shrink(KernelContext& ctx) {
  const float lambd = ctx.attrs().GetFloat("lambd", 0.5f);
  const float bias = ctx.attrs().GetFloat("bias", 0.0f);
  return MapUnary<kAllNumeric>(ctx, [lambd, bias](auto v) {
    using C = decltype(v);
    // Integers compare and shift in double, then truncate back.
    using M = std::conditional_t<std::is_integral_v<C>, double, C>;
    const M x = static_cast<M>(v);
    const M l = static_cast<M>(lambd);
    const M b = static_cast<M>(bias);
    return static_cast<C>(x < -l ? x + b : (x > l ? x - b : M(0)));
  });
}

Status Not(KernelContext& ctx) {
  const Tensor* x = ctx.input(0);
  if (x == nullptr) return ctx.Error("missing input 0");
  if (x->type() != ElementType::kBool) return ctx.UnsupportedType(x->type());
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.output(0, ElementType::kBool, x->shape()));
  UnaryMap(x->data<bool>(), y->data<bool>(), x->size(), ctx.thread_pool(), [](bool v) { return !v; });
  return Status::Ok();
}

// BitwiseNot-18: ~x in the input's own integer type.
Status BitwiseNot(KernelContext& ctx) {
  const Tensor* x = ctx.input(0);
  if (x == nullptr) return ctx.Error("missing input 0");
  if (!IsInteger(x->type())) return ctx.UnsupportedType(x->type());
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.output(0, x->type(), x->shape()));
  Dispatch<kAllInteger>(x->type(), [&](auto tag) {
    using T = decltype(tag);
    UnaryMap(x->data<T>(), y->data<T>(), x->size(), ctx.thread_pool(),
             [](T v) { return static_cast<T>(~v); });
  });
  return Status::Ok();
}

constexpr KernelDef kKernels[] = {
    {"Abs", "", Abs},
    {"Neg", "", Neg},
    {"Sign", "", Sign},
    {"Reciprocal", "", Reciprocal},
    {"Floor", "", Floor},
    {"Ceil", "", Ceil},
    {"Round", "", Round},
    {"Sqrt", "", Sqrt},
    {"Exp", "", Exp},
    {"Log", "", Log},
    {"Sin", "", Sin},
    {"Cos", "", Cos},
    {"Tan", "", Tan},
    {"Asin", "", Asin},
    {"Acos", "", Acos},
    {"Atan", "", Atan},
    {"Sinh", "", Sinh},
    {"Cosh", "", Cosh},
    {"Tanh", "", Tanh},
    {"Asinh", "", Asinh},
    {"Acosh", "", Acosh},
    {"Atanh", "", Atanh},
    {"Erf", "", Erf},
    {"Relu", "", Relu},
    {"LeakyRelu", "", LeakyRelu},
    {"Elu", "", Elu},
    {"Selu", "", Selu},
    {"Celu", "", Celu},
    {"Sigmoid", "", Sigmoid},
    {"HardSigmoid", "", HardSigmoid},
    {"HardSwish", "", HardSwish},
    {"Softplus", "", Softplus},
    {"Softsign", "", Softsign},
    {"ThresholdedRelu", "", ThresholdedRelu},
    {"Shrink", "", Shrink},
    {"Not", "", Not},
    {"BitwiseNot", "", BitwiseNot},
};

}  // namespace

std::span<const KernelDef> UnaryKernels() { return kKernels; }

}  // namespace kiln::ew
