// Normalisation kernels: BatchNormalization, InstanceNormalization, LayerNormalization, LRN,
// MeanVarianceNormalization. Statistics and coefficients are computed in double.
#include <algorithm>
#include <cmath>

#include "backends/ref/nn_internal.h"

namespace kiln::nn {

// Reads a parameter tensor of any float type as doubles.
std::vector<double> AsDoubles(const Tensor& t) {
  std::vector<double> v(static_cast<size_t>(t.size()));
  for (int64_t i = 0; i < t.size(); ++i) v[i] = t.GetAsDouble(i);
  return v;
}

Status WriteDoubles(KernelContext& ctx, size_t index, ElementType type, const Shape& shape,
                    const std::vector<double>& values) {
  KILN_ASSIGN_OR_RETURN(Tensor * t, ctx.output(index, type, shape));
  const bool ok = Dispatch<kDispatchFloat>(type, [&](auto tag) {
    using T = decltype(tag);
    T* d = t->data<T>();
    for (size_t i = 0; i < values.size(); ++i) d[i] = FromD<T>(values[i]);
  });
  if (!ok) return ctx.UnsupportedType(type);
  return Status::Ok();
}

namespace {


// y[i] = x[i] * a[group(i)] + b[group(i)] over [outer, groups, inner] in the type of x.
Status AffinePerGroup(KernelContext& ctx, const Tensor& x, int64_t outer, int64_t groups,
                      int64_t inner, const std::vector<double>& a, const std::vector<double>& b,
                      bool per_element) {
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.output(0, x.type(), x.shape()));
  const bool ok = Dispatch<kDispatchFloat>(x.type(), [&](auto tag) {
    using T = decltype(tag);
    const T* xd = x.data<T>();
    T* yd = y->data<T>();
    ParallelRange(ctx.thread_pool(), outer * groups, 1, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t c = r % groups;
        const T* xs = xd + r * inner;
        T* ys = yd + r * inner;
        if constexpr (std::is_same_v<T, float>) {
          if (!per_element) {
            const float av = static_cast<float>(a[c]), bv = static_cast<float>(b[c]);
            for (int64_t i = 0; i < inner; ++i) ys[i] = xs[i] * av + bv;
            continue;
          }
        }
        for (int64_t i = 0; i < inner; ++i) {
          const size_t j =
              per_element ? static_cast<size_t>(c * inner + i) : static_cast<size_t>(c);
          ys[i] = FromD<T>(ToD(xs[i]) * a[j] + b[j]);
        }
      }
    });
  });
  if (!ok) return ctx.UnsupportedType(x.type());
  return Status::Ok();
}

}  // namespace

