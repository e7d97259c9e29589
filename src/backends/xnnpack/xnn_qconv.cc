// Own int8 dense convolution for QLinearConv (see xnn_qconv.h): per block of output pixels an
// im2col into a packed row buffer, then 16-channel x MR-pixel register tiles over the packed
// weights, requantized in the tile. Exact against the reference: the int32 sums are the same
// (mod 2^32, as the reference wraps), and the float requantization is the same arithmetic.
#include "backends/xnnpack/xnn_qconv.h"

#include <immintrin.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "backends/xnnpack/xnn_internal.h"
#include "core/cpu_features.h"

namespace kiln::xnn {

namespace {

constexpr int kNr = 16;            // output channels per tile
constexpr int64_t kBlockPix = 40;  // output pixels per im2col block (multiple of both MRs)
constexpr int kMrVnni = 8;
constexpr int kMrAvx2 = 5;
constexpr int kMrU7 = 5;

bool CpuHasVnni() {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
}

struct Packed {
  QConvSpec s;  // without weights
  int64_t k = 0, kp = 0, mblocks = 0;
  OwnQConvIsa isa = OwnQConvIsa::kNone;
  // 1x1, stride 1, no padding, K a multiple of 4: a block's im2col rows are its input pixels as
  // they lie (one contiguous run), so the u8 rows are one XOR pass over the block.
  bool contiguous = false;
  std::vector<int8_t> w8;     // VNNI and AVX2 U7: [mb][kp/4][16][4] ([kp/4][8][4] if <= 8 ch)
  std::vector<int16_t> w16;   // AVX2: [mb][kp/2][16][2]
  std::vector<int32_t> bias;  // [mb*16], minus the activation offset times the weight sum
  std::vector<float> mult;    // [mb*16]
};

inline int32_t Load32(const void* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// ---- AVX-512 VNNI ----

// GCC 12 warns that _mm512_cvtps_epi32's internal _mm512_undefined_epi32() is uninitialized.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

template <int MR>
__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni"))) void TileVnni(
    const uint8_t* a, int64_t lda, const int8_t* w, int64_t kq, const int32_t* bias,
    const float* mult, int8_t* y, int64_t ldy, int nc, int32_t zp, float fmin, float fmax) {
  __m512i acc[MR];
  const __m512i vb = _mm512_loadu_si512(bias);
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) acc[r] = vb;
  for (int64_t q = 0; q < kq; ++q) {
    const __m512i vw = _mm512_loadu_si512(w + q * 64);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      // Inline asm: GCC 12 copies every accumulator around the intrinsic's tied operand.
      const __m512i va = _mm512_set1_epi32(Load32(a + r * lda + q * 4));
      asm("vpdpbusd %2, %1, %0" : "+v"(acc[r]) : "v"(va), "v"(vw));
    }
  }
  const __m512 vm = _mm512_loadu_ps(mult);
  const __m512 vlo = _mm512_set1_ps(fmin), vhi = _mm512_set1_ps(fmax);
  const __m512i vzp = _mm512_set1_epi32(zp);
  const __mmask16 mask =
      nc >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << nc) - 1);
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
    __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(acc[r]), vm);
    v = _mm512_min_ps(_mm512_max_ps(v, vlo), vhi);
    const __m512i i = _mm512_add_epi32(_mm512_cvtps_epi32(v), vzp);
    _mm512_mask_cvtsepi32_storeu_epi8(y + r * ldy, mask, i);
  }
}

// The same for a last tile of at most 8 channels (weights packed [kq][8][4]): 256-bit vectors.
template <int MR>
__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni"))) void TileVnni8(
    const uint8_t* a, int64_t lda, const int8_t* w, int64_t kq, const int32_t* bias,
    const float* mult, int8_t* y, int64_t ldy, int nc, int32_t zp, float fmin, float fmax) {
  __m256i acc[MR];
  const __m256i vb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bias));
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) acc[r] = vb;
  for (int64_t q = 0; q < kq; ++q) {
    const __m256i vw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + q * 32));
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const __m256i va = _mm256_set1_epi32(Load32(a + r * lda + q * 4));
      asm("vpdpbusd %2, %1, %0" : "+v"(acc[r]) : "v"(va), "v"(vw));
    }
  }
  const __m256 vm = _mm256_loadu_ps(mult);
  const __m256 vlo = _mm256_set1_ps(fmin), vhi = _mm256_set1_ps(fmax);
  const __m256i vzp = _mm256_set1_epi32(zp);
  const auto mask = static_cast<__mmask8>((1u << nc) - 1);
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
    __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(acc[r]), vm);
    v = _mm256_min_ps(_mm256_max_ps(v, vlo), vhi);
    const __m256i i = _mm256_add_epi32(_mm256_cvtps_epi32(v), vzp);
    _mm256_mask_cvtsepi32_storeu_epi8(y + r * ldy, mask, i);
  }
}

#pragma GCC diagnostic pop

// ---- AVX2 ----

