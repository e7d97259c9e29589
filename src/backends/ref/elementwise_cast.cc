// Cast, CastLike, Clip and the float predicates IsNaN / IsInf.
//
// Cast semantics (opsets 1-17; the spec defers to numpy):
//   float -> integer truncates toward zero; values outside int64 saturate, then narrower types
//     wrap (what numpy does on x86); NaN gives 0.
//   integer -> integer wraps; anything -> bool is "!= 0" (NaN is true).
//   f32/f64 -> bf16 truncates the float's low 16 bits (NaN stays a quiet NaN), which is what the
//     ONNX reference data for opsets <= 17 holds; f16 rounds to nearest even.
//   number -> string formats like numpy's str(): shortest round-trip digits, positional for
//     1e-4 <= |x| < 1e16 ("0.5", "100.0"), scientific otherwise ("1e-05"); "nan", "inf".
//   string -> number parses decimal or scientific text, "nan" and "[+-]inf" (any case); text that
//     is not a number is an error naming it.
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
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

BFloat16 TruncateToBFloat16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u) return BFloat16::FromBits(static_cast<uint16_t>((x >> 16) | 0x40u));
  return BFloat16::FromBits(static_cast<uint16_t>(x >> 16));
}

template <typename D>
D FloatToInt(double v) {
  if (!(v == v)) return D(0);
  if constexpr (std::is_same_v<D, uint64_t>) {
    if (v >= 18446744073709551616.0) return std::numeric_limits<uint64_t>::max();
    if (v >= 9223372036854775808.0) return static_cast<uint64_t>(v);
  }
  int64_t i;
  if (v >= 9223372036854775808.0) {
    i = std::numeric_limits<int64_t>::max();
  } else if (v < -9223372036854775808.0) {
    i = std::numeric_limits<int64_t>::lowest();
  } else {
    i = static_cast<int64_t>(v);
  }
  return static_cast<D>(i);
}

// Shortest round-trip decimal digits and exponent of a finite non-zero value: value =
// d1.d2d3... x 10^exp. Half uses the fewest %e digits that read back to the same half.
template <typename T>
void ShortestDigits(T value, std::string& digits, int& exp) {
  char buf[64];
  std::string text;
  if constexpr (std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>) {
    const float f = static_cast<float>(value);
    for (int p = 1; p <= 9; ++p) {
      std::snprintf(buf, sizeof(buf), "%.*e", p - 1, static_cast<double>(f));
      if (T(std::strtof(buf, nullptr)).bits == value.bits) break;
    }
    text = buf;
  } else {
    auto r = std::to_chars(buf, buf + sizeof(buf), value, std::chars_format::scientific);
    text.assign(buf, r.ptr);
  }
  // text: [-]d[.ddd]e[+-]XX
  const size_t e = text.find('e');
  digits.clear();
  for (size_t i = 0; i < e; ++i) {
    if (std::isdigit(static_cast<unsigned char>(text[i]))) digits += text[i];
  }
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  exp = std::atoi(text.c_str() + e + 1);
}

