// The fp32 FMA roofline of one core (src/core/peak_flops.h: register-only FMA chains, no
// loads), zmm and ymm: the peak quoted for the own conv kernels and the one `kiln bench
// --profile` divides by for its %peak column.
//
//   ninja -C build kiln_peak_flops && build/kiln_peak_flops
#include <cstdio>

#include "core/cpu_features.h"
#include "core/peak_flops.h"

int main() {
  const kiln::CpuIsa isa = kiln::DetectedCpuIsa();
  if (isa >= kiln::CpuIsa::kAvx2) {
    std::printf("ymm FMA peak: %.1f GFLOP/s (1 thread)\n",
                kiln::MeasurePeakGflops(kiln::CpuIsa::kAvx2, 1.0));
  }
  if (isa >= kiln::CpuIsa::kAvx512) {
    std::printf("zmm FMA peak: %.1f GFLOP/s (1 thread)\n",
                kiln::MeasurePeakGflops(kiln::CpuIsa::kAvx512, 1.0));
  }
  return 0;
}
