// Reference kernels for the reduce op family.
//
// Math: floats accumulate in double (LogSumExp subtracts the per-output maximum first);
// integers accumulate sum/prod/L1/sum-of-squares in 64-bit wrapping arithmetic of their
// signedness, max/min exactly, and the ops that need real math (Mean, L2, LogSum, LogSumExp)
// in double, truncated towards zero on store. Reducing an empty set gives the op's identity:
// 0 for sums, 1 for Prod, -inf (or the type's lowest value) for Max and LogSum(Exp), +inf (or
// the highest) for Min, NaN for Mean of floats.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "backends/ref/kernel.h"

namespace kiln {

namespace {

enum class ReduceOp { kSum, kMean, kMax, kMin, kProd, kL1, kL2, kLogSum, kLogSumExp, kSumSquare };

// The resolved reduction: which input dims are reduced and the output shape.
struct ReducePlan {
  std::vector<bool> reduced;
  Shape out_shape;
  bool identity = false;  // noop_with_empty_axes with no axes
};

bool AxesFromInput(const KernelContext& ctx) {
  return ctx.opset() >= 18 || (ctx.node().op_type == "ReduceSum" && ctx.opset() >= 13);
}

Result<ReducePlan> MakePlan(const KernelContext& ctx, const Tensor& x) {
  const bool keepdims = ctx.attrs().GetInt("keepdims", 1) != 0;
  const bool noop = ctx.attrs().GetInt("noop_with_empty_axes", 0) != 0;
  std::vector<int64_t> axes;
  if (AxesFromInput(ctx)) {
    if (const Tensor* a = ctx.input(1)) {
      if (!IsInteger(a->type()) || a->rank() > 1) {
        return ctx.Error("axes input must be a 1-D integer tensor, found " + a->Describe());
      }
      axes = a->ToInt64Vector();
    }
  } else {
    axes = ctx.attrs().GetInts("axes");
  }
  ReducePlan plan;
  const int rank = x.rank();
  if (axes.empty() && noop) {
    plan.identity = true;
    plan.reduced.assign(static_cast<size_t>(rank), false);
    plan.out_shape = x.shape();
    return plan;
  }
  plan.reduced.assign(static_cast<size_t>(rank), axes.empty());
  for (int64_t a : axes) {
    if (a < -rank || a >= rank) {
      return ctx.Error("axis " + std::to_string(a) + " is out of range for input of rank " +
                       std::to_string(rank));
    }
    const size_t ax = static_cast<size_t>(a < 0 ? a + rank : a);
    if (plan.reduced[ax]) return ctx.Error("axis " + std::to_string(a) + " appears twice");
    plan.reduced[ax] = true;
  }
  for (int i = 0; i < rank; ++i) {
    if (!plan.reduced[static_cast<size_t>(i)]) {
      plan.out_shape.push_back(x.dim(i));
    } else if (keepdims) {
      plan.out_shape.push_back(1);
    }
  }
  return plan;
}

// For each input element (row-major), the flat index of the output element it reduces into.
std::vector<int64_t> OutputIndexOfEachInput(const Shape& in_shape,
                                            const std::vector<bool>& reduced) {
  const size_t rank = in_shape.size();
  // Strides of the output viewed with the input's rank (reduced dims have size 1, stride 0).
  std::vector<int64_t> ostride(rank, 0);
  int64_t s = 1;
  for (size_t i = rank; i-- > 0;) {
    if (!reduced[i]) {
      ostride[i] = s;
      s *= in_shape[i];
    }
  }
  const int64_t n = NumElements(in_shape);
  std::vector<int64_t> out(static_cast<size_t>(n));
  std::vector<int64_t> idx(rank, 0);
  int64_t o = 0;
  for (int64_t i = 0; i < n; ++i) {
    out[static_cast<size_t>(i)] = o;
    for (size_t d = rank; d-- > 0;) {
      if (++idx[d] < in_shape[d]) {
        o += ostride[d];
        break;
      }
      o -= ostride[d] * (in_shape[d] - 1);
      idx[d] = 0;
    }
  }
  return out;
}

template <typename T>
void ReduceFloat(ReduceOp op, const T* x, const std::vector<int64_t>& oidx, int64_t out_n,
                 int64_t count, T* y) {
  const size_t m = static_cast<size_t>(out_n);
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> acc(m, 0.0);
  std::vector<double> mx;
  if (op == ReduceOp::kProd) acc.assign(m, 1.0);
  if (op == ReduceOp::kMax) acc.assign(m, -inf);
  if (op == ReduceOp::kMin) acc.assign(m, inf);
  if (op == ReduceOp::kLogSumExp) {
    mx.assign(m, -inf);
    for (size_t i = 0; i < oidx.size(); ++i) {
      const double v = static_cast<double>(x[i]);
      double& t = mx[static_cast<size_t>(oidx[i])];
      if (v > t || std::isnan(v)) t = v;
    }
  }
  for (size_t i = 0; i < oidx.size(); ++i) {
    const double v = static_cast<double>(x[i]);
    double& a = acc[static_cast<size_t>(oidx[i])];
    switch (op) {
      case ReduceOp::kSum:
      case ReduceOp::kMean:
      case ReduceOp::kLogSum:
        a += v;
        break;
      case ReduceOp::kMax:
        if (v > a || std::isnan(v)) a = v;
        break;
      case ReduceOp::kMin:
        if (v < a || std::isnan(v)) a = v;
        break;
      case ReduceOp::kProd:
        a *= v;
        break;
      case ReduceOp::kL1:
        a += std::fabs(v);
        break;
      case ReduceOp::kL2:
      case ReduceOp::kSumSquare:
        a += v * v;
        break;
      case ReduceOp::kLogSumExp: {
        const double m0 = mx[static_cast<size_t>(oidx[i])];
        a += std::isfinite(m0) ? std::exp(v - m0) : 0.0;
        break;
      }
    }
  }
  for (size_t j = 0; j < m; ++j) {
    double r = acc[j];
    switch (op) {
      case ReduceOp::kMean:
        r = r / static_cast<double>(count);
        break;
      case ReduceOp::kL2:
        r = std::sqrt(r);
        break;
      case ReduceOp::kLogSum:
        r = std::log(r);
        break;
      case ReduceOp::kLogSumExp:
        r = std::isfinite(mx[j]) ? std::log(r) + mx[j] : mx[j];
        break;
      default:
        break;
    }
    if constexpr (std::is_same_v<T, double>) {
      y[j] = r;
    } else {
      y[j] = static_cast<T>(static_cast<float>(r));
    }
  }
}

template <typename T>
void ReduceInteger(ReduceOp op, const T* x, const std::vector<int64_t>& oidx, int64_t out_n,
                   int64_t count, T* y) {
  // Wide type of the same signedness; sums wrap modulo 2^64 (done in unsigned to avoid UB).
  using W = std::conditional_t<std::is_signed_v<T>, int64_t, uint64_t>;
  const size_t m = static_cast<size_t>(out_n);
  if (op == ReduceOp::kMean || op == ReduceOp::kL2 || op == ReduceOp::kLogSum ||
      op == ReduceOp::kLogSumExp) {
    std::vector<double> tmp_out(m);
    std::vector<double> xd(oidx.size());
    for (size_t i = 0; i < oidx.size(); ++i) xd[i] = static_cast<double>(x[i]);
    ReduceFloat<double>(op, xd.data(), oidx, out_n, count, tmp_out.data());
    for (size_t j = 0; j < m; ++j) {
      const double r = tmp_out[j];
      // Non-finite results (log 0, empty mean) have no integer value: store 0.
      y[j] = std::isfinite(r) ? static_cast<T>(static_cast<W>(std::trunc(r))) : T(0);
    }
    return;
  }
  std::vector<uint64_t> acc(m, 0);
  if (op == ReduceOp::kProd) acc.assign(m, 1);
  if (op == ReduceOp::kMax)
    acc.assign(m, static_cast<uint64_t>(static_cast<W>(std::numeric_limits<T>::lowest())));
  if (op == ReduceOp::kMin)
    acc.assign(m, static_cast<uint64_t>(static_cast<W>(std::numeric_limits<T>::max())));
  for (size_t i = 0; i < oidx.size(); ++i) {
    const W v = static_cast<W>(x[i]);
    const uint64_t u = static_cast<uint64_t>(v);
    uint64_t& a = acc[static_cast<size_t>(oidx[i])];
    switch (op) {
      case ReduceOp::kSum:
        a += u;
        break;
      case ReduceOp::kMax:
        if (v > static_cast<W>(a)) a = u;
        break;
      case ReduceOp::kMin:
        if (v < static_cast<W>(a)) a = u;
        break;
      case ReduceOp::kProd:
        a *= u;
        break;
      case ReduceOp::kL1:
        a += (v < 0 ? uint64_t{0} - u : u);
        break;
      case ReduceOp::kSumSquare:
        a += u * u;
        break;
      default:
        break;
    }
  }
  for (size_t j = 0; j < m; ++j) y[j] = static_cast<T>(static_cast<W>(acc[j]));
}

Status RunReduce(KernelContext& ctx, ReduceOp op) {
  const Tensor* x = ctx.input(0);
  if (x == nullptr) return ctx.Error("missing input 0 (data)");
  KILN_ASSIGN_OR_RETURN(ReducePlan plan, MakePlan(ctx, *x));
  int64_t out_n = NumElements(plan.out_shape);
  const int64_t count = out_n == 0 ? 0 : x->size() / out_n;
  std::vector<int64_t> oidx;
  if (plan.identity) {
    oidx.resize(static_cast<size_t>(x->size()));
    for (int64_t i = 0; i < x->size(); ++i) oidx[static_cast<size_t>(i)] = i;
  } else {
    oidx = OutputIndexOfEachInput(x->shape(), plan.reduced);
  }
  // With noop_with_empty_axes the op is applied elementwise (e.g. ReduceSumSquare squares).
  const int64_t per_output = plan.identity ? 1 : count;
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.output(0, x->type(), plan.out_shape));
  if (x->type() == ElementType::kBool && ctx.opset() >= 20 &&
      (op == ReduceOp::kMax || op == ReduceOp::kMin)) {
    // ReduceMax-20 / ReduceMin-20 on bool: any / all (false / true over an empty set).
    const bool is_max = op == ReduceOp::kMax;
    bool* yd = y->data<bool>();
    std::fill(yd, yd + out_n, !is_max);
    const bool* xd = x->data<bool>();
    for (size_t i = 0; i < oidx.size(); ++i) {
      bool& a = yd[oidx[i]];
      a = is_max ? (a || xd[i]) : (a && xd[i]);
    }
    return Status::Ok();
  }
  bool ok = Dispatch<kAllNumeric>(x->type(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_integral_v<T>) {
      ReduceInteger<T>(op, x->data<T>(), oidx, out_n, per_output, y->data<T>());
    } else {
      ReduceFloat<T>(op, x->data<T>(), oidx, out_n, per_output, y->data<T>());
    }
  });
  if (!ok) return ctx.UnsupportedType(x->type());
  return Status::Ok();
}

