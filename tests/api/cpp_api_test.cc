// kiln.hpp with Result-type errors (this file) and with exceptions (cpp_api_exceptions_test.cc).
#include <gtest/gtest.h>

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

}  // namespace
