// Own fp32 convolution (dense, group 1) and fully connected GEMM for the XNNPACK backend, NHWC.
//
// y[p][o] = clamp(bias[o] + sum_{tap, c} x[pixel(p, tap)][c] * w[o][c][tap], lo, hi), float32
// products accumulated in float32 (one FMA chain per output, taps in kernel order, channels in
// order), padding taps reading a row of zeros.
//
// Weights are packed once (MakeOwnFConv) into panels of NR output channels, each [K][NR] with
// K = kh * kw * cin in (tap, channel) order, zero-padded to NR. Each run splits the output pixels
// into blocks (sized so that a block's input rows stay in L2 while every panel passes over them;
// with a pool, into at least ~6 tasks per thread, splitting the panels too when pixels are few).
// A block's tiles of MR pixels get their A rows as pointers to input pixels (an indirection
// rebuilt per block in a thread-local buffer: a 1x1 stride-1 conv or a GEMM reads its input rows
// in place, padding taps point to a zero row); the register tile holds MR x NR float32
// accumulators; the epilogue adds an optional residual (a fused Add), clamps and stores (masked
// for the last panel's channels).
//   AVX-512 (zmm): MR 12 x NR 32 (24 accumulators, one broadcast per row and k, 2 weight loads);
//   AVX2 + FMA (ymm): MR 6 x NR 16 (12 accumulators).
// A last panel of at most NR/2 channels is packed NR/2 wide and runs the one-vector tile.
//
//   FConvSpec s = ...;                      // geometry, weights [cout][cin][kh][kw], bias
//                                           // (packed into memory of KilnXnnAllocator)
//   FConvFn run = MakeOwnFConv(s, FConvIsa::kAvx512);
//   run(x_nhwc, /*res=*/nullptr, y_nhwc, pool);
#pragma once

#include <pthreadpool.h>

#include <cmath>
#include <cstdint>
#include <functional>

#include "core/cpu_features.h"

