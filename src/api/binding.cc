// C API: bindings (the buffers of a run), kiln_session_run, and Kiln-allocated output tensors.
#include <cstring>

#include "api/api_internal.h"
#include "core/float_convert.h"

namespace kiln::api {
namespace {

std::string TypeName(ElementType t) { return ElementTypeName(t); }

kiln_status IndexError(const char* fn, size_t index, size_t count, const char* what) {
  return Fail(KILN_ERROR_OUT_OF_RANGE, std::string(fn) + ": index " + std::to_string(index) +
                                           " is out of range: the model has " +
                                           std::to_string(count) + " " + what);
}

// Writes one output into the caller's buffer (converting float types when allowed).
Status WriteOutput(const Tensor& t, const KilnOutputBinding& b, const std::string& name) {
  const size_t need = static_cast<size_t>(t.size()) * ElementSize(b.type);
  if (b.type != t.type() && !(b.convert && IsFloating(b.type) && IsFloating(t.type()))) {
    return InvalidArgument("kiln_session_run: output '" + name + "' is " + TypeName(t.type()) +
                           " but its bound buffer is " + TypeName(b.type) +
                           (IsFloating(b.type) && IsFloating(t.type())
                                ? ": bind it with KILN_BIND_CONVERT to convert"
                                : ""));
  }
  if (need != b.bytes) {
    return InvalidArgument("kiln_session_run: output '" + name + "' " + t.Describe() + " needs " +
                           std::to_string(need) + " bytes as " + TypeName(b.type) +
                           ", its bound buffer has " + std::to_string(b.bytes));
  }
  return ConvertFloatOrCopy(t, b.type, b.data);
}

}  // namespace

Status ConvertFloatOrCopy(const Tensor& t, ElementType type, void* dst) {
  // The API entry points refuse a NULL buffer for a non-empty tensor; kept here too, so that no
  // path writes through one.
  if (dst == nullptr) {
    if (t.size() == 0 && t.bytes() == 0) return Status::Ok();  // nothing to write
    return InvalidArgument("no destination buffer for " + t.Describe());
  }
  if (t.type() == type) {
    if (t.bytes() > 0) std::memcpy(dst, t.raw(), t.bytes());
    return Status::Ok();
  }
  return ConvertFloatInto(t, type, dst);
}

}  // namespace kiln::api

using kiln::ElementType;
using kiln::api::Fail;
using kiln::api::Guard;
using kiln::api::NullArgument;

