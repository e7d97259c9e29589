// A ModelProto without its large weights, so that a model file is parsed without copying them.
//
// protobuf copies every `bytes` field while parsing, so a 100 MB model costs a read of the file,
// a parsed copy and the tensors' own copy: three passes over fresh memory, whose page faults
// were most of an import (resnet50: 1.4 s). SlimModelBytes walks the protobuf wire format of a
// serialized ModelProto and writes a copy in which the `raw_data` of every top-level
// initializer (ModelProto.graph = 7, GraphProto.initializer = 5, TensorProto.raw_data = 9) and
// of every tensor attribute of a top-level node (GraphProto.node = 1, NodeProto.attribute = 5,
// AttributeProto.t = 5: a Constant's value, how PaddlePaddle exports weights) of at least
// `min_bytes` is replaced by an empty one, recording where the bytes were. The importer
// parses the slim copy (small: the graph's structure) and reads each stripped initializer once,
// from the file, straight into its tensor (ImportOnnxFile).
//
// The walk only handles what it fully understands: any wire-format surprise (a group, a
// truncated field, a second `graph` field that protobuf would merge, nesting it does not expect)
// returns nullopt, and the caller parses the original bytes as before, whose errors name the
// problem. Fields other than initializer raw_data are copied verbatim.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kiln::onnx_internal {

struct StrippedBytes {
  int initializer = -1;  // index in GraphProto.initializer (parse order), or -1:
  int node = -1;         // a top-level node's (GraphProto.node index)
  int attribute = -1;    // attribute (index in NodeProto.attribute) tensor `t`
  uint64_t offset = 0;   // of the payload in the original bytes
  uint64_t size = 0;
};

struct SlimModel {
  std::string bytes;                    // the slim ModelProto
  std::vector<StrippedBytes> stripped;  // initializers, then nodes, each in parse order
};

std::optional<SlimModel> SlimModelBytes(const uint8_t* data, size_t size, uint64_t min_bytes);

}  // namespace kiln::onnx_internal
