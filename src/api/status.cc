// C API: status names, the per-thread last error, version, element types, kiln_free.
#include <cstdlib>
#include <cstring>
#include <string>

#include "api/api_internal.h"

namespace kiln::api {
namespace {

thread_local std::string last_error;

}  // namespace

const char* last_error_ptr() { return last_error.c_str(); }

kiln_status Fail(kiln_status status, const std::string& message) {
  try {
    last_error = message;
  } catch (...) {
    // Out of memory while storing the message: keep the status, drop the text.
  }
  return status;
}

kiln_status Fail(const Status& status) {
  kiln_status s = KILN_ERROR_INTERNAL;
  switch (status.code()) {
    case StatusCode::kOk:
      s = KILN_ERROR_INTERNAL;  // a failure reported with an ok status is itself a bug
      break;
    case StatusCode::kInvalidArgument: s = KILN_ERROR_INVALID_ARGUMENT; break;
    case StatusCode::kNotFound: s = KILN_ERROR_NOT_FOUND; break;
    case StatusCode::kUnimplemented: s = KILN_ERROR_UNIMPLEMENTED; break;
    case StatusCode::kOutOfRange: s = KILN_ERROR_OUT_OF_RANGE; break;
    case StatusCode::kInternal: s = KILN_ERROR_INTERNAL; break;
    case StatusCode::kIo: s = KILN_ERROR_IO; break;
  }
  return Fail(s, status.message());
}

kiln_status NullArgument(const char* function, const char* argument) {
  return Fail(KILN_ERROR_INVALID_ARGUMENT, std::string(function) + ": " + argument + " is NULL");
}

kiln_element_type ToC(ElementType t) {
  return static_cast<kiln_element_type>(ElementTypeToOnnx(t));
}

kiln_status ReturnString(const char* function, const std::string& text, char** out) {
  char* p = static_cast<char*>(std::malloc(text.size() + 1));
  if (p == nullptr) return Fail(KILN_ERROR_INTERNAL, std::string(function) + ": out of memory");
  std::memcpy(p, text.c_str(), text.size() + 1);
  *out = p;
  return KILN_OK;
}

ElementType FromC(kiln_element_type t) {
  return ElementTypeFromOnnx(static_cast<int>(t));
}

}  // namespace kiln::api

extern "C" {

const char* kiln_status_name(kiln_status status) {
  switch (status) {
    case KILN_OK: return "ok";
    case KILN_ERROR_INVALID_ARGUMENT: return "invalid argument";
    case KILN_ERROR_NOT_FOUND: return "not found";
    case KILN_ERROR_UNIMPLEMENTED: return "unimplemented";
    case KILN_ERROR_OUT_OF_RANGE: return "out of range";
    case KILN_ERROR_INTERNAL: return "internal";
    case KILN_ERROR_IO: return "io";
    case KILN_ERROR_WRONG_ORDER: return "wrong order";
  }
  return "unknown status";
}

const char* kiln_last_error_message(void) { return kiln::api::last_error_ptr(); }

kiln_status kiln_version(int* out_major, int* out_minor, int* out_patch) {
  if (out_major) *out_major = KILN_VERSION_MAJOR;
  if (out_minor) *out_minor = KILN_VERSION_MINOR;
  if (out_patch) *out_patch = KILN_VERSION_PATCH;
  return KILN_OK;
}

const char* kiln_version_string(void) { return "0.1.0"; }

void kiln_free(void* p) { std::free(p); }

const char* kiln_element_type_name(kiln_element_type type) {
  return kiln::ElementTypeName(kiln::api::FromC(type));
}

size_t kiln_element_type_size(kiln_element_type type) {
  const kiln::ElementType t = kiln::api::FromC(type);
  if (t == kiln::ElementType::kUndefined || t == kiln::ElementType::kString) return 0;
  return kiln::ElementSize(t);
}

}  // extern "C"