// Requantizes 16 int32 channel sums (two vectors of 8) and stores nc (<= 16) int8 outputs.
KILN_TARGET_AVX2 inline void StoreRequant16Avx2(__m256i acc0, __m256i acc1, __m256 m0,
                                                 __m256 m1, __m256 vlo, __m256 vhi, __m256i vzp, int8_t* y, int nc) {
  __m256 v0 = _mm256_mul_ps(_mm256_cvtepi32_ps(acc0), m0);
  __m256 v1 = _mm256_mul_ps(_mm256_cvtepi32_ps(acc1), m1);
  v0 = _mm256_min_ps(_mm256_max_ps(v0, vlo), vhi);
  v1 = _mm256_min_ps(_mm256_max_ps(v1, vlo), vhi);
  const __m256i i0 = _mm256_add_epi32(_mm256_cvtps_epi32(v0), vzp);
  const __m256i i1 = _mm256_add_epi32(_mm256_cvtps_epi32(v1), vzp);
  const __m256i p16 = _mm256_permute4x64_epi64(_mm256_packs_epi32(i0, i1), 0xD8);
  const __m128i p8 =
      _mm_packs_epi16(_mm256_castsi256_si128(p16), _mm256_extracti128_si256(p16, 1));
  if (nc >= 16) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y), p8);
  } else {
    alignas(16) int8_t tmp[16];
    _mm_store_si128(reinterpret_cast<__m128i*>(tmp), p8);
    std::memcpy(y, tmp, static_cast<size_t>(nc));
  }
}

template <int MR>
KILN_TARGET_AVX2 void TileAvx2(const int16_t* a, int64_t lda, const int16_t* w, int64_t kpairs,
                               const int32_t* bias, const float* mult, int8_t* y, int64_t ldy,
                               int nc, int32_t zp, float fmin, float fmax) {
  __m256i acc0[MR], acc1[MR];
  const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bias));
  const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bias + 8));
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
    acc0[r] = b0;
    acc1[r] = b1;
  }
  for (int64_t q = 0; q < kpairs; ++q) {
    const __m256i w0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + q * 32));
    const __m256i w1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + q * 32 + 16));
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const __m256i va = _mm256_set1_epi32(Load32(a + r * lda + q * 2));
      acc0[r] = _mm256_add_epi32(acc0[r], _mm256_madd_epi16(va, w0));
      acc1[r] = _mm256_add_epi32(acc1[r], _mm256_madd_epi16(va, w1));
    }
  }
  const __m256 m0 = _mm256_loadu_ps(mult), m1 = _mm256_loadu_ps(mult + 8);
  const __m256 vlo = _mm256_set1_ps(fmin), vhi = _mm256_set1_ps(fmax);
  const __m256i vzp = _mm256_set1_epi32(zp);
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
    StoreRequant16Avx2(acc0[r], acc1[r], m0, m1, vlo, vhi, vzp, y + r * ldy, nc);
  }
}

// ---- AVX2 with 7-bit weights ----
//
// u8 activations (storage + 128) times s8 weights in [-64, 64] by vpmaddubsw: each int16 pair
// sum is within 2 * 255 * 64 = 32640 < 32767, so the instruction's saturation never triggers;
// vpmaddwd by ones then widens each pair of pair sums to int32 (4 k per lane). Weights packed as
// VNNI's ([kq][16][4], one 32-byte vector per 8 channels x 4 k).

template <int MR>
KILN_TARGET_AVX2 void TileU7Avx2(const uint8_t* a, int64_t lda, const int8_t* w, int64_t kq,
                                 const int32_t* bias, const float* mult, int8_t* y, int64_t ldy,
                                 int nc, int32_t zp, float fmin, float fmax) {
  __m256i acc0[MR], acc1[MR];
  const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bias));
  const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bias + 8));
  const __m256i ones = _mm256_set1_epi16(1);
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
    acc0[r] = b0;
    acc1[r] = b1;
  }
  for (int64_t q = 0; q < kq; ++q) {
    const __m256i w0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + q * 64));
    const __m256i w1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + q * 64 + 32));
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const __m256i va = _mm256_set1_epi32(Load32(a + r * lda + q * 4));
      const __m256i p0 = _mm256_maddubs_epi16(va, w0);
      const __m256i p1 = _mm256_maddubs_epi16(va, w1);
      acc0[r] = _mm256_add_epi32(acc0[r], _mm256_madd_epi16(p0, ones));
      acc1[r] = _mm256_add_epi32(acc1[r], _mm256_madd_epi16(p1, ones));
    }
  }
  const __m256 m0 = _mm256_loadu_ps(mult), m1 = _mm256_loadu_ps(mult + 8);
  const __m256 vlo = _mm256_set1_ps(fmin), vhi = _mm256_set1_ps(fmax);
  const __m256i vzp = _mm256_set1_epi32(zp);
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
    StoreRequant16Avx2(acc0[r], acc1[r], m0, m1, vlo, vhi, vzp, y + r * ldy, nc);
  }
}

// The same for a last tile of at most 8 channels (weights packed [kq][8][4]).
template <int MR>
KILN_TARGET_AVX2 void TileU7x8Avx2(const uint8_t* a, int64_t lda, const int8_t* w, int64_t kq,
                                   const int32_t* bias, const float* mult, int8_t* y, int64_t ldy,
                                   int nc, int32_t zp, float fmin, float fmax) {
  __m256i acc[MR];
  const __m256i vb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bias));
  const __m256i ones = _mm256_set1_epi16(1);
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) acc[r] = vb;
  for (int64_t q = 0; q < kq; ++q) {
    const __m256i vw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + q * 32));
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const __m256i va = _mm256_set1_epi32(Load32(a + r * lda + q * 4));
      acc[r] = _mm256_add_epi32(acc[r], _mm256_madd_epi16(_mm256_maddubs_epi16(va, vw), ones));
    }
  }
  const __m256 m0 = _mm256_loadu_ps(mult);
  const __m256 vlo = _mm256_set1_ps(fmin), vhi = _mm256_set1_ps(fmax);
  const __m256i vzp = _mm256_set1_epi32(zp);
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
    StoreRequant16Avx2(acc[r], acc[r], m0, m0, vlo, vhi, vzp, y + r * ldy, nc);
  }
}

