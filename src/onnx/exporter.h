// ONNX export: Kiln's IR -> a serialized ONNX ModelProto (the reverse of importer.h).
//
// Writes ir_version (the model's, at least 7), the opset imports, producer "kiln", the model's
// metadata as metadata_props, the graph with typed inputs and outputs (static, symbolic and
// unknown dims), value_info for every intermediate value whose element type is known,
// initializers (raw_data for numeric and bool types, string_data for strings) and nodes with
// every attribute kind, nested graphs included. A body's outer-scope values are referenced by
// name only. Tensors are always written inline (no external data), so a model must fit the
// 2 GiB protobuf limit.
//
//   auto bytes = ExportOnnxBytes(model);          // in memory
//   Status s = ExportOnnxFile(model, "out.onnx");  // on disk, atomically
#pragma once

#include <string>

#include "core/status.h"
#include "ir/graph.h"

namespace kiln {

struct ExportOptions {
  // Write value_info (inferred types) for intermediate values: useful to readers such as Netron,
  // optional for runtimes. Converters that want the smallest file turn it off.
  bool value_info = true;
};

Result<std::string> ExportOnnxBytes(const Model& model, const ExportOptions& options = {});

// Writes to a temporary file next to `path`, then renames it into place: on failure no file
// (and no partial file) is left at `path` or beside it.
Status ExportOnnxFile(const Model& model, const std::string& path,
                      const ExportOptions& options = {});

}  // namespace kiln
