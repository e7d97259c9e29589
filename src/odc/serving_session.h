// ServingSession: what an app (or `kiln run`) opens. A bare .onnx file is imported and run; a
// .kiln package (package/package.h) is served by the best plan it holds for this device, and,
// with OnDeviceCompilation = 1, records while the float model serves and compiles on the device
// (odc/compile_job.h) when its trigger says so.
//
// Choosing what serves, at Open:
//   1. every compiled plan in the MANIFEST whose cache key is `optimal` or `stale` for this
//      device, Kiln and options (plan/cache_key.h); int8 before float, optimal before stale.
//      It is loaded from its file with every section's checksum verified; a plan that fails to
//      load is never run: the failure is recorded in the history and the next candidate (in
//      the end the float model) serves, and ODC rebuilds it.
//   2. otherwise the default model (its sha256 verified; if it is damaged and the original is
//      intact, the original serves instead, with a note).
// `incompatible` plans are never used; `stale` ones serve and ODC rebuilds them.
//
// Recording: a run hands a copy of its inputs (into buffers reused from run to run) to the
// session's recorder thread and returns; the thread writes the sample and the count into the
// package (odc/recorder.h), off the run's path. A run that finds the recorder still busy with
// two earlier samples is only counted. Closing the session writes what is still queued, so no
// recorded run is lost when the process ends normally.
//
// Triggers (OdcTrigger): prepare (the job runs in Open), records (the job starts once the
// count reaches OdcRecords; the next Run waits for it and is served by its result),
// background (the same job, while the float model keeps serving; the session switches to the
// new plan between runs), manual (CompileNow only). Jobs run on the recorder thread; closing
// the session waits for a running job. After a successful job the session switches to the
// compiled plan; later processes load it directly.
//
// Thread safety: Run may be called from several threads (calls are serialised); CompileNow and
// the status calls too.
//
//   ServeOptions so;  so.config["Threads"] = "2";
//   KILN_ASSIGN_OR_RETURN(auto s, ServingSession::Open("det.kiln", so));
//   KILN_ASSIGN_OR_RETURN(auto outputs, s->Run({{"x", x}}));
//   std::printf("%s\n", s->ServedBy().c_str());  // "compiled plan compiled/...kplan (int8)"
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/status.h"
#include "odc/compile_job.h"
#include "package/package.h"
#include "runtime/session.h"

namespace kiln {

struct OdcState;

struct ServeOptions {
  // Session options for a bare .onnx model; for a package they start from its config.cfg.
  SessionOptions session;
  // Config keys (by name) applied over the package's config.cfg; an unknown key is an error.
  std::map<std::string, std::string> config;
  // Threads override (0: from the config / `session`).
  int threads = 0;
  // Record runs for ODC when the package enables it (off: serve only, e.g. `kiln bench`).
  bool record = true;
  // Test-only: passed to the compile job (CompileJobOptions::break_calibration).
  bool break_calibration = false;
};

class ServingSession {
 public:
  static Result<std::unique_ptr<ServingSession>> Open(const std::string& path,
                                                      const ServeOptions& options = {});
  ~ServingSession();

  Result<std::vector<Tensor>> Run(const NamedTensors& inputs);
  // The session serving now (its graph, plan report...). Valid until the next switch: hold
  // the returned shared pointer.
  std::shared_ptr<Session> session() const;
  // "float model models/det.onnx" / "compiled plan compiled/...kplan (int8, optimal)".
  std::string ServedBy() const;
  bool served_by_compiled_plan() const;
  // Notes so far (a copy: the recorder thread may add one at any time).
  std::vector<std::string> notes() const {
    std::lock_guard<std::mutex> l(mu_);
    return notes_;
  }
  bool is_package() const { return package_.has_value(); }

  // Runs the compile job now, synchronously (the manual trigger); switches on success.
  Result<CompileJobResult> CompileNow();
  // Waits until every queued sample is written and no job runs (tests, process exit).
  void WaitForBackgroundJob();
  // JSON: {"enabled", "trigger", "mode", "records", "samples", "sample_bytes", "job_running", ...}
  nlohmann::json OdcStatus() const;
  nlohmann::json OdcHistory() const;
  // Recording for ODC on or off from the next run (the C API's kiln_session_odc_set_recording;
  // callers serialise it with Run).
  void set_record(bool on) { options_.record = on; }
  bool record() const { return options_.record; }
  // Recording cost of the last run to the run itself (copying its inputs for the recorder), in
  // milliseconds (0 when it did not record).
  double last_record_ms() const { return last_record_ms_; }
  // The recorder thread's time for the last sample it wrote (file writes, state update).
  double last_record_write_ms() const { return last_record_write_ms_.load(); }

 private:
  ServingSession() = default;
  Status ServeBest();  // chooses and loads what serves (package)
  Status AfterRun(const NamedTensors& inputs);
  Status SwitchToAcceptedPlan(const std::string& plan_rel);
  Status RetireOldGeneration();
  CompileJobOptions JobOptions(const std::string& trigger) const;

  std::string path_;
  ServeOptions options_;
  std::optional<Package> package_;
  SessionOptions session_options_;
  mutable std::mutex mu_;
  std::shared_ptr<Session> session_;
  std::string served_by_;
  std::string served_plan_;  // package-relative plan path when a plan serves
  bool retire_pending_ = false;
  std::vector<std::string> notes_;
  double last_record_ms_ = 0;
  std::atomic<double> last_record_write_ms_{0};
  // Serialises Run; also guards package_'s manifest (plan switches, retiring, OdcHistory).
  mutable std::mutex run_mu_;
  // The recorder thread: writes queued samples, counts runs, runs jobs when they are due.
  struct RecordItem {
    std::string signature;
    NamedTensors inputs;  // empty: count the run only
    bool predicted_due = false;  // the count this run reaches makes a job due (as predicted)
  };
  // The record count as this process predicts it (read at Open, plus the runs it queued), so
  // that the run reaching OdcRecords knows at once that a job follows (trigger `records`: the
  // next run waits for it). The recorder corrects it from the state it writes.
  int64_t predicted_records_ = -1;
  int64_t predicted_last_job_ = -1;
  void RecorderLoop();
  void StartRecorder();
  void MaybeStartJob(const OdcState& st);
  std::thread recorder_;
  mutable std::mutex rec_mu_;
  mutable std::condition_variable rec_cv_;
  std::deque<RecordItem> rec_queue_;
  std::vector<NamedTensors> rec_spare_;  // written samples' buffers, reused by later runs
  bool rec_busy_ = false;                // an item or a job is being processed
  bool rec_writing_ = false;             // an item is being written
  // Waits until every queued sample and count is written (not for a running job): status and
  // a manual compile see every run made so far.
  void FlushRecorder() const;
  bool rec_stop_ = false;
  bool job_due_ = false;
  std::atomic<bool> job_running_{false};
  std::atomic<bool> cancel_{false};
  std::mutex job_mu_;
  std::optional<CompileJobResult> job_result_;
};

}  // namespace kiln
