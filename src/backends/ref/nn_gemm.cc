// The f32 matrix multiply shared by Conv, ConvTranspose, Gemm and MatMul, and the Gemm and MatMul
// kernels.
//
// Sgemm reads A in place (or, transposed or scaled, packs it once with alpha folded in into
// strips of kGemmMr rows), then splits C into
// tiles of up to kMc rows x kNc columns run in parallel. A tile walks K in blocks of kKc: it
// packs its B block (through the BPacker, so convolutions gather im2col columns directly) and
// runs a 6x16 register-tiled micro-kernel written with GCC vector extensions. The tree is built
// for baseline x86-64, where those 256-bit vectors become SSE pairs that spill (about 1 GFLOP/s),
// so the tile loop is compiled twice: SgemmTilesAvx2 (target avx2+fma: 12 ymm accumulators, FMA)
// taken when CpuHasAvx2(), the portable copy otherwise. Accumulation is in float.
// Other element types take a plain loop accumulating in double (int64/uint64 for integers).
#include <algorithm>
#include <cstring>

#include "backends/ref/nn_internal.h"
#include "core/cpu_features.h"

namespace kiln::nn {

void ParallelRange(ThreadPool* pool, int64_t n, int64_t grain,
                   const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  if (pool == nullptr || pool->threads() <= 1 || n <= grain) {
    fn(0, n);
    return;
  }
  pool->ParallelFor(n, fn, grain);
}

namespace {

constexpr int64_t kKc = 256;
constexpr int64_t kMc = 120;  // multiple of kGemmMr
constexpr int64_t kNc = 512;  // multiple of kGemmNr

typedef float V8 __attribute__((vector_size(32)));
typedef float V8u __attribute__((vector_size(32), aligned(4)));

// c[mr x nr] (+)= A[mr rows][kc] * b_strip[kc][16]. A is a packed strip (a[k*6 + i], kPacked)
// or read in place, row i at a + i*lda (rows past mr repeat the last one; their sums are not
// stored). Always inlined: each tile loop below compiles it for its own target.
template <bool kPacked>
__attribute__((always_inline)) inline void MicroKernel(int64_t kc, const float* a, int64_t lda,
                                                       const float* b, float* c, int64_t ldc,
                                                       int64_t mr, int64_t nr, bool accumulate) {
  V8 acc[kGemmMr][2];
#pragma GCC unroll 6
  for (int i = 0; i < kGemmMr; ++i) {
    acc[i][0] = V8{};
    acc[i][1] = V8{};
  }
  if constexpr (kPacked) {
    for (int64_t k = 0; k < kc; ++k) {
      const V8 b0 = *reinterpret_cast<const V8*>(b);
      const V8 b1 = *reinterpret_cast<const V8*>(b + 8);
#pragma GCC unroll 6
      for (int i = 0; i < kGemmMr; ++i) {
        acc[i][0] += b0 * a[i];
        acc[i][1] += b1 * a[i];
      }
      a += kGemmMr;
      b += kGemmNr;
    }
  } else {
    const float* rows[kGemmMr];
#pragma GCC unroll 6
    for (int i = 0; i < kGemmMr; ++i) rows[i] = a + std::min<int64_t>(i, mr - 1) * lda;
    for (int64_t k = 0; k < kc; ++k) {
      const V8 b0 = *reinterpret_cast<const V8*>(b);
      const V8 b1 = *reinterpret_cast<const V8*>(b + 8);
#pragma GCC unroll 6
      for (int i = 0; i < kGemmMr; ++i) {
        const float av = rows[i][k];
        acc[i][0] += b0 * av;
        acc[i][1] += b1 * av;
      }
      b += kGemmNr;
    }
  }
  if (mr == kGemmMr && nr == kGemmNr) {
#pragma GCC unroll 6
    for (int i = 0; i < kGemmMr; ++i) {
      V8u* row = reinterpret_cast<V8u*>(c + i * ldc);
      if (accumulate) {
        row[0] += acc[i][0];
        row[1] += acc[i][1];
      } else {
        row[0] = acc[i][0];
        row[1] = acc[i][1];
      }
    }
    return;
  }
  alignas(32) float tmp[kGemmMr][kGemmNr];
  for (int i = 0; i < kGemmMr; ++i) {
    *reinterpret_cast<V8*>(&tmp[i][0]) = acc[i][0];
    *reinterpret_cast<V8*>(&tmp[i][8]) = acc[i][1];
  }
  for (int64_t i = 0; i < mr; ++i) {
    float* row = c + i * ldc;
    for (int64_t j = 0; j < nr; ++j) row[j] = accumulate ? row[j] + tmp[i][j] : tmp[i][j];
  }
}

// Packs alpha*A into [k block][m strip][kc][6], zero-padding rows past m.
std::vector<float> PackA(bool trans_a, int64_t m, int64_t k, float alpha, const float* a,
                         int64_t lda, int64_t m_pad) {
  std::vector<float> out(static_cast<size_t>(m_pad * k) + 8);
  for (int64_t k0 = 0; k0 < k; k0 += kKc) {
    const int64_t kc = std::min(kKc, k - k0);
    float* block = out.data() + k0 * m_pad;
    for (int64_t ms = 0; ms < m_pad; ms += kGemmMr) {
      float* dst = block + ms * kc;
      for (int64_t kk = 0; kk < kc; ++kk) {
        for (int64_t i = 0; i < kGemmMr; ++i) {
          const int64_t row = ms + i;
          float v = 0;
          if (row < m) v = trans_a ? a[(k0 + kk) * lda + row] : a[row * lda + k0 + kk];
          dst[kk * kGemmMr + i] = alpha * v;
        }
      }
    }
  }
  return out;
}

struct AlignedBuffer {
  std::vector<float> storage;
  float* get(size_t n) {
    if (storage.size() < n + 8) storage.resize(n + 8);
    auto p = reinterpret_cast<uintptr_t>(storage.data());
    return reinterpret_cast<float*>((p + 31) & ~uintptr_t{31});
  }
};

// One Sgemm call's tiles of C (m0 = t / n_tiles * kMc, n0 = t % n_tiles * nc_tile).
struct TileJob {
  int64_t m, n, k, m_pad, nc_tile, n_tiles;
  float beta;
  const float* packed_a;  // null: A read in place (a, lda)
  const float* a;
  int64_t lda;
  const BPacker* b;
  float* c;
  int64_t ldc;
};

__attribute__((always_inline)) inline void RunTiles(const TileJob& j, int64_t begin,
                                                    int64_t end) {
  thread_local AlignedBuffer b_buffer;
  float* packed_b = b_buffer.get(static_cast<size_t>(kKc * j.nc_tile));
  for (int64_t t = begin; t < end; ++t) {
    const int64_t m0 = (t / j.n_tiles) * kMc;
    const int64_t n0 = (t % j.n_tiles) * j.nc_tile;
    const int64_t mc = std::min(kMc, j.m - m0);
    const int64_t nc = std::min(j.nc_tile, j.n - n0);
    if (j.beta != 0.0f && j.beta != 1.0f) {
      for (int64_t i = 0; i < mc; ++i) {
        float* row = j.c + (m0 + i) * j.ldc + n0;
        for (int64_t q = 0; q < nc; ++q) row[q] *= j.beta;
      }
    }
    for (int64_t k0 = 0; k0 < j.k; k0 += kKc) {
      const int64_t kc = std::min(kKc, j.k - k0);
      const bool accumulate = k0 > 0 || j.beta != 0.0f;
      j.b->Pack(k0, kc, n0, nc, packed_b);
      for (int64_t ms = 0; ms < mc; ms += kGemmMr) {
        const int64_t mr = std::min(kGemmMr, mc - ms);
        float* c_row = j.c + (m0 + ms) * j.ldc + n0;
        if (j.packed_a != nullptr) {
          const float* a_strip = j.packed_a + k0 * j.m_pad + (m0 + ms) * kc;
          for (int64_t ns = 0; ns < nc; ns += kGemmNr) {
            MicroKernel<true>(kc, a_strip, 0, packed_b + ns * kc, c_row + ns, j.ldc, mr,
                              std::min(kGemmNr, nc - ns), accumulate);
          }
        } else {
          const float* a_rows = j.a + (m0 + ms) * j.lda + k0;
          for (int64_t ns = 0; ns < nc; ns += kGemmNr) {
            MicroKernel<false>(kc, a_rows, j.lda, packed_b + ns * kc, c_row + ns, j.ldc, mr,
                               std::min(kGemmNr, nc - ns), accumulate);
          }
        }
      }
    }
  }
}

void SgemmTiles(const TileJob& j, int64_t begin, int64_t end) { RunTiles(j, begin, end); }
KILN_TARGET_AVX2 void SgemmTilesAvx2(const TileJob& j, int64_t begin, int64_t end) {
  RunTiles(j, begin, end);
}

}  // namespace

void MatrixBPacker::Pack(int64_t k0, int64_t kc, int64_t n0, int64_t nc, float* dst) const {
  for (int64_t s = 0; s < nc; s += kGemmNr) {
    const int64_t w = std::min(kGemmNr, nc - s);
    float* strip = dst + s * kc;
    if (!trans_) {
      for (int64_t kk = 0; kk < kc; ++kk) {
        const float* src = b_ + (k0 + kk) * ldb_ + n0 + s;
        float* d = strip + kk * kGemmNr;
        if (w == kGemmNr) {
          std::memcpy(d, src, sizeof(float) * kGemmNr);
        } else {
          for (int64_t j = 0; j < kGemmNr; ++j) d[j] = j < w ? src[j] : 0.0f;
        }
      }
    } else {
      for (int64_t j = 0; j < kGemmNr; ++j) {
        if (j >= w) {
          for (int64_t kk = 0; kk < kc; ++kk) strip[kk * kGemmNr + j] = 0.0f;
          continue;
        }
        const float* src = b_ + (n0 + s + j) * ldb_ + k0;
        for (int64_t kk = 0; kk < kc; ++kk) strip[kk * kGemmNr + j] = src[kk];
      }
    }
  }
}

void Sgemm(bool trans_a, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
           const BPacker& b, float beta, float* c, int64_t ldc, ThreadPool* pool) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0 || alpha == 0.0f) {
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
    }
    return;
  }
  const int64_t m_pad = (m + kGemmMr - 1) / kGemmMr * kGemmMr;
  // A is packed (alpha folded in) when transposed or scaled; else the micro-kernel reads its
  // rows in place (packing a weight matrix at every call cost more than the multiply on small
  // products).
  const bool pack_a = trans_a || alpha != 1.0f;
  const std::vector<float> packed_a =
      pack_a ? PackA(trans_a, m, k, alpha, a, lda, m_pad) : std::vector<float>();
  // Tile sizes: keep enough tiles to feed the pool when C is small.
  const int threads = pool != nullptr ? pool->threads() : 1;
  int64_t nc_tile = kNc;
  const int64_t m_tiles = (m + kMc - 1) / kMc;
  while (nc_tile > kGemmNr && m_tiles * ((n + nc_tile - 1) / nc_tile) < 2 * threads) nc_tile /= 2;
  const int64_t n_tiles = (n + nc_tile - 1) / nc_tile;
  const int64_t tiles = m_tiles * n_tiles;

  const TileJob job{m,    n,    k,  m_pad, nc_tile, n_tiles, beta, pack_a ? packed_a.data() : nullptr,
                    a,    lda,  &b, c,     ldc};
  const bool avx2 = CpuHasAvx2();
  auto run_tiles = [&](int64_t begin, int64_t end) {
    if (avx2) {
      SgemmTilesAvx2(job, begin, end);
    } else {
      SgemmTiles(job, begin, end);
    }
  };
  const double flops = 2.0 * static_cast<double>(m) * n * k;
  ParallelRange(flops < 2e5 ? nullptr : pool, tiles, 1, run_tiles);
}

