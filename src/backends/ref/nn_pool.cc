// Pooling kernels: MaxPool (with Indices), AveragePool, LpPool, their Global forms, MaxUnpool.
//
// All spatial ranks share one loop: for each (image, channel) plane and each output position
// the kernel taps are enumerated in row-major order, taps in the padding are skipped. Sums
// accumulate in double; MaxPool keeps the first maximum in tap order (its index is reported).
#include <algorithm>
#include <cmath>
#include <limits>

#include "backends/ref/nn_internal.h"
#include "ir/infer_util.h"

namespace kiln::nn {
namespace {

enum class PoolKind { kMax, kAverage, kLp };

struct PoolParams {
  PoolKind kind = PoolKind::kMax;
  bool count_include_pad = false;
  double p = 2.0;
  int storage_order = 0;
};

// Precomputed tap offsets: for each tap its per-dim offset (k * dilation).
struct Taps {
  int64_t count = 1;
  std::vector<int64_t> offsets;  // count x nd
};

Taps MakeTaps(const ConvGeometry& g) {
  Taps t;
  for (int i = 0; i < g.nd; ++i) t.count *= g.kernel[i];
  t.offsets.resize(static_cast<size_t>(t.count * g.nd));
  for (int64_t k = 0; k < t.count; ++k) {
    int64_t r = k;
    for (int i = g.nd - 1; i >= 0; --i) {
      t.offsets[k * g.nd + i] = (r % g.kernel[i]) * g.dilation[i];
      r /= g.kernel[i];
    }
  }
  return t;
}

template <typename T>
void PoolPlanes(const T* x, T* y, int64_t* indices, int64_t planes, const ConvGeometry& g,
                const PoolParams& pp, ThreadPool* pool) {
  const int nd = g.nd;
  int64_t in_size = 1, out_size = 1;
  for (int i = 0; i < nd; ++i) {
    in_size *= g.in[i];
    out_size *= g.out[i];
  }
  const Taps taps = MakeTaps(g);
  // Column-major spatial strides for storage_order 1.
  std::vector<int64_t> cm_stride(nd, 1);
  for (int i = 1; i < nd; ++i) cm_stride[i] = cm_stride[i - 1] * g.in[i - 1];
  ParallelRange(pool, planes, 1, [&](int64_t p0, int64_t p1) {
    std::vector<int64_t> start(nd), pos(nd);
    for (int64_t plane = p0; plane < p1; ++plane) {
      const T* xp = x + plane * in_size;
      for (int64_t op = 0; op < out_size; ++op) {
        int64_t r = op;
        for (int i = nd - 1; i >= 0; --i) {
          start[i] = (r % g.out[i]) * g.stride[i] - g.pad_begin[i];
          r /= g.out[i];
        }
        double acc = pp.kind == PoolKind::kMax ? -std::numeric_limits<double>::infinity() : 0.0;
        int64_t best = -1, inside_count = 0, padded_count = 0;
        for (int64_t k = 0; k < taps.count; ++k) {
          bool inside = true, in_padded = true;
          int64_t off = 0;
          for (int i = 0; i < nd; ++i) {
            const int64_t q = start[i] + taps.offsets[k * nd + i];
            pos[i] = q;
            if (q < 0 || q >= g.in[i]) inside = false;
            if (q < -g.pad_begin[i] || q >= g.in[i] + g.pad_end[i]) in_padded = false;
            off = off * g.in[i] + q;
          }
          if (in_padded) ++padded_count;
          if (!inside) continue;
          ++inside_count;
          const double v = ToD(xp[off]);
          switch (pp.kind) {
            case PoolKind::kMax:
              if (best < 0 || v > acc) {
                acc = v;
                if (pp.storage_order == 0) {
                  best = off;
                } else {
                  best = 0;
                  for (int i = 0; i < nd; ++i) best += pos[i] * cm_stride[i];
                }
              }
              break;
            case PoolKind::kAverage:
              acc += v;
              break;
            case PoolKind::kLp:
              acc += std::pow(std::fabs(v), pp.p);
              break;
          }
        }
        double out = acc;
        if (pp.kind == PoolKind::kAverage) {
          const int64_t n = pp.count_include_pad ? padded_count : inside_count;
          out = n > 0 ? acc / static_cast<double>(n) : 0.0;
        } else if (pp.kind == PoolKind::kLp) {
          out = std::pow(acc, 1.0 / pp.p);
        }
        if constexpr (std::is_integral_v<T>) {
          y[plane * out_size + op] = static_cast<T>(out);
        } else {
          y[plane * out_size + op] = FromD<T>(out);
        }
        if (indices != nullptr)
          indices[plane * out_size + op] = best < 0 ? 0 : plane * in_size + best;
      }
    }
  });
}

constexpr unsigned kMaxPoolTypes = kDispatchFloat | kDispatchSigned | kDispatchUnsigned;

Status RunPool(KernelContext& ctx, PoolParams pp, bool global) {
  const Tensor* x = ctx.input(0);
  if (x == nullptr) return ctx.Error("input X is required");
  if (x->rank() < 3) return ctx.Error("expected X [N,C,spatial...], found " + x->Describe());
  std::vector<int64_t> in(x->shape().begin() + 2, x->shape().end());
  ConvGeometry g;
  if (global) {
    g.nd = static_cast<int>(in.size());
    g.in = in;
    g.kernel = in;
    g.out.assign(in.size(), 1);
    g.stride.assign(in.size(), 1);
    g.dilation.assign(in.size(), 1);
    g.pad_begin.assign(in.size(), 0);
    g.pad_end.assign(in.size(), 0);
  } else {
    KILN_RETURN_IF_ERROR(ComputeConvGeometry(ctx, in, {}, true, &g));
  }
  Shape out_shape = {x->dim(0), x->dim(1)};
  out_shape.insert(out_shape.end(), g.out.begin(), g.out.end());
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.output(0, x->type(), out_shape));
  int64_t* indices = nullptr;
  if (pp.kind == PoolKind::kMax && !global && ctx.num_outputs() > 1 && ctx.output_used(1)) {
    KILN_ASSIGN_OR_RETURN(Tensor * ind, ctx.output(1, ElementType::kI64, out_shape));
    indices = ind->data<int64_t>();
  }
  const int64_t planes = x->dim(0) * x->dim(1);
  const bool ok = Dispatch<kMaxPoolTypes>(x->type(), [&](auto tag) {
    using T = decltype(tag);
    PoolPlanes<T>(x->data<T>(), y->data<T>(), indices, planes, g, pp, ctx.thread_pool());
  });
  if (!ok || (pp.kind != PoolKind::kMax && !IsFloating(x->type()))) {
    return ctx.UnsupportedType(x->type());
  }
  return Status::Ok();
}

double LpPoolExponent(const KernelContext& ctx) {
  const Attribute* a = ctx.attrs().Find("p");
  if (a == nullptr) return 2.0;
  return a->kind == Attribute::Kind::kFloat ? a->f : static_cast<double>(a->i);
}

}  // namespace

