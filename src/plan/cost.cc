#include "plan/cost.h"

namespace kiln {
namespace {

double Elements(const TypeInfo* t) {
  if (t == nullptr || !t->shape) return 1;
  double n = 1;
  for (const Dim& d : *t->shape) n *= d.is_static() ? static_cast<double>(d.value) : 1.0;
  return n;
}

double Bytes(const TypeInfo* t) {
  if (t == nullptr || t->type == ElementType::kUndefined || t->type == ElementType::kString) {
    return Elements(t) * 4;
  }
  return Elements(t) * static_cast<double>(ElementSize(t->type));
}

}  // namespace

NodeWork EstimateWork(const NodeQuery& q) {
  NodeWork w;
  for (const TypeInfo* t : q.inputs) {
    w.elements += Elements(t);
    w.bytes += Bytes(t);
  }
  for (const TypeInfo* t : q.outputs) {
    w.elements += Elements(t);
    w.bytes += Bytes(t);
  }
  const std::string& op = q.node->op_type;
  const TypeInfo* out = q.outputs.empty() ? nullptr : q.outputs[0];
  if ((op == "Conv" || op == "ConvTranspose" || op == "ConvInteger" || op == "QLinearConv") &&
      q.inputs.size() > 1 && q.inputs[op == "QLinearConv" ? 3 : 1] != nullptr) {
    // Every output (or, transposed, input) element takes Cin/group * kh * kw MACs: the weight's
    // element count divided by output channels.
    const TypeInfo* wt = q.inputs[op == "QLinearConv" ? 3 : 1];
    const TypeInfo* x = q.inputs[0];
    if (wt->shape && !wt->shape->empty() && (*wt->shape)[0].is_static() &&
        (*wt->shape)[0].value > 0) {
      const double per_out = Elements(wt) / static_cast<double>((*wt->shape)[0].value);
      w.macs = (op == "ConvTranspose" ? Elements(x) : Elements(out)) * per_out;
    }
  } else if ((op == "MatMul" || op == "Gemm" || op == "MatMulInteger" || op == "QLinearMatMul") &&
             q.inputs.size() >= 2) {
    const TypeInfo* a = q.inputs[0];  // A (also of QLinearMatMul: a, a_scale, a_zero_point, b, ...)
    if (a != nullptr && a->shape && !a->shape->empty()) {
      const Dim& k = op == "Gemm" && q.node->attrs.GetInt("transA", 0) != 0 ? a->shape->front()
                                                                           : a->shape->back();
      w.macs = Elements(out) * (k.is_static() ? static_cast<double>(k.value) : 1.0);
    }
  }
  return w;
}

}  // namespace kiln
