// Reference kernels that rearrange elements without looking at them: Transpose, Concat, Split,
// Expand, Tile, DepthToSpace, SpaceToDepth, Slice and Pad. All element types are handled by
// copying raw elements (strings by assignment).
#include <algorithm>

#include "backends/ref/tensor_internal.h"
#include "ir/infer_util.h"

namespace kiln::tensor_ref {
namespace {

// Numpy broadcast of one dim pair, or -1 when incompatible.
int64_t BroadcastDim(int64_t a, int64_t b) {
  if (a == b || b == 1) return a;
  if (a == 1) return b;
  return -1;
}

}  // namespace

Status Transpose(KernelContext& ctx) {
  KILN_REQUIRE_INPUT(x, 0, "data");
  const int r = x->rank();
  std::vector<int64_t> perm = ctx.attrs().GetInts("perm");
  if (!ctx.attrs().Has("perm")) {
    for (int i = r - 1; i >= 0; --i) perm.push_back(i);
  }
  if (static_cast<int>(perm.size()) != r) {
    return ctx.Error("perm has " + std::to_string(perm.size()) + " entries, input " +
                     x->Describe() + " has rank " + std::to_string(r));
  }
  const auto in_strides = Strides(x->shape());
  std::vector<bool> seen(static_cast<size_t>(r), false);
  Shape out_shape(static_cast<size_t>(r));
  std::vector<int64_t> strides(static_cast<size_t>(r));
  for (int i = 0; i < r; ++i) {
    const int64_t p = perm[i];
    if (p < 0 || p >= r || seen[p]) return ctx.Error("perm is not a permutation of 0..rank-1");
    seen[p] = true;
    out_shape[i] = x->dim(static_cast<int>(p));
    strides[i] = in_strides[p];
  }
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.output(0, x->type(), out_shape));
  StridedCopy(ElementCopier(x->type()), x->raw(), 0, strides, out->raw(), out_shape);
  return Status::Ok();
}

Status Concat(KernelContext& ctx) {
  std::vector<const Tensor*> ins;
  for (size_t i = 0; i < ctx.num_inputs(); ++i) {
    if (ctx.input(i) != nullptr) ins.push_back(ctx.input(i));
  }
  if (ins.empty()) return ctx.Error("needs at least one input");
  const Tensor& first = *ins[0];
  const int r = first.rank();
  if (r == 0) return ctx.Error("cannot concatenate scalars");
  if (ctx.opset() >= 4 && !ctx.attrs().Has("axis")) return ctx.Error("missing attribute 'axis'");
  KILN_ASSIGN_OR_RETURN(int axis, NormalizeAxis(ctx, ctx.attrs().GetInt("axis", 1), r));
  Shape out_shape = first.shape();
  out_shape[axis] = 0;
  for (const Tensor* t : ins) {
    bool same = t->type() == first.type() && t->rank() == r;
    for (int d = 0; same && d < r; ++d) same = d == axis || t->dim(d) == first.dim(d);
    if (!same) {
      return ctx.Error("inputs " + first.Describe() + " and " + t->Describe() +
                       " differ outside axis " + std::to_string(axis));
    }
    out_shape[axis] += t->dim(axis);
  }
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.output(0, first.type(), out_shape));
  const ElementCopier c(first.type());
  const int64_t outer = DimProduct(out_shape, 0, axis);
  const int64_t inner = DimProduct(out_shape, axis + 1, r);
  int64_t pos = 0;
  for (int64_t o = 0; o < outer; ++o) {
    for (const Tensor* t : ins) {
      const int64_t chunk = t->dim(axis) * inner;
      c.Copy(out->raw(), pos, t->raw(), o * chunk, chunk);
      pos += chunk;
    }
  }
  return Status::Ok();
}