Status MaxPoolKernel(KernelContext& ctx) {
  PoolParams pp;
  pp.kind = PoolKind::kMax;
  pp.storage_order = static_cast<int>(ctx.attrs().GetInt("storage_order", 0));
  return RunPool(ctx, pp, false);
}

Status AveragePoolKernel(KernelContext& ctx) {
  KILN_RETURN_IF_ERROR(CheckPoolAttributeVersion(ctx.node()));
  PoolParams pp;
  pp.kind = PoolKind::kAverage;
  pp.count_include_pad = ctx.attrs().GetInt("count_include_pad", 0) != 0;
  return RunPool(ctx, pp, false);
}

Status LpPoolKernel(KernelContext& ctx) {
  KILN_RETURN_IF_ERROR(CheckPoolAttributeVersion(ctx.node()));
  PoolParams pp;
  pp.kind = PoolKind::kLp;
  pp.p = LpPoolExponent(ctx);
  return RunPool(ctx, pp, false);
}

Status GlobalAveragePoolKernel(KernelContext& ctx) {
  PoolParams pp;
  pp.kind = PoolKind::kAverage;
  return RunPool(ctx, pp, true);
}

Status GlobalMaxPoolKernel(KernelContext& ctx) {
  PoolParams pp;
  pp.kind = PoolKind::kMax;
  return RunPool(ctx, pp, true);
}

