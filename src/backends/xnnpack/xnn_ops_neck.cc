// XNNPACK backend ops that this 2022 XNNPACK lacks, as own loops (AVX2/FMA) so that the
// attention / LayerNorm necks of models like PP-OCRv4 rec stay inside one partition:
// MatMul with a computed (or batched) B (blocked AVX-512 / AVX2 GEMM per batch by the session
// ISA, batch dims broadcast),
// ReduceMean / ReduceSum over a contiguous block of axes, Pow with a constant scalar exponent,
// Slice and Gather with constant parameters, and Tanh and Erf (own scalar std::tanh / std::erf
// loops: XNNPACK has neither in f32 here; Erf keeps GELU as PyTorch exports it,
// 0.5*x*(1+Erf(x/sqrt2)), inside one partition instead of one per block). The fused LayerNorm (ReduceMean, Sub, Pow 2, ReduceMean, Add eps, Sqrt,
// Div[, Mul gamma][, Add beta]) is built here too (matched in xnn_fusion.h).
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "backends/xnnpack/xnn_internal.h"
#include "backends/xnnpack/xnn_ops.h"
#include "core/cpu_features.h"

namespace kiln::xnn {

namespace {

constexpr double kGmacs = 20;
constexpr double kGbytes = 10;

// A float operand that is either a workspace buffer (logical order) or an owned constant.
struct Src {
  int buffer = -1;
  std::shared_ptr<std::vector<float>> constant;
  const float* get(const Workspace& ws) const {
    return buffer >= 0 ? ws.f(buffer) : constant->data();
  }
};

Src LogicalSrc(Builder& b, ValueId v) {
  Src s;
  if (const Tensor* c = b.constant(v)) {
    s.constant = std::make_shared<std::vector<float>>(ConstantFloats(*c));
  } else {
    s.buffer = b.LogicalIn(v);
  }
  return s;
}

// ---- GEMM: C[M,N] = A[M,K] * B[K,N], row-major with leading dims ----

KILN_TARGET_AVX2 inline __m256i TailMaskAvx2(int64_t n) {  // lanes < n set (n in 0..8)
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), idx);
}

template <int MR>
KILN_TARGET_AVX2 void GemmBlockAvx2(const float* a, int64_t lda, const float* b, int64_t ldb,
                                    float* c, int64_t ldc, int64_t k, int64_t cols) {
  // Up to 16 columns: two 8-lane vectors, masked at the tail.
  const __m256i m0 = TailMaskAvx2(std::min<int64_t>(8, cols));
  const __m256i m1 = TailMaskAvx2(std::max<int64_t>(0, std::min<int64_t>(8, cols - 8)));
  __m256 acc0[MR], acc1[MR];
  for (int r = 0; r < MR; ++r) {
    acc0[r] = _mm256_setzero_ps();
    acc1[r] = _mm256_setzero_ps();
  }
  for (int64_t p = 0; p < k; ++p) {
    const float* bp = b + p * ldb;
    const __m256 b0 = _mm256_maskload_ps(bp, m0);
    const __m256 b1 = _mm256_maskload_ps(bp + 8, m1);
    for (int r = 0; r < MR; ++r) {
      const __m256 av = _mm256_broadcast_ss(a + r * lda + p);
      acc0[r] = _mm256_fmadd_ps(av, b0, acc0[r]);
      acc1[r] = _mm256_fmadd_ps(av, b1, acc1[r]);
    }
  }
  for (int r = 0; r < MR; ++r) {
    _mm256_maskstore_ps(c + r * ldc, m0, acc0[r]);
    _mm256_maskstore_ps(c + r * ldc + 8, m1, acc1[r]);
  }
}

// Rows [m0, m1) of C.
KILN_TARGET_AVX2 void GemmRowsAvx2(const float* a, int64_t lda, const float* b, int64_t ldb,
                                   float* c, int64_t ldc, int64_t m0, int64_t m1, int64_t n,
                                   int64_t k) {
  for (int64_t j = 0; j < n; j += 16) {
    const int64_t cols = std::min<int64_t>(16, n - j);
    int64_t i = m0;
    for (; i + 4 <= m1; i += 4)
      GemmBlockAvx2<4>(a + i * lda, lda, b + j, ldb, c + i * ldc + j, ldc, k, cols);
    for (; i < m1; ++i)
      GemmBlockAvx2<1>(a + i * lda, lda, b + j, ldb, c + i * ldc + j, ldc, k, cols);
  }
}

