// Reference kernels for the integer matmul and conv ops: MatMulInteger, QLinearMatMul,
// ConvInteger, QLinearConv.
//
// Math: products of zero-point-corrected operands, (a - a_zp) * (b - b_zp), summed exactly in
// integer arithmetic and wrapped to int32 (the ONNX accumulator type). QLinear* ops then
// requantize in float32 as ONNX Runtime does:
//   y = saturate(round_half_even((float)(acc [+ bias]) * (a_scale * b_scale / y_scale)) + y_zp)
// Conv padding contributes nothing (it is the input's zero point, i.e. 0 after correction).
// Zero points and scales are per tensor, per row of A / per column of B for matmuls, and per
// output channel of W for convs.
#include <algorithm>
#include <string>
#include <vector>

#include "backends/ref/quant_internal.h"

namespace kiln::quant_ref {

namespace {

bool Is8Bit(const Tensor* t) {
  return t != nullptr && (t->type() == ElementType::kU8 || t->type() == ElementType::kI8);
}

// Numpy matmul broadcasting: A [..., M, K] x B [..., K, N] (1-D operands promoted and their
// dims dropped from the output).
struct MatMulPlan {
  Shape out_shape;
  int64_t m = 0, k = 0, n = 0;
  std::vector<int64_t> a_batch, b_batch;  // per output batch: batch index into A and into B
};

Result<MatMulPlan> PlanMatMul(const KernelContext& ctx, const Shape& a_in, const Shape& b_in) {
  if (a_in.empty() || b_in.empty()) return ctx.Error("matmul operands must have rank >= 1");
  Shape a = a_in;
  Shape b = b_in;
  if (a.size() == 1) a.insert(a.begin(), 1);
  if (b.size() == 1) b.push_back(1);
  MatMulPlan p;
  p.m = a[a.size() - 2];
  p.k = a.back();
  p.n = b.back();
  if (b[b.size() - 2] != p.k) {
    return ctx.Error("matmul inner dims differ: " + ShapeToString(a_in) + " x " +
                     ShapeToString(b_in));
  }
  const Shape ab(a.begin(), a.end() - 2);
  const Shape bb(b.begin(), b.end() - 2);
  const size_t rank = std::max(ab.size(), bb.size());
  Shape batch(rank);
  for (size_t i = 0; i < rank; ++i) {
    const int64_t da = i + ab.size() >= rank ? ab[i + ab.size() - rank] : 1;
    const int64_t db = i + bb.size() >= rank ? bb[i + bb.size() - rank] : 1;
    if (da != db && da != 1 && db != 1) {
      return ctx.Error("matmul batch dims do not broadcast: " + ShapeToString(a_in) + " x " +
                       ShapeToString(b_in));
    }
    batch[i] = da == 1 ? db : da;
  }
  const int64_t nb = NumElements(batch);
  for (int64_t bi = 0; bi < nb; ++bi) {
    // Unravel bi over `batch`, then ravel over each operand's own (broadcast) batch dims.
    int64_t rem = bi;
    int64_t ia = 0, ib = 0, sa = 1, sb = 1;
    for (size_t i = rank; i-- > 0;) {
      const int64_t idx = rem % batch[i];
      rem /= batch[i];
      if (i + ab.size() >= rank) {
        const int64_t d = ab[i + ab.size() - rank];
        ia += (d == 1 ? 0 : idx) * sa;
        sa *= d;
      }
      if (i + bb.size() >= rank) {
        const int64_t d = bb[i + bb.size() - rank];
        ib += (d == 1 ? 0 : idx) * sb;
        sb *= d;
      }
    }
    p.a_batch.push_back(ia);
    p.b_batch.push_back(ib);
  }
  p.out_shape = batch;
  if (a_in.size() > 1) p.out_shape.push_back(p.m);
  if (b_in.size() > 1) p.out_shape.push_back(p.n);
  return p;
}

// A zero point or scale of a matmul operand: one value, one per row of A (or column of B)
// shared by every batch, or one per row (column) of every batch.
struct RowParam {
  std::vector<double> v;
  double At(int64_t batch, int64_t row, int64_t rows) const {
    if (v.empty()) return 0;
    if (v.size() == 1) return v[0];
    if (static_cast<int64_t>(v.size()) == rows) return v[static_cast<size_t>(row)];
    return v[static_cast<size_t>(batch * rows + row)];
  }
};

Result<RowParam> ReadRowParam(const KernelContext& ctx, const Tensor* t, int64_t rows,
                              int64_t batches, const char* what) {
  RowParam p;
  if (t == nullptr) return p;
  const int64_t n = t->size();
  if (n != 1 && n != rows && n != rows * batches) {
    return ctx.Error(std::string(what) + " must have 1, " + std::to_string(rows) + " or " +
                     std::to_string(rows * batches) + " elements, found " + t->Describe());
  }
  for (int64_t i = 0; i < n; ++i) p.v.push_back(t->GetAsDouble(i));
  return p;
}

// acc[b, m, n] = sum_k (A - a_zp)(B - b_zp), wrapped to int32.
std::vector<int32_t> IntMatMul(const Tensor& a, const Tensor& b, const MatMulPlan& p,
                               const RowParam& a_zp, const RowParam& b_zp) {
  std::vector<int32_t> acc(p.a_batch.size() * static_cast<size_t>(p.m * p.n));
  for (size_t bi = 0; bi < p.a_batch.size(); ++bi) {
    const int64_t ao = p.a_batch[bi] * p.m * p.k;
    const int64_t bo = p.b_batch[bi] * p.k * p.n;
    for (int64_t i = 0; i < p.m; ++i) {
      const int64_t za = static_cast<int64_t>(a_zp.At(p.a_batch[bi], i, p.m));
      for (int64_t j = 0; j < p.n; ++j) {
        const int64_t zb = static_cast<int64_t>(b_zp.At(p.b_batch[bi], j, p.n));
        int64_t s = 0;
        for (int64_t kk = 0; kk < p.k; ++kk) {
          s += (a.GetAsInt64(ao + i * p.k + kk) - za) * (b.GetAsInt64(bo + kk * p.n + j) - zb);
        }
        acc[bi * static_cast<size_t>(p.m * p.n) + static_cast<size_t>(i * p.n + j)] =
            static_cast<int32_t>(static_cast<uint32_t>(static_cast<uint64_t>(s)));
      }
    }
  }
  return acc;
}

int64_t Batches(const Tensor& t, int64_t rows, int64_t cols) {
  return rows * cols == 0 ? 1 : std::max<int64_t>(1, t.size() / (rows * cols));
}

// Writes saturate(round(v) + zp) to element i of an 8-bit tensor.
void Store8(Tensor* y, int64_t i, float v, float zp) {
  const bool is_signed = y->type() == ElementType::kI8;
  const int32_t q = Saturate8(RoundHalfEven(v) + zp, is_signed);
  if (is_signed) {
    y->data<int8_t>()[i] = static_cast<int8_t>(q);
  } else {
    y->data<uint8_t>()[i] = static_cast<uint8_t>(q);
  }
}

// N-d convolution geometry from Conv's attributes.
struct ConvPlan {
  int64_t batch = 0, in_ch = 0, out_ch = 0, group = 1;
  Shape in_spatial, kernel, out_spatial;
  std::vector<int64_t> strides, dilations, pad_begin;
  Shape out_shape;
};

Result<ConvPlan> PlanConv(const KernelContext& ctx, const Tensor& x, const Tensor& w) {
  if (x.rank() < 3 || w.rank() != x.rank()) {
    return ctx.Error("X and W must have the same rank >= 3, found " + x.Describe() + " and " +
                     w.Describe());
  }
  ConvPlan p;
  const size_t nsp = static_cast<size_t>(x.rank() - 2);
  p.batch = x.dim(0);
  p.in_ch = x.dim(1);
  p.out_ch = w.dim(0);
  p.group = ctx.attrs().GetInt("group", 1);
  if (p.group <= 0 || p.in_ch % p.group != 0 || p.out_ch % p.group != 0 ||
      w.dim(1) * p.group != p.in_ch) {
    return ctx.Error("channels do not match group " + std::to_string(p.group) + ": X " +
                     x.Describe() + ", W " + w.Describe());
  }
  p.in_spatial.assign(x.shape().begin() + 2, x.shape().end());
  p.kernel.assign(w.shape().begin() + 2, w.shape().end());
  const auto ks = ctx.attrs().GetInts("kernel_shape");
  if (!ks.empty() && ks != p.kernel) {
    return ctx.Error("kernel_shape " + ShapeToString(ks) + " does not match W " + w.Describe());
  }
  p.strides = ctx.attrs().GetInts("strides", std::vector<int64_t>(nsp, 1));
  p.dilations = ctx.attrs().GetInts("dilations", std::vector<int64_t>(nsp, 1));
  std::vector<int64_t> pads = ctx.attrs().GetInts("pads", std::vector<int64_t>(2 * nsp, 0));
  if (p.strides.size() != nsp || p.dilations.size() != nsp || pads.size() != 2 * nsp) {
    return ctx.Error("strides, dilations and pads must have " + std::to_string(nsp) + ", " +
                     std::to_string(nsp) + " and " + std::to_string(2 * nsp) + " values");
  }
  const std::string auto_pad = ctx.attrs().GetString("auto_pad", "NOTSET");
  p.pad_begin.resize(nsp);
  p.out_shape = {p.batch, p.out_ch};
  for (size_t i = 0; i < nsp; ++i) {
    if (p.strides[i] <= 0 || p.dilations[i] <= 0)
      return ctx.Error("strides and dilations must be positive");
    const int64_t in = p.in_spatial[i];
    const int64_t ext = p.dilations[i] * (p.kernel[i] - 1) + 1;
    int64_t pb = pads[i];
    int64_t pe = pads[i + nsp];
    if (auto_pad == "VALID") {
      pb = pe = 0;
    } else if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      const int64_t out = (in + p.strides[i] - 1) / p.strides[i];
      const int64_t total = std::max<int64_t>(0, (out - 1) * p.strides[i] + ext - in);
      pb = auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2;
      pe = total - pb;
    } else if (auto_pad != "NOTSET") {
      return ctx.Error("unknown auto_pad '" + auto_pad + "'");
    }
    if (pb < 0 || pe < 0) return ctx.Error("pads must be non-negative");
    const int64_t span = in + pb + pe - ext;
    const int64_t out = span < 0 ? 0 : span / p.strides[i] + 1;
    p.pad_begin[i] = pb;
    p.out_spatial.push_back(out);
    p.out_shape.push_back(out);
  }
  return p;
}

// acc[n, m, out...] = sum over c in m's group and kernel taps of (x - x_zp)(w - w_zp[m]).
std::vector<int32_t> IntConv(const ConvPlan& p, const Tensor& x, const Tensor& w, int64_t x_zp,
                             const std::vector<double>& w_zp) {
  const size_t nsp = p.kernel.size();
  const int64_t out_sp = NumElements(p.out_spatial);
  const int64_t in_sp = NumElements(p.in_spatial);
  const int64_t k_sp = NumElements(p.kernel);
  const int64_t cpg = p.in_ch / p.group;
  const int64_t mpg = p.out_ch / p.group;
  std::vector<int32_t> acc(static_cast<size_t>(p.batch * p.out_ch * out_sp));
  std::vector<int64_t> opos(nsp), kpos(nsp);
  for (int64_t n = 0; n < p.batch; ++n) {
    for (int64_t m = 0; m < p.out_ch; ++m) {
      const int64_t g = m / mpg;
      const int64_t zw =
          w_zp.empty()
              ? 0
              : static_cast<int64_t>(w_zp.size() == 1 ? w_zp[0] : w_zp[static_cast<size_t>(m)]);
      for (int64_t o = 0; o < out_sp; ++o) {
        int64_t rem = o;
        for (size_t d = nsp; d-- > 0;) {
          opos[d] = rem % p.out_spatial[d];
          rem /= p.out_spatial[d];
        }
        int64_t s = 0;
        for (int64_t kk = 0; kk < k_sp; ++kk) {
          int64_t krem = kk;
          int64_t in_off = 0;
          bool inside = true;
          for (size_t d = nsp; d-- > 0;) {
            kpos[d] = krem % p.kernel[d];
            krem /= p.kernel[d];
          }
          for (size_t d = 0; d < nsp; ++d) {
            const int64_t ip = opos[d] * p.strides[d] - p.pad_begin[d] + kpos[d] * p.dilations[d];
            if (ip < 0 || ip >= p.in_spatial[d]) {
              inside = false;
              break;
            }
            in_off = in_off * p.in_spatial[d] + ip;
          }
          if (!inside) continue;
          for (int64_t c = 0; c < cpg; ++c) {
            const int64_t xv = x.GetAsInt64(((n * p.in_ch) + g * cpg + c) * in_sp + in_off) - x_zp;
            const int64_t wv = w.GetAsInt64((m * cpg + c) * k_sp + kk) - zw;
            s += xv * wv;
          }
        }
        acc[static_cast<size_t>((n * p.out_ch + m) * out_sp + o)] =
            static_cast<int32_t>(static_cast<uint32_t>(static_cast<uint64_t>(s)));
      }
    }
  }
  return acc;
}

}  // namespace

