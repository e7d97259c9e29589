// Layout and conversion helpers of the XNNPACK backend: physical permutations, the blocked
// transposing copies used at partition borders (NCHW <-> NHWC, f16 <-> f32) and inside
// partitions, the parallel loop over XNNPACK's pthreadpool, and shared Supports() checks.
#include <pthreadpool.h>

#include <algorithm>
#include <immintrin.h>

#include <cstring>
#include <type_traits>

#include "backends/xnnpack/xnn_internal.h"
#include "core/half.h"
#include "plan/cost.h"

namespace kiln::xnn {

std::vector<int> PhysicalPerm(int rank) {
  if (rank == 4) return {kNhwc[0], kNhwc[1], kNhwc[2], kNhwc[3]};
  std::vector<int> p(static_cast<size_t>(rank));
  for (int i = 0; i < rank; ++i) p[static_cast<size_t>(i)] = i;
  return p;
}

Shape Permuted(const Shape& shape, const std::vector<int>& perm) {
  Shape out(perm.size());
  for (size_t i = 0; i < perm.size(); ++i) out[i] = shape[static_cast<size_t>(perm[i])];
  return out;
}

Shape PadToRank(const Shape& shape, int rank) {
  Shape out(static_cast<size_t>(rank) - shape.size(), 1);
  out.insert(out.end(), shape.begin(), shape.end());
  return out;
}

std::vector<size_t> PhysicalDims(const Shape& padded) {
  std::vector<size_t> dims;
  for (int64_t d : Permuted(padded, PhysicalPerm(static_cast<int>(padded.size()))))
    dims.push_back(static_cast<size_t>(d));
  if (dims.empty()) dims.push_back(1);
  return dims;
}

bool IsIdentity(const std::vector<int>& perm) {
  for (size_t i = 0; i < perm.size(); ++i) {
    if (perm[i] != static_cast<int>(i)) return false;
  }
  return true;
}

void XnnDeleter::operator()(xnn_operator_t op) const { xnn_delete_operator(op); }

Status XnnError(const Node& node, const char* call, xnn_status s) {
  return Internal(node.Describe() + ": " + call + " failed (xnn_status " +
                  std::to_string(static_cast<int>(s)) + ")");
}

namespace {

struct ParallelCtx {
  const std::function<void(int64_t, int64_t)>* fn;
  int64_t n, chunk;
};

void ParallelTask(void* arg, size_t i) {
  auto* c = static_cast<ParallelCtx*>(arg);
  const int64_t begin = static_cast<int64_t>(i) * c->chunk;
  (*c->fn)(begin, std::min(c->n, begin + c->chunk));
}

}  // namespace

void ParallelFor(pthreadpool_t pool, int64_t n, int64_t grain,
                 const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  const int64_t threads = pool ? static_cast<int64_t>(pthreadpool_get_threads_count(pool)) : 1;
  if (threads <= 1 || n <= grain) {
    fn(0, n);
    return;
  }
  const int64_t chunk = std::max(grain, (n + threads * 4 - 1) / (threads * 4));
  ParallelCtx ctx{&fn, n, chunk};
  pthreadpool_parallelize_1d(pool, ParallelTask, &ctx, static_cast<size_t>((n + chunk - 1) / chunk),
                             0);
}

namespace {

// Element conversions of the copies.
struct SameF32 {
  float operator()(float x) const { return x; }
};
struct F16ToF32 {
  float operator()(uint16_t h) const { return HalfBitsToFloat(h); }
};
struct F32ToF16 {
  uint16_t operator()(float x) const { return FloatToHalfBits(x); }
};
struct XorByte {
  uint8_t flip;
  uint8_t operator()(uint8_t x) const { return static_cast<uint8_t>(x ^ flip); }
};

// d[a * d_stride + x] = cvt(s[a + x * s_stride]) for a < n, x < N.
template <int N, typename S, typename D, typename Cvt>
inline void NarrowTranspose(const S* s, int64_t s_stride, D* d, int64_t d_stride, int64_t n,
                            Cvt cvt) {
  const S* rows[N];
  for (int x = 0; x < N; ++x) rows[x] = s + x * s_stride;
  for (int64_t a = 0; a < n; ++a) {
    D* o = d + a * d_stride;
    for (int x = 0; x < N; ++x) o[x] = cvt(rows[x][a]);
  }
}

// dst dim i = src dim perm[i]. Outer dims are iterated with an odometer; the innermost work is
// either a contiguous row (the last dim stays last) or a tiled 2D transpose of the dst dim that
// is contiguous in src against the dst's last dim.
// Three planes r, g, b (n floats each) interleaved into d (r0 g0 b0 r1 ...): an image's NCHW
// channels into NHWC. 16 pixels per step: each of the 3 output vectors is one two-source permute
// of r and g and one masked permute of b into the blue lanes.
__attribute__((target("avx512f"))) void Interleave3Avx512(const float* r, const float* g,
                                                          const float* b, float* d, int64_t n) {
  alignas(64) int32_t rg[3][16], bl[3][16];
  __mmask16 bmask[3] = {0, 0, 0};
  for (int k = 0; k < 3; ++k) {
    for (int q = 0; q < 16; ++q) {
      const int e = 16 * k + q, p = e / 3, c = e % 3;
      rg[k][q] = c == 1 ? 16 + p : p;
      bl[k][q] = p;
      if (c == 2) bmask[k] = static_cast<__mmask16>(bmask[k] | (1u << q));
    }
  }
  __m512i irg[3], ib[3];
  for (int k = 0; k < 3; ++k) {
    irg[k] = _mm512_load_si512(rg[k]);
    ib[k] = _mm512_load_si512(bl[k]);
  }
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 vr = _mm512_loadu_ps(r + i), vg = _mm512_loadu_ps(g + i), vb = _mm512_loadu_ps(b + i);
    for (int k = 0; k < 3; ++k) {
      const __m512 t = _mm512_permutex2var_ps(vr, irg[k], vg);
      _mm512_storeu_ps(d + 3 * i + 16 * k, _mm512_mask_permutexvar_ps(t, bmask[k], ib[k], vb));
    }
  }
  for (; i < n; ++i) {
    d[3 * i] = r[i];
    d[3 * i + 1] = g[i];
    d[3 * i + 2] = b[i];
  }
}

// Float copies with 3 channels moving from planes to the innermost dim (an RGB image into NHWC)
// take Interleave3Avx512 when the session allows AVX-512.
template <typename S, typename D, typename Cvt>
inline bool Interleave3(const S* s, int64_t s_stride, D* d, int64_t n, Cvt, bool avx512) {
  if constexpr (std::is_same_v<S, float> && std::is_same_v<D, float> &&
                std::is_same_v<Cvt, SameF32>) {
    if (avx512) {
      Interleave3Avx512(s, s + s_stride, s + 2 * s_stride, d, n);
      return true;
    }
  }
  return false;
}

template <typename S, typename D, typename Cvt>
void PermuteT(const S* src, const Shape& src_shape_in, const std::vector<int>& perm_in, D* dst,
              pthreadpool_t pool, Cvt cvt, bool avx512 = false) {
  // Dims of size 1 do not move anything: drop them (NHWC <-> NCHW of [1,C,1,W] or [N,1,H,W]
  // then becomes a plain copy or a 2D transpose).
  Shape src_shape;
  std::vector<int> perm;
  {
    std::vector<int> new_index(src_shape_in.size(), -1);
    for (size_t i = 0; i < src_shape_in.size(); ++i) {
      if (src_shape_in[i] != 1) {
        new_index[i] = static_cast<int>(src_shape.size());
        src_shape.push_back(src_shape_in[i]);
      }
    }
    for (int d : perm_in) {
      if (new_index[static_cast<size_t>(d)] >= 0) perm.push_back(new_index[static_cast<size_t>(d)]);
    }
  }
  const int r = static_cast<int>(src_shape.size());
  const int64_t total = NumElements(src_shape);
  if (total == 0) return;
  if (r == 0 || IsIdentity(perm)) {
    ParallelFor(pool, total, 1 << 14, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) dst[i] = cvt(src[i]);
    });
    return;
  }
  const std::vector<int64_t> ss = Strides(src_shape);
  const Shape ds = Permuted(src_shape, perm);
  const std::vector<int64_t> dstr = Strides(ds);
  int j = 0;  // dst position of src's last dim
  for (int i = 0; i < r; ++i) {
    if (perm[static_cast<size_t>(i)] == r - 1) j = i;
  }
  const int64_t inner = ds[static_cast<size_t>(r - 1)];
  const int64_t inner_src_stride = ss[static_cast<size_t>(perm[static_cast<size_t>(r - 1)])];
  // Outer dims: all dst dims but r-1 and j.
  std::vector<int> outer_dims;
  for (int i = 0; i < r - 1; ++i) {
    if (i != j) outer_dims.push_back(i);
  }
  int64_t outer = 1;
  for (int d : outer_dims) outer *= ds[static_cast<size_t>(d)];
  const int64_t jn = (j == r - 1) ? 1 : ds[static_cast<size_t>(j)];
  const int64_t j_dst_stride = dstr[static_cast<size_t>(j)];
  ParallelFor(pool, outer, 1, [&](int64_t b, int64_t e) {
    for (int64_t o = b; o < e; ++o) {
      // Decompose o over outer_dims.
      int64_t rem = o, so = 0, doff = 0;
      for (int k = static_cast<int>(outer_dims.size()) - 1; k >= 0; --k) {
        const int d = outer_dims[static_cast<size_t>(k)];
        const int64_t idx = rem % ds[static_cast<size_t>(d)];
        rem /= ds[static_cast<size_t>(d)];
        so += idx * ss[static_cast<size_t>(perm[static_cast<size_t>(d)])];
        doff += idx * dstr[static_cast<size_t>(d)];
      }
      if (j == r - 1) {  // contiguous row
        const S* s = src + so;
        D* d = dst + doff;
        for (int64_t x = 0; x < inner; ++x) d[x] = cvt(s[x]);
        continue;
      }
      if (inner <= 4) {
        // Few channels (an image's 3 planes into NHWC, a 1-channel map): per dst row, read the
        // `inner` source rows in step; the tile loop's per-element bookkeeping cost more than the
        // copy here.
        const S* s = src + so;
        D* d = dst + doff;
        switch (inner) {
          case 1: NarrowTranspose<1>(s, inner_src_stride, d, j_dst_stride, jn, cvt); break;
          case 2: NarrowTranspose<2>(s, inner_src_stride, d, j_dst_stride, jn, cvt); break;
          case 3:
            if (j_dst_stride == 3 && Interleave3(s, inner_src_stride, d, jn, cvt, avx512)) break;
            NarrowTranspose<3>(s, inner_src_stride, d, j_dst_stride, jn, cvt);
            break;
          default: NarrowTranspose<4>(s, inner_src_stride, d, j_dst_stride, jn, cvt); break;
        }
        continue;
      }
      constexpr int64_t kTile = 16;
      for (int64_t a0 = 0; a0 < jn; a0 += kTile) {
        const int64_t a1 = std::min(jn, a0 + kTile);
        for (int64_t b0 = 0; b0 < inner; b0 += kTile) {
          const int64_t b1 = std::min(inner, b0 + kTile);
          for (int64_t a = a0; a < a1; ++a) {
            const S* s = src + so + a;
            D* d = dst + doff + a * j_dst_stride;
            for (int64_t x = b0; x < b1; ++x) d[x] = cvt(s[x * inner_src_stride]);
          }
        }
      }
    }
  });
}

}  // namespace

