// Kiln C++ API: header-only RAII wrappers over the C API (kiln.h); no second implementation.
//
// Errors: by default every call returns kiln::Result<T> / kiln::Error (check ok(), read
// message()). Define KILN_CPP_EXCEPTIONS before including this header to get values directly
// and a kiln::Exception (with status() and what()) thrown on failure instead.
//
// Ownership and threads follow kiln.h: Model and Session are movable handles; a Session may be
// used from several threads, a Binding from one thread at a time; a Binding must not outlive
// its Session.
//
//   auto model = kiln::Model::FromFile("rec.onnx");          // Result<Model>
//   kiln::SessionOptions opts;
//   opts.raw.threads = 2;
//   opts.Set("OpBackend.Softmax", "ref");
//   auto session = kiln::Session::Create(*model, opts);
//   auto io = session->NewBinding();
//   io->SetInput<float>(0, {1, 3, 48, 320}, pixels);       // std::span<const float>
//   session->Run(*io);
//   auto out = io->Output(0);                                // Result<Tensor>
//   std::span<const float> probs = out->Data<float>();
#pragma once

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "kiln/kiln.h"

namespace kiln {

class Error {
 public:
  Error() = default;
  Error(kiln_status status, std::string message) : status_(status), message_(std::move(message)) {}
  bool ok() const { return status_ == KILN_OK; }
  kiln_status status() const { return status_; }
  const std::string& message() const { return message_; }

 private:
  kiln_status status_ = KILN_OK;
  std::string message_;
};

class Exception : public std::runtime_error {
 public:
  explicit Exception(const Error& e) : std::runtime_error(e.message()), status_(e.status()) {}
  kiln_status status() const { return status_; }

 private:
  kiln_status status_;
};

template <typename T>
class Result {
 public:
  Result(T value) : v_(std::move(value)) {}        // NOLINT: implicit by design
  Result(Error error) : v_(std::move(error)) {}    // NOLINT
  bool ok() const { return v_.index() == 0; }
  const Error& error() const {
    static const Error kOk;
    return ok() ? kOk : std::get<1>(v_);
  }
  const std::string& message() const { return error().message(); }
  T& value() { return std::get<0>(v_); }
  const T& value() const { return std::get<0>(v_); }
  T& operator*() { return value(); }
  T* operator->() { return &value(); }