Status BatchNormalizationKernel(KernelContext& ctx) {
  const Tensor* x = ctx.input(0);
  const Tensor* scale = ctx.input(1);
  const Tensor* bias = ctx.input(2);
  const Tensor* mean = ctx.input(3);
  const Tensor* var = ctx.input(4);
  if (x == nullptr || scale == nullptr || bias == nullptr || mean == nullptr || var == nullptr) {
    return ctx.Error("inputs X, scale, B, mean and var are required");
  }
  if (x->rank() < 2) return ctx.Error("expected X [N,C,...], found " + x->Describe());
  const int64_t n = x->dim(0), c = x->dim(1);
  const int64_t inner = c == 0 || n == 0 ? 0 : x->size() / (n * c);
  const bool spatial = ctx.opset() >= 9 || ctx.attrs().GetInt("spatial", 1) != 0;
  const int64_t per = spatial ? c : c * inner;
  for (const Tensor* t : {scale, bias, mean, var}) {
    if (t->size() != per) {
      return ctx.Error("parameter " + t->Describe() + " must hold " + std::to_string(per) +
                       " values");
    }
  }
  const double eps = ctx.attrs().GetFloat("epsilon", 1e-5f);
  const double momentum = ctx.attrs().GetFloat("momentum", 0.9f);
  bool training = false;
  if (ctx.opset() >= 14) {
    training = ctx.attrs().GetInt("training_mode", 0) != 0;
  } else {
    training = ctx.num_outputs() > 1 && ctx.output_used(1) &&
               (ctx.opset() >= 7 || ctx.attrs().GetInt("is_test", 0) == 0);
  }
  std::vector<double> s = AsDoubles(*scale), b = AsDoubles(*bias), m = AsDoubles(*mean),
                      v = AsDoubles(*var);
  std::vector<double> batch_mean, batch_var;
  if (training) {
    // Per-channel (or per-element when !spatial) batch statistics, population variance.
    batch_mean.assign(per, 0.0);
    batch_var.assign(per, 0.0);
    const int64_t count = spatial ? n * inner : n;
    // An empty X (inner is 0 then) leaves the statistics at 0.
    const int64_t elements = inner > 0 ? x->size() : 0;
    auto group_of = [&](int64_t i) { return spatial ? (i / inner) % c : i % (c * inner); };
    for (int64_t i = 0; i < elements; ++i) batch_mean[group_of(i)] += x->GetAsDouble(i);
    for (auto& bm : batch_mean) bm /= static_cast<double>(std::max<int64_t>(count, 1));
    for (int64_t i = 0; i < elements; ++i) {
      const double d = x->GetAsDouble(i) - batch_mean[group_of(i)];
      batch_var[group_of(i)] += d * d;
    }
    for (auto& bv : batch_var) bv /= static_cast<double>(std::max<int64_t>(count, 1));
  }
  const std::vector<double>& use_m = training ? batch_mean : m;
  const std::vector<double>& use_v = training ? batch_var : v;
  std::vector<double> a(per), off(per);
  for (int64_t i = 0; i < per; ++i) {
    a[i] = s[i] / std::sqrt(use_v[i] + eps);
    off[i] = b[i] - use_m[i] * a[i];
  }
  KILN_RETURN_IF_ERROR(spatial ? AffinePerGroup(ctx, *x, n, c, inner, a, off, false)
                               : AffinePerGroup(ctx, *x, n, 1, c * inner, a, off, true));
  if (training) {
    std::vector<double> rm(per), rv(per);
    for (int64_t i = 0; i < per; ++i) {
      rm[i] = m[i] * momentum + batch_mean[i] * (1 - momentum);
      rv[i] = v[i] * momentum + batch_var[i] * (1 - momentum);
    }
    if (ctx.output_used(1))
      KILN_RETURN_IF_ERROR(WriteDoubles(ctx, 1, mean->type(), mean->shape(), rm));
    if (ctx.num_outputs() > 2 && ctx.output_used(2)) {
      KILN_RETURN_IF_ERROR(WriteDoubles(ctx, 2, var->type(), var->shape(), rv));
    }
    if (ctx.num_outputs() > 3 && ctx.output_used(3)) {
      KILN_RETURN_IF_ERROR(WriteDoubles(ctx, 3, mean->type(), mean->shape(), batch_mean));
    }
    if (ctx.num_outputs() > 4 && ctx.output_used(4)) {
      KILN_RETURN_IF_ERROR(WriteDoubles(ctx, 4, var->type(), var->shape(), batch_var));
    }
  }
  return Status::Ok();
}

Status InstanceNormalizationKernel(KernelContext& ctx) {
  const Tensor* x = ctx.input(0);
  const Tensor* scale = ctx.input(1);
  const Tensor* bias = ctx.input(2);
  if (x == nullptr || scale == nullptr || bias == nullptr) {
    return ctx.Error("inputs input, scale and B are required");
  }
  if (x->rank() < 3) return ctx.Error("expected X [N,C,spatial...], found " + x->Describe());
  const int64_t n = x->dim(0), c = x->dim(1);
  if (scale->size() != c || bias->size() != c) {
    return ctx.Error("scale and B must hold " + std::to_string(c) + " values");
  }
  const int64_t inner = n * c == 0 ? 0 : x->size() / (n * c);
  const double eps = ctx.attrs().GetFloat("epsilon", 1e-5f);
  const std::vector<double> s = AsDoubles(*scale), b = AsDoubles(*bias);
  std::vector<double> a(static_cast<size_t>(n * c)), off(static_cast<size_t>(n * c));
  for (int64_t r = 0; r < n * c; ++r) {
    double sum = 0, sq = 0;
    for (int64_t i = 0; i < inner; ++i) sum += x->GetAsDouble(r * inner + i);
    const double mu = inner > 0 ? sum / inner : 0.0;
    for (int64_t i = 0; i < inner; ++i) {
      const double d = x->GetAsDouble(r * inner + i) - mu;
      sq += d * d;
    }
    const double var = inner > 0 ? sq / inner : 0.0;
    a[r] = s[r % c] / std::sqrt(var + eps);
    off[r] = b[r % c] - mu * a[r];
  }
  return AffinePerGroup(ctx, *x, 1, n * c, inner, a, off, false);
}

