// Reference kernels for the tensor op family: the kernel table, the shared helpers of
// tensor_internal.h, and the ops that only compute a shape or fill a constant.
#include <algorithm>
#include <cmath>
#include <limits>

#include "backends/ref/tensor_internal.h"

namespace kiln {
namespace tensor_ref {

void StridedCopy(const ElementCopier& c, const void* src, int64_t offset,
                 std::span<const int64_t> strides, void* dst, const Shape& shape) {
  const int64_t total = NumElements(shape);
  if (total <= 0) return;
  const int rank = static_cast<int>(shape.size());
  if (rank == 0) {
    c.Copy(dst, 0, src, offset, 1);
    return;
  }
  const int64_t inner = shape[rank - 1];
  const int64_t inner_stride = strides[rank - 1];
  std::vector<int64_t> idx(static_cast<size_t>(rank), 0);
  int64_t pos = offset;
  for (int64_t o = 0; o < total; o += inner) {
    if (inner_stride == 1) {
      c.Copy(dst, o, src, pos, inner);
    } else {
      for (int64_t j = 0; j < inner; ++j) c.Copy(dst, o + j, src, pos + j * inner_stride, 1);
    }
    // Odometer increment over the outer dims, keeping pos in step.
    for (int k = rank - 2; k >= 0; --k) {
      if (++idx[k] < shape[k]) {
        pos += strides[k];
        break;
      }
      pos -= strides[k] * (shape[k] - 1);
      idx[k] = 0;
    }
  }
}

Result<int> NormalizeAxis(const KernelContext& ctx, int64_t axis, int rank) {
  if (axis < -rank || axis >= rank) {
    return ctx.Error("axis " + std::to_string(axis) + " is out of range for rank " +
                     std::to_string(rank));
  }
  return static_cast<int>(axis < 0 ? axis + rank : axis);
}

Result<std::vector<int64_t>> IntValues(const KernelContext& ctx, const Tensor& t,
                                       const char* what) {
  if (!IsInteger(t.type())) {
    return ctx.Error(std::string(what) + " must be an integer tensor, found " + t.Describe());
  }
  return t.ToInt64Vector();
}

int64_t DimProduct(const Shape& shape, int begin, int end) {
  int64_t n = 1;
  for (int i = begin; i < end; ++i) n *= shape[static_cast<size_t>(i)];
  return n;
}

namespace {

// Output 0 = a copy of x under a new shape with the same element count.
Status CopyAs(KernelContext& ctx, const Tensor& x, const Shape& shape) {
  KILN_ASSIGN_OR_RETURN(int64_t n, CheckedNumElements(shape));
  if (n != x.size()) {
    return ctx.Error("cannot view input " + x.Describe() + " as shape " + ShapeToString(shape) +
                     " (element counts differ)");
  }
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.output(0, x.type(), shape));
  ElementCopier(x.type()).Copy(out->raw(), 0, x.raw(), 0, x.size());
  return Status::Ok();
}

// Squeeze/Unsqueeze axes: the attribute before opset 13, the optional input 1 from 13 on.
Result<std::optional<std::vector<int64_t>>> AxesArg(KernelContext& ctx) {
  if (ctx.opset() < 13) {
    if (!ctx.attrs().Has("axes")) return std::optional<std::vector<int64_t>>();
    return std::optional<std::vector<int64_t>>(ctx.attrs().GetInts("axes"));
  }
  const Tensor* a = ctx.input(1);
  if (a == nullptr) return std::optional<std::vector<int64_t>>();
  KILN_ASSIGN_OR_RETURN(auto v, IntValues(ctx, *a, "axes"));
  return std::optional<std::vector<int64_t>>(std::move(v));
}

}  // namespace

Status Reshape(KernelContext& ctx) {
  KILN_REQUIRE_INPUT(x, 0, "data");
  std::vector<int64_t> spec;
  if (ctx.opset() < 5) {
    if (!ctx.attrs().Has("shape")) return ctx.Error("missing attribute 'shape'");
    spec = ctx.attrs().GetInts("shape");
  } else {
    KILN_REQUIRE_INPUT(s, 1, "shape");
    KILN_ASSIGN_OR_RETURN(spec, IntValues(ctx, *s, "shape"));
  }
  const bool allowzero = ctx.opset() >= 14 && ctx.attrs().GetInt("allowzero", 0) != 0;
  Shape out(spec.size());
  int infer_at = -1;
  for (size_t i = 0; i < spec.size(); ++i) {
    const int64_t v = spec[i];
    if (v == -1) {
      if (infer_at >= 0) return ctx.Error("shape has more than one -1");
      infer_at = static_cast<int>(i);
      out[i] = 1;
    } else if (v == 0 && !allowzero) {
      if (static_cast<int>(i) >= x->rank()) {
        return ctx.Error("shape[" + std::to_string(i) + "] = 0 copies a dim the input " +
                         x->Describe() + " does not have");
      }
      out[i] = x->dim(static_cast<int>(i));
    } else if (v < 0) {
      return ctx.Error("shape has invalid value " + std::to_string(v));
    } else {
      out[i] = v;
    }
  }
  KILN_ASSIGN_OR_RETURN(int64_t known, CheckedNumElements(out));
  if (infer_at >= 0) {
    if (known == 0 || x->size() % known != 0) {
      return ctx.Error("cannot infer the -1 dim of shape " + ShapeToString(spec) + " for input " +
                       x->Describe());
    }
    out[static_cast<size_t>(infer_at)] = x->size() / known;
  }
  return CopyAs(ctx, *x, out);
}

Status Flatten(KernelContext& ctx) {
  KILN_REQUIRE_INPUT(x, 0, "input");
  int64_t axis = ctx.attrs().GetInt("axis", 1);
  const int r = x->rank();
  if (axis < -r || axis > r) {
    return ctx.Error("axis " + std::to_string(axis) + " out of range for rank " +
                     std::to_string(r));
  }
  if (axis < 0) axis += r;
  const int a = static_cast<int>(axis);
  return CopyAs(ctx, *x, {DimProduct(x->shape(), 0, a), DimProduct(x->shape(), a, r)});
}

Status Squeeze(KernelContext& ctx) {
  KILN_REQUIRE_INPUT(x, 0, "data");
  KILN_ASSIGN_OR_RETURN(auto axes, AxesArg(ctx));
  const int r = x->rank();
  std::vector<bool> drop(static_cast<size_t>(r), false);
  if (axes) {
    for (int64_t a : *axes) {
      KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(ctx, a, r));
      if (x->dim(ax) != 1) {
        return ctx.Error("cannot squeeze axis " + std::to_string(a) + " of input " + x->Describe() +
                         ": its size is not 1");
      }
      drop[ax] = true;
    }
  } else {
    for (int i = 0; i < r; ++i) drop[i] = x->dim(i) == 1;
  }
  Shape out;
  for (int i = 0; i < r; ++i) {
    if (!drop[i]) out.push_back(x->dim(i));
  }
  return CopyAs(ctx, *x, out);
}

