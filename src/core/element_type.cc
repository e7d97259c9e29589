#include "core/element_type.h"

namespace kiln {

const char* ElementTypeName(ElementType t) {
  switch (t) {
#define KILN_ELEMENT_TYPE(e, name, ctype, onnx) \
  case ElementType::e:                          \
    return name;
#include "core/element_type.inc"
#undef KILN_ELEMENT_TYPE
    default:
      return "undefined";
  }
}

Result<ElementType> ElementTypeFromName(std::string_view n) {
#define KILN_ELEMENT_TYPE(e, name, ctype, onnx) \
  if (n == name) return ElementType::e;
#include "core/element_type.inc"
#undef KILN_ELEMENT_TYPE
  return InvalidArgument("unknown element type '" + std::string(n) + "'");
}

size_t ElementSize(ElementType t) {
  switch (t) {
#define KILN_ELEMENT_TYPE(e, name, ctype, onnx) \
  case ElementType::e:                          \
    return sizeof(ctype);
#include "core/element_type.inc"
#undef KILN_ELEMENT_TYPE
    default:
      return 0;
  }
}

int ElementTypeToOnnx(ElementType t) {
  switch (t) {
#define KILN_ELEMENT_TYPE(e, name, ctype, onnx) \
  case ElementType::e:                          \
    return onnx;
#include "core/element_type.inc"
#undef KILN_ELEMENT_TYPE
    default:
      return 0;
  }
}

ElementType ElementTypeFromOnnx(int code) {
#define KILN_ELEMENT_TYPE(e, name, ctype, onnx) \
  if (code == onnx) return ElementType::e;
#include "core/element_type.inc"
#undef KILN_ELEMENT_TYPE
  return ElementType::kUndefined;
}

bool IsFloating(ElementType t) {
  return t == ElementType::kF32 || t == ElementType::kF64 || t == ElementType::kF16 ||
         t == ElementType::kBF16;
}
bool IsSignedInteger(ElementType t) {
  return t == ElementType::kI8 || t == ElementType::kI16 || t == ElementType::kI32 ||
         t == ElementType::kI64;
}
bool IsUnsignedInteger(ElementType t) {
  return t == ElementType::kU8 || t == ElementType::kU16 || t == ElementType::kU32 ||
         t == ElementType::kU64;
}

}  // namespace kiln