#define KILN_TARGET_AVX512_GEMM __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma")))

// GCC 12 warns that the masked loads' internal _mm512_undefined_ps() is uninitialized.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

// MR rows x up to 32 columns: two zmm per row (16 accumulators at MR = 8), masked at the tail;
// the same k order per element as the AVX2 and portable paths (FMA per step).
template <int MR>
KILN_TARGET_AVX512_GEMM void GemmBlockAvx512(const float* a, int64_t lda, const float* b,
                                             int64_t ldb, float* c, int64_t ldc, int64_t k,
                                             int64_t cols) {
  const int left0 = static_cast<int>(std::min<int64_t>(16, cols));
  const int left1 = static_cast<int>(std::max<int64_t>(0, std::min<int64_t>(16, cols - 16)));
  const auto m0 = static_cast<__mmask16>(left0 >= 16 ? 0xFFFF : (1u << left0) - 1);
  const auto m1 = static_cast<__mmask16>(left1 >= 16 ? 0xFFFF : (1u << left1) - 1);
  __m512 acc0[MR], acc1[MR];
  for (int r = 0; r < MR; ++r) {
    acc0[r] = _mm512_setzero_ps();
    acc1[r] = _mm512_setzero_ps();
  }
  for (int64_t p = 0; p < k; ++p) {
    const float* bp = b + p * ldb;
    const __m512 b0 = _mm512_maskz_loadu_ps(m0, bp);
    const __m512 b1 = _mm512_maskz_loadu_ps(m1, bp + 16);
    for (int r = 0; r < MR; ++r) {
      const __m512 av = _mm512_set1_ps(a[r * lda + p]);
      acc0[r] = _mm512_fmadd_ps(av, b0, acc0[r]);
      acc1[r] = _mm512_fmadd_ps(av, b1, acc1[r]);
    }
  }
  for (int r = 0; r < MR; ++r) {
    _mm512_mask_storeu_ps(c + r * ldc, m0, acc0[r]);
    _mm512_mask_storeu_ps(c + r * ldc + 16, m1, acc1[r]);
  }
}

#pragma GCC diagnostic pop

KILN_TARGET_AVX512_GEMM void GemmRowsAvx512(const float* a, int64_t lda, const float* b,
                                            int64_t ldb, float* c, int64_t ldc, int64_t m0,
                                            int64_t m1, int64_t n, int64_t k) {
  for (int64_t j = 0; j < n; j += 32) {
    const int64_t cols = std::min<int64_t>(32, n - j);
    int64_t i = m0;
    for (; i + 8 <= m1; i += 8)
      GemmBlockAvx512<8>(a + i * lda, lda, b + j, ldb, c + i * ldc + j, ldc, k, cols);
    for (; i + 4 <= m1; i += 4)
      GemmBlockAvx512<4>(a + i * lda, lda, b + j, ldb, c + i * ldc + j, ldc, k, cols);
    for (; i < m1; ++i)
      GemmBlockAvx512<1>(a + i * lda, lda, b + j, ldb, c + i * ldc + j, ldc, k, cols);
  }
}

#undef KILN_TARGET_AVX512_GEMM

// Portable rows [m0, m1) of C, the same k order per element as the AVX2 tiles.
void GemmRows(const float* a, int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc,
              int64_t m0, int64_t m1, int64_t n, int64_t k, CpuIsa isa) {
  if (isa >= CpuIsa::kAvx512) {
    GemmRowsAvx512(a, lda, b, ldb, c, ldc, m0, m1, n, k);
    return;
  }
  if (isa >= CpuIsa::kAvx2 && CpuHasAvx2()) {
    GemmRowsAvx2(a, lda, b, ldb, c, ldc, m0, m1, n, k);
    return;
  }
  for (int64_t i = m0; i < m1; ++i) {
    float* ci = c + i * ldc;
    for (int64_t j = 0; j < n; ++j) ci[j] = 0;
    for (int64_t p = 0; p < k; ++p) {
      const float av = a[i * lda + p];
      const float* bp = b + p * ldb;
      for (int64_t j = 0; j < n; ++j) ci[j] += av * bp[j];
    }
  }
}

