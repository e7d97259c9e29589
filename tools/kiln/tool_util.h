// Helpers shared by kiln subcommands: parsing NAME=VALUE options, making inputs, printing.
#pragma once

#include <CLI/CLI.hpp>

#include <map>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"
#include "ir/graph.h"
#include "odc/serving_session.h"
#include "runtime/session.h"

namespace kiln::cli {

// "NAME=FILE.npy" items -> tensors by name.
Result<std::map<std::string, Tensor>> ParseInputFiles(const std::vector<std::string>& items);
// "NAME=D0,D1,..." items -> shapes by name ("NAME=" is a scalar).
Result<std::map<std::string, Shape>> ParseShapes(const std::vector<std::string>& items);
// One tensor per graph input: given ones (checked against the model), else random from `seed`:
// floats uniform in [0,1), integers in [0,10), bools 0/1. Dynamic dims come from `shapes`, else
// 1 (with a note on stderr when `verbose`). Given float data of another float type than the input
// declares (f32 into an f16 input) is converted to the declared type, with a note on stderr.
Result<NamedTensors> MakeInputs(const Graph& graph, const std::map<std::string, Tensor>& given,
                                const std::map<std::string, Shape>& shapes, uint64_t seed,
                                bool verbose);
// "min -0.5 max 3.2 mean 0.7 first [0.1, 0.2, ...]"
std::string Summarize(const Tensor& t);
// Every character outside [A-Za-z0-9._-] replaced by '_'.
std::string SanitizeFileName(const std::string& name);

// Where a session may run, as command-line flags shared by run, bench, plan and compare:
//   --threads N  --units cpu_only|cpu_and_gpu|cpu_and_npu|all  --backends xnnpack,ref
//   --pin OP=BACKEND (repeatable)  --no-fallback  --model-type program|network
struct SessionFlags {
  int threads = 1;
  std::string units = "all";
  std::string backends;
  std::vector<std::string> pins;
  bool no_fallback = false;
  bool keep_weights = false;
  bool no_thread_tuning = false;
  std::string model_type;  // empty: the model's own
  std::string isa = "auto";  // CpuIsa level cap for own kernels
  std::string int8_kernel = "auto";  // Int8Kernel
  bool exact_int8 = false;
};
void AddSessionFlags(CLI::App* app, SessionFlags& flags);
Result<SessionOptions> ToSessionOptions(const SessionFlags& flags);
// --config KEY=VALUE (repeatable): package config keys over the package's config.cfg.
void AddConfigFlag(CLI::App* app, std::vector<std::string>& configs);
Result<std::vector<std::pair<std::string, std::string>>> ParseConfigItems(
    const std::vector<std::string>& items);
// What ServingSession::Open takes: the flags for a bare model; for a package, its config.cfg
// with --config keys over it and --threads when given (other session flags: --config keys).
Result<ServeOptions> ToServeOptions(const SessionFlags& flags, const std::vector<std::string>& configs);

}  // namespace kiln::cli