void SgemmPlain(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
                int64_t ldc, ThreadPool* pool) {
  if (n <= 2 || m <= 2) {
    // Thin products: dot products / row updates are faster than packing.
    for (int64_t i = 0; i < m; ++i) {
      float* crow = c + i * ldc;
      if (!trans_b && n > 2) {
        std::vector<float> acc(static_cast<size_t>(n), 0.0f);
        for (int64_t kk = 0; kk < k; ++kk) {
          const float av = trans_a ? a[kk * lda + i] : a[i * lda + kk];
          const float* brow = b + kk * ldb;
          for (int64_t j = 0; j < n; ++j) acc[j] += av * brow[j];
        }
        for (int64_t j = 0; j < n; ++j) {
          crow[j] = alpha * acc[j] + (beta == 0.0f ? 0.0f : beta * crow[j]);
        }
        continue;
      }
      for (int64_t j = 0; j < n; ++j) {
        float acc = 0.0f;
        for (int64_t kk = 0; kk < k; ++kk) {
          const float av = trans_a ? a[kk * lda + i] : a[i * lda + kk];
          const float bv = trans_b ? b[j * ldb + kk] : b[kk * ldb + j];
          acc += av * bv;
        }
        crow[j] = alpha * acc + (beta == 0.0f ? 0.0f : beta * crow[j]);
      }
    }
    return;
  }
  MatrixBPacker packer(b, ldb, trans_b);
  Sgemm(trans_a, m, n, k, alpha, a, lda, packer, beta, c, ldc, pool);
}