// u8 activations x s8 weights (VNNI and AVX2 U7).
using U8TileFn = void (*)(const uint8_t*, int64_t, const int8_t*, int64_t, const int32_t*,
                          const float*, int8_t*, int64_t, int, int32_t, float, float);
using Avx2TileFn = void (*)(const int16_t*, int64_t, const int16_t*, int64_t, const int32_t*,
                            const float*, int8_t*, int64_t, int, int32_t, float, float);
constexpr U8TileFn kVnniTiles[kMrVnni + 1] = {nullptr,     TileVnni<1>, TileVnni<2>,
                                              TileVnni<3>, TileVnni<4>, TileVnni<5>,
                                              TileVnni<6>, TileVnni<7>, TileVnni<8>};
constexpr U8TileFn kVnni8Tiles[kMrVnni + 1] = {nullptr,      TileVnni8<1>, TileVnni8<2>,
                                               TileVnni8<3>, TileVnni8<4>, TileVnni8<5>,
                                               TileVnni8<6>, TileVnni8<7>, TileVnni8<8>};
constexpr Avx2TileFn kAvx2Tiles[kMrAvx2 + 1] = {nullptr,     TileAvx2<1>, TileAvx2<2>,
                                                TileAvx2<3>, TileAvx2<4>, TileAvx2<5>};
constexpr U8TileFn kU7Tiles[kMrU7 + 1] = {nullptr,       TileU7Avx2<1>, TileU7Avx2<2>,
                                          TileU7Avx2<3>, TileU7Avx2<4>, TileU7Avx2<5>};
constexpr U8TileFn kU7x8Tiles[kMrU7 + 1] = {nullptr,         TileU7x8Avx2<1>, TileU7x8Avx2<2>,
                                            TileU7x8Avx2<3>, TileU7x8Avx2<4>, TileU7x8Avx2<5>};

// dst[i] = src[i] ^ flip for i < n (32 at a time; may not overlap).
KILN_TARGET_AVX2 inline void CopyFlipAvx2(int8_t* dst, const int8_t* src, int64_t n, uint8_t flip) {
  if (flip == 0) {
    std::memcpy(dst, src, static_cast<size_t>(n));
    return;
  }
  const __m256i f = _mm256_set1_epi8(static_cast<char>(flip));
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), _mm256_xor_si256(v, f));
  }
  for (; i < n; ++i) dst[i] = static_cast<int8_t>(src[i] ^ flip);
}

// The same XOR 0x80 with AVX-512BW masked loads and stores for the tail (the VNNI path: short
// runs such as 3-channel pixels cost one step).
__attribute__((target("avx512f,avx512bw,avx512vl,bmi2"), always_inline)) inline void CopyFlipVnniAt(
    int8_t* dst, const int8_t* src, int64_t n) {
  const __m256i f = _mm256_set1_epi8(static_cast<char>(0x80));
  int64_t i = 0;
  const __m512i f64 = _mm512_set1_epi8(static_cast<char>(0x80));
  for (; i + 64 <= n; i += 64) {
    _mm512_storeu_si512(dst + i, _mm512_xor_si512(_mm512_loadu_si512(src + i), f64));
  }
  for (; i + 32 <= n; i += 32) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), _mm256_xor_si256(v, f));
  }
  if (i < n) {
    const auto m = static_cast<__mmask32>(_bzhi_u32(0xFFFFFFFFu, static_cast<uint32_t>(n - i)));
    const __m256i v = _mm256_maskz_loadu_epi8(m, src + i);
    _mm256_mask_storeu_epi8(dst + i, m, _mm256_xor_si256(v, f));
  }
}
__attribute__((target("avx512f,avx512bw,avx512vl,bmi2"))) void CopyFlipVnni(int8_t* dst,
                                                                         const int8_t* src,
                                                                         int64_t n) {
  CopyFlipVnniAt(dst, src, n);
}

// The im2col row of output pixel (b, oy, ox): K storage values XOR flip (padding: the zero
// point), then zeros to kp. `vnni`: flip is 0x80 and the CPU has AVX-512BW. Taps of one kernel
// row that are all inside the input with dilation 1 are one contiguous run of kw * cin bytes.
KILN_TARGET_AVX2 void GatherRowAvx2(const Packed& P, const int8_t* x, int64_t b, int64_t oy,
                                    int64_t ox, int8_t* row, uint8_t flip, bool vnni) {
  const QConvSpec& s = P.s;
  const int64_t cin = s.cin;
  const int64_t ix0 = ox * s.sw - s.pl;
  const bool row_inside = s.dw == 1 && ix0 >= 0 && ix0 + s.kw <= s.iw;
  int8_t* dst = row;
  auto copy = [&](const int8_t* src, int64_t n) {
    if (vnni) {
      CopyFlipVnni(dst, src, n);
    } else {
      CopyFlipAvx2(dst, src, n, flip);
    }
    dst += n;
  };
  const auto pad = static_cast<int8_t>(s.x_zp ^ flip);
  for (int64_t ky = 0; ky < s.kh; ++ky) {
    const int64_t iy = oy * s.sh - s.pt + ky * s.dh;
    const bool y_inside = iy >= 0 && iy < s.ih;
    if (y_inside && row_inside) {
      copy(x + ((b * s.ih + iy) * s.iw + ix0) * cin, s.kw * cin);
      continue;
    }
    for (int64_t kx = 0; kx < s.kw; ++kx) {
      const int64_t ix = ix0 + kx * s.dw;
      if (y_inside && ix >= 0 && ix < s.iw) {
        copy(x + ((b * s.ih + iy) * s.iw + ix) * cin, cin);
      } else {
        for (int64_t c = 0; c < cin; ++c) dst[c] = pad;
        dst += cin;
      }
    }
  }
  for (int64_t k = P.k; k < P.kp; ++k) *dst++ = 0;
}

