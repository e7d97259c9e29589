// Reference kernels for NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss.
//
// Math: input x is [N, C, d1..dk], target [N, d1..dk]. Viewing x as [N, C, D] (D = d1*..*dk),
// loss[n, d] = -w[t] * x[n, t, d] with t = target[n, d] (w = 1 without weights), 0 when t equals
// ignore_index. SoftmaxCrossEntropyLoss first replaces x by log_softmax over C (computed with
// the max subtracted) and can return it as a second output. Reductions: none (shape of target),
// sum, mean = sum(loss) / sum(w[t] over non-ignored positions). Everything accumulates in double.
#include <cmath>
#include <string>
#include <vector>

#include "backends/ref/misc_internal.h"

namespace kiln::misc_ref {

namespace {

Status RunLoss(KernelContext& ctx, bool softmax) {
  const Tensor* x = ctx.input(0);
  const Tensor* target = ctx.input(1);
  const Tensor* weight = ctx.input(2);
  if (x == nullptr || target == nullptr) return ctx.Error("expected inputs scores and labels");
  if (!IsFloating(x->type())) return ctx.UnsupportedType(x->type());
  if (target->type() != ElementType::kI32 && target->type() != ElementType::kI64) {
    return ctx.Error(std::string("labels must be i32 or i64, found ") +
                     ElementTypeName(target->type()));
  }
  if (x->rank() < 2) return ctx.Error("scores must have rank >= 2, found " + x->Describe());
  const int64_t n = x->dim(0);
  const int64_t c = x->dim(1);
  Shape expected_target = {n};
  for (int i = 2; i < x->rank(); ++i) expected_target.push_back(x->dim(i));
  if (target->shape() != expected_target) {
    return ctx.Error("labels shape must be " + ShapeToString(expected_target) + ", found " +
                     ShapeToString(target->shape()));
  }
  if (weight != nullptr && (weight->type() != x->type() || weight->shape() != Shape{c})) {
    return ctx.Error("weights must be " + std::string(ElementTypeName(x->type())) + "[" +
                     std::to_string(c) + "], found " + weight->Describe());
  }
  const std::string reduction = ctx.attrs().GetString("reduction", "mean");
  if (reduction != "none" && reduction != "sum" && reduction != "mean") {
    return ctx.Error("reduction must be none, sum or mean, found '" + reduction + "'");
  }
  const bool has_ignore = ctx.attrs().Has("ignore_index");
  const int64_t ignore_index = ctx.attrs().GetInt("ignore_index", 0);
  const int64_t d = n * c == 0 ? 0 : x->size() / (n * c);

  // Scores (or log-probabilities) in double, [N, C, D].
  std::vector<double> lp(static_cast<size_t>(x->size()));
  for (int64_t i = 0; i < x->size(); ++i) lp[static_cast<size_t>(i)] = x->GetAsDouble(i);
  if (softmax) {
    for (int64_t in = 0; in < n; ++in) {
      for (int64_t id = 0; id < d; ++id) {
        double* base = lp.data() + in * c * d + id;
        double mx = -INFINITY;
        for (int64_t ic = 0; ic < c; ++ic) mx = std::max(mx, base[ic * d]);
        double sum = 0;
        for (int64_t ic = 0; ic < c; ++ic) sum += std::exp(base[ic * d] - mx);
        const double lse = mx + std::log(sum);
        for (int64_t ic = 0; ic < c; ++ic) base[ic * d] -= lse;
      }
    }
  }

  std::vector<double> loss(static_cast<size_t>(n * d));
  double loss_sum = 0;
  double weight_sum = 0;
  for (int64_t in = 0; in < n; ++in) {
    for (int64_t id = 0; id < d; ++id) {
      const int64_t t = target->GetAsInt64(in * d + id);
      double& l = loss[static_cast<size_t>(in * d + id)];
      if (has_ignore && t == ignore_index) {
        l = 0;
        continue;
      }
      if (t < 0 || t >= c) {
        return ctx.Error("label " + std::to_string(t) + " is out of range [0, " +
                         std::to_string(c) + ")");
      }
      const double w = weight != nullptr ? weight->GetAsDouble(t) : 1.0;
      l = -lp[static_cast<size_t>((in * c + t) * d + id)] * w;
      loss_sum += l;
      weight_sum += w;
    }
  }

  const Shape out_shape = reduction == "none" ? target->shape() : Shape{};
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.output(0, x->type(), out_shape));
  Tensor* log_prob = nullptr;
  if (softmax && ctx.num_outputs() > 1) {
    KILN_ASSIGN_OR_RETURN(log_prob, ctx.output(1, x->type(), x->shape()));
  }
  Dispatch<kDispatchFloat>(x->type(), [&](auto tag) {
    using T = decltype(tag);
    T* yd = y->data<T>();
    if (reduction == "none") {
      for (size_t i = 0; i < loss.size(); ++i) yd[i] = static_cast<T>(loss[i]);
    } else if (reduction == "sum") {
      yd[0] = static_cast<T>(loss_sum);
    } else {
      yd[0] = static_cast<T>(loss_sum / weight_sum);
    }
    if (log_prob != nullptr) {
      for (size_t i = 0; i < lp.size(); ++i) log_prob->data<T>()[i] = static_cast<T>(lp[i]);
    }
  });
  return Status::Ok();
}

}  // namespace

Status SoftmaxCrossEntropyLoss(KernelContext& ctx) { return RunLoss(ctx, true); }
Status NegativeLogLikelihoodLoss(KernelContext& ctx) { return RunLoss(ctx, false); }

}  // namespace kiln::misc_ref
