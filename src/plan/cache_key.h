// The cache key of a compiled plan: everything its results and its validity depend on
// (DESIGN.md "The package"): the plan format version, Kiln's build (kernels), the source model's
// sha256, the CPU (vendor, model name, the instruction-set features Kiln's kernels dispatch on),
// the compute units, precision, model type, the session options that change results (backend
// order, pins, fallback, QDQ fusion) and the input signatures the plan was compiled for.
//
// Against the device and Kiln at hand a stored key is (Compare):
//   optimal       everything matches;
//   stale         usable, rebuild advised: another Kiln build, or the same CPU features on
//                 another CPU model (the kernels it selects still run, tuned elsewhere);
//   incompatible  never used: another plan format, another source model, CPU features this CPU
//                 lacks, or other options/units/precision than the session asks for.
// Threads are not in the key: Kiln's kernels give the same results at any thread count.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/status.h"
#include "runtime/session.h"

namespace kiln {

struct CpuIdentity {
  std::string vendor;                 // "AMD", "Intel", ...
  std::string model;                  // "AMD EPYC 9B45"
  std::vector<std::string> features;  // sorted: "avx2", "avx512f", "avx512vnni", ...
  static const CpuIdentity& Current();
};

struct CacheKey {
  uint32_t plan_format = 0;
  std::string kiln_build;
  // The model the plan serves in place of: the package's default (float) model, also for an
  // int8 plan that on-device compilation derived from it.
  std::string source_sha256;
  CpuIdentity cpu;
  std::string units;       // "all", "cpu_only", ...
  std::string precision;   // what the plan runs: "fp32", "fp16", "mixed", "int8" (informative:
                           // not compared, an int8 plan replaces its float source)
  std::string model_type;  // "program" / "network"
  std::string options;     // canonical text of the result-changing session options
  std::vector<std::string> signatures;  // "x:f32[1,3,48,320];..." per compiled signature

  nlohmann::json ToJson() const;
  static Result<CacheKey> FromJson(const nlohmann::json& j);
  // A short stable hash of the key without its signatures (file names: compiled/<hash>.kplan).
  std::string Hash() const;
};

// The key a session with `options` over a source model with hash `source_sha256` and
// `precision` would build on this device with this Kiln (signatures empty).
CacheKey CurrentKey(const std::string& source_sha256, const std::string& precision,
                    const std::string& model_type, const SessionOptions& options);
// Canonical text of the options that change results.
std::string CanonicalOptions(const SessionOptions& options);

enum class PlanCompatibility { kOptimal, kStale, kIncompatible };
const char* PlanCompatibilityName(PlanCompatibility c);  // "optimal" / "stale" / "incompatible"

struct KeyComparison {
  PlanCompatibility compatibility = PlanCompatibility::kIncompatible;
  std::string reason;  // "" when optimal; otherwise what differs
};
// `stored` (from a plan) against `wanted` (CurrentKey); signatures are not compared.
KeyComparison CompareKeys(const CacheKey& stored, const CacheKey& wanted);

}  // namespace kiln
