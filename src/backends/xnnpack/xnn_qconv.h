// Own int8 convolution (dense, group 1) for the XNNPACK backend's QLinearConv: im2col of a block
// of output pixels into a packed buffer + a register-blocked GEMM over weights packed at compile
// time; s8 activations x s8 weights, int32 accumulation, the reference's requantization
// ((float)acc * (x_scale * w_scale / y_scale), round half to even, + zero point, saturate, fused
// clamp). AVX-512 VNNI (u8 x s8 dot products, activations + 128, corrected by a per-channel
// weight sum), AVX2 with 7-bit weights (the same u8 x s8 products by vpmaddubsw, exact only when
// every weight is in [-64, 64], then vpmaddwd by ones to int32) or AVX2 (int16 madd), see
// ChooseOwnQConvIsa / ChooseOwnQConvIsaFor. Also an AVX-512 depthwise loop.
#pragma once

#include <cstdint>
#include <functional>

#include "core/cpu_features.h"
#include <memory>
#include <span>
#include <vector>

#include <pthreadpool.h>

namespace kiln::xnn {

struct QConvSpec {
  int64_t batch = 1, ih = 0, iw = 0, cin = 0, oh = 0, ow = 0, cout = 0;
  int64_t kh = 1, kw = 1, sh = 1, sw = 1, dh = 1, dw = 1, pt = 0, pl = 0;
  int8_t x_zp = 0, y_zp = 0, lo = -128, hi = 127;  // int8 storage values
  std::vector<int8_t> weights;  // ONNX order [cout][cin][kh][kw], storage values
  std::vector<int32_t> bias;    // [cout]
  std::vector<float> mult;      // [cout]: x_scale * w_scale / y_scale (float arithmetic)
};

// Runs y (NHWC int8) = conv(x (NHWC int8)).
using QConvFn = std::function<void(const int8_t* x, int8_t* y, pthreadpool_t pool)>;

// kAvx2: int16 madd, any weights. kAvx2U7: vpmaddubsw, weights in [-64, 64] only.
enum class OwnQConvIsa { kNone, kAvx2, kVnni, kAvx2U7 };

// Which own kernel runs dense int8 convs, without looking at the weights, for the session's
// choice `kernel` (SessionOptions::int8_kernel): kXnnpack: none (XNNPACK's qc8); kAvx2: the
// int16 AVX2 kernel; kAvx2U7: the 7-bit-weight AVX2 kernel (which MakeOwnQConv turns into the
// int16 one for weights that do not fit); kAuto / kVnni: AVX-512 VNNI when the CPU has it, else
// none (measured on this project's AVX-512 dev machine, the int16 AVX2 kernel is not faster than
// XNNPACK's qc8 there, so XNNPACK keeps AVX2-only machines unless forced or the weights fit 7
// bits, see ChooseOwnQConvIsaFor).
// `cap` is the session's ISA level (SessionOptions::isa / CpuIsa, already capped by the CPU):
// below kAvx2 no own kernel runs, below kAvx512Vnni not the VNNI one (the AVX2 rules apply).
OwnQConvIsa ChooseOwnQConvIsa(CpuIsa cap = DetectedCpuIsa(), Int8Kernel kernel = Int8Kernel::kAuto);

// Whether every weight is in [-64, 64]: `kiln quantize --weight-bits 7` writes [-64, 63], ONNX
// Runtime's reduce_range [-64, 64]; a vpmaddubsw pair sum of u8 activations by such weights is
// within 2 * 255 * 64 = 32640, so it never saturates.
bool WeightsFit7Bit(std::span<const int8_t> weights);
bool WeightsFit7Bit(const QConvSpec& s);

// ChooseOwnQConvIsa for these weights (in any order): kAuto gives AVX-512 VNNI when the CPU has
// it, else kAvx2U7 when they fit WeightsFit7Bit, else none; kAvx2U7 gives kAvx2U7 when they fit
// and kAvx2 when not; kVnni, kAvx2 and kXnnpack as ChooseOwnQConvIsa.
OwnQConvIsa ChooseOwnQConvIsaFor(std::span<const int8_t> weights, CpuIsa cap = DetectedCpuIsa(),
                                 Int8Kernel kernel = Int8Kernel::kAuto);
OwnQConvIsa ChooseOwnQConvIsaFor(const QConvSpec& s, CpuIsa cap = DetectedCpuIsa(),
                                 Int8Kernel kernel = Int8Kernel::kAuto);

// Packs the weights once for `isa` (not kNone; kAvx2U7 with weights outside [-64, 64] packs the
// int16 kAvx2 kernel instead); the returned function runs the convolution.
QConvFn MakeOwnQConv(const QConvSpec& spec, OwnQConvIsa isa);

// Depthwise (group = input = output channels) with AVX-512BW masked loads, 16 channels per
// vector: whether it runs (an AVX-512 VNNI CPU and ChooseOwnQConvIsa(cap, kernel) == kVnni), and
// the function (spec.weights [c][1][kh][kw]; cin == cout; kh <= 32).
bool OwnDwQConvAvailable(CpuIsa cap = DetectedCpuIsa(), Int8Kernel kernel = Int8Kernel::kAuto);
QConvFn MakeOwnDwQConv(const QConvSpec& spec);

}  // namespace kiln::xnn
