// kiln bench MODEL [--shape NAME=D0,D1,...]... [-i NAME=FILE.npy]... [--threads N] [--warmup N]
//                  [--iters N] [--seed S] [--json FILE]
// Times one model or package on this device: load (import + Session::Create; for a package:
// open, verify and map its best plan), the first run, then --iters
// steady-state runs after --warmup more; reports median/p90/min/mean and memory (resident set
// before and right after load, peak over the process). bench/ort_bench.js measures the same for
// ONNX Runtime and bench/side_by_side.py runs both.
#include <sys/resource.h>

#include <algorithm>
#include <map>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <numeric>
#include <optional>
#include <string>

#include "commands.h"
#include "core/cpu_features.h"
#include "core/peak_flops.h"
#include "onnx/importer.h"
#include "runtime/session.h"
#include "odc/serving_session.h"
#include "package/package.h"
#include "tool_util.h"

namespace kiln::cli {
namespace {

struct BenchOptions {
  std::string model;
  std::vector<std::string> inputs;
  std::vector<std::string> shapes;
  std::vector<std::string> configs;
  SessionFlags session;
  int warmup = 2;
  int iters = 10;
  uint64_t seed = 0;
  std::string json;  // "-": JSON on stdout instead of the text report
  bool profile = false;
  int profile_top = 25;
  double peak_gflops = 0;  // one thread's fp32 FMA peak; 0: measured (MeasurePeakGflops)
};

using Clock = std::chrono::steady_clock;

double Ms(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// A "VmRSS:" / "VmHWM:" line of /proc/self/status in MB; -1 where unavailable.
double ProcStatusMb(const std::string& key) {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind(key, 0) == 0) return std::strtod(line.c_str() + key.size(), nullptr) / 1024.0;
  }
  return -1;
}

// Resident set now, in MB.
double CurrentRssMb() { return std::max(0.0, ProcStatusMb("VmRSS:")); }

// Peak resident set of this program, in MB. VmHWM (this address space only) rather than
// getrusage's ru_maxrss, which also counts the peak of the process that forked and exec'd us
// (a Python benchmark driver's own 30 MB, say); ru_maxrss only where /proc is missing.
double PeakRssMb() {
  const double hwm = ProcStatusMb("VmHWM:");
  if (hwm >= 0) return hwm;
  rusage u{};
  if (getrusage(RUSAGE_SELF, &u) != 0) return 0;
  return static_cast<double>(u.ru_maxrss) / 1024.0;  // KiB on Linux
}

struct Stats {
  double median = 0, p90 = 0, min = 0, max = 0, mean = 0;
};

// Median (mean of the middle two for an even count); p90 by nearest rank. Same definitions as
// bench/ort_bench.js.
Stats Summarise(std::vector<double> v) {
  Stats s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  s.median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  const size_t rank = static_cast<size_t>(std::ceil(0.9 * static_cast<double>(n)));
  s.p90 = v[std::max<size_t>(rank, 1) - 1];
  s.min = v.front();
  s.max = v.back();
  s.mean = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(n);
  return s;
}

// Nanosecond resolution: tiny models run in well under a microsecond.
double Round6(double x) { return std::round(x * 1e6) / 1e6; }

// The profile: where the time goes, by node (the top ones), by op type and by partition, with
// the achieved GFLOP/s (2 x multiply-adds / time) where a node does multiply-adds, and that as a
// share of the fp32 FMA peak of the threads it ran on (peak: one thread's GFLOP/s; 0: no column
// value). Winograd convs and int8 steps do other work than a direct fp32 conv's multiply-adds,
// so their share can pass 100%: it says how far from the direct fp32 roofline a step runs.
void PrintProfile(std::vector<ProfileRow> rows, int top, int threads, double peak) {
  double total = 0;
  for (const ProfileRow& r : rows) total += r.us_per_run;
  if (rows.empty() || total <= 0) {
    std::printf("profile: nothing was timed\n");
    return;
  }
  auto gflops = [](double macs, double us) {
    char buf[32] = "";
    if (macs > 0 && us > 0) std::snprintf(buf, sizeof(buf), "%8.1f", 2 * macs / (us * 1e3));
    return std::string(buf);
  };
  auto share = [&](double macs, double us) {
    char buf[32] = "";
    if (macs > 0 && us > 0 && peak > 0) {
      std::snprintf(buf, sizeof(buf), "%5.0f%%", 100 * 2 * macs / (us * 1e3) / (peak * threads));
    }
    return std::string(buf);
  };
  if (peak > 0) {
    std::printf("\nfp32 FMA peak: %.1f GFLOP/s per thread (measured here, or --peak-gflops); "
                "%%peak = GFLOP/s / (peak x %d)\n",
                peak, threads);
  }
  std::sort(rows.begin(), rows.end(),
            [](const ProfileRow& a, const ProfileRow& b) { return a.us_per_run > b.us_per_run; });
  std::printf("\nprofile: %.3f ms per run timed inside (mean over %lld runs incl. the first and "
              "warmup, %d thread%s)\n",
              total / 1e3, static_cast<long long>(rows[0].runs), threads, threads == 1 ? "" : "s");
  std::printf("%10s %6s %6s  %-4s %-8s %-22s %8s %6s  %s\n", "ms/run", "%", "cum%", "part",
              "backend", "op", "GFLOP/s", "%peak", "node (step)");
  double cum = 0;
  for (size_t i = 0; i < rows.size() && static_cast<int>(i) < top; ++i) {
    const ProfileRow& r = rows[i];
    cum += r.us_per_run;
    std::printf("%10.3f %6.1f %6.1f  %-4d %-8s %-22s %8s %6s  %s (%s)\n", r.us_per_run / 1e3,
                100 * r.us_per_run / total, 100 * cum / total, r.partition, r.backend.c_str(),
                r.op_type.c_str(), gflops(r.macs, r.us_per_run).c_str(),
                share(r.macs, r.us_per_run).c_str(), r.node.c_str(), r.what.c_str());
  }
  if (static_cast<int>(rows.size()) > top) {
    std::printf("  ... %zu more steps (--profile-top N)\n", rows.size() - static_cast<size_t>(top));
  }
  struct Sum {
    double us = 0, macs = 0;
    int count = 0;
  };
  auto print_sums = [&](const char* title, const std::map<std::string, Sum>& sums) {
    std::vector<std::pair<std::string, Sum>> v(sums.begin(), sums.end());
    std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.second.us > b.second.us; });
    std::printf("\n%-36s %10s %6s %6s %8s %6s\n", title, "ms/run", "%", "steps", "GFLOP/s",
                "%peak");
    for (const auto& [k, s] : v) {
      std::printf("%-36s %10.3f %6.1f %6d %8s %6s\n", k.c_str(), s.us / 1e3, 100 * s.us / total,
                  s.count, gflops(s.macs, s.us).c_str(), share(s.macs, s.us).c_str());
    }
  };
  std::map<std::string, Sum> by_op, by_part;
  for (const ProfileRow& r : rows) {
    Sum& a = by_op[r.backend + " " + r.op_type];
    a.us += r.us_per_run;
    a.macs += r.macs;
    ++a.count;
    Sum& b = by_part["partition " + std::to_string(r.partition) + " (" + r.backend + ")"];
    b.us += r.us_per_run;
    b.macs += r.macs;
    ++b.count;
  }
  print_sums("by op type", by_op);
  print_sums("by partition", by_part);
}

