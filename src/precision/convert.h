// Precision conversion: rewrites a float32 model into a typed fp16 (or mixed) model.
//
// Every float32 value computed by a node that is not kept in fp32 becomes float16; float32
// initializers and Constant values read by converted nodes become float16 (one read by both
// kinds of node gets an f16 copy next to the f32 original); a Cast is inserted only where a
// value crosses between an fp32 and an fp16 node, and at graph inputs/outputs when
// keep_io_types keeps them float32 (without it the graph's float inputs/outputs become f16).
// Inputs that ONNX fixes to float32 or that carry parameters (Resize roi/scales, Upsample
// scales, quantization scales, NonMaxSuppression) keep their type. Nested bodies (If/Loop/Scan)
// follow their node: a converted control-flow node gets f16 body inputs/outputs, a kept one
// keeps its whole body in fp32. Ops of other domains are never converted.
//
// Precision fp32 converts nothing (only the metadata is written). Mixed is fp16 with the
// selector's keeps; fp16 is the same rewrite (the difference is the user's intent, recorded).
// model_type is recorded: "program" (a value's type is its minimum precision) or "network"
// (only inputs and outputs are typed; a runtime may compute inside in its native precision).
//
// Unnamed nodes are given unique names first ("<OpType>_<index>") so that selectors, reports
// and the recorded kept-node list can name every node.
//
// Metadata written: kiln.model_type, kiln.precision, kiln.keep_fp32 (the selector text),
// kiln.kept_fp32_nodes (comma-separated names), kiln.converter.
//
//   PrecisionOptions o;
//   o.precision = Precision::kFp16;
//   KILN_ASSIGN_OR_RETURN(o.keep_fp32, ParseKeepSelector("op:Softmax,auto:1e-3"));
//   o.auto_inputs = {{"x", x}};   // needed by auto:TOL
//   KILN_ASSIGN_OR_RETURN(ConvertReport r, ConvertPrecision(model, o));
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/status.h"
#include "ir/graph.h"
#include "precision/selector.h"
#include "runtime/session.h"

namespace kiln {

enum class Precision { kFp32, kFp16, kMixed };

const char* PrecisionName(Precision p);  // "fp32" / "fp16" / "mixed"
Result<Precision> ParsePrecision(const std::string& s);

inline constexpr const char* kPrecisionConverterVersion = "kiln-precision 1";

struct PrecisionOptions {
  Precision precision = Precision::kFp16;
  KeepSelector keep_fp32;
  bool keep_io_types = false;
  ModelType model_type = ModelType::kProgram;
  // Inputs for auto:TOL measurements (every graph input, by name).
  NamedTensors auto_inputs;
  int threads = 1;
};

struct KeptNode {
  std::string name;
  std::string op_type;
  std::string reason;  // "op:Softmax", "overflow: ...", "measured error ..."
};

struct OutputError {
  std::string name;
  double relative_l2 = 0;  // ||fp16 - fp32|| / ||fp32||; inf when non-finite values appear
};

struct ConvertReport {
  std::vector<KeptNode> kept;             // nodes kept in fp32 with the reason
  std::map<std::string, int> converted;   // op_type -> nodes converted to fp16
  int casts_inserted = 0;
  int initializers_converted = 0;         // initializers/Constants turned (or copied) to f16
  int64_t weight_bytes_before = 0;        // float initializer and Constant bytes
  int64_t weight_bytes_after = 0;
  // auto:TOL only: the final errors, and how many whole-model runs the search took.
  std::vector<OutputError> output_errors;
  int model_runs = 0;
  std::vector<std::string> notes;         // e.g. tolerance not reachable
};

Result<ConvertReport> ConvertPrecision(Model& model, const PrecisionOptions& options);

}  // namespace kiln
