// Conversion between the floating element types (f32, f16, bf16, f64), elementwise, rounding
// to nearest even (half.h). Used at API boundaries where a caller hands f32 data to an fp16
// program input (or reads an fp16 output as f32), and by `kiln run` for .npy files of another
// float type than the input declares.
//
//   KILN_ASSIGN_OR_RETURN(Tensor h, ConvertFloatTensor(f32_tensor, ElementType::kF16));
#pragma once

#include "core/status.h"
#include "core/tensor.h"

namespace kiln {

// A new owned tensor holding `src` converted to `type`; both must be floating types.
Result<Tensor> ConvertFloatTensor(const Tensor& src, ElementType type);
// Converts src's elements into `dst`, which holds src.size() elements of `type`.
Status ConvertFloatInto(const Tensor& src, ElementType type, void* dst);

}  // namespace kiln
