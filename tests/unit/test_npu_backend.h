// TEST DOUBLE: a stand-in accelerator backend for tests, because this machine has no NPU.
//
// It declares compute unit `npu`, computes in float16 only (no float32 kernels at all), takes a
// small subset of ops, and executes its partitions through the reference kernels on float16
// tensors, so every op's output is rounded to float16 exactly as a genuine fp16 unit would. At
// its borders it casts values of other float types to float16 and back (what a `network`
// model's partition needs). It logs every node it executes with the element types of its
// inputs, so tests can prove the typed rules ("a value typed fp32 never runs on a unit that
// computes only in fp16").
#pragma once

#include <cstring>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "backends/ref/eager.h"
#include "core/half.h"
#include "plan/backend.h"
#include "plan/cost.h"

namespace kiln::testing {

struct NpuLogEntry {
  std::string node;
  std::vector<ElementType> input_types;  // as executed
};

class TestNpuBackend final : public Backend {
 public:
  explicit TestNpuBackend(std::set<std::string> ops = {"Add", "Mul", "Sub", "Relu", "Sigmoid",
                                                       "Abs", "Neg", "MatMul", "Softmax",
                                                       "Identity", "Clip"})
      : ops_(std::move(ops)) {}

  std::string name() const override { return "test-npu"; }
  ComputeUnit unit() const override { return ComputeUnit::kNpu; }

  NodeSupport Supports(const NodeQuery& q) const override {
    if (!q.node->domain.empty() || !ops_.count(q.node->op_type)) {
      return NodeSupport::No("op " + q.node->op_type + " is not in the npu's op set");
    }
    for (const TypeInfo* t : q.inputs) {
      if (t == nullptr) continue;
      if (t->type != ElementType::kF16 && t->type != ElementType::kF32) {
        return NodeSupport::No(std::string("element type ") + ElementTypeName(t->type) +
                               ": the npu computes f16 and int8 only");
      }
      if (!t->has_static_shape()) return NodeSupport::No("dynamic shape");
    }
    // A fifth of the reference backend's estimate: "faster", so the partitioner prefers it.
    const double ref = EstimateMicros(EstimateWork(q), 4.0 * q.threads, 4.0, 1.0);
    return NodeSupport::Yes(ref * 0.2, ElementType::kF16);
  }

  Result<std::unique_ptr<CompiledPartition>> Compile(const PartitionSpec& spec) const override {
    return std::unique_ptr<CompiledPartition>(new Program(spec, log_, mu_));
  }

  std::vector<NpuLogEntry> log() const {
    std::lock_guard<std::mutex> lock(*mu_);
    return *log_;
  }

 private:
  static Tensor ToType(const Tensor& t, ElementType to) {
    if (t.type() == to) return t;
    Tensor out = Tensor::Allocate(to, t.shape()).value();
    for (int64_t i = 0; i < t.size(); ++i) {
      const float v = t.type() == ElementType::kF16 ? static_cast<float>(t.data<Half>()[i])
                                                    : t.data<float>()[i];
      if (to == ElementType::kF16) {
        out.data<Half>()[i] = Half(v);
      } else {
        out.data<float>()[i] = v;
      }
    }
    return out;
  }

  class Program final : public CompiledPartition {
   public:
    Program(const PartitionSpec& spec, std::shared_ptr<std::vector<NpuLogEntry>> log,
            std::shared_ptr<std::mutex> mu)
        : spec_(spec), log_(std::move(log)), mu_(std::move(mu)) {
      for (ValueId v : spec.inputs) {
        if ((*spec.types)[v.v].type != ElementType::kF16) {
          conversions_.push_back(spec.graph->value(v).name + ": " +
                                 ElementTypeName((*spec.types)[v.v].type) + "->f16");
        }
      }
      for (ValueId v : spec.outputs) {
        if ((*spec.types)[v.v].type != ElementType::kF16) {
          conversions_.push_back(spec.graph->value(v).name + ": f16->" +
                                 ElementTypeName((*spec.types)[v.v].type));
        }
      }
    }

    Status Run(const std::vector<const Tensor*>& inputs,
               const std::vector<Tensor*>& outputs) override {
      std::vector<Tensor> values(spec_.graph->num_values());
      for (size_t i = 0; i < inputs.size(); ++i) {
        values[spec_.inputs[i].v] = ToType(*inputs[i], ElementType::kF16);
      }
      for (NodeId id : spec_.nodes) {
        const Node& n = spec_.graph->node(id);
        std::vector<Tensor> in;
        NpuLogEntry entry{n.name, {}};
        for (ValueId v : n.inputs) {
          if (!v.valid()) {
            in.emplace_back();
            continue;
          }
          if (!values[v.v].defined()) {
            const Tensor* c = spec_.constant(v);
            if (c == nullptr) return Internal("npu: value " + spec_.graph->value(v).name + " missing");
            values[v.v] = c->type() == ElementType::kF32 ? ToType(*c, ElementType::kF16) : *c;
          }
          in.push_back(values[v.v]);
          entry.input_types.push_back(values[v.v].type());
        }
        {
          std::lock_guard<std::mutex> lock(*mu_);
          log_->push_back(entry);
        }
        KILN_ASSIGN_OR_RETURN(auto out, RunNodeEager(n, in));
        for (size_t i = 0; i < n.outputs.size(); ++i) {
          if (n.outputs[i].valid()) values[n.outputs[i].v] = out[i];
        }
      }
      for (size_t i = 0; i < outputs.size(); ++i) {
        const Tensor& v = values[spec_.outputs[i].v];
        Tensor conv = ToType(v, outputs[i]->type());
        std::memcpy(outputs[i]->raw(), conv.raw(), conv.bytes());
      }
      return Status::Ok();
    }
    std::vector<std::string> border_conversions() const override { return conversions_; }

   private:
    PartitionSpec spec_;
    std::shared_ptr<std::vector<NpuLogEntry>> log_;
    std::shared_ptr<std::mutex> mu_;
    std::vector<std::string> conversions_;
  };

  std::set<std::string> ops_;
  std::shared_ptr<std::vector<NpuLogEntry>> log_ = std::make_shared<std::vector<NpuLogEntry>>();
  std::shared_ptr<std::mutex> mu_ = std::make_shared<std::mutex>();
};

}  // namespace kiln::testing