// GatherRowAvx2 for the VNNI kernel: a pixel whose whole window is inside the input (dilation 1
// across) is kh runs of kw * cin bytes, copied inline here; the others take GatherRowAvx2.
__attribute__((target("avx512f,avx512bw,avx512vl,bmi2"))) void GatherRowVnni(
    const Packed& P, const int8_t* x, int64_t b, int64_t oy, int64_t ox, int8_t* row) {
  const QConvSpec& s = P.s;
  const int64_t ix0 = ox * s.sw - s.pl, iy0 = oy * s.sh - s.pt;
  if (s.dw != 1 || ix0 < 0 || ix0 + s.kw > s.iw || iy0 < 0 || iy0 + (s.kh - 1) * s.dh >= s.ih) {
    GatherRowAvx2(P, x, b, oy, ox, row, 0x80, true);
    return;
  }
  const int64_t run = s.kw * s.cin;
  const int8_t* src = x + ((b * s.ih + iy0) * s.iw + ix0) * s.cin;
  for (int64_t ky = 0; ky < s.kh; ++ky, row += run) {
    CopyFlipVnniAt(row, src + ky * s.dh * s.iw * s.cin, run);
  }
  for (int64_t k = P.k; k < P.kp; ++k) *row++ = 0;
}

// Output pixels [p0, p0 + np) as (image, row, column), stepped without divisions per pixel.
struct PixelWalk {
  int64_t b, oy, ox, oh, ow;
  PixelWalk(const QConvSpec& s, int64_t p0) : oh(s.oh), ow(s.ow) {
    const int64_t per = s.oh * s.ow;
    b = p0 / per;
    oy = p0 % per / s.ow;
    ox = p0 % s.ow;
  }
  void Next() {
    if (++ox < ow) return;
    ox = 0;
    if (++oy < oh) return;
    oy = 0;
    ++b;
  }
};

KILN_TARGET_AVX2 void RunBlockAvx2(const Packed& P, const int8_t* x, int8_t* y, int64_t p0,
                                   int64_t np, std::vector<int8_t>& row,
                                   std::vector<int16_t>& a16) {
  const QConvSpec& s = P.s;
  const int64_t kp = P.kp;
  const float fmin = static_cast<float>(s.lo - s.y_zp), fmax = static_cast<float>(s.hi - s.y_zp);
  if (P.isa == OwnQConvIsa::kVnni || P.isa == OwnQConvIsa::kAvx2U7) {
    // Row i of the block at row.data() + i * kp, as u8 (storage + 128).
    const bool vnni = P.isa == OwnQConvIsa::kVnni;
    if (P.contiguous) {
      if (vnni) {
        CopyFlipVnni(row.data(), x + p0 * kp, np * kp);
      } else {
        CopyFlipAvx2(row.data(), x + p0 * kp, np * kp, 0x80);
      }
    } else {
      PixelWalk w(s, p0);
      for (int64_t i = 0; i < np; ++i, w.Next()) {
        if (vnni) {
          GatherRowVnni(P, x, w.b, w.oy, w.ox, row.data() + i * kp);
        } else {
          GatherRowAvx2(P, x, w.b, w.oy, w.ox, row.data() + i * kp, 0x80, false);
        }
      }
    }
    const auto* a = reinterpret_cast<const uint8_t*>(row.data());
    const int max_mr = vnni ? kMrVnni : kMrU7;
    for (int64_t mb = 0; mb < P.mblocks; ++mb) {
      const int nc = static_cast<int>(std::min<int64_t>(kNr, s.cout - mb * kNr));
      const int8_t* w = P.w8.data() + mb * kp * kNr;
      const U8TileFn* tiles = vnni ? (nc <= 8 ? kVnni8Tiles : kVnniTiles)
                                     : (nc <= 8 ? kU7x8Tiles : kU7Tiles);
      for (int64_t i = 0; i < np; i += max_mr) {
        const int mr = static_cast<int>(std::min<int64_t>(max_mr, np - i));
        tiles[mr](a + i * kp, kp, w, kp / 4, P.bias.data() + mb * kNr, P.mult.data() + mb * kNr,
                  y + (p0 + i) * s.cout + mb * kNr, s.cout, nc, s.y_zp, fmin, fmax);
      }
    }
    return;
  }
  PixelWalk w(s, p0);
  for (int64_t i = 0; i < np; ++i, w.Next()) {
    int8_t* r = row.data();
    GatherRowAvx2(P, x, w.b, w.oy, w.ox, r, 0, false);
    int16_t* d = a16.data() + i * kp;
    int64_t k = 0;
    for (; k + 16 <= kp; k += 16) {
      const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(r + k));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + k), _mm256_cvtepi8_epi16(v));
    }
    for (; k < kp; ++k) d[k] = r[k];
  }
  for (int64_t mb = 0; mb < P.mblocks; ++mb) {
    const int nc = static_cast<int>(std::min<int64_t>(kNr, s.cout - mb * kNr));
    const int16_t* w = P.w16.data() + mb * kp * kNr;
    for (int64_t i = 0; i < np; i += kMrAvx2) {
      const int mr = static_cast<int>(std::min<int64_t>(kMrAvx2, np - i));
      kAvx2Tiles[mr](a16.data() + i * kp, kp, w, kp / 2, P.bias.data() + mb * kNr,
                     P.mult.data() + mb * kNr, y + (p0 + i) * s.cout + mb * kNr, s.cout, nc, s.y_zp,
                     fmin, fmax);
    }
  }
}

}  // namespace

