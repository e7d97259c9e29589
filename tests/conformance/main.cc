// ONNX backend conformance runner.
//
// Runs every model of the ONNX backend test suite (libonnx-testdata: suites node, simple,
// pytorch-converted, pytorch-operator) on Kiln and compares each output with the expected one
// (floating: rtol 1e-3, atol 1e-7, NaN equals NaN; integers, bools and strings exact). Each test
// runs in a child process with a time limit, so a crash or hang is one failed test with a reason.
// Prints a table per suite and the failing tests, then compares with the checked-in list of
// known failures: a failure not on that list, or a listed one failing with another message than
// the one listed (a crash, say, where a missing op was expected), is a regression and makes the
// exit status 1.
//
//   kiln_conformance --data /usr/share/libonnx-testdata/data
//       --known-failures tests/conformance/known_failures.txt [--filter REGEX] [--write-known FILE]
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "core/tensor_compare.h"
#include "onnx/importer.h"
#include "runtime/session.h"

namespace fs = std::filesystem;
using namespace kiln;

namespace {

constexpr double kRtol = 1e-3;
constexpr double kAtol = 1e-7;

// AllClose for tensors; sequences and optionals item by item.
Status CompareValues(const Tensor& expected, const Tensor& actual) {
  if (expected.is_tensor() && actual.is_tensor()) return AllClose(expected, actual, kRtol, kAtol);
  if (expected.kind() != actual.kind() || expected.items().size() != actual.items().size()) {
    return InvalidArgument("expected " + expected.Describe() + ", got " + actual.Describe());
  }
  for (size_t k = 0; k < expected.items().size(); ++k) {
    Status s = CompareValues(expected.items()[k], actual.items()[k]);
    if (!s.ok()) return s.WithContext("item " + std::to_string(k));
  }
  return Status::Ok();
}

// Runs one test directory; Ok or the reason it failed.
Status RunTest(const fs::path& dir) {
  auto model = ImportOnnxFile((dir / "model.onnx").string());
  if (!model.ok()) return model.status().WithContext("load");
  std::vector<std::string> input_names;
  std::vector<ElementType> input_types, output_types;
  std::vector<TensorKind> input_kinds, output_kinds;  // sequences/optionals are other protos
  for (ValueId v : model->graph.inputs()) {
    input_names.push_back(model->graph.value(v).name);
    input_types.push_back(model->graph.value(v).info.type);
    input_kinds.push_back(model->graph.value(v).info.kind);
  }
  for (ValueId v : model->graph.outputs()) {
    output_types.push_back(model->graph.value(v).info.type);
    output_kinds.push_back(model->graph.value(v).info.kind);
  }
  // The ONNX 1.12 test generator stores bfloat16 tensors as uint16 bit patterns: read those bits
  // as the bf16 the model declares.
  auto as_declared = [](Tensor t, ElementType declared) {
    if (t.type() == ElementType::kU16 && declared == ElementType::kBF16) {
      return Tensor::Wrap(ElementType::kBF16, t.shape(), t.raw()).Clone();
    }
    return t;
  };
  auto session = Session::Create(std::move(model).value(), SessionOptions::Threads(1));
  if (!session.ok()) return session.status().WithContext("prepare");
  std::vector<fs::path> sets;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.is_directory() && e.path().filename().string().rfind("test_data_set_", 0) == 0) {
      sets.push_back(e.path());
    }
  }
  std::sort(sets.begin(), sets.end());
  if (sets.empty()) return InvalidArgument("no test data sets");
  for (const auto& set : sets) {
    NamedTensors inputs;
    for (size_t i = 0;; ++i) {
      fs::path p = set / ("input_" + std::to_string(i) + ".pb");
      if (!fs::exists(p)) break;
      if (i >= input_names.size()) return InvalidArgument("more test inputs than graph inputs");
      auto t = ReadValueProtoFile(p.string(), input_kinds[i]);
      if (!t.ok()) return t.status().WithContext("input " + std::to_string(i));
      inputs.emplace_back(input_names[i], as_declared(std::move(t).value(), input_types[i]));
    }
    auto outputs = (*session)->Run(inputs);
    if (!outputs.ok()) return outputs.status().WithContext("run");
    for (size_t i = 0;; ++i) {
      fs::path p = set / ("output_" + std::to_string(i) + ".pb");
      if (!fs::exists(p)) break;
      if (i >= outputs->size()) return InvalidArgument("model produced too few outputs");
      auto expected = ReadValueProtoFile(p.string(), output_kinds[i]);
      if (!expected.ok()) return expected.status().WithContext("expected output " + std::to_string(i));
      Status s = CompareValues(as_declared(*expected, output_types[i]), (*outputs)[i]);
      if (!s.ok()) return s.WithContext("output " + std::to_string(i));
    }
  }
  return Status::Ok();
}

