// Reference kernels for Kiln's fused int8 ops (domain "ai.kiln"), the ops the qdq-fusion pass
// (src/passes/qdq_fusion.h) writes for QDQ patterns that have no standard ONNX integer op:
//
//   QGemm(A, a_scale, a_zp, B, b_scale, b_zp, [C], [y_scale, y_zp]) attrs transA, transB
//            (without y_scale and y_zp: an f32 output, y = float(acc * a_scale * b_scale[n]),
//            as the last Gemm of a QDQ model, whose output is not quantized)
//   QAdd / QMul(A, a_scale, a_zp, B, b_scale, b_zp, y_scale, y_zp)  numpy broadcasting
//   QAveragePool(X, x_scale, x_zp, y_scale, y_zp)                    AveragePool's attributes
//   QGlobalAveragePool(X, x_scale, x_zp, y_scale, y_zp)
//   QLut(X, table)                                                   y = table[x - lowest(x)]
//
// Operands are u8 or i8 (each its own type), scales f32 scalars (b_scale of QGemm: one per
// column of the product, or one), zero points scalars of their operand's type, C int32 with one
// value per column (scale a_scale * b_scale[n], zero point 0). The output type is y_zp's.
//
// Math (exact integer accumulation, then one requantization):
//   QGemm:   acc = sum_k (a - a_zp)(b - b_zp) + C[n]      summed in int64, wrapped to int32
//   QAdd:    acc = (a - a_zp) * a_scale + (b - b_zp) * b_scale   (y_scale applied below)
//   QMul:    acc = (a - a_zp)(b - b_zp)                     exact in int32
//   QAveragePool: acc = sum over taps inside the input of (x - x_zp), divided by the tap count
//            (count_include_pad counts padding taps, whose real value is 0, i.e. x_zp)
//   y = saturate(round_half_even(acc * multiplier) + y_zp), the multiplier in double from the
//   f32 scales (QGemm: a_scale * b_scale[n] / y_scale; QMul: a_scale * b_scale / y_scale; QAdd:
//   1 / y_scale; pools: x_scale / (y_scale * count)).
// The float QDQ path (DequantizeLinear -> float op -> QuantizeLinear) rounds every DQ'd value
// and every product to f32 and divides by y_scale in f32; the two agree except when the real
// result lies within f32 rounding of a half step, where they differ by one step.
// XNNPACK maps: QGemm -> fully_connected_nc_qs8/qu8 (per-column scales: qc8 weights), QAdd /
// QMul -> add/multiply_nd_qs8/qu8, QAveragePool -> average_pooling2d_nhwc_qu8, QGlobalAveragePool
// -> global_average_pooling_nwc_qs8/qu8, QLut -> a 256-entry table lookup.
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "backends/ref/broadcast.h"
#include "backends/ref/nn_internal.h"
#include "backends/ref/quant_internal.h"