void PermuteCopy(const float* src, const Shape& src_shape, const std::vector<int>& perm, float* dst,
                 pthreadpool_t pool, CpuIsa isa) {
  PermuteT(src, src_shape, perm, dst, pool, SameF32{}, isa >= CpuIsa::kAvx512);
}
void PermuteCopyF16ToF32(const uint16_t* src, const Shape& src_shape, const std::vector<int>& perm,
                         float* dst, pthreadpool_t pool) {
  PermuteT(src, src_shape, perm, dst, pool, F16ToF32{});
}
void PermuteCopyF32ToF16(const float* src, const Shape& src_shape, const std::vector<int>& perm,
                         uint16_t* dst, pthreadpool_t pool) {
  PermuteT(src, src_shape, perm, dst, pool, F32ToF16{});
}
void PermuteCopyBytes(const uint8_t* src, const Shape& src_shape, const std::vector<int>& perm,
                      uint8_t* dst, pthreadpool_t pool, uint8_t flip) {
  PermuteT(src, src_shape, perm, dst, pool, XorByte{flip});
}

bool IsInt8Node(const std::vector<const TypeInfo*>& inputs,
                const std::vector<const TypeInfo*>& outputs) {
  return (!inputs.empty() && inputs[0] != nullptr && Is8Bit(inputs[0]->type)) ||
         (!outputs.empty() && outputs[0] != nullptr && Is8Bit(outputs[0]->type));
}

