// The table of default-domain op versions 18-23 (ir/op_versions.h): its order, and what
// OpVersionSupport answers for versions Kiln implements, lacks, or that do not exist yet. What
// the implemented versions compute is compared with ONNX Runtime in tests/opset.
#include "ir/op_versions.h"

#include <gtest/gtest.h>

#include <string>

namespace kiln {
namespace {

Node MakeNode(const std::string& op, int opset) {
  Node n;
  n.name = "n";
  n.op_type = op;
  n.opset = opset;
  return n;
}

TEST(OpVersions, RowsAreSortedByOpThenVersionAndInRange) {
  const std::vector<OpVersionRow> rows = AllOpVersionRows();
  ASSERT_FALSE(rows.empty());
  for (size_t i = 0; i < rows.size(); ++i) {
    EXPECT_GE(rows[i].version, 18) << rows[i].op_type;
    EXPECT_LE(rows[i].version, kMaxDefaultOpset) << rows[i].op_type;
    if (i == 0) continue;
    const std::string a = rows[i - 1].op_type, b = rows[i].op_type;
    EXPECT_TRUE(a < b || (a == b && rows[i - 1].version < rows[i].version)) << a << " / " << b;
  }
}

TEST(OpVersions, ImplementedVersionsPass) {
  for (const auto& [op, opset] :
       std::vector<std::pair<std::string, int>>{{"Split", 18},
                                                {"Pad", 19},
                                                {"Pad", 23},
                                                {"ScatterND", 18},
                                                {"ReduceMax", 20},
                                                {"BitwiseAnd", 18},
                                                {"CenterCropPad", 18},
                                                {"Col2Im", 18},
                                                {"AveragePool", 22},
                                                {"LpPool", 18},
                                                {"QuantizeLinear", 21},
                                                {"DequantizeLinear", 23}}) {
    const Status st = OpVersionSupport(MakeNode(op, opset));
    EXPECT_TRUE(st.ok()) << op << " at opset " << opset << ": " << st.ToString();
  }
  // Opset 17 semantics for an op that did not change.
  EXPECT_TRUE(OpVersionSupport(MakeNode("Relu", 23)).ok());
}

TEST(OpVersions, OpsBeforeTheirFirstVersionAndMissingVersionsAreRefused) {
  Status st = OpVersionSupport(MakeNode("BitwiseNot", 17));
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.ToString().find("exists from opset 18"), std::string::npos) << st.ToString();
  st = OpVersionSupport(MakeNode("ImageDecoder", 20));
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.ToString().find("ai.onnx ImageDecoder version 20"), std::string::npos)
      << st.ToString();
  st = OpVersionSupport(MakeNode("Relu", kMaxDefaultOpset + 1));
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.ToString().find("opsets 1 to 23"), std::string::npos) << st.ToString();
}

}  // namespace
}  // namespace kiln