namespace kiln {
namespace {

using quant_ref::ReadQuantOperand;

bool Is8Bit(const Tensor* t) {
  return t != nullptr && (t->type() == ElementType::kU8 || t->type() == ElementType::kI8);
}

// A per-tensor quantization: scale and zero point.
struct Affine {
  double scale = 1;
  int64_t zero_point = 0;
};

// Reads inputs `si` (scale, required, one float) and `zi` (zero point, optional, one element of
// `operand`'s type) of the node.
Result<Affine> ReadAffine(const KernelContext& ctx, size_t si, size_t zi, ElementType operand,
                          const char* what) {
  const Tensor* s = ctx.input(si);
  const Tensor* z = ctx.input(zi);
  if (s == nullptr || !IsFloating(s->type()) || s->size() != 1) {
    return ctx.Error(std::string(what) + "_scale must be one float, found " +
                     (s == nullptr ? std::string("nothing") : s->Describe()));
  }
  Affine a;
  a.scale = static_cast<float>(s->GetAsDouble(0));
  if (!(a.scale > 0) || !std::isfinite(a.scale)) {
    return ctx.Error(std::string(what) + "_scale must be positive and finite");
  }
  if (z != nullptr) {
    if (z->size() != 1 || (operand != ElementType::kUndefined && z->type() != operand)) {
      return ctx.Error(std::string(what) + "_zero_point must be one element of type " +
                       ElementTypeName(operand) + ", found " + z->Describe());
    }
    a.zero_point = z->GetAsInt64(0);
  }
  return a;
}

// The output element type: y_zp's type (u8 when omitted, as QuantizeLinear).
Result<ElementType> OutputType(const KernelContext& ctx, size_t zi) {
  const Tensor* z = ctx.input(zi);
  const ElementType t = z != nullptr ? z->type() : ElementType::kU8;
  if (t != ElementType::kU8 && t != ElementType::kI8) return ctx.UnsupportedType(t);
  return t;
}

// y[i] = saturate(round_half_even(v) + zp).
void Store(Tensor* y, int64_t i, double v, int64_t zp) {
  const double q = std::nearbyint(v) + static_cast<double>(zp);
  if (y->type() == ElementType::kI8) {
    y->data<int8_t>()[i] = static_cast<int8_t>(std::isnan(q) ? 0 : std::clamp(q, -128.0, 127.0));
  } else {
    y->data<uint8_t>()[i] = static_cast<uint8_t>(std::isnan(q) ? 0 : std::clamp(q, 0.0, 255.0));
  }
}

Status QGemm(KernelContext& ctx) {
  const Tensor* a = ctx.input(0);
  const Tensor* b = ctx.input(3);
  if (!Is8Bit(a) || !Is8Bit(b) || a->rank() != 2 || b->rank() != 2) {
    return ctx.Error("A and B must be 2-D u8 or i8 tensors");
  }
  const bool ta = ctx.attrs().GetInt("transA", 0) != 0;
  const bool tb = ctx.attrs().GetInt("transB", 0) != 0;
  const int64_t m = ta ? a->dim(1) : a->dim(0);
  const int64_t k = ta ? a->dim(0) : a->dim(1);
  const int64_t n = tb ? b->dim(0) : b->dim(1);
  if ((tb ? b->dim(1) : b->dim(0)) != k) {
    return ctx.Error("inner dims differ: A " + a->Describe() + ", B " + b->Describe());
  }
  KILN_ASSIGN_OR_RETURN(Affine qa, ReadAffine(ctx, 1, 2, a->type(), "a"));
  KILN_ASSIGN_OR_RETURN(auto b_scale, ReadQuantOperand(ctx, ctx.input(4), n, "b_scale"));
  KILN_ASSIGN_OR_RETURN(auto b_zp, ReadQuantOperand(ctx, ctx.input(5), n, "b_zero_point"));
  if (ctx.input(5) != nullptr && ctx.input(5)->type() != b->type()) {
    return ctx.Error("b_zero_point must have B's type, found " + ctx.input(5)->Describe());
  }
  const Tensor* c = ctx.input(6);
  if (c != nullptr && (c->type() != ElementType::kI32 || (c->size() != n && c->size() != 1))) {
    return ctx.Error("C must be i32 with 1 or " + std::to_string(n) + " elements, found " +
                     c->Describe());
  }
  // Without y_scale the output is f32: the dequantized product (acc * a_scale * b_scale[n]).
  const bool float_out = ctx.input(7) == nullptr;
  if (float_out && ctx.input(8) != nullptr) return ctx.Error("y_zero_point without y_scale");
  KILN_ASSIGN_OR_RETURN(ElementType out_type,
                        float_out ? Result<ElementType>(ElementType::kF32) : OutputType(ctx, 8));
  Affine qy{1.0f, 0};
  if (!float_out) {
    KILN_ASSIGN_OR_RETURN(qy, ReadAffine(ctx, 7, 8, out_type, "y"));
  }
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.output(0, out_type, {m, n}));
  for (int64_t j = 0; j < n; ++j) {
    const size_t pj = b_scale.size() == 1 ? 0 : static_cast<size_t>(j);
    const int64_t zb = b_zp.empty() ? 0 : static_cast<int64_t>(b_zp[b_zp.size() == 1 ? 0 : pj]);
    const double mult = qa.scale * static_cast<double>(static_cast<float>(b_scale[pj])) /
                        (float_out ? 1.0 : qy.scale);
    const int64_t bias = c == nullptr ? 0 : c->GetAsInt64(c->size() == 1 ? 0 : j);
    for (int64_t i = 0; i < m; ++i) {
      int64_t s = bias;
      for (int64_t kk = 0; kk < k; ++kk) {
        const int64_t av = a->GetAsInt64(ta ? kk * m + i : i * k + kk) - qa.zero_point;
        const int64_t bv = b->GetAsInt64(tb ? j * k + kk : kk * n + j) - zb;
        s += av * bv;
      }
      const auto acc = static_cast<int32_t>(static_cast<uint32_t>(static_cast<uint64_t>(s)));
      if (float_out) {
        y->data<float>()[i * n + j] = static_cast<float>(static_cast<double>(acc) * mult);
      } else {
        Store(y, i * n + j, static_cast<double>(acc) * mult, qy.zero_point);
      }
    }
  }
  return Status::Ok();
}

// QAdd / QMul: reads both operands' integers relative to their zero points and combines them.
template <typename Combine>
Status QBinary(KernelContext& ctx, Combine combine) {
  const Tensor* a = ctx.input(0);
  const Tensor* b = ctx.input(3);
  if (!Is8Bit(a) || !Is8Bit(b)) return ctx.Error("A and B must be u8 or i8 tensors");
  KILN_ASSIGN_OR_RETURN(Affine qa, ReadAffine(ctx, 1, 2, a->type(), "a"));
  KILN_ASSIGN_OR_RETURN(Affine qb, ReadAffine(ctx, 4, 5, b->type(), "b"));
  KILN_ASSIGN_OR_RETURN(ElementType out_type, OutputType(ctx, 7));
  KILN_ASSIGN_OR_RETURN(Affine qy, ReadAffine(ctx, 6, 7, out_type, "y"));
  KILN_ASSIGN_OR_RETURN(Shape out_shape, BroadcastShapes({&a->shape(), &b->shape()}));
  KILN_ASSIGN_OR_RETURN(BroadcastPlan plan,
                        BroadcastPlan::Make(out_shape, {&a->shape(), &b->shape()}));
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.output(0, out_type, out_shape));
  plan.ForEachRun(0, plan.runs(), [&](int64_t out_offset, const int64_t* in) {
    for (int64_t i = 0; i < plan.inner(); ++i) {
      const int64_t av = a->GetAsInt64(in[0] + i * plan.inner_stride(0)) - qa.zero_point;
      const int64_t bv = b->GetAsInt64(in[1] + i * plan.inner_stride(1)) - qb.zero_point;
      Store(y, out_offset + i, combine(av, bv, qa.scale, qb.scale) / qy.scale, qy.zero_point);
    }
  });
  return Status::Ok();
}

