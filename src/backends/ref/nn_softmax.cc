// Softmax, LogSoftmax, Hardmax and Dropout.
//
// Softmax-like ops view the input as [outer, len, inner] and normalise along len. Before opset
// 13 the input is coerced to 2-D at `axis` (default 1): len is the product of the trailing dims
// and inner is 1; from opset 13 len is the one dim `axis` (default -1). Sums are in double.
//
// Dropout is the identity at inference. With training_mode true (opset 12+) it draws its mask
// from MT19937 seeded with the `seed` attribute and turned into doubles in [0, 1) exactly as
// numpy's RandomState.uniform does, so seeded runs reproduce the ONNX reference outputs.
#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

#include "backends/ref/nn_internal.h"

namespace kiln::nn {
namespace {

enum class SoftKind { kSoftmax, kLogSoftmax, kHardmax };

Status RunSoftmax(KernelContext& ctx, SoftKind kind) {
  const Tensor* x = ctx.input(0);
  if (x == nullptr) return ctx.Error("input is required");
  const int rank = x->rank();
  const bool old = ctx.opset() < 13;
  int64_t axis = ctx.attrs().GetInt("axis", old ? 1 : -1);
  const int r = std::max(rank, 1);
  if (axis < -r || axis >= r) {
    return ctx.Error("axis " + std::to_string(axis) + " is out of range for rank " +
                     std::to_string(rank));
  }
  if (axis < 0) axis += r;
  int64_t outer = 1, len = 1, inner = 1;
  for (int i = 0; i < rank; ++i) {
    if (i < axis) {
      outer *= x->dim(i);
    } else if (i == axis || old) {
      len *= x->dim(i);
    } else {
      inner *= x->dim(i);
    }
  }
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.output(0, x->type(), x->shape()));
  const bool ok = Dispatch<kDispatchFloat>(x->type(), [&](auto tag) {
    using T = decltype(tag);
    const T* xd = x->data<T>();
    T* yd = y->data<T>();
    ParallelRange(ctx.thread_pool(), outer * inner, 16, [&](int64_t r0, int64_t r1) {
      for (int64_t row = r0; row < r1; ++row) {
        const int64_t base = (row / inner) * len * inner + row % inner;
        double mx = -std::numeric_limits<double>::infinity();
        int64_t arg = 0;
        for (int64_t j = 0; j < len; ++j) {
          const double v = ToD(xd[base + j * inner]);
          if (v > mx) {
            mx = v;
            arg = j;
          }
        }
        if (kind == SoftKind::kHardmax) {
          for (int64_t j = 0; j < len; ++j) yd[base + j * inner] = FromD<T>(j == arg ? 1.0 : 0.0);
          continue;
        }
        double sum = 0;
        for (int64_t j = 0; j < len; ++j) sum += std::exp(ToD(xd[base + j * inner]) - mx);
        const double log_sum = std::log(sum);
        for (int64_t j = 0; j < len; ++j) {
          const double d = ToD(xd[base + j * inner]) - mx;
          yd[base + j * inner] =
              FromD<T>(kind == SoftKind::kSoftmax ? std::exp(d) / sum : d - log_sum);
        }
      }
    });
  });
  if (!ok) return ctx.UnsupportedType(x->type());
  return Status::Ok();
}

}  // namespace

Status SoftmaxKernel(KernelContext& ctx) { return RunSoftmax(ctx, SoftKind::kSoftmax); }
Status LogSoftmaxKernel(KernelContext& ctx) { return RunSoftmax(ctx, SoftKind::kLogSoftmax); }
Status HardmaxKernel(KernelContext& ctx) { return RunSoftmax(ctx, SoftKind::kHardmax); }

Status DropoutKernel(KernelContext& ctx) {
  const Tensor* x = ctx.input(0);
  if (x == nullptr) return ctx.Error("input data is required");
  double ratio = 0.5;
  bool training = false;
  if (ctx.opset() >= 12) {
    if (const Tensor* r = ctx.input(1); r != nullptr) {
      if (r->size() != 1) return ctx.Error("ratio must be a scalar, found " + r->Describe());
      ratio = r->GetAsDouble(0);
    }
    if (const Tensor* t = ctx.input(2); t != nullptr) {
      if (t->size() != 1)
        return ctx.Error("training_mode must be a scalar, found " + t->Describe());
      training = t->GetAsDouble(0) != 0.0;
    }
  } else {
    ratio = ctx.attrs().GetFloat("ratio", 0.5f);
  }
  if (training && (ratio < 0.0 || ratio > 1.0)) {
    return ctx.Error("ratio must be in [0, 1], found " + std::to_string(ratio));
  }
  const bool drop = training && ratio != 0.0;
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.output(0, x->type(), x->shape()));
  std::vector<uint8_t> mask(static_cast<size_t>(x->size()), 1);
  if (drop) {
    uint32_t seed;
    if (const Attribute* a = ctx.attrs().Find("seed"); a != nullptr) {
      seed = static_cast<uint32_t>(a->kind == Attribute::Kind::kFloat ? static_cast<int64_t>(a->f)
                                                                      : a->i);
    } else {
      seed = std::random_device()();
    }
    std::mt19937 gen(seed);
    for (auto& m : mask) {
      const uint32_t hi = gen() >> 5, lo = gen() >> 6;
      const double u = (hi * 67108864.0 + lo) / 9007199254740992.0;
      m = u >= ratio ? 1 : 0;
    }
  }
  const bool ok = Dispatch<kAllNumeric>(x->type(), [&](auto tag) {
    using T = decltype(tag);
    const T* xd = x->data<T>();
    T* yd = y->data<T>();
    if (!drop) {
      std::copy_n(xd, x->size(), yd);
      return;
    }
    const float scale = ratio >= 1.0 ? 0.0f : 1.0f / (1.0f - static_cast<float>(ratio));
    for (int64_t i = 0; i < x->size(); ++i) {
      if constexpr (std::is_integral_v<T>) {
        yd[i] = mask[i] ? static_cast<T>(static_cast<double>(xd[i]) * scale) : T{};
      } else {
        yd[i] = mask[i] ? FromD<T>(ToD(xd[i]) * scale) : T(0.0f);
      }
    }
  });
  if (!ok) return ctx.UnsupportedType(x->type());
  if (ctx.num_outputs() > 1 && ctx.output_used(1)) {
    // Opset 10+ mask is bool; before it has the type of the input.
    const ElementType mt = ctx.opset() >= 10 ? ElementType::kBool : x->type();
    KILN_ASSIGN_OR_RETURN(Tensor * mo, ctx.output(1, mt, x->shape()));
    const bool mok = Dispatch<kAllNumeric | kDispatchBool>(mt, [&](auto tag) {
      using T = decltype(tag);
      T* md = mo->data<T>();
      for (int64_t i = 0; i < x->size(); ++i) {
        if constexpr (std::is_same_v<T, bool>) {
          md[i] = mask[i] != 0;
        } else if constexpr (std::is_integral_v<T>) {
          md[i] = static_cast<T>(mask[i]);
        } else {
          md[i] = T(static_cast<float>(mask[i]));
        }
      }
    });
    if (!mok) return ctx.UnsupportedType(mt);
  }
  return Status::Ok();
}

}  // namespace kiln::nn
