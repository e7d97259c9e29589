// Shared by the libFuzzer targets (tests/fuzz/README.md): the session a fuzz input may build.
#pragma once

#include <cstdint>

#include "runtime/session.h"

namespace kiln::fuzz {

// Small caps so that a fuzz input declaring giant tensors ends in an error, not an
// out-of-memory report: the model's own limits are what the targets check.
inline SessionOptions FuzzSessionOptions() {
  SessionOptions o = SessionOptions::Reference(1);
  o.max_tensor_bytes = int64_t{64} << 20;
  o.max_arena_bytes = int64_t{256} << 20;
  o.max_constant_bytes = int64_t{256} << 20;
  return o;
}

// Inputs for a plan: every graph input a tensor with a known type; symbolic dims 1; nothing
// when an input is not such a tensor or would hold more than 1 << 16 elements.
bool SmallInputs(const Graph& g, NamedTensors* out);

}  // namespace kiln::fuzz
