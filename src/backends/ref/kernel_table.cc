#include <string>
#include <unordered_map>

#include "backends/ref/kernel.h"

namespace kiln {

std::span<const KernelDef> QuantFusedKernels();  // quant_fused.cc: Kiln-domain int8 ops

namespace {

std::string Key(std::string_view domain, std::string_view op) {
  std::string d(domain);
  if (d == "ai.onnx") d.clear();
  return d + "::" + std::string(op);
}

}  // namespace

const KernelDef* FindRefKernel(std::string_view domain, std::string_view op_type) {
  static const auto* table = [] {
    auto* m = new std::unordered_map<std::string, const KernelDef*>();
    for (auto family : {ElementwiseKernels(), TensorKernels(), NnKernels(), ReduceKernels(),
                        RnnKernels(), ControlFlowKernels(), QuantKernels(), MiscKernels(),
                        SequenceKernels(), QuantFusedKernels(), ModernKernels()}) {
      for (const KernelDef& k : family) (*m)[Key(k.domain, k.op_type)] = &k;
    }
    return m;
  }();
  auto it = table->find(Key(domain, op_type));
  return it == table->end() ? nullptr : it->second;
}

}  // namespace kiln
