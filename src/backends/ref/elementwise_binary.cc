// Binary and variadic elementwise reference kernels with numpy broadcasting: arithmetic (Add, Sub,
// Mul, Div, Pow, Mod, BitShift, BitwiseAnd/Or/Xor), variadic (Max, Min, Sum, Mean), comparisons,
// logic, Where, PRelu.
//
// Floats compute in Compute<T> (f16/bf16 in float, rounded on store); integers compute in their
// own type with wrap-around. Integer division or modulo by zero is an error, detected before any
// output is written.
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "backends/ref/elementwise_internal.h"

namespace kiln::ew {
namespace {

template <unsigned Set>
bool TypeIn(ElementType t) {
  return Dispatch<Set>(t, [](auto) {});
}

// Two inputs, their (legacy-aligned) shapes, the output shape and the walk.
struct BinaryArgs {
  const Tensor* a = nullptr;
  const Tensor* b = nullptr;
  Shape out_shape;
  BroadcastPlan plan;
};

Result<BinaryArgs> PrepareBinary(KernelContext& ctx, bool same_type) {
  BinaryArgs r;
  r.a = ctx.input(0);
  r.b = ctx.input(1);
  if (r.a == nullptr || r.b == nullptr) return ctx.Error("expected 2 inputs");
  if (same_type && r.a->type() != r.b->type()) {
    return ctx.Error(std::string("inputs must have the same element type, found ") +
                     ElementTypeName(r.a->type()) + " and " + ElementTypeName(r.b->type()));
  }
  KILN_ASSIGN_OR_RETURN(Shape b_shape, AlignLegacyBroadcast(ctx, r.a->shape(), r.b->shape()));
  auto out = BroadcastShapes({&r.a->shape(), &b_shape});
  if (!out.ok()) return ctx.Error(out.status().message());
  r.out_shape = std::move(out).value();
  KILN_ASSIGN_OR_RETURN(r.plan, BroadcastPlan::Make(r.out_shape, {&r.a->shape(), &b_shape}));
  return r;
}

// out = op(a, b) in the input type; op takes and returns Compute<T>.
template <unsigned Set, typename Op>
Status Arith(KernelContext& ctx, const BinaryArgs& args, Op op) {
  const ElementType t = args.a->type();
  if (!TypeIn<Set>(t)) return ctx.UnsupportedType(t);
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.output(0, t, args.out_shape));
  Dispatch<Set>(t, [&](auto tag) {
    using T = decltype(tag);
    using C = Compute<T>;
    if constexpr (std::is_same_v<T, C>) {
      BinaryBroadcast(args.plan, args.a->data<T>(), args.b->data<T>(), out->data<T>(),
                      ctx.thread_pool(), op);
    } else {
      BinaryBroadcast(args.plan, args.a->data<T>(), args.b->data<T>(), out->data<T>(),
                      ctx.thread_pool(),
                      [&](T x, T y) { return static_cast<T>(op(static_cast<C>(x), static_cast<C>(y))); });
    }
  });
  return Status::Ok();
}

template <unsigned Set, typename Op>
Status ArithKernel(KernelContext& ctx, Op op) {
  KILN_ASSIGN_OR_RETURN(BinaryArgs args, PrepareBinary(ctx, true));
  return Arith<Set>(ctx, args, op);
}

// Error when an integer divisor tensor holds a zero.
Status CheckNoIntegerZero(const KernelContext& ctx, const Tensor& b) {
  bool zero = false;
  Dispatch<kAllInteger>(b.type(), [&](auto tag) {
    using T = decltype(tag);
    const T* p = b.data<T>();
    for (int64_t i = 0; i < b.size() && !zero; ++i) zero = (p[i] == 0);
  });
  if (zero) return ctx.Error("integer division by zero");
  return Status::Ok();
}

Status Add(KernelContext& ctx) {
  return ArithKernel<kAllNumeric>(ctx, [](auto x, auto y) {
    if constexpr (std::is_integral_v<decltype(x)>) {
      return WrapAdd(x, y);
    } else {
      return x + y;
    }
  });
}

Status Sub(KernelContext& ctx) {
  return ArithKernel<kAllNumeric>(ctx, [](auto x, auto y) {
    if constexpr (std::is_integral_v<decltype(x)>) {
      return WrapSub(x, y);
    } else {
      return x - y;
    }
  });
}

Status Mul(KernelContext& ctx) {
  return ArithKernel<kAllNumeric>(ctx, [](auto x, auto y) {
    if constexpr (std::is_integral_v<decltype(x)>) {
      return WrapMul(x, y);
    } else {
      return x * y;
    }
  });
}

// Integer division truncates toward zero (C semantics); INT_MIN / -1 wraps to INT_MIN.
Status Div(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(BinaryArgs args, PrepareBinary(ctx, true));
  KILN_RETURN_IF_ERROR(CheckNoIntegerZero(ctx, *args.b));
  return Arith<kAllNumeric>(ctx, args, [](auto x, auto y) {
    using C = decltype(x);
    if constexpr (std::is_integral_v<C> && std::is_signed_v<C>) {
      return y == C(-1) ? WrapSub(C(0), x) : static_cast<C>(x / y);
    } else {
      return static_cast<C>(x / y);
    }
  });
}

// fmod=1: C fmod / truncated remainder, sign of the dividend. fmod=0: floored (Python) modulo,
// sign of the divisor.
Status Mod(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(BinaryArgs args, PrepareBinary(ctx, true));
  const int64_t fmod = ctx.attrs().GetInt("fmod", 0);
  if (fmod != 0 && fmod != 1) return ctx.Error("fmod must be 0 or 1, found " + std::to_string(fmod));
  KILN_RETURN_IF_ERROR(CheckNoIntegerZero(ctx, *args.b));
  if (fmod == 1) {
    return Arith<kAllNumeric>(ctx, args, [](auto x, auto y) {
      using C = decltype(x);
      if constexpr (std::is_integral_v<C>) {
        if constexpr (std::is_signed_v<C>) {
          if (y == C(-1)) return C(0);
        }
        return static_cast<C>(x % y);
      } else {
        return std::fmod(x, y);
      }
    });
  }
  return Arith<kAllNumeric>(ctx, args, [](auto x, auto y) {
    using C = decltype(x);
    if constexpr (std::is_integral_v<C>) {
      if constexpr (std::is_signed_v<C>) {
        if (y == C(-1)) return C(0);
        C r = static_cast<C>(x % y);
        if (r != 0 && ((r < 0) != (y < 0))) r = static_cast<C>(r + y);
        return r;
      } else {
        return static_cast<C>(x % y);
      }
    } else {
      C r = std::fmod(x, y);
      if (r != C(0) && ((r < C(0)) != (y < C(0)))) r += y;
      return r;
    }
  });
}

Status BitShift(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(BinaryArgs args, PrepareBinary(ctx, true));
  const std::string dir = ctx.attrs().GetString("direction", "");
  if (dir != "LEFT" && dir != "RIGHT") {
    return ctx.Error("direction must be \"LEFT\" or \"RIGHT\", found \"" + dir + "\"");
  }
  const bool left = dir == "LEFT";
  // Shifting by the bit width or more gives 0 (no undefined behaviour).
  return Arith<kDispatchUnsigned>(ctx, args, [left](auto x, auto y) {
    using C = decltype(x);
    if (y >= sizeof(C) * 8) return C(0);
    return static_cast<C>(left ? x << y : x >> y);
  });
}

// BitwiseAnd/Or/Xor-18: every integer type, in its own type.
Status BitwiseAnd(KernelContext& ctx) {
  return ArithKernel<kAllInteger>(ctx,
                                  [](auto x, auto y) { return static_cast<decltype(x)>(x & y); });
}
Status BitwiseOr(KernelContext& ctx) {
  return ArithKernel<kAllInteger>(ctx,
                                  [](auto x, auto y) { return static_cast<decltype(x)>(x | y); });
}
Status BitwiseXor(KernelContext& ctx) {
  return ArithKernel<kAllInteger>(ctx,
                                  [](auto x, auto y) { return static_cast<decltype(x)>(x ^ y); });
}

// Integer power by squaring with wrap-around; negative exponents give 1/x^n truncated.
template <typename T>
T IntPow(T base, int64_t exp) {
  if (exp < 0) {
    if (base == T(1)) return T(1);
    if constexpr (std::is_signed_v<T>) {
      if (base == T(-1)) return (exp % 2 == 0) ? T(1) : T(-1);
    }
    return T(0);  // |base| > 1 truncates to 0; 0^-n has no integer value, 0 chosen
  }
  T result = 1;
  while (exp > 0) {
    if (exp & 1) result = WrapMul(result, base);
    base = WrapMul(base, base);
    exp >>= 1;
  }
  return result;
}

// Pow: output has the base's type. Same-type float inputs compute in Compute<T>; mixed types
// compute in double (as numpy's promotion does) and convert back; integer^integer is exact.
Status Pow(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(BinaryArgs args, PrepareBinary(ctx, false));
  const ElementType ta = args.a->type();
  const ElementType tb = args.b->type();
  if (!TypeIn<kAllNumeric>(ta)) return ctx.UnsupportedType(ta);
  if (!TypeIn<kAllNumeric>(tb)) return ctx.UnsupportedType(tb);
  if (ta == tb && IsFloating(ta)) {
    return Arith<kDispatchFloat>(ctx, args, [](auto x, auto y) { return std::pow(x, y); });
  }
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.output(0, ta, args.out_shape));
  if (IsInteger(ta) && IsInteger(tb)) {
    // Exponent as int64 (unsigned exponents above INT64_MAX saturate).
    Dispatch<kAllInteger>(ta, [&](auto atag) {
      using A = decltype(atag);
      Dispatch<kAllInteger>(tb, [&](auto btag) {
        using B = decltype(btag);
        BinaryBroadcast(args.plan, args.a->data<A>(), args.b->data<B>(), out->data<A>(),
                        ctx.thread_pool(), [](A x, B y) {
                          int64_t e;
                          if constexpr (std::is_unsigned_v<B> && sizeof(B) == 8) {
                            e = y > static_cast<uint64_t>(INT64_MAX) ? INT64_MAX : static_cast<int64_t>(y);
                          } else {
                            e = static_cast<int64_t>(y);
                          }
                          return IntPow<A>(x, e);
                        });
      });
    });
    return Status::Ok();
  }
  Dispatch<kAllNumeric>(ta, [&](auto atag) {
    using A = decltype(atag);
    Dispatch<kAllNumeric>(tb, [&](auto btag) {
      using B = decltype(btag);
      BinaryBroadcast(args.plan, args.a->data<A>(), args.b->data<B>(), out->data<A>(),
                      ctx.thread_pool(), [](A x, B y) {
                        const double r = std::pow(static_cast<double>(static_cast<Compute<A>>(x)),
                                                  static_cast<double>(static_cast<Compute<B>>(y)));
                        if constexpr (std::is_integral_v<A>) {
                          // Truncate toward zero, saturating; NaN gives 0.
                          if (!(r == r)) return A(0);
                          if (r <= static_cast<double>(std::numeric_limits<A>::lowest())) {
                            return std::numeric_limits<A>::lowest();
                          }
                          if (r >= static_cast<double>(std::numeric_limits<A>::max())) {
                            return std::numeric_limits<A>::max();
                          }
                          return static_cast<A>(r);
                        } else {
                          return static_cast<A>(static_cast<Compute<A>>(r));
                        }
                      });
    });
  });
  return Status::Ok();
}

