#include "core/cpu_features.h"

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

}  // namespace

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
