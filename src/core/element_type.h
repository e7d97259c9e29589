// Element types of tensors and values, generated from element_type.inc.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/half.h"
#include "core/status.h"

namespace kiln {

enum class ElementType : uint8_t {
  kUndefined = 0,
#define KILN_ELEMENT_TYPE(e, name, ctype, onnx) e,
#include "core/element_type.inc"
#undef KILN_ELEMENT_TYPE
};

// "f32", "i64", ... ("undefined" for kUndefined).
const char* ElementTypeName(ElementType t);
Result<ElementType> ElementTypeFromName(std::string_view name);
// Size in bytes of one element (sizeof(std::string) for kString).
size_t ElementSize(ElementType t);
// ONNX TensorProto.DataType code, and back (kUndefined when unknown).
int ElementTypeToOnnx(ElementType t);
ElementType ElementTypeFromOnnx(int code);

bool IsFloating(ElementType t);  // f16, bf16, f32, f64
bool IsSignedInteger(ElementType t);
bool IsUnsignedInteger(ElementType t);
inline bool IsInteger(ElementType t) { return IsSignedInteger(t) || IsUnsignedInteger(t); }

template <typename T>
struct ElementTypeOf;
#define KILN_ELEMENT_TYPE(e, name, ctype, onnx) \
  template <>                                   \
  struct ElementTypeOf<ctype> {                 \
    static constexpr ElementType value = ElementType::e; \
  };
#include "core/element_type.inc"
#undef KILN_ELEMENT_TYPE

template <ElementType E>
struct CTypeOf;
#define KILN_ELEMENT_TYPE(e, name, ctype, onnx) \
  template <>                                   \
  struct CTypeOf<ElementType::e> {              \
    using type = ctype;                         \
  };
#include "core/element_type.inc"
#undef KILN_ELEMENT_TYPE

// Calls fn(T{}) with T the C type of `t`; returns false when t is not in the enabled set.
// Usage:
//   bool ok = Dispatch<kAllNumeric>(t, [&](auto tag) { using T = decltype(tag); ... });
enum DispatchSet : unsigned {
  kDispatchFloat = 1u,      // f16, bf16, f32, f64
  kDispatchSigned = 2u,     // i8, i16, i32, i64
  kDispatchUnsigned = 4u,   // u8, u16, u32, u64
  kDispatchBool = 8u,
  kDispatchString = 16u,
  kAllNumeric = kDispatchFloat | kDispatchSigned | kDispatchUnsigned,
  kAllInteger = kDispatchSigned | kDispatchUnsigned,
  kAllTypes = kAllNumeric | kDispatchBool | kDispatchString,
};

template <unsigned Set, typename Fn>
bool Dispatch(ElementType t, Fn&& fn) {
  switch (t) {
#define KILN_CASE_(E, T, S)                 \
  case ElementType::E:                      \
    if constexpr ((Set & (S)) != 0) {       \
      fn(T{});                              \
      return true;                          \
    }                                       \
    return false;
    KILN_CASE_(kF32, float, kDispatchFloat)
    KILN_CASE_(kF64, double, kDispatchFloat)
    KILN_CASE_(kF16, Half, kDispatchFloat)
    KILN_CASE_(kBF16, BFloat16, kDispatchFloat)
    KILN_CASE_(kI8, int8_t, kDispatchSigned)
    KILN_CASE_(kI16, int16_t, kDispatchSigned)
    KILN_CASE_(kI32, int32_t, kDispatchSigned)
    KILN_CASE_(kI64, int64_t, kDispatchSigned)
    KILN_CASE_(kU8, uint8_t, kDispatchUnsigned)
    KILN_CASE_(kU16, uint16_t, kDispatchUnsigned)
    KILN_CASE_(kU32, uint32_t, kDispatchUnsigned)
    KILN_CASE_(kU64, uint64_t, kDispatchUnsigned)
    KILN_CASE_(kBool, bool, kDispatchBool)
    KILN_CASE_(kString, std::string, kDispatchString)
#undef KILN_CASE_
    default:
      return false;
  }
}

}  // namespace kiln