OwnQConvIsa ChooseOwnQConvIsa(CpuIsa cap, Int8Kernel kernel) {
  // Every own kernel needs AVX2 (the VNNI one AVX-512): without it XNNPACK's own dispatch runs.
  if (!CpuHasAvx2() || cap < CpuIsa::kAvx2) return OwnQConvIsa::kNone;
  if (kernel == Int8Kernel::kXnnpack) return OwnQConvIsa::kNone;
  if (kernel == Int8Kernel::kAvx2) return OwnQConvIsa::kAvx2;
  if (kernel == Int8Kernel::kAvx2U7) return OwnQConvIsa::kAvx2U7;
  return CpuHasVnni() && cap >= CpuIsa::kAvx512Vnni ? OwnQConvIsa::kVnni : OwnQConvIsa::kNone;
}

bool WeightsFit7Bit(std::span<const int8_t> weights) {
  return std::all_of(weights.begin(), weights.end(), [](int8_t w) { return w >= -64 && w <= 64; });
}

bool WeightsFit7Bit(const QConvSpec& s) { return WeightsFit7Bit(std::span(s.weights)); }

OwnQConvIsa ChooseOwnQConvIsaFor(std::span<const int8_t> weights, CpuIsa cap, Int8Kernel kernel) {
  const OwnQConvIsa isa = ChooseOwnQConvIsa(cap, kernel);
  if (isa == OwnQConvIsa::kAvx2U7) return WeightsFit7Bit(weights) ? isa : OwnQConvIsa::kAvx2;
  if (isa != OwnQConvIsa::kNone || !CpuHasAvx2() || cap < CpuIsa::kAvx2 ||
      kernel != Int8Kernel::kAuto) {
    return isa;
  }
  return WeightsFit7Bit(weights) ? OwnQConvIsa::kAvx2U7 : OwnQConvIsa::kNone;
}

OwnQConvIsa ChooseOwnQConvIsaFor(const QConvSpec& s, CpuIsa cap, Int8Kernel kernel) {
  return ChooseOwnQConvIsaFor(std::span(s.weights), cap, kernel);
}

QConvFn MakeOwnQConv(const QConvSpec& spec, OwnQConvIsa isa) {
  auto P = std::make_shared<Packed>();
  P->s = spec;
  P->s.weights.clear();
  P->s.bias.clear();
  P->s.mult.clear();
  // 7-bit weights only: anything else runs the int16 AVX2 kernel (vpmaddubsw could saturate).
  P->isa = isa == OwnQConvIsa::kAvx2U7 && !WeightsFit7Bit(spec) ? OwnQConvIsa::kAvx2 : isa;
  const bool w8 = P->isa == OwnQConvIsa::kVnni || P->isa == OwnQConvIsa::kAvx2U7;
  const QConvSpec& s = spec;
  if (std::getenv("KILN_XNN_QCONV_DEBUG") != nullptr) {
    const char* name = P->isa == OwnQConvIsa::kVnni     ? "vnni"
                       : P->isa == OwnQConvIsa::kAvx2U7 ? "avx2u7"
                                                        : "avx2";
    std::fprintf(stderr, "own qconv %s: %lldx%lldx%lld -> %lldx%lldx%lld k %lldx%lld s %lld\n",
                 name, (long long)s.ih, (long long)s.iw, (long long)s.cin,
                 (long long)s.oh, (long long)s.ow, (long long)s.cout, (long long)s.kh,
                 (long long)s.kw, (long long)s.sh);
  }
  P->k = s.kh * s.kw * s.cin;
  P->kp = (P->k + 3) / 4 * 4;
  P->contiguous = s.kh == 1 && s.kw == 1 && s.sh == 1 && s.sw == 1 && s.pt == 0 && s.pl == 0 &&
                  s.oh == s.ih && s.ow == s.iw && P->kp == P->k;
  P->mblocks = (s.cout + kNr - 1) / kNr;
  const int64_t mpad = P->mblocks * kNr;
  auto wat = [&](int64_t m, int64_t k) -> int32_t {
    if (m >= s.cout || k >= P->k) return 0;
    const int64_t tap = k / s.cin, c = k % s.cin;
    return s.weights[static_cast<size_t>((m * s.cin + c) * s.kh * s.kw + tap)];
  };
  const int64_t kp = P->kp;
  if (w8) {
    // Block mb at mb * kp * 16; a last block of at most 8 channels with 8 channels per quad.
    P->w8.resize(static_cast<size_t>(mpad * kp));
    for (int64_t mb = 0; mb < P->mblocks; ++mb) {
      const int64_t nr = s.cout - mb * kNr <= 8 ? 8 : kNr;
      int8_t* dst = P->w8.data() + mb * kp * kNr;
      for (int64_t q = 0; q < kp / 4; ++q)
        for (int64_t j = 0; j < nr; ++j)
          for (int64_t t = 0; t < 4; ++t)
            dst[(q * nr + j) * 4 + t] = static_cast<int8_t>(wat(mb * kNr + j, q * 4 + t));
    }
  } else {
    P->w16.resize(static_cast<size_t>(mpad * kp));
    for (int64_t mb = 0; mb < P->mblocks; ++mb)
      for (int64_t q = 0; q < kp / 2; ++q)
        for (int64_t j = 0; j < kNr; ++j)
          for (int64_t t = 0; t < 2; ++t)
            P->w16[static_cast<size_t>(((mb * (kp / 2) + q) * kNr + j) * 2 + t)] =
                static_cast<int16_t>(wat(mb * kNr + j, q * 2 + t));
  }
  P->bias.assign(static_cast<size_t>(mpad), 0);
  P->mult.assign(static_cast<size_t>(mpad), 0.0f);
  const uint32_t offset = static_cast<uint32_t>(static_cast<int32_t>(s.x_zp) + (w8 ? 128 : 0));
  for (int64_t m = 0; m < s.cout; ++m) {
    uint32_t wsum = 0;
    for (int64_t k = 0; k < P->k; ++k) wsum += static_cast<uint32_t>(wat(m, k));
    const auto b = static_cast<uint32_t>(s.bias[static_cast<size_t>(m)]);
    P->bias[static_cast<size_t>(m)] = static_cast<int32_t>(b - offset * wsum);
    P->mult[static_cast<size_t>(m)] = s.mult[static_cast<size_t>(m)];
  }
  return [P](const int8_t* x, int8_t* y, pthreadpool_t pool) {
    const QConvSpec& s = P->s;
    const int64_t pixels = s.batch * s.oh * s.ow;
    const int64_t blocks = (pixels + kBlockPix - 1) / kBlockPix;
    ParallelFor(pool, blocks, 1, [&](int64_t b0, int64_t e0) {
      thread_local std::vector<int8_t> row;
      thread_local std::vector<int16_t> a16;
      const auto need = static_cast<size_t>(kBlockPix * P->kp + 64);
      if (row.size() < need) row.resize(need);
      if (P->isa == OwnQConvIsa::kAvx2 && a16.size() < need) a16.resize(need);
      for (int64_t blk = b0; blk < e0; ++blk) {
        const int64_t p0 = blk * kBlockPix;
        RunBlockAvx2(*P, x, y, p0, std::min(kBlockPix, pixels - p0), row, a16);
      }
    });
  };
}