Status QAdd(KernelContext& ctx) {
  return QBinary(ctx, [](int64_t a, int64_t b, double sa, double sb) {
    return static_cast<double>(a) * sa + static_cast<double>(b) * sb;
  });
}

Status QMul(KernelContext& ctx) {
  return QBinary(ctx, [](int64_t a, int64_t b, double sa, double sb) {
    return static_cast<double>(a * b) * (sa * sb);
  });
}

Status QPool(KernelContext& ctx, bool global) {
  const Tensor* x = ctx.input(0);
  if (!Is8Bit(x) || x->rank() < 3) {
    return ctx.Error("X must be a u8 or i8 tensor [N,C,spatial...], found " +
                     (x == nullptr ? std::string("nothing") : x->Describe()));
  }
  KILN_ASSIGN_OR_RETURN(Affine qx, ReadAffine(ctx, 1, 2, x->type(), "x"));
  KILN_ASSIGN_OR_RETURN(ElementType out_type, OutputType(ctx, 4));
  KILN_ASSIGN_OR_RETURN(Affine qy, ReadAffine(ctx, 3, 4, out_type, "y"));
  const std::vector<int64_t> in(x->shape().begin() + 2, x->shape().end());
  const int nd = static_cast<int>(in.size());
  nn::ConvGeometry g;
  if (global) {
    g.nd = nd;
    g.in = g.kernel = in;
    g.out.assign(in.size(), 1);
    g.stride.assign(in.size(), 1);
    g.dilation.assign(in.size(), 1);
    g.pad_begin.assign(in.size(), 0);
    g.pad_end.assign(in.size(), 0);
  } else {
    KILN_RETURN_IF_ERROR(nn::ComputeConvGeometry(ctx, in, {}, true, &g));
  }
  const bool include_pad = !global && ctx.attrs().GetInt("count_include_pad", 0) != 0;
  Shape out_shape = {x->dim(0), x->dim(1)};
  out_shape.insert(out_shape.end(), g.out.begin(), g.out.end());
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.output(0, out_type, out_shape));
  int64_t in_size = 1, out_size = 1, taps = 1;
  for (int i = 0; i < nd; ++i) {
    in_size *= g.in[i];
    out_size *= g.out[i];
    taps *= g.kernel[i];
  }
  std::vector<int64_t> start(nd);
  const int64_t planes = x->dim(0) * x->dim(1);
  for (int64_t p = 0; p < planes; ++p) {
    for (int64_t o = 0; o < out_size; ++o) {
      int64_t r = o;
      for (int i = nd - 1; i >= 0; --i) {
        start[i] = (r % g.out[i]) * g.stride[i] - g.pad_begin[i];
        r /= g.out[i];
      }
      int64_t sum = 0, inside = 0, padded = 0;
      for (int64_t t = 0; t < taps; ++t) {
        int64_t tr = t, off = 0, stride = 1;
        bool in_x = true, in_pad = true;
        for (int i = nd - 1; i >= 0; --i) {
          const int64_t q = start[i] + (tr % g.kernel[i]) * g.dilation[i];
          tr /= g.kernel[i];
          if (q < 0 || q >= g.in[i]) in_x = false;
          if (q < -g.pad_begin[i] || q >= g.in[i] + g.pad_end[i]) in_pad = false;
          off += q * stride;
          stride *= g.in[i];
        }
        if (in_pad) ++padded;
        if (!in_x) continue;
        ++inside;
        sum += x->GetAsInt64(p * in_size + off) - qx.zero_point;
      }
      const int64_t count = include_pad ? padded : inside;
      const double v = count == 0 ? 0.0
                                  : static_cast<double>(sum) * qx.scale /
                                        (qy.scale * static_cast<double>(count));
      Store(y, p * out_size + o, v, qy.zero_point);
    }
  }
  return Status::Ok();
}

