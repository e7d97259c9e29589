// The fp32 FMA roofline of one core, measured: register-only FMA chains (no loads; enough
// independent accumulators to cover FMA latency x ports) at an ISA level, best of short runs.
// `kiln bench --profile` divides each step's achieved GFLOP/s by it (x threads) for its
// "% peak" column; bench/peak_flops.cc prints it per ISA.
//
//   double peak = MeasurePeakGflops(CpuIsa::kAvx512, 0.05);  // 0 when the CPU lacks the level
#pragma once

#include "core/cpu_features.h"

namespace kiln {

// GFLOP/s of one thread (a zmm FMA counts 32 flops, a ymm one 16) at `isa` (kAvx512 and up: zmm;
// kAvx2: ymm; kPortable: 0, no vector FMA), within about `seconds` of measuring; 0 when this CPU
// lacks the level.
double MeasurePeakGflops(CpuIsa isa, double seconds);

}  // namespace kiln
