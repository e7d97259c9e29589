// Reference kernels that move elements by index: Gather, GatherElements, GatherND, Scatter /
// ScatterElements, ScatterND, Compress, OneHot, NonZero, ReverseSequence and Trilu.
// Indices are read as int64, negative ones count from the end of their axis, and every index is
// range-checked before any element moves.
#include <algorithm>
#include <utility>

#include "backends/ref/tensor_internal.h"

namespace kiln::tensor_ref {
namespace {

// idx in [-d, d) to [0, d), or an error naming the index.
Result<int64_t> FixIndex(const KernelContext& ctx, int64_t idx, int64_t d) {
  if (idx < -d || idx >= d) {
    return ctx.Error("index " + std::to_string(idx) + " is out of range for a dim of size " +
                     std::to_string(d));
  }
  return idx < 0 ? idx + d : idx;
}

Result<std::vector<int64_t>> IndexValues(const KernelContext& ctx, const Tensor& t) {
  if (t.type() != ElementType::kI32 && t.type() != ElementType::kI64) {
    return ctx.Error("indices must be i32 or i64, found " + t.Describe());
  }
  return t.ToInt64Vector();
}

// For every element i of `indices` (same rank as `data`), calls fn(i, offset) with the offset in
// `data` of the element at i's coordinates with the `axis` coordinate replaced by indices[i].
template <typename Fn>
Status ForEachAxisIndex(const KernelContext& ctx, const Shape& data_shape, const Tensor& indices,
                        int axis, Fn fn) {
  const int r = static_cast<int>(data_shape.size());
  if (indices.rank() != r) {
    return ctx.Error("indices " + indices.Describe() + " must have the data rank " +
                     std::to_string(r));
  }
  for (int k = 0; k < r; ++k) {
    if (k != axis && indices.dim(k) > data_shape[k]) {
      return ctx.Error("indices " + indices.Describe() + " exceed data shape " +
                       ShapeToString(data_shape) + " outside the axis");
    }
  }
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> idx, IndexValues(ctx, indices));
  const auto ds = Strides(data_shape);
  std::vector<int64_t> coord(static_cast<size_t>(r), 0);
  for (int64_t i = 0; i < indices.size(); ++i) {
    KILN_ASSIGN_OR_RETURN(int64_t a, FixIndex(ctx, idx[i], data_shape[axis]));
    int64_t off = a * ds[axis];
    for (int k = 0; k < r; ++k) {
      if (k != axis) off += coord[k] * ds[k];
    }
    fn(i, off);
    for (int k = r - 1; k >= 0; --k) {
      if (++coord[k] < indices.dim(k)) break;
      coord[k] = 0;
    }
  }
  return Status::Ok();
}

// a < b in the element's own type (int64 beyond 2^53 stays exact), f16/bf16 through float.
template <typename T>
bool Less(T a, T b) {
  if constexpr (std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>) {
    return static_cast<float>(a) < static_cast<float>(b);
  } else {
    return a < b;
  }
}

// Writes updates into out: out[dst + j] (op)= updates[src + j] for every (dst, src) move and
// j < block, in order, with op one of none/add/mul/max/min.
Status ScatterApply(const KernelContext& ctx, const std::string& reduction, Tensor* out,
                    const Tensor& updates, const std::vector<std::pair<int64_t, int64_t>>& moves,
                    int64_t block) {
  if (reduction == "none") {
    const ElementCopier c(out->type());
    for (const auto& [d, s] : moves) c.Copy(out->raw(), d, updates.raw(), s, block);
    return Status::Ok();
  }
  int op;
  if (reduction == "add") {
    op = 0;
  } else if (reduction == "mul") {
    op = 1;
  } else if (reduction == "max") {
    op = 2;
  } else if (reduction == "min") {
    op = 3;
  } else {
    return ctx.Error("reduction must be none, add, mul, max or min, found '" + reduction + "'");
  }
  const bool ok = Dispatch<kAllNumeric | kDispatchBool>(out->type(), [&](auto tag) {
    using T = decltype(tag);
    T* o = out->data<T>();
    const T* u = updates.data<T>();
    for (const auto& [d, s] : moves) {
      for (int64_t j = 0; j < block; ++j) {
        T& a = o[d + j];
        const T b = u[s + j];
        if (op == 0) {
          a = AddWrap(a, b);
        } else if (op == 1) {
          a = MulWrap(a, b);
        } else if (op == 2) {
          if (Less(a, b)) a = b;
        } else if (Less(b, a)) {
          a = b;
        }
      }
    }
  });
  if (!ok) return ctx.UnsupportedType(out->type());
  return Status::Ok();
}

// The reduction attribute of ScatterElements / ScatterND: from opset 16 none, add or mul; max
// and min from opset 18.
Result<std::string> ScatterReduction(const KernelContext& ctx) {
  if (ctx.opset() < 16) return std::string("none");
  std::string r = ctx.attrs().GetString("reduction", "none");
  if ((r == "max" || r == "min") && ctx.opset() < 18) {
    return ctx.Error("reduction '" + r + "' needs opset 18, the model imports opset " +
                     std::to_string(ctx.opset()));
  }
  return r;
}

}  // namespace

