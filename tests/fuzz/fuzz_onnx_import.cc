// Fuzz target: ONNX bytes -> import (shape inference, verifier) -> session (passes) -> plan for
// small inputs (shape inference with constant folding, partitioning, memory plan). Nothing runs:
// a plan is built, not executed. External data is confined to an empty folder.
#include <cstddef>
#include <cstdint>

#include "fuzz_util.h"
#include "ir/verifier.h"
#include "onnx/importer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kiln;
  ImportOptions io;
  io.external_data_dir = "/nonexistent-kiln-fuzz";
  auto model = ImportOnnxBytes(data, size, io);
  if (!model.ok()) return 0;
  if (!VerifyGraph(model->graph).ok()) return 0;
  NamedTensors inputs;
  const bool small = fuzz::SmallInputs(model->graph, &inputs);
  auto session = Session::Create(std::move(model).value(), fuzz::FuzzSessionOptions());
  if (!session.ok() || !small) return 0;
  auto plan = (*session)->Plan(inputs);
  (void)plan;
  return 0;
}
