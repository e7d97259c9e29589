// Reference kernels that order or accumulate along an axis: TopK, Unique, CumSum, ArgMax and
// ArgMin. Comparisons use a total order (nan sorts above every number) so that sorting never
// sees an inconsistent comparator; ties keep the lower index first.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "backends/ref/tensor_internal.h"

namespace kiln::tensor_ref {
namespace {

// The value compared for an element: float for f16/bf16, the element itself otherwise.
template <typename T>
auto Key(const T& v) {
  if constexpr (std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>) {
    return static_cast<float>(v);
  } else {
    return v;
  }
}

// a < b in a total order where nan is above every number and equal to itself.
template <typename K>
bool TotalLess(const K& a, const K& b) {
  if constexpr (std::is_floating_point_v<K>) {
    if (std::isnan(a)) return false;
    if (std::isnan(b)) return true;
  }
  return a < b;
}

template <typename K>
bool TotalEqual(const K& a, const K& b) {
  return !TotalLess(a, b) && !TotalLess(b, a);
}

// Lines along `axis`: element j of line (o, i) sits at o * d * inner + j * inner + i.
struct Lines {
  int64_t outer, d, inner;
  int64_t at(int64_t o, int64_t i, int64_t j) const { return (o * d + j) * inner + i; }
};

Lines LinesOf(const Shape& s, int axis) {
  const int r = static_cast<int>(s.size());
  return {DimProduct(s, 0, axis), s[static_cast<size_t>(axis)], DimProduct(s, axis + 1, r)};
}

}  // namespace

Status TopK(KernelContext& ctx) {
  KILN_REQUIRE_INPUT(x, 0, "X");
  const int r = x->rank();
  if (r == 0) return ctx.Error("input must have rank >= 1");
  KILN_ASSIGN_OR_RETURN(int axis, NormalizeAxis(ctx, ctx.attrs().GetInt("axis", -1), r));
  int64_t k;
  if (ctx.opset() < 10) {
    if (!ctx.attrs().Has("k")) return ctx.Error("missing attribute 'k'");
    k = ctx.attrs().GetInt("k", 0);
  } else {
    KILN_REQUIRE_INPUT(kt, 1, "K");
    KILN_ASSIGN_OR_RETURN(auto kv, IntValues(ctx, *kt, "K"));
    if (kv.size() != 1) return ctx.Error("K must hold one value, found " + kt->Describe());
    k = kv[0];
  }
  const Lines L = LinesOf(x->shape(), axis);
  if (k < 0 || k > L.d) {
    return ctx.Error("k = " + std::to_string(k) + " is outside [0, " + std::to_string(L.d) +
                     "] for input " + x->Describe());
  }
  const bool largest = ctx.opset() < 11 || ctx.attrs().GetInt("largest", 1) != 0;
  Shape out_shape = x->shape();
  out_shape[axis] = k;
  Status st;
  const bool ok = Dispatch<kAllNumeric>(x->type(), [&](auto tag) {
    using T = decltype(tag);
    auto vals = ctx.output(0, x->type(), out_shape);
    if (!vals.ok()) {
      st = vals.status();
      return;
    }
    auto inds = ctx.output(1, ElementType::kI64, out_shape);
    if (!inds.ok()) {
      st = inds.status();
      return;
    }
    const T* p = x->data<T>();
    T* ov = (*vals)->template data<T>();
    int64_t* oi = (*inds)->template data<int64_t>();
    std::vector<int64_t> order(static_cast<size_t>(L.d));
    for (int64_t o = 0; o < L.outer; ++o) {
      for (int64_t i = 0; i < L.inner; ++i) {
        std::iota(order.begin(), order.end(), 0);
        auto before = [&](int64_t a, int64_t b) {
          const auto ka = Key(p[L.at(o, i, a)]), kb = Key(p[L.at(o, i, b)]);
          if (TotalEqual(ka, kb)) return a < b;
          return largest ? TotalLess(kb, ka) : TotalLess(ka, kb);
        };
        std::partial_sort(order.begin(), order.begin() + k, order.end(), before);
        for (int64_t j = 0; j < k; ++j) {
          const int64_t dst = (o * k + j) * L.inner + i;
          ov[dst] = p[L.at(o, i, order[j])];
          oi[dst] = order[j];
        }
      }
    }
  });
  if (!ok) return ctx.UnsupportedType(x->type());
  return st;
}

Status Unique(KernelContext& ctx) {
  KILN_REQUIRE_INPUT(x, 0, "X");
  const bool sorted = ctx.attrs().GetInt("sorted", 1) != 0;
  const bool has_axis = ctx.attrs().Has("axis");
  Shape view = {x->size()};  // without an axis the input is flattened
  int axis = 0;
  if (has_axis) {
    KILN_ASSIGN_OR_RETURN(axis, NormalizeAxis(ctx, ctx.attrs().GetInt("axis", 0), x->rank()));
    view = x->shape();
  }
  // Slice j along the axis is compared as the row of its elements in (outer, inner) order.
  const Lines L = LinesOf(view, axis);
  std::vector<int64_t> order(static_cast<size_t>(L.d));
  std::iota(order.begin(), order.end(), 0);
  std::vector<int64_t> group_of(static_cast<size_t>(L.d));  // slice -> unique group
  std::vector<int64_t> firsts, counts;                      // per group, in sorted order
  const bool ok = Dispatch<kAllTypes>(x->type(), [&](auto tag) {
    using T = decltype(tag);
    const T* p = x->data<T>();
    // -1, 0, 1 for slice a before, equal to, after slice b.
    auto compare = [&](int64_t a, int64_t b) {
      for (int64_t o = 0; o < L.outer; ++o) {
        for (int64_t i = 0; i < L.inner; ++i) {
          const auto ka = Key(p[L.at(o, i, a)]), kb = Key(p[L.at(o, i, b)]);
          if (TotalLess(ka, kb)) return -1;
          if (TotalLess(kb, ka)) return 1;
        }
      }
      return 0;
    };
    std::stable_sort(order.begin(), order.end(),
                     [&](int64_t a, int64_t b) { return compare(a, b) < 0; });
    for (size_t n = 0; n < order.size(); ++n) {
      if (n == 0 || compare(order[n - 1], order[n]) != 0) {
        firsts.push_back(order[n]);  // stable sort: the first of a run is its lowest index
        counts.push_back(0);
      }
      group_of[order[n]] = static_cast<int64_t>(firsts.size()) - 1;
      ++counts.back();
    }
  });
  if (!ok) return ctx.UnsupportedType(x->type());
  const int64_t u = static_cast<int64_t>(firsts.size());
  // Output position of each group: sorted order, or order of first occurrence.
  std::vector<int64_t> pos(static_cast<size_t>(u));
  std::iota(pos.begin(), pos.end(), 0);
  if (!sorted) {
    std::vector<int64_t> by_first(static_cast<size_t>(u));
    std::iota(by_first.begin(), by_first.end(), 0);
    std::sort(by_first.begin(), by_first.end(),
              [&](int64_t a, int64_t b) { return firsts[a] < firsts[b]; });
    for (int64_t n = 0; n < u; ++n) pos[by_first[n]] = n;
  }
  Shape y_shape = view;
  y_shape[axis] = u;
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.output(0, x->type(), y_shape));
  const ElementCopier c(x->type());
  for (int64_t g = 0; g < u; ++g) {
    for (int64_t o = 0; o < L.outer; ++o) {
      c.Copy(y->raw(), (o * u + pos[g]) * L.inner, x->raw(), L.at(o, 0, firsts[g]), L.inner);
    }
  }
  if (ctx.num_outputs() > 1) {
    KILN_ASSIGN_OR_RETURN(Tensor * ind, ctx.output(1, ElementType::kI64, {u}));
    for (int64_t g = 0; g < u; ++g) ind->data<int64_t>()[pos[g]] = firsts[g];
  }
  if (ctx.num_outputs() > 2) {
    KILN_ASSIGN_OR_RETURN(Tensor * inv, ctx.output(2, ElementType::kI64, {L.d}));
    for (int64_t j = 0; j < L.d; ++j) inv->data<int64_t>()[j] = pos[group_of[j]];
  }
  if (ctx.num_outputs() > 3) {
    KILN_ASSIGN_OR_RETURN(Tensor * cnt, ctx.output(3, ElementType::kI64, {u}));
    for (int64_t g = 0; g < u; ++g) cnt->data<int64_t>()[pos[g]] = counts[g];
  }
  return Status::Ok();
}

