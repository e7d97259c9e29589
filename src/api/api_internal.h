// What the C API's opaque handles hold, and the error plumbing shared by src/api/*.cc.
//
// Every exported function body runs inside Guard(), which turns a C++ exception (e.g.
// std::bad_alloc) into KILN_ERROR_INTERNAL with its message instead of letting it cross the C
// boundary. Errors are reported through Fail(), which stores the message in the calling
// thread's last-error slot and returns the matching kiln_status.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"
#include "ir/graph.h"
#include "kiln/kiln.h"
#include "odc/serving_session.h"
#include "runtime/session.h"

// An imported ONNX model, or a package (only its path: each session opens the package itself,
// so that it serves the best plan the package holds when the session is created).
struct kiln_model {
  kiln::Model model;
  std::string package_path;  // non-empty: a .kiln package
};

// Declared shapes of one input or output, kept for the lifetime of the session so that the
// pointers in kiln_value_info stay valid.
struct KilnValueDesc {
  std::string name;
  kiln_element_type type = KILN_UNDEFINED;
  int64_t rank = -1;
  std::vector<int64_t> dims;
  std::vector<std::string> dim_names;
  std::vector<const char*> dim_name_ptrs;
};

// A bare model's session, or a package's ServingSession (which may switch to a compiled plan
// between runs). `serving_mu` serialises the ServingSession's calls (Run, CompileNow, recording
// on/off, status): ServingSession::Run records and may run a compile job after the result, and
// those steps are not meant to run concurrently within one ServingSession.
struct kiln_session {
  std::shared_ptr<kiln::Session> session;         // bare model
  std::unique_ptr<kiln::ServingSession> serving;  // package
  mutable std::mutex serving_mu;
  std::vector<KilnValueDesc> inputs, outputs;
  std::string model_path;

  // The session that runs now (for a package: whatever serves it at this moment).
  std::shared_ptr<kiln::Session> Current() const {
    return serving ? serving->session() : session;
  }
};

struct KilnOutputBinding {
  void* data = nullptr;  // caller buffer, or nullptr: Kiln allocates
  size_t bytes = 0;
  kiln::ElementType type = kiln::ElementType::kUndefined;
  bool convert = false;
};

struct kiln_binding {
  kiln_session* session = nullptr;
  std::vector<kiln::Tensor> inputs;  // undefined until bound
  std::vector<KilnOutputBinding> output_buffers;
  std::vector<kiln::Tensor> outputs;  // the last run's, empty before a run
  bool has_run = false;
};

struct kiln_tensor {
  kiln::Tensor tensor;
  std::vector<int64_t> shape;
};

namespace kiln::api {

// Stores `message` as this thread's last error and returns `status`.
kiln_status Fail(kiln_status status, const std::string& message);
// This thread's last error message ("" before the first failure).
const char* last_error_ptr();
// The kiln_status for a Status code (never KILN_OK for a failed status).
kiln_status Fail(const Status& status);
// "kiln_session_run: session is NULL" style messages for argument checks.
kiln_status NullArgument(const char* function, const char* argument);

kiln_element_type ToC(ElementType t);
// kUndefined for values outside the enum.
ElementType FromC(kiln_element_type t);

// The named tensors of a binding's inputs; an error naming the first unbound input.
Result<NamedTensors> BoundInputs(const kiln_binding& binding, const char* function);
// The model's own input shapes when static; an error naming the first dynamic dim otherwise.
Result<NamedTensors> StaticInputs(const kiln_session& session, const char* function);

// Copies t into dst as `type` (a float conversion when the types differ).
Status ConvertFloatOrCopy(const Tensor& t, ElementType type, void* dst);

// Copies `text` into malloc'ed memory (freed by kiln_free) and stores it in *out.
kiln_status ReturnString(const char* function, const std::string& text, char** out);

// Runs fn() (returning kiln_status), turning any C++ exception into KILN_ERROR_INTERNAL.
template <typename Fn>
kiln_status Guard(const char* function, Fn&& fn) noexcept {
  try {
    return fn();
  } catch (const std::exception& e) {
    return Fail(KILN_ERROR_INTERNAL, std::string(function) + ": " + e.what());
  } catch (...) {
    return Fail(KILN_ERROR_INTERNAL, std::string(function) + ": unknown C++ exception");
  }
}

}  // namespace kiln::api