Status Unsqueeze(KernelContext& ctx) {
  KILN_REQUIRE_INPUT(x, 0, "data");
  KILN_ASSIGN_OR_RETURN(auto axes, AxesArg(ctx));
  if (!axes) return ctx.Error("missing 'axes'");
  const int out_rank = x->rank() + static_cast<int>(axes->size());
  std::vector<bool> is_new(static_cast<size_t>(out_rank), false);
  for (int64_t a : *axes) {
    KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(ctx, a, out_rank));
    if (is_new[ax]) return ctx.Error("axis " + std::to_string(a) + " is repeated in 'axes'");
    is_new[ax] = true;
  }
  Shape out;
  int k = 0;
  for (int i = 0; i < out_rank; ++i) out.push_back(is_new[i] ? 1 : x->dim(k++));
  return CopyAs(ctx, *x, out);
}

Status Identity(KernelContext& ctx) {
  KILN_REQUIRE_INPUT(x, 0, "input");
  if (!x->is_tensor()) return ctx.SetValue(0, *x);  // sequences and optionals pass as they are
  return CopyAs(ctx, *x, x->shape());
}

Status ShapeOp(KernelContext& ctx) {
  KILN_REQUIRE_INPUT(x, 0, "data");
  const int64_t r = x->rank();
  int64_t start = 0, end = r;
  if (ctx.opset() >= 15) {
    start = ctx.attrs().GetInt("start", 0);
    end = ctx.attrs().GetInt("end", r);
  }
  if (start < 0) start += r;
  if (end < 0) end += r;
  start = std::clamp<int64_t>(start, 0, r);
  end = std::clamp<int64_t>(end, 0, r);
  const int64_t n = std::max<int64_t>(end - start, 0);
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.output(0, ElementType::kI64, {n}));
  for (int64_t i = 0; i < n; ++i) out->data<int64_t>()[i] = x->dim(static_cast<int>(start + i));
  return Status::Ok();
}