NodeSupport BatchMatMulSupports(const NodeQuery& q) {
  std::string e = CheckFloatNode(q, {0, 1}, 6);
  if (!e.empty()) return NodeSupport::No(e);
  if (q.inputs[0]->shape->size() < 2 || q.inputs[1]->shape->size() < 2) {
    return NodeSupport::No("A and B must have rank >= 2");
  }
  return YesFloat(q, kGmacs, kGbytes);
}

}  // namespace

NodeSupport MatMulComputedSupports(const NodeQuery& q) { return BatchMatMulSupports(q); }

Status BuildBatchMatMul(Builder& b, const Node& n, const Fusion& f) {
  const Shape as = b.shape(n.inputs[0]), bs = b.shape(n.inputs[1]), ys = b.shape(n.outputs[0]);
  const int64_t m = as[as.size() - 2], k = as[as.size() - 1], nn = bs[bs.size() - 1];
  if (bs[bs.size() - 2] != k) return InvalidArgument("MatMul inner dimensions differ");
  const int yr = static_cast<int>(ys.size());
  // Batch index -> A / B batch offsets (numpy broadcasting of the leading dims).
  const int64_t batches = NumElements(ys) / (m * nn);
  std::vector<int64_t> a_off(static_cast<size_t>(batches)), b_off(static_cast<size_t>(batches));
  for (int64_t bi = 0; bi < batches; ++bi) {
    int64_t rem = bi, ao = 0, bo = 0, astride = m * k, bstride = k * nn;
    for (int d = yr - 3; d >= 0; --d) {
      const int64_t dim = ys[static_cast<size_t>(d)];
      const int64_t idx = rem % dim;
      rem /= dim;
      const int ad = d - (yr - static_cast<int>(as.size()));
      const int bd = d - (yr - static_cast<int>(bs.size()));
      if (ad >= 0) {
        if (as[static_cast<size_t>(ad)] != 1) ao += idx * astride;
        astride *= as[static_cast<size_t>(ad)];
      }
      if (bd >= 0) {
        if (bs[static_cast<size_t>(bd)] != 1) bo += idx * bstride;
        bstride *= bs[static_cast<size_t>(bd)];
      }
    }
    a_off[static_cast<size_t>(bi)] = ao;
    b_off[static_cast<size_t>(bi)] = bo;
  }
  const Src sa = LogicalSrc(b, n.inputs[0]);
  const Src sb = LogicalSrc(b, n.inputs[1]);
  if (sa.buffer >= 0) b.Use(sa.buffer);
  const int out = b.LogicalOut(f.out);
  const CpuIsa isa = b.spec().isa;
  const int64_t rb_rows = isa >= CpuIsa::kAvx512 ? 8 : 4;
  const int64_t row_blocks = (m + rb_rows - 1) / rb_rows;
  const float lo = f.out_min, hi = f.out_max;
  const bool clamp = lo > -INFINITY || hi < INFINITY;
  b.AddLoop([=](const Workspace& ws, pthreadpool_t pool) {
    const float* pa = sa.get(ws);
    const float* pb = sb.get(ws);
    float* pc = ws.f(out);
    ParallelFor(pool, batches * row_blocks,
                std::max<int64_t>(1, 16384 / std::max<int64_t>(1, k * nn)),
                [&](int64_t s, int64_t e) {
                  for (int64_t t = s; t < e; ++t) {
                    const int64_t bi = t / row_blocks, rb = t % row_blocks;
                    const int64_t r0 = rb * rb_rows, r1 = std::min(m, r0 + rb_rows);
                    float* c = pc + bi * m * nn;
                    GemmRows(pa + a_off[static_cast<size_t>(bi)], k,
                             pb + b_off[static_cast<size_t>(bi)], nn, c, nn, r0, r1, nn, k, isa);
                    if (clamp) {  // a fused Relu / Clip
                      for (int64_t i = r0 * nn; i < r1 * nn; ++i)
                        c[i] = std::min(hi, std::max(lo, c[i]));
                    }
                  }
                });
  });
  b.FinishLogicalOut(f.out, out);
  return Status::Ok();
}