 private:
  std::variant<T, Error> v_;
};

namespace detail {
inline Error Check(kiln_status s) {
  return s == KILN_OK ? Error() : Error(s, kiln_last_error_message());
}
// A per-thread slot for a char* out_ parameter, taken (and freed) by TakeString.
inline char*& Out() {
  thread_local char* slot = nullptr;
  return slot;
}
inline Result<std::string> TakeString(kiln_status s) {
  char* p = Out();
  Out() = nullptr;
  if (s != KILN_OK) return Check(s);
  std::string text = p ? p : "";
  kiln_free(p);
  return text;
}
#ifdef KILN_CPP_EXCEPTIONS
template <typename T>
T Unwrap(Result<T> r) {
  if (!r.ok()) throw Exception(r.error());
  return std::move(r.value());
}
inline void Unwrap(Error e) {
  if (!e.ok()) throw Exception(e);
}
#define KILN_CPP_RETURN(T, expr) return ::kiln::detail::Unwrap<T>(expr)
#define KILN_CPP_RETURN_VOID(expr) ::kiln::detail::Unwrap(expr)
#else
#define KILN_CPP_RETURN(T, expr) return expr
#define KILN_CPP_RETURN_VOID(expr) return expr
#endif
}  // namespace detail

#ifdef KILN_CPP_EXCEPTIONS
template <typename T>
using Returns = T;
using Status = void;
#else
template <typename T>
using Returns = Result<T>;
using Status = Error;
#endif

template <typename T>
struct ElementTypeOf;
template <> struct ElementTypeOf<float> { static constexpr kiln_element_type value = KILN_F32; };
template <> struct ElementTypeOf<double> { static constexpr kiln_element_type value = KILN_F64; };
template <> struct ElementTypeOf<int8_t> { static constexpr kiln_element_type value = KILN_I8; };
template <> struct ElementTypeOf<uint8_t> { static constexpr kiln_element_type value = KILN_U8; };
template <> struct ElementTypeOf<int32_t> { static constexpr kiln_element_type value = KILN_I32; };
template <> struct ElementTypeOf<int64_t> { static constexpr kiln_element_type value = KILN_I64; };
template <> struct ElementTypeOf<uint16_t> { static constexpr kiln_element_type value = KILN_F16; };  // raw f16 bits

struct ValueInfo {
  std::string name;
  kiln_element_type type = KILN_UNDEFINED;
  int64_t rank = -1;
  std::vector<int64_t> dims;  // -1: dynamic
  std::vector<std::string> dim_names;
};

// An output Kiln allocated: shares the run's storage, valid until released.
class Tensor {
 public:
  explicit Tensor(kiln_tensor* t) : t_(t, kiln_tensor_release) {}
  kiln_element_type type() const { return kiln_tensor_type(t_.get()); }
  std::vector<int64_t> shape() const {
    const int64_t* s = kiln_tensor_shape(t_.get());
    return std::vector<int64_t>(s, s + kiln_tensor_rank(t_.get()));
  }
  size_t bytes() const { return kiln_tensor_bytes(t_.get()); }
  template <typename T>
  std::span<const T> Data() const {  // T must match type()
    return {static_cast<const T*>(kiln_tensor_data(t_.get())), bytes() / sizeof(T)};
  }
  // The values as T (converting between float types, e.g. an f16 output read as float).
  template <typename T>
  Returns<std::vector<T>> CopyAs() const {
    const size_t n = bytes() / kiln_element_type_size(type());
    std::vector<T> out(n);
    Error e = detail::Check(
        kiln_tensor_copy_to(t_.get(), ElementTypeOf<T>::value, out.data(), n * sizeof(T)));
    KILN_CPP_RETURN(std::vector<T>, e.ok() ? Result<std::vector<T>>(std::move(out))
                                           : Result<std::vector<T>>(e));
  }
  kiln_tensor* get() const { return t_.get(); }

 private:
  std::shared_ptr<kiln_tensor> t_;
};

class Model {
 public:
  static Returns<Model> FromFile(const std::string& path) {
    kiln_model* m = nullptr;
    Error e = detail::Check(kiln_model_create_from_file(path.c_str(), &m));
    KILN_CPP_RETURN(Model, e.ok() ? Result<Model>(Model(m)) : Result<Model>(e));
  }
  static Returns<Model> FromMemory(std::span<const std::byte> bytes) {
    kiln_model* m = nullptr;
    Error e = detail::Check(kiln_model_create_from_memory(bytes.data(), bytes.size(), &m));
    KILN_CPP_RETURN(Model, e.ok() ? Result<Model>(Model(m)) : Result<Model>(e));
  }
  const kiln_model* get() const { return m_.get(); }

