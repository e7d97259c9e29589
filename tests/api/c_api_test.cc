// Tests of the C API (include/kiln/kiln.h) through libkiln.so only: every function, its error
// paths (NULL handles, wrong sizes, wrong types, wrong call order) with the message checked,
// zero-copy inputs, caller and Kiln-allocated outputs, float conversion at the boundary, the
// plan report, convert/quantize, and thread safety (one session from several threads; many
// sessions over one model). Models: tests/api/make_models.py, written at build time into
// KILN_API_MODELS; the real PP-OCRv4 cls model from .deps for the threaded XNNPACK run.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "kiln/kiln.h"

namespace {

const std::string kModels = KILN_API_MODELS;

std::string Last() { return kiln_last_error_message(); }

#define EXPECT_ERR(call, status, text)                                   \
  do {                                                                   \
    EXPECT_EQ((call), (status));                                         \
    EXPECT_NE(Last().find(text), std::string::npos) << "message: " << Last(); \
  } while (0)

kiln_model* Load(const std::string& name) {
  kiln_model* m = nullptr;
  EXPECT_EQ(kiln_model_create_from_file((kModels + "/" + name).c_str(), &m), KILN_OK) << Last();
  return m;
}

kiln_session* Open(const std::string& name, const kiln_session_options* o = nullptr) {
  kiln_model* m = Load(name);
  kiln_session* s = nullptr;
  EXPECT_EQ(kiln_session_create(m, o, &s), KILN_OK) << Last();
  kiln_model_release(m);  // sessions keep what they need
  return s;
}

TEST(CApi, VersionStatusAndTypes) {
  int major = -1, minor = -1, patch = -1;
  EXPECT_EQ(kiln_version(&major, &minor, &patch), KILN_OK);
  EXPECT_EQ(major, KILN_VERSION_MAJOR);
  EXPECT_EQ(kiln_version(nullptr, nullptr, nullptr), KILN_OK);
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%d.%d.%d", major, minor, patch);
  EXPECT_STREQ(kiln_version_string(), buf);
  EXPECT_STREQ(kiln_status_name(KILN_OK), "ok");
  EXPECT_STREQ(kiln_status_name(KILN_ERROR_WRONG_ORDER), "wrong order");
  EXPECT_STREQ(kiln_status_name(static_cast<kiln_status>(99)), "unknown status");
  EXPECT_STREQ(kiln_element_type_name(KILN_F16), "f16");
  EXPECT_STREQ(kiln_element_type_name(static_cast<kiln_element_type>(99)), "undefined");
  EXPECT_EQ(kiln_element_type_size(KILN_F64), 8u);
  EXPECT_EQ(kiln_element_type_size(KILN_BOOL), 1u);
  EXPECT_EQ(kiln_element_type_size(KILN_STRING), 0u);
  kiln_free(nullptr);
}

TEST(CApi, LastErrorIsPerThread) {
  kiln_model* m = nullptr;
  EXPECT_ERR(kiln_model_create_from_file(nullptr, &m), KILN_ERROR_INVALID_ARGUMENT,
             "kiln_model_create_from_file: path is NULL");
  std::string other;
  std::thread([&] { other = kiln_last_error_message(); }).join();
  EXPECT_EQ(other, "");  // the other thread has not failed
  EXPECT_NE(Last().find("path is NULL"), std::string::npos);
}

TEST(CApi, ModelErrors) {
  kiln_model* m = nullptr;
  EXPECT_ERR(kiln_model_create_from_file("x.onnx", nullptr), KILN_ERROR_INVALID_ARGUMENT,
             "out_model is NULL");
  EXPECT_ERR(kiln_model_create_from_file("/nonexistent/m.onnx", &m), KILN_ERROR_NOT_FOUND,
             "/nonexistent/m.onnx");
  EXPECT_EQ(m, nullptr);
  EXPECT_ERR(kiln_model_create_from_file("/tmp", &m), KILN_ERROR_INVALID_ARGUMENT,
             "/tmp is a folder but not a Kiln package (no metadata/MANIFEST)");
  EXPECT_ERR(kiln_model_create_from_memory(nullptr, 4, &m), KILN_ERROR_INVALID_ARGUMENT,
             "data is NULL");
  const char junk[] = "not a model";
  EXPECT_ERR(kiln_model_create_from_memory(junk, 0, &m), KILN_ERROR_INVALID_ARGUMENT, "size is 0");
  EXPECT_ERR(kiln_model_create_from_memory(junk, sizeof(junk), &m), KILN_ERROR_INVALID_ARGUMENT,
             "kiln_model_create_from_memory");
  EXPECT_ERR(kiln_model_create_from_memory(junk, sizeof(junk), nullptr),
             KILN_ERROR_INVALID_ARGUMENT, "out_model is NULL");
  kiln_model_release(nullptr);
}

TEST(CApi, ModelFromMemoryRuns) {
  std::ifstream f(kModels + "/add.onnx", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  kiln_model* m = nullptr;
  ASSERT_EQ(kiln_model_create_from_memory(bytes.data(), bytes.size(), &m), KILN_OK) << Last();
  bytes.assign(bytes.size(), '\0');  // the model was copied
  kiln_session* s = nullptr;
  ASSERT_EQ(kiln_session_create(m, nullptr, &s), KILN_OK) << Last();
  kiln_binding* io = nullptr;
  ASSERT_EQ(kiln_binding_create(s, &io), KILN_OK);
  const float x[3] = {-1, 0, 1};
  const int64_t shape[2] = {1, 3};
  ASSERT_EQ(kiln_binding_set_input(io, 0, KILN_F32, shape, 2, x, sizeof(x), 0), KILN_OK) << Last();
  ASSERT_EQ(kiln_session_run(s, io), KILN_OK) << Last();
  kiln_tensor* y = nullptr;
  ASSERT_EQ(kiln_binding_get_output(io, 0, &y), KILN_OK);
  const float* p = static_cast<const float*>(kiln_tensor_data(y));
  EXPECT_FLOAT_EQ(p[0], 0);
  EXPECT_FLOAT_EQ(p[2], 4);
  kiln_tensor_release(y);
  kiln_binding_release(io);
  kiln_session_release(s);
  kiln_model_release(m);
}

TEST(CApi, SessionOptionsAndConfigKeys) {
  kiln_session_options o;
  EXPECT_ERR(kiln_session_options_init(nullptr), KILN_ERROR_INVALID_ARGUMENT, "options is NULL");
  ASSERT_EQ(kiln_session_options_init(&o), KILN_OK);
  EXPECT_EQ(o.struct_size, sizeof(o));
  EXPECT_EQ(o.threads, 1);
  EXPECT_EQ(o.fallback, 1);
  kiln_model* m = Load("add.onnx");
  kiln_session* s = nullptr;
  EXPECT_ERR(kiln_session_create(nullptr, &o, &s), KILN_ERROR_INVALID_ARGUMENT, "model is NULL");
  EXPECT_ERR(kiln_session_create(m, &o, nullptr), KILN_ERROR_INVALID_ARGUMENT,
             "out_session is NULL");
  kiln_session_options bad = o;
  bad.struct_size = 8;
  EXPECT_ERR(kiln_session_create(m, &bad, &s), KILN_ERROR_INVALID_ARGUMENT,
             "call kiln_session_options_init first");
  bad = o;
  bad.threads = 0;
  EXPECT_ERR(kiln_session_create(m, &bad, &s), KILN_ERROR_INVALID_ARGUMENT,
             "threads is 0, expected 1 to 256");
  bad = o;
  bad.units = static_cast<kiln_compute_units>(9);
  EXPECT_ERR(kiln_session_create(m, &bad, &s), KILN_ERROR_INVALID_ARGUMENT,
             "not a kiln_compute_units value");
  bad = o;
  bad.model_type = static_cast<kiln_model_type>(9);
  EXPECT_ERR(kiln_session_create(m, &bad, &s), KILN_ERROR_INVALID_ARGUMENT,
             "not a kiln_model_type value");
  bad = o;
  bad.precision = static_cast<kiln_precision>(9);
  EXPECT_ERR(kiln_session_create(m, &bad, &s), KILN_ERROR_INVALID_ARGUMENT,
             "not a kiln_precision value");
  bad = o;
  bad.config_count = 1;
  EXPECT_ERR(kiln_session_create(m, &bad, &s), KILN_ERROR_INVALID_ARGUMENT,
             "config is NULL but config_count is 1");
  struct Case {
    kiln_config_entry e;
    kiln_status status;
    const char* text;
  };
  const Case cases[] = {
      {{"Bogus", "1"}, KILN_ERROR_INVALID_ARGUMENT, "unknown config key 'Bogus'"},
      {{"Threads", "x"}, KILN_ERROR_INVALID_ARGUMENT, "Threads = 'x': expected an integer"},
      {{"ComputeUnits", "tpu"}, KILN_ERROR_INVALID_ARGUMENT, "expected cpu_only, cpu_and_gpu"},
      {{"ModelType", "x"}, KILN_ERROR_INVALID_ARGUMENT, "expected program or network"},
      {{"Fallback", "maybe"}, KILN_ERROR_INVALID_ARGUMENT, "Fallback = 'maybe': expected 0 or 1"},
      {{"Precision", "int4"}, KILN_ERROR_INVALID_ARGUMENT, "expected fp32, fp16 or mixed"},
      {{"OpBackend.", "ref"}, KILN_ERROR_INVALID_ARGUMENT, "expected OpBackend.<OpType>"},
      {{"OdcRecords", "8"}, KILN_ERROR_INVALID_ARGUMENT,
       "OdcRecords applies to packages: on-device compilation needs a .kiln package"},
      {{nullptr, "1"}, KILN_ERROR_INVALID_ARGUMENT, "config[0] has a NULL key or value"},
  };
  for (const Case& c : cases) {
    bad = o;
    bad.config = &c.e;
    bad.config_count = 1;
    EXPECT_ERR(kiln_session_create(m, &bad, &s), c.status, c.text);
  }
  // Pins and backends by config key reach the plan report.
  const kiln_config_entry pins[] = {{"OpBackend.Add", "ref"}, {"Threads", "2"},
                                    {"ComputeUnits", "cpu_only"}, {"Backends", "xnnpack, ref"}};
  kiln_session_options good = o;
  good.config = pins;
  good.config_count = 4;
  ASSERT_EQ(kiln_session_create(m, &good, &s), KILN_OK) << Last();
  kiln_binding* io = nullptr;
  ASSERT_EQ(kiln_binding_create(s, &io), KILN_OK);
  const float x[6] = {0};
  const int64_t shape[2] = {2, 3};
  ASSERT_EQ(kiln_binding_set_input(io, 0, KILN_F32, shape, 2, x, sizeof(x), 0), KILN_OK);
  char* json = nullptr;
  ASSERT_EQ(kiln_session_plan_json(s, io, &json), KILN_OK) << Last();
  const std::string j = json;
  kiln_free(json);
  EXPECT_NE(j.find("\"units\": \"cpu_only\""), std::string::npos) << j;
  EXPECT_NE(j.find("\"threads\": 2"), std::string::npos) << j;
  const size_t add = j.find("\"name\": \"add0\"");
  ASSERT_NE(add, std::string::npos) << j;
  EXPECT_NE(j.find("\"backend\": \"ref\"", add), std::string::npos);
  kiln_binding_release(io);
  kiln_session_release(s);
  kiln_model_release(m);
}

TEST(CApi, Describe) {
  kiln_session* s = Open("add.onnx");
  ASSERT_NE(s, nullptr);
  size_t n = 0;
  ASSERT_EQ(kiln_session_input_count(s, &n), KILN_OK);
  EXPECT_EQ(n, 1u);
  ASSERT_EQ(kiln_session_output_count(s, &n), KILN_OK);
  EXPECT_EQ(n, 2u);
  kiln_value_info info;
  ASSERT_EQ(kiln_session_input_info(s, 0, &info), KILN_OK);
  EXPECT_STREQ(info.name, "x");
  EXPECT_EQ(info.type, KILN_F32);
  ASSERT_EQ(info.rank, 2);
  EXPECT_EQ(info.dims[0], -1);
  EXPECT_STREQ(info.dim_names[0], "batch");
  EXPECT_EQ(info.dims[1], 3);
  EXPECT_STREQ(info.dim_names[1], "");
  ASSERT_EQ(kiln_session_output_info(s, 1, &info), KILN_OK);
  EXPECT_STREQ(info.name, "z");
  size_t idx = 9;
  ASSERT_EQ(kiln_session_find_output(s, "z", &idx), KILN_OK);
  EXPECT_EQ(idx, 1u);
  ASSERT_EQ(kiln_session_find_input(s, "x", &idx), KILN_OK);
  EXPECT_EQ(idx, 0u);
  EXPECT_ERR(kiln_session_find_input(s, "q", &idx), KILN_ERROR_NOT_FOUND,
             "no input named 'q' (inputs: x)");
  EXPECT_ERR(kiln_session_find_output(s, "q", &idx), KILN_ERROR_NOT_FOUND, "outputs: y, z");
  EXPECT_ERR(kiln_session_find_input(s, nullptr, &idx), KILN_ERROR_INVALID_ARGUMENT,
             "name is NULL");
  EXPECT_ERR(kiln_session_find_output(nullptr, "y", &idx), KILN_ERROR_INVALID_ARGUMENT,
             "session is NULL");
  EXPECT_ERR(kiln_session_find_output(s, "y", nullptr), KILN_ERROR_INVALID_ARGUMENT,
             "out_index is NULL");
  EXPECT_ERR(kiln_session_input_info(s, 1, &info), KILN_ERROR_OUT_OF_RANGE,
             "index 1 is out of range: the model has 1 inputs");
  EXPECT_ERR(kiln_session_output_info(s, 2, &info), KILN_ERROR_OUT_OF_RANGE, "has 2 outputs");
  EXPECT_ERR(kiln_session_input_info(nullptr, 0, &info), KILN_ERROR_INVALID_ARGUMENT,
             "session is NULL");
  EXPECT_ERR(kiln_session_output_info(s, 0, nullptr), KILN_ERROR_INVALID_ARGUMENT,
             "out_info is NULL");
  EXPECT_ERR(kiln_session_input_count(nullptr, &n), KILN_ERROR_INVALID_ARGUMENT,
             "session is NULL");
  EXPECT_ERR(kiln_session_input_count(s, nullptr), KILN_ERROR_INVALID_ARGUMENT,
             "out_count is NULL");
  EXPECT_ERR(kiln_session_output_count(nullptr, &n), KILN_ERROR_INVALID_ARGUMENT,
             "session is NULL");
  EXPECT_ERR(kiln_session_output_count(s, nullptr), KILN_ERROR_INVALID_ARGUMENT,
             "out_count is NULL");
  kiln_session_release(s);
  kiln_session_release(nullptr);
}

TEST(CApi, BindRunAndOutputs) {
  kiln_session* s = Open("add.onnx");
  ASSERT_NE(s, nullptr);
  kiln_binding* io = nullptr;
  EXPECT_ERR(kiln_binding_create(nullptr, &io), KILN_ERROR_INVALID_ARGUMENT, "session is NULL");
  EXPECT_ERR(kiln_binding_create(s, nullptr), KILN_ERROR_INVALID_ARGUMENT, "out_binding is NULL");
  ASSERT_EQ(kiln_binding_create(s, &io), KILN_OK);
  // Wrong order: run, prepare and output before the input is bound / before a run.
  EXPECT_ERR(kiln_session_run(s, io), KILN_ERROR_WRONG_ORDER,
             "input 0 'x' is not bound: call kiln_binding_set_input");
  EXPECT_ERR(kiln_session_prepare(s, io), KILN_ERROR_INVALID_ARGUMENT, "'x' is not bound");
  EXPECT_ERR(kiln_session_prepare(s, nullptr), KILN_ERROR_INVALID_ARGUMENT,
             "input 'x' has a dynamic dim 0 ('batch')");
  EXPECT_ERR(kiln_session_prepare(nullptr, io), KILN_ERROR_INVALID_ARGUMENT, "session is NULL");
  kiln_tensor* t = nullptr;
  EXPECT_ERR(kiln_binding_get_output(io, 0, &t), KILN_ERROR_WRONG_ORDER,
             "call kiln_session_run with this binding first");
  const float x[6] = {-1, 2, -3, 4, -5, 6};
  const int64_t shape[2] = {2, 3};
  // Input errors: NULL binding, index, type, rank, dims, bytes, data, flags, conversion.
  EXPECT_ERR(kiln_binding_set_input(nullptr, 0, KILN_F32, shape, 2, x, sizeof(x), 0),
             KILN_ERROR_INVALID_ARGUMENT, "binding is NULL");
  EXPECT_ERR(kiln_binding_set_input(io, 1, KILN_F32, shape, 2, x, sizeof(x), 0),
             KILN_ERROR_OUT_OF_RANGE, "index 1 is out of range");
  EXPECT_ERR(kiln_binding_set_input(io, 0, KILN_F32, nullptr, 2, x, sizeof(x), 0),
             KILN_ERROR_INVALID_ARGUMENT, "shape is NULL");
  EXPECT_ERR(kiln_binding_set_input(io, 0, KILN_STRING, shape, 2, x, sizeof(x), 0),
             KILN_ERROR_INVALID_ARGUMENT, "element type 8 cannot be bound");
  EXPECT_ERR(kiln_binding_set_input(io, 0, KILN_F32, shape, 1, x, sizeof(x), 0),
             KILN_ERROR_INVALID_ARGUMENT, "rank 1 given, the model declares rank 2");
  const int64_t bad_shape[2] = {2, 4};
  EXPECT_ERR(kiln_binding_set_input(io, 0, KILN_F32, bad_shape, 2, x, 32, 0),
             KILN_ERROR_INVALID_ARGUMENT, "shape [2,4] given, dim 1 must be 3");
  const int64_t neg_shape[2] = {-2, 3};
  EXPECT_ERR(kiln_binding_set_input(io, 0, KILN_F32, neg_shape, 2, x, sizeof(x), 0),
             KILN_ERROR_INVALID_ARGUMENT, "input 'x'");
  EXPECT_ERR(kiln_binding_set_input(io, 0, KILN_F32, shape, 2, x, 20, 0),
             KILN_ERROR_INVALID_ARGUMENT, "20 bytes given, f32[2,3] needs 24");
  EXPECT_ERR(kiln_binding_set_input(io, 0, KILN_F32, shape, 2, nullptr, sizeof(x), 0),
             KILN_ERROR_INVALID_ARGUMENT, "data is NULL");
  EXPECT_ERR(kiln_binding_set_input(io, 0, KILN_F32, shape, 2, x, sizeof(x), 8),
             KILN_ERROR_INVALID_ARGUMENT, "unknown flags 8");
  const int32_t xi[6] = {0};
  EXPECT_ERR(kiln_binding_set_input(io, 0, KILN_I32, shape, 2, xi, sizeof(xi), KILN_BIND_CONVERT),
             KILN_ERROR_INVALID_ARGUMENT, "input 'x' is f32, the data is i32");
  const double xd[6] = {-1, 2, -3, 4, -5, 6};
  EXPECT_ERR(kiln_binding_set_input(io, 0, KILN_F64, shape, 2, xd, sizeof(xd), 0),
             KILN_ERROR_INVALID_ARGUMENT, "pass KILN_BIND_CONVERT");
  // Output binding errors.
  float y[6] = {0};
  EXPECT_ERR(kiln_binding_set_output(nullptr, 0, KILN_F32, y, sizeof(y), 0),
             KILN_ERROR_INVALID_ARGUMENT, "binding is NULL");
  EXPECT_ERR(kiln_binding_set_output(io, 2, KILN_F32, y, sizeof(y), 0), KILN_ERROR_OUT_OF_RANGE,
             "has 2 outputs");
  EXPECT_ERR(kiln_binding_set_output(io, 0, KILN_I64, y, sizeof(y), 0),
             KILN_ERROR_INVALID_ARGUMENT, "output 'y' is f32, the buffer is i64");
  EXPECT_ERR(kiln_binding_set_output(io, 0, KILN_UNDEFINED, y, sizeof(y), 0),
             KILN_ERROR_INVALID_ARGUMENT, "cannot be bound");
  EXPECT_ERR(kiln_binding_set_output(io, 0, KILN_F32, y, sizeof(y), 4),
             KILN_ERROR_INVALID_ARGUMENT, "unknown flags 4");

  // Output 0 into the caller's buffer; output 1 Kiln-allocated.
  ASSERT_EQ(kiln_binding_set_input(io, 0, KILN_F32, shape, 2, x, sizeof(x), 0), KILN_OK);
  ASSERT_EQ(kiln_binding_set_output(io, 0, KILN_F32, y, sizeof(y), 0), KILN_OK);
  ASSERT_EQ(kiln_session_prepare(s, io), KILN_OK) << Last();
  EXPECT_ERR(kiln_session_run(nullptr, io), KILN_ERROR_INVALID_ARGUMENT, "session is NULL");
  EXPECT_ERR(kiln_session_run(s, nullptr), KILN_ERROR_INVALID_ARGUMENT, "binding is NULL");
  ASSERT_EQ(kiln_session_run(s, io), KILN_OK) << Last();
  const float want_y[6] = {0, 4, 0, 5, -3, 9};
  for (int i = 0; i < 6; ++i) EXPECT_FLOAT_EQ(y[i], want_y[i]);
  EXPECT_FLOAT_EQ(x[0], -1);  // the input buffer is read in place, never written
  EXPECT_ERR(kiln_binding_get_output(io, 2, &t), KILN_ERROR_OUT_OF_RANGE, "index 2");
  EXPECT_ERR(kiln_binding_get_output(io, 1, nullptr), KILN_ERROR_INVALID_ARGUMENT,
             "out_tensor is NULL");
  EXPECT_ERR(kiln_binding_get_output(nullptr, 1, &t), KILN_ERROR_INVALID_ARGUMENT,
             "binding is NULL");
  ASSERT_EQ(kiln_binding_get_output(io, 1, &t), KILN_OK);
  EXPECT_EQ(kiln_tensor_type(t), KILN_F32);
  ASSERT_EQ(kiln_tensor_rank(t), 2u);
  EXPECT_EQ(kiln_tensor_shape(t)[0], 2);
  EXPECT_EQ(kiln_tensor_bytes(t), 24u);
  const float* z = static_cast<const float*>(kiln_tensor_data(t));
  EXPECT_FLOAT_EQ(z[0], 0);
  EXPECT_FLOAT_EQ(z[1], 2);
  double zd[6];
  EXPECT_ERR(kiln_tensor_copy_to(t, KILN_F64, zd, 24), KILN_ERROR_INVALID_ARGUMENT,
             "24 bytes given, f32[2,3] as f64 needs 48");
  EXPECT_ERR(kiln_tensor_copy_to(t, KILN_I32, zd, 24), KILN_ERROR_INVALID_ARGUMENT,
             "cannot convert it to i32");
  EXPECT_ERR(kiln_tensor_copy_to(t, KILN_STRING, zd, 24), KILN_ERROR_INVALID_ARGUMENT,
             "cannot be copied to");
  EXPECT_ERR(kiln_tensor_copy_to(t, KILN_F64, nullptr, 48), KILN_ERROR_INVALID_ARGUMENT,
             "data is NULL");
  EXPECT_ERR(kiln_tensor_copy_to(nullptr, KILN_F64, zd, 48), KILN_ERROR_INVALID_ARGUMENT,
             "tensor is NULL");
  ASSERT_EQ(kiln_tensor_copy_to(t, KILN_F64, zd, sizeof(zd)), KILN_OK);
  EXPECT_DOUBLE_EQ(zd[5], 6);
  EXPECT_EQ(kiln_tensor_type(nullptr), KILN_UNDEFINED);
  EXPECT_EQ(kiln_tensor_rank(nullptr), 0u);
  EXPECT_EQ(kiln_tensor_shape(nullptr), nullptr);
  EXPECT_EQ(kiln_tensor_data(nullptr), nullptr);
  EXPECT_EQ(kiln_tensor_bytes(nullptr), 0u);

  // A new batch size plans anew; the kept tensor is unchanged; a too-small bound buffer fails.
  const float x1[3] = {7, 8, 9};
  const int64_t shape1[2] = {1, 3};
  ASSERT_EQ(kiln_binding_set_input(io, 0, KILN_F32, shape1, 2, x1, sizeof(x1), 0), KILN_OK);
  EXPECT_ERR(kiln_session_run(s, io), KILN_ERROR_INVALID_ARGUMENT,
             "output 'y' f32[1,3] needs 12 bytes as f32, its bound buffer has 24");
  ASSERT_EQ(kiln_binding_set_output(io, 0, KILN_F32, nullptr, 0, 0), KILN_OK);  // unbind
  ASSERT_EQ(kiln_session_run(s, io), KILN_OK) << Last();
  EXPECT_FLOAT_EQ(z[1], 2);
  kiln_tensor* y1 = nullptr;
  ASSERT_EQ(kiln_binding_get_output(io, 0, &y1), KILN_OK);
  EXPECT_FLOAT_EQ(static_cast<const float*>(kiln_tensor_data(y1))[2], 12);
  kiln_tensor_release(y1);
  kiln_tensor_release(t);
  kiln_tensor_release(nullptr);

  // A binding of another session is refused.
  kiln_session* other = Open("add.onnx");
  EXPECT_ERR(kiln_session_run(other, io), KILN_ERROR_INVALID_ARGUMENT,
             "the binding belongs to another session");
  char* json = nullptr;
  EXPECT_ERR(kiln_session_plan_json(other, io, &json), KILN_ERROR_INVALID_ARGUMENT,
             "belongs to another session");
  kiln_session_release(other);
  kiln_binding_release(io);
  kiln_binding_release(nullptr);
  kiln_session_release(s);
}

TEST(CApi, ConversionAtTheBoundary) {
  kiln_session* s = Open("half.onnx");
  ASSERT_NE(s, nullptr);
  kiln_value_info info;
  ASSERT_EQ(kiln_session_input_info(s, 0, &info), KILN_OK);
  EXPECT_EQ(info.type, KILN_F16);
  kiln_binding* io = nullptr;
  ASSERT_EQ(kiln_binding_create(s, &io), KILN_OK);
  const float x[6] = {-1, 0.5f, 2, -3, 1000, 0.1f};
  const int64_t shape[2] = {2, 3};
  EXPECT_ERR(kiln_binding_set_input(io, 0, KILN_F32, shape, 2, x, sizeof(x), 0),
             KILN_ERROR_INVALID_ARGUMENT,
             "input 'x' is f16, the data is f32: pass KILN_BIND_CONVERT to convert");
  ASSERT_EQ(kiln_binding_set_input(io, 0, KILN_F32, shape, 2, x, sizeof(x), KILN_BIND_CONVERT),
            KILN_OK) << Last();
  float y[6];
  EXPECT_ERR(kiln_binding_set_output(io, 0, KILN_F32, y, sizeof(y), 0),
             KILN_ERROR_INVALID_ARGUMENT, "output 'y' is f16, the buffer is f32: pass KILN_BIND_CONVERT");
  ASSERT_EQ(kiln_binding_set_output(io, 0, KILN_F32, y, sizeof(y), KILN_BIND_CONVERT), KILN_OK);
  ASSERT_EQ(kiln_session_run(s, io), KILN_OK) << Last();
  EXPECT_FLOAT_EQ(y[0], 0);
  EXPECT_FLOAT_EQ(y[1], 1);
  EXPECT_FLOAT_EQ(y[4], 2000);
  EXPECT_NEAR(y[5], 0.2f, 1e-4);  // 0.1 rounded to f16 (0.099976) times 2
  EXPECT_NE(y[5], 0.2f);
  kiln_tensor* t = nullptr;
  ASSERT_EQ(kiln_binding_get_output(io, 0, &t), KILN_OK);
  EXPECT_EQ(kiln_tensor_type(t), KILN_F16);
  EXPECT_EQ(kiln_tensor_bytes(t), 12u);
  kiln_tensor_release(t);
  kiln_binding_release(io);
  kiln_session_release(s);
}

TEST(CApi, PrecisionOptionConvertsAtCreate) {
  kiln_session_options o;
  kiln_session_options_init(&o);
  o.precision = KILN_PRECISION_FP16;
  kiln_session* s = Open("add.onnx", &o);
  ASSERT_NE(s, nullptr);
  kiln_value_info info;
  ASSERT_EQ(kiln_session_input_info(s, 0, &info), KILN_OK);
  EXPECT_EQ(info.type, KILN_F16);
  kiln_session_release(s);
}

TEST(CApi, PlanJson) {
  kiln_session* s = Open("conv.onnx");
  ASSERT_NE(s, nullptr);
  char* json = nullptr;
  EXPECT_ERR(kiln_session_plan_json(nullptr, nullptr, &json), KILN_ERROR_INVALID_ARGUMENT,
             "session is NULL");
  EXPECT_ERR(kiln_session_plan_json(s, nullptr, nullptr), KILN_ERROR_INVALID_ARGUMENT,
             "out_json is NULL");
  ASSERT_EQ(kiln_session_prepare(s, nullptr), KILN_OK) << Last();
  ASSERT_EQ(kiln_session_plan_json(s, nullptr, &json), KILN_OK) << Last();
  const std::string j = json;
  kiln_free(json);
  for (const char* key : {"\"model\": \"conv.onnx\"", "\"name\": \"conv0\"", "\"unit\": \"cpu\"",
                          "\"stated\": \"f32\"", "\"actual\": \"f32\"", "\"reason\"",
                          "\"backend\": \"xnnpack\""}) {
    EXPECT_NE(j.find(key), std::string::npos) << key << " in " << j;
  }
  kiln_session* a = Open("add.onnx");
  EXPECT_ERR(kiln_session_plan_json(a, nullptr, &json), KILN_ERROR_INVALID_ARGUMENT,
             "dynamic dim 0 ('batch')");
  kiln_session_release(a);
  kiln_session_release(s);
}

TEST(CApi, ConvertAndQuantize) {
  const std::string dir = ::testing::TempDir() + "/kiln_capi";
  std::filesystem::create_directories(dir);
  const std::string in = kModels + "/conv.onnx", f16 = dir + "/conv.fp16.onnx",
                    q8 = dir + "/conv.q8.onnx";
  kiln_convert_options c;
  EXPECT_ERR(kiln_convert_options_init(nullptr), KILN_ERROR_INVALID_ARGUMENT, "options is NULL");
  ASSERT_EQ(kiln_convert_options_init(&c), KILN_OK);
  EXPECT_ERR(kiln_convert(nullptr, f16.c_str(), &c), KILN_ERROR_INVALID_ARGUMENT,
             "input_path is NULL");
  EXPECT_ERR(kiln_convert(in.c_str(), nullptr, &c), KILN_ERROR_INVALID_ARGUMENT,
             "output_path is NULL");
  kiln_convert_options bad = c;
  bad.precision = KILN_PRECISION_AS_MODEL;
  EXPECT_ERR(kiln_convert(in.c_str(), f16.c_str(), &bad), KILN_ERROR_INVALID_ARGUMENT,
             "expected KILN_PRECISION_FP16 or KILN_PRECISION_MIXED");
  bad = c;
  bad.keep_fp32 = "bogus:1";
  EXPECT_ERR(kiln_convert(in.c_str(), f16.c_str(), &bad), KILN_ERROR_INVALID_ARGUMENT, "bogus:1");
  bad = c;
  bad.keep_fp32 = "auto:0.01";
  EXPECT_ERR(kiln_convert(in.c_str(), f16.c_str(), &bad), KILN_ERROR_UNIMPLEMENTED, "auto:TOL");
  bad = c;
  bad.struct_size = 1;
  EXPECT_ERR(kiln_convert(in.c_str(), f16.c_str(), &bad), KILN_ERROR_INVALID_ARGUMENT,
             "kiln_convert_options_init");
  bad = c;
  bad.threads = 0;
  EXPECT_ERR(kiln_convert(in.c_str(), f16.c_str(), &bad), KILN_ERROR_INVALID_ARGUMENT,
             "threads is 0");
  EXPECT_ERR(kiln_convert("/nonexistent.onnx", f16.c_str(), &c), KILN_ERROR_NOT_FOUND,
             "/nonexistent.onnx");
  ASSERT_EQ(kiln_convert(in.c_str(), f16.c_str(), nullptr), KILN_OK) << Last();
  kiln_model* m = nullptr;
  ASSERT_EQ(kiln_model_create_from_file(f16.c_str(), &m), KILN_OK) << Last();
  kiln_session* s = nullptr;
  ASSERT_EQ(kiln_session_create(m, nullptr, &s), KILN_OK) << Last();
  kiln_value_info info;
  ASSERT_EQ(kiln_session_input_info(s, 0, &info), KILN_OK);
  EXPECT_EQ(info.type, KILN_F16);
  kiln_session_release(s);
  kiln_model_release(m);

  kiln_quantize_options q;
  EXPECT_ERR(kiln_quantize_options_init(nullptr), KILN_ERROR_INVALID_ARGUMENT, "options is NULL");
  ASSERT_EQ(kiln_quantize_options_init(&q), KILN_OK);
  EXPECT_EQ(q.samples, 64);
  EXPECT_ERR(kiln_quantize(in.c_str(), q8.c_str(), nullptr), KILN_ERROR_INVALID_ARGUMENT,
             "options (data_dir is required) is NULL");
  EXPECT_ERR(kiln_quantize(nullptr, q8.c_str(), &q), KILN_ERROR_INVALID_ARGUMENT,
             "input_path is NULL");
  EXPECT_ERR(kiln_quantize(in.c_str(), nullptr, &q), KILN_ERROR_INVALID_ARGUMENT,
             "output_path is NULL");
  EXPECT_ERR(kiln_quantize(in.c_str(), q8.c_str(), &q), KILN_ERROR_INVALID_ARGUMENT,
             "data_dir is NULL");
  const std::string calib = kModels + "/calib";
  q.data_dir = calib.c_str();
  kiln_quantize_options qb = q;
  qb.weight_bits = 4;
  EXPECT_ERR(kiln_quantize(in.c_str(), q8.c_str(), &qb), KILN_ERROR_INVALID_ARGUMENT,
             "weight_bits is 4, expected 8 or 7");
  qb = q;
  qb.method = "median";
  EXPECT_ERR(kiln_quantize(in.c_str(), q8.c_str(), &qb), KILN_ERROR_INVALID_ARGUMENT, "median");
  qb = q;
  qb.samples = 0;
  EXPECT_ERR(kiln_quantize(in.c_str(), q8.c_str(), &qb), KILN_ERROR_INVALID_ARGUMENT,
             "samples is 0");
  qb = q;
  qb.struct_size = 0;
  EXPECT_ERR(kiln_quantize(in.c_str(), q8.c_str(), &qb), KILN_ERROR_INVALID_ARGUMENT,
             "kiln_quantize_options_init");
  qb = q;
  qb.threads = 999;
  EXPECT_ERR(kiln_quantize(in.c_str(), q8.c_str(), &qb), KILN_ERROR_INVALID_ARGUMENT,
             "threads is 999");
  ASSERT_EQ(kiln_quantize(in.c_str(), q8.c_str(), &q), KILN_OK) << Last();
  ASSERT_EQ(kiln_model_create_from_file(q8.c_str(), &m), KILN_OK) << Last();
  ASSERT_EQ(kiln_session_create(m, nullptr, &s), KILN_OK) << Last();
  char* json = nullptr;
  ASSERT_EQ(kiln_session_plan_json(s, nullptr, &json), KILN_OK) << Last();
  EXPECT_NE(std::string(json).find("\"op_type\": \"QuantizeLinear\""), std::string::npos) << json;
  kiln_free(json);
  kiln_session_release(s);
  kiln_model_release(m);
}

// The ODC calls on a bare model: errors that say a package is needed, or a status saying so.
TEST(CApi, OdcCallsOnABareModel) {
  kiln_session* s = Open("add.onnx");
  char* json = nullptr;
  EXPECT_ERR(kiln_session_odc_set_recording(s, 1), KILN_ERROR_INVALID_ARGUMENT,
             "kiln_session_odc_set_recording: the session serves a bare ONNX model");
  EXPECT_ERR(kiln_session_odc_set_recording(nullptr, 1), KILN_ERROR_INVALID_ARGUMENT,
             "session is NULL");
  EXPECT_ERR(kiln_session_odc_compile_now(s, &json), KILN_ERROR_INVALID_ARGUMENT,
             "on-device compilation needs a .kiln package");
  EXPECT_ERR(kiln_session_odc_compile_now(nullptr, &json), KILN_ERROR_INVALID_ARGUMENT, "NULL");
  EXPECT_ERR(kiln_session_odc_status_json(s, nullptr), KILN_ERROR_INVALID_ARGUMENT,
             "out_json is NULL");
  EXPECT_ERR(kiln_session_odc_status_json(nullptr, &json), KILN_ERROR_INVALID_ARGUMENT,
             "session is NULL");
  ASSERT_EQ(kiln_session_odc_status_json(s, &json), KILN_OK) << Last();
  EXPECT_NE(std::string(json).find("\"enabled\": false"), std::string::npos) << json;
  kiln_free(json);
  EXPECT_ERR(kiln_session_odc_history_json(nullptr, &json), KILN_ERROR_INVALID_ARGUMENT,
             "session is NULL");
  EXPECT_ERR(kiln_session_odc_history_json(s, nullptr), KILN_ERROR_INVALID_ARGUMENT,
             "out_json is NULL");
  ASSERT_EQ(kiln_session_odc_history_json(s, &json), KILN_OK) << Last();
  EXPECT_STREQ(json, "[]");
  kiln_free(json);
  EXPECT_ERR(kiln_session_served_by(nullptr, &json), KILN_ERROR_INVALID_ARGUMENT,
             "session is NULL");
  EXPECT_ERR(kiln_session_served_by(s, nullptr), KILN_ERROR_INVALID_ARGUMENT, "out_text is NULL");
  ASSERT_EQ(kiln_session_served_by(s, &json), KILN_OK) << Last();
  EXPECT_EQ(std::string(json), "model " + kModels + "/add.onnx");
  kiln_free(json);
  kiln_session_release(s);
}

// One session (2 kernel threads, XNNPACK) run from 4 threads, each with its own binding; and
// 4 sessions over one model created and run concurrently. Every result equals the
// single-threaded one.
TEST(CApi, ThreadSafety) {
  kiln_session_options o;
  kiln_session_options_init(&o);
  o.threads = 2;
  kiln_model* m = Load("conv.onnx");
  kiln_session* s = nullptr;
  ASSERT_EQ(kiln_session_create(m, &o, &s), KILN_OK) << Last();
  std::vector<float> x(8 * 32 * 32);
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(static_cast<float>(i));
  const int64_t shape[4] = {1, 8, 32, 32};
  auto run = [&](kiln_session* session, std::vector<float>& y) {
    kiln_binding* io = nullptr;
    if (kiln_binding_create(session, &io) != KILN_OK) return false;
    bool ok = kiln_binding_set_input(io, 0, KILN_F32, shape, 4, x.data(), x.size() * 4, 0) ==
                  KILN_OK &&
              kiln_binding_set_output(io, 0, KILN_F32, y.data(), y.size() * 4, 0) == KILN_OK;
    for (int r = 0; ok && r < 20; ++r) ok = kiln_session_run(session, io) == KILN_OK;
    kiln_binding_release(io);
    return ok;
  };
  std::vector<float> want(16 * 32 * 32);
  ASSERT_TRUE(run(s, want)) << Last();
  std::vector<std::vector<float>> got(4, std::vector<float>(want.size()));
  std::vector<int> ok(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) threads.emplace_back([&, t] { ok[t] = run(s, got[t]); });
  for (auto& t : threads) t.join();
  threads.clear();
  for (int t = 0; t < 4; ++t) {
    EXPECT_TRUE(ok[t]);
    EXPECT_EQ(got[t], want) << "thread " << t;
  }
  std::vector<std::vector<float>> many(4, std::vector<float>(want.size()));
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      kiln_session* own = nullptr;
      ok[t] = kiln_session_create(m, &o, &own) == KILN_OK && run(own, many[t]);
      kiln_session_release(own);
    });
  }
  for (auto& t : threads) t.join();
  for (int t = 0; t < 4; ++t) {
    EXPECT_TRUE(ok[t]);
    EXPECT_EQ(many[t], want) << "session " << t;
  }
  kiln_session_release(s);
  kiln_model_release(m);
}

}  // namespace