Status Split(KernelContext& ctx) {
  KILN_REQUIRE_INPUT(x, 0, "input");
  const int r = x->rank();
  KILN_ASSIGN_OR_RETURN(int axis, NormalizeAxis(ctx, ctx.attrs().GetInt("axis", 0), r));
  const int64_t n = static_cast<int64_t>(ctx.num_outputs());
  if (n == 0) return ctx.Error("has no outputs");
  std::vector<int64_t> split;
  // Split-18: the sizes come from the `split` input or from `num_outputs` (one of the two).
  const bool by_count = ctx.opset() >= 18 && ctx.attrs().Has("num_outputs");
  if (ctx.opset() >= 18 && by_count == (ctx.input(1) != nullptr)) {
    return ctx.Error(by_count ? "has both the split input and the num_outputs attribute"
                              : "needs the split input or the num_outputs attribute");
  }
  if (by_count) {
    const int64_t count = ctx.attrs().GetInt("num_outputs", 0);
    if (count != n) {
      return ctx.Error("num_outputs is " + std::to_string(count) + ", but the node has " +
                       std::to_string(n) + " outputs");
    }
    split = SplitChunks(x->dim(axis), n);
    if (split.empty()) {
      return ctx.Error("dim " + std::to_string(x->dim(axis)) + " of input " + x->Describe() +
                       " cannot be split into " + std::to_string(n) +
                       " chunks of ceil(dim / num_outputs) with a smaller last one");
    }
  } else if (const Tensor* s = ctx.input(1)) {
    KILN_ASSIGN_OR_RETURN(split, IntValues(ctx, *s, "split"));
  } else if (ctx.attrs().Has("split")) {
    split = ctx.attrs().GetInts("split");
  } else {
    if (x->dim(axis) % n != 0) {
      return ctx.Error("dim " + std::to_string(x->dim(axis)) + " of input " + x->Describe() +
                       " cannot be split evenly into " + std::to_string(n) + " outputs");
    }
    split.assign(static_cast<size_t>(n), x->dim(axis) / n);
  }
  int64_t total = 0;
  for (int64_t s : split) {
    if (s < 0 || s > x->dim(axis)) return ctx.Error("split has a size outside [0, dim]");
    total += s;
  }
  if (static_cast<int64_t>(split.size()) != n || total != x->dim(axis)) {
    return ctx.Error("split " + ShapeToString(split) + " does not divide dim " +
                     std::to_string(x->dim(axis)) + " into " + std::to_string(n) + " outputs");
  }
  const ElementCopier c(x->type());
  const int64_t outer = DimProduct(x->shape(), 0, axis);
  const int64_t inner = DimProduct(x->shape(), axis + 1, r);
  const int64_t row = x->dim(axis) * inner;
  int64_t offset = 0;
  for (int64_t i = 0; i < n; ++i) {
    Shape shape = x->shape();
    shape[axis] = split[i];
    KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.output(static_cast<size_t>(i), x->type(), shape));
    const int64_t chunk = split[i] * inner;
    for (int64_t o = 0; o < outer; ++o)
      c.Copy(out->raw(), o * chunk, x->raw(), o * row + offset, chunk);
    offset += chunk;
  }
  return Status::Ok();
}

Status Expand(KernelContext& ctx) {
  KILN_REQUIRE_INPUT(x, 0, "input");
  KILN_REQUIRE_INPUT(s, 1, "shape");
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> target, IntValues(ctx, *s, "shape"));
  const int xr = x->rank();
  const int r = std::max<int>(xr, static_cast<int>(target.size()));
  Shape out_shape(static_cast<size_t>(r));
  std::vector<int64_t> strides(static_cast<size_t>(r), 0);
  const auto in_strides = Strides(x->shape());
  for (int i = 0; i < r; ++i) {
    const int xi = i - (r - xr), ti = i - (r - static_cast<int>(target.size()));
    const int64_t a = xi >= 0 ? x->dim(xi) : 1;
    const int64_t b = ti >= 0 ? target[ti] : 1;
    const int64_t d = BroadcastDim(a, b);
    if (d < 0 || b < 0) {
      return ctx.Error("cannot expand input " + x->Describe() + " to shape " +
                       ShapeToString(target));
    }
    out_shape[i] = d;
    if (xi >= 0 && a == d) strides[i] = in_strides[xi];
  }
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.output(0, x->type(), out_shape));
  StridedCopy(ElementCopier(x->type()), x->raw(), 0, strides, out->raw(), out_shape);
  return Status::Ok();
}

