// Reference kernels: Gelu-20, Mish-18, GroupNormalization-18/21, RMSNormalization-23.
// All compute in double (see modern_internal.h).
#include <cmath>
#include <string>

#include "backends/ref/modern_internal.h"
#include "backends/ref/nn_internal.h"

namespace kiln::modern {
namespace {

template <typename Fn>
Status MapFloat(KernelContext& ctx, Fn fn) {
  KILN_RETURN_IF_ERROR(RequireFloatInput(ctx, 0, "X"));
  const Tensor& x = *ctx.input(0);
  std::vector<double> v = AsDoubles(x);
  for (double& e : v) e = fn(e);
  return WriteDoubles(ctx, 0, x.type(), x.shape(), v);
}

}  // namespace

// approximate "none": 0.5 x (1 + erf(x / sqrt 2)); "tanh": 0.5 x (1 + tanh(sqrt(2/pi) (x +
// 0.044715 x^3))).
Status GeluKernel(KernelContext& ctx) {
  const std::string mode = ctx.attrs().GetString("approximate", "none");
  if (mode == "none") {
    return MapFloat(ctx, [](double x) { return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0))); });
  }
  if (mode == "tanh") {
    const double k = std::sqrt(2.0 / M_PI);
    return MapFloat(
        ctx, [k](double x) { return 0.5 * x * (1.0 + std::tanh(k * (x + 0.044715 * x * x * x))); });
  }
  return ctx.Error("approximate must be \"none\" or \"tanh\", found \"" + mode + "\"");
}

// x * tanh(softplus(x)), softplus(x) = log(1 + exp(x)) computed without overflow.
Status MishKernel(KernelContext& ctx) {
  return MapFloat(ctx, [](double x) {
    const double sp = x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
    return x * std::tanh(sp);
  });
}

// X (N, C, ...): statistics per (n, group) over C/num_groups channels and all spatial
// positions; scale and bias are per group at opset 18 and per channel from opset 21.
Status GroupNormalizationKernel(KernelContext& ctx) {
  KILN_RETURN_IF_ERROR(RequireFloatInput(ctx, 0, "X"));
  KILN_RETURN_IF_ERROR(RequireFloatInput(ctx, 1, "scale"));
  KILN_RETURN_IF_ERROR(RequireFloatInput(ctx, 2, "bias"));
  const Tensor& x = *ctx.input(0);
  const Tensor& scale = *ctx.input(1);
  const Tensor& bias = *ctx.input(2);
  if (x.rank() < 2) return ctx.Error("X must have rank >= 2, found " + x.Describe());
  const int64_t groups = ctx.attrs().GetInt("num_groups", 0);
  const int64_t n = x.dim(0), c = x.dim(1);
  if (groups <= 0 || c % groups != 0) {
    return ctx.Error("num_groups " + std::to_string(groups) +
                     " must be positive and divide the channel count " + std::to_string(c));
  }
  const bool per_channel = ctx.opset() >= 21;
  const int64_t want = per_channel ? c : groups;
  for (const Tensor* t : {&scale, &bias}) {
    if (t->rank() != 1 || t->dim(0) != want) {
      return ctx.Error(std::string(t == &scale ? "scale" : "bias") + " must have shape [" +
                       std::to_string(want) + "] (one value per " +
                       (per_channel ? "channel" : "group") + " at opset " +
                       std::to_string(ctx.opset()) + "), found " + t->Describe());
    }
  }
  const double eps = ctx.attrs().GetFloat("epsilon", 1e-5f);
  int64_t inner = 1;
  for (int i = 2; i < x.rank(); ++i) inner *= x.dim(i);
  const int64_t cpg = c / groups, block = cpg * inner;
  std::vector<double> v = AsDoubles(x);
  const std::vector<double> s = AsDoubles(scale), b = AsDoubles(bias);
  nn::ParallelRange(ctx.thread_pool(), n * groups, 1, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      double* p = v.data() + r * block;
      double sum = 0;
      for (int64_t j = 0; j < block; ++j) sum += p[j];
      const double mu = block > 0 ? sum / block : 0.0;
      double sq = 0;
      for (int64_t j = 0; j < block; ++j) sq += (p[j] - mu) * (p[j] - mu);
      const double inv = 1.0 / std::sqrt((block > 0 ? sq / block : 0.0) + eps);
      const int64_t g = r % groups;
      for (int64_t ch = 0; ch < cpg; ++ch) {
        const int64_t k = per_channel ? g * cpg + ch : g;
        for (int64_t j = 0; j < inner; ++j) {
          double& e = p[ch * inner + j];
          e = (e - mu) * inv * s[k] + b[k];
        }
      }
    }
  });
  return WriteDoubles(ctx, 0, x.type(), x.shape(), v);
}

// Y = X / sqrt(mean(X^2 over axes [axis, rank)) + epsilon) * scale, scale broadcast (right
// aligned) to the normalized shape X.shape[axis:].
Status RmsNormalizationKernel(KernelContext& ctx) {
  KILN_RETURN_IF_ERROR(RequireFloatInput(ctx, 0, "X"));
  KILN_RETURN_IF_ERROR(RequireFloatInput(ctx, 1, "scale"));
  const Tensor& x = *ctx.input(0);
  const Tensor& scale = *ctx.input(1);
  const int rank = x.rank();
  int64_t axis = ctx.attrs().GetInt("axis", -1);
  if (axis < -rank || axis >= rank) {
    return ctx.Error("axis " + std::to_string(axis) + " is out of range for X " + x.Describe());
  }
  if (axis < 0) axis += rank;
  const double eps = ctx.attrs().GetFloat("epsilon", 1e-5f);
  const Shape norm(x.shape().begin() + axis, x.shape().end());
  int64_t inner = 1;
  for (int64_t d : norm) inner *= d;
  const int64_t outer = inner > 0 ? x.size() / inner : 0;
  // Index into scale for each normalized position.
  const size_t nr = norm.size();
  if (scale.rank() > static_cast<int>(nr)) {
    return ctx.Error("scale " + scale.Describe() + " does not broadcast to the normalized shape " +
                     ShapeToString(norm));
  }
  const size_t off = nr - scale.rank();
  for (int i = 0; i < scale.rank(); ++i) {
    if (scale.dim(i) != 1 && scale.dim(i) != norm[off + i]) {
      return ctx.Error("scale " + scale.Describe() +
                       " does not broadcast to the normalized shape " + ShapeToString(norm));
    }
  }
  std::vector<int64_t> smap(static_cast<size_t>(inner));
  for (int64_t j = 0; j < inner; ++j) {
    int64_t rem = j, idx = 0, stride = 1;
    for (size_t d = nr; d-- > 0;) {
      const int64_t coord = rem % norm[d];
      rem /= norm[d];
      if (d >= off) {
        const int64_t sd = scale.dim(static_cast<int>(d - off));
        if (sd != 1) idx += coord * stride;
        stride *= sd;
      }
    }
    smap[static_cast<size_t>(j)] = idx;
  }
  std::vector<double> v = AsDoubles(x);
  const std::vector<double> s = AsDoubles(scale);
  nn::ParallelRange(ctx.thread_pool(), outer, 1, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      double* p = v.data() + r * inner;
      double sq = 0;
      for (int64_t j = 0; j < inner; ++j) sq += p[j] * p[j];
      const double inv = 1.0 / std::sqrt(sq / inner + eps);
      for (int64_t j = 0; j < inner; ++j) p[j] = p[j] * inv * s[smap[j]];
    }
  });
  return WriteDoubles(ctx, 0, x.type(), x.shape(), v);
}

}  // namespace kiln::modern