 private:
  explicit Model(kiln_model* m) : m_(m, kiln_model_release) {}
  std::shared_ptr<kiln_model> m_;
};

// kiln_session_options plus owned storage for the backends list and config entries.
struct SessionOptions {
  SessionOptions() { kiln_session_options_init(&raw); }
  kiln_session_options raw;
  std::string backends;  // "xnnpack,ref"; empty: default order
  std::vector<std::pair<std::string, std::string>> config;
  SessionOptions& Set(std::string key, std::string value) {
    config.emplace_back(std::move(key), std::move(value));
    return *this;
  }
};

// Options of Convert / Quantize / Pack with owned storage for their strings and config entries.
struct ConvertOptions {
  ConvertOptions() { kiln_convert_options_init(&raw); }
  kiln_convert_options raw;
  std::string keep_fp32;  // empty: the default
};

struct QuantizeOptions {
  QuantizeOptions() { kiln_quantize_options_init(&raw); }
  kiln_quantize_options raw;
  std::string data_dir;  // required: DATA_DIR/<sample>/<input>.npy
  std::string method, activations, keep_float;  // empty: the defaults
};

struct PackOptions {
  PackOptions() { kiln_pack_options_init(&raw); }
  kiln_pack_options raw;
  std::string keep_fp32;
  std::vector<std::pair<std::string, std::string>> config;  // metadata/config.cfg keys
  PackOptions& Set(std::string key, std::string value) {
    config.emplace_back(std::move(key), std::move(value));
    return *this;
  }
};

namespace detail {
inline std::vector<kiln_config_entry> Entries(
    const std::vector<std::pair<std::string, std::string>>& config) {
  std::vector<kiln_config_entry> entries;
  for (const auto& [k, v] : config) entries.push_back({k.c_str(), v.c_str()});
  return entries;
}
inline const char* OrNull(const std::string& s) { return s.empty() ? nullptr : s.c_str(); }
}  // namespace detail

// Writes the fp16 (or mixed) program of the ONNX model at `input` to `output`.
inline Status Convert(const std::string& input, const std::string& output,
                      const ConvertOptions& options = {}) {
  kiln_convert_options o = options.raw;
  o.keep_fp32 = detail::OrNull(options.keep_fp32);
  KILN_CPP_RETURN_VOID(detail::Check(kiln_convert(input.c_str(), output.c_str(), &o)));
}

// Calibrates on options.data_dir and writes the int8 QDQ model to `output`.
inline Status Quantize(const std::string& input, const std::string& output,
                       const QuantizeOptions& options) {
  kiln_quantize_options o = options.raw;
  o.data_dir = detail::OrNull(options.data_dir);
  o.method = detail::OrNull(options.method);
  o.activations = detail::OrNull(options.activations);
  o.keep_float = detail::OrNull(options.keep_float);
  KILN_CPP_RETURN_VOID(detail::Check(kiln_quantize(input.c_str(), output.c_str(), &o)));
}

// Makes the package `package` (NAME.kiln) from the ONNX model at `model`.
inline Status Pack(const std::string& model, const std::string& package,
                   const PackOptions& options = {}) {
  kiln_pack_options o = options.raw;
  o.keep_fp32 = detail::OrNull(options.keep_fp32);
  std::vector<kiln_config_entry> entries = detail::Entries(options.config);
  o.config = entries.data();
  o.config_count = entries.size();
  KILN_CPP_RETURN_VOID(detail::Check(kiln_pack(model.c_str(), package.c_str(), &o)));
}

// Runs the package's compile job now; the result as JSON (kiln.h kiln_compile_package).
inline Returns<std::string> CompilePackage(
    const std::string& package, const std::vector<std::pair<std::string, std::string>>& config = {}) {
  std::vector<kiln_config_entry> entries = detail::Entries(config);
  KILN_CPP_RETURN(std::string, detail::TakeString(kiln_compile_package(
                                   package.c_str(), entries.data(), entries.size(), &detail::Out())));
}

class Session;

class Binding {
 public:
  template <typename T>
  Status SetInput(size_t index, const std::vector<int64_t>& shape, std::span<const T> data,
                  uint32_t flags = 0) {
    KILN_CPP_RETURN_VOID(detail::Check(
        kiln_binding_set_input(b_.get(), index, ElementTypeOf<T>::value, shape.data(),
                               shape.size(), data.data(), data.size_bytes(), flags)));
  }
  // Each run writes output `index` into `data` (converted with KILN_BIND_CONVERT).
  template <typename T>
  Status SetOutput(size_t index, std::span<T> data, uint32_t flags = 0) {
    KILN_CPP_RETURN_VOID(detail::Check(kiln_binding_set_output(
        b_.get(), index, ElementTypeOf<T>::value, data.data(), data.size_bytes(), flags)));
  }
  Returns<Tensor> Output(size_t index) const {
    kiln_tensor* t = nullptr;
    Error e = detail::Check(kiln_binding_get_output(b_.get(), index, &t));
    KILN_CPP_RETURN(Tensor, e.ok() ? Result<Tensor>(Tensor(t)) : Result<Tensor>(e));
  }
  kiln_binding* get() const { return b_.get(); }

