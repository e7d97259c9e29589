// kiln.hpp with Result-type errors (this file) and with exceptions (cpp_api_exceptions_test.cc).
#include <gtest/gtest.h>

#include <filesystem>

#include "kiln/kiln.hpp"

namespace {

const std::string kModels = KILN_API_MODELS;

TEST(CppApi, RunWithSpansAndResults) {
  auto bad = kiln::Model::FromFile("/nonexistent.onnx");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().status(), KILN_ERROR_NOT_FOUND);
  EXPECT_NE(bad.message().find("/nonexistent.onnx"), std::string::npos);
  auto model = kiln::Model::FromFile(kModels + "/add.onnx");
  ASSERT_TRUE(model.ok()) << model.message();
  kiln::SessionOptions opts;
  opts.Set("Threads", "2").Set("OpBackend.Relu", "ref");
  auto session = kiln::Session::Create(*model, opts);
  ASSERT_TRUE(session.ok()) << session.message();
  auto inputs = session->Inputs();
  ASSERT_EQ(inputs.size(), 1u);
  EXPECT_EQ(inputs[0].dim_names[0], "batch");
  EXPECT_EQ(session->Outputs()[1].name, "z");
  auto io = session->NewBinding();
  ASSERT_TRUE(io.ok());
  const std::vector<float> x = {-1, 2, -3};
  EXPECT_FALSE(io->SetInput<float>(0, {1, 4}, x).ok());
  ASSERT_TRUE(io->SetInput<float>(0, {1, 3}, x).ok());
  std::vector<float> y(3);
  ASSERT_TRUE(io->SetOutput<float>(0, y).ok());
  ASSERT_TRUE(session->Run(*io).ok());
  EXPECT_EQ(y, (std::vector<float>{0, 4, 0}));
  auto z = io->Output(1);
  ASSERT_TRUE(z.ok());
  EXPECT_EQ(z->shape(), (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(std::vector<float>(z->Data<float>().begin(), z->Data<float>().end()),
            (std::vector<float>{0, 2, 0}));
  auto zd = z->CopyAs<double>();
  ASSERT_TRUE(zd.ok());
  EXPECT_EQ((*zd)[1], 2.0);
  auto plan = session->PlanJson(&*io);
  ASSERT_TRUE(plan.ok()) << plan.message();
  EXPECT_NE(plan->find("relu0"), std::string::npos);
  auto bad_opts = kiln::SessionOptions().Set("Nope", "1");
  auto s2 = kiln::Session::Create(*model, bad_opts);
  EXPECT_FALSE(s2.ok());
  EXPECT_NE(s2.message().find("unknown config key 'Nope'"), std::string::npos);
}

// Convert, Quantize, Pack, CompilePackage and a package session's ODC calls through kiln.hpp.
TEST(CppApi, ToolsPackagesAndOdc) {
  const std::string dir = ::testing::TempDir() + "/kiln_cpp_api";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string conv = kModels + "/conv.onnx";
  kiln::ConvertOptions co;
  co.keep_fp32 = "bogus:1";
  auto bad = kiln::Convert(conv, dir + "/conv.fp16.onnx", co);
  EXPECT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find("bogus:1"), std::string::npos) << bad.message();
  ASSERT_TRUE(kiln::Convert(conv, dir + "/conv.fp16.onnx").ok());
  auto half = kiln::Session::Create(*kiln::Model::FromFile(dir + "/conv.fp16.onnx"));
  ASSERT_TRUE(half.ok()) << half.message();
  EXPECT_EQ(half->Inputs()[0].type, KILN_F16);
  kiln::QuantizeOptions qo;
  auto no_data = kiln::Quantize(conv, dir + "/conv.q8.onnx", qo);
  EXPECT_NE(no_data.message().find("data_dir is NULL"), std::string::npos) << no_data.message();
  qo.data_dir = kModels + "/calib";
  qo.method = "minmax";
  ASSERT_TRUE(kiln::Quantize(conv, dir + "/conv.q8.onnx", qo).ok()) << kiln_last_error_message();
  auto q8 = kiln::Session::Create(*kiln::Model::FromFile(dir + "/conv.q8.onnx"));
  ASSERT_TRUE(q8.ok());
  EXPECT_NE(q8->PlanJson()->find("QuantizeLinear"), std::string::npos);

  auto typo = kiln::Pack(conv, dir + "/conv.kiln", kiln::PackOptions().Set("OdcTriger", "manual"));
  EXPECT_NE(typo.message().find("OdcTriger"), std::string::npos) << typo.message();
  kiln::PackOptions po;
  po.Set("OnDeviceCompilation", "1").Set("OdcTrigger", "manual").Set("OdcMode", "compile");
  ASSERT_TRUE(kiln::Pack(conv, dir + "/conv.kiln", po).ok()) << kiln_last_error_message();
  auto model = kiln::Model::FromFile(dir + "/conv.kiln");
  ASSERT_TRUE(model.ok()) << model.message();
  auto session = kiln::Session::Create(*model);
  ASSERT_TRUE(session.ok()) << session.message();
  EXPECT_EQ(*session->ServedBy(), "float model models/conv.onnx");
  EXPECT_NE(session->OdcStatusJson()->find("\"recording\": true"), std::string::npos);
  auto io = session->NewBinding();
  std::vector<float> x(8 * 32 * 32, 0.5f);
  ASSERT_TRUE(io->SetInput<float>(0, {1, 8, 32, 32}, x).ok());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(session->Run(*io).ok());
  std::vector<float> before = *io->Output(0)->CopyAs<float>();
  ASSERT_TRUE(session->OdcSetRecording(false).ok());
  EXPECT_NE(session->OdcStatusJson()->find("\"recording\": false"), std::string::npos);
  auto job = session->OdcCompileNow();
  ASSERT_TRUE(job.ok()) << job.message();
  EXPECT_NE(job->find("\"outcome\": \"accepted\""), std::string::npos) << *job;
  EXPECT_EQ(session->ServedBy()->rfind("compiled plan", 0), 0u) << *session->ServedBy();
  ASSERT_TRUE(session->Run(*io).ok());
  EXPECT_EQ(*io->Output(0)->CopyAs<float>(), before);
  EXPECT_NE(session->OdcHistoryJson()->find("accepted"), std::string::npos);
  auto again = kiln::CompilePackage(dir + "/conv.kiln", {{"OdcMode", "compile"}});
  ASSERT_TRUE(again.ok()) << again.message();
  EXPECT_NE(again->find("\"outcome\""), std::string::npos);
  auto not_pkg = kiln::CompilePackage(conv);
  EXPECT_NE(not_pkg.message().find("is not a Kiln package"), std::string::npos);
  kiln::Session bare = *kiln::Session::Create(*kiln::Model::FromFile(conv));
  auto odc = bare.OdcCompileNow();
  EXPECT_NE(odc.message().find("bare ONNX model"), std::string::npos) << odc.message();
}

}  // namespace
