#include "fuzz_util.h"

namespace kiln::fuzz {

bool SmallInputs(const Graph& g, NamedTensors* out) {
  for (ValueId v : g.inputs()) {
    const Value& val = g.value(v);
    const TypeInfo& info = val.info;
    if (info.kind != TensorKind::kTensor || info.type == ElementType::kUndefined ||
        info.type == ElementType::kString || !info.shape) {
      return false;
    }
    Shape shape;
    int64_t count = 1;
    for (const Dim& d : *info.shape) {
      const int64_t n = d.is_static() ? d.value : 1;
      if (n < 0 || n > (1 << 16)) return false;
      count *= n;
      if (count > (1 << 16)) return false;
      shape.push_back(n);
    }
    auto t = Tensor::Allocate(info.type, shape);
    if (!t.ok()) return false;
    out->emplace_back(val.name, std::move(t).value());
  }
  return true;
}

}  // namespace kiln::fuzz
