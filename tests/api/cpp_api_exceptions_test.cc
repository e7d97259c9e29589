#define KILN_CPP_EXCEPTIONS
#include <gtest/gtest.h>

#include "kiln/kiln.hpp"

namespace {

TEST(CppApiExceptions, ThrowsWithKilnMessage) {
  try {
    kiln::Model::FromFile("/nonexistent.onnx");
    FAIL() << "no exception";
  } catch (const kiln::Exception& e) {
    EXPECT_EQ(e.status(), KILN_ERROR_NOT_FOUND);
    EXPECT_NE(std::string(e.what()).find("/nonexistent.onnx"), std::string::npos);
  }
  kiln::Model model = kiln::Model::FromFile(std::string(KILN_API_MODELS) + "/add.onnx");
  kiln::Session session = kiln::Session::Create(model);
  kiln::Binding io = session.NewBinding();
  const std::vector<float> x = {1, 2, 3};
  EXPECT_THROW(session.Run(io), kiln::Exception);  // input not bound yet
  io.SetInput<float>(0, {1, 3}, x);
  session.Run(io);
  EXPECT_EQ(io.Output(0).CopyAs<float>(), (std::vector<float>{2, 4, 6}));
  EXPECT_EQ(session.ServedBy(), std::string("model ") + KILN_API_MODELS + "/add.onnx");
  try {
    session.OdcSetRecording(true);
    FAIL() << "no exception";
  } catch (const kiln::Exception& e) {
    EXPECT_NE(std::string(e.what()).find("bare ONNX model"), std::string::npos) << e.what();
  }
  EXPECT_THROW(kiln::CompilePackage("/nonexistent.kiln"), kiln::Exception);
  EXPECT_EQ(session.OdcHistoryJson(), "[]");
}

}  // namespace
