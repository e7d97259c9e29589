#include "core/float_convert.h"

#include <cstring>

namespace kiln {

Status ConvertFloatInto(const Tensor& src, ElementType type, void* dst) {
  if (!IsFloating(src.type()) || !IsFloating(type)) {
    return InvalidArgument(std::string("cannot convert ") + ElementTypeName(src.type()) + " to " +
                           ElementTypeName(type) + ": only float types (f32, f16, bf16, f64) " +
                           "convert into each other");
  }
  if (src.type() == type) {
    if (src.bytes() > 0) std::memcpy(dst, src.raw(), src.bytes());
    return Status::Ok();
  }
  Dispatch<kDispatchFloat>(src.type(), [&](auto in_tag) {
    using In = decltype(in_tag);
    const In* in = src.data<In>();
    Dispatch<kDispatchFloat>(type, [&](auto out_tag) {
      using Out = decltype(out_tag);
      Out* out = static_cast<Out*>(dst);
      for (int64_t i = 0; i < src.size(); ++i) {
        if constexpr (std::is_same_v<In, double>) {
          out[i] = static_cast<Out>(in[i]);
        } else if constexpr (std::is_same_v<Out, double>) {
          out[i] = static_cast<double>(static_cast<float>(in[i]));
        } else {
          out[i] = Out(static_cast<float>(in[i]));
        }
      }
    });
  });
  return Status::Ok();
}

Result<Tensor> ConvertFloatTensor(const Tensor& src, ElementType type) {
  KILN_ASSIGN_OR_RETURN(Tensor out, Tensor::Allocate(type, src.shape()));
  KILN_RETURN_IF_ERROR(ConvertFloatInto(src, type, out.raw()));
  return out;
}

}  // namespace kiln