Status MatMulInteger(KernelContext& ctx) {
  const Tensor* a = ctx.input(0);
  const Tensor* b = ctx.input(1);
  if (!Is8Bit(a) || !Is8Bit(b)) return ctx.Error("A and B must be u8 or i8 tensors");
  const Tensor* a_zp_t = ctx.input(2);
  const Tensor* b_zp_t = ctx.input(3);
  if ((a_zp_t != nullptr && a_zp_t->type() != a->type()) ||
      (b_zp_t != nullptr && b_zp_t->type() != b->type())) {
    return ctx.Error("zero points must have the type of their operand");
  }
  KILN_ASSIGN_OR_RETURN(MatMulPlan p, PlanMatMul(ctx, a->shape(), b->shape()));
  KILN_ASSIGN_OR_RETURN(RowParam a_zp,
                        ReadRowParam(ctx, a_zp_t, p.m, Batches(*a, p.m, p.k), "a_zero_point"));
  KILN_ASSIGN_OR_RETURN(RowParam b_zp,
                        ReadRowParam(ctx, b_zp_t, p.n, Batches(*b, p.k, p.n), "b_zero_point"));
  const auto acc = IntMatMul(*a, *b, p, a_zp, b_zp);
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.output(0, ElementType::kI32, p.out_shape));
  std::copy(acc.begin(), acc.end(), y->data<int32_t>());
  return Status::Ok();
}