Status Size(KernelContext& ctx) {
  KILN_REQUIRE_INPUT(x, 0, "data");
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.output(0, ElementType::kI64, {}));
  out->data<int64_t>()[0] = x->size();
  return Status::Ok();
}

Status ConstantOfShape(KernelContext& ctx) {
  KILN_REQUIRE_INPUT(s, 0, "input");
  KILN_ASSIGN_OR_RETURN(Shape shape, IntValues(ctx, *s, "shape"));
  for (int64_t d : shape) {
    if (d < 0) return ctx.Error("shape " + ShapeToString(shape) + " has a negative dim");
  }
  const Tensor* value = ctx.attrs().GetTensor("value");
  Tensor zero;
  if (value == nullptr) {
    zero = Tensor::FromVector<float>({0.0f}, {1});
    value = &zero;
  }
  if (value->size() != 1) {
    return ctx.Error("attribute 'value' must hold one element, found " + value->Describe());
  }
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.output(0, value->type(), shape));
  ElementCopier(value->type()).Fill(out->raw(), 0, out->size(), value->raw(), 0);
  return Status::Ok();
}

Status Constant(KernelContext& ctx) {
  const Attributes& at = ctx.attrs();
  Tensor t;
  if (const Tensor* v = at.GetTensor("value")) {
    t = *v;
  } else if (const Attribute* a = at.Find("value_float")) {
    t = Tensor::FromVector<float>({a->f}, {});
  } else if (const Attribute* a = at.Find("value_floats")) {
    t = Tensor::FromVector<float>(a->floats, {static_cast<int64_t>(a->floats.size())});
  } else if (const Attribute* a = at.Find("value_int")) {
    t = Tensor::FromVector<int64_t>({a->i}, {});
  } else if (const Attribute* a = at.Find("value_ints")) {
    t = Tensor::FromVector<int64_t>(a->ints, {static_cast<int64_t>(a->ints.size())});
  } else if (const Attribute* a = at.Find("value_string")) {
    t = Tensor::FromVector<std::string>({a->s}, {});
  } else if (const Attribute* a = at.Find("value_strings")) {
    t = Tensor::FromVector<std::string>(a->strings, {static_cast<int64_t>(a->strings.size())});
  } else if (at.Has("sparse_value")) {
    return Unimplemented(ctx.node().Describe() + ": sparse_value constants are not supported");
  } else {
    return ctx.Error("no value attribute (value, value_float(s), value_int(s), value_string(s))");
  }
  if (!t.defined()) return ctx.Error("attribute 'value' holds no tensor");
  return CopyAs(ctx, t, t.shape());
}

Status Range(KernelContext& ctx) {
  KILN_REQUIRE_INPUT(start, 0, "start");
  KILN_REQUIRE_INPUT(limit, 1, "limit");
  KILN_REQUIRE_INPUT(delta, 2, "delta");
  const ElementType t = start->type();
  if (limit->type() != t || delta->type() != t) {
    return ctx.Error("start, limit and delta must share one type, found " + start->Describe() +
                     ", " + limit->Describe() + ", " + delta->Describe());
  }
  if (start->size() != 1 || limit->size() != 1 || delta->size() != 1) {
    return ctx.Error("start, limit and delta must be scalars");
  }
  Status st;
  bool ok = Dispatch<kAllNumeric>(t, [&](auto tag) {
    using T = decltype(tag);
    const T s = start->data<T>()[0], l = limit->data<T>()[0], d = delta->data<T>()[0];
    int64_t n = 0;
    if constexpr (std::is_integral_v<T>) {
      if (d == 0) {
        st = ctx.Error("delta is zero");
        return;
      }
      const __int128 diff = static_cast<__int128>(l) - static_cast<__int128>(s);
      const __int128 step = d;
      if (diff != 0 && (diff > 0) == (step > 0)) {
        const __int128 ad = diff > 0 ? diff : -diff, as = step > 0 ? step : -step;
        const __int128 count = (ad + as - 1) / as;
        if (count > (__int128{1} << 48)) {
          st = ctx.Error("range has too many elements");
          return;
        }
        n = static_cast<int64_t>(count);
      }
    } else {
      const double ds = ToDouble(s), dl = ToDouble(l), dd = ToDouble(d);
      if (dd == 0) {
        st = ctx.Error("delta is zero");
        return;
      }
      const double count = std::ceil((dl - ds) / dd);
      if (!(count < static_cast<double>(int64_t{1} << 48))) {  // also catches nan
        st = ctx.Error("range has too many elements or is not finite");
        return;
      }
      n = count > 0 ? static_cast<int64_t>(count) : 0;
    }
    auto out = ctx.output(0, t, {n});
    if (!out.ok()) {
      st = out.status();
      return;
    }
    T* o = (*out)->template data<T>();
    for (int64_t i = 0; i < n; ++i) {
      if constexpr (std::is_integral_v<T>) {
        o[i] = static_cast<T>(static_cast<int64_t>(s) + i * static_cast<int64_t>(d));
      } else {
        o[i] = static_cast<T>(ToDouble(s) + static_cast<double>(i) * ToDouble(d));
      }
    }
  });
  if (!ok) return ctx.UnsupportedType(t);
  return st;
}

