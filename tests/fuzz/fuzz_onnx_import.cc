// Fuzz target: ONNX bytes -> import (shape inference, verifier) -> session (passes) -> plan for
// small inputs (shape inference with constant folding, partitioning, memory plan). Nothing runs:
// a plan is built, not executed. External data is confined to an empty folder.
// Also the file importer's wire walk (onnx/slim_proto.h), differentially: whenever protobuf
// parses the bytes, the slim copy parses too and every stripped range holds exactly the
// raw_data protobuf read for that initializer.
#include <onnx/onnx_pb.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "fuzz_util.h"
#include "ir/verifier.h"
#include "onnx/importer.h"
#include "onnx/slim_proto.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kiln;
  if (auto slim = onnx_internal::SlimModelBytes(data, size, 16); slim) {
    onnx::ModelProto full, lean;
    if (size <= 0x7fffffff && full.ParseFromArray(data, static_cast<int>(size))) {
      if (!lean.ParseFromArray(slim->bytes.data(), static_cast<int>(slim->bytes.size()))) {
        std::abort();  // the slim copy of a valid model must parse
      }
      for (const auto& s : slim->stripped) {
        if (s.offset > size || s.size > size - s.offset) std::abort();
        // An initializer's raw_data, or a top-level node's tensor attribute's.
        const onnx::TensorProto* f = nullptr;
        const onnx::TensorProto* l = nullptr;
        if (s.initializer >= 0) {
          if (s.initializer >= full.graph().initializer_size()) std::abort();
          f = &full.graph().initializer(s.initializer);
          l = &lean.graph().initializer(s.initializer);
        } else {
          if (s.node < 0 || s.node >= full.graph().node_size()) std::abort();
          const onnx::NodeProto& fn = full.graph().node(s.node);
          if (s.attribute < 0 || s.attribute >= fn.attribute_size()) std::abort();
          f = &fn.attribute(s.attribute).t();
          l = &lean.graph().node(s.node).attribute(s.attribute).t();
        }
        const std::string& raw = f->raw_data();
        if (raw.size() != s.size || std::memcmp(raw.data(), data + s.offset, s.size) != 0) {
          std::abort();  // the stripped range is not what protobuf read
        }
        if (!l->raw_data().empty()) std::abort();
      }
    }
  }
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