struct Outcome {
  bool passed = false;
  std::string reason;
};

// Forks, runs the test in the child with a time limit, and reads its verdict from a pipe.
Outcome RunIsolated(const fs::path& dir, int timeout_sec) {
  int fds[2];
  if (pipe(fds) != 0) return {false, "pipe failed"};
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    alarm(static_cast<unsigned>(timeout_sec));
    Status s = RunTest(dir);
    std::string msg = s.ok() ? "PASS" : "FAIL " + s.ToString();
    if (write(fds[1], msg.data(), msg.size()) < 0) _exit(3);
    close(fds[1]);
    _exit(0);
  }
  close(fds[1]);
  std::string msg;
  char buf[4096];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof(buf))) > 0) msg.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    return {false, sig == SIGALRM ? "timed out after " + std::to_string(timeout_sec) + " s"
                                  : "crashed with signal " + std::to_string(sig) + " (" + strsignal(sig) + ")"};
  }
  if (msg == "PASS") return {true, ""};
  if (msg.rfind("FAIL ", 0) == 0) return {false, msg.substr(5)};
  return {false, "child exited without a verdict (status " + std::to_string(WEXITSTATUS(status)) + ")"};
}

std::string OneLine(std::string s, size_t max = 300) {
  std::replace(s.begin(), s.end(), '\n', ' ');
  if (s.size() > max) s = s.substr(0, max) + "...";
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  std::string data = "/usr/share/libonnx-testdata/data";
  std::string known_path, write_known, filter;
  int timeout = 120;
  bool verbose = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "error: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--data") data = next();
    else if (a == "--known-failures") known_path = next();
    else if (a == "--write-known") write_known = next();
    else if (a == "--filter") filter = next();
    else if (a == "--timeout") timeout = std::stoi(next());
    else if (a == "-v" || a == "--verbose") verbose = true;
    else if (a == "--help" || a == "-h") {
      std::printf("usage: kiln_conformance [--data DIR] [--known-failures FILE] [--filter REGEX]\n"
                  "                        [--write-known FILE] [--timeout SEC] [-v]\n");
      return 0;
    } else {
      std::fprintf(stderr, "error: unknown argument '%s'\n", a.c_str());
      return 2;
    }
  }
  // "suite/test" -> {the failure message expected (a substring of it), why}. A line:
  //   suite/test [expected failure message substring] why it fails
  struct Known {
    std::string message, why;
  };
  std::map<std::string, Known> known;
  if (!known_path.empty()) {
    std::ifstream in(known_path);
    if (!in) {
      std::fprintf(stderr, "error: cannot read %s\n", known_path.c_str());
      return 2;
    }
    std::string line;
    int line_no = 0;
    while (std::getline(in, line)) {
      ++line_no;
      if (line.empty() || line[0] == '#') continue;
      const size_t sp = line.find_first_of(" \t");
      const size_t open = sp == std::string::npos ? sp : line.find_first_not_of(" \t", sp);
      const size_t close = open == std::string::npos ? open : line.find("] ", open);
      if (open == std::string::npos || line[open] != '[' || close == std::string::npos ||
          close == open + 1) {
        std::fprintf(stderr,
                     "error: %s:%d: expected 'suite/test [expected failure message] reason', got "
                     "'%s'\n",
                     known_path.c_str(), line_no, line.c_str());
        return 2;
      }
      known[line.substr(0, sp)] = {line.substr(open + 1, close - open - 1),
                                   line.substr(close + 2)};
    }
  }
  std::regex re(filter.empty() ? ".*" : filter);
  const std::vector<std::string> suites = {"node", "simple", "pytorch-converted", "pytorch-operator"};
  struct Row { int total = 0, passed = 0; };
  std::map<std::string, Row> table;
  std::vector<std::pair<std::string, std::string>> failures;
  std::vector<std::string> regressions, fixed;
  std::vector<std::pair<std::string, std::string>> other_reason;  // id, message
  auto start = std::chrono::steady_clock::now();
  for (const auto& suite : suites) {
    fs::path root = fs::path(data) / suite;
    if (!fs::is_directory(root)) {
      std::fprintf(stderr, "error: missing suite folder %s\n", root.c_str());
      return 2;
    }
    std::vector<fs::path> tests;
    for (const auto& e : fs::directory_iterator(root)) {
      if (e.is_directory()) tests.push_back(e.path());
    }
    std::sort(tests.begin(), tests.end());
    for (const auto& t : tests) {
      const std::string id = suite + "/" + t.filename().string();
      if (!std::regex_search(id, re)) continue;
      Outcome o = RunIsolated(t, timeout);
      Row& row = table[suite];
      ++row.total;
      if (o.passed) {
        ++row.passed;
        if (known.count(id)) fixed.push_back(id);
        if (verbose) std::printf("PASS %s\n", id.c_str());
      } else {
        failures.emplace_back(id, o.reason);
        auto k = known.find(id);
        if (k == known.end()) {
          regressions.push_back(id);
        } else if (o.reason.find(k->second.message) == std::string::npos) {
          regressions.push_back(id);
          other_reason.emplace_back(id, o.reason);
        }
        if (verbose) std::printf("FAIL %s: %s\n", id.c_str(), OneLine(o.reason).c_str());
      }
    }
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!verbose && !failures.empty()) {
    std::printf("Failing tests:\n");
    for (const auto& [id, why] : failures)
      std::printf("  %s: %s\n", id.c_str(), OneLine(why).c_str());
  }
  std::printf("\n%-20s %7s %7s %7s\n", "suite", "total", "passed", "failed");
  int total = 0, passed = 0;
  for (const auto& suite : suites) {
    const Row& r = table[suite];
    std::printf("%-20s %7d %7d %7d\n", suite.c_str(), r.total, r.passed, r.total - r.passed);
    total += r.total;
    passed += r.passed;
  }
  std::printf("%-20s %7d %7d %7d   (%.1f s)\n", "all", total, passed, total - passed, secs);
  if (!write_known.empty()) {
    std::ofstream out(write_known);
    out << "# Conformance tests known to fail, one per line: suite/test reason.\n"
           "# kiln_conformance fails on any failure not listed here (a regression).\n";
    for (const auto& [id, message] : failures) {
      auto it = known.find(id);
      // The message's first line (up to 160 characters) is what the listed failure must say.
      std::string first = message.substr(0, message.find('\n'));
      if (first.size() > 160) first.resize(160);
      const bool same = it != known.end() && message.find(it->second.message) != std::string::npos;
      out << id << " [" << (same ? it->second.message : first) << "] "
          << (it != known.end() ? it->second.why : OneLine(message)) << "\n";
    }
  }
  if (!fixed.empty()) {
    std::printf("\n%zu known failures now pass (remove them from the list):\n", fixed.size());
    for (const auto& id : fixed) std::printf("  %s\n", id.c_str());
  }
  if (!regressions.empty() && !known_path.empty()) {
    std::printf("\n%zu REGRESSIONS (failing, not in %s):\n", regressions.size(), known_path.c_str());
    for (const auto& id : regressions) std::printf("  %s\n", id.c_str());
    for (const auto& [id, message] : other_reason) {
      std::printf("  %s is listed as failing with '%s' but failed with: %s\n", id.c_str(),
                  known[id].message.c_str(), OneLine(message).c_str());
    }
  }
  std::printf("\n%d passed, %d failed\n", passed, total - passed);
  return (!known_path.empty() && !regressions.empty()) ? 1 : 0;
}