Status CumSum(KernelContext& ctx) {
  KILN_REQUIRE_INPUT(x, 0, "x");
  KILN_REQUIRE_INPUT(axis_t, 1, "axis");
  KILN_ASSIGN_OR_RETURN(auto av, IntValues(ctx, *axis_t, "axis"));
  if (av.size() != 1) return ctx.Error("axis must be a scalar, found " + axis_t->Describe());
  if (x->rank() == 0) return ctx.Error("input must have rank >= 1");
  KILN_ASSIGN_OR_RETURN(int axis, NormalizeAxis(ctx, av[0], x->rank()));
  const bool exclusive = ctx.attrs().GetInt("exclusive", 0) != 0;
  const bool reverse = ctx.attrs().GetInt("reverse", 0) != 0;
  const Lines L = LinesOf(x->shape(), axis);
  Status st;
  const bool ok = Dispatch<kAllNumeric>(x->type(), [&](auto tag) {
    using T = decltype(tag);
    // Integers accumulate exactly (wrapping) in their own type, floats in double.
    using Acc = std::conditional_t<std::is_integral_v<T>, T, double>;
    auto out = ctx.output(0, x->type(), x->shape());
    if (!out.ok()) {
      st = out.status();
      return;
    }
    const T* p = x->data<T>();
    T* q = (*out)->template data<T>();
    for (int64_t o = 0; o < L.outer; ++o) {
      for (int64_t i = 0; i < L.inner; ++i) {
        Acc acc = 0;
        for (int64_t n = 0; n < L.d; ++n) {
          const int64_t at = L.at(o, i, reverse ? L.d - 1 - n : n);
          Acc v;
          if constexpr (std::is_integral_v<T>) {
            v = p[at];
          } else {
            v = ToDouble(p[at]);
          }
          if (exclusive) q[at] = static_cast<T>(acc);
          acc = AddWrap<Acc>(acc, v);
          if (!exclusive) q[at] = static_cast<T>(acc);
        }
      }
    }
  });
  if (!ok) return ctx.UnsupportedType(x->type());
  return st;
}

