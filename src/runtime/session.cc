#include "runtime/session.h"

#include <set>

namespace kiln {

Result<std::unique_ptr<Session>> Session::Create(Model model, SessionOptions options) {
  if (options.threads < 1) return InvalidArgument("threads must be at least 1");
  std::unique_ptr<Session> s(new Session(std::move(model), options));
  KILN_ASSIGN_OR_RETURN(s->executor_, GraphExecutor::Create(s->model_.graph, &s->pool_));
  return s;
}

Result<std::vector<Tensor>> Session::OrderInputs(const NamedTensors& inputs) const {
  const Graph& g = model_.graph;
  std::vector<Tensor> ordered(g.inputs().size());
  std::set<std::string> seen;
  for (const auto& [name, t] : inputs) {
    bool found = false;
    for (size_t i = 0; i < g.inputs().size(); ++i) {
      if (g.value(g.inputs()[i]).name == name) {
        if (!seen.insert(name).second) return InvalidArgument("input '" + name + "' given twice");
        ordered[i] = t;
        found = true;
      }
    }
    if (!found) {
      std::string names;
      for (ValueId v : g.inputs()) names += (names.empty() ? "" : ", ") + g.value(v).name;
      return InvalidArgument("the model has no input named '" + name + "' (inputs: " + names + ")");
    }
  }
  for (size_t i = 0; i < ordered.size(); ++i) {
    if (!ordered[i].defined()) {
      return InvalidArgument("input '" + g.value(g.inputs()[i]).name + "' was not given");
    }
  }
  return ordered;
}

Result<std::vector<Tensor>> Session::Run(const NamedTensors& inputs,
                                         const NodeObserver* observer) {
  KILN_ASSIGN_OR_RETURN(auto ordered, OrderInputs(inputs));
  std::lock_guard<std::mutex> lock(mu_);
  return executor_->Run(ordered, nullptr, observer);
}

Result<std::string> Session::DescribePlan(const NamedTensors& inputs) {
  KILN_ASSIGN_OR_RETURN(auto ordered, OrderInputs(inputs));
  std::lock_guard<std::mutex> lock(mu_);
  KILN_ASSIGN_OR_RETURN(const ExecutionPlan* plan, executor_->PlanFor(ordered));
  return plan->ToString(model_.graph);
}

}  // namespace kiln