template <typename T>
std::string FormatFloat(T value) {
  const double v = static_cast<double>(static_cast<Compute<T>>(value));
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v < 0 ? "-inf" : "inf";
  const std::string sign = std::signbit(v) ? "-" : "";
  if (v == 0) return sign + "0.0";
  std::string digits;
  int exp = 0;
  ShortestDigits(value, digits, exp);
  const double a = std::fabs(v);
  if (a >= 1e-4 && a < 1e16) {
    std::string s;
    if (exp >= 0) {
      const size_t int_len = static_cast<size_t>(exp) + 1;
      std::string int_part = digits.substr(0, std::min(int_len, digits.size()));
      while (int_part.size() < int_len) int_part += '0';
      std::string frac = digits.size() > int_len ? digits.substr(int_len) : "0";
      s = int_part + "." + frac;
    } else {
      s = "0." + std::string(static_cast<size_t>(-exp - 1), '0') + digits;
    }
    return sign + s;
  }
  std::string s = digits.substr(0, 1);
  if (digits.size() > 1) s += "." + digits.substr(1);
  char eb[16];
  std::snprintf(eb, sizeof(eb), "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
  return sign + s + eb;
}

template <typename S>
std::string FormatElement(const S& s) {
  if constexpr (std::is_same_v<S, bool>) {
    return s ? "True" : "False";
  } else if constexpr (std::is_integral_v<S>) {
    return std::to_string(s);
  } else {
    return FormatFloat(s);
  }
}

template <typename D, typename S>
D ConvertElement(const S& s) {
  if constexpr (std::is_same_v<D, S>) {
    return s;
  } else if constexpr (std::is_same_v<D, std::string>) {
    return FormatElement(s);
  } else if constexpr (std::is_same_v<D, bool>) {
    return static_cast<Compute<S>>(s) != Compute<S>(0);
  } else if constexpr (std::is_same_v<D, BFloat16>) {
    if constexpr (kIsFloat<S>) {
      return TruncateToBFloat16(static_cast<float>(static_cast<Compute<S>>(s)));
    } else {
      return TruncateToBFloat16(static_cast<float>(s));
    }
  } else if constexpr (kIsFloat<D>) {
    return static_cast<D>(static_cast<Compute<D>>(static_cast<Compute<S>>(s)));
  } else if constexpr (kIsFloat<S>) {
    return FloatToInt<D>(static_cast<double>(static_cast<Compute<S>>(s)));
  } else {
    return static_cast<D>(s);
  }
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Parses `text` as a number of type D.
template <typename D>
bool ParseElement(const std::string& text, D& out) {
  const char* begin = text.c_str();
  char* end = nullptr;
  auto rest_is_space = [&](const char* p) {
    while (*p != 0 && std::isspace(static_cast<unsigned char>(*p))) ++p;
    return *p == 0;
  };
  if constexpr (std::is_same_v<D, bool>) {
    const std::string l = Lower(text);
    if (l == "true") return out = true, true;
    if (l == "false") return out = false, true;
    const double v = std::strtod(begin, &end);
    if (end == begin || !rest_is_space(end)) return false;
    out = v != 0;
    return true;
  } else if constexpr (std::is_integral_v<D>) {
    errno = 0;
    if constexpr (std::is_signed_v<D>) {
      const long long v = std::strtoll(begin, &end, 10);
      if (end != begin && rest_is_space(end) && errno == 0) return out = static_cast<D>(v), true;
    } else {
      const unsigned long long v = std::strtoull(begin, &end, 10);
      if (end != begin && rest_is_space(end) && errno == 0 && text.find('-') == std::string::npos) {
        return out = static_cast<D>(v), true;
      }
    }
    const double v = std::strtod(begin, &end);  // "1e3", "2.5"
    if (end == begin || !rest_is_space(end)) return false;
    out = FloatToInt<D>(v);
    return true;
  } else if constexpr (std::is_same_v<D, double>) {
    out = std::strtod(begin, &end);
    return end != begin && rest_is_space(end);
  } else {
    const float v = std::strtof(begin, &end);
    out = static_cast<D>(v);
    return end != begin && rest_is_space(end);
  }
}

// The parse error of a string element. The other overload only keeps the discarded branch below
// well-formed for clang, which checks its non-dependent expressions for every source type.
std::string CannotParse(const std::string& s, ElementType to) {
  return "cannot parse string \"" + s + "\" as " + ElementTypeName(to);
}
template <typename T>
std::string CannotParse(const T&, ElementType) {
  return {};
}

Status CastTo(KernelContext& ctx, const Tensor& x, ElementType to) {
  if (!TypeIn<kAllTypes>(to)) return ctx.UnsupportedType(to);
  if (!TypeIn<kAllTypes>(x.type())) return ctx.UnsupportedType(x.type());
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.output(0, to, x.shape()));
  Status status;
  const int64_t n = x.size();
  Dispatch<kAllTypes>(x.type(), [&](auto stag) {
    using S = decltype(stag);
    Dispatch<kAllTypes>(to, [&](auto dtag) {
      using D = decltype(dtag);
      const S* src = x.data<S>();
      D* dst = y->data<D>();
      if constexpr (std::is_same_v<S, std::string> && !std::is_same_v<D, std::string>) {
        for (int64_t i = 0; i < n; ++i) {
          if (!ParseElement<D>(src[i], dst[i])) {
            status = ctx.Error(CannotParse(src[i], to));
            return;
          }
        }
      } else {
        UnaryMap(src, dst, n, ctx.thread_pool(), [](const S& v) { return ConvertElement<D>(v); });
      }
    });
  });
  return status;
}

Status Cast(KernelContext& ctx) {
  const Tensor* x = ctx.input(0);
  if (x == nullptr) return ctx.Error("missing input 0");
  auto to = CastTargetType(ctx.node());
  if (!to.ok()) return ctx.Error(to.status().message());
  return CastTo(ctx, *x, *to);
}

Status CastLike(KernelContext& ctx) {
  const Tensor* x = ctx.input(0);
  const Tensor* like = ctx.input(1);
  if (x == nullptr || like == nullptr) return ctx.Error("expected 2 inputs");
  return CastTo(ctx, *x, like->type());
}

// Clip: y = min(max(x, lo), hi) (so lo > hi gives hi, as numpy.clip); NaN passes through.
Status Clip(KernelContext& ctx) {
  const Tensor* x = ctx.input(0);
  if (x == nullptr) return ctx.Error("missing input 0");
  if (!TypeIn<kAllNumeric>(x->type())) return ctx.UnsupportedType(x->type());
  const int opset = ctx.opset();
  for (size_t i = 1; i <= 2 && opset >= 11; ++i) {
    const Tensor* b = ctx.input(i);
    if (b == nullptr) continue;
    if (b->type() != x->type()) {
      return ctx.Error("input " + std::to_string(i) + " has element type " +
                       ElementTypeName(b->type()) + ", expected " + ElementTypeName(x->type()));
    }
    if (b->size() != 1) {
      return ctx.Error("input " + std::to_string(i) + " must be a scalar, found shape " +
                       ShapeToString(b->shape()));
    }
  }
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.output(0, x->type(), x->shape()));
  Dispatch<kAllNumeric>(x->type(), [&](auto tag) {
    using T = decltype(tag);
    using C = Compute<T>;
    C lo = std::numeric_limits<C>::lowest();
    C hi = std::numeric_limits<C>::max();
    if (opset < 11) {
      // Opset 1 left the bounds unset (no clipping); opset 6 defaulted them to +-FLT_MAX.
      const float def = opset < 6 ? std::numeric_limits<float>::infinity()
                                  : std::numeric_limits<float>::max();
      lo = static_cast<C>(ctx.attrs().GetFloat("min", -def));
      hi = static_cast<C>(ctx.attrs().GetFloat("max", def));
      if (opset < 6 && !ctx.attrs().Has("min")) lo = std::numeric_limits<C>::lowest();
      if (opset < 6 && !ctx.attrs().Has("max")) hi = std::numeric_limits<C>::max();
    } else {
      if (const Tensor* b = ctx.input(1)) lo = static_cast<C>(b->data<T>()[0]);
      if (const Tensor* b = ctx.input(2)) hi = static_cast<C>(b->data<T>()[0]);
    }
    UnaryMap(x->data<T>(), y->data<T>(), x->size(), ctx.thread_pool(), [lo, hi](T t) {
      C v = static_cast<C>(t);
      v = v < lo ? lo : v;
      v = v > hi ? hi : v;
      return static_cast<T>(v);
    });
  });
  return Status::Ok();
}