Status EyeLike(KernelContext& ctx) {
  KILN_REQUIRE_INPUT(x, 0, "input");
  if (x->rank() != 2) return ctx.Error("input must be 2-D, found " + x->Describe());
  ElementType t = x->type();
  if (ctx.attrs().Has("dtype")) {
    t = ElementTypeFromOnnx(static_cast<int>(ctx.attrs().GetInt("dtype", 0)));
    if (t == ElementType::kUndefined) return ctx.Error("unknown 'dtype'");
  }
  // Dims stay below 2^48, so clamping k keeps its meaning and i + k from overflowing.
  const int64_t k =
      std::clamp<int64_t>(ctx.attrs().GetInt("k", 0), -(int64_t{1} << 50), int64_t{1} << 50);
  const int64_t rows = x->dim(0), cols = x->dim(1);
  Status st;
  bool ok = Dispatch<kAllNumeric | kDispatchBool>(t, [&](auto tag) {
    using T = decltype(tag);
    auto r = ctx.output(0, t, x->shape());
    if (!r.ok()) {
      st = r.status();
      return;
    }
    Tensor* out = *r;
    T* o = out->template data<T>();
    for (int64_t i = 0; i < rows * cols; ++i) o[i] = T(0);
    for (int64_t i = 0; i < rows; ++i) {
      const int64_t j = i + k;
      if (j >= 0 && j < cols) o[i * cols + j] = T(1);
    }
  });
  if (!ok) return ctx.UnsupportedType(t);
  return st;
}

}  // namespace tensor_ref

namespace {
using namespace tensor_ref;  // NOLINT: the kernel table names every kernel of the family
constexpr KernelDef kKernels[] = {
    {"Reshape", "", Reshape},
    {"Flatten", "", Flatten},
    {"Squeeze", "", Squeeze},
    {"Unsqueeze", "", Unsqueeze},
    {"Identity", "", Identity, true},
    {"Shape", "", ShapeOp},
    {"Size", "", Size},
    {"ConstantOfShape", "", ConstantOfShape},
    {"Constant", "", Constant},
    {"Range", "", Range},
    {"EyeLike", "", EyeLike},
    {"Transpose", "", Transpose},
    {"Concat", "", Concat},
    {"Split", "", Split},
    {"Expand", "", Expand},
    {"Tile", "", Tile},
    {"DepthToSpace", "", DepthToSpace},
    {"SpaceToDepth", "", SpaceToDepth},
    {"Slice", "", Slice},
    {"Pad", "", Pad},
    {"CenterCropPad", "", CenterCropPad},
    {"Gather", "", Gather},
    {"GatherElements", "", GatherElements},
    {"GatherND", "", GatherND},
    {"Scatter", "", ScatterElements},
    {"ScatterElements", "", ScatterElements},
    {"ScatterND", "", ScatterND},
    {"Compress", "", Compress},
    {"OneHot", "", OneHot},
    {"NonZero", "", NonZero},
    {"ReverseSequence", "", ReverseSequence},
    {"Trilu", "", Trilu},
    {"TopK", "", TopK},
    {"Unique", "", Unique},
    {"CumSum", "", CumSum},
    {"ArgMax", "", ArgMax},
    {"ArgMin", "", ArgMin},
};
}  // namespace

std::span<const KernelDef> TensorKernels() { return kKernels; }

}  // namespace kiln