Status Gather(KernelContext& ctx) {
  KILN_REQUIRE_INPUT(x, 0, "data");
  KILN_REQUIRE_INPUT(ind, 1, "indices");
  const int r = x->rank();
  if (r == 0) return ctx.Error("data must have rank >= 1");
  KILN_ASSIGN_OR_RETURN(int axis, NormalizeAxis(ctx, ctx.attrs().GetInt("axis", 0), r));
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> idx, IndexValues(ctx, *ind));
  Shape out_shape(x->shape().begin(), x->shape().begin() + axis);
  out_shape.insert(out_shape.end(), ind->shape().begin(), ind->shape().end());
  out_shape.insert(out_shape.end(), x->shape().begin() + axis + 1, x->shape().end());
  const int64_t d = x->dim(axis);
  for (int64_t& i : idx) {
    KILN_ASSIGN_OR_RETURN(i, FixIndex(ctx, i, d));
  }
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.output(0, x->type(), out_shape));
  const ElementCopier c(x->type());
  const int64_t outer = DimProduct(x->shape(), 0, axis);
  const int64_t inner = DimProduct(x->shape(), axis + 1, r);
  const int64_t n = static_cast<int64_t>(idx.size());
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t j = 0; j < n; ++j) {
      c.Copy(out->raw(), (o * n + j) * inner, x->raw(), (o * d + idx[j]) * inner, inner);
    }
  }
  return Status::Ok();
}

Status GatherElements(KernelContext& ctx) {
  KILN_REQUIRE_INPUT(x, 0, "data");
  KILN_REQUIRE_INPUT(ind, 1, "indices");
  const int r = x->rank();
  if (r == 0) return ctx.Error("data must have rank >= 1");
  KILN_ASSIGN_OR_RETURN(int axis, NormalizeAxis(ctx, ctx.attrs().GetInt("axis", 0), r));
  std::vector<int64_t> src(static_cast<size_t>(ind->size()));
  KILN_RETURN_IF_ERROR(
      ForEachAxisIndex(ctx, x->shape(), *ind, axis, [&](int64_t i, int64_t off) { src[i] = off; }));
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.output(0, x->type(), ind->shape()));
  const ElementCopier c(x->type());
  for (int64_t i = 0; i < ind->size(); ++i) c.Copy(out->raw(), i, x->raw(), src[i], 1);
  return Status::Ok();
}

Status ScatterElements(KernelContext& ctx) {
  KILN_REQUIRE_INPUT(x, 0, "data");
  KILN_REQUIRE_INPUT(ind, 1, "indices");
  KILN_REQUIRE_INPUT(upd, 2, "updates");
  const int r = x->rank();
  if (r == 0) return ctx.Error("data must have rank >= 1");
  if (upd->type() != x->type() || upd->shape() != ind->shape()) {
    return ctx.Error("updates " + upd->Describe() + " must match indices " + ind->Describe() +
                     " in shape and data " + x->Describe() + " in type");
  }
  KILN_ASSIGN_OR_RETURN(int axis, NormalizeAxis(ctx, ctx.attrs().GetInt("axis", 0), r));
  std::vector<std::pair<int64_t, int64_t>> moves;
  moves.reserve(static_cast<size_t>(ind->size()));
  KILN_RETURN_IF_ERROR(ForEachAxisIndex(
      ctx, x->shape(), *ind, axis, [&](int64_t i, int64_t off) { moves.emplace_back(off, i); }));
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.output(0, x->type(), x->shape()));
  ElementCopier(x->type()).Copy(out->raw(), 0, x->raw(), 0, x->size());
  KILN_ASSIGN_OR_RETURN(const std::string reduction, ScatterReduction(ctx));
  return ScatterApply(ctx, reduction, out, *upd, moves, 1);
}

