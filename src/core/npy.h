// NumPy .npy files (format versions 1.0-3.0): read and write tensors of every element type
// except strings. Little-endian data, C order; Fortran-ordered or big-endian files are rejected
// with a clear error. bf16 has no NumPy dtype: it is written as '<u2' bit patterns only on request.
#pragma once

#include <string>

#include "core/status.h"
#include "core/tensor.h"

namespace kiln {

Result<Tensor> ReadNpy(const std::string& path);
Result<Tensor> ParseNpy(const std::string& bytes, const std::string& what = "npy data");
// Writes atomically (temporary file, then rename): no half-written file on failure.
Status WriteNpy(const std::string& path, const Tensor& tensor);
std::string SerializeNpy(const Tensor& tensor);

}  // namespace kiln
