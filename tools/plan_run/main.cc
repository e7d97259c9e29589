// kiln_plan_run PLAN.kplan [--repeat N] [--threads N]: loads a compiled plan and runs it on
// random inputs of its compiled signature. Links only the runtime library (kiln_runtime: no
// protobuf, no graph passes), which its CTest checks on the linked symbols: the proof that a
// compiled plan runs without the importer and the compiler.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>

#include "plan/plan_file.h"
#include "runtime/session.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: kiln_plan_run PLAN.kplan [--repeat N] [--threads N]\n");
    return 1;
  }
  int repeat = 3, threads = 1;
  for (int i = 2; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--repeat") == 0) repeat = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--threads") == 0) threads = std::atoi(argv[i + 1]);
  }
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  auto plan = kiln::LoadPlanFile(argv[1]);
  if (!plan.ok()) {
    std::fprintf(stderr, "error: %s\n", plan.status().ToString().c_str());
    return 1;
  }
  auto session = kiln::Session::CreatePrepared(std::move(plan->model),
                                               kiln::SessionOptions::Threads(threads));
  if (!session.ok()) {
    std::fprintf(stderr, "error: %s\n", session.status().ToString().c_str());
    return 1;
  }
  const auto t1 = Clock::now();
  const kiln::Graph& g = (*session)->graph();
  kiln::NamedTensors inputs;
  std::mt19937 rng(1);
  for (kiln::ValueId v : g.inputs()) {
    const kiln::Value& val = g.value(v);
    kiln::Shape shape;
    for (const kiln::Dim& d : val.info.shape.value_or(kiln::DimVector{})) {
      shape.push_back(d.is_static() ? d.value : 1);
    }
    auto t = kiln::Tensor::Allocate(val.info.type, shape);
    if (!t.ok()) return 1;
    if (t->type() == kiln::ElementType::kF32) {
      for (int64_t i = 0; i < t->size(); ++i) t->data<float>()[i] = (rng() % 1000) / 1000.f;
    }
    inputs.emplace_back(val.name, *t);
  }
  for (int r = 0; r < repeat; ++r) {
    const auto a = Clock::now();
    auto out = (*session)->Run(inputs);
    if (!out.ok()) {
      std::fprintf(stderr, "error: %s\n", out.status().ToString().c_str());
      return 1;
    }
    std::printf("run %d: %.2f ms (%zu outputs)\n", r,
                std::chrono::duration<double, std::milli>(Clock::now() - a).count(), out->size());
  }
  std::printf("load %.2f ms\n", std::chrono::duration<double, std::milli>(t1 - t0).count());
  return 0;
}
