#include "backends/ref/eager.h"

namespace kiln {
namespace {

class EagerContext final : public KernelContext {
 public:
  EagerContext(const Node& node, const std::vector<Tensor>& inputs, ThreadPool* pool,
               SubgraphRunner subgraphs)
      : node_(node), inputs_(inputs), pool_(pool), subgraphs_(std::move(subgraphs)),
        outputs_(node.outputs.size()) {}

  const Node& node() const override { return node_; }
  size_t num_inputs() const override { return inputs_.size(); }
  const Tensor* input(size_t i) const override {
    return i < inputs_.size() && inputs_[i].defined() ? &inputs_[i] : nullptr;
  }
  size_t num_outputs() const override { return outputs_.size(); }
  bool output_used(size_t i) const override {
    return i < node_.outputs.size() && node_.outputs[i].valid();
  }
  Result<Tensor*> output(size_t i, ElementType type, const Shape& shape) override {
    if (i >= outputs_.size()) {
      return Error("kernel asked for output " + std::to_string(i) + " of " +
                   std::to_string(outputs_.size()));
    }
    auto t = Tensor::Allocate(type, shape);
    if (!t.ok()) return t.status().WithContext(node_.Describe() + " output " + std::to_string(i));
    outputs_[i] = std::move(t).value();
    return &outputs_[i];
  }
  Status SetValue(size_t i, Tensor value) override {
    if (i >= outputs_.size()) {
      return Error("kernel set output " + std::to_string(i) + " of " +
                   std::to_string(outputs_.size()));
    }
    outputs_[i] = value.is_tensor() && !value.owns_storage() ? value.Clone() : std::move(value);
    return Status::Ok();
  }
  ThreadPool* thread_pool() const override { return pool_; }
  Result<std::vector<Tensor>> RunSubgraph(const Graph& body,
                                          const std::vector<Tensor>& inputs) override {
    if (!subgraphs_) return Error("nested graphs cannot run here");
    return subgraphs_(body, inputs);
  }
  std::vector<Tensor>& outputs() { return outputs_; }

 private:
  const Node& node_;
  const std::vector<Tensor>& inputs_;
  ThreadPool* pool_;
  SubgraphRunner subgraphs_;
  std::vector<Tensor> outputs_;
};

}  // namespace

Result<std::vector<Tensor>> RunNodeEager(const Node& node, const std::vector<Tensor>& inputs,
                                         ThreadPool* pool, SubgraphRunner subgraphs) {
  const KernelDef* k = FindRefKernel(node.domain, node.op_type);
  if (k == nullptr) {
    return Unimplemented("no reference kernel for " + node.Describe());
  }
  EagerContext ctx(node, inputs, pool, std::move(subgraphs));
  KILN_RETURN_IF_ERROR(k->run(ctx));
  return std::move(ctx.outputs());
}

Result<std::vector<Tensor>> RunOpEager(const std::string& op_type, int opset,
                                       const std::vector<Tensor>& inputs, size_t num_outputs,
                                       Attributes attrs) {
  Node n;
  n.name = op_type + "_eager";
  n.op_type = op_type;
  n.opset = opset;
  n.attrs = std::move(attrs);
  for (size_t i = 0; i < inputs.size(); ++i) {
    n.inputs.push_back(inputs[i].defined() ? ValueId(static_cast<uint32_t>(i)) : ValueId());
  }
  for (size_t i = 0; i < num_outputs; ++i) {
    n.outputs.push_back(ValueId(static_cast<uint32_t>(inputs.size() + i)));
  }
  return RunNodeEager(n, inputs);
}

}  // namespace kiln