// x in its compute type; a reference when that is its own type (no string copies).
template <typename C, typename T>
decltype(auto) AsCompute(const T& x) {
  if constexpr (std::is_same_v<T, C>) {
    return (x);
  } else {
    return static_cast<C>(x);
  }
}

// Comparisons and logic: bool output.
template <unsigned Set, typename Op>
Status CompareKernel(KernelContext& ctx, Op op) {
  KILN_ASSIGN_OR_RETURN(BinaryArgs args, PrepareBinary(ctx, true));
  const ElementType t = args.a->type();
  if (!TypeIn<Set>(t)) return ctx.UnsupportedType(t);
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.output(0, ElementType::kBool, args.out_shape));
  Dispatch<Set>(t, [&](auto tag) {
    using T = decltype(tag);
    using C = Compute<T>;
    BinaryBroadcast(args.plan, args.a->data<T>(), args.b->data<T>(), out->data<bool>(),
                    ctx.thread_pool(), [&](const T& x, const T& y) -> bool {
                      return op(AsCompute<C>(x), AsCompute<C>(y));
                    });
  });
  return Status::Ok();
}

constexpr unsigned kComparable = kAllNumeric | kDispatchBool;

Status Equal(KernelContext& ctx) {
  return CompareKernel<kAllTypes>(ctx, [](const auto& x, const auto& y) { return x == y; });
}
Status Less(KernelContext& ctx) {
  return CompareKernel<kComparable>(ctx, [](auto x, auto y) { return x < y; });
}
Status LessOrEqual(KernelContext& ctx) {
  return CompareKernel<kComparable>(ctx, [](auto x, auto y) { return x <= y; });
}
Status Greater(KernelContext& ctx) {
  return CompareKernel<kComparable>(ctx, [](auto x, auto y) { return x > y; });
}
Status GreaterOrEqual(KernelContext& ctx) {
  return CompareKernel<kComparable>(ctx, [](auto x, auto y) { return x >= y; });
}
Status And(KernelContext& ctx) {
  return CompareKernel<kDispatchBool>(ctx, [](bool x, bool y) { return x && y; });
}
Status Or(KernelContext& ctx) {
  return CompareKernel<kDispatchBool>(ctx, [](bool x, bool y) { return x || y; });
}
Status Xor(KernelContext& ctx) {
  return CompareKernel<kDispatchBool>(ctx, [](bool x, bool y) { return x != y; });
}

