#include "odc/serving_session.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "core/sha256.h"
#include "odc/recorder.h"
#include "onnx/importer.h"
#include "package/fs_util.h"
#include "plan/cache_key.h"
#include "plan/plan_file.h"

namespace kiln {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

Status RecordHistory(Package& pkg, json entry) {
  entry["time"] = UtcNow();
  return pkg.UpdateManifest([&](Manifest& m) {
    m.odc_history.push_back(entry);
    return Status::Ok();
  });
}

}  // namespace

Result<std::unique_ptr<ServingSession>> ServingSession::Open(const std::string& path,
                                                             const ServeOptions& options) {
  std::unique_ptr<ServingSession> s(new ServingSession());
  s->path_ = path;
  s->options_ = options;
  if (!IsPackagePath(path)) {
    if (fs::is_directory(path)) {
      return InvalidArgument(path + " is a folder but not a Kiln package (no metadata/MANIFEST)");
    }
    if (!options.config.empty()) {
      return InvalidArgument("config keys apply to packages; " + path + " is a bare model");
    }
    KILN_ASSIGN_OR_RETURN(Model model, ImportOnnxFile(path));
    SessionOptions so = options.session;
    if (options.threads > 0) so.threads = options.threads;
    s->session_options_ = so;
    KILN_ASSIGN_OR_RETURN(auto session, Session::Create(std::move(model), so));
    s->session_ = std::move(session);
    s->served_by_ = "model " + path;
    return s;
  }
  KILN_ASSIGN_OR_RETURN(Package pkg, Package::Open(path));
  for (const auto& [k, v] : options.config) {
    KILN_RETURN_IF_ERROR(SetConfigKey(pkg.mutable_config(), k, v));
  }
  KILN_ASSIGN_OR_RETURN(SessionOptions so, pkg.config().ToSessionOptions());
  so.extra_backends = options.session.extra_backends;
  if (options.threads > 0) so.threads = options.threads;
  s->session_options_ = so;
  s->package_ = std::move(pkg);
  KILN_RETURN_IF_ERROR(s->ServeBest());
  if (s->package_->config().on_device_compilation) {
    auto st = ReadOdcState(s->package_->dir());
    if (st.ok()) {
      s->predicted_records_ = st->records;
      s->predicted_last_job_ = st->last_job_records;
    }
  }
  const PackageConfig& c = s->package_->config();
  if (c.on_device_compilation && c.odc_trigger == OdcTrigger::kPrepare &&
      !s->served_by_compiled_plan()) {
    auto r = s->CompileNow();
    if (!r.ok()) s->notes_.push_back("ODC at prepare failed: " + r.status().message());
  }
  return s;
}

ServingSession::~ServingSession() {
  WaitForBackgroundJob();
  {
    std::lock_guard<std::mutex> l(rec_mu_);
    rec_stop_ = true;
  }
  rec_cv_.notify_all();
  if (recorder_.joinable()) recorder_.join();
}

