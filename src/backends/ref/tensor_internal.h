// Private helpers of the reference tensor-manipulation kernels (tensor*.cc).
//
// Most ops of this family only move elements around, so they are written once over raw element
// storage: an ElementCopier copies elements of any type (bytes for numeric and bool types,
// std::string assignment for strings), and StridedCopy gathers a strided view of an input into a
// contiguous output, which expresses Transpose, Expand, Tile, Slice, DepthToSpace and
// SpaceToDepth as one loop each with different strides.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "backends/ref/kernel.h"

namespace kiln::tensor_ref {

class ElementCopier {
 public:
  explicit ElementCopier(ElementType t)
      : is_string_(t == ElementType::kString), size_(ElementSize(t)) {}

  // dst[di + j] = src[si + j] for j < n (element indices, not bytes).
  void Copy(void* dst, int64_t di, const void* src, int64_t si, int64_t n) const {
    if (n <= 0) return;
    if (is_string_) {
      auto* d = static_cast<std::string*>(dst) + di;
      const auto* s = static_cast<const std::string*>(src) + si;
      for (int64_t j = 0; j < n; ++j) d[j] = s[j];
      return;
    }
    std::memcpy(static_cast<char*>(dst) + static_cast<size_t>(di) * size_,
                static_cast<const char*>(src) + static_cast<size_t>(si) * size_,
                static_cast<size_t>(n) * size_);
  }
  // Fills dst[di .. di+n) with the element value[vi].
  void Fill(void* dst, int64_t di, int64_t n, const void* value, int64_t vi) const {
    for (int64_t j = 0; j < n; ++j) Copy(dst, di + j, value, vi, 1);
  }
  bool is_string() const { return is_string_; }
  size_t size() const { return size_; }

 private:
  bool is_string_;
  size_t size_;
};

// A numeric or bool element as double (f16/bf16 through float).
template <typename T>
double ToDouble(T v) {
  if constexpr (std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>) {
    return static_cast<double>(static_cast<float>(v));
  } else {
    return static_cast<double>(v);
  }
}

// a + b and a * b that wrap for integers (no signed-overflow UB), round through float for
// f16/bf16, and act as OR / AND on bool.
template <typename T>
T AddWrap(T a, T b) {
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    return static_cast<T>(static_cast<uint64_t>(a) + static_cast<uint64_t>(b));
  } else if constexpr (std::is_same_v<T, bool>) {
    return a || b;
  } else {
    return static_cast<T>(a + b);
  }
}
template <typename T>
T MulWrap(T a, T b) {
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    return static_cast<T>(static_cast<uint64_t>(a) * static_cast<uint64_t>(b));
  } else if constexpr (std::is_same_v<T, bool>) {
    return a && b;
  } else {
    return static_cast<T>(a * b);
  }
}

// Contiguous dst of shape `shape`: dst[i0..ik] = src[offset + sum_k i_k * strides[k]].
// Strides are in elements and may be zero (broadcast) or negative (reversed slices).
void StridedCopy(const ElementCopier& c, const void* src, int64_t offset,
                 std::span<const int64_t> strides, void* dst, const Shape& shape);

// Axis in [-rank, rank) to [0, rank), or an error naming the node.
Result<int> NormalizeAxis(const KernelContext& ctx, int64_t axis, int rank);

// Values of an integer tensor (indices, shapes, pads ...); an error for other element types.
Result<std::vector<int64_t>> IntValues(const KernelContext& ctx, const Tensor& t, const char* what);

// Input i, or nullptr with *st set to an error naming the missing input.
inline const Tensor* RequireInput(const KernelContext& ctx, size_t i, const char* name,
                                  Status* st) {
  const Tensor* t = ctx.input(i);
  if (t == nullptr) *st = ctx.Error(std::string("missing required input '") + name + "'");
  return t;
}
#define KILN_REQUIRE_INPUT(var, i, name)                           \
  Status var##_missing_;                                           \
  const Tensor* var = RequireInput(ctx, i, name, &var##_missing_); \
  if (var == nullptr) return var##_missing_

// Product of shape[begin, end).
int64_t DimProduct(const Shape& shape, int begin, int end);

// Shape-only and layout kernels (tensor.cc, tensor_layout.cc).
Status Reshape(KernelContext& ctx);
Status Flatten(KernelContext& ctx);
Status Squeeze(KernelContext& ctx);
Status Unsqueeze(KernelContext& ctx);
Status Identity(KernelContext& ctx);
Status ShapeOp(KernelContext& ctx);
Status Size(KernelContext& ctx);
Status ConstantOfShape(KernelContext& ctx);
Status Constant(KernelContext& ctx);
Status Range(KernelContext& ctx);
Status EyeLike(KernelContext& ctx);
Status Transpose(KernelContext& ctx);
Status Concat(KernelContext& ctx);
Status Split(KernelContext& ctx);
Status Expand(KernelContext& ctx);
Status Tile(KernelContext& ctx);
Status DepthToSpace(KernelContext& ctx);
Status SpaceToDepth(KernelContext& ctx);
Status Slice(KernelContext& ctx);
Status Pad(KernelContext& ctx);
Status CenterCropPad(KernelContext& ctx);  // tensor_crop.cc

// Indexing kernels (tensor_index.cc).
Status Gather(KernelContext& ctx);
Status GatherElements(KernelContext& ctx);
Status GatherND(KernelContext& ctx);
Status ScatterElements(KernelContext& ctx);
Status ScatterND(KernelContext& ctx);
Status Compress(KernelContext& ctx);
Status OneHot(KernelContext& ctx);
Status NonZero(KernelContext& ctx);
Status ReverseSequence(KernelContext& ctx);
Status Trilu(KernelContext& ctx);

// Ordering and accumulation kernels (tensor_sort.cc).
Status TopK(KernelContext& ctx);
Status Unique(KernelContext& ctx);
Status CumSum(KernelContext& ctx);
Status ArgMax(KernelContext& ctx);
Status ArgMin(KernelContext& ctx);

}  // namespace kiln::tensor_ref
