// CenterCropPad-18: crops or pads each named axis of the input to a target size, centred. Along
// an axis of size d and target t, the output keeps d' = min(d, t) elements: input elements from
// floor((d - t) / 2) when cropping, placed at floor((t - d) / 2) when padding; the rest of the
// output is zero (false, "" for strings). All element types: elements are copied, not read.
#include <algorithm>

#include "backends/ref/tensor_internal.h"

namespace kiln::tensor_ref {

Status CenterCropPad(KernelContext& ctx) {
  KILN_REQUIRE_INPUT(x, 0, "input_data");
  KILN_REQUIRE_INPUT(s, 1, "shape");
  const int r = x->rank();
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> target, IntValues(ctx, *s, "shape"));
  std::vector<int64_t> axes = ctx.attrs().GetInts("axes");
  if (!ctx.attrs().Has("axes")) {
    for (int i = 0; i < r; ++i) axes.push_back(i);
  }
  if (target.size() != axes.size()) {
    return ctx.Error("shape " + s->Describe() + " has " + std::to_string(target.size()) +
                     " values, expected one per axis (" + std::to_string(axes.size()) + ")");
  }
  Shape out_shape = x->shape();
  std::vector<bool> seen(static_cast<size_t>(r), false);
  for (size_t i = 0; i < axes.size(); ++i) {
    KILN_ASSIGN_OR_RETURN(int a, NormalizeAxis(ctx, axes[i], r));
    if (seen[a]) return ctx.Error("axis " + std::to_string(axes[i]) + " is repeated in axes");
    seen[a] = true;
    if (target[i] < 0) return ctx.Error("shape has a negative value " + std::to_string(target[i]));
    out_shape[a] = target[i];
  }
  KILN_RETURN_IF_ERROR(CheckedNumElements(out_shape).status());
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.output(0, x->type(), out_shape));
  const ElementCopier c(x->type());
  const Tensor zero = Tensor::Allocate(x->type(), {}).value();
  c.Fill(out->raw(), 0, out->size(), zero.raw(), 0);
  if (out->size() == 0 || x->size() == 0) return Status::Ok();
  // The kept block: `keep` elements per axis, from `in_at` in the input to `out_at` in the output.
  Shape keep(static_cast<size_t>(r));
  std::vector<int64_t> in_at(static_cast<size_t>(r)), out_at(static_cast<size_t>(r));
  for (int a = 0; a < r; ++a) {
    const int64_t d = x->dim(a), t = out_shape[a];
    keep[a] = std::min(d, t);
    in_at[a] = d > t ? (d - t) / 2 : 0;
    out_at[a] = t > d ? (t - d) / 2 : 0;
  }
  const int64_t rows = r == 0 ? 1 : DimProduct(keep, 0, r - 1);
  const int64_t row = r == 0 ? 1 : keep[r - 1];
  const auto in_strides = Strides(x->shape());
  const auto out_strides = Strides(out_shape);
  std::vector<int64_t> idx(static_cast<size_t>(std::max(r - 1, 0)), 0);
  for (int64_t q = 0; q < rows; ++q) {
    int64_t si = 0, di = 0;
    for (int a = 0; a < r; ++a) {
      const int64_t k = a < r - 1 ? idx[a] : 0;
      si += (in_at[a] + k) * in_strides[a];
      di += (out_at[a] + k) * out_strides[a];
    }
    c.Copy(out->raw(), di, x->raw(), si, row);
    for (int a = r - 2; a >= 0; --a) {
      if (++idx[a] < keep[a]) break;
      idx[a] = 0;
    }
  }
  return Status::Ok();
}

}  // namespace kiln::tensor_ref
