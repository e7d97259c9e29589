// The on-device compile job (DESIGN.md promise 3): from what the recorder kept, make a
// quantized (mode quantize) or float (mode compile) candidate, compile it into a plan, VALIDATE
// it against the float model on held-out samples, and only then rebuild the package.
//
// Steps, each with the time and memory budget checked between them:
//   1. take odc/compile.lock (flock; a second process gets "busy" and keeps serving; a dead
//      holder's lock is released by the kernel); remove stray temporary files of a crash
//   2. verify the default model's sha256 and import it
//   3. split the kept samples: every third is held out for the gate, the rest calibrate
//   4. quantize: statistics from the calibration samples (saved as odc/stats.json), then the
//      quantizer's accuracy-protecting search (quant/quantize.h) -> models/NAME.q8.onnx
//   5. compile: the session rewrites, then compiled/<key>-g<generation>.kplan (plan_file.h)
//   6. gate: load the plan FROM THE FILE, run it and the float model on the held-out samples;
//      per output loss (OdcMaxAccuracyLoss, see config_keys.inc) and median time of each
//   7. accept only within the loss and not slower than the float model; otherwise retry once
//      keeping more layers float (a quarter of the tolerance), then fall back to a float plan
//   8. rebuild: every new file is written and synced under a temporary name, renamed, then the
//      MANIFEST is replaced atomically; replaced plans go to "retired" and are deleted only
//      after the new generation has served a run (odc/serving_session.h)
// Every outcome is appended to the MANIFEST's odc_history with its measurements and reason.
#pragma once

#include <atomic>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/status.h"
#include "package/package.h"
#include "runtime/session.h"

namespace kiln {

struct CompileJobOptions {
  SessionOptions session;        // the options the plan is compiled for (threads included)
  PackageConfig config;          // mode, budgets, tolerance
  std::string trigger = "manual";
  // Test-only: scramble the calibration statistics so that the gate must reject the result.
  bool break_calibration = false;
  // Set by another thread to abort the job at its next check.
  const std::atomic<bool>* cancel = nullptr;
};

struct CompileJobResult {
  std::string outcome;  // accepted, accepted-float, rejected, aborted, busy, failed, no-samples
  std::string reason;
  std::string plan_path;  // the accepted plan, if any
  nlohmann::json entry;   // the history entry written
};

// Runs the job on the package in `dir`. An error Status only for failures that could not even
// be recorded (an unreadable package); every other outcome is a result with its reason.
Result<CompileJobResult> RunCompileJob(const std::string& dir, const CompileJobOptions& options);

// One output's loss of a candidate vs the float model over samples, as OdcMaxAccuracyLoss
// defines it (the quantizer's measure, pooled over the samples): for a distribution over
// classes along the last axis (values in [0,1], rows summing to 1 within 1 %) the mean change of
// the probability of the class the float model chose (with the argmax agreement beside it);
// otherwise the relative L2 error; non-float outputs: the fraction of differing elements.
// OdcMaxAccuracyLoss = auto: the gate accepts 1.5 times the quantizer's default tolerance of
// each measure (0.015 chosen-class change, 0.3 relative L2). The gate measures on the few
// held-out samples a device keeps (about ten), where the measure varies from set to set by
// about that much (rec: a candidate searched to 0.006 on its calibration lines measured 0.011
// on ten others); the job's search aims at 60 % of the gate, near the quantizer's default.
inline constexpr double kOdcAutoGateFactor = 1.5;

struct OutputLossMeasure {
  std::string measure;            // "chosen-class change", "relative L2", "exact"
  double loss = 0;
  double argmax_agreement = -1;   // distributions only
  double default_tolerance = 0;   // OdcMaxAccuracyLoss = auto: the quantizer's default
};
OutputLossMeasure OutputLoss(const std::vector<const Tensor*>& candidate,
                             const std::vector<const Tensor*>& reference);

// "2026-12-02T21:04:13Z": the time stamp of ODC history entries.
std::string UtcNow();

}  // namespace kiln