namespace {

template <typename T>
using AccOf =
    std::conditional_t<std::is_floating_point_v<T> || std::is_same_v<T, Half> ||
                           std::is_same_v<T, BFloat16>,
                       double, std::conditional_t<std::is_signed_v<T>, int64_t, uint64_t>>;

template <typename T>
AccOf<T> ToAcc(T v) {
  if constexpr (std::is_same_v<AccOf<T>, double>) {
    return ToD(v);
  } else {
    return static_cast<AccOf<T>>(v);
  }
}
template <typename T>
T FromAcc(AccOf<T> v) {
  if constexpr (std::is_same_v<AccOf<T>, double>) {
    return FromD<T>(v);
  } else {
    return static_cast<T>(v);
  }
}

// Generic C[m,n] = sum_k A(i,k) B(k,j) with strides (element (i,k) at a[i*as0 + k*as1]).
template <typename T>
void GenericMatMul(int64_t m, int64_t n, int64_t k, const T* a, int64_t as0, int64_t as1,
                   const T* b, int64_t bs0, int64_t bs1, std::vector<AccOf<T>>& out) {
  out.assign(static_cast<size_t>(m * n), AccOf<T>{});
  for (int64_t i = 0; i < m; ++i) {
    AccOf<T>* row = out.data() + i * n;
    for (int64_t kk = 0; kk < k; ++kk) {
      const AccOf<T> av = ToAcc(a[i * as0 + kk * as1]);
      const T* brow = b + kk * bs0;
      for (int64_t j = 0; j < n; ++j) row[j] += av * ToAcc(brow[j * bs1]);
    }
  }
}

constexpr unsigned kGemmTypes = kDispatchFloat | kDispatchSigned | kDispatchUnsigned;

}  // namespace