Status ServingSession::ServeBest() {
  Package& pkg = *package_;
  const Manifest& m = pkg.manifest();
  const std::string& source = m.default_model;
  const ManifestModel* mm = m.FindModel(source);
  const std::string precision = mm && !mm->precision.empty() ? mm->precision : "fp32";
  const std::string source_hash = m.files.at(source).sha256;
  std::string model_type = pkg.config().model_type;
  CacheKey wanted = CurrentKey(source_hash, precision, "program", session_options_);
  // Candidates: optimal int8, optimal float, stale int8, stale float.
  struct Cand {
    const ManifestPlan* plan;
    KeyComparison cmp;
  };
  std::vector<Cand> cands;
  for (const ManifestPlan& p : m.plans) {
    auto key = CacheKey::FromJson(p.key);
    if (!key.ok()) continue;
    wanted.model_type = key->model_type;  // the model's own type, checked at compile time
    if (model_type != "auto" && key->model_type != model_type) continue;
    KeyComparison cmp = CompareKeys(*key, wanted);
    if (cmp.compatibility == PlanCompatibility::kIncompatible) continue;
    cands.push_back({&p, cmp});
  }
  std::stable_sort(cands.begin(), cands.end(), [](const Cand& a, const Cand& b) {
    auto rank = [](const Cand& c) {
      return (c.cmp.compatibility == PlanCompatibility::kOptimal ? 0 : 2) +
             (c.plan->precision == "int8" ? 0 : 1);
    };
    return rank(a) < rank(b);
  });
  for (const Cand& c : cands) {
    auto loaded = LoadPlanFile(pkg.Path(c.plan->path));
    if (!loaded.ok()) {
      {
        std::lock_guard<std::mutex> ml(mu_);
        notes_.push_back("plan " + c.plan->path + " rejected: " + loaded.status().message());
      }
      (void)RecordHistory(pkg, {{"outcome", "plan-rejected"},
                                {"plan", c.plan->path},
                                {"reason", loaded.status().message()}});
      continue;
    }
    json meta = json::parse(loaded->contents.meta_json, nullptr, false);
    std::vector<std::string> notes;
    if (meta.is_object() && meta.contains("notes") && meta["notes"].is_array()) {
      for (const auto& n : meta["notes"]) {
        if (n.is_string()) notes.push_back(n.get<std::string>());
      }
    }
    auto session = Session::CreatePrepared(std::move(loaded->model), session_options_, notes);
    if (!session.ok()) {
      {
        std::lock_guard<std::mutex> ml(mu_);
        notes_.push_back("plan " + c.plan->path + " cannot serve: " + session.status().message());
      }
      continue;
    }
    session_ = std::move(session).value();
    served_plan_ = c.plan->path;
    served_by_ = "compiled plan " + c.plan->path + " (" + c.plan->precision + ", " +
                 PlanCompatibilityName(c.cmp.compatibility) +
                 (c.cmp.reason.empty() ? "" : ": " + c.cmp.reason) + ")";
    if (c.cmp.compatibility == PlanCompatibility::kStale) {
      {
        std::lock_guard<std::mutex> ml(mu_);
        notes_.push_back("plan " + c.plan->path + " is stale (" + c.cmp.reason + "): rebuild advised");
      }
    }
    retire_pending_ = !m.retired.empty();
    return Status::Ok();
  }
  // The float model: the default one, else the original when the default is damaged.
  std::string use = source;
  Status v = pkg.VerifyFile(source);
  if (!v.ok()) {
    if (m.original_model != source && pkg.VerifyFile(m.original_model).ok()) {
      {
        std::lock_guard<std::mutex> ml(mu_);
        notes_.push_back(v.message() + "; serving the original model " + m.original_model);
      }
      use = m.original_model;
    } else {
      return v;
    }
  }
  KILN_ASSIGN_OR_RETURN(Model model, ImportOnnxFile(pkg.Path(use)));
  KILN_ASSIGN_OR_RETURN(auto session, Session::Create(std::move(model), session_options_));
  session_ = std::move(session);
  served_plan_.clear();
  served_by_ = "float model " + use;
  return Status::Ok();
}

std::shared_ptr<Session> ServingSession::session() const {
  std::lock_guard<std::mutex> l(mu_);
  return session_;
}

std::string ServingSession::ServedBy() const {
  std::lock_guard<std::mutex> l(mu_);
  return served_by_;
}

bool ServingSession::served_by_compiled_plan() const {
  std::lock_guard<std::mutex> l(mu_);
  return !served_plan_.empty();
}

CompileJobOptions ServingSession::JobOptions(const std::string& trigger) const {
  CompileJobOptions jo;
  jo.session = session_options_;
  jo.config = package_->config();
  jo.trigger = trigger;
  jo.break_calibration = options_.break_calibration;
  jo.cancel = &cancel_;
  return jo;
}