namespace {

// ---- ReduceMean / ReduceSum ----

// Reduced axes (sorted, normalised) from the attribute or the constant input 1; false if not
// available.
bool ReduceAxes(const Node& n, int rank, const Tensor* axes_input, std::vector<int64_t>* axes) {
  axes->clear();
  const bool attr_axes = n.opset < (n.op_type == "ReduceSum" ? 13 : 18);
  if (attr_axes) {
    *axes = n.attrs.GetInts("axes");
  } else if (n.inputs.size() > 1 && n.inputs[1].valid()) {
    if (axes_input == nullptr) return false;  // computed axes
    for (int64_t i = 0; i < axes_input->size(); ++i) axes->push_back(axes_input->GetAsInt64(i));
  }
  if (axes->empty()) {
    if (n.attrs.GetInt("noop_with_empty_axes", 0) != 0) return false;
    for (int i = 0; i < rank; ++i) axes->push_back(i);
  }
  for (int64_t& a : *axes) {
    if (a < 0) a += rank;
    if (a < 0 || a >= rank) return false;
  }
  std::sort(axes->begin(), axes->end());
  axes->erase(std::unique(axes->begin(), axes->end()), axes->end());
  return true;
}

// Sum of n contiguous floats: 8 lanes, then the lanes in order, then the tail.
KILN_TARGET_AVX2 float SumAvx2(const float* xs, int64_t n) {
  __m256 acc = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) acc = _mm256_add_ps(acc, _mm256_loadu_ps(xs + i));
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, acc);
  float sum = 0;
  for (float l : lanes) sum += l;
  for (; i < n; ++i) sum += xs[i];
  return sum;
}

// The same order as SumAvx2 (8 partial sums), so both paths give the same result.
float SumPortable(const float* xs, int64_t n) {
  float lanes[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int l = 0; l < 8; ++l) lanes[l] += xs[i + l];
  }
  float sum = 0;
  for (float l : lanes) sum += l;
  for (; i < n; ++i) sum += xs[i];
  return sum;
}

NodeSupport ReduceSupports(const NodeQuery& q) {
  std::string e = CheckFloatNode(q, {0}, 6);
  if (!e.empty()) return NodeSupport::No(e);
  const int r = static_cast<int>(q.inputs[0]->shape->size());
  std::vector<int64_t> axes;
  if (!ReduceAxes(*q.node, r, q.constants.size() > 1 ? q.constants[1] : nullptr, &axes)) {
    return NodeSupport::No("axes are not constant (or noop_with_empty_axes)");
  }
  for (size_t i = 1; i < axes.size(); ++i) {
    if (axes[i] != axes[i - 1] + 1) return NodeSupport::No("reduced axes are not contiguous");
  }
  return YesFloat(q, kGmacs, kGbytes);
}

