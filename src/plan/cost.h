// Rough work estimates for the partitioner's cost model.
//
// Backends turn a node's work (multiply-adds for convolutions and matrix products, elements
// touched for everything else) into an estimated time with their own throughput figures; the
// partitioner compares those times with the cost of crossing a partition border. The figures
// only need to rank choices sensibly, not predict wall time.
#pragma once

#include <cstdint>

#include "plan/backend.h"

namespace kiln {

struct NodeWork {
  double macs = 0;      // multiply-accumulates (Conv, ConvTranspose, MatMul, Gemm, ...)
  double elements = 0;  // elements read and written (every op)
  double bytes = 0;     // bytes read and written
};

// Work of one node from its specialised types (unknown shapes count as 1 element).
NodeWork EstimateWork(const NodeQuery& q);

// Estimated microseconds for `w` at `gmacs` billion MACs/s and `gbytes` GB/s, plus `fixed_us`.
inline double EstimateMicros(const NodeWork& w, double gmacs, double gbytes, double fixed_us) {
  return fixed_us + w.macs / (gmacs * 1e3) + w.bytes / (gbytes * 1e3);
}

// Cost of moving one value across a partition border: a copy, or a layout change / cast,
// which touches the data twice.
inline double BorderCostMicros(double bytes, bool converts) {
  const double gbytes = 8.0;
  return 2.0 + (converts ? 2.0 : 1.0) * bytes / (gbytes * 1e3);
}

}  // namespace kiln
