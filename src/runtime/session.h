// Session: a loaded model ready to run. Owns the model, the thread pool and the executor of the
// main graph (which owns the executors of nested bodies).
//
//   auto model = ImportOnnxFile("m.onnx");
//   auto session = Session::Create(std::move(model).value(), SessionOptions{.threads = 2});
//   auto outputs = (*session)->Run({{"x", x}});
//
// Run is safe to call from several threads; calls are serialised.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"
#include "core/thread_pool.h"
#include "ir/graph.h"
#include "runtime/executor.h"

namespace kiln {

struct SessionOptions {
  int threads = 1;
};

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

class Session {
 public:
  static Result<std::unique_ptr<Session>> Create(Model model, SessionOptions options = {});

  const Model& model() const { return model_; }
  const Graph& graph() const { return model_.graph; }
  const SessionOptions& options() const { return options_; }

  // Inputs by name; every graph input must be given once. Outputs in graph output order.
  Result<std::vector<Tensor>> Run(const NamedTensors& inputs,
                                  const NodeObserver* observer = nullptr);
  // The execution plan (steps, folded values, memory layout) for these inputs.
  Result<std::string> DescribePlan(const NamedTensors& inputs);
  // How many shape-specialised plans the main graph holds (one per distinct input signature).
  size_t cached_plan_count() const { return executor_->cached_plans(); }

 private:
  Session(Model model, SessionOptions options)
      : model_(std::move(model)), options_(options), pool_(options.threads) {}
  Result<std::vector<Tensor>> OrderInputs(const NamedTensors& inputs) const;

  Model model_;
  SessionOptions options_;
  ThreadPool pool_;
  std::unique_ptr<GraphExecutor> executor_;
  std::mutex mu_;
};

}  // namespace kiln
