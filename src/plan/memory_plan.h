// Ahead-of-time memory planning: places every planned buffer at an offset in one arena so that
// buffers whose lifetimes overlap never overlap in memory.
//
// Algorithm (greedy by size, as in TFLite Micro's planner): buffers are taken largest first
// (ties: earlier first use, then lower id) and each goes to the lowest 64-byte-aligned offset
// where it fits between the buffers already placed whose lifetimes [first, last] intersect its
// own. The result is deterministic for the same input and printable. Lifetimes are in steps of
// the execution order: a buffer produced by step i and last read by step j lives in [i, j].
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace kiln {

struct BufferRequest {
  uint32_t id = 0;       // caller's id (a value id)
  std::string name;      // for the printout
  int64_t bytes = 0;
  int first = 0;         // first step that needs it (the producer)
  int last = 0;          // last step that reads it
};

struct MemoryPlan {
  static constexpr int64_t kAlignment = 64;
  std::vector<BufferRequest> buffers;  // in the order given
  std::vector<int64_t> offsets;        // one per buffer
  int64_t arena_bytes = 0;
  int64_t unshared_bytes = 0;  // sum of all buffer sizes: what no reuse would need

  // A table: one line per buffer (name, bytes, lifetime, offset) and the totals.
  std::string ToString() const;
};

MemoryPlan PlanMemory(std::vector<BufferRequest> buffers);

}  // namespace kiln