 private:
  friend class Session;
  explicit Binding(kiln_binding* b) : b_(b, kiln_binding_release) {}
  std::unique_ptr<kiln_binding, void (*)(kiln_binding*)> b_;
};

class Session {
 public:
  static Returns<Session> Create(const Model& model, const SessionOptions& options = {}) {
    kiln_session_options o = options.raw;
    std::vector<kiln_config_entry> entries;
    for (const auto& [k, v] : options.config) entries.push_back({k.c_str(), v.c_str()});
    o.config = entries.data();
    o.config_count = entries.size();
    if (!options.backends.empty()) o.backends = options.backends.c_str();
    kiln_session* s = nullptr;
    Error e = detail::Check(kiln_session_create(model.get(), &o, &s));
    KILN_CPP_RETURN(Session, e.ok() ? Result<Session>(Session(s)) : Result<Session>(e));
  }
  std::vector<ValueInfo> Inputs() const { return Infos(true); }
  std::vector<ValueInfo> Outputs() const { return Infos(false); }
  Returns<Binding> NewBinding() {
    kiln_binding* b = nullptr;
    Error e = detail::Check(kiln_binding_create(s_.get(), &b));
    KILN_CPP_RETURN(Binding, e.ok() ? Result<Binding>(Binding(b)) : Result<Binding>(e));
  }
  Status Prepare(const Binding* binding = nullptr) {
    KILN_CPP_RETURN_VOID(
        detail::Check(kiln_session_prepare(s_.get(), binding ? binding->get() : nullptr)));
  }
  Status Run(Binding& binding) {
    KILN_CPP_RETURN_VOID(detail::Check(kiln_session_run(s_.get(), binding.get())));
  }
  Returns<std::string> PlanJson(const Binding* binding = nullptr) {
    KILN_CPP_RETURN(std::string,
                    detail::TakeString(kiln_session_plan_json(
                        s_.get(), binding ? binding->get() : nullptr, &detail::Out())));
  }
  // What runs now: "float model models/det.onnx", "compiled plan ... (int8, optimal)", ...
  Returns<std::string> ServedBy() const {
    KILN_CPP_RETURN(std::string, detail::TakeString(kiln_session_served_by(s_.get(), &detail::Out())));
  }
  // On-device compilation of a package's session (kiln.h "Packages and on-device compilation").
  Status OdcSetRecording(bool on) {
    KILN_CPP_RETURN_VOID(detail::Check(kiln_session_odc_set_recording(s_.get(), on ? 1 : 0)));
  }
  Returns<std::string> OdcCompileNow() {  // the job's result as JSON
    KILN_CPP_RETURN(std::string,
                    detail::TakeString(kiln_session_odc_compile_now(s_.get(), &detail::Out())));
  }
  Returns<std::string> OdcStatusJson() const {
    KILN_CPP_RETURN(std::string,
                    detail::TakeString(kiln_session_odc_status_json(s_.get(), &detail::Out())));
  }
  Returns<std::string> OdcHistoryJson() const {
    KILN_CPP_RETURN(std::string,
                    detail::TakeString(kiln_session_odc_history_json(s_.get(), &detail::Out())));
  }
  kiln_session* get() const { return s_.get(); }

 private:
  explicit Session(kiln_session* s) : s_(s, kiln_session_release) {}
  std::vector<ValueInfo> Infos(bool inputs) const {
    size_t n = 0;
    (inputs ? kiln_session_input_count : kiln_session_output_count)(s_.get(), &n);
    std::vector<ValueInfo> out;
    for (size_t i = 0; i < n; ++i) {
      kiln_value_info v;
      (inputs ? kiln_session_input_info : kiln_session_output_info)(s_.get(), i, &v);
      ValueInfo info{v.name, v.type, v.rank, {}, {}};
      for (int64_t k = 0; k < v.rank; ++k) {
        info.dims.push_back(v.dims[k]);
        info.dim_names.emplace_back(v.dim_names[k]);
      }
      out.push_back(std::move(info));
    }
    return out;
  }
  std::shared_ptr<kiln_session> s_;
};

}  // namespace kiln