std::vector<float> ConstantFloats(const Tensor& t) {
  // Weights at plan build (cold start): f32 is a copy, f16 a table-free conversion; the
  // per-element GetAsDouble (a type switch per value) only for the rare other types.
  const size_t n = static_cast<size_t>(t.size());
  if (t.type() == ElementType::kF32) {
    const float* p = t.data<float>();
    return std::vector<float>(p, p + n);
  }
  std::vector<float> v(n);
  if (t.type() == ElementType::kF16) {
    const uint16_t* p = static_cast<const uint16_t*>(t.raw());
    for (size_t i = 0; i < n; ++i) v[i] = HalfBitsToFloat(p[i]);
    return v;
  }
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<float>(t.GetAsDouble(static_cast<int64_t>(i)));
  return v;
}

const float* ConstantFloatData(const Tensor& t, std::vector<float>& scratch) {
  if (t.type() == ElementType::kF32) return t.data<float>();
  const size_t n = static_cast<size_t>(t.size());
  scratch.resize(n);
  if (t.type() == ElementType::kF16) {
    const uint16_t* p = static_cast<const uint16_t*>(t.raw());
    for (size_t i = 0; i < n; ++i) scratch[i] = HalfBitsToFloat(p[i]);
  } else {
    for (size_t i = 0; i < n; ++i) scratch[i] = static_cast<float>(t.GetAsDouble(static_cast<int64_t>(i)));
  }
  return scratch.data();
}

