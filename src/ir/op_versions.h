// Operator versions of the default ONNX domain from opset 18 to 23: the one table saying, for
// every operator that changed or appeared there, which versions Kiln implements.
//
// Kiln implements the default domain's semantics through opset 17 for every op it has a schema
// for; an op version that appeared in opsets 18-23 runs only if this table says Kiln implements
// it (kernels then dispatch on Node::opset). A model at opset N uses, for each node, the op's
// newest version <= N ("since version"); CheckOpVersions rejects, naming node, op, domain and
// version:
//   - an op version listed here as not implemented (with the reason: what changed);
//   - an op used at an opset before it exists (e.g. Gelu at opset 18), as ONNX Runtime does.
// Type-only changes (float8, int4, float4 and bfloat16 added to an op's type lists) count as
// implemented: tensors of element types Kiln does not hold are rejected by the importer, and a
// kernel without a bfloat16 path says so when it runs.
//
// Usage: the importer calls CheckOpVersions(model.graph) after import; `kiln inspect` and tests
// may call OpVersionSupport for one op.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "ir/graph.h"

namespace kiln {

// The newest default-domain opset the importer accepts.
inline constexpr int kMaxDefaultOpset = 23;

enum class OpVersionStatus {
  kNew,           // the op appears at this version, and Kiln implements it
  kImplemented,   // changed at this version, and Kiln implements the change
  kTypesOnly,     // only element types were added (see above)
  kMissing,       // Kiln does not implement this version (the note says what is missing)
  kNewMissing,    // the op appears at this version; Kiln has no kernel for it
};

struct OpVersionRow {
  const char* op_type;
  int version;  // 18..23
  OpVersionStatus status;
  const char* what;  // what changed at this version (and, for kMissing, what Kiln lacks)
};

// Every row of the table (for listings, the report in the note, and tests).
std::vector<OpVersionRow> AllOpVersionRows();

// The newest row of `op_type` at or below `opset`, or nullptr when the op did not change in
// 18..opset (its opset-17 semantics apply).
const OpVersionRow* FindOpVersion(std::string_view op_type, int opset);

// Ok when Kiln implements the version of `node` in force at its opset; otherwise an error
// naming the node, op, domain and version. Nodes of other domains are not checked here.
Status OpVersionSupport(const Node& node);

// OpVersionSupport for every node of `graph` and of its nested bodies.
Status CheckOpVersions(const Graph& graph);

}  // namespace kiln