// Variadic ops fold left: out = op(in0, in1), then out = op(out, in_k). Mean divides at the end.
template <unsigned Set, typename Op>
Status Variadic(KernelContext& ctx, Op op, bool mean) {
  std::vector<const Tensor*> ins;
  for (size_t i = 0; i < ctx.num_inputs(); ++i) {
    const Tensor* t = ctx.input(i);
    if (t == nullptr) return ctx.Error("input " + std::to_string(i) + " is missing");
    if (!ins.empty() && t->type() != ins[0]->type()) {
      return ctx.Error("input " + std::to_string(i) + " has element type " +
                       ElementTypeName(t->type()) + ", expected " + ElementTypeName(ins[0]->type()));
    }
    ins.push_back(t);
  }
  if (ins.empty()) return ctx.Error("expected at least one input");
  const ElementType t = ins[0]->type();
  if (!TypeIn<Set>(t)) return ctx.UnsupportedType(t);
  std::vector<const Shape*> shapes;
  shapes.reserve(ins.size());
  for (const Tensor* in : ins) shapes.push_back(&in->shape());
  auto out_shape_r = BroadcastShapes(std::span<const Shape* const>(shapes));
  if (!out_shape_r.ok()) return ctx.Error(out_shape_r.status().message());
  const Shape out_shape = std::move(out_shape_r).value();
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.output(0, t, out_shape));
  Status status;
  Dispatch<Set>(t, [&](auto tag) {
    using T = decltype(tag);
    using C = Compute<T>;
    auto wrapped = [&](T x, T y) { return static_cast<T>(op(static_cast<C>(x), static_cast<C>(y))); };
    T* o = out->data<T>();
    if (ins.size() == 1) {
      const T* src = ins[0]->data<T>();
      for (int64_t i = 0; i < out->size(); ++i) o[i] = src[i];
    } else {
      auto plan = BroadcastPlan::Make(out_shape, {&ins[0]->shape(), &ins[1]->shape()});
      if (!plan.ok()) {
        status = plan.status();
        return;
      }
      BinaryBroadcast(*plan, ins[0]->data<T>(), ins[1]->data<T>(), o, ctx.thread_pool(), wrapped);
      for (size_t k = 2; k < ins.size(); ++k) {
        auto p = BroadcastPlan::Make(out_shape, {&out_shape, &ins[k]->shape()});
        if (!p.ok()) {
          status = p.status();
          return;
        }
        BinaryBroadcast(*p, static_cast<const T*>(o), ins[k]->data<T>(), o, ctx.thread_pool(), wrapped);
      }
    }
    if (mean) {
      const C n = static_cast<C>(ins.size());
      UnaryMap(static_cast<const T*>(o), o, out->size(), ctx.thread_pool(),
               [n](T v) { return static_cast<T>(static_cast<C>(v) / n); });
    }
  });
  return status;
}

