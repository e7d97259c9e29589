// The reference backend's kernel interface.
//
// A kernel is a plain function computing one node: it reads its inputs, asks the context for
// each output with its element type and shape (the context hands back planned arena memory when
// the plan has a slot of that size, heap memory otherwise), and writes the result. Kernels are
// portable C++ and accumulate in double where that is cheap: this backend is the oracle every
// other backend is tested against, so clarity and exactness beat speed.
//
// Each op family lists its kernels in one file (elementwise.cc, conv.cc, ...); kernel_table.cc
// gathers the lists into the one table that is both dispatch and the "supported?" answer.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"
#include "core/thread_pool.h"
#include "ir/graph.h"

namespace kiln {

class KernelContext {
 public:
  virtual ~KernelContext() = default;

  virtual const Node& node() const = 0;
  const Attributes& attrs() const { return node().attrs; }
  int opset() const { return node().opset; }

  virtual size_t num_inputs() const = 0;
  // Input i, or nullptr when the optional input is omitted (or i is past the end).
  virtual const Tensor* input(size_t i) const = 0;
  virtual size_t num_outputs() const = 0;
  // Whether output i is consumed (an omitted optional output is not). Allocating it anyway is fine.
  virtual bool output_used(size_t i) const = 0;
  // Allocates output i. Call at most once per output. Memory is zeroed only for heap allocations:
  // kernels must write every element.
  virtual Result<Tensor*> output(size_t i, ElementType type, const Shape& shape) = 0;
  // Sets output i to a whole value: a sequence or optional (core/tensor.h), or a tensor that is
  // passed on as it is (owned storage; Identity on containers, control flow). Call at most once
  // per output, instead of output().
  virtual Status SetValue(size_t i, Tensor value) = 0;
  // Pool for parallel loops; may be null (run inline).
  virtual ThreadPool* thread_pool() const = 0;
  // Runs a nested graph (If/Loop/Scan body) with the given inputs, returning its outputs in order.
  // Values of enclosing graphs are visible to the body by name.
  virtual Result<std::vector<Tensor>> RunSubgraph(const Graph& body,
                                                  const std::vector<Tensor>& inputs) = 0;

  // An InvalidArgument status prefixed with the node's op type and name.
  Status Error(const std::string& message) const {
    return InvalidArgument(node().Describe() + ": " + message);
  }
  Status UnsupportedType(ElementType t) const {
    return Unimplemented(node().Describe() + ": element type " + ElementTypeName(t) +
                         " is not supported by the reference kernel");
  }
};

using KernelFn = Status (*)(KernelContext&);

struct KernelDef {
  const char* op_type;
  const char* domain;  // "" for ai.onnx
  KernelFn run;
  // Takes sequence/optional inputs (core/tensor.h). Other kernels get only plain tensors: the
  // executor rejects a container input naming the node.
  bool containers = false;
};

// Per-family kernel lists, gathered by kernel_table.cc.
std::span<const KernelDef> ElementwiseKernels();
std::span<const KernelDef> TensorKernels();
std::span<const KernelDef> NnKernels();
std::span<const KernelDef> ReduceKernels();
std::span<const KernelDef> RnnKernels();
std::span<const KernelDef> ControlFlowKernels();
std::span<const KernelDef> QuantKernels();
std::span<const KernelDef> MiscKernels();
std::span<const KernelDef> SequenceKernels();
std::span<const KernelDef> ModernKernels();  // modern*.cc: ops new in opsets 18-23

// The kernel for (domain, op_type) or nullptr.
const KernelDef* FindRefKernel(std::string_view domain, std::string_view op_type);

}  // namespace kiln