Status GemmKernel(KernelContext& ctx) {
  const Tensor* a = ctx.input(0);
  const Tensor* b = ctx.input(1);
  const Tensor* c = ctx.input(2);
  if (a == nullptr || b == nullptr) return ctx.Error("inputs A and B are required");
  if (a->rank() != 2 || b->rank() != 2) {
    return ctx.Error("expected 2-D A and B, found " + a->Describe() + " and " + b->Describe());
  }
  if (a->type() != b->type() || (c != nullptr && c->type() != a->type())) {
    return ctx.Error("A, B and C must have one element type");
  }
  const bool ta = ctx.attrs().GetInt("transA", 0) != 0;
  const bool tb = ctx.attrs().GetInt("transB", 0) != 0;
  const float alpha = ctx.attrs().GetFloat("alpha", 1.0f);
  const float beta = ctx.attrs().GetFloat("beta", 1.0f);
  const int64_t m = ta ? a->dim(1) : a->dim(0);
  const int64_t k = ta ? a->dim(0) : a->dim(1);
  const int64_t kb = tb ? b->dim(1) : b->dim(0);
  const int64_t n = tb ? b->dim(0) : b->dim(1);
  if (k != kb) {
    return ctx.Error("inner dims differ: A " + a->Describe() + " B " + b->Describe() +
                     (ta ? " (transA)" : "") + (tb ? " (transB)" : ""));
  }
  int64_t cm = 1, cn = 1;
  if (c != nullptr) {
    if (c->rank() > 2) return ctx.Error("C must have rank <= 2, found " + c->Describe());
    if (c->rank() == 2) {
      cm = c->dim(0);
      cn = c->dim(1);
    } else if (c->rank() == 1) {
      cn = c->dim(0);
    }
    if ((cm != 1 && cm != m) || (cn != 1 && cn != n)) {
      return ctx.Error("C " + c->Describe() + " does not broadcast to [" + std::to_string(m) + "," +
                       std::to_string(n) + "]");
    }
  }
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.output(0, a->type(), {m, n}));
  const bool use_c = c != nullptr && beta != 0.0f;
  Status status = Status::Ok();
  const bool ok = Dispatch<kGemmTypes>(a->type(), [&](auto tag) {
    using T = decltype(tag);
    T* yd = y->data<T>();
    const T* ad = a->data<T>();
    const T* bd = b->data<T>();
    if constexpr (std::is_same_v<T, float>) {
      for (int64_t i = 0; i < m; ++i) {
        for (int64_t j = 0; j < n; ++j) {
          yd[i * n + j] =
              use_c ? beta * c->data<float>()[(cm == 1 ? 0 : i) * cn + (cn == 1 ? 0 : j)] : 0.0f;
        }
      }
      SgemmPlain(ta, tb, m, n, k, alpha, ad, a->dim(1), bd, b->dim(1), use_c ? 1.0f : 0.0f, yd, n,
                 ctx.thread_pool());
    } else {
      std::vector<AccOf<T>> acc;
      GenericMatMul<T>(m, n, k, ad, ta ? 1 : k, ta ? m : 1, bd, tb ? 1 : n, tb ? k : 1, acc);
      for (int64_t i = 0; i < m; ++i) {
        for (int64_t j = 0; j < n; ++j) {
          double v = static_cast<double>(alpha) * static_cast<double>(acc[i * n + j]);
          if (use_c) {
            v += static_cast<double>(beta) *
                 ToD(c->data<T>()[(cm == 1 ? 0 : i) * cn + (cn == 1 ? 0 : j)]);
          }
          if constexpr (std::is_same_v<AccOf<T>, double>) {
            yd[i * n + j] = FromD<T>(v);
          } else if (alpha == 1.0f && (!use_c || beta == 1.0f)) {
            // Exact integer path (wrapping like the type).
            AccOf<T> iv = acc[i * n + j];
            if (use_c)
              iv += static_cast<AccOf<T>>(c->data<T>()[(cm == 1 ? 0 : i) * cn + (cn == 1 ? 0 : j)]);
            yd[i * n + j] = static_cast<T>(iv);
          } else {
            yd[i * n + j] = static_cast<T>(static_cast<int64_t>(v));
          }
        }
      }
    }
  });
  if (!ok) return ctx.UnsupportedType(a->type());
  return status;
}