Status Tile(KernelContext& ctx) {
  KILN_REQUIRE_INPUT(x, 0, "input");
  const int r = x->rank();
  std::vector<int64_t> repeats;
  if (ctx.opset() < 6) {
    // Tile-1: a scalar 'tiles' count along a scalar 'axis'.
    KILN_REQUIRE_INPUT(tiles, 1, "tiles");
    KILN_REQUIRE_INPUT(axis_t, 2, "axis");
    KILN_ASSIGN_OR_RETURN(auto tv, IntValues(ctx, *tiles, "tiles"));
    KILN_ASSIGN_OR_RETURN(auto av, IntValues(ctx, *axis_t, "axis"));
    if (tv.size() != 1 || av.size() != 1) return ctx.Error("tiles and axis must be scalars");
    KILN_ASSIGN_OR_RETURN(int axis, NormalizeAxis(ctx, av[0], r));
    repeats.assign(static_cast<size_t>(r), 1);
    repeats[axis] = tv[0];
  } else {
    KILN_REQUIRE_INPUT(rep, 1, "repeats");
    KILN_ASSIGN_OR_RETURN(repeats, IntValues(ctx, *rep, "repeats"));
  }
  if (static_cast<int>(repeats.size()) != r) {
    return ctx.Error("repeats has " + std::to_string(repeats.size()) + " values, input " +
                     x->Describe() + " has rank " + std::to_string(r));
  }
  // Output viewed as [r0, d0, r1, d1, ...] reads input dim k with stride 0 along r_k.
  const auto in_strides = Strides(x->shape());
  Shape view, out_shape;
  std::vector<int64_t> strides;
  for (int i = 0; i < r; ++i) {
    if (repeats[i] < 0) return ctx.Error("repeats has a negative value");
    view.push_back(repeats[i]);
    view.push_back(x->dim(i));
    strides.push_back(0);
    strides.push_back(in_strides[i]);
  }
  KILN_RETURN_IF_ERROR(CheckedNumElements(view).status());  // before any product can overflow
  for (int i = 0; i < r; ++i) out_shape.push_back(repeats[i] * x->dim(i));
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.output(0, x->type(), out_shape));
  StridedCopy(ElementCopier(x->type()), x->raw(), 0, strides, out->raw(), view);
  return Status::Ok();
}

namespace {

Result<int64_t> BlockSize(KernelContext& ctx, const Tensor& x) {
  if (x.rank() != 4) return ctx.Error("input must be 4-D, found " + x.Describe());
  if (!ctx.attrs().Has("blocksize")) return ctx.Error("missing attribute 'blocksize'");
  const int64_t b = ctx.attrs().GetInt("blocksize", 0);
  if (b <= 0 || b > (int64_t{1} << 20)) {
    return ctx.Error("blocksize must be in [1, 2^20], found " + std::to_string(b));
  }
  return b;
}

}  // namespace