Status GatherND(KernelContext& ctx) {
  KILN_REQUIRE_INPUT(x, 0, "data");
  KILN_REQUIRE_INPUT(ind, 1, "indices");
  const int r = x->rank(), q = ind->rank();
  const int64_t b = ctx.opset() >= 12 ? ctx.attrs().GetInt("batch_dims", 0) : 0;
  if (r < 1 || q < 1 || b < 0 || b >= std::min(r, q)) {
    return ctx.Error(
        "needs rank(data) >= 1, rank(indices) >= 1 and 0 <= batch_dims < both, "
        "found data " +
        x->Describe() + ", indices " + ind->Describe() + ", batch_dims " + std::to_string(b));
  }
  const int bd = static_cast<int>(b);
  const int64_t k = ind->dim(q - 1);
  if (k < 1 || bd + k > r) {
    return ctx.Error("last dim of indices " + ind->Describe() + " must be in [1, " +
                     std::to_string(r - bd) + "]");
  }
  for (int i = 0; i < bd; ++i) {
    if (ind->dim(i) != x->dim(i)) {
      return ctx.Error("batch dims of indices " + ind->Describe() + " and data " + x->Describe() +
                       " differ");
    }
  }
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> idx, IndexValues(ctx, *ind));
  Shape out_shape(ind->shape().begin(), ind->shape().end() - 1);
  out_shape.insert(out_shape.end(), x->shape().begin() + bd + k, x->shape().end());
  const auto ds = Strides(x->shape());
  const int64_t batches = DimProduct(x->shape(), 0, bd);
  const int64_t batch_stride = DimProduct(x->shape(), bd, r);
  const int64_t per_batch = DimProduct(ind->shape(), bd, q - 1);
  const int64_t block = DimProduct(x->shape(), bd + static_cast<int>(k), r);
  std::vector<int64_t> src;
  src.reserve(static_cast<size_t>(batches * per_batch));
  for (int64_t bi = 0; bi < batches; ++bi) {
    for (int64_t t = 0; t < per_batch; ++t) {
      const int64_t* tuple = idx.data() + (bi * per_batch + t) * k;
      int64_t off = bi * batch_stride;
      for (int64_t j = 0; j < k; ++j) {
        KILN_ASSIGN_OR_RETURN(int64_t v, FixIndex(ctx, tuple[j], x->dim(bd + static_cast<int>(j))));
        off += v * ds[bd + j];
      }
      src.push_back(off);
    }
  }
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.output(0, x->type(), out_shape));
  const ElementCopier c(x->type());
  for (size_t i = 0; i < src.size(); ++i) {
    c.Copy(out->raw(), static_cast<int64_t>(i) * block, x->raw(), src[i], block);
  }
  return Status::Ok();
}

Status ScatterND(KernelContext& ctx) {
  KILN_REQUIRE_INPUT(x, 0, "data");
  KILN_REQUIRE_INPUT(ind, 1, "indices");
  KILN_REQUIRE_INPUT(upd, 2, "updates");
  const int r = x->rank(), q = ind->rank();
  if (r < 1 || q < 1) return ctx.Error("data and indices must have rank >= 1");
  const int64_t k = ind->dim(q - 1);
  if (k < 1 || k > r) {
    return ctx.Error("last dim of indices " + ind->Describe() + " must be in [1, " +
                     std::to_string(r) + "]");
  }
  Shape want(ind->shape().begin(), ind->shape().end() - 1);
  want.insert(want.end(), x->shape().begin() + k, x->shape().end());
  if (upd->type() != x->type() || upd->shape() != want) {
    return ctx.Error("updates must be " + std::string(ElementTypeName(x->type())) +
                     ShapeToString(want) + ", found " + upd->Describe());
  }
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> idx, IndexValues(ctx, *ind));
  const auto ds = Strides(x->shape());
  const int64_t m = DimProduct(ind->shape(), 0, q - 1);
  const int64_t block = DimProduct(x->shape(), static_cast<int>(k), r);
  std::vector<std::pair<int64_t, int64_t>> moves;
  moves.reserve(static_cast<size_t>(m));
  for (int64_t t = 0; t < m; ++t) {
    int64_t off = 0;
    for (int64_t j = 0; j < k; ++j) {
      KILN_ASSIGN_OR_RETURN(int64_t v, FixIndex(ctx, idx[t * k + j], x->dim(static_cast<int>(j))));
      off += v * ds[j];
    }
    moves.emplace_back(off, t * block);
  }
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.output(0, x->type(), x->shape()));
  ElementCopier(x->type()).Copy(out->raw(), 0, x->raw(), 0, x->size());
  KILN_ASSIGN_OR_RETURN(const std::string reduction, ScatterReduction(ctx));
  return ScatterApply(ctx, reduction, out, *upd, moves, block);
}

