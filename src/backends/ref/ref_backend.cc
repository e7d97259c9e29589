#include "backends/ref/ref_backend.h"

#include "backends/ref/kernel.h"
#include "plan/cost.h"

namespace kiln {
namespace {

class RefBackend final : public Backend {
 public:
  std::string name() const override { return "ref"; }
  ComputeUnit unit() const override { return ComputeUnit::kCpu; }
  bool runs_in_executor() const override { return true; }

  // The kernel table is the answer: an op with a kernel runs here, at its stated types (float16
  // ops compute in float and round every output to float16, which is genuine fp16 semantics).
  NodeSupport Supports(const NodeQuery& q) const override {
    if (FindRefKernel(q.node->domain, q.node->op_type) == nullptr) {
      return NodeSupport::No("no reference kernel for " +
                             (q.node->domain.empty() ? std::string() : q.node->domain + "::") +
                             q.node->op_type);
    }
    // Portable blocked loops: a few GMAC/s per thread, memory-bound elsewhere.
    const double gmacs = 4.0 * q.threads;
    return NodeSupport::Yes(EstimateMicros(EstimateWork(q), gmacs, 4.0, 1.0));
  }

  Result<std::unique_ptr<CompiledPartition>> Compile(const PartitionSpec&) const override {
    return Internal("the reference backend runs its nodes in the executor; nothing to compile");
  }
};

}  // namespace

std::shared_ptr<Backend> MakeRefBackend() { return std::make_shared<RefBackend>(); }

}  // namespace kiln