Status ReduceSum(KernelContext& ctx) { return RunReduce(ctx, ReduceOp::kSum); }
Status ReduceMean(KernelContext& ctx) { return RunReduce(ctx, ReduceOp::kMean); }
Status ReduceMax(KernelContext& ctx) { return RunReduce(ctx, ReduceOp::kMax); }
Status ReduceMin(KernelContext& ctx) { return RunReduce(ctx, ReduceOp::kMin); }
Status ReduceProd(KernelContext& ctx) { return RunReduce(ctx, ReduceOp::kProd); }
Status ReduceL1(KernelContext& ctx) { return RunReduce(ctx, ReduceOp::kL1); }
Status ReduceL2(KernelContext& ctx) { return RunReduce(ctx, ReduceOp::kL2); }
Status ReduceLogSum(KernelContext& ctx) { return RunReduce(ctx, ReduceOp::kLogSum); }
Status ReduceLogSumExp(KernelContext& ctx) { return RunReduce(ctx, ReduceOp::kLogSumExp); }
Status ReduceSumSquare(KernelContext& ctx) { return RunReduce(ctx, ReduceOp::kSumSquare); }

constexpr KernelDef kKernels[] = {
    {"ReduceSum", "", ReduceSum},
    {"ReduceMean", "", ReduceMean},
    {"ReduceMax", "", ReduceMax},
    {"ReduceMin", "", ReduceMin},
    {"ReduceProd", "", ReduceProd},
    {"ReduceL1", "", ReduceL1},
    {"ReduceL2", "", ReduceL2},
    {"ReduceLogSum", "", ReduceLogSum},
    {"ReduceLogSumExp", "", ReduceLogSumExp},
    {"ReduceSumSquare", "", ReduceSumSquare},
};

}  // namespace

std::span<const KernelDef> ReduceKernels() { return kKernels; }

}  // namespace kiln
