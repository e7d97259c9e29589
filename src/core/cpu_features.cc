#include "core/cpu_features.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace kiln {

namespace {

std::atomic<bool> g_force_portable{false};

bool DetectAvx2() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();  // may run before libgcc's own constructor (a static initializer)
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

CpuIsa DetectIsa() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (!DetectAvx2()) return CpuIsa::kPortable;
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  if (!avx512) return CpuIsa::kAvx2;
  return __builtin_cpu_supports("avx512vnni") ? CpuIsa::kAvx512Vnni : CpuIsa::kAvx512;
#else
  return CpuIsa::kPortable;
#endif
}

}  // namespace

const char* CpuIsaName(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kPortable: return "portable";
    case CpuIsa::kAvx2: return "avx2";
    case CpuIsa::kAvx512: return "avx512";
    case CpuIsa::kAvx512Vnni: return "avx512vnni";
  }
  return "?";
}

std::optional<CpuIsa> ParseCpuIsa(std::string_view name) {
  for (CpuIsa i : {CpuIsa::kPortable, CpuIsa::kAvx2, CpuIsa::kAvx512, CpuIsa::kAvx512Vnni}) {
    if (name == CpuIsaName(i)) return i;
  }
  return std::nullopt;
}

const char* Int8KernelName(Int8Kernel k) {
  switch (k) {
    case Int8Kernel::kAuto: return "auto";
    case Int8Kernel::kVnni: return "vnni";
    case Int8Kernel::kAvx2: return "avx2";
    case Int8Kernel::kAvx2U7: return "avx2u7";
    case Int8Kernel::kXnnpack: return "xnnpack";
  }
  return "?";
}

std::optional<Int8Kernel> ParseInt8Kernel(std::string_view name) {
  for (Int8Kernel k : {Int8Kernel::kAuto, Int8Kernel::kVnni, Int8Kernel::kAvx2,
                       Int8Kernel::kAvx2U7, Int8Kernel::kXnnpack}) {
    if (name == Int8KernelName(k)) return k;
  }
  return std::nullopt;
}

CpuIsa DetectedCpuIsa() {
  static const CpuIsa isa = DetectIsa();
  return isa;
}

bool CpuHasAvxVnni() {
#if defined(__x86_64__) || defined(__i386__)
  // cpuid leaf 7 subleaf 1, eax bit 4 (libgcc 12's __builtin_cpu_supports misses it).
  static const bool has = [] {
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!DetectAvx2() || !__get_cpuid_count(7, 1, &a, &b, &c, &d)) return false;
    return (a & (1u << 4)) != 0;
  }();
  return has;
#else
  return false;
#endif
}

CpuIsa EffectiveCpuIsa(std::optional<CpuIsa> requested) {
  CpuIsa isa = CpuHasAvx2() ? DetectedCpuIsa() : CpuIsa::kPortable;
  if (requested && static_cast<int>(*requested) < static_cast<int>(isa)) isa = *requested;
  return isa;
}

bool CpuHasAvx2() {
  // KILN_CPU_PORTABLE=1 (diagnostics, the unit_portable test): as if the CPU had no AVX2.
  static const bool has = [] {
    const char* e = std::getenv("KILN_CPU_PORTABLE");
    return DetectAvx2() && !(e != nullptr && std::strcmp(e, "1") == 0);
  }();
  return has && !g_force_portable.load(std::memory_order_relaxed);
}

void ForcePortableKernelsForTesting(bool on) { g_force_portable.store(on); }

}  // namespace kiln