Status Compress(KernelContext& ctx) {
  KILN_REQUIRE_INPUT(x, 0, "input");
  KILN_REQUIRE_INPUT(cond, 1, "condition");
  if (cond->rank() != 1) return ctx.Error("condition must be 1-D, found " + cond->Describe());
  const bool has_axis = ctx.attrs().Has("axis");
  int axis = 0;
  Shape view = {x->size()};  // without an axis the input is flattened
  if (has_axis) {
    KILN_ASSIGN_OR_RETURN(axis, NormalizeAxis(ctx, ctx.attrs().GetInt("axis", 0), x->rank()));
    view = x->shape();
  }
  const int64_t d = view[axis];
  std::vector<int64_t> keep;
  for (int64_t i = 0; i < cond->size(); ++i) {
    if (cond->GetAsDouble(i) == 0) continue;
    if (i >= d) {
      return ctx.Error("condition selects index " + std::to_string(i) + " beyond dim " +
                       std::to_string(d));
    }
    keep.push_back(i);
  }
  Shape out_shape = view;
  out_shape[axis] = static_cast<int64_t>(keep.size());
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.output(0, x->type(), out_shape));
  const ElementCopier c(x->type());
  const int64_t outer = DimProduct(view, 0, axis);
  const int64_t inner = DimProduct(view, axis + 1, static_cast<int>(view.size()));
  const int64_t n = static_cast<int64_t>(keep.size());
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t j = 0; j < n; ++j) {
      c.Copy(out->raw(), (o * n + j) * inner, x->raw(), (o * d + keep[j]) * inner, inner);
    }
  }
  return Status::Ok();
}

Status OneHot(KernelContext& ctx) {
  KILN_REQUIRE_INPUT(ind, 0, "indices");
  KILN_REQUIRE_INPUT(depth_t, 1, "depth");
  KILN_REQUIRE_INPUT(values, 2, "values");
  if (depth_t->size() != 1 || ind->type() == ElementType::kString ||
      depth_t->type() == ElementType::kString) {
    return ctx.Error("depth must be one number and indices numeric");
  }
  if (values->size() != 2)
    return ctx.Error("values must hold [off, on], found " + values->Describe());
  const double depth_d = depth_t->GetAsDouble(0);
  if (!(depth_d >= 1 && depth_d < static_cast<double>(int64_t{1} << 48))) {
    return ctx.Error("depth must be positive, found " + std::to_string(depth_d));
  }
  const int64_t depth = static_cast<int64_t>(depth_d);
  const int r = ind->rank();
  int64_t axis = ctx.attrs().GetInt("axis", -1);
  if (axis < -r - 1 || axis > r) return ctx.Error("axis " + std::to_string(axis) + " out of range");
  if (axis < 0) axis += r + 1;
  Shape out_shape = ind->shape();
  out_shape.insert(out_shape.begin() + axis, depth);
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.output(0, values->type(), out_shape));
  const ElementCopier c(values->type());
  const int64_t outer = DimProduct(ind->shape(), 0, static_cast<int>(axis));
  const int64_t inner = DimProduct(ind->shape(), static_cast<int>(axis), r);
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t dd = 0; dd < depth; ++dd) {
      for (int64_t i = 0; i < inner; ++i) {
        // Out-of-range (and nan) indices give an all-off column.
        double dv = ind->GetAsDouble(o * inner + i);
        if (dv < 0) dv += static_cast<double>(depth);
        const int64_t v =
            dv >= 0 && dv < static_cast<double>(depth) ? static_cast<int64_t>(dv) : -1;
        c.Copy(out->raw(), (o * depth + dd) * inner + i, values->raw(), v == dd ? 1 : 0, 1);
      }
    }
  }
  return Status::Ok();
}