namespace {

Status ArgExtreme(KernelContext& ctx, bool want_max) {
  KILN_REQUIRE_INPUT(x, 0, "data");
  const int r = x->rank();
  if (r == 0) return ctx.Error("input must have rank >= 1");
  KILN_ASSIGN_OR_RETURN(int axis, NormalizeAxis(ctx, ctx.attrs().GetInt("axis", 0), r));
  const bool keepdims = ctx.attrs().GetInt("keepdims", 1) != 0;
  const bool last = ctx.opset() >= 12 && ctx.attrs().GetInt("select_last_index", 0) != 0;
  const Lines L = LinesOf(x->shape(), axis);
  if (L.d == 0) return ctx.Error("cannot take an arg-extreme over an empty axis");
  Shape out_shape = x->shape();
  if (keepdims) {
    out_shape[axis] = 1;
  } else {
    out_shape.erase(out_shape.begin() + axis);
  }
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.output(0, ElementType::kI64, out_shape));
  int64_t* q = out->data<int64_t>();
  const bool ok = Dispatch<kAllNumeric>(x->type(), [&](auto tag) {
    using T = decltype(tag);
    const T* p = x->data<T>();
    for (int64_t o = 0; o < L.outer; ++o) {
      for (int64_t i = 0; i < L.inner; ++i) {
        int64_t best = 0;
        auto kb = Key(p[L.at(o, i, 0)]);
        for (int64_t j = 1; j < L.d; ++j) {
          const auto kj = Key(p[L.at(o, i, j)]);
          const bool better = want_max ? TotalLess(kb, kj) : TotalLess(kj, kb);
          if (better || (last && TotalEqual(kj, kb))) {
            best = j;
            kb = kj;
          }
        }
        q[o * L.inner + i] = best;
      }
    }
  });
  if (!ok) return ctx.UnsupportedType(x->type());
  return Status::Ok();
}

}  // namespace

Status ArgMax(KernelContext& ctx) { return ArgExtreme(ctx, true); }
Status ArgMin(KernelContext& ctx) { return ArgExtreme(ctx, false); }

}  // namespace kiln::tensor_ref