Status LayerNormalizationKernel(KernelContext& ctx) {
  const Tensor* x = ctx.input(0);
  const Tensor* scale = ctx.input(1);
  const Tensor* bias = ctx.input(2);
  if (x == nullptr || scale == nullptr) return ctx.Error("inputs X and Scale are required");
  const int rank = x->rank();
  int64_t axis = ctx.attrs().GetInt("axis", -1);
  if (axis < -rank || axis >= rank) {
    return ctx.Error("axis " + std::to_string(axis) + " is out of range for rank " +
                     std::to_string(rank));
  }
  if (axis < 0) axis += rank;
  const double eps = ctx.attrs().GetFloat("epsilon", 1e-5f);
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < rank; ++i) (i < axis ? outer : inner) *= x->dim(i);
  Shape norm_shape(x->shape().begin() + axis, x->shape().end());
  // Index of the Scale/B element for each normalised position (right-aligned broadcast).
  auto broadcast_map = [&](const Tensor& t, std::vector<int64_t>* map) -> Status {
    if (t.rank() > static_cast<int>(norm_shape.size())) {
      return ctx.Error(t.Describe() + " does not broadcast to the normalized shape " +
                       ShapeToString(norm_shape));
    }
    const size_t off = norm_shape.size() - t.rank();
    for (int i = 0; i < t.rank(); ++i) {
      if (t.dim(i) != 1 && t.dim(i) != norm_shape[off + i]) {
        return ctx.Error(t.Describe() + " does not broadcast to the normalized shape " +
                         ShapeToString(norm_shape));
      }
    }
    map->resize(static_cast<size_t>(inner));
    for (int64_t j = 0; j < inner; ++j) {
      int64_t r = j, idx = 0, stride = 1;
      for (size_t d = norm_shape.size(); d-- > 0;) {
        const int64_t coord = r % norm_shape[d];
        r /= norm_shape[d];
        if (d >= off) {
          const int64_t td = t.dim(static_cast<int>(d - off));
          if (td != 1) idx += coord * stride;
          stride *= td;
        }
      }
      (*map)[j] = idx;
    }
    return Status::Ok();
  };
  std::vector<int64_t> smap, bmap;
  KILN_RETURN_IF_ERROR(broadcast_map(*scale, &smap));
  if (bias != nullptr) KILN_RETURN_IF_ERROR(broadcast_map(*bias, &bmap));
  const std::vector<double> s = AsDoubles(*scale);
  const std::vector<double> b = bias != nullptr ? AsDoubles(*bias) : std::vector<double>();
  Shape stat_shape(x->shape().begin(), x->shape().begin() + axis);
  stat_shape.resize(rank, 1);
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.output(0, x->type(), x->shape()));
  float* mean_out = nullptr;
  float* inv_out = nullptr;
  if (ctx.num_outputs() > 1 && ctx.output_used(1)) {
    KILN_ASSIGN_OR_RETURN(Tensor * t, ctx.output(1, ElementType::kF32, stat_shape));
    mean_out = t->data<float>();
  }
  if (ctx.num_outputs() > 2 && ctx.output_used(2)) {
    KILN_ASSIGN_OR_RETURN(Tensor * t, ctx.output(2, ElementType::kF32, stat_shape));
    inv_out = t->data<float>();
  }
  const bool ok = Dispatch<kDispatchFloat>(x->type(), [&](auto tag) {
    using T = decltype(tag);
    const T* xd = x->data<T>();
    T* yd = y->data<T>();
    ParallelRange(ctx.thread_pool(), outer, 1, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const T* xs = xd + r * inner;
        double sum = 0, sq = 0;
        for (int64_t j = 0; j < inner; ++j) sum += ToD(xs[j]);
        const double mu = inner > 0 ? sum / inner : 0.0;
        for (int64_t j = 0; j < inner; ++j) {
          const double d = ToD(xs[j]) - mu;
          sq += d * d;
        }
        const double inv = 1.0 / std::sqrt((inner > 0 ? sq / inner : 0.0) + eps);
        for (int64_t j = 0; j < inner; ++j) {
          double v = (ToD(xs[j]) - mu) * inv * s[smap[j]];
          if (bias != nullptr) v += b[bmap[j]];
          yd[r * inner + j] = FromD<T>(v);
        }
        if (mean_out != nullptr) mean_out[r] = static_cast<float>(mu);
        if (inv_out != nullptr) inv_out[r] = static_cast<float>(inv);
      }
    });
  });
  if (!ok) return ctx.UnsupportedType(x->type());
  return Status::Ok();
}

