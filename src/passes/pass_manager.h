// Graph optimisation passes and the pass manager that runs them by name.
//
// A pass is a function that rewrites a Model in place and reports what it did. Passes keep the
// model's meaning exactly (up to floating-point rounding of folded constants), keep every graph
// input and output by name and type, and leave a graph that verifies (RunPasses checks). The
// table in pass_manager.cc is the one list of passes; each pass lives in its own file:
//
//   fold-batchnorm   Conv/ConvTranspose -> BatchNormalization (inference form, constant
//                    parameters, the conv output read only by the BN) becomes one Conv with
//                    folded weights and bias.                                 fold_batchnorm.cc
//   fuse-bias-add    Conv/ConvTranspose -> Add of a constant that is one value per output
//                    channel (or one for all) becomes the conv's bias.        fuse_bias_add.cc
//   eliminate-dead   removes nodes whose outputs nothing reads (default-domain ops) and
//                    initializers nothing reads.                              eliminate_dead.cc
//
// Passes rewrite the main graph only; nested bodies (If/Loop/Scan) are left as they are.
//
//   KILN_ASSIGN_OR_RETURN(auto results, RunPasses(model, DefaultOptimizationPasses()));
//   for (const PassResult& r : results) printf("%s: %d\n", r.name.c_str(), r.rewrites);
#pragma once

#include <string>
#include <vector>

#include "core/status.h"
#include "ir/graph.h"

namespace kiln {

struct PassResult {
  std::string name;                // the pass's name
  int rewrites = 0;                // patterns rewritten / things removed
  std::vector<std::string> notes;  // what was done, and why candidates were left alone
};

using PassFn = Result<PassResult> (*)(Model&);

struct PassInfo {
  const char* name;
  PassFn run;
  const char* summary;
};

// Every pass, in the default order.
const std::vector<PassInfo>& AllPasses();
// The passes `kiln convert` runs before precision conversion: fuse-bias-add, fold-batchnorm,
// fuse-bias-add, eliminate-dead.
std::vector<std::string> DefaultOptimizationPasses();

// Runs the named passes in order. Every name is checked before anything runs (an unknown name
// is an error naming it and the known ones). After each pass the graph is verified. Appends the
// names run to the metadata key "kiln.passes" (comma-separated).
Result<std::vector<PassResult>> RunPasses(Model& model, const std::vector<std::string>& names);

// The passes themselves (see the list above).
Result<PassResult> FoldBatchNormPass(Model& model);
Result<PassResult> FuseBiasAddPass(Model& model);
Result<PassResult> EliminateDeadPass(Model& model);

}  // namespace kiln