// ---- Depthwise (AVX-512): 16 channels per vector, (x - x_zp) * w by int16 madd ----

#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace {

struct PackedDw {
  QConvSpec s;                // without weights
  std::vector<int32_t> w;     // [tap][cpad]: the weight in the low 16 bits, 0 above
  std::vector<int32_t> bias;  // [cpad]
  std::vector<int32_t> bias_zp;  // [cpad]: bias - x_zp * (sum of the channel's weights)
  std::vector<float> mult;    // [cpad]
  std::vector<int8_t> zp_row;  // [iw][c]: the input zero point (the rows of the vertical padding)
  int64_t cpad = 0;
  // Narrow rows (the pixels whose taps reach into the left or right padding are 1/16 of a row or
  // more): each run first copies the input into a buffer with the padding written in (the zero
  // point), whose geometry is `padded` (no padding, ih / iw grown to cover every tap), so every
  // pixel takes the fast form.
  bool pad_copy = false;
  QConvSpec padded;
};

// Requantizes 16 int32 sums (times mult, clamped, plus the output zero point) into int8.
__attribute__((target("avx512f,avx512bw,avx512vl"), always_inline)) inline void DwStoreAvx512(
    __m512i acc, const float* mult, __m512 vlo, __m512 vhi, __m512i vyzp, int8_t* out,
    __mmask16 mask) {
  __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(acc), _mm512_loadu_ps(mult));
  f = _mm512_min_ps(_mm512_max_ps(f, vlo), vhi);
  const __m512i q = _mm512_add_epi32(_mm512_cvtps_epi32(f), vyzp);
  _mm512_mask_cvtsepi32_storeu_epi8(out, mask, q);
}

// NP output pixels from input column ix0 on whose every tap is inside the input, channels
// [c0, c0 + 16): NP independent vpdpwssd chains (one chain is bound by the instruction's latency).
template <int NP, bool kFull>
__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,bmi2"), noinline)) void
DwPixelsAvx512(const PackedDw& P, const int8_t* const* xrows, const int32_t* const* wrows,
               int64_t nrows, int64_t ix0, int64_t c0, int8_t* out, __m512 vlo, __m512 vhi,
               __m512i vyzp) {
  const QConvSpec& s = P.s;
  const int64_t c = s.cout, kw = s.kw, cpad = P.cpad;
  const int64_t step = s.sw * c;  // input offset between neighbouring output pixels
  const auto n = static_cast<uint32_t>(std::min<int64_t>(16, c - c0));
  const auto mask = static_cast<__mmask16>(_bzhi_u32(0xFFFFu, n));
  __m512i acc[NP];
  acc[0] = _mm512_loadu_si512(P.bias_zp.data() + c0);
#pragma GCC unroll 16
  for (int i = 1; i < NP; ++i) acc[i] = acc[0];
  for (int64_t r = 0; r < nrows; ++r) {
    const int8_t* xp = xrows[r] + ix0 * c + c0;
    const int32_t* wp = wrows[r] + c0;
    for (int64_t kx = 0; kx < kw; ++kx, xp += s.dw * c, wp += cpad) {
      const __m512i wv = _mm512_loadu_si512(wp);
#pragma GCC unroll 16
      for (int i = 0; i < NP; ++i) {
        // A full group's load folds into vpmovsxbd; inline asm: GCC 12 copies every
        // accumulator around the intrinsic's tied operand.
        const __m128i v = kFull ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(xp + i * step))
                                : _mm_maskz_loadu_epi8(mask, xp + i * step);
        const __m512i xv = _mm512_cvtepi8_epi32(v);
        asm("vpdpwssd %2, %1, %0" : "+v"(acc[i]) : "v"(xv), "v"(wv));
      }
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < NP; ++i)
    DwStoreAvx512(acc[i], P.mult.data() + c0, vlo, vhi, vyzp, out + i * c + c0, mask);
}

