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

#if defined(__x86_64__) || defined(__i386__)
#define KILN_TARGET_AVX2 __attribute__((target("avx2,fma")))
#else
#define KILN_TARGET_AVX2
#endif

namespace kiln {

// AVX2 and FMA present (cpuid) and the portable kernels not forced (below, or the diagnostic
// environment variable KILN_CPU_PORTABLE=1). Cheap: a cached flag and a relaxed atomic load.
bool CpuHasAvx2();

// Tests: run the portable loops even on an AVX2 machine (plans built afterwards choose them;
// a kernel decides at run time, so set it before building and running a session).
void ForcePortableKernelsForTesting(bool on);

}  // namespace kiln