template <typename C>
C MaxOf(C x, C y) {
  if constexpr (std::is_floating_point_v<C>) {
    if (std::isnan(x)) return x;  // NaN propagates
    if (std::isnan(y)) return y;
  }
  return x < y ? y : x;
}
template <typename C>
C MinOf(C x, C y) {
  if constexpr (std::is_floating_point_v<C>) {
    if (std::isnan(x)) return x;
    if (std::isnan(y)) return y;
  }
  return y < x ? y : x;
}

Status Max(KernelContext& ctx) {
  return Variadic<kAllNumeric>(ctx, [](auto x, auto y) { return MaxOf(x, y); }, false);
}
Status Min(KernelContext& ctx) {
  return Variadic<kAllNumeric>(ctx, [](auto x, auto y) { return MinOf(x, y); }, false);
}
Status Sum(KernelContext& ctx) {
  return Variadic<kAllNumeric>(ctx, [](auto x, auto y) {
    if constexpr (std::is_integral_v<decltype(x)>) {
      return WrapAdd(x, y);
    } else {
      return x + y;
    }
  }, false);
}
Status Mean(KernelContext& ctx) {
  return Variadic<kDispatchFloat>(ctx, [](auto x, auto y) { return x + y; }, true);
}

// Where(cond, X, Y): 3-way broadcast; copies elements of any type (strings included).
Status Where(KernelContext& ctx) {
  const Tensor* c = ctx.input(0);
  const Tensor* x = ctx.input(1);
  const Tensor* y = ctx.input(2);
  if (c == nullptr || x == nullptr || y == nullptr) return ctx.Error("expected 3 inputs");
  if (c->type() != ElementType::kBool) {
    return ctx.Error(std::string("condition must be bool, found ") + ElementTypeName(c->type()));
  }
  if (x->type() != y->type()) {
    return ctx.Error(std::string("X and Y must have the same element type, found ") +
                     ElementTypeName(x->type()) + " and " + ElementTypeName(y->type()));
  }
  auto out_shape_r = BroadcastShapes({&c->shape(), &x->shape(), &y->shape()});
  if (!out_shape_r.ok()) return ctx.Error(out_shape_r.status().message());
  const Shape out_shape = std::move(out_shape_r).value();
  KILN_ASSIGN_OR_RETURN(BroadcastPlan plan,
                        BroadcastPlan::Make(out_shape, {&c->shape(), &x->shape(), &y->shape()}));
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.output(0, x->type(), out_shape));
  const bool* cd = c->data<bool>();
  auto run = [&](auto tag) {
    using T = decltype(tag);
    const T* xd = static_cast<const T*>(x->raw());
    const T* yd = static_cast<const T*>(y->raw());
    T* od = static_cast<T*>(out->raw());
    ForEachBroadcastElement(plan, ctx.thread_pool(), [&](int64_t i, const int64_t* off) {
      od[i] = cd[off[0]] ? xd[off[1]] : yd[off[2]];
    });
  };
  // Non-string elements are copied as raw words of their size.
  switch (x->type() == ElementType::kString ? 0 : ElementSize(x->type())) {
    case 0: run(std::string{}); break;
    case 1: run(uint8_t{}); break;
    case 2: run(uint16_t{}); break;
    case 4: run(uint32_t{}); break;
    case 8: run(uint64_t{}); break;
    default: return ctx.UnsupportedType(x->type());
  }
  return Status::Ok();
}

