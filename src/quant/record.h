// Calibration data and recording: loading sample inputs from .npy files, and running the float
// model on the reference backend while an observer records every float value's statistics.
//
// Sample folder layouts (LoadCalibrationSamples):
//   DIR/<sample>/<NAME>.npy   one sub-folder per sample, one file per graph input (NAME with
//                             characters outside [A-Za-z0-9._-] replaced by '_', as `kiln run`)
//   DIR/<sample>.npy          single-input models only: one file per sample
// Samples are taken in name order; at most `max_samples`.
//
//   KILN_ASSIGN_OR_RETURN(auto samples, LoadCalibrationSamples("calib/", model.graph, 64));
//   CalibrationStats stats;
//   KILN_RETURN_IF_ERROR(RecordStatistics(model, samples, {}, stats));
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/status.h"
#include "ir/graph.h"
#include "quant/calibration.h"
#include "runtime/session.h"

namespace kiln {

// Called after each step of a long pass: phase name, steps done, steps in all.
using ProgressFn = std::function<void(const std::string& phase, int done, int total)>;

Result<std::vector<NamedTensors>> LoadCalibrationSamples(const std::string& dir,
                                                         const Graph& graph, int max_samples);

struct RecordOptions {
  int threads = 1;
  ProgressFn progress;
};

// Runs a copy of `model` once per sample with the reference backend (so that every node's
// output is seen) and adds every float graph input and node output to `stats`.
Status RecordStatistics(const Model& model, const std::vector<NamedTensors>& samples,
                        const RecordOptions& options, CalibrationStats& stats);

}  // namespace kiln
