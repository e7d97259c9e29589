#include "ir/op_schema.h"

#include <string>
#include <unordered_map>

namespace kiln {

std::span<const OpSchema> QuantFusedSchemas();  // ops/quant_fused.cc: Kiln-domain int8 ops

namespace {

std::string Key(std::string_view domain, std::string_view op) {
  std::string d(domain);
  if (d == "ai.onnx") d.clear();
  return d + "::" + std::string(op);
}

const std::unordered_map<std::string, const OpSchema*>& Registry() {
  // Built on first use from the explicit family lists (no static registration).
  static const auto* registry = [] {
    auto* m = new std::unordered_map<std::string, const OpSchema*>();
    for (auto family : {ElementwiseSchemas(), TensorSchemas(), NnSchemas(), ReduceSchemas(),
                        RnnSchemas(), ControlFlowSchemas(), QuantSchemas(), MiscSchemas(),
                        SequenceSchemas(), QuantFusedSchemas(), ModernSchemas()}) {
      for (const OpSchema& s : family) (*m)[Key(s.domain, s.op_type)] = &s;
    }
    return m;
  }();
  return *registry;
}

}  // namespace

const OpSchema* FindOpSchema(std::string_view domain, std::string_view op_type) {
  auto it = Registry().find(Key(domain, op_type));
  return it == Registry().end() ? nullptr : it->second;
}

std::vector<const OpSchema*> AllOpSchemas() {
  std::vector<const OpSchema*> out;
  for (const auto& [k, v] : Registry()) out.push_back(v);
  return out;
}

Status InferNode(InferContext& ctx) {
  const Node& n = ctx.node();
  const OpSchema* s = FindOpSchema(n.domain, n.op_type);
  if (s == nullptr) {
    return Unimplemented("unknown op " + n.op_type + " (domain '" +
                         (n.domain.empty() ? "ai.onnx" : n.domain) + "', opset " +
                         std::to_string(n.opset) + ") at node '" + n.name + "'");
  }
  return s->infer(ctx);
}

}  // namespace kiln