Status ServingSession::SwitchToAcceptedPlan(const std::string& plan_rel) {
  KILN_RETURN_IF_ERROR(package_->Reload());
  auto loaded = LoadPlanFile(package_->Path(plan_rel));
  if (!loaded.ok()) return loaded.status();
  auto session = Session::CreatePrepared(std::move(loaded->model), session_options_);
  if (!session.ok()) return session.status();
  std::string precision;
  for (const auto& p : package_->manifest().plans) {
    if (p.path == plan_rel) precision = p.precision;
  }
  std::lock_guard<std::mutex> l(mu_);
  session_ = std::move(session).value();
  served_plan_ = plan_rel;
  served_by_ = "compiled plan " + plan_rel + " (" + precision + ", optimal)";
  retire_pending_ = !package_->manifest().retired.empty();
  return Status::Ok();
}

Result<CompileJobResult> ServingSession::CompileNow() {
  if (!package_) return InvalidArgument(path_ + " is a bare model: on-device compilation needs a package (kiln pack)");
  FlushRecorder();  // the job sees every run recorded so far
  KILN_ASSIGN_OR_RETURN(CompileJobResult r, RunCompileJob(package_->dir(), JobOptions("manual")));
  if (!r.plan_path.empty()) {
    std::lock_guard<std::mutex> rl(run_mu_);
    KILN_RETURN_IF_ERROR(SwitchToAcceptedPlan(r.plan_path));
  }
  return r;
}

void ServingSession::WaitForBackgroundJob() {
  std::unique_lock<std::mutex> l(rec_mu_);
  rec_cv_.wait(l, [this] { return rec_queue_.empty() && !rec_busy_ && !job_due_; });
}

void ServingSession::FlushRecorder() const {
  std::unique_lock<std::mutex> l(rec_mu_);
  rec_cv_.wait(l, [this] { return rec_queue_.empty() && !rec_writing_; });
}

void ServingSession::StartRecorder() {
  if (!recorder_.joinable()) recorder_ = std::thread([this] { RecorderLoop(); });
}

void ServingSession::RecorderLoop() {
  const PackageConfig& c = package_->config();
  std::unique_lock<std::mutex> l(rec_mu_);
  for (;;) {
    rec_cv_.wait(l, [this] { return rec_stop_ || !rec_queue_.empty() || job_due_; });
    if (job_due_) {
      job_due_ = false;
      rec_busy_ = true;
      l.unlock();
      const char* trigger = c.odc_trigger == OdcTrigger::kBackground ? "background" : "records";
      auto r = RunCompileJob(package_->dir(), JobOptions(trigger));
      if (r.ok() && !r->plan_path.empty()) {
        // Between runs: the accepted plan serves from the next Run on.
        std::lock_guard<std::mutex> rl(run_mu_);
        Status sw = SwitchToAcceptedPlan(r->plan_path);
        if (!sw.ok()) {
          std::lock_guard<std::mutex> ml(mu_);
          notes_.push_back("ODC: cannot switch to " + r->plan_path + ": " + sw.message());
        }
      }
      {
        std::lock_guard<std::mutex> jl(job_mu_);
        if (r.ok()) {
          job_result_ = *r;
        } else {
          CompileJobResult f;
          f.outcome = "failed";
          f.reason = r.status().message();
          job_result_ = f;
        }
      }
      job_running_ = false;
      l.lock();
      rec_busy_ = false;
      rec_cv_.notify_all();
      continue;
    }
    if (rec_queue_.empty()) {
      if (rec_stop_) return;
      continue;
    }
    RecordItem item = std::move(rec_queue_.front());
    rec_queue_.pop_front();
    rec_busy_ = true;
    rec_writing_ = true;
    l.unlock();
    const auto a = std::chrono::steady_clock::now();
    Result<OdcState> st = item.inputs.empty()
                              ? CountRun(package_->dir(), item.signature)
                              : RecordRun(package_->dir(), item.inputs, c.odc_sample_bytes);
    last_record_write_ms_ =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - a).count();
    l.lock();
    rec_writing_ = false;
    if (!item.inputs.empty() && rec_spare_.size() < 2) rec_spare_.push_back(std::move(item.inputs));
    if (st.ok()) {
      const bool due = st->records >= c.odc_records &&
                       (st->last_job_records < 0 ||
                        st->records >= st->last_job_records + c.odc_records);
      if (due && (c.odc_trigger == OdcTrigger::kRecords ||
                  c.odc_trigger == OdcTrigger::kBackground) &&
          (!job_running_ || item.predicted_due)) {
        job_running_ = true;
        job_due_ = true;
      } else if (item.predicted_due) {
        job_running_ = false;  // another process's job came first: not due after all
      }
      predicted_records_ = std::max(predicted_records_, st->records);
      predicted_last_job_ = st->last_job_records;
    } else {
      if (item.predicted_due) job_running_ = false;
      std::lock_guard<std::mutex> ml(mu_);
      notes_.push_back("ODC recording: " + st.status().message());
    }
    rec_busy_ = false;
    rec_cv_.notify_all();
  }
}