Status ReduceBuild(Builder& b, const Node& n, const Fusion& f) {
  const Shape x = b.shape(n.inputs[0]);
  const int r = static_cast<int>(x.size());
  std::vector<int64_t> axes;
  if (!ReduceAxes(n, r, n.inputs.size() > 1 ? b.constant(n.inputs[1]) : nullptr, &axes)) {
    return InvalidArgument("axes are not constant");
  }
  int64_t outer = 1, red = 1, inner = 1;
  for (int i = 0; i < r; ++i) {
    const int64_t d = x[static_cast<size_t>(i)];
    if (i < axes.front()) {
      outer *= d;
    } else if (i <= axes.back()) {
      red *= d;
    } else {
      inner *= d;
    }
  }
  const bool mean = n.op_type == "ReduceMean";
  const float scale = mean && red > 0 ? 1.0f / static_cast<float>(red) : 1.0f;
  const int in = b.LogicalIn(n.inputs[0]);
  const int out = b.LogicalOut(f.out);
  b.AddLoop([=](const Workspace& ws, pthreadpool_t pool) {
    const float* src = ws.f(in);
    float* dst = ws.f(out);
    const bool avx2 = CpuHasAvx2();
    ParallelFor(pool, outer, 1, [&](int64_t s, int64_t e) {
      for (int64_t o = s; o < e; ++o) {
        float* d = dst + o * inner;
        const float* xs = src + o * red * inner;
        if (inner == 1) {
          const float sum = avx2 ? SumAvx2(xs, red) : SumPortable(xs, red);
          d[0] = mean ? sum / static_cast<float>(red) : sum;
          continue;
        }
        for (int64_t i = 0; i < inner; ++i) d[i] = 0;
        for (int64_t j = 0; j < red; ++j) {
          const float* row = xs + j * inner;
          for (int64_t i = 0; i < inner; ++i) d[i] += row[i];
        }
        if (mean) {
          for (int64_t i = 0; i < inner; ++i) d[i] *= scale;
        }
      }
    });
  });
  b.FinishLogicalOut(f.out, out);
  return Status::Ok();
}

// ---- Pow with a constant scalar exponent ----

NodeSupport PowSupports(const NodeQuery& q) {
  std::string e = CheckFloatNode(q, {0}, 8);
  if (!e.empty()) return NodeSupport::No(e);
  if (q.constants.size() < 2 || q.constants[1] == nullptr || q.constants[1]->size() != 1) {
    return NodeSupport::No("exponent is not a constant scalar");
  }
  if (q.inputs[0]->static_shape() != q.outputs[0]->static_shape()) {
    return NodeSupport::No("the exponent broadcasts the base");
  }
  return YesFloat(q, kGmacs, kGbytes);
}

Status PowBuild(Builder& b, const Node& n, const Fusion& f) {
  const float p = static_cast<float>(b.constant(n.inputs[1])->GetAsDouble(0));
  const int64_t count = NumElements(b.shape(n.inputs[0]));
  const int in = b.Buffer(n.inputs[0]);
  const int out = b.Buffer(f.out);
  b.AddLoop([=](const Workspace& ws, pthreadpool_t pool) {
    const float* x = ws.f(in);
    float* y = ws.f(out);
    ParallelFor(pool, count, 1 << 14, [&](int64_t s, int64_t e) {
      if (p == 2.0f) {
        for (int64_t i = s; i < e; ++i) y[i] = x[i] * x[i];
      } else if (p == 0.5f) {
        for (int64_t i = s; i < e; ++i) y[i] = std::sqrt(x[i]);
      } else if (p == 1.0f) {
        for (int64_t i = s; i < e; ++i) y[i] = x[i];
      } else {
        for (int64_t i = s; i < e; ++i) y[i] = std::pow(x[i], p);
      }
    });
  });
  return Status::Ok();
}

// ---- Tanh (own scalar loop) ----


Status TanhBuild(Builder& b, const Node& n, const Fusion& f) {
  return ScalarUnaryBuild(b, n, f, [](float v) { return std::tanh(v); });
}

NodeSupport ScalarUnarySupports(const NodeQuery& q) {
  std::string e = CheckFloatNode(q, {0}, 8);
  if (!e.empty()) return NodeSupport::No(e);
  return YesFloat(q, kGmacs, kGbytes);
}

// ---- Slice with constant starts/ends/axes/steps ----

struct SliceParams {
  std::vector<int64_t> start, step;  // per logical axis
};

