// The XNNPACK backend's one op table: Supports() and Compile() both look ops up here.
#include <string>

#include "backends/xnnpack/xnn_ops.h"

namespace kiln::xnn {

const std::vector<OpDef>& OpTable() {
  static const std::vector<OpDef> table = [] {
    std::vector<OpDef> t;
    AddConvOps(t);
    AddElementwiseOps(t);
    AddPoolOps(t);
    AddTensorOps(t);
    AddNeckOps(t);
    AddInt8Ops(t);
    AddModernOps(t);
    return t;
  }();
  return table;
}

const OpDef* FindOp(const std::string& op_type, bool int8) {
  for (const OpDef& d : OpTable()) {
    if (op_type == d.op_type && d.int8 == int8) return &d;
  }
  return nullptr;
}

}  // namespace kiln::xnn