Status LrnKernel(KernelContext& ctx) {
  const Tensor* x = ctx.input(0);
  if (x == nullptr) return ctx.Error("input X is required");
  if (x->rank() < 3) return ctx.Error("expected X [N,C,spatial...], found " + x->Describe());
  const int64_t size = ctx.attrs().GetInt("size", 0);
  if (size <= 0) return ctx.Error("attribute size must be positive");
  const double alpha = ctx.attrs().GetFloat("alpha", 1e-4f);
  const double beta = ctx.attrs().GetFloat("beta", 0.75f);
  const double bias = ctx.attrs().GetFloat("bias", 1.0f);
  const int64_t n = x->dim(0), c = x->dim(1);
  const int64_t inner = n * c == 0 ? 0 : x->size() / (n * c);
  const int64_t lo = (size - 1) / 2, hi = size - 1 - lo;  // floor / ceil of (size-1)/2
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.output(0, x->type(), x->shape()));
  const bool ok = Dispatch<kDispatchFloat>(x->type(), [&](auto tag) {
    using T = decltype(tag);
    const T* xd = x->data<T>();
    T* yd = y->data<T>();
    for (int64_t b = 0; b < n; ++b) {
      for (int64_t ch = 0; ch < c; ++ch) {
        const int64_t c0 = std::max<int64_t>(0, ch - lo), c1 = std::min<int64_t>(c - 1, ch + hi);
        for (int64_t i = 0; i < inner; ++i) {
          double sq = 0;
          for (int64_t k = c0; k <= c1; ++k) {
            const double v = ToD(xd[(b * c + k) * inner + i]);
            sq += v * v;
          }
          const int64_t at = (b * c + ch) * inner + i;
          yd[at] = FromD<T>(ToD(xd[at]) / std::pow(bias + alpha / size * sq, beta));
        }
      }
    }
  });
  if (!ok) return ctx.UnsupportedType(x->type());
  return Status::Ok();
}

Status MeanVarianceNormalizationKernel(KernelContext& ctx) {
  const Tensor* x = ctx.input(0);
  if (x == nullptr) return ctx.Error("input X is required");
  const int rank = x->rank();
  std::vector<int64_t> axes = ctx.attrs().GetInts("axes", {0, 2, 3});
  std::vector<bool> reduced(rank, false);
  for (int64_t a : axes) {
    if (a < -rank || a >= rank) {
      return ctx.Error("axis " + std::to_string(a) + " is out of range for rank " +
                       std::to_string(rank));
    }
    reduced[a < 0 ? a + rank : a] = true;
  }
  // Group id of each element = its index over the kept dims.
  std::vector<int64_t> group(static_cast<size_t>(x->size()));
  int64_t groups = 1;
  for (int i = 0; i < rank; ++i) {
    if (!reduced[i]) groups *= x->dim(i);
  }
  {
    const std::vector<int64_t> strides = Strides(x->shape());
    for (int64_t e = 0; e < x->size(); ++e) {
      int64_t gidx = 0;
      for (int i = 0; i < rank; ++i) {
        if (!reduced[i]) gidx = gidx * x->dim(i) + (e / strides[i]) % x->dim(i);
      }
      group[e] = gidx;
    }
  }
  std::vector<double> sum(groups, 0.0), sq(groups, 0.0), cnt(groups, 0.0);
  for (int64_t e = 0; e < x->size(); ++e) {
    const double v = x->GetAsDouble(e);
    sum[group[e]] += v;
    sq[group[e]] += v * v;
    cnt[group[e]] += 1;
  }
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.output(0, x->type(), x->shape()));
  const bool ok = Dispatch<kDispatchFloat>(x->type(), [&](auto tag) {
    using T = decltype(tag);
    const T* xd = x->data<T>();
    T* yd = y->data<T>();
    for (int64_t e = 0; e < x->size(); ++e) {
      const int64_t gi = group[e];
      const double mu = sum[gi] / cnt[gi];
      const double sd = std::sqrt(std::max(0.0, sq[gi] / cnt[gi] - mu * mu));
      yd[e] = FromD<T>((ToD(xd[e]) - mu) / (sd + 1e-9));
    }
  });
  if (!ok) return ctx.UnsupportedType(x->type());
  return Status::Ok();
}

}  // namespace kiln::nn
