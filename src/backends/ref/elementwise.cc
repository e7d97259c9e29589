// Reference kernels for the elementwise op family: the family's one kernel list, gathered from
// the unary (elementwise_unary.cc), binary/variadic (elementwise_binary.cc) and cast/clip/predicate
// (elementwise_cast.cc) parts.
#include <vector>

#include "backends/ref/elementwise_internal.h"

namespace kiln {

namespace ew {

Result<Shape> AlignLegacyBroadcast(const KernelContext& ctx, const Shape& a, const Shape& b) {
  if (ctx.opset() >= 7) return b;
  if (ctx.attrs().GetInt("broadcast", 0) == 0) {
    if (a != b) {
      return ctx.Error("inputs must have equal shapes when broadcast=0 (opset " +
                       std::to_string(ctx.opset()) + "), found " + ShapeToString(a) + " and " +
                       ShapeToString(b));
    }
    return b;
  }
  const int ra = static_cast<int>(a.size());
  const int rb = static_cast<int>(b.size());
  if (rb > ra) {
    return ctx.Error("B of rank " + std::to_string(rb) + " cannot broadcast to A of rank " +
                     std::to_string(ra));
  }
  int64_t axis = ctx.attrs().GetInt("axis", ra - rb);
  if (axis < 0) axis += ra;
  if (axis < 0 || axis + rb > ra) {
    return ctx.Error("axis " + std::to_string(ctx.attrs().GetInt("axis", 0)) + " cannot place B " +
                     ShapeToString(b) + " inside A " + ShapeToString(a));
  }
  Shape aligned(static_cast<size_t>(ra), 1);
  for (int i = 0; i < rb; ++i) {
    const int64_t d = b[static_cast<size_t>(i)];
    const int64_t ad = a[static_cast<size_t>(axis + i)];
    if (d != ad && d != 1) {
      return ctx.Error("B " + ShapeToString(b) + " does not match A " + ShapeToString(a) +
                       " at axis " + std::to_string(axis));
    }
    aligned[static_cast<size_t>(axis + i)] = d;
  }
  return aligned;
}

}  // namespace ew

std::span<const KernelDef> ElementwiseKernels() {
  static const std::vector<KernelDef> kKernels = [] {
    std::vector<KernelDef> all;
    for (auto part : {ew::UnaryKernels(), ew::BinaryKernels(), ew::CastKernels()}) {
      all.insert(all.end(), part.begin(), part.end());
    }
    return all;
  }();
  return kKernels;
}

}  // namespace kiln