Status ServingSession::RetireOldGeneration() {
  // The new generation has served a run: the previous one's files can go. Only under the
  // compile lock, so that a job in another process is not disturbed.
  auto lock = FileLock::TryAcquire(package_->Path("odc/compile.lock"));
  if (!lock.ok() || !lock->has_value()) return Status::Ok();
  std::vector<std::string> removed;
  KILN_RETURN_IF_ERROR(package_->UpdateManifest([&](Manifest& m) {
    for (const std::string& r : m.retired) {
      bool used = m.files.count(r) && (r == m.default_model || r == m.original_model);
      for (const auto& p : m.plans) used = used || p.path == r || p.source_model == r;
      if (!used) {
        m.files.erase(r);
        std::vector<ManifestModel> models;
        for (const auto& mm : m.models) {
          if (mm.path != r) models.push_back(mm);
        }
        m.models = models;
        removed.push_back(r);
      }
    }
    m.retired.clear();
    return Status::Ok();
  }));
  std::error_code ec;
  for (const std::string& r : removed) fs::remove(package_->Path(r), ec);
  return Status::Ok();
}

Status ServingSession::AfterRun(const NamedTensors& inputs) {
  if (retire_pending_) {
    retire_pending_ = false;
    KILN_RETURN_IF_ERROR(RetireOldGeneration());
  }
  const PackageConfig& c = package_->config();
  if (!c.on_device_compilation || !options_.record) return Status::Ok();
  if (!served_plan_.empty()) return Status::Ok();  // a compiled plan serves: nothing to learn
  if (job_running_) return Status::Ok();
  const auto a = std::chrono::steady_clock::now();
  RecordItem item;
  item.signature = InputSignature(inputs);
  if (std::lock_guard<std::mutex> pl(rec_mu_); predicted_records_ >= 0) {
    ++predicted_records_;
    item.predicted_due = predicted_records_ >= c.odc_records &&
                         (predicted_last_job_ < 0 ||
                          predicted_records_ >= predicted_last_job_ + c.odc_records) &&
                         (c.odc_trigger == OdcTrigger::kRecords ||
                          c.odc_trigger == OdcTrigger::kBackground);
    if (item.predicted_due) job_running_ = true;  // no more recording; `records`: next Run waits
  }
  {
    std::unique_lock<std::mutex> l(rec_mu_);
    const bool keep = rec_queue_.size() < 2;  // else the recorder is behind: count only
    NamedTensors copy;
    if (keep) {
      // Reuse a written sample's buffers when the shapes match (no fresh pages to fault in).
      for (size_t i = 0; i < rec_spare_.size() && copy.empty(); ++i) {
        NamedTensors& sp = rec_spare_[i];
        bool same = sp.size() == inputs.size();
        for (size_t k = 0; same && k < inputs.size(); ++k) {
          same = sp[k].first == inputs[k].first && sp[k].second.type() == inputs[k].second.type() &&
                 sp[k].second.shape() == inputs[k].second.shape() &&
                 sp[k].second.type() != ElementType::kString && sp[k].second.owns_storage();
        }
        if (same) {
          copy = std::move(sp);
          rec_spare_.erase(rec_spare_.begin() + static_cast<long>(i));
        }
      }
      l.unlock();
      if (!copy.empty()) {
        for (size_t k = 0; k < inputs.size(); ++k) {
          std::memcpy(copy[k].second.raw(), inputs[k].second.raw(), inputs[k].second.bytes());
        }
      } else {
        for (const auto& [name, t] : inputs) copy.emplace_back(name, t.Clone());
      }
      l.lock();
    }
    item.inputs = std::move(copy);
    StartRecorder();
    rec_queue_.push_back(std::move(item));
  }
  rec_cv_.notify_all();
  last_record_ms_ =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - a).count();
  return Status::Ok();
}