template <int NP>
__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,bmi2"))) void DwInsidePixelsAvx512(
    const PackedDw& P, const int8_t* const* xrows, const int32_t* const* wrows, int64_t nrows,
    int64_t ix0, int64_t c0, int8_t* out, __m512 vlo, __m512 vhi, __m512i vyzp) {
  if (c0 + 16 <= P.s.cout) {
    DwPixelsAvx512<NP, true>(P, xrows, wrows, nrows, ix0, c0, out, vlo, vhi, vyzp);
  } else {
    DwPixelsAvx512<NP, false>(P, xrows, wrows, nrows, ix0, c0, out, vlo, vhi, vyzp);
  }
}

// Output row `row` (batch * oh + oy). Kernel rows in the vertical padding read `zp_row` (the
// input zero point everywhere), whose taps add (x_zp - x_zp) * w = 0 as the reference's skipped
// taps do, so every output pixel whose taps are inside the row width takes the fast form:
// DwInsidePixelsAvx512 over blocks of 16, 8, 4, 2 and 1 pixels. The few pixels whose taps reach into
// the left or right padding take the per-tap form: (x - x_zp) * w by int16 madd over the taps
// inside (x - x_zp, |.| <= 255, in the low half of each 32-bit lane times (w, 0)).
// `s` is P.s, or P.padded: the geometry over a copy of the input with its padding written in.
__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,bmi2"))) void DwRowAvx512(
    const PackedDw& P, const QConvSpec& s, const int8_t* x, int8_t* y, int64_t row) {
  const int64_t b = row / s.oh, oy = row % s.oh, c = s.cout, kh = s.kh;
  const int64_t kw = s.kw, sw = s.sw, dw = s.dw, pl = s.pl, iw = s.iw, ow = s.ow, cpad = P.cpad;
  const __m512i vxzp = _mm512_set1_epi32(s.x_zp);
  const __m512i vyzp = _mm512_set1_epi32(s.y_zp);
  const __m512 vlo = _mm512_set1_ps(static_cast<float>(s.lo - s.y_zp));
  const __m512 vhi = _mm512_set1_ps(static_cast<float>(s.hi - s.y_zp));
  const int8_t* xrows[32];
  const int32_t* wrows[32];
  for (int64_t ky = 0; ky < kh; ++ky) {
    const int64_t iy = oy * s.sh - s.pt + ky * s.dh;
    xrows[ky] = iy < 0 || iy >= s.ih ? P.zp_row.data() : x + (b * s.ih + iy) * iw * c;
    wrows[ky] = P.w.data() + ky * kw * cpad;
  }
  // Pixels [oxa, oxb) have every tap inside the row width.
  int64_t oxa = 0;
  while (oxa < ow && oxa * sw - pl < 0) ++oxa;
  int64_t oxb = oxa;
  while (oxb < ow && oxb * sw - pl + (kw - 1) * dw < iw) ++oxb;
  int8_t* yrow = y + row * ow * c;
  for (int64_t ox = oxa; ox < oxb;) {
    const int64_t left = oxb - ox;
    const int64_t np = left >= 16 ? 16 : left >= 8 ? 8 : left >= 4 ? 4 : left >= 2 ? 2 : 1;
    const int64_t ix0 = ox * sw - pl;
    int8_t* out = yrow + ox * c;
    for (int64_t c0 = 0; c0 < c; c0 += 16) {
      switch (np) {
        case 16: DwInsidePixelsAvx512<16>(P, xrows, wrows, kh, ix0, c0, out, vlo, vhi, vyzp); break;
        case 8: DwInsidePixelsAvx512<8>(P, xrows, wrows, kh, ix0, c0, out, vlo, vhi, vyzp); break;
        case 4: DwInsidePixelsAvx512<4>(P, xrows, wrows, kh, ix0, c0, out, vlo, vhi, vyzp); break;
        case 2: DwInsidePixelsAvx512<2>(P, xrows, wrows, kh, ix0, c0, out, vlo, vhi, vyzp); break;
        default: DwInsidePixelsAvx512<1>(P, xrows, wrows, kh, ix0, c0, out, vlo, vhi, vyzp); break;
      }
    }
    ox += np;
  }
  for (int64_t ox = 0; ox < ow; ++ox) {
    if (ox == oxa) ox = std::max(oxb, oxa);
    if (ox >= ow) break;
    int8_t* out = yrow + ox * c;
    // Taps kx in [kx0, kx1) are inside the input.
    const int64_t ix0 = ox * sw - pl;
    int64_t kx0 = 0, kx1 = kw;
    while (kx0 < kw && ix0 + kx0 * dw < 0) ++kx0;
    while (kx1 > kx0 && ix0 + (kx1 - 1) * dw >= iw) --kx1;
    for (int64_t c0 = 0; c0 < c; c0 += 16) {
      const auto n = static_cast<uint32_t>(std::min<int64_t>(16, c - c0));
      const auto mask = static_cast<__mmask16>(_bzhi_u32(0xFFFFu, n));
      __m512i acc = _mm512_loadu_si512(P.bias.data() + c0);
      for (int64_t r = 0; r < kh; ++r) {
        const int8_t* xp = xrows[r] + (ix0 + kx0 * dw) * c + c0;
        const int32_t* wp = wrows[r] + kx0 * cpad + c0;
        for (int64_t kx = kx0; kx < kx1; ++kx, xp += dw * c, wp += cpad) {
          const __m128i v = _mm_maskz_loadu_epi8(mask, xp);
          const __m512i d = _mm512_sub_epi32(_mm512_cvtepi8_epi32(v), vxzp);
          acc = _mm512_add_epi32(acc, _mm512_madd_epi16(d, _mm512_loadu_si512(wp)));
        }
      }
      DwStoreAvx512(acc, P.mult.data() + c0, vlo, vhi, vyzp, out + c0, mask);
    }
  }
}

}  // namespace