Status DepthToSpace(KernelContext& ctx) {
  KILN_REQUIRE_INPUT(x, 0, "input");
  KILN_ASSIGN_OR_RETURN(int64_t b, BlockSize(ctx, *x));
  const int64_t n = x->dim(0), c = x->dim(1), h = x->dim(2), w = x->dim(3);
  if (c % (b * b) != 0) {
    return ctx.Error("channels of " + x->Describe() + " are not a multiple of blocksize^2");
  }
  const int64_t oc = c / (b * b);
  const std::string mode = ctx.opset() >= 11 ? ctx.attrs().GetString("mode", "DCR") : "DCR";
  int64_t s_c, s_b1, s_b2;
  if (mode == "DCR") {  // channels read as [b1, b2, oc]
    s_b1 = b * oc * h * w;
    s_b2 = oc * h * w;
    s_c = h * w;
  } else if (mode == "CRD") {  // channels read as [oc, b1, b2]
    s_c = b * b * h * w;
    s_b1 = b * h * w;
    s_b2 = h * w;
  } else {
    return ctx.Error("mode must be DCR or CRD, found '" + mode + "'");
  }
  const Shape view = {n, oc, h, b, w, b};
  const std::vector<int64_t> strides = {c * h * w, s_c, w, s_b1, 1, s_b2};
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.output(0, x->type(), {n, oc, h * b, w * b}));
  StridedCopy(ElementCopier(x->type()), x->raw(), 0, strides, out->raw(), view);
  return Status::Ok();
}

Status SpaceToDepth(KernelContext& ctx) {
  KILN_REQUIRE_INPUT(x, 0, "input");
  KILN_ASSIGN_OR_RETURN(int64_t b, BlockSize(ctx, *x));
  const int64_t n = x->dim(0), c = x->dim(1), h = x->dim(2), w = x->dim(3);
  if (h % b != 0 || w % b != 0) {
    return ctx.Error("spatial dims of " + x->Describe() + " are not multiples of blocksize");
  }
  const int64_t oh = h / b, ow = w / b;
  // Output channels are [b1, b2, c]; input is read as [n, c, oh, b1, ow, b2].
  const Shape view = {n, b, b, c, oh, ow};
  const std::vector<int64_t> strides = {c * h * w, w, 1, h * w, b * w, b};
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.output(0, x->type(), {n, c * b * b, oh, ow}));
  StridedCopy(ElementCopier(x->type()), x->raw(), 0, strides, out->raw(), view);
  return Status::Ok();
}

Status Slice(KernelContext& ctx) {
  KILN_REQUIRE_INPUT(x, 0, "data");
  const int r = x->rank();
  std::vector<int64_t> starts, ends, axes, steps;
  if (ctx.opset() < 10) {
    if (!ctx.attrs().Has("starts") || !ctx.attrs().Has("ends")) {
      return ctx.Error("missing attribute 'starts' or 'ends'");
    }
    starts = ctx.attrs().GetInts("starts");
    ends = ctx.attrs().GetInts("ends");
    axes = ctx.attrs().GetInts("axes");
  } else {
    KILN_REQUIRE_INPUT(st, 1, "starts");
    KILN_REQUIRE_INPUT(en, 2, "ends");
    KILN_ASSIGN_OR_RETURN(starts, IntValues(ctx, *st, "starts"));
    KILN_ASSIGN_OR_RETURN(ends, IntValues(ctx, *en, "ends"));
    if (const Tensor* a = ctx.input(3)) {
      KILN_ASSIGN_OR_RETURN(axes, IntValues(ctx, *a, "axes"));
    }
    if (const Tensor* s = ctx.input(4)) {
      KILN_ASSIGN_OR_RETURN(steps, IntValues(ctx, *s, "steps"));
    }
  }
  const size_t k = starts.size();
  if (axes.empty() && (ctx.opset() < 10 ? !ctx.attrs().Has("axes") : ctx.input(3) == nullptr)) {
    for (size_t i = 0; i < k; ++i) axes.push_back(static_cast<int64_t>(i));
  }
  if (steps.empty() && (ctx.opset() < 10 || ctx.input(4) == nullptr)) steps.assign(k, 1);
  if (ends.size() != k || axes.size() != k || steps.size() != k) {
    return ctx.Error("starts, ends, axes and steps must have the same length");
  }
  Shape out_shape = x->shape();
  const auto in_strides = Strides(x->shape());
  std::vector<int64_t> strides = in_strides;
  std::vector<bool> seen(static_cast<size_t>(r), false);
  int64_t offset = 0;
  for (size_t i = 0; i < k; ++i) {
    KILN_ASSIGN_OR_RETURN(int a, NormalizeAxis(ctx, axes[i], r));
    if (seen[a]) return ctx.Error("axis " + std::to_string(axes[i]) + " is repeated");
    seen[a] = true;
    const int64_t d = x->dim(a);
    if (steps[i] == 0) return ctx.Error("steps must be non-zero");
    // A step longer than the dim takes at most one element; clamping keeps strides in range.
    const int64_t step =
        std::clamp<int64_t>(steps[i], -std::max<int64_t>(d, 1), std::max<int64_t>(d, 1));
    const SliceSpan span = NormalizeSlice(starts[i], ends[i], step, d);
    const int64_t s = span.start, len = span.length;
    out_shape[a] = len;
    if (len > 0) offset += s * in_strides[a];
    strides[a] = in_strides[a] * step;
  }
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.output(0, x->type(), out_shape));
  StridedCopy(ElementCopier(x->type()), x->raw(), offset, strides, out->raw(), out_shape);
  return Status::Ok();
}