Status DoBench(const BenchOptions& o) {
  KILN_ASSIGN_OR_RETURN(auto given, ParseInputFiles(o.inputs));
  KILN_ASSIGN_OR_RETURN(auto shapes, ParseShapes(o.shapes));
  const bool json_stdout = o.json == "-";
  std::ofstream json_file;  // opened now so that a bad path fails before a long benchmark
  if (!o.json.empty() && !json_stdout) {
    json_file.open(o.json, std::ios::binary | std::ios::trunc);
    if (!json_file) return IoError("cannot write " + o.json);
  }
  const double rss_before = CurrentRssMb();

  // A package is served as an app would open it (its best compiled plan for this device, else
  // its model; load = open + verify + map + session); the benchmark's runs are not recorded.
  const bool package = IsPackagePath(o.model);
  std::unique_ptr<ServingSession> serving;
  std::shared_ptr<Session> session;
  const auto t0 = Clock::now();
  auto t1 = t0;
  if (package) {
    KILN_ASSIGN_OR_RETURN(ServeOptions serve, ToServeOptions(o.session, o.configs));
    serve.record = false;
    serve.session.profile = o.profile;
    KILN_ASSIGN_OR_RETURN(serving, ServingSession::Open(o.model, serve));
    session = serving->session();
  } else {
    if (!o.configs.empty()) return InvalidArgument("--config applies to packages; " + o.model + " is a bare model");
    KILN_ASSIGN_OR_RETURN(Model model, ImportOnnxFile(o.model));
    t1 = Clock::now();
    KILN_ASSIGN_OR_RETURN(SessionOptions so, ToSessionOptions(o.session));
    so.profile = o.profile;
    KILN_ASSIGN_OR_RETURN(session, Session::Create(std::move(model), so));
  }
  const auto t2 = Clock::now();
  const double rss_after_load = CurrentRssMb();

  KILN_ASSIGN_OR_RETURN(NamedTensors inputs,
                        MakeInputs(session->graph(), given, shapes, o.seed, true));

  auto a = Clock::now();
  KILN_RETURN_IF_ERROR(session->Run(inputs).status());
  const double first = Ms(a, Clock::now());
  for (int i = 0; i < o.warmup; ++i) KILN_RETURN_IF_ERROR(session->Run(inputs).status());
  std::vector<double> times;
  times.reserve(static_cast<size_t>(o.iters));
  for (int i = 0; i < o.iters; ++i) {
    a = Clock::now();
    KILN_RETURN_IF_ERROR(session->Run(inputs).status());
    times.push_back(Ms(a, Clock::now()));
  }
  const Stats s = Summarise(times);
  const double peak = PeakRssMb();
  const double rss_end = CurrentRssMb();
  const double released_mb = static_cast<double>(session->released_weight_bytes()) / (1 << 20);

  nlohmann::ordered_json j;
  j["tool"] = "kiln";
  j["model"] = o.model;
  if (serving) j["served_by"] = serving->ServedBy();
  j["threads"] = o.session.threads;
  j["units"] = o.session.units;
  j["backends"] = o.session.backends;
  j["warmup"] = o.warmup;
  j["iters"] = o.iters;
  j["inputs"] = nlohmann::ordered_json::array();
  for (const auto& [name, t] : inputs) {
    j["inputs"].push_back({{"name", name},
                           {"type", ElementTypeName(t.type())},
                           {"shape", t.shape()}});
  }
  j["import_ms"] = Round6(Ms(t0, t1));
  j["prepare_ms"] = Round6(Ms(t1, t2));
  j["load_ms"] = Round6(Ms(t0, t2));
  j["first_run_ms"] = Round6(first);
  j["median_ms"] = Round6(s.median);
  j["p90_ms"] = Round6(s.p90);
  j["min_ms"] = Round6(s.min);
  j["max_ms"] = Round6(s.max);
  j["mean_ms"] = Round6(s.mean);
  j["times_ms"] = nlohmann::ordered_json::array();
  for (double t : times) j["times_ms"].push_back(Round6(t));
  j["rss_before_load_mb"] = Round6(rss_before);
  j["rss_after_load_mb"] = Round6(rss_after_load);
  j["peak_rss_mb"] = Round6(peak);
  j["rss_after_runs_mb"] = Round6(rss_end);
  j["released_weights_mb"] = Round6(released_mb);

  std::vector<ProfileRow> profile;
  double peak_gflops = 0;
  if (o.profile) {
    profile = session->Profile();
    // The roofline the profile's %peak column divides by: one thread's fp32 FMA peak at the
    // level the session's kernels ran at (measured after the timed runs: ~50 ms).
    std::optional<CpuIsa> want;
    if (o.session.isa != "auto") want = ParseCpuIsa(o.session.isa);
    peak_gflops =
        o.peak_gflops > 0 ? o.peak_gflops : MeasurePeakGflops(EffectiveCpuIsa(want), 0.05);
    j["peak_gflops_per_thread"] = Round6(peak_gflops);
    j["profile"] = nlohmann::ordered_json::array();
    for (const ProfileRow& r : profile) {
      j["profile"].push_back({{"partition", r.partition},
                              {"backend", r.backend},
                              {"node", r.node},
                              {"op_type", r.op_type},
                              {"what", r.what},
                              {"us_per_run", Round6(r.us_per_run)},
                              {"runs", r.runs},
                              {"macs", r.macs}});
    }
  }

  if (json_stdout) {
    std::printf("%s\n", j.dump(2).c_str());
    return Status::Ok();
  }
  std::printf("model: %s\n", o.model.c_str());
  if (serving) std::printf("serving: %s\n", serving->ServedBy().c_str());
  for (const auto& [name, t] : inputs) {
    std::printf("input %-24s %s\n", name.c_str(), t.Describe().c_str());
  }
  std::printf("threads %d, warmup %d, iters %d\n", o.session.threads, o.warmup, o.iters);
  std::printf(
      "load: %.1f ms (import %.1f ms, prepare %.1f ms); RSS %.1f MB before, %.1f MB after\n",
              Ms(t0, t2), Ms(t0, t1), Ms(t1, t2), rss_before, rss_after_load);
  std::printf("first run: %.2f ms\n", first);
  std::printf("steady state over %d runs: median %.2f ms, p90 %.2f ms, min %.2f ms, mean %.2f ms\n",
              o.iters, s.median, s.p90, s.min, s.mean);
  std::printf("peak RSS: %.1f MB; after the runs %.1f MB (model weights released after packing: "
              "%.1f MB)\n", peak, rss_end, released_mb);
  if (o.profile) PrintProfile(profile, o.profile_top, o.session.threads, peak_gflops);
  if (json_file.is_open()) {
    json_file << j.dump(2) << "\n";
    json_file.close();
    if (!json_file) return IoError("cannot write " + o.json);
  }
  return Status::Ok();
}

}  // namespace

