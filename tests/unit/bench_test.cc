// `kiln bench` end to end on a one-node model: the JSON report has every field with sane values,
// and bad arguments give one clear line on stderr and exit status 1.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>

#include "core/cpu_features.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

const std::string kRelu = "/usr/share/libonnx-testdata/data/node/test_relu/model.onnx";

class Bench : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("kiln_bench_" + std::to_string(getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Runs `kiln bench ARGS`; returns the exit status, stdout in out_, stderr in err_.
  int Kiln(const std::string& args) {
    const std::string cmd = std::string(KILN_BINARY) + " bench " + args + " >" +
                            (dir_ / "out").string() + " 2>" + (dir_ / "err").string() +
                            " </dev/null";
    const int raw = std::system(cmd.c_str());
    out_ = Read(dir_ / "out");
    err_ = Read(dir_ / "err");
    return WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
  }
  static std::string Read(const fs::path& p) {
    std::stringstream s;
    s << std::ifstream(p).rdbuf();
    return s.str();
  }
  void ExpectOneLineError(int status, const std::string& fragment) {
    EXPECT_EQ(status, 1) << err_;
    EXPECT_EQ(std::count(err_.begin(), err_.end(), '\n'), 1) << err_;
    EXPECT_EQ(err_.rfind("error: ", 0), 0u) << err_;
    EXPECT_NE(err_.find(fragment), std::string::npos) << "'" << fragment << "' not in " << err_;
  }

  fs::path dir_;
  std::string out_, err_;
};

TEST_F(Bench, JsonReportHasEveryField) {
  const std::string json = (dir_ / "r.json").string();
  ASSERT_EQ(Kiln(kRelu + " --iters 3 --warmup 1 --threads 2 --json " + json), 0) << err_;
  EXPECT_NE(out_.find("steady state over 3 runs"), std::string::npos) << out_;
  const nlohmann::json j = nlohmann::json::parse(Read(json), nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << Read(json);
  EXPECT_EQ(j["tool"], "kiln");
  EXPECT_EQ(j["threads"], 2);
  EXPECT_EQ(j["iters"], 3);
  EXPECT_EQ(j["warmup"], 1);
  ASSERT_EQ(j["inputs"].size(), 1u);
  EXPECT_EQ(j["inputs"][0]["name"], "x");
  EXPECT_EQ(j["inputs"][0]["shape"], nlohmann::json::array({3, 4, 5}));
  for (const char* key : {"import_ms", "prepare_ms", "load_ms", "first_run_ms", "median_ms",
                          "p90_ms", "min_ms", "max_ms", "mean_ms", "rss_before_load_mb",
                          "rss_after_load_mb", "peak_rss_mb"}) {
    ASSERT_TRUE(j.contains(key)) << key;
    ASSERT_TRUE(j[key].is_number()) << key;
    EXPECT_GT(j[key].get<double>(), 0) << key;
  }
  ASSERT_EQ(j["times_ms"].size(), 3u);
  const double min = j["min_ms"], median = j["median_ms"], p90 = j["p90_ms"], max = j["max_ms"];
  EXPECT_LE(min, median);
  EXPECT_LE(median, p90);
  EXPECT_LE(p90, max);
  EXPECT_GE(j["peak_rss_mb"].get<double>(), j["rss_after_load_mb"].get<double>());
  // A peak of this small program, not of whoever started it: well under 100 MB (AddressSanitizer's
  // shadow memory adds its own ~100 MB).
#if defined(__SANITIZE_ADDRESS__)
  EXPECT_LT(j["peak_rss_mb"].get<double>(), 400);
#else
  EXPECT_LT(j["peak_rss_mb"].get<double>(), 100);
#endif
}

TEST_F(Bench, JsonOnStdout) {
  ASSERT_EQ(Kiln(kRelu + " --iters 2 --warmup 0 --json -"), 0) << err_;
  const nlohmann::json j = nlohmann::json::parse(out_, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << out_;
  EXPECT_EQ(j["times_ms"].size(), 2u);
}

TEST_F(Bench, BadArgumentsGiveOneLineErrors) {
  ExpectOneLineError(Kiln(kRelu + " --iters 0"), "--iters");
  ExpectOneLineError(Kiln(kRelu + " --warmup -1"), "--warmup");
  ExpectOneLineError(Kiln((dir_ / "missing.onnx").string()), "missing.onnx");
  ExpectOneLineError(Kiln(kRelu + " -i nosuch=" + (dir_ / "x.npy").string()), "x.npy");
  ExpectOneLineError(Kiln(kRelu + " --shape x=3,4"), "x");
  ExpectOneLineError(Kiln(kRelu + " --json " + (dir_ / "no" / "such" / "r.json").string()),
                     "r.json");
}

}  // namespace
}  // namespace kiln

namespace kiln {
namespace {

// --profile: every timed step, with the node's multiply-adds from the model's shapes (the ONNX
// test's Conv: a 5x5 output of a 3x3 kernel over one channel: 225), on every ISA level forced.
TEST_F(Bench, ProfileReportsEveryNodeWithItsWork) {
  const std::string conv =
      "/usr/share/libonnx-testdata/data/node/test_basic_conv_with_padding/model.onnx";
  for (const char* isa : {"auto", "portable", "avx2"}) {
    const std::string json = (dir_ / "p.json").string();
    ASSERT_EQ(Kiln(conv + " --iters 4 --warmup 1 --profile --isa " + isa + " --json " + json), 0)
        << err_;
    EXPECT_NE(out_.find("by op type"), std::string::npos) << out_;
    const nlohmann::json j = nlohmann::json::parse(Read(json), nullptr, false);
    ASSERT_TRUE(j.contains("profile")) << Read(json);
    int convs = 0;
    for (const auto& r : j["profile"]) {
      EXPECT_EQ(r["runs"].get<int>(), 1 + 1 + 4) << r.dump();  // first + warmup + iters
      EXPECT_GE(r["us_per_run"].get<double>(), 0) << r.dump();
      if (r["op_type"] == "Conv") {
        ++convs;
        EXPECT_EQ(r["macs"].get<double>(), 225) << r.dump();
        EXPECT_GT(r["us_per_run"].get<double>(), 0) << r.dump();
      }
    }
    EXPECT_EQ(convs, 1) << j["profile"].dump();
    // The %peak column's roofline: measured at the session's level (none for portable, where
    // no vector FMA runs); the text report names it.
    ASSERT_TRUE(j.contains("peak_gflops_per_thread")) << Read(json);
    const double peak = j["peak_gflops_per_thread"].get<double>();
    if (std::string(isa) == "portable" || EffectiveCpuIsa(std::nullopt) < CpuIsa::kAvx2) {
      EXPECT_EQ(peak, 0) << isa;
    } else {
      EXPECT_GT(peak, 0) << isa;
      EXPECT_NE(out_.find("fp32 FMA peak"), std::string::npos) << out_;
      EXPECT_NE(out_.find("%peak"), std::string::npos) << out_;
    }
  }
  // A given peak is used as is.
  const std::string json = (dir_ / "q.json").string();
  ASSERT_EQ(Kiln(conv + " --iters 2 --profile --peak-gflops 123.5 --json " + json), 0) << err_;
  const nlohmann::json j = nlohmann::json::parse(Read(json), nullptr, false);
  EXPECT_EQ(j["peak_gflops_per_thread"].get<double>(), 123.5) << Read(json);
}

TEST_F(Bench, BadIsaIsAClearError) {
  ExpectOneLineError(Kiln(kRelu + " --isa sse9"), "--isa 'sse9'");
}

}  // namespace
}  // namespace kiln