std::string CheckFloatNode(const NodeQuery& q, const std::vector<int>& float_inputs, int max_rank) {
  ElementType t = ElementType::kUndefined;
  auto check = [&](const TypeInfo* ti, const std::string& what) -> std::string {
    if (ti == nullptr) return what + " is missing";
    if (ti->type != ElementType::kF32 && ti->type != ElementType::kF16) {
      return what + " is " + ElementTypeName(ti->type) + " (f32/f16 only)";
    }
    if (t != ElementType::kUndefined && ti->type != t) return "mixed element types";
    t = ti->type;
    if (!ti->has_static_shape()) return what + " has no static shape (" + ti->ToString() + ")";
    if (static_cast<int>(ti->shape->size()) > max_rank) {
      return what + " has rank " + std::to_string(ti->shape->size()) + " (at most " +
             std::to_string(max_rank) + ")";
    }
    return "";
  };
  for (int i : float_inputs) {
    if (static_cast<size_t>(i) >= q.inputs.size())
      return "input " + std::to_string(i) + " is missing";
    std::string e = check(q.inputs[static_cast<size_t>(i)], "input " + std::to_string(i));
    if (!e.empty()) return e;
  }
  if (q.outputs.empty()) return "no outputs";
  std::string e = check(q.outputs[0], "output 0");
  if (!e.empty()) return e;
  for (size_t i = 1; i < q.outputs.size(); ++i) {
    if (q.outputs[i] != nullptr && i < q.node->outputs.size() && q.node->outputs[i].valid()) {
      return "output " + std::to_string(i) + " is used (only output 0 is supported)";
    }
  }
  return "";
}

NodeSupport YesFloat(const NodeQuery& q, double gmacs_per_thread, double gbytes) {
  const NodeWork w = EstimateWork(q);
  const double threads = std::max(1, q.threads);
  // Elementwise work is bandwidth bound; MACs scale with threads.
  NodeSupport s = NodeSupport::Yes(EstimateMicros(w, gmacs_per_thread * threads, gbytes, 1.0));
  if (!q.outputs.empty() && q.outputs[0] != nullptr && q.outputs[0]->type == ElementType::kF16) {
    s.compute_type = ElementType::kF32;
    s.reason = "f16 raised to f32";
  }
  return s;
}

bool ClipBounds(const Node& n, const std::function<const Tensor*(ValueId)>& constant, float* lo,
                float* hi) {
  *lo = -INFINITY;
  *hi = INFINITY;
  if (n.opset < 11) {
    *lo = n.attrs.GetFloat("min", -3.402823466e38f);
    *hi = n.attrs.GetFloat("max", 3.402823466e38f);
    return true;
  }
  for (size_t i = 1; i < 3 && i < n.inputs.size(); ++i) {
    if (!n.inputs[i].valid()) continue;
    const Tensor* t = constant(n.inputs[i]);
    if (t == nullptr || t->size() != 1) return false;
    (i == 1 ? *lo : *hi) = static_cast<float>(t->GetAsDouble(0));
  }
  return true;
}

}  // namespace kiln::xnn