Status QAveragePool(KernelContext& ctx) { return QPool(ctx, false); }
Status QGlobalAveragePool(KernelContext& ctx) { return QPool(ctx, true); }

Status QLut(KernelContext& ctx) {
  const Tensor* x = ctx.input(0);
  const Tensor* table = ctx.input(1);
  if (!Is8Bit(x) || !Is8Bit(table) || table->size() != 256) {
    return ctx.Error("expected X (u8 or i8) and a table of 256 u8 or i8 values");
  }
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.output(0, table->type(), x->shape()));
  const int64_t lowest = x->type() == ElementType::kI8 ? -128 : 0;
  const auto* t = static_cast<const uint8_t*>(table->raw());
  auto* yd = static_cast<uint8_t*>(y->raw());
  for (int64_t i = 0; i < x->size(); ++i) yd[i] = t[x->GetAsInt64(i) - lowest];
  return Status::Ok();
}

constexpr KernelDef kKernels[] = {
    {"QGemm", "ai.kiln", QGemm},
    {"QAdd", "ai.kiln", QAdd},
    {"QMul", "ai.kiln", QMul},
    {"QAveragePool", "ai.kiln", QAveragePool},
    {"QGlobalAveragePool", "ai.kiln", QGlobalAveragePool},
    {"QLut", "ai.kiln", QLut},
};

}  // namespace

std::span<const KernelDef> QuantFusedKernels() { return kKernels; }

}  // namespace kiln
