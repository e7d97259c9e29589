// The XNNPACK backend: fp32 (and fp16 where XNNPACK has kernels for this CPU) convolutions,
// fully connected layers, pooling, elementwise ops and activations on the CPU, through
// XNNPACK's operator API with weights packed once per compiled partition.
#pragma once

#include <memory>

#include "plan/backend.h"

namespace kiln {

// Null when XNNPACK cannot initialise on this CPU (the partitioner then uses other backends).
std::shared_ptr<Backend> MakeXnnpackBackend();

}  // namespace kiln