Result<std::vector<Tensor>> ServingSession::Run(const NamedTensors& inputs) {
  // Trigger `records`: a due job finishes (and its plan takes over) before the next run.
  if (package_ && package_->config().odc_trigger == OdcTrigger::kRecords && job_running_) {
    WaitForBackgroundJob();
  }
  std::lock_guard<std::mutex> run_lock(run_mu_);
  // A finished job's outcome, as a note (its plan already serves).
  if (package_ && !job_running_) {
    std::optional<CompileJobResult> done;
    {
      std::lock_guard<std::mutex> l(job_mu_);
      done.swap(job_result_);
    }
    if (done) {
      {
        std::lock_guard<std::mutex> ml(mu_);
        notes_.push_back("ODC job: " + done->outcome +
                         (done->reason.empty() ? "" : " (" + done->reason + ")"));
      }
    }
  }
  std::shared_ptr<Session> s = session();
  KILN_ASSIGN_OR_RETURN(std::vector<Tensor> out, s->Run(inputs));
  if (package_) {
    Status st = AfterRun(inputs);
    if (!st.ok()) {
      std::lock_guard<std::mutex> ml(mu_);
      notes_.push_back("ODC: " + st.message());  // serving never fails for ODC
    }
  }
  return out;
}

json ServingSession::OdcStatus() const {
  json j;
  if (!package_) return json{{"enabled", false}, {"reason", "a bare model, not a package"}};
  const PackageConfig& c = package_->config();
  j["enabled"] = c.on_device_compilation;
  j["trigger"] = OdcTriggerName(c.odc_trigger);
  j["mode"] = OdcModeName(c.odc_mode);
  j["records_needed"] = c.odc_records;
  FlushRecorder();  // every run made so far is counted in what is read below
  auto st = ReadOdcState(package_->dir());
  if (st.ok()) {
    j["records"] = st->records;
    j["samples"] = st->samples.size();
    j["sample_bytes"] = st->sample_bytes;
    j["signatures"] = st->signatures;
    j["last_job_outcome"] = st->last_job_outcome;
  }
  j["job_running"] = job_running_.load();
  j["served_by"] = ServedBy();
  return j;
}

json ServingSession::OdcHistory() const {
  if (!package_) return json::array();
  // Copied under run_mu_: plan switches (the recorder thread's job, CompileNow) reload the
  // manifest and retiring a generation after a run rewrites it, all under run_mu_, while this
  // may be called from any thread.
  Package p = [&] {
    std::lock_guard<std::mutex> rl(run_mu_);
    return *package_;
  }();
  json kept = p.manifest().odc_history;
  if (!p.Reload().ok()) return kept;
  return p.manifest().odc_history;
}

}  // namespace kiln