Status GlobalLpPoolKernel(KernelContext& ctx) {
  PoolParams pp;
  pp.kind = PoolKind::kLp;
  pp.p = LpPoolExponent(ctx);
  return RunPool(ctx, pp, true);
}

Status MaxUnpoolKernel(KernelContext& ctx) {
  const Tensor* x = ctx.input(0);
  const Tensor* ind = ctx.input(1);
  const Tensor* shape_in = ctx.input(2);
  if (x == nullptr || ind == nullptr) return ctx.Error("inputs X and I are required");
  if (x->rank() < 3 || ind->shape() != x->shape()) {
    return ctx.Error("expected X [N,C,spatial...] and I of the same shape, found " + x->Describe() +
                     " and " + ind->Describe());
  }
  if (!IsInteger(ind->type())) return ctx.Error("I must be an integer tensor");
  const int nd = x->rank() - 2;
  const Attributes& at = ctx.attrs();
  auto ks = at.GetInts("kernel_shape");
  auto strides = at.GetInts("strides", std::vector<int64_t>(nd, 1));
  auto pads = at.GetInts("pads", std::vector<int64_t>(2 * nd, 0));
  if (static_cast<int>(ks.size()) != nd || static_cast<int>(strides.size()) != nd ||
      static_cast<int>(pads.size()) != 2 * nd) {
    return ctx.Error("kernel_shape and strides need " + std::to_string(nd) + " values, pads " +
                     std::to_string(2 * nd));
  }
  // Indices address the default (inferred) output; an explicit output_shape keeps their
  // coordinates (the extra rows/columns stay zero), as the ONNX reference does.
  Shape default_shape = {x->dim(0), x->dim(1)};
  for (int i = 0; i < nd; ++i) {
    default_shape.push_back((x->dim(i + 2) - 1) * strides[i] + ks[i] - pads[i] - pads[i + nd]);
  }
  Shape out_shape = default_shape;
  if (shape_in != nullptr) {
    auto s = shape_in->ToInt64Vector();
    if (static_cast<int>(s.size()) != nd + 2) {
      return ctx.Error("output_shape must have " + std::to_string(nd + 2) + " values");
    }
    out_shape = s;
  }
  KILN_ASSIGN_OR_RETURN(int64_t default_total, CheckedNumElements(default_shape));
  KILN_ASSIGN_OR_RETURN(int64_t total, CheckedNumElements(out_shape));
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.output(0, x->type(), out_shape));
  const int64_t count = x->size();
  const std::vector<int64_t> dstrides = Strides(default_shape), ostrides = Strides(out_shape);
  Status status = Status::Ok();
  const bool ok = Dispatch<kAllNumeric>(x->type(), [&](auto tag) {
    using T = decltype(tag);
    T* yd = y->data<T>();
    std::fill_n(yd, total, T{});
    const T* xd = x->data<T>();
    for (int64_t i = 0; i < count; ++i) {
      const int64_t idx = ind->GetAsInt64(i);
      if (idx < 0 || idx >= default_total) {
        status = ctx.Error("index " + std::to_string(idx) + " is outside the unpooled tensor of " +
                           std::to_string(default_total) + " elements");
        return;
      }
      int64_t off = 0;
      bool inside = true;
      for (size_t d = 0; d < default_shape.size(); ++d) {
        const int64_t coord = (idx / dstrides[d]) % default_shape[d];
        inside = inside && coord < out_shape[d];
        off += coord * ostrides[d];
      }
      if (inside) yd[off] = xd[i];
    }
  });
  if (!ok) return ctx.UnsupportedType(x->type());
  return status;
}

}  // namespace kiln::nn