extern "C" {

kiln_status kiln_binding_create(kiln_session* session, kiln_binding** out_binding) {
  constexpr const char* fn = "kiln_binding_create";
  return Guard(fn, [&] {
    if (session == nullptr) return NullArgument(fn, "session");
    if (out_binding == nullptr) return NullArgument(fn, "out_binding");
    auto b = std::make_unique<kiln_binding>();
    b->session = session;
    b->inputs.resize(session->inputs.size());
    b->output_buffers.resize(session->outputs.size());
    *out_binding = b.release();
    return KILN_OK;
  });
}

void kiln_binding_release(kiln_binding* binding) { delete binding; }

kiln_status kiln_binding_set_input(kiln_binding* binding, size_t index, kiln_element_type type,
                                   const int64_t* shape, size_t rank, const void* data,
                                   size_t bytes, uint32_t flags) {
  constexpr const char* fn = "kiln_binding_set_input";
  return Guard(fn, [&]() -> kiln_status {
    if (binding == nullptr) return NullArgument(fn, "binding");
    const auto& descs = binding->session->inputs;
    if (index >= descs.size()) return kiln::api::IndexError(fn, index, descs.size(), "inputs");
    const KilnValueDesc& d = descs[index];
    const std::string what = std::string(fn) + ": input '" + d.name + "'";
    if (shape == nullptr && rank > 0) return NullArgument(fn, "shape");
    const ElementType t = kiln::api::FromC(type);
    if (t == ElementType::kUndefined || t == ElementType::kString) {
      return Fail(KILN_ERROR_INVALID_ARGUMENT,
                  what + ": element type " + std::to_string(type) +
                      " cannot be bound (a kiln_element_type other than UNDEFINED and STRING)");
    }
    if ((flags & ~KILN_BIND_CONVERT) != 0) {
      return Fail(KILN_ERROR_INVALID_ARGUMENT,
                  what + ": unknown flags " + std::to_string(flags & ~KILN_BIND_CONVERT));
    }
    kiln::Shape s(shape, shape + rank);
    auto count = kiln::CheckedNumElements(s);
    if (!count.ok()) return Fail(count.status().WithContext(what));
    if (d.rank >= 0) {
      if (static_cast<int64_t>(rank) != d.rank) {
        return Fail(KILN_ERROR_INVALID_ARGUMENT, what + ": rank " + std::to_string(rank) +
                                                     " given, the model declares rank " +
                                                     std::to_string(d.rank));
      }
      for (size_t k = 0; k < rank; ++k) {
        if (d.dims[k] >= 0 && d.dims[k] != s[k]) {
          return Fail(KILN_ERROR_INVALID_ARGUMENT,
                      what + ": shape " + kiln::ShapeToString(s) + " given, dim " +
                          std::to_string(k) + " must be " + std::to_string(d.dims[k]));
        }
      }
    }
    const size_t need = static_cast<size_t>(*count) * kiln::ElementSize(t);
    if (bytes != need) {
      return Fail(KILN_ERROR_INVALID_ARGUMENT, what + ": " + std::to_string(bytes) +
                                                   " bytes given, " + kiln::ElementTypeName(t) +
                                                   kiln::ShapeToString(s) + " needs " +
                                                   std::to_string(need));
    }
    if (data == nullptr && need > 0) return NullArgument(fn, "data");
    const ElementType declared = kiln::api::FromC(d.type);
    kiln::Tensor x = kiln::Tensor::Wrap(t, s, const_cast<void*>(data));
    if (declared != ElementType::kUndefined && declared != t) {
      const bool floats = kiln::IsFloating(declared) && kiln::IsFloating(t);
      if (!floats || (flags & KILN_BIND_CONVERT) == 0) {
        return Fail(KILN_ERROR_INVALID_ARGUMENT,
                    what + " is " + kiln::ElementTypeName(declared) + ", the data is " +
                        kiln::ElementTypeName(t) +
                        (floats ? ": pass KILN_BIND_CONVERT to convert at the boundary" : ""));
      }
      auto converted = kiln::ConvertFloatTensor(x, declared);
      if (!converted.ok()) return Fail(converted.status().WithContext(what));
      x = std::move(converted).value();
    }
    binding->inputs[index] = std::move(x);
    return KILN_OK;
  });
}

kiln_status kiln_binding_set_output(kiln_binding* binding, size_t index, kiln_element_type type,
                                    void* data, size_t bytes, uint32_t flags) {
  constexpr const char* fn = "kiln_binding_set_output";
  return Guard(fn, [&]() -> kiln_status {
    if (binding == nullptr) return NullArgument(fn, "binding");
    const auto& descs = binding->session->outputs;
    if (index >= descs.size()) return kiln::api::IndexError(fn, index, descs.size(), "outputs");
    const std::string what = std::string(fn) + ": output '" + descs[index].name + "'";
    if ((flags & ~KILN_BIND_CONVERT) != 0) {
      return Fail(KILN_ERROR_INVALID_ARGUMENT,
                  what + ": unknown flags " + std::to_string(flags & ~KILN_BIND_CONVERT));
    }
    if (data == nullptr) {
      binding->output_buffers[index] = {};
      return KILN_OK;
    }
    const ElementType t = kiln::api::FromC(type);
    if (t == ElementType::kUndefined || t == ElementType::kString) {
      return Fail(KILN_ERROR_INVALID_ARGUMENT,
                  what + ": element type " + std::to_string(type) + " cannot be bound");
    }
    const ElementType declared = kiln::api::FromC(descs[index].type);
    if (declared != ElementType::kUndefined && declared != t &&
        !((flags & KILN_BIND_CONVERT) != 0 && kiln::IsFloating(declared) &&
          kiln::IsFloating(t))) {
      return Fail(KILN_ERROR_INVALID_ARGUMENT,
                  what + " is " + kiln::ElementTypeName(declared) + ", the buffer is " +
                      kiln::ElementTypeName(t) +
                      (kiln::IsFloating(declared) && kiln::IsFloating(t)
                           ? ": pass KILN_BIND_CONVERT to convert at the boundary"
                           : ""));
    }
    binding->output_buffers[index] = {data, bytes, t, (flags & KILN_BIND_CONVERT) != 0};
    return KILN_OK;
  });
}

kiln_status kiln_session_run(kiln_session* session, kiln_binding* binding) {
  constexpr const char* fn = "kiln_session_run";
  return Guard(fn, [&]() -> kiln_status {
    if (session == nullptr) return NullArgument(fn, "session");
    if (binding == nullptr) return NullArgument(fn, "binding");
    if (binding->session != session) {
      return Fail(KILN_ERROR_INVALID_ARGUMENT, std::string(fn) +
                                                   ": the binding belongs to another session");
    }
    auto inputs = kiln::api::BoundInputs(*binding, fn);
    if (!inputs.ok()) return Fail(KILN_ERROR_WRONG_ORDER, inputs.status().message());
    auto outputs = [&]() -> kiln::Result<std::vector<kiln::Tensor>> {
      if (session->serving) {
        std::lock_guard<std::mutex> lock(session->serving_mu);
        return session->serving->Run(*inputs);
      }
      return session->session->Run(*inputs);
    }();
    if (!outputs.ok()) return Fail(outputs.status().WithContext(fn));
    for (size_t i = 0; i < outputs->size(); ++i) {
      const KilnOutputBinding& b = binding->output_buffers[i];
      if (b.data == nullptr) continue;
      kiln::Status s = kiln::api::WriteOutput((*outputs)[i], b, session->outputs[i].name);
      if (!s.ok()) return Fail(s);
    }
    binding->outputs = std::move(outputs).value();
    binding->has_run = true;
    return KILN_OK;
  });
}

kiln_status kiln_binding_get_output(const kiln_binding* binding, size_t index,
                                    kiln_tensor** out_tensor) {
  constexpr const char* fn = "kiln_binding_get_output";
  return Guard(fn, [&]() -> kiln_status {
    if (binding == nullptr) return NullArgument(fn, "binding");
    if (out_tensor == nullptr) return NullArgument(fn, "out_tensor");
    const size_t count = binding->session->outputs.size();
    if (index >= count) return kiln::api::IndexError(fn, index, count, "outputs");
    if (!binding->has_run) {
      return Fail(KILN_ERROR_WRONG_ORDER,
                  std::string(fn) + ": no output yet: call kiln_session_run with this binding first");
    }
    auto t = std::make_unique<kiln_tensor>();
    t->tensor = binding->outputs[index];
    t->shape = t->tensor.shape();
    *out_tensor = t.release();
    return KILN_OK;
  });
}

kiln_element_type kiln_tensor_type(const kiln_tensor* tensor) {
  return tensor ? kiln::api::ToC(tensor->tensor.type()) : KILN_UNDEFINED;
}

size_t kiln_tensor_rank(const kiln_tensor* tensor) { return tensor ? tensor->shape.size() : 0; }

const int64_t* kiln_tensor_shape(const kiln_tensor* tensor) {
  return tensor ? tensor->shape.data() : nullptr;
}

const void* kiln_tensor_data(const kiln_tensor* tensor) {
  return tensor ? tensor->tensor.raw() : nullptr;
}

size_t kiln_tensor_bytes(const kiln_tensor* tensor) { return tensor ? tensor->tensor.bytes() : 0; }

kiln_status kiln_tensor_copy_to(const kiln_tensor* tensor, kiln_element_type type, void* data,
                                size_t bytes) {
  constexpr const char* fn = "kiln_tensor_copy_to";
  return Guard(fn, [&]() -> kiln_status {
    if (tensor == nullptr) return NullArgument(fn, "tensor");
    const ElementType t = kiln::api::FromC(type);
    const kiln::Tensor& x = tensor->tensor;
    if (t == ElementType::kUndefined || t == ElementType::kString) {
      return Fail(KILN_ERROR_INVALID_ARGUMENT,
                  std::string(fn) + ": element type " + std::to_string(type) + " cannot be copied to");
    }
    if (t != x.type() && !(kiln::IsFloating(t) && kiln::IsFloating(x.type()))) {
      return Fail(KILN_ERROR_INVALID_ARGUMENT, std::string(fn) + ": the tensor is " +
                                                   kiln::ElementTypeName(x.type()) +
                                                   ", cannot convert it to " +
                                                   kiln::ElementTypeName(t));
    }
    const size_t need = static_cast<size_t>(x.size()) * kiln::ElementSize(t);
    if (bytes != need) {
      return Fail(KILN_ERROR_INVALID_ARGUMENT, std::string(fn) + ": " + std::to_string(bytes) +
                                                   " bytes given, " + x.Describe() + " as " +
                                                   kiln::ElementTypeName(t) + " needs " +
                                                   std::to_string(need));
    }
    if (data == nullptr && need > 0) return NullArgument(fn, "data");
    kiln::Status s = kiln::api::ConvertFloatOrCopy(x, t, data);
    return s.ok() ? KILN_OK : Fail(s);
  });
}

void kiln_tensor_release(kiln_tensor* tensor) { delete tensor; }

}  // extern "C"
