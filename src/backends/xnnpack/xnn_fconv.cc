// Own fp32 convolution / GEMM driver (see xnn_fconv.h): weight packing, the choice against
// XNNPACK's operator, and the run loop over blocks of output pixels x panels of output channels.
#include "backends/xnnpack/xnn_fconv.h"

#include <algorithm>
#include <memory>
#include <vector>

#include "backends/xnnpack/xnn_fconv_tiles.h"
#include "backends/xnnpack/xnn_internal.h"

namespace kiln::xnn {

namespace {

// A-block budget: the rows of one block of tiles (mr * tiles * K floats) are re-read from L2
// for every panel of the block, so they should fit in it next to the panel (Zen 5: 1 MiB L2).
constexpr int64_t kBlockBytes = 384 << 10;
constexpr int64_t kMaxTilesPerBlock = 16;
constexpr int64_t kWholeABytes = int64_t{3} << 20;
// Convs with fewer input channels run row taps (FPacked::row_taps).
constexpr int64_t kRowTapsMaxCin = 8;

// Packed weights live in KilnXnnAllocator's memory (huge-page chunks: a cold plan build faults
// once per 2 MB, as XNNPACK's own packed weights do).
struct XnnFree {
  void operator()(float* p) const {
    const xnn_allocator* a = KilnXnnAllocator();
    a->aligned_deallocate(a->context, p);
  }
};

struct FPacked {
  FConvSpec s;  // without weights, scale and bias
  FConvIsa isa = FConvIsa::kNone;
  int mr = 0, nr = 0;
  int64_t taps = 1, k = 0, npanels = 0;
  bool direct = false;  // 1x1, stride 1, no padding: A rows are the input rows in place
  // Row taps (few input channels: a stem): the tile runs kh taps of kw * cin contiguous floats
  // (a window row of NHWC pixels) instead of kh * kw taps of cin, the same packed weights (their
  // (ky, kx, c) order is the same); window rows crossing the left or right edge are copied
  // with their padding into a per-task scratch row.
  bool row_taps = false;
  bool copy_rows = false;  // input pixels a multiple of 2 KB apart: A rows copied (RunTask)
  int64_t run_taps = 1, run_cin = 0;  // what the tile loops over
  std::unique_ptr<float[], XnnFree> w;  // panel p at panel_off[p]: [k][width(p)]
  std::vector<int64_t> panel_off;       // npanels + 1 offsets
  std::vector<float> bias;              // [npanels * nr], panel p's at p * nr
  std::vector<float> zero;              // cin zeros: the padding taps' row
  std::vector<int64_t> tap_off;         // [taps]: (ky * dh * iw + kx * dw) * ldx
  const FTileFn* tiles = nullptr;       // [mr] of the full-width tile
  const FTileFn* narrow = nullptr;      // [mr] of the half-width tile
  int64_t width(int64_t p) const { return (panel_off[p + 1] - panel_off[p]) / k; }
};

// Fills ptrs [taps][mr] with the A rows of output pixels p0 .. p0 + mr - 1 (pixels past the end
// repeat the last one; their results are not stored). Runs once per tile and block, beside
// mr x K x (panels) FMAs: no divisions past the first pixel, and a pixel whose window is inside
// the image is its base pointer plus the taps' fixed offsets.
// Output pixel p of a conv as (image b, row oy, column ox), walked one pixel at a time without
// divisions (TilePointers, TileRowPointers).
struct PixelAt {
  int64_t b, oy, ox;
  PixelAt(const FConvSpec& s, int64_t p)
      : b(p / (s.oh * s.ow)), oy(p % (s.oh * s.ow) / s.ow), ox(p % s.ow) {}
  void Next(const FConvSpec& s) {
    if (++ox == s.ow) {
      ox = 0;
      if (++oy == s.oh) {
        oy = 0;
        ++b;
      }
    }
  }
};

// Row taps (P.row_taps): ptrs [kh][mr], each a window row of kw * cin floats: in place where
// the row is inside the image, the zero row above or below it, else copied with its padding into
// scratch (kh rows of kw * cin floats per tile row).
void TileRowPointers(const FPacked& P, const float* x, int64_t pixels, int64_t p0,
                     const float** ptrs, float* scratch) {
  const FConvSpec& s = P.s;
  const int64_t row = s.kw * s.cin;
  const int mr = P.mr;
  PixelAt at(s, p0);
  for (int r = 0; r < mr; ++r) {
    if (p0 + r >= pixels) {
      for (int64_t t = 0; t < s.kh; ++t) ptrs[t * mr + r] = ptrs[t * mr + r - 1];
      continue;
    }
    const float* image = x + at.b * s.ih * s.iw * s.cin;
    const int64_t iy0 = at.oy * s.sh - s.pt, ix0 = at.ox * s.sw - s.pl;
    const bool x_in = ix0 >= 0 && ix0 + s.kw <= s.iw;
    for (int64_t ky = 0; ky < s.kh; ++ky) {
      const int64_t iy = iy0 + ky * s.dh;
      if (iy < 0 || iy >= s.ih) {
        ptrs[ky * mr + r] = P.zero.data();
      } else if (x_in) {
        ptrs[ky * mr + r] = image + (iy * s.iw + ix0) * s.cin;
      } else {
        float* dst = scratch + (r * s.kh + ky) * row;
        for (int64_t kx = 0; kx < s.kw; ++kx) {
          const int64_t ix = ix0 + kx;
          const bool in = ix >= 0 && ix < s.iw;
          for (int64_t c = 0; c < s.cin; ++c)
            dst[kx * s.cin + c] = in ? image[(iy * s.iw + ix) * s.cin + c] : 0.0f;
        }
        ptrs[ky * mr + r] = dst;
      }
    }
    at.Next(s);
  }
}

void TilePointers(const FPacked& P, const float* x, int64_t pixels, int64_t p0,
                  const float** ptrs) {
  const FConvSpec& s = P.s;
  const int mr = P.mr;
  if (P.direct) {
    for (int r = 0; r < mr; ++r) ptrs[r] = x + std::min(p0 + r, pixels - 1) * s.ldx;
    return;
  }
  const int64_t ekh = (s.kh - 1) * s.dh, ekw = (s.kw - 1) * s.dw;
  PixelAt at(s, p0);
  for (int r = 0; r < mr; ++r) {
    if (p0 + r >= pixels) {
      for (int64_t t = 0; t < P.taps; ++t) ptrs[t * mr + r] = ptrs[t * mr + r - 1];
      continue;
    }
    const float* image = x + at.b * s.ih * s.iw * s.ldx;
    const int64_t iy0 = at.oy * s.sh - s.pt, ix0 = at.ox * s.sw - s.pl;
    if (iy0 >= 0 && iy0 + ekh < s.ih && ix0 >= 0 && ix0 + ekw < s.iw) {
      const float* base = image + (iy0 * s.iw + ix0) * s.ldx;
      for (int64_t t = 0; t < P.taps; ++t) ptrs[t * mr + r] = base + P.tap_off[t];
    } else {
      int64_t t = 0;
      for (int64_t ky = 0; ky < s.kh; ++ky) {
        const int64_t iy = iy0 + ky * s.dh;
        const bool y_in = iy >= 0 && iy < s.ih;
        for (int64_t kx = 0; kx < s.kw; ++kx, ++t) {
          const int64_t ix = ix0 + kx * s.dw;
          ptrs[t * mr + r] =
              y_in && ix >= 0 && ix < s.iw ? image + (iy * s.iw + ix) * s.ldx : P.zero.data();
        }
      }
    }
    at.Next(s);
  }
}

struct RunCtx {
  const FPacked* P;
  const float* x;
  const float* res;
  float* y;
  int64_t pixels, tiles_per_block, nblocks, groups;
};

void RunTask(void* arg, size_t task) {
  const auto& c = *static_cast<const RunCtx*>(arg);
  const FPacked& P = *c.P;
  const FConvSpec& s = P.s;
  const int64_t blk = static_cast<int64_t>(task) / c.groups;
  const int64_t g = static_cast<int64_t>(task) % c.groups;
  const int64_t pan0 = g * P.npanels / c.groups, pan1 = (g + 1) * P.npanels / c.groups;
  const int64_t mr = P.mr;
  const int64_t p_begin = blk * c.tiles_per_block * mr;
  const int64_t p_end = std::min(c.pixels, p_begin + c.tiles_per_block * mr);
  const int64_t ntiles = (p_end - p_begin + mr - 1) / mr;
  thread_local std::vector<const float*> ptrs;
  thread_local std::vector<float> scratch;  // row taps: the edge window rows
  const int64_t taps = P.run_taps;
  const auto need = static_cast<size_t>(ntiles * taps * mr);
  if (ptrs.size() < need) ptrs.resize(need);
  if (P.row_taps) {
    const int64_t per_tile = mr * s.kh * s.kw * s.cin;
    if (scratch.size() < static_cast<size_t>(ntiles * per_tile))
      scratch.resize(static_cast<size_t>(ntiles * per_tile));
    for (int64_t t = 0; t < ntiles; ++t)
      TileRowPointers(P, c.x, c.pixels, p_begin + t * mr, ptrs.data() + t * taps * mr,
                      scratch.data() + t * per_tile);
  } else {
    for (int64_t t = 0; t < ntiles; ++t)
      TilePointers(P, c.x, c.pixels, p_begin + t * mr, ptrs.data() + t * taps * mr);
  }
  if (P.copy_rows) {
    // Pixels a multiple of 2 KB apart (cin = 512, 1024, 2048) put a tile's 12 rows of a tap
    // into one or two L1 sets, where they and the streaming weights evict each other. Copied
    // once per block at a stride of cin + 16 floats (consecutive sets), the rows are then read
    // by every panel.
    thread_local std::vector<float> rows;
    const int64_t ld = s.cin + 16, n = ntiles * taps * mr;
    if (rows.size() < static_cast<size_t>(n * ld)) rows.resize(static_cast<size_t>(n * ld));
    for (int64_t i = 0; i < n; ++i) {
      float* dst = rows.data() + i * ld;
      std::copy(ptrs[static_cast<size_t>(i)], ptrs[static_cast<size_t>(i)] + s.cin, dst);
      ptrs[static_cast<size_t>(i)] = dst;
    }
  }
  for (int64_t pan = pan0; pan < pan1; ++pan) {
    // The panel after this one (in this task, else this task's first again, which the next
    // block of a multi-block run reads first), spread over this panel's tiles.
    const int64_t next = pan + 1 < pan1 ? pan + 1 : (c.nblocks > 1 ? pan0 : -1);
    const float* pf = next >= 0 && next != pan ? P.w.get() + P.panel_off[static_cast<size_t>(next)] : nullptr;
    const int64_t pf_ld = next >= 0 ? P.width(next) : 0;
    const int64_t pf_share = (P.k + ntiles - 1) / ntiles;
    const int64_t width = P.width(pan);
    const int nc = static_cast<int>(std::min<int64_t>(width, s.cout - pan * P.nr));
    const FTileFn* table = width == P.nr ? P.tiles : P.narrow;
    const float* w = P.w.get() + P.panel_off[static_cast<size_t>(pan)];
    const float* bias = P.bias.data() + pan * P.nr;
    for (int64_t t = 0; t < ntiles; ++t) {
      const int64_t p0 = p_begin + t * mr;
      const int rows = static_cast<int>(std::min<int64_t>(mr, p_end - p0));
      const int64_t at = p0 * s.ldy + pan * P.nr;
      const int64_t pf_row0 = std::min(P.k, t * pf_share);
      table[rows](ptrs.data() + t * taps * mr, taps, P.run_cin, w, bias,
                  c.res != nullptr ? c.res + at : nullptr, c.y + at, s.ldy, nc, s.lo, s.hi,
                  pf != nullptr ? pf + pf_row0 * pf_ld : nullptr,
                  pf != nullptr ? std::min(pf_share, P.k - pf_row0) : 0, pf_ld);
      if (!s.silu) EpilogueRows(s, c.y + at, rows, s.ldy, nc, P.isa);  // SiLU: in the tile
    }
  }
}

}  // namespace

FConvIsa FConvIsaFor(CpuIsa isa) {
  if (isa >= CpuIsa::kAvx512) return FConvIsa::kAvx512;
  if (isa == CpuIsa::kAvx2) return FConvIsa::kAvx2;
  return FConvIsa::kNone;
}

// Measured with XNNPACK 2022's f32 igemm (its AVX-512 7x16 kernel) on the Zen 5 dev machine, one
// thread, GFLOP/s own / XNNPACK, best of short runs (bench/fconv_bench.cc; the zmm FMA peak there
// is ~265 GFLOP/s, bench/peak_flops.cc):
//   1x1 (56..7 px, 64..2048 ch), 1x1 stride 2, 3x3 s1 and s2 (resnet50): 1.15-1.35x
//   (own ~230-260, XNNPACK ~185-205);
//   7x7 s2 stem (3 -> 64 channels, K = 147): 0.84-1.28x, mostly above 1;
//   3x3 with 64/96 -> 32 channels (rrdb_x4's shapes, 64 px images: stable): 1.23-1.31x;
//   3x3 with 16 output channels (rrdb_x4): 0.89-0.98x (only the narrow one-vector tile runs);
//   3x3 from 3 input channels (K = 27, rrdb_x4's first conv): 0.8x; 3 output channels: 0.4-0.9x.
// Images of 128 px and more swing 0.7-4x from run to run for both (the machine is shared), so the
// rule is drawn from the stable sizes: the own kernel runs where the channels fill its tiles,
// K = kh * kw * cin >= 64, cout at least three quarters of a panel and at most a quarter of the
// packed panels' width padding (mobilenet_v2 / efficientnet_b0 projections, 1x1: 96/144 -> 24
// 1.1-1.25x, 144 -> 40 1.1-1.25x, 240 -> 80 1.12-1.17x, 192 -> 32 1.26-1.35x; 32 -> 16 at 112 px
// 0.84-1.0x, so 16 channels stay with XNNPACK). The AVX2 tile reaches the ymm FMA ceiling (~120 of ~130 GFLOP/s) on the same
// shapes (0.6x of XNNPACK's zmm kernel here, where XNNPACK dispatches to AVX-512 by itself) and
// follows the same rule with its own panel width.
bool UseOwnFConv(const FConvSpec& s, FConvIsa isa) {
  if (isa == FConvIsa::kNone) return false;
  const int64_t nr = isa == FConvIsa::kAvx512 ? kFNrAvx512 : kFNrAvx2;
  // The panels as packed: full ones, and a last of NR / 2 when at most that many are left.
  const int64_t rem = s.cout % nr;
  const int64_t padded = s.cout / nr * nr + (rem == 0 ? 0 : rem <= nr / 2 ? nr / 2 : nr);
  return s.kh * s.kw * s.cin >= 64 && s.cout * 4 >= nr * 3 && s.cout * 4 >= padded * 3;
}

bool UseOwnFc(int64_t rows, int64_t k, int64_t n, FConvIsa isa) {
  FConvSpec s;
  s.cin = k;
  s.cout = n;
  return rows >= 1 && UseOwnFConv(s, isa);
}

namespace {

std::shared_ptr<FPacked> PackFConv(const FConvSpec& spec, FConvIsa isa) {
  auto P = std::make_shared<FPacked>();
  P->s = spec;
  FConvSpec& s = P->s;
  s.weights = s.scale = s.bias = nullptr;
  if (s.ldx == 0) s.ldx = s.cin;
  if (s.ldy == 0) s.ldy = s.cout;
  P->isa = isa;
  if (isa == FConvIsa::kAvx512) {
    P->mr = kFMrAvx512;
    P->nr = kFNrAvx512;
    P->tiles = s.silu ? kFTilesSiluAvx512 : kFTilesAvx512;
    P->narrow = s.silu ? kFTilesNarrowSiluAvx512 : kFTilesNarrowAvx512;
  } else {
    P->mr = kFMrAvx2;
    P->nr = kFNrAvx2;
    P->tiles = s.silu ? kFTilesSiluAvx2 : kFTilesAvx2;
    P->narrow = s.silu ? kFTilesNarrowSiluAvx2 : kFTilesNarrowAvx2;
  }
  P->taps = s.kh * s.kw;
  P->k = P->taps * s.cin;
  P->direct = P->taps == 1 && s.sh == 1 && s.sw == 1 && s.pt == 0 && s.pl == 0 && s.ih == s.oh &&
              s.iw == s.ow;
  // Row taps where the per-tap loop would run a handful of channels (stems: 3 -> 64, 7x7).
  P->row_taps = s.kw > 1 && s.dw == 1 && s.ldx == s.cin && s.cin < kRowTapsMaxCin;
  P->run_taps = P->row_taps ? s.kh : P->taps;
  P->run_cin = P->row_taps ? s.kw * s.cin : s.cin;
  P->copy_rows = !P->row_taps && s.ldx % 512 == 0;
  const int64_t nr = P->nr, k = P->k, taps = P->taps, cin = s.cin, cout = s.cout;
  P->npanels = (cout + nr - 1) / nr;
  P->panel_off.assign(static_cast<size_t>(P->npanels + 1), 0);
  for (int64_t p = 0; p < P->npanels; ++p) {
    const int64_t left = cout - p * nr;
    const int64_t width = left <= nr / 2 ? nr / 2 : nr;
    P->panel_off[static_cast<size_t>(p + 1)] = P->panel_off[static_cast<size_t>(p)] + k * width;
  }
  // w[o][c][tap] (ONNX; [c][o] when weights_kn) * scale[o] -> panel[(tap * cin + c) * width + j],
  // o = p * nr + j; zero past cout. The source is read in order (a panel, at most a few hundred
  // KB, takes the scattered writes in L2).
  const xnn_allocator* alloc = KilnXnnAllocator();
  const auto bytes = static_cast<size_t>(P->panel_off.back()) * sizeof(float);
  P->w.reset(static_cast<float*>(alloc->aligned_allocate(alloc->context, 64, bytes)));
  const float* src = spec.weights;
  for (int64_t p = 0; p < P->npanels; ++p) {
    const int64_t width = P->width(p), o0 = p * nr, valid = std::min(width, cout - o0);
    float* dst = P->w.get() + P->panel_off[static_cast<size_t>(p)];
    if (valid < width) std::fill(dst, dst + k * width, 0.0f);
    if (spec.weights_kn) {  // [cin][cout], kh = kw = 1
      for (int64_t c = 0; c < cin; ++c) {
        for (int64_t j = 0; j < valid; ++j) {
          const float sc = spec.scale != nullptr ? spec.scale[o0 + j] : 1.0f;
          dst[c * width + j] = src[c * cout + o0 + j] * sc;
        }
      }
      continue;
    }
    for (int64_t j = 0; j < valid; ++j) {
      const float* row = src + (o0 + j) * k;  // [cin][taps]
      const float sc = spec.scale != nullptr ? spec.scale[o0 + j] : 1.0f;
      for (int64_t c = 0; c < cin; ++c)
        for (int64_t t = 0; t < taps; ++t) dst[(t * cin + c) * width + j] = row[c * taps + t] * sc;
    }
  }
  P->bias.assign(static_cast<size_t>(P->npanels * nr), 0.0f);
  if (spec.bias != nullptr) std::copy(spec.bias, spec.bias + cout, P->bias.begin());
  P->zero.assign(static_cast<size_t>(P->run_cin), 0.0f);
  for (int64_t ky = 0; ky < s.kh; ++ky)
    for (int64_t kx = 0; kx < s.kw; ++kx)
      P->tap_off.push_back((ky * s.dh * s.iw + kx * s.dw) * s.ldx);
  return P;
}

}  // namespace

FConvRowsFn MakeOwnFConvRows(const FConvSpec& spec, FConvIsa isa) {
  FConvSpec s1 = spec;
  s1.batch = s1.ih = s1.iw = s1.oh = s1.ow = 1;
  s1.kh = s1.kw = 1;
  std::shared_ptr<FPacked> P = PackFConv(s1, isa);
  P->direct = true;
  return [P](const float* x, float* y, int64_t pixels) {
    // Pixels in blocks of whole tiles whose A rows stay in L2 (the weights of an expansion are
    // small); TilePointers reads the pixel count from the geometry, so each call sets it.
    const FPacked& p = *P;
    RunCtx c{P.get(), x, nullptr, y, pixels, 0, 0, 1};
    const int64_t ntiles = (pixels + p.mr - 1) / p.mr;
    c.tiles_per_block = std::clamp<int64_t>(kBlockBytes / (p.mr * p.k * 4), 1, kMaxTilesPerBlock);
    c.nblocks = (ntiles + c.tiles_per_block - 1) / c.tiles_per_block;
    for (int64_t t = 0; t < c.nblocks; ++t) RunTask(&c, static_cast<size_t>(t));
  };
}

FConvFn MakeOwnFConv(const FConvSpec& spec, FConvIsa isa) {
  std::shared_ptr<FPacked> P = PackFConv(spec, isa);
  return [P](const float* x, const float* res, float* y, pthreadpool_t pool) {
    const FConvSpec& s = P->s;
    RunCtx c{P.get(), x, res, y, s.batch * s.oh * s.ow, 0, 0, 1};
    const int64_t ntiles = (c.pixels + P->mr - 1) / P->mr;
    c.tiles_per_block = std::clamp<int64_t>(kBlockBytes / (P->mr * P->k * 4), 1, kMaxTilesPerBlock);
    {
      // Weight-heavy convolutions (late layers: few pixels, many channels): every block streams
      // all the packed weights, so when the weights outweigh the whole A and that A fits in the
      // outer caches, one block (weights read once, A re-read per panel) moves less.
      const int64_t a_all = c.pixels * P->k * 4;
      const int64_t w_all = P->panel_off.back() * 4;
      if (w_all > a_all && a_all <= kWholeABytes) c.tiles_per_block = ntiles;
    }
    c.nblocks = (ntiles + c.tiles_per_block - 1) / c.tiles_per_block;
    const int64_t threads = pool ? static_cast<int64_t>(pthreadpool_get_threads_count(pool)) : 1;
    if (threads > 1) {
      // At least ~6 tasks per thread (the pool hands them out dynamically): smaller pixel
      // blocks first, then the panels split into groups (late layers, GEMMs with few rows).
      const int64_t want = 6 * threads;
      if (c.nblocks < want) {
        c.tiles_per_block = std::max<int64_t>(1, (ntiles + want - 1) / want);
        c.nblocks = (ntiles + c.tiles_per_block - 1) / c.tiles_per_block;
      }
      if (c.nblocks < want) c.groups = std::min(P->npanels, (want + c.nblocks - 1) / c.nblocks);
    }
    const int64_t tasks = c.nblocks * c.groups;
    if (threads <= 1 || tasks == 1) {
      for (int64_t t = 0; t < tasks; ++t) RunTask(&c, static_cast<size_t>(t));
      return;
    }
    pthreadpool_parallelize_1d(pool, RunTask, &c, static_cast<size_t>(tasks), 0);
  };
}

}  // namespace kiln::xnn