template <typename Pred>
Status FloatPredicate(KernelContext& ctx, Pred pred) {
  const Tensor* x = ctx.input(0);
  if (x == nullptr) return ctx.Error("missing input 0");
  if (!TypeIn<kDispatchFloat>(x->type())) return ctx.UnsupportedType(x->type());
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.output(0, ElementType::kBool, x->shape()));
  Dispatch<kDispatchFloat>(x->type(), [&](auto tag) {
    using T = decltype(tag);
    using C = Compute<T>;
    UnaryMap(x->data<T>(), y->data<bool>(), x->size(), ctx.thread_pool(),
             [&](T v) { return pred(static_cast<C>(v)); });
  });
  return Status::Ok();
}

Status IsNaN(KernelContext& ctx) {
  return FloatPredicate(ctx, [](auto v) { return std::isnan(v); });
}

Status IsInf(KernelContext& ctx) {
  const bool neg = ctx.attrs().GetInt("detect_negative", 1) != 0;
  const bool pos = ctx.attrs().GetInt("detect_positive", 1) != 0;
  return FloatPredicate(ctx, [neg, pos](auto v) {
    return std::isinf(v) && ((v > 0 && pos) || (v < 0 && neg));
  });
}

constexpr KernelDef kKernels[] = {
    {"Cast", "", Cast},
    {"CastLike", "", CastLike},
    {"Clip", "", Clip},
    {"IsNaN", "", IsNaN},
    {"IsInf", "", IsInf},
};

}  // namespace

std::span<const KernelDef> CastKernels() { return kKernels; }

}  // namespace kiln::ew