bool OwnDwQConvAvailable(CpuIsa cap, Int8Kernel kernel) {
  return CpuHasVnni() && ChooseOwnQConvIsa(cap, kernel) == OwnQConvIsa::kVnni;
}

QConvFn MakeOwnDwQConv(const QConvSpec& spec) {
  auto P = std::make_shared<PackedDw>();
  P->s = spec;
  P->s.weights.clear();
  P->s.bias.clear();
  P->s.mult.clear();
  const QConvSpec& s = spec;
  const int64_t c = s.cout, taps = s.kh * s.kw;
  P->cpad = (c + 15) / 16 * 16;
  P->w.assign(static_cast<size_t>(taps * P->cpad), 0);
  for (int64_t ch = 0; ch < c; ++ch) {
    for (int64_t t = 0; t < taps; ++t) {
      const int8_t wv = s.weights[static_cast<size_t>(ch * taps + t)];
      P->w[static_cast<size_t>(t * P->cpad + ch)] = static_cast<uint16_t>(static_cast<int16_t>(wv));
    }
  }
  P->bias.assign(static_cast<size_t>(P->cpad), 0);
  P->mult.assign(static_cast<size_t>(P->cpad), 0.0f);
  std::copy(s.bias.begin(), s.bias.end(), P->bias.begin());
  P->bias_zp = P->bias;
  for (int64_t ch = 0; ch < c; ++ch) {
    int32_t sum = 0;
    for (int64_t t = 0; t < taps; ++t) sum += s.weights[static_cast<size_t>(ch * taps + t)];
    P->bias_zp[static_cast<size_t>(ch)] -= static_cast<int32_t>(s.x_zp) * sum;
  }
  std::copy(s.mult.begin(), s.mult.end(), P->mult.begin());
  P->zp_row.assign(static_cast<size_t>(s.iw * c), s.x_zp);
  int64_t oxa = 0;
  while (oxa < s.ow && oxa * s.sw - s.pl < 0) ++oxa;
  int64_t oxb = oxa;
  while (oxb < s.ow && oxb * s.sw - s.pl + (s.kw - 1) * s.dw < s.iw) ++oxb;
  P->pad_copy = (s.ow - (oxb - oxa)) * 16 >= s.ow;
  if (P->pad_copy) {
    QConvSpec& q = P->padded;
    q = P->s;
    q.pt = q.pl = 0;
    q.ih = std::max(s.ih + s.pt, (s.oh - 1) * s.sh + (s.kh - 1) * s.dh + 1);
    q.iw = std::max(s.iw + s.pl, (s.ow - 1) * s.sw + (s.kw - 1) * s.dw + 1);
  }
  return [P](const int8_t* x, int8_t* y, pthreadpool_t pool) {
    const QConvSpec& s = P->s;
    const int64_t rows = s.batch * s.oh;
    if (!P->pad_copy) {
      ParallelFor(pool, rows, 1, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) DwRowAvx512(*P, s, x, y, r);
      });
      return;
    }
    const QConvSpec& q = P->padded;
    const int64_t c = s.cout, prow = q.iw * c;
    thread_local std::vector<int8_t> buf;
    const auto need = static_cast<size_t>(s.batch * q.ih * prow);
    if (buf.size() < need) buf.resize(need);
    int8_t* xp = buf.data();
    ParallelFor(pool, s.batch * q.ih, 1, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t b = r / q.ih, iy = r % q.ih - s.pt;
        int8_t* d = xp + r * prow;
        if (iy < 0 || iy >= s.ih) {
          std::memset(d, s.x_zp, static_cast<size_t>(prow));
          continue;
        }
        const int64_t left = s.pl * c, run = s.iw * c;
        std::memset(d, s.x_zp, static_cast<size_t>(left));
        std::memcpy(d + left, x + (b * s.ih + iy) * run, static_cast<size_t>(run));
        std::memset(d + left + run, s.x_zp, static_cast<size_t>(prow - left - run));
      }
    });
    ParallelFor(pool, rows, 1, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) DwRowAvx512(*P, q, xp, y, r);
    });
  };
}

}  // namespace kiln::xnn