Command AddBenchCommand(CLI::App& app) {
  auto o = std::make_shared<BenchOptions>();
  CLI::App* sub = app.add_subcommand(
      "bench", "Time a model: load, first run, steady-state runs, memory");
  sub->add_option("model", o->model, "ONNX model file or Kiln package (kiln pack)")->required();
  AddConfigFlag(sub, o->configs);
  sub->add_option("-i,--input", o->inputs, "Input from a .npy file: NAME=FILE.npy (repeatable)");
  sub->add_option("--shape", o->shapes,
                  "Fix an input's shape for random data: NAME=D0,D1,... (repeatable)");
  AddSessionFlags(sub, o->session);
  sub->add_option("--warmup", o->warmup, "Untimed runs after the first one")
      ->check(CLI::Range(0, 100000));
  sub->add_option("--iters", o->iters, "Timed steady-state runs")->check(CLI::Range(1, 100000));
  sub->add_option("--seed", o->seed, "Seed for random inputs");
  sub->add_flag("--profile", o->profile,
                "Time every node and partition step; print where the time goes (top steps, by "
                "op type, by partition, GFLOP/s of multiply-add ops); in --json as \"profile\"");
  sub->add_option("--profile-top", o->profile_top, "Steps listed by --profile (default 25)")
      ->check(CLI::Range(1, 1000000));
  sub->add_option("--peak-gflops", o->peak_gflops,
                  "One thread's fp32 FMA peak for --profile's %peak column (default: measured "
                  "at the session's ISA level, bench/peak_flops.cc's loop)")
      ->check(CLI::Range(0.0, 1e6));
  sub->add_option("--json", o->json,
                  "Also write the results as JSON to this file ('-': JSON only, on stdout)");
  return {sub, [o] { return DoBench(*o); }};
}

}  // namespace kiln::cli
