// The reference backend as the partitioner sees it: every op of the kernel table, every element
// type, on the CPU, run node by node by the executor. It is the fallback for whatever a faster
// backend does not take, and the oracle those backends are tested against.
#pragma once

#include <memory>

#include "plan/backend.h"

namespace kiln {

std::shared_ptr<Backend> MakeRefBackend();

}  // namespace kiln