namespace {

// One dim of a Pad: its begin pad (negative crops) and, for wrap, the extent kept after negative
// pads crop the input, [lo, lo + len), which wrap repeats (as ONNX Runtime does).
struct PadDim {
  int64_t d = 0;   // input size
  int64_t pb = 0;  // begin pad
  int64_t lo = 0;
  int64_t len = 0;
};

// Source index along one dim for output coordinate o, or -1 when the constant value applies.
// Modes: 0 constant, 1 edge, 2 reflect, 3 wrap.
int64_t PadSource(int64_t o, const PadDim& p, int mode) {
  if (mode == 3) {
    int64_t m = (o - std::max<int64_t>(p.pb, 0)) % p.len;
    if (m < 0) m += p.len;
    return p.lo + m;
  }
  const int64_t c = o - p.pb, d = p.d;
  if (c >= 0 && c < d) return c;
  if (mode == 0) return -1;
  if (mode == 1) return c < 0 ? 0 : d - 1;  // edge
  if (d == 1) return 0;                     // reflect over a single element repeats it
  const int64_t period = 2 * (d - 1);
  int64_t m = c % period;
  if (m < 0) m += period;
  return m < d ? m : period - m;
}

}  // namespace

Status Pad(KernelContext& ctx) {
  KILN_REQUIRE_INPUT(x, 0, "data");
  const int r = x->rank();
  const ElementType type = x->type();
  std::vector<int64_t> pads;
  Tensor fill = Tensor::Allocate(type, {}).value();  // zero / false / ""
  if (ctx.opset() < 11) {
    pads = ctx.attrs().GetInts(ctx.opset() < 2 ? "paddings" : "pads");
    const float v = ctx.attrs().GetFloat("value", 0.0f);
    Dispatch<kAllNumeric | kDispatchBool>(type, [&](auto tag) {
      using T = decltype(tag);
      fill.data<T>()[0] = static_cast<T>(v);
    });
  } else {
    KILN_REQUIRE_INPUT(p, 1, "pads");
    KILN_ASSIGN_OR_RETURN(pads, IntValues(ctx, *p, "pads"));
    if (const Tensor* cv = ctx.input(2)) {
      if (cv->type() != type || cv->size() != 1) {
        return ctx.Error("constant_value must be one element of the data type, found " +
                         cv->Describe());
      }
      ElementCopier(type).Copy(fill.raw(), 0, cv->raw(), 0, 1);
    }
  }
  // Pad-18: an `axes` input names the axes `pads` covers (begins, then ends); others get 0.
  if (const Tensor* a = ctx.opset() >= 18 ? ctx.input(3) : nullptr) {
    KILN_ASSIGN_OR_RETURN(std::vector<int64_t> axes, IntValues(ctx, *a, "axes"));
    const size_t k = axes.size();
    if (pads.size() != 2 * k) {
      return ctx.Error("pads has " + std::to_string(pads.size()) + " values, expected " +
                       std::to_string(2 * k) + " for axes " + a->Describe());
    }
    std::vector<int64_t> full(static_cast<size_t>(2 * r), 0);
    std::vector<bool> seen(static_cast<size_t>(r), false);
    for (size_t i = 0; i < k; ++i) {
      KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(ctx, axes[i], r));
      if (seen[ax]) return ctx.Error("axis " + std::to_string(axes[i]) + " is repeated in axes");
      seen[ax] = true;
      full[ax] = pads[i];
      full[ax + r] = pads[i + k];
    }
    pads = std::move(full);
  }
  if (static_cast<int>(pads.size()) != 2 * r) {
    return ctx.Error("pads has " + std::to_string(pads.size()) + " values, expected " +
                     std::to_string(2 * r) + " for input " + x->Describe());
  }
  const std::string mode_name = ctx.attrs().GetString("mode", "constant");
  int mode;
  if (mode_name == "constant") {
    mode = 0;
  } else if (mode_name == "edge") {
    mode = 1;
  } else if (mode_name == "reflect") {
    mode = 2;
  } else if (mode_name == "wrap" && ctx.opset() >= 19) {
    mode = 3;
  } else {
    return ctx.Error("mode must be constant, reflect or edge" +
                     std::string(ctx.opset() >= 19 ? " or wrap" : " (wrap needs opset 19)") +
                     ", found '" + mode_name + "'");
  }
  constexpr int64_t kMaxPad = int64_t{1} << 48;
  for (int64_t p : pads) {
    if (p < -kMaxPad || p > kMaxPad) return ctx.Error("pad " + std::to_string(p) + " is too large");
  }
  Shape out_shape(static_cast<size_t>(r));
  std::vector<PadDim> dims(static_cast<size_t>(r));
  for (int i = 0; i < r; ++i) {
    out_shape[i] = x->dim(i) + pads[i] + pads[i + r];
    if (out_shape[i] < 0) return ctx.Error("pads make a negative dim for " + x->Describe());
    PadDim& pd = dims[i];
    pd.d = x->dim(i);
    pd.pb = pads[i];
    pd.lo = std::max<int64_t>(0, -pads[i]);
    pd.len = pd.d - pd.lo - std::max<int64_t>(0, -pads[i + r]);
    const int64_t kept = mode == 3 ? pd.len : x->dim(i);
    if (mode != 0 && out_shape[i] > 0 && kept <= 0) {
      return ctx.Error("cannot pad an empty dim in " + mode_name + " mode");
    }
  }
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.output(0, type, out_shape));
  const int64_t total = out->size();
  if (total == 0) return Status::Ok();
  const ElementCopier c(type);
  if (r == 0) {
    c.Copy(out->raw(), 0, x->raw(), 0, 1);
    return Status::Ok();
  }
  const auto in_strides = Strides(x->shape());
  const int64_t inner = out_shape[r - 1];
  std::vector<int64_t> idx(static_cast<size_t>(r), 0);
  for (int64_t o = 0; o < total; o += inner) {
    int64_t base = 0;
    bool constant_row = false;
    for (int k = 0; k < r - 1; ++k) {
      const int64_t s = PadSource(idx[k], dims[k], mode);
      if (s < 0) {
        constant_row = true;
        break;
      }
      base += s * in_strides[k];
    }
    for (int64_t j = 0; j < inner; ++j) {
      const int64_t s = constant_row ? -1 : PadSource(j, dims[r - 1], mode);
      if (s < 0) {
        c.Copy(out->raw(), o + j, fill.raw(), 0, 1);
      } else {
        c.Copy(out->raw(), o + j, x->raw(), base + s, 1);
      }
    }
    for (int k = r - 2; k >= 0; --k) {
      if (++idx[k] < out_shape[k]) break;
      idx[k] = 0;
    }
  }
  return Status::Ok();
}

}  // namespace kiln::tensor_ref
