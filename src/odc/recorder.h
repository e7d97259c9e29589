// ODC recording: while the float model serves, each run is counted and some of its inputs are
// kept in the package (odc/), across processes (each `kiln run` is a new process, as an app
// restart is). State lives in odc/state.json, updated under odc/state.lock (flock: a killed
// holder releases it) by an atomic rename, so concurrent processes neither lose counts nor
// tear the file.
//
// What is kept: input samples, by reservoir sampling bounded by OdcSampleBytes (each run has
// the same chance to be kept, whatever the order), each as odc/samples/<id>/<input>.npy written
// before the state names it. Activation statistics are not gathered per run: a run on the fast
// backends never materialises most intermediate values (they live inside fused partitions), and
// observing them would mean a reference-kernel run, about ten times a normal one. The compile
// job derives the statistics (the quantizer's format, saved to odc/stats.json) from the kept
// calibration samples instead; recording stays a few file operations per run (measured in
// bench/README.md).
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/status.h"
#include "runtime/session.h"

namespace kiln {

struct OdcSample {
  int64_t id = 0;       // the run number it came from
  int64_t bytes = 0;
  std::string folder;   // "odc/samples/<id>"
};

struct OdcState {
  int64_t records = 0;        // recorded runs
  int64_t sample_bytes = 0;   // bytes of kept samples
  std::vector<OdcSample> samples;
  std::map<std::string, int64_t> signatures;  // input signature -> runs
  int64_t last_job_records = -1;              // `records` when the last job ran
  std::string last_job_outcome;

  nlohmann::json ToJson() const;
  static OdcState FromJson(const nlohmann::json& j);
};

// Reads odc/state.json (an empty state when missing; a corrupted file is an error).
Result<OdcState> ReadOdcState(const std::string& package_dir);

// Records one run of `inputs` into the package; returns the state after it. `max_sample_bytes`
// bounds the kept samples.
Result<OdcState> RecordRun(const std::string& package_dir, const NamedTensors& inputs,
                           int64_t max_sample_bytes);
// The same for a run whose inputs are not at hand any more (the serving session's recorder was
// still busy with an earlier sample): the run is counted under its signature, nothing is kept.
Result<OdcState> CountRun(const std::string& package_dir, const std::string& signature);

// Updates the state under its lock (for the compile job's bookkeeping).
Status UpdateOdcState(const std::string& package_dir,
                      const std::function<void(OdcState&)>& edit);

// Loads a kept sample's tensors (one .npy per graph input, in `graph`'s input order).
Result<NamedTensors> LoadOdcSample(const std::string& package_dir, const OdcSample& s,
                                   const Graph& graph);

// "x:f32[1,3,48,320];y:..." for the inputs in the given order.
std::string InputSignature(const NamedTensors& inputs);

}  // namespace kiln
