// Col2Im-18: the inverse of im2col. Input [N, C * prod(block_shape), L] holds, for every block
// position l (L of them, row-major over the sliding positions) and every tap k of the block, one
// value; it is added into image [N, C, image_shape...] at
//   p_i = o_i * strides_i - pads_begin_i + k_i * dilations_i   (o: the position of l, per dim),
// taps outside the image are dropped. L must equal prod_i o_count_i with
//   o_count_i = (image_i + pads_begin_i + pads_end_i - (dilations_i * (block_i - 1) + 1))
//               / strides_i + 1.
// Overlapping taps accumulate in double, rounded once on store.
#include <algorithm>
#include <string>

#include "backends/ref/nn_internal.h"

namespace kiln::nn {
namespace {

Result<std::vector<int64_t>> ShapeValues(const KernelContext& ctx, const Tensor* t,
                                         const char* what) {
  if (t == nullptr) return ctx.Error(std::string("missing required input '") + what + "'");
  if (t->rank() != 1 || (t->type() != ElementType::kI64 && t->type() != ElementType::kI32)) {
    return ctx.Error(std::string(what) + " must be a 1-D int64 tensor, found " + t->Describe());
  }
  std::vector<int64_t> v(static_cast<size_t>(t->size()));
  for (int64_t i = 0; i < t->size(); ++i) v[i] = t->GetAsInt64(i);
  return v;
}

}  // namespace

Status Col2ImKernel(KernelContext& ctx) {
  const Tensor* x = ctx.input(0);
  if (x == nullptr) return ctx.Error("missing required input 'input'");
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> image, ShapeValues(ctx, ctx.input(1), "image_shape"));
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> block, ShapeValues(ctx, ctx.input(2), "block_shape"));
  const int nd = static_cast<int>(image.size());
  if (nd == 0 || static_cast<int>(block.size()) != nd) {
    return ctx.Error("image_shape and block_shape must have the same, non-zero length, found " +
                     std::to_string(image.size()) + " and " + std::to_string(block.size()));
  }
  if (x->rank() != 3)
    return ctx.Error("input must be [N, C * prod(block_shape), L], found " + x->Describe());
  const Attributes& at = ctx.attrs();
  const std::vector<int64_t> dil = at.GetInts("dilations", std::vector<int64_t>(nd, 1));
  const std::vector<int64_t> pads = at.GetInts("pads", std::vector<int64_t>(2 * nd, 0));
  const std::vector<int64_t> str = at.GetInts("strides", std::vector<int64_t>(nd, 1));
  if (static_cast<int>(dil.size()) != nd || static_cast<int>(str.size()) != nd ||
      static_cast<int>(pads.size()) != 2 * nd) {
    return ctx.Error("dilations and strides need " + std::to_string(nd) + " values and pads " +
                     std::to_string(2 * nd));
  }
  int64_t taps = 1, positions = 1;
  std::vector<int64_t> count(static_cast<size_t>(nd));
  for (int i = 0; i < nd; ++i) {
    if (image[i] <= 0 || block[i] <= 0 || dil[i] <= 0 || str[i] <= 0 || pads[i] < 0 ||
        pads[i + nd] < 0) {
      return ctx.Error(
          "image_shape, block_shape, dilations and strides must be positive and "
          "pads non-negative");
    }
    const int64_t span = image[i] + pads[i] + pads[i + nd] - (dil[i] * (block[i] - 1) + 1);
    if (span < 0)
      return ctx.Error("the block is larger than the padded image in dim " + std::to_string(i));
    count[i] = span / str[i] + 1;
    if (__builtin_mul_overflow(taps, block[i], &taps) ||
        __builtin_mul_overflow(positions, count[i], &positions)) {
      return ctx.Error("block_shape or image_shape is too large");
    }
  }
  const int64_t n = x->dim(0);
  if (x->dim(1) % taps != 0 || x->dim(2) != positions) {
    return ctx.Error("input " + x->Describe() + " must be [N, C * " + std::to_string(taps) + ", " +
                     std::to_string(positions) + "] for these image and block shapes");
  }
  const int64_t c = x->dim(1) / taps;
  Shape out_shape = {n, c};
  out_shape.insert(out_shape.end(), image.begin(), image.end());
  KILN_RETURN_IF_ERROR(CheckedNumElements(out_shape).status());
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.output(0, x->type(), out_shape));
  int64_t plane = 1;
  for (int64_t d : image) plane *= d;
  // For every (tap, position) pair the image offset it lands on, or -1 when outside.
  std::vector<int64_t> target(static_cast<size_t>(taps * positions));
  std::vector<int64_t> k(static_cast<size_t>(nd)), o(static_cast<size_t>(nd));
  for (int64_t t = 0; t < taps; ++t) {
    int64_t rem = t;
    for (int i = nd - 1; i >= 0; --i) {
      k[i] = rem % block[i];
      rem /= block[i];
    }
    for (int64_t l = 0; l < positions; ++l) {
      int64_t lr = l, off = 0;
      bool inside = true;
      for (int i = nd - 1; i >= 0; --i) {
        o[i] = lr % count[i];
        lr /= count[i];
      }
      for (int i = 0; i < nd && inside; ++i) {
        const int64_t p = o[i] * str[i] - pads[i] + k[i] * dil[i];
        inside = p >= 0 && p < image[i];
        off = off * image[i] + p;
      }
      target[t * positions + l] = inside ? off : -1;
    }
  }
  const bool ok = Dispatch<kDispatchFloat>(x->type(), [&](auto tag) {
    using T = decltype(tag);
    const T* xd = x->data<T>();
    T* yd = y->data<T>();
    std::vector<double> acc(static_cast<size_t>(plane));
    for (int64_t b = 0; b < n * c; ++b) {
      std::fill(acc.begin(), acc.end(), 0.0);
      const T* col = xd + b * taps * positions;
      for (int64_t j = 0; j < taps * positions; ++j) {
        if (target[j] >= 0) acc[target[j]] += ToD(col[j]);
      }
      for (int64_t p = 0; p < plane; ++p) yd[b * plane + p] = FromD<T>(acc[p]);
    }
  });
  if (!ok) return ctx.UnsupportedType(x->type());
  return Status::Ok();
}

}  // namespace kiln::nn
