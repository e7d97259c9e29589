// ONNX import: reads a ModelProto (file or memory) into Kiln's IR.
//
// Handles external data (files relative to the model's folder; no path may leave it), the
// default domain at opsets 1-23 (old-opset attribute forms are kept on the node with its opset,
// so kernels see the semantics in force; op versions of 18-23 that Kiln lacks are rejected naming
// op, domain and version, see ir/op_versions.h), nested graphs, and initializers of every supported type.
// Every malformed input yields one InvalidArgument naming the problem; nothing crashes.
#pragma once

#include <string>

#include "core/status.h"
#include "core/tensor.h"
#include "ir/graph.h"

namespace kiln {

struct ImportOptions {
  // Folder that external data paths are relative to (defaults to the model file's folder).
  std::string external_data_dir;
  // Run shape/type inference and the verifier after import.
  bool infer_shapes = true;
};

Result<Model> ImportOnnxFile(const std::string& path, const ImportOptions& options = {});
Result<Model> ImportOnnxBytes(const void* data, size_t size, const ImportOptions& options = {});

// Parses a serialized TensorProto (e.g. the conformance suite's input_0.pb).
Result<Tensor> ParseTensorProto(const void* data, size_t size, const std::string& base_dir = "");
Result<Tensor> ReadTensorProtoFile(const std::string& path);
// Reads a TensorProto, SequenceProto or OptionalProto file (onnx-data.proto) holding a value of
// `kind` (a sequence of tensors, or an optional of a tensor or a sequence).
Result<Tensor> ReadValueProtoFile(const std::string& path, TensorKind kind);

}  // namespace kiln