Status NonZero(KernelContext& ctx) {
  KILN_REQUIRE_INPUT(x, 0, "X");
  std::vector<int64_t> hits;
  const bool ok = Dispatch<kAllTypes>(x->type(), [&](auto tag) {
    using T = decltype(tag);
    const T* p = x->data<T>();
    for (int64_t i = 0; i < x->size(); ++i) {
      bool nz;
      if constexpr (std::is_same_v<T, std::string>) {
        nz = !p[i].empty();
      } else {
        nz = ToDouble(p[i]) != 0;
      }
      if (nz) hits.push_back(i);
    }
  });
  if (!ok) return ctx.UnsupportedType(x->type());
  const int r = x->rank();
  const int64_t n = static_cast<int64_t>(hits.size());
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.output(0, ElementType::kI64, {r, n}));
  const auto strides = Strides(x->shape());
  for (int64_t j = 0; j < n; ++j) {
    int64_t rem = hits[j];
    for (int k = 0; k < r; ++k) {
      out->data<int64_t>()[k * n + j] = rem / strides[k];
      rem %= strides[k];
    }
  }
  return Status::Ok();
}

Status ReverseSequence(KernelContext& ctx) {
  KILN_REQUIRE_INPUT(x, 0, "input");
  KILN_REQUIRE_INPUT(lens_t, 1, "sequence_lens");
  const int64_t time_axis = ctx.attrs().GetInt("time_axis", 0);
  const int64_t batch_axis = ctx.attrs().GetInt("batch_axis", 1);
  if (x->rank() < 2 || time_axis < 0 || time_axis > 1 || batch_axis < 0 || batch_axis > 1 ||
      time_axis == batch_axis) {
    return ctx.Error("needs rank >= 2 and {time_axis, batch_axis} = {0, 1}, found input " +
                     x->Describe());
  }
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> lens, IndexValues(ctx, *lens_t));
  const int64_t steps = x->dim(static_cast<int>(time_axis));
  const int64_t batch = x->dim(static_cast<int>(batch_axis));
  if (lens_t->rank() != 1 || static_cast<int64_t>(lens.size()) != batch) {
    return ctx.Error("sequence_lens must be 1-D of the batch size " + std::to_string(batch));
  }
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.output(0, x->type(), x->shape()));
  const ElementCopier c(x->type());
  const int64_t inner = DimProduct(x->shape(), 2, x->rank());
  auto offset = [&](int64_t t, int64_t b) {
    return (time_axis == 0 ? t * batch + b : b * steps + t) * inner;
  };
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t len = lens[b];
    if (len < 0 || len > steps) {
      return ctx.Error("sequence length " + std::to_string(len) + " is outside [0, " +
                       std::to_string(steps) + "]");
    }
    for (int64_t t = 0; t < steps; ++t) {
      const int64_t src = t < len ? len - 1 - t : t;
      c.Copy(out->raw(), offset(t, b), x->raw(), offset(src, b), inner);
    }
  }
  return Status::Ok();
}

Status Trilu(KernelContext& ctx) {
  KILN_REQUIRE_INPUT(x, 0, "input");
  if (x->rank() < 2) return ctx.Error("input must have rank >= 2, found " + x->Describe());
  if (x->type() == ElementType::kString) return ctx.UnsupportedType(x->type());
  int64_t k = 0;
  if (const Tensor* kt = ctx.input(1)) {
    KILN_ASSIGN_OR_RETURN(auto kv, IntValues(ctx, *kt, "k"));
    if (kv.size() != 1) return ctx.Error("k must be a scalar, found " + kt->Describe());
    k = kv[0];
  }
  const bool upper = ctx.attrs().GetInt("upper", 1) != 0;
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.output(0, x->type(), x->shape()));
  const int64_t rows = x->dim(x->rank() - 2), cols = x->dim(x->rank() - 1);
  const size_t es = ElementSize(x->type());
  const int64_t mats = DimProduct(x->shape(), 0, x->rank() - 2);
  const auto* src = static_cast<const char*>(x->raw());
  auto* dst = static_cast<char*>(out->raw());
  for (int64_t m = 0; m < mats; ++m) {
    for (int64_t i = 0; i < rows; ++i) {
      for (int64_t j = 0; j < cols; ++j) {
        // Kept when j - i >= k (upper) or j - i <= k (lower); zero bits are 0 for every type.
        const bool keep = upper ? j - i >= k : j - i <= k;
        const size_t at = static_cast<size_t>((m * rows + i) * cols + j) * es;
        if (keep) {
          std::memcpy(dst + at, src + at, es);
        } else {
          std::memset(dst + at, 0, es);
        }
      }
    }
  }
  return Status::Ok();
}

}  // namespace kiln::tensor_ref