Status QLinearMatMul(KernelContext& ctx) {
  const Tensor* a = ctx.input(0);
  const Tensor* b = ctx.input(3);
  if (!Is8Bit(a) || !Is8Bit(b)) return ctx.Error("a and b must be u8 or i8 tensors");
  for (size_t i : {1, 2, 4, 5, 6}) {
    if (ctx.input(i) == nullptr) return ctx.Error("missing input " + std::to_string(i));
  }
  const Tensor* y_zp_t = ctx.input(7);
  const ElementType out_type = y_zp_t != nullptr ? y_zp_t->type() : a->type();
  if (out_type != ElementType::kU8 && out_type != ElementType::kI8)
    return ctx.UnsupportedType(out_type);
  KILN_ASSIGN_OR_RETURN(MatMulPlan p, PlanMatMul(ctx, a->shape(), b->shape()));
  const int64_t ab = Batches(*a, p.m, p.k);
  const int64_t bb = Batches(*b, p.k, p.n);
  KILN_ASSIGN_OR_RETURN(RowParam a_scale, ReadRowParam(ctx, ctx.input(1), p.m, ab, "a_scale"));
  KILN_ASSIGN_OR_RETURN(RowParam a_zp, ReadRowParam(ctx, ctx.input(2), p.m, ab, "a_zero_point"));
  KILN_ASSIGN_OR_RETURN(RowParam b_scale, ReadRowParam(ctx, ctx.input(4), p.n, bb, "b_scale"));
  KILN_ASSIGN_OR_RETURN(RowParam b_zp, ReadRowParam(ctx, ctx.input(5), p.n, bb, "b_zero_point"));
  if (ctx.input(6)->size() != 1 || (y_zp_t != nullptr && y_zp_t->size() != 1)) {
    return ctx.Error("y_scale and y_zero_point must be scalars");
  }
  const float y_scale = static_cast<float>(ctx.input(6)->GetAsDouble(0));
  const float y_zp = y_zp_t != nullptr ? static_cast<float>(y_zp_t->GetAsDouble(0)) : 0.0f;
  const auto acc = IntMatMul(*a, *b, p, a_zp, b_zp);
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.output(0, out_type, p.out_shape));
  for (size_t bi = 0; bi < p.a_batch.size(); ++bi) {
    for (int64_t i = 0; i < p.m; ++i) {
      for (int64_t j = 0; j < p.n; ++j) {
        const float mult = static_cast<float>(a_scale.At(p.a_batch[bi], i, p.m)) *
                           static_cast<float>(b_scale.At(p.b_batch[bi], j, p.n)) / y_scale;
        const int64_t idx = static_cast<int64_t>(bi) * p.m * p.n + i * p.n + j;
        Store8(y, idx, static_cast<float>(acc[static_cast<size_t>(idx)]) * mult, y_zp);
      }
    }
  }
  return Status::Ok();
}