Result<SliceParams> SliceParamsOf(const Node& n, const Shape& x, const Shape& y,
                                  const std::function<const Tensor*(size_t)>& constant) {
  const int r = static_cast<int>(x.size());
  std::vector<int64_t> starts, ends, axes, steps;
  auto ints = [&](size_t i, std::vector<int64_t>* out) -> bool {
    if (i >= n.inputs.size() || !n.inputs[i].valid()) return true;
    const Tensor* t = constant(i);
    if (t == nullptr) return false;
    for (int64_t j = 0; j < t->size(); ++j) out->push_back(t->GetAsInt64(j));
    return true;
  };
  if (n.opset < 10) {
    starts = n.attrs.GetInts("starts");
    ends = n.attrs.GetInts("ends");
    axes = n.attrs.GetInts("axes");
  } else if (!ints(1, &starts) || !ints(2, &ends) || !ints(3, &axes) || !ints(4, &steps)) {
    return InvalidArgument("Slice starts/ends/axes/steps are not constants");
  }
  if (axes.empty()) {
    for (size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<int64_t>(i));
  }
  if (steps.empty()) steps.assign(starts.size(), 1);
  if (starts.size() != axes.size() || ends.size() != axes.size() || steps.size() != axes.size()) {
    return InvalidArgument("Slice starts/ends/axes/steps lengths differ");
  }
  SliceParams p;
  p.start.assign(static_cast<size_t>(r), 0);
  p.step.assign(static_cast<size_t>(r), 1);
  for (size_t i = 0; i < axes.size(); ++i) {
    int64_t a = axes[i] < 0 ? axes[i] + r : axes[i];
    if (a < 0 || a >= r) return InvalidArgument("Slice axis out of range");
    const int64_t dim = x[static_cast<size_t>(a)], st = steps[i];
    if (st == 0) return InvalidArgument("Slice step 0");
    int64_t s = starts[i] < 0 ? starts[i] + dim : starts[i];
    s = st > 0 ? std::clamp<int64_t>(s, 0, dim) : std::clamp<int64_t>(s, 0, dim - 1);
    p.start[static_cast<size_t>(a)] = s;
    p.step[static_cast<size_t>(a)] = st;
  }
  // The output shape was inferred: check the last element stays in range.
  for (int a = 0; a < r; ++a) {
    const int64_t len = y[static_cast<size_t>(a)];
    if (len == 0) continue;
    const int64_t last =
        p.start[static_cast<size_t>(a)] + (len - 1) * p.step[static_cast<size_t>(a)];
    if (last < 0 || last >= x[static_cast<size_t>(a)])
      return InvalidArgument("Slice output shape disagrees");
  }
  return p;
}

NodeSupport SliceSupports(const NodeQuery& q) {
  std::string e = CheckFloatNode(q, {0}, 6);
  if (!e.empty()) return NodeSupport::No(e);
  auto p =
      SliceParamsOf(*q.node, q.inputs[0]->static_shape(), q.outputs[0]->static_shape(),
                    [&](size_t i) { return i < q.constants.size() ? q.constants[i] : nullptr; });
  if (!p.ok()) return NodeSupport::No(p.status().message());
  return YesFloat(q, 1, kGbytes);
}

Status SliceBuild(Builder& b, const Node& n, const Fusion& f) {
  const Shape x = b.shape(n.inputs[0]), y = b.shape(f.out);
  KILN_ASSIGN_OR_RETURN(SliceParams sp, SliceParamsOf(n, x, y, [&](size_t i) {
                          return i < n.inputs.size() ? b.constant(n.inputs[i]) : nullptr;
                        }));
  // Work in the physical layout (the same permutation for input and output: same rank).
  const std::vector<int> p = b.perm(n.inputs[0]);
  const int r = static_cast<int>(x.size());
  const Shape xp = Permuted(x, p), yp = Permuted(y, p);
  const std::vector<int64_t> xs = Strides(xp);
  int64_t base = 0;
  std::vector<int64_t> in_stride(static_cast<size_t>(r));
  for (int i = 0; i < r; ++i) {
    const size_t li = static_cast<size_t>(p[static_cast<size_t>(i)]);
    base += sp.start[li] * xs[static_cast<size_t>(i)];
    in_stride[static_cast<size_t>(i)] = sp.step[li] * xs[static_cast<size_t>(i)];
  }
  const int64_t inner = r > 0 ? yp[static_cast<size_t>(r - 1)] : 1;
  const int64_t inner_stride = r > 0 ? in_stride[static_cast<size_t>(r - 1)] : 1;
  const int64_t rows = inner > 0 ? NumElements(y) / inner : 0;
  const int in = b.Buffer(n.inputs[0]);
  const int out = b.Buffer(f.out);
  b.AddLoop([=](const Workspace& ws, pthreadpool_t pool) {
    const float* src = ws.f(in);
    float* dst = ws.f(out);
    ParallelFor(pool, rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, inner)),
                [&](int64_t s, int64_t e) {
                  for (int64_t row = s; row < e; ++row) {
                    int64_t rem = row, off = base;
                    for (int d = r - 2; d >= 0; --d) {
                      const int64_t dim = yp[static_cast<size_t>(d)];
                      off += (rem % dim) * in_stride[static_cast<size_t>(d)];
                      rem /= dim;
                    }
                    float* dr = dst + row * inner;
                    if (inner_stride == 1) {
                      std::memcpy(dr, src + off, static_cast<size_t>(inner) * sizeof(float));
                    } else {
                      for (int64_t i = 0; i < inner; ++i) dr[i] = src[off + i * inner_stride];
                    }
                  }
                });
  });
  return Status::Ok();
}