Status MatMulKernel(KernelContext& ctx) {
  const Tensor* a = ctx.input(0);
  const Tensor* b = ctx.input(1);
  if (a == nullptr || b == nullptr) return ctx.Error("inputs A and B are required");
  if (a->type() != b->type()) return ctx.Error("A and B must have one element type");
  if (a->rank() < 1 || b->rank() < 1) {
    return ctx.Error("MatMul operands must have rank >= 1, found " + a->Describe() + " and " +
                     b->Describe());
  }
  Shape as = a->shape(), bs = b->shape();
  const bool a_vec = as.size() == 1, b_vec = bs.size() == 1;
  if (a_vec) as.insert(as.begin(), 1);
  if (b_vec) bs.push_back(1);
  const int64_t m = as[as.size() - 2], k = as.back();
  const int64_t kb = bs[bs.size() - 2], n = bs.back();
  if (k != kb) {
    return ctx.Error("inner dims differ: " + a->Describe() + " x " + b->Describe());
  }
  // Broadcast batch dims.
  const size_t ab = as.size() - 2, bb = bs.size() - 2;
  const size_t nb = std::max(ab, bb);
  Shape batch(nb);
  for (size_t i = 0; i < nb; ++i) {
    const int64_t da = i + ab >= nb ? as[i + ab - nb] : 1;
    const int64_t db = i + bb >= nb ? bs[i + bb - nb] : 1;
    if (da != db && da != 1 && db != 1) {
      return ctx.Error("batch dims do not broadcast: " + a->Describe() + " x " + b->Describe());
    }
    batch[i] = da == 1 ? db : da;
  }
  Shape out_shape = batch;
  if (!a_vec) out_shape.push_back(m);
  if (!b_vec) out_shape.push_back(n);
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.output(0, a->type(), out_shape));
  const int64_t batches = NumElements(batch);
  // Offsets of each batch in A and B.
  std::vector<int64_t> a_off(static_cast<size_t>(batches)), b_off(static_cast<size_t>(batches));
  {
    std::vector<int64_t> idx(nb, 0);
    for (int64_t t = 0; t < batches; ++t) {
      int64_t oa = 0, ob = 0, sa = m * k, sb = k * n;
      for (size_t i = nb; i-- > 0;) {
        const int64_t da = i + ab >= nb ? as[i + ab - nb] : 1;
        const int64_t db = i + bb >= nb ? bs[i + bb - nb] : 1;
        if (da != 1) oa += idx[i] * sa;
        if (db != 1) ob += idx[i] * sb;
        sa *= da;
        sb *= db;
      }
      a_off[t] = oa;
      b_off[t] = ob;
      for (size_t i = nb; i-- > 0;) {
        if (++idx[i] < batch[i]) break;
        idx[i] = 0;
      }
    }
  }
  auto run_f32 = [&](const float* ad, const float* bd, float* yd) {
    ThreadPool* pool = ctx.thread_pool();
    const double flops = 2.0 * m * n * k;
    if (pool != nullptr && batches >= 2 * pool->threads() && flops < 4e6) {
      ParallelRange(pool, batches, 1, [&](int64_t b0, int64_t b1) {
        for (int64_t t = b0; t < b1; ++t) {
          SgemmPlain(false, false, m, n, k, 1.0f, ad + a_off[t], k, bd + b_off[t], n, 0.0f,
                     yd + t * m * n, n, nullptr);
        }
      });
    } else {
      for (int64_t t = 0; t < batches; ++t) {
        SgemmPlain(false, false, m, n, k, 1.0f, ad + a_off[t], k, bd + b_off[t], n, 0.0f,
                   yd + t * m * n, n, pool);
      }
    }
  };
  if (a->type() == ElementType::kF16 || a->type() == ElementType::kBF16) {
    const std::vector<float> af = WidenToF32(*a), bf = WidenToF32(*b);
    std::vector<float> yf(static_cast<size_t>(y->size()));
    run_f32(af.data(), bf.data(), yf.data());
    NarrowFromF32(yf, y);
    return Status::Ok();
  }
  const bool ok = Dispatch<kGemmTypes>(a->type(), [&](auto tag) {
    using T = decltype(tag);
    const T* ad = a->data<T>();
    const T* bd = b->data<T>();
    T* yd = y->data<T>();
    if constexpr (std::is_same_v<T, float>) {
      run_f32(ad, bd, yd);
    } else {
      std::vector<AccOf<T>> acc;
      for (int64_t t = 0; t < batches; ++t) {
        GenericMatMul<T>(m, n, k, ad + a_off[t], k, 1, bd + b_off[t], n, 1, acc);
        for (int64_t i = 0; i < m * n; ++i) yd[t * m * n + i] = FromAcc<T>(acc[i]);
      }
    }
  });
  if (!ok) return ctx.UnsupportedType(a->type());
  return Status::Ok();
}

}  // namespace kiln::nn
