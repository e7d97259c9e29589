// The x86 instruction-set extensions Kiln's own kernels dispatch on at run time.
//
// Every build type compiles the tree for the baseline x86-64 ISA, so that a binary starts and
// runs on any x86-64 CPU (XNNPACK dispatches its own kernels the same way). A kernel written
// with AVX2/FMA intrinsics is a function marked KILN_TARGET_AVX2 whose name ends in "Avx2"
// (tests/unit/isa_check.sh checks that no other Kiln function uses ymm/zmm registers), and its
// caller takes it only when CpuHasAvx2() is true, else the portable loop beside it:
//
//   KILN_TARGET_AVX2 int64_t ScaleAvx2(const float* x, float* y, int64_t n);  // returns i done
//   int64_t i = CpuHasAvx2() ? ScaleAvx2(x, y, n) : 0;
//   for (; i < n; ++i) y[i] = ...;                                             // portable tail
//
// AVX-512 kernels (own names: ...Vnni, ...Vbmi) check their own features.
#pragma once

#include <optional>
#include <string_view>

#if defined(__x86_64__) || defined(__i386__)
#define KILN_TARGET_AVX2 __attribute__((target("avx2,fma")))
#else
#define KILN_TARGET_AVX2
#endif

namespace kiln {

// Levels of Kiln's own x86 kernels, each including the ones below it:
//   kPortable    baseline x86-64 loops (SSE2);
//   kAvx2        AVX2 + FMA (+ F16C), 256-bit ymm kernels;
//   kAvx512      AVX-512 F/BW/VL/DQ, 512-bit zmm kernels (on Zen 4 a zmm FMA issues as two
//                256-bit halves: the same FLOP/cycle as ymm with fewer instructions; Zen 5
//                and Intel server cores run it at full width);
//   kAvx512Vnni  AVX-512 VNNI (vpdpbusd) for int8 dot products.
// AVX-VNNI (the VEX form on CPUs without AVX-512, e.g. recent Intel client cores) is reported
// by CpuHasAvxVnni(); an AVX2-level int8 kernel may use it when it is there.
enum class CpuIsa : int { kPortable = 0, kAvx2 = 1, kAvx512 = 2, kAvx512Vnni = 3 };

// "portable", "avx2", "avx512", "avx512vnni".
const char* CpuIsaName(CpuIsa isa);
// The inverse of CpuIsaName; nullopt for anything else ("auto" included: callers map it).
std::optional<CpuIsa> ParseCpuIsa(std::string_view name);

// Which int8 convolution kernel an XNNPACK partition runs (SessionOptions::int8_kernel, config
// key Int8Kernel, kiln --int8-kernel): auto (Kiln's AVX-512 VNNI kernel where the CPU and the
// ISA level allow it, the 7-bit AVX2 kernel for weights in [-64, 64] on AVX2, else XNNPACK's),
// or one forced so that every path runs on one machine: vnni, avx2 (int16 madd, any weights),
// avx2u7 (vpmaddubsw, 7-bit weights; others take avx2), xnnpack (XNNPACK's qc8 kernels and its
// depthwise). A kernel the CPU or the ISA level cannot run falls back to XNNPACK's.
enum class Int8Kernel : int { kAuto = 0, kVnni, kAvx2, kAvx2U7, kXnnpack };
// "auto", "vnni", "avx2", "avx2u7", "xnnpack".
const char* Int8KernelName(Int8Kernel k);
// The inverse of Int8KernelName; nullopt for anything else.
std::optional<Int8Kernel> ParseInt8Kernel(std::string_view name);

// The highest level this CPU has (cpuid; the OS saves zmm state), ignoring any forcing.
CpuIsa DetectedCpuIsa();
bool CpuHasAvxVnni();

// The level kernels of a session run at: the lower of `requested` (the session option / config
// key CpuIsa; nullopt: auto), the detected level and the process-wide cap (the diagnostic
// KILN_CPU_PORTABLE=1, or ForcePortableKernelsForTesting). Forcing a level above what the CPU
// has gives the CPU's level: a kernel never runs on a CPU that lacks its instructions.
CpuIsa EffectiveCpuIsa(std::optional<CpuIsa> requested);

// AVX2 and FMA present (cpuid) and the portable kernels not forced (below, or the diagnostic
// environment variable KILN_CPU_PORTABLE=1). Cheap: a cached flag and a relaxed atomic load.
bool CpuHasAvx2();

// Tests: run the portable loops even on an AVX2 machine (plans built afterwards choose them;
// a kernel decides at run time, so set it before building and running a session).
void ForcePortableKernelsForTesting(bool on);

}  // namespace kiln
