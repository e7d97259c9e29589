// Private to the XNNPACK backend's own kernels: SiLU (x * sigmoid(x)) of one vector in
// registers, shared by the elementwise SiLU loop (xnn_ops_elementwise.cc) and the register tiles
// of the own fp32 convolution (xnn_fconv_avx2.cc / xnn_fconv_avx512.cc), whose epilogue applies
// it to the accumulators before the store. One arithmetic for both, so a fused Conv + SiLU gives
// the same bits as the conv followed by the SiLU loop.
//
// exp(t) for t <= 0 (below -87 it gives exp(-87), about 1.6e-38): n = round(t * log2(e)) by the
// 1.5 * 2^23 rounding constant, r = t - n ln2 in two parts, a degree-6 Taylor polynomial on
// |r| <= ln2/2 (error < 2e-7 relative), times 2^n (exact: a power of two). The sigmoid from
// e = exp(-|x|): 1/(1+e) for x >= 0, e/(1+e) below.
#pragma once

#include <immintrin.h>

namespace kiln::xnn {

// exp of a non-positive vector over GCC vector types (V float lanes, VI int32 lanes of the same
// width); by reference (a vector argument or return changes ABI by target): always inlined into
// target-specific loops.
template <typename V, typename VI>
__attribute__((always_inline)) inline void ExpNonPositive(const V& t_in, V* out) {
  const V zero = V{};
  const V lo = zero - 87.0f;
  const V t = t_in < lo ? lo : t_in;
  const V magic = zero + 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const V k = t * 1.44269504088896341f + magic;
  const V n = k - magic;
  const V r = (t - n * 0.693145751953125f) - n * 1.428606765330187e-06f;
  V p = zero + (1.0f / 720);
  p = p * r + (1.0f / 120);
  p = p * r + (1.0f / 24);
  p = p * r + (1.0f / 6);
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const VI bits = (((VI)k - 0x4B400000) + 127) << 23;  // NOLINT(google-readability-casting)
  *out = p * (V)bits;  // NOLINT(google-readability-casting): vector bit cast
}

// *y = SiLU(x) over GCC vector types (the AVX2 path: 1 / (1 + e) by division).
template <typename V, typename VI>
__attribute__((always_inline)) inline void SiluOf(const V& x, V* y) {
  const V zero = V{};
  const V ax = x < zero ? -x : x;
  V e;
  ExpNonPositive<V, VI>(-ax, &e);
  const V s = (zero + 1.0f) / (e + 1.0f);
  *y = x * (x < zero ? e * s : s);
}

// The same on one ymm register (AVX2 + FMA).
__attribute__((always_inline, target("avx2,fma"))) inline __m256 SiluAvx2(__m256 x) {
  typedef float V8 __attribute__((vector_size(32)));
  typedef int V8i __attribute__((vector_size(32)));
  V8 v, y;
  __builtin_memcpy(&v, &x, sizeof(v));
  SiluOf<V8, V8i>(v, &y);
  __m256 out;
  __builtin_memcpy(&out, &y, sizeof(out));
  return out;
}

// GCC 12 warns that _mm512_max_ps's internal _mm512_undefined_ps() is uninitialized.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// SiLU of one zmm register: the polynomial by explicit FMAs, 2^n by vscalefps, 1 / (1 + e) from
// vrcp14ps and one Newton step (relative error about 2^-27, below float's rounding) instead of
// vdivps. A vector's chain is ~20 dependent operations: callers keep several independent vectors
// in flight (the elementwise loop four, a register tile its accumulators).
__attribute__((always_inline, target("avx512f"))) inline __m512 SiluAvx512(__m512 x) {
  const __m512 magic = _mm512_set1_ps(12582912.0f);
  const __m512 t = _mm512_max_ps(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_abs_ps(x)),
                                 _mm512_set1_ps(-87.0f));
  const __m512 k = _mm512_fmadd_ps(t, _mm512_set1_ps(1.44269504088896341f), magic);
  const __m512 n = _mm512_sub_ps(k, magic);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), t);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187e-06f), r);
  __m512 p = _mm512_set1_ps(1.0f / 720);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  const __m512 e = _mm512_scalef_ps(p, n);  // p * 2^n, n in [-126, 0]
  const __m512 d = _mm512_add_ps(e, _mm512_set1_ps(1.0f));
  const __m512 r0 = _mm512_rcp14_ps(d);
  const __m512 s = _mm512_mul_ps(r0, _mm512_fnmadd_ps(d, r0, _mm512_set1_ps(2.0f)));
  const __mmask16 neg = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
  return _mm512_mul_ps(x, _mm512_mask_mul_ps(s, neg, e, s));
}
#pragma GCC diagnostic pop

}  // namespace kiln::xnn