// ---- Gather with constant indices (logical order) ----

NodeSupport GatherSupports(const NodeQuery& q) {
  std::string e = CheckFloatNode(q, {0}, 6);
  if (!e.empty()) return NodeSupport::No(e);
  if (q.constants.size() < 2 || q.constants[1] == nullptr)
    return NodeSupport::No("indices are not a constant");
  const Tensor& idx = *q.constants[1];
  if (idx.type() != ElementType::kI64 && idx.type() != ElementType::kI32) {
    return NodeSupport::No("indices are not int32/int64");
  }
  const Shape x = q.inputs[0]->static_shape();
  int64_t axis = q.node->attrs.GetInt("axis", 0);
  if (axis < 0) axis += static_cast<int64_t>(x.size());
  if (axis < 0 || axis >= static_cast<int64_t>(x.size()))
    return NodeSupport::No("axis out of range");
  const int64_t dim = x[static_cast<size_t>(axis)];
  for (int64_t i = 0; i < idx.size(); ++i) {
    const int64_t v = idx.GetAsInt64(i);
    if (v < -dim || v >= dim)
      return NodeSupport::No("index " + std::to_string(v) + " out of range");
  }
  return YesFloat(q, 1, kGbytes);
}

Status GatherBuild(Builder& b, const Node& n, const Fusion& f) {
  const Shape x = b.shape(n.inputs[0]);
  const Tensor& idx = *b.constant(n.inputs[1]);
  int64_t axis = n.attrs.GetInt("axis", 0);
  if (axis < 0) axis += static_cast<int64_t>(x.size());
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < axis; ++i) outer *= x[static_cast<size_t>(i)];
  for (size_t i = static_cast<size_t>(axis) + 1; i < x.size(); ++i) inner *= x[i];
  const int64_t dim = x[static_cast<size_t>(axis)];
  std::vector<int64_t> ids(static_cast<size_t>(idx.size()));
  for (int64_t i = 0; i < idx.size(); ++i) {
    const int64_t v = idx.GetAsInt64(i);
    ids[static_cast<size_t>(i)] = v < 0 ? v + dim : v;
  }
  const int in = b.LogicalIn(n.inputs[0]);
  const int out = b.LogicalOut(f.out);
  b.AddLoop([=](const Workspace& ws, pthreadpool_t pool) {
    const float* src = ws.f(in);
    float* dst = ws.f(out);
    const int64_t k = static_cast<int64_t>(ids.size());
    ParallelFor(pool, outer, 1, [&](int64_t s, int64_t e) {
      for (int64_t o = s; o < e; ++o) {
        for (int64_t j = 0; j < k; ++j) {
          std::memcpy(dst + (o * k + j) * inner,
                      src + (o * dim + ids[static_cast<size_t>(j)]) * inner,
                      static_cast<size_t>(inner) * sizeof(float));
        }
      }
    });
  });
  b.FinishLogicalOut(f.out, out);
  return Status::Ok();
}

}  // namespace