// PRelu: y = x < 0 ? slope * x : x, slope broadcast to X. Before opset 7 a slope that is neither
// one element nor X-shaped is taken per channel (dim 1), as the old Caffe-style spec did.
Status PRelu(KernelContext& ctx) {
  const Tensor* x = ctx.input(0);
  const Tensor* s = ctx.input(1);
  if (x == nullptr || s == nullptr) return ctx.Error("expected 2 inputs");
  if (x->type() != s->type()) {
    return ctx.Error(std::string("slope must have X's element type ") + ElementTypeName(x->type()) +
                     ", found " + ElementTypeName(s->type()));
  }
  Shape slope_shape = s->shape();
  if (ctx.opset() < 7 && !BroadcastsTo(slope_shape, x->shape()) && s->rank() == 1 &&
      x->rank() >= 2 && s->size() == x->dim(1)) {
    slope_shape.assign(static_cast<size_t>(x->rank() - 1), 1);
    slope_shape[0] = s->size();
  }
  if (!BroadcastsTo(slope_shape, x->shape())) {
    return ctx.Error("slope shape " + ShapeToString(s->shape()) + " does not broadcast to X " +
                     ShapeToString(x->shape()));
  }
  KILN_ASSIGN_OR_RETURN(BroadcastPlan plan, BroadcastPlan::Make(x->shape(), {&x->shape(), &slope_shape}));
  BinaryArgs args{x, s, x->shape(), std::move(plan)};
  return Arith<kAllNumeric>(ctx, args, [](auto v, auto a) {
    using C = decltype(v);
    if constexpr (std::is_unsigned_v<C>) {
      return v;
    } else if constexpr (std::is_integral_v<C>) {
      return v < 0 ? WrapMul(v, a) : v;
    } else {
      return v < C(0) ? v * a : v;
    }
  });
}

constexpr KernelDef kKernels[] = {
    {"Add", "", Add},
    {"Sub", "", Sub},
    {"Mul", "", Mul},
    {"Div", "", Div},
    {"Mod", "", Mod},
    {"Pow", "", Pow},
    {"BitShift", "", BitShift},
    {"BitwiseAnd", "", BitwiseAnd},
    {"BitwiseOr", "", BitwiseOr},
    {"BitwiseXor", "", BitwiseXor},
    {"Max", "", Max},
    {"Min", "", Min},
    {"Sum", "", Sum},
    {"Mean", "", Mean},
    {"Equal", "", Equal},
    {"Less", "", Less},
    {"LessOrEqual", "", LessOrEqual},
    {"Greater", "", Greater},
    {"GreaterOrEqual", "", GreaterOrEqual},
    {"And", "", And},
    {"Or", "", Or},
    {"Xor", "", Xor},
    {"Where", "", Where},
    {"PRelu", "", PRelu},
};

}  // namespace

std::span<const KernelDef> BinaryKernels() { return kKernels; }

}  // namespace kiln::ew