namespace kiln::xnn {

struct FConvSpec {
  int64_t batch = 1, ih = 1, iw = 1, cin = 0, oh = 1, ow = 1, cout = 0;
  int64_t kh = 1, kw = 1, sh = 1, sw = 1, dh = 1, dw = 1, pt = 0, pl = 0;
  // Row stride of the input and output in floats (a GEMM's lda / ldc); 0: cin / cout.
  int64_t ldx = 0, ldy = 0;
  float lo = -INFINITY, hi = INFINITY;
  // SiLU (v * sigmoid(v)) after the clamp, applied to each tile of output right after it is
  // stored (a fused Conv + SiLU: no pass of its own over the activation).
  bool silu = false;
  // LeakyRelu (v < 0 ? alpha * v : v) after the clamp, the same way (NaN: none; not with silu).
  float leaky = NAN;
  // Threads the session runs with (Winograd sizes its blocks so that each has work).
  int threads = 1;
  // Read by MakeOwnFConv only (the caller keeps them alive until it returns):
  // weights [cout][cin][kh][kw] (ONNX order; a GEMM: [cout][cin]), or [cin][cout] when
  // weights_kn (a MatMul's B; kh = kw = 1); times scale[o] when scale is not nullptr (a folded
  // BatchNormalization); bias [cout] (nullptr: zeros).
  const float* weights = nullptr;
  bool weights_kn = false;
  const float* scale = nullptr;
  const float* bias = nullptr;
};

// y = conv(x) (+ res, a value of y's shape, when not nullptr: a fused residual Add before the
// clamp).
using FConvFn = std::function<void(const float* x, const float* res, float* y, pthreadpool_t pool)>;

enum class FConvIsa { kNone, kAvx2, kAvx512 };

// The kernel for a session's ISA level: kAvx512 and up -> zmm, kAvx2 -> ymm, portable -> none
// (XNNPACK's operator).
FConvIsa FConvIsaFor(CpuIsa isa);

// Whether the own kernel is used for this conv shape at `isa` (the rule measured against
// XNNPACK's f32 igemm on this project's Zen 5 machine, see xnn_fconv.cc), or XNNPACK's operator.
bool UseOwnFConv(const FConvSpec& s, FConvIsa isa);
// The same for a fully connected layer (GEMM with constant weights) of `rows` x k x n.
bool UseOwnFc(int64_t rows, int64_t k, int64_t n, FConvIsa isa);

// Packs the weights for `isa` (not kNone); the returned function runs the convolution.
FConvFn MakeOwnFConv(const FConvSpec& spec, FConvIsa isa);

// Winograd F(2x2, 3x3) (xnn_fwino.cc): 3x3, stride 1, dilation 1 convs with at least
// kWinogradMinChannels input and output channels, kWinogradMinPixels output pixels and an input
// of at most kWinogradMaxInputBytes per image, on the own tiles. Measured on the Zen 5 dev
// machine, 1 thread, per conv: resnet50's 56x56x64 3x3 1.48x faster than the direct kernel,
// 28x28x128 1.3x, 14x14x256 1.2x; rrdb_x4's 128x128 body (64..192 -> 32/64 channels) 1.2x; but
// 0.85x on its 256x256 and 512x512 x 64 upsampling convs, whose 16-64 MB inputs leave the last
// level cache (the 4x4 patches overlap, so input rows are read twice) and 7x7 maps (layer4:
// padded 4x4 tiles waste a third).
inline constexpr int64_t kWinogradMinChannels = 32;
inline constexpr int64_t kWinogradMinPixels = 144;
inline constexpr int64_t kWinogradMaxInputBytes = int64_t{8} << 20;
// F(4x4, 3x3) where both output sides are at least this (smaller maps waste more of the 4x4
// tiles than the fewer multiplies save: 14x14 measured even with F(2x2)).
inline constexpr int64_t kWinogradF4MinSide = 16;
// The whole-image mode's V and M (see xnn_fwino.cc) at most this many bytes.
inline constexpr int64_t kWinogradWholeBytes = int64_t{6} << 20;
bool UseWinograd(const FConvSpec& s, FConvIsa isa);
// How a Winograd conv splits its 2x2 tiles: blocks of `rows` GEMM rows whose V and M stay in
// L2, one block per task; or `whole`: every tile in one block, run in three parallel phases
// (input transforms, the 16 GEMMs, output transforms), so that each transformed weight matrix is
// read once per run (small images with many channels, where the weights outweigh the
// activations: resnet50's 14x14x256 convs).
struct WinogradBlocking {
  int tile = 2;  // m of F(m x m, 3x3): 2 or 4
  int64_t rows = 0, blocks = 0;
  bool whole = false;
};
WinogradBlocking WinogradBlockingFor(const FConvSpec& s, FConvIsa isa);
// The same contract as MakeOwnFConv (weights [cout][cin][3][3], scale, bias, residual, clamp).
FConvFn MakeWinogradFConv(const FConvSpec& spec, FConvIsa isa);

// y[i] = y[i] * sigmoid(y[i]) for i < n, in place, at `isa` (kNone: scalar); the SiLU loop of
// xnn_ops_elementwise.cc, called by the own kernels' epilogues.
void SiluInPlace(float* y, int64_t n, FConvIsa isa);
// The same on rows [0, rows) x [0, n) of y, rows ld apart (a register tile's output).
void SiluRows(float* y, int64_t rows, int64_t ld, int64_t n, FConvIsa isa);
// The epilogue activation of spec (SiLU or LeakyRelu; nothing when it has none) on rows
// [0, rows) x [0, n) of y, rows ld apart.
void EpilogueRows(const FConvSpec& spec, float* y, int64_t rows, int64_t ld, int64_t n,
                  FConvIsa isa);

// Depthwise (group = cin = cout) with more than 25 taps (xnn_fdw.cc: XNNPACK's unipass depthwise
// kernels stop at 25): weights [c][1][kh][kw], scale, bias, clamp; no residual.
// With a fused SiLU (s.silu), every depthwise kernel size (XNNPACK's operator cannot fuse it;
// the own loop measured 0.7-1.3x of XNNPACK's 3x3/5x5 kernels, bench/fconv_bench.cc).
bool UseOwnDepthwise(const FConvSpec& s, int64_t group, FConvIsa isa);
FConvFn MakeOwnDepthwise(const FConvSpec& spec, FConvIsa isa);

// The depthwise geometries with a fixed-size row loop: 3x3 and 5x5, stride 1 or 2, dilation 1.
bool DepthwiseRowsFixed(const FConvSpec& s);
// One output row (ow x c floats at out) of such a depthwise conv from its kh input rows (iw x c
// floats each; nullptr for a row above or below the image), clamp and SiLU as spec says; no
// threads (the fused expand + depthwise step runs rows on its own tasks).
using DwRowFn = std::function<void(const float* const* in_rows, float* out)>;
DwRowFn MakeOwnDepthwiseRow(const FConvSpec& spec, FConvIsa isa);

// A 1x1 stride-1 unpadded conv (spec: kh = kw = 1) over `pixels` rows of x into y, on the
// calling thread (MakeOwnFConv's kernel and epilogue; spec's geometry only sizes nothing here).
using FConvRowsFn = std::function<void(const float* x, float* y, int64_t pixels)>;
FConvRowsFn MakeOwnFConvRows(const FConvSpec& spec, FConvIsa isa);

}  // namespace kiln::xnn