// ---- LayerNorm over the last axis ----

Status BuildLayerNorm(Builder& b, const Node& n, const LayerNormMatch& m, const Fusion& f) {
  (void)n;
  const Shape x = b.shape(m.x);
  const int64_t c = x.back();
  const int64_t rows = c > 0 ? NumElements(x) / c : 0;
  auto gamma = std::make_shared<std::vector<float>>();
  auto beta = std::make_shared<std::vector<float>>();
  if (m.gamma) *gamma = ConstantFloats(*m.gamma);
  if (m.beta) *beta = ConstantFloats(*m.beta);
  if ((!gamma->empty() && gamma->size() != 1 && static_cast<int64_t>(gamma->size()) != c) ||
      (!beta->empty() && beta->size() != 1 && static_cast<int64_t>(beta->size()) != c)) {
    return InvalidArgument("LayerNorm scale/bias do not match the last axis");
  }
  if (gamma->size() == 1) gamma->assign(static_cast<size_t>(c), (*gamma)[0]);
  if (beta->size() == 1) beta->assign(static_cast<size_t>(c), (*beta)[0]);
  const float eps = m.eps;
  const int in = b.LogicalIn(m.x);
  const int out = b.LogicalOut(f.out);
  b.AddLoop([=](const Workspace& ws, pthreadpool_t pool) {
    const float* src = ws.f(in);
    float* dst = ws.f(out);
    const float inv_n = 1.0f / static_cast<float>(c);
    ParallelFor(pool, rows, std::max<int64_t>(1, 2048 / std::max<int64_t>(1, c)),
                [&](int64_t s, int64_t e) {
                  for (int64_t r = s; r < e; ++r) {
                    const float* xr = src + r * c;
                    float* yr = dst + r * c;
                    float sum = 0;
                    for (int64_t i = 0; i < c; ++i) sum += xr[i];
                    const float mean = sum * inv_n;
                    float sq = 0;
                    for (int64_t i = 0; i < c; ++i) {
                      const float d = xr[i] - mean;
                      sq += d * d;
                    }
                    const float den = std::sqrt(sq * inv_n + eps);
                    for (int64_t i = 0; i < c; ++i) {
                      float v = (xr[i] - mean) / den;
                      if (!gamma->empty()) v *= (*gamma)[static_cast<size_t>(i)];
                      if (!beta->empty()) v += (*beta)[static_cast<size_t>(i)];
                      yr[i] = v;
                    }
                  }
                });
  });
  b.FinishLogicalOut(f.out, out);
  return Status::Ok();
}

void AddNeckOps(std::vector<OpDef>& table) {
  table.push_back({"ReduceMean", ReduceSupports, ReduceBuild, false});
  table.push_back({"ReduceSum", ReduceSupports, ReduceBuild, false});
  table.push_back({"Pow", PowSupports, PowBuild, false});
  table.push_back({"Tanh", ScalarUnarySupports, TanhBuild, false});
  table.push_back({"Erf", ScalarUnarySupports, BuildErf, false});
  table.push_back({"Slice", SliceSupports, SliceBuild, false});
  table.push_back({"Gather", GatherSupports, GatherBuild, false});
}

// y[i] = fn(x[i]) over all elements, in float (fn: std::tanh, std::erf).
Status ScalarUnaryBuild(Builder& b, const Node& n, const Fusion& f, float (*fn)(float)) {
  const int64_t count = NumElements(b.shape(n.inputs[0]));
  const int in = b.Buffer(n.inputs[0]);
  const int out = b.Buffer(f.out);
  b.AddLoop([=](const Workspace& ws, pthreadpool_t pool) {
    const float* x = ws.f(in);
    float* y = ws.f(out);
    ParallelFor(pool, count, 1 << 12, [&](int64_t s, int64_t e) {
      for (int64_t i = s; i < e; ++i) y[i] = fn(x[i]);
    });
  });
  return Status::Ok();
}

}  // namespace kiln::xnn
