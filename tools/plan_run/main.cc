// kiln_plan_run PLAN.kplan [--repeat N] [--threads N]: loads a compiled plan and runs it on
// random inputs of its compiled signature. Links only the runtime library (kiln_runtime: no
// protobuf, no graph passes), which its CTest checks on the linked symbols: the proof that a
// compiled plan runs without the importer and the compiler.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

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
  // The first signature the plan was compiled for ("x:f32[1,3,48,320];..."), for dynamic dims.
  std::map<std::string, std::vector<int64_t>> compiled;
  const nlohmann::json meta = nlohmann::json::parse(plan->contents.meta_json, nullptr, false);
  if (meta.is_object() && meta.contains("signatures") && meta["signatures"].is_array() &&
      !meta["signatures"].empty() && meta["signatures"][0].is_string()) {
    const std::string sig = meta["signatures"][0].get<std::string>();
    size_t pos = 0;
    while (pos < sig.size()) {
      size_t end = sig.find(';', pos);
      if (end == std::string::npos) end = sig.size();
      const std::string item = sig.substr(pos, end - pos);
      const size_t colon = item.find(':'), lb = item.find('['), rb = item.find(']');
      if (colon != std::string::npos && lb != std::string::npos && rb != std::string::npos && lb < rb) {
        std::vector<int64_t> dims;
        const std::string body = item.substr(lb + 1, rb - lb - 1);
        size_t q = 0;
        while (q < body.size()) {
          size_t c = body.find(',', q);
          if (c == std::string::npos) c = body.size();
          dims.push_back(std::atoll(body.substr(q, c - q).c_str()));
          q = c + 1;
        }
        compiled[item.substr(0, colon)] = dims;
      }
      pos = end + 1;
    }
  }
  const kiln::Graph& g = (*session)->graph();
  kiln::NamedTensors inputs;
  std::mt19937 rng(1);
  for (kiln::ValueId v : g.inputs()) {
    const kiln::Value& val = g.value(v);
    kiln::Shape shape;
    const auto it = compiled.find(val.name);
    const kiln::DimVector dims = val.info.shape.value_or(kiln::DimVector{});
    for (size_t i = 0; i < dims.size(); ++i) {
      const bool from_sig = it != compiled.end() && it->second.size() == dims.size();
      shape.push_back(dims[i].is_static() ? dims[i].value : from_sig ? it->second[i] : 1);
    }
    auto t = kiln::Tensor::Allocate(val.info.type, shape);
    if (!t.ok()) return 1;
    if (t->type() == kiln::ElementType::kF32) {
      for (int64_t i = 0; i < t->size(); ++i) t->data<float>()[i] = (rng() % 1000) / 1000.f;
    }
    inputs.emplace_back(val.name, *t);
  }
  {
    // The per-signature plan (shape inference, partitioning, backend compile, memory plan)
    // on its own, so that "run 0" below is the run itself.
    const auto a = Clock::now();
    auto built = (*session)->Plan(inputs);
    if (!built.ok()) {
      std::fprintf(stderr, "error: %s\n", built.status().ToString().c_str());
      return 1;
    }
    std::printf("signature plan: %.2f ms\n",
                std::chrono::duration<double, std::milli>(Clock::now() - a).count());
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
