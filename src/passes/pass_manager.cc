// The table of graph passes and RunPasses (pass_manager.h).
#include "passes/pass_manager.h"

#include "passes/qdq_fusion.h"

#include "ir/verifier.h"

namespace kiln {

const std::vector<PassInfo>& AllPasses() {
  static const std::vector<PassInfo> kPasses = {
      {"fold-batchnorm", &FoldBatchNormPass,
       "fold BatchNormalization into the Conv/ConvTranspose before it"},
      {"fuse-bias-add", &FuseBiasAddPass,
       "fold an Add of a per-channel constant into the Conv/ConvTranspose bias"},
      {"eliminate-dead", &EliminateDeadPass, "remove unread nodes and initializers"},
      {"fuse-qdq", &FuseQdqPass, "DequantizeLinear -> op -> QuantizeLinear patterns become int8 ops"},
  };
  return kPasses;
}

std::vector<std::string> DefaultOptimizationPasses() {
  // Bias fusion before the BN fold makes Conv -> Add(bias) -> BN foldable (PP-OCRv4 det's
  // ConvTranspose), and after it folds an Add that followed the BN.
  return {"fuse-bias-add", "fold-batchnorm", "fuse-bias-add", "eliminate-dead"};
}

Result<std::vector<PassResult>> RunPasses(Model& model, const std::vector<std::string>& names) {
  std::vector<const PassInfo*> passes;
  for (const std::string& name : names) {
    const PassInfo* found = nullptr;
    for (const PassInfo& p : AllPasses()) {
      if (name == p.name) found = &p;
    }
    if (!found) {
      std::string known;
      for (const PassInfo& p : AllPasses())
        known += (known.empty() ? "" : ", ") + std::string(p.name);
      return InvalidArgument("unknown pass '" + name + "' (known: " + known + ")");
    }
    passes.push_back(found);
  }
  std::vector<PassResult> results;
  for (const PassInfo* p : passes) {
    auto r = p->run(model);
    if (!r.ok()) return r.status().WithContext(std::string("pass ") + p->name);
    r->name = p->name;
    Status verified = VerifyGraph(model.graph);
    if (!verified.ok()) {
      return Internal(std::string("pass ") + p->name +
                      " left an invalid graph: " + verified.message());
    }
    results.push_back(std::move(r).value());
  }
  if (!names.empty()) {
    std::string& recorded = model.metadata["kiln.passes"];
    for (const std::string& name : names) recorded += (recorded.empty() ? "" : ",") + name;
  }
  return results;
}

}  // namespace kiln
