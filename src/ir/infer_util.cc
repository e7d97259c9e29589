#include "ir/infer_util.h"

#include <algorithm>
#include <cstdint>

namespace kiln {

Result<DimVector> BroadcastDims(const DimVector& a, const DimVector& b) {
  const size_t rank = std::max(a.size(), b.size());
  DimVector out(rank);
  for (size_t i = 0; i < rank; ++i) {
    const Dim* da = i + a.size() >= rank ? &a[i + a.size() - rank] : nullptr;
    const Dim* db = i + b.size() >= rank ? &b[i + b.size() - rank] : nullptr;
    if (da == nullptr) {
      out[i] = *db;
    } else if (db == nullptr) {
      out[i] = *da;
    } else if (da->is_static() && db->is_static()) {
      if (da->value == db->value || db->value == 1) {
        out[i] = *da;
      } else if (da->value == 1) {
        out[i] = *db;
      } else {
        return InvalidArgument("cannot broadcast dim " + std::to_string(da->value) + " with " +
                               std::to_string(db->value));
      }
    } else if (da->is_static() && da->value == 1) {
      out[i] = *db;
    } else if (db->is_static() && db->value == 1) {
      out[i] = *da;
    } else if (*da == *db) {
      out[i] = *da;
    } else if (da->is_static()) {
      out[i] = *da;  // the other must be 1 or equal at run time
    } else if (db->is_static()) {
      out[i] = *db;
    } else {
      out[i] = Dim();
    }
  }
  return out;
}

Result<std::optional<DimVector>> BroadcastInputs(const InferContext& ctx) {
  std::optional<DimVector> acc;
  bool first = true;
  for (size_t i = 0; i < ctx.num_inputs(); ++i) {
    if (!ctx.has_input(i)) continue;
    const auto& s = ctx.input(i).shape;
    if (!s) return std::optional<DimVector>();
    if (first) {
      acc = *s;
      first = false;
      continue;
    }
    auto r = BroadcastDims(*acc, *s);
    if (!r.ok()) return ctx.Error(r.status().message());
    acc = std::move(r).value();
  }
  return acc;
}

Result<int> NormalizeAxis(int64_t axis, int rank, const InferContext& ctx) {
  if (axis < -rank || axis >= rank) {
    return ctx.Error("axis " + std::to_string(axis) + " is out of range for rank " +
                     std::to_string(rank));
  }
  return static_cast<int>(axis < 0 ? axis + rank : axis);
}

DimVector ToDims(const Shape& s) { return DimVector(s.begin(), s.end()); }

Status InferSameAsInput0(InferContext& ctx) {
  if (!ctx.has_input(0)) return ctx.Error("missing input 0");
  ctx.set_output(0, ctx.input(0));
  return Status::Ok();
}

Status InferBroadcast(InferContext& ctx) {
  KILN_ASSIGN_OR_RETURN(auto shape, BroadcastInputs(ctx));
  ctx.set_output(0, ctx.input_type(0), std::move(shape));
  return Status::Ok();
}

Status InferBroadcastBool(InferContext& ctx) {
  KILN_ASSIGN_OR_RETURN(auto shape, BroadcastInputs(ctx));
  ctx.set_output(0, ElementType::kBool, std::move(shape));
  return Status::Ok();
}

SliceSpan NormalizeSlice(int64_t s, int64_t e, int64_t step, int64_t d) {
  if (s < 0) s += d;
  if (e < 0) e += d;
  int64_t len;
  if (step > 0) {
    s = std::clamp<int64_t>(s, 0, d);
    e = std::clamp<int64_t>(e, 0, d);
    len = e > s ? (e - s - 1) / step + 1 : 0;
  } else {
    s = std::clamp<int64_t>(s, 0, d - 1);
    e = std::clamp<int64_t>(e, -1, d - 1);
    len = s > e ? (s - e - 1) / (step == INT64_MIN ? INT64_MAX : -step) + 1 : 0;
  }
  return {s, len};
}

std::vector<int64_t> SplitChunks(int64_t dim, int64_t n) {
  if (n < 1 || dim < 0) return {};
  const int64_t chunk = dim / n + (dim % n != 0 ? 1 : 0);
  std::vector<int64_t> sizes(static_cast<size_t>(n), chunk);
  sizes.back() = dim - chunk * (n - 1);
  if (sizes.back() < 0 || (sizes.back() == 0 && dim > 0)) return {};
  return sizes;
}

Result<ElementType> QuantizeOutputType(const Node& node, ElementType zp) {
  ElementType t = zp == ElementType::kUndefined ? ElementType::kU8 : zp;
  const int64_t code = node.opset >= 21 ? node.attrs.GetInt("output_dtype", 0) : 0;
  if (code != 0) {
    const ElementType want = ElementTypeFromOnnx(static_cast<int>(code));
    if (want == ElementType::kUndefined) {
      return Unimplemented(node.Describe() + ": output_dtype " + std::to_string(code) +
                           " is not an element type Kiln quantizes to (uint8, int8, uint16, "
                           "int16; int4, uint4 and float8 types are not supported)");
    }
    if (zp != ElementType::kUndefined && zp != want) {
      return InvalidArgument(node.Describe() + ": output_dtype is " + ElementTypeName(want) +
                             " but y_zero_point is " + ElementTypeName(zp));
    }
    t = want;
  }
  const bool wide = node.opset >= 21 && (t == ElementType::kU16 || t == ElementType::kI16);
  if (t != ElementType::kU8 && t != ElementType::kI8 && !wide) {
    return InvalidArgument(node.Describe() + ": quantizes to " + ElementTypeName(t) +
                           ", expected uint8 or int8" +
                           (node.opset >= 21 ? ", uint16 or int16" : " (16-bit from opset 21)"));
  }
  return t;
}

Status CheckPoolAttributeVersion(const Node& node) {
  int since = 0;
  std::vector<const char*> attrs;
  if (node.op_type == "AveragePool") {
    since = 19;
    attrs = {"dilations"};
  } else if (node.op_type == "LpPool") {
    since = 18;
    attrs = {"dilations", "ceil_mode"};
  }
  if (node.opset >= since) return Status::Ok();
  for (const char* a : attrs) {
    if (node.attrs.Has(a)) {
      return InvalidArgument(node.Describe() + ": attribute '" + a + "' needs opset " +
                             std::to_string(since) + ", the model imports opset " +
                             std::to_string(node.opset));
    }
  }
  return Status::Ok();
}

std::optional<int64_t> StaticNumElements(const DimVector& d) {
  int64_t n = 1;
  for (const Dim& x : d) {
    if (!x.is_static()) return std::nullopt;
    n *= x.value;
  }
  return n;
}

}  // namespace kiln