Status ConvInteger(KernelContext& ctx) {
  const Tensor* x = ctx.input(0);
  const Tensor* w = ctx.input(1);
  if (!Is8Bit(x) || !Is8Bit(w)) return ctx.Error("x and w must be u8 or i8 tensors");
  KILN_ASSIGN_OR_RETURN(ConvPlan p, PlanConv(ctx, *x, *w));
  const Tensor* x_zp_t = ctx.input(2);
  if (x_zp_t != nullptr && x_zp_t->size() != 1) return ctx.Error("x_zero_point must be a scalar");
  const int64_t x_zp = x_zp_t != nullptr ? x_zp_t->GetAsInt64(0) : 0;
  KILN_ASSIGN_OR_RETURN(auto w_zp, ReadQuantOperand(ctx, ctx.input(3), p.out_ch, "w_zero_point"));
  const auto acc = IntConv(p, *x, *w, x_zp, w_zp);
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.output(0, ElementType::kI32, p.out_shape));
  std::copy(acc.begin(), acc.end(), y->data<int32_t>());
  return Status::Ok();
}

Status QLinearConv(KernelContext& ctx) {
  const Tensor* x = ctx.input(0);
  const Tensor* w = ctx.input(3);
  if (!Is8Bit(x) || !Is8Bit(w)) return ctx.Error("x and w must be u8 or i8 tensors");
  for (size_t i : {1, 2, 4, 5, 6}) {
    if (ctx.input(i) == nullptr) return ctx.Error("missing input " + std::to_string(i));
  }
  KILN_ASSIGN_OR_RETURN(ConvPlan p, PlanConv(ctx, *x, *w));
  const Tensor* y_zp_t = ctx.input(7);
  const Tensor* bias_t = ctx.input(8);
  const ElementType out_type = y_zp_t != nullptr ? y_zp_t->type() : x->type();
  if (out_type != ElementType::kU8 && out_type != ElementType::kI8)
    return ctx.UnsupportedType(out_type);
  if (ctx.input(1)->size() != 1 || ctx.input(2)->size() != 1 || ctx.input(6)->size() != 1 ||
      (y_zp_t != nullptr && y_zp_t->size() != 1)) {
    return ctx.Error("x_scale, x_zero_point, y_scale and y_zero_point must be scalars");
  }
  if (bias_t != nullptr && (bias_t->type() != ElementType::kI32 || bias_t->size() != p.out_ch)) {
    return ctx.Error("B must be i32[" + std::to_string(p.out_ch) + "], found " +
                     bias_t->Describe());
  }
  KILN_ASSIGN_OR_RETURN(auto w_scale, ReadQuantOperand(ctx, ctx.input(4), p.out_ch, "w_scale"));
  KILN_ASSIGN_OR_RETURN(auto w_zp, ReadQuantOperand(ctx, ctx.input(5), p.out_ch, "w_zero_point"));
  const float x_scale = static_cast<float>(ctx.input(1)->GetAsDouble(0));
  const int64_t x_zp = ctx.input(2)->GetAsInt64(0);
  const float y_scale = static_cast<float>(ctx.input(6)->GetAsDouble(0));
  const float y_zp = y_zp_t != nullptr ? static_cast<float>(y_zp_t->GetAsDouble(0)) : 0.0f;
  const auto acc = IntConv(p, *x, *w, x_zp, w_zp);
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.output(0, out_type, p.out_shape));
  const int64_t out_sp = NumElements(p.out_spatial);
  for (int64_t i = 0; i < static_cast<int64_t>(acc.size()); ++i) {
    const int64_t m = (i / out_sp) % p.out_ch;
    const float ws =
        static_cast<float>(w_scale.size() == 1 ? w_scale[0] : w_scale[static_cast<size_t>(m)]);
    const int64_t bias = bias_t != nullptr ? bias_t->GetAsInt64(m) : 0;
    const int32_t total = static_cast<int32_t>(static_cast<uint32_t>(
        static_cast<uint64_t>(static_cast<int64_t>(acc[static_cast<size_t>(i)]) + bias)));
    Store8(y, i, static_cast<float>(total) * (x_scale * ws / y_scale), y_zp);
  }
  return Status::Ok();
}

}  // namespace kiln::quant_ref
