// Session::Create: the graph rewrites a session needs before it runs an imported model (QDQ
// patterns to int8 ops, a network's f16 values raised to f32), then Session::CreatePrepared.
// It lives with the passes, not in src/runtime, so that the runtime library, which runs
// compiled plans (already rewritten), links no pass.
#include "passes/qdq_fusion.h"
#include "ir/verifier.h"
#include "precision/raise.h"
#include "runtime/session.h"

namespace kiln {

Result<std::vector<std::string>> PrepareModelForSession(Model& model,
                                                        const SessionOptions& options) {
  std::vector<std::string> notes;
  ModelType type = ModelType::kProgram;
  if (options.model_type) {
    type = *options.model_type;
  } else {
    KILN_ASSIGN_OR_RETURN(type, model.model_type());
  }
  if (options.fuse_qdq && HasQdq(model.graph)) {
    // A quantized (QDQ) model: its quantized ops run as int8 kernels, exactly.
    KILN_ASSIGN_OR_RETURN(PassResult r, FuseQdqPass(model));
    notes.push_back("QDQ model: " + std::to_string(r.rewrites) +
                    " quantized patterns run as int8 ops");
    for (size_t i = 0; i < r.notes.size() && i < 5; ++i) notes.push_back(r.notes[i]);
    if (r.notes.size() > 5) {
      notes.push_back("(" + std::to_string(r.notes.size() - 5) + " more QDQ notes)");
    }
  }
  if (type == ModelType::kNetwork) {
    // A network's inside is untyped: each unit computes in its native precision. The CPU's is
    // fp32, so float16 values are raised before partitioning; an fp16 accelerator casts back
    // at its partition borders.
    KILN_ASSIGN_OR_RETURN(RaiseReport r, RaiseToFloat32(model));
    if (r.values_raised > 0 || r.initializers_raised > 0) {
      notes.push_back("network model: " + std::to_string(r.values_raised) + " f16 values and " +
                      std::to_string(r.initializers_raised) +
                      " f16 weights raised to f32 (the CPU's native precision)");
    }
  }
  return notes;
}

Result<std::unique_ptr<Session>> Session::Create(Model model, SessionOptions options) {
  if (options.threads < 1) return InvalidArgument("threads must be at least 1");
  // Before the rewrites, which recurse into nested graphs too (CreatePrepared checks it again).
  KILN_RETURN_IF_ERROR(CheckGraphNesting(model.graph));
  KILN_ASSIGN_OR_RETURN(std::vector<std::string> notes, PrepareModelForSession(model, options));
  return CreatePrepared(std::move(model), std::move(options), std::move(notes));
}

}  // namespace kiln
