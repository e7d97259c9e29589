// Shape and type inference for sequence and optional values (ir/graph.h TypeInfo::kind):
// sequence outputs carry the element type and, where all items agree, the items' shape.
#include <string>

#include "ir/infer_util.h"
#include "ir/op_schema.h"

namespace kiln {
namespace {

TypeInfo SequenceOf(ElementType t, std::optional<DimVector> shape = std::nullopt) {
  TypeInfo info{t, std::move(shape)};
  info.kind = TensorKind::kSequence;
  return info;
}

Status RequireSequence(const InferContext& ctx, size_t i) {
  if (!ctx.has_input(i)) return ctx.Error("missing input " + std::to_string(i) + " (a sequence)");
  const TypeInfo& t = ctx.input(i);
  // An input of unknown kind (undeclared, not yet inferred) is checked when the node runs.
  if (t.kind != TensorKind::kSequence && !(t.is_tensor() && t.type == ElementType::kUndefined)) {
    return ctx.Error("input " + std::to_string(i) + " must be a sequence, found " + t.ToString());
  }
  return Status::Ok();
}

// The items' type as a tensor type.
TypeInfo ItemOf(const TypeInfo& seq) {
  TypeInfo t = seq;
  t.kind = TensorKind::kTensor;
  t.of_sequence = false;
  return t;
}

Status InferSequenceEmpty(InferContext& ctx) {
  const ElementType t = ElementTypeFromOnnx(static_cast<int>(ctx.attrs().GetInt("dtype", 1)));
  if (t == ElementType::kUndefined) return ctx.Error("unsupported dtype");
  ctx.set_output(0, SequenceOf(t));
  return Status::Ok();
}

Status InferSequenceConstruct(InferContext& ctx) {
  if (ctx.num_inputs() == 0) return ctx.Error("needs at least one input");
  ElementType t = ElementType::kUndefined;
  std::optional<DimVector> shape = ctx.input(0).shape;
  for (size_t i = 0; i < ctx.num_inputs(); ++i) {
    const ElementType ti = ctx.input_type(i);
    if (t != ElementType::kUndefined && ti != ElementType::kUndefined && ti != t) {
      return ctx.Error("inputs mix " + std::string(ElementTypeName(t)) + " and " +
                       ElementTypeName(ti));
    }
    if (ti != ElementType::kUndefined) t = ti;
    if (!shape || !ctx.input(i).shape || ctx.input(i).shape->size() != shape->size()) {
      shape.reset();
      continue;
    }
    for (size_t d = 0; d < shape->size(); ++d) {
      if (!((*shape)[d] == (*ctx.input(i).shape)[d])) (*shape)[d] = Dim();
    }
  }
  ctx.set_output(0, SequenceOf(t, shape));
  return Status::Ok();
}

Status InferSequenceAt(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(RequireSequence(ctx, 0));
  ctx.set_output(0, ItemOf(ctx.input(0)));
  return Status::Ok();
}

Status InferSequenceInsert(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(RequireSequence(ctx, 0));
  const TypeInfo& s = ctx.input(0);
  const ElementType t = ctx.has_input(1) ? ctx.input_type(1) : ElementType::kUndefined;
  if (s.type != ElementType::kUndefined && t != ElementType::kUndefined && s.type != t) {
    return ctx.Error("cannot insert " + ctx.input(1).ToString() + " into " + s.ToString());
  }
  TypeInfo out = SequenceOf(s.type != ElementType::kUndefined ? s.type : t);
  if (s.shape && ctx.has_input(1) && ctx.input(1).shape &&
      s.shape->size() == ctx.input(1).shape->size()) {
    out.shape = s.shape;
    for (size_t d = 0; d < out.shape->size(); ++d) {
      if (!((*out.shape)[d] == (*ctx.input(1).shape)[d])) (*out.shape)[d] = Dim();
    }
  }
  ctx.set_output(0, out);
  return Status::Ok();
}

Status InferSequenceErase(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(RequireSequence(ctx, 0));
  ctx.set_output(0, ctx.input(0));
  return Status::Ok();
}

Status InferSequenceLength(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(RequireSequence(ctx, 0));
  ctx.set_output(0, ElementType::kI64, DimVector{});
  return Status::Ok();
}

Status InferSplitToSequence(InferContext& ctx) {
  if (!ctx.has_input(0)) return ctx.Error("missing input 0");
  ctx.set_output(0, SequenceOf(ctx.input_type(0)));
  return Status::Ok();
}

Status InferConcatFromSequence(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(RequireSequence(ctx, 0));
  if (!ctx.attrs().Has("axis")) return ctx.Error("missing attribute 'axis'");
  const TypeInfo& s = ctx.input(0);
  std::optional<DimVector> shape;
  if (s.shape) {
    const bool new_axis = ctx.attrs().GetInt("new_axis", 0) != 0;
    const int64_t r = static_cast<int64_t>(s.shape->size()) + (new_axis ? 1 : 0);
    int64_t axis = ctx.attrs().GetInt("axis", 0);
    if (axis < -r || axis >= r) return ctx.Error("axis " + std::to_string(axis) + " out of range");
    if (axis < 0) axis += r;
    DimVector dims = *s.shape;
    if (new_axis) {
      dims.insert(dims.begin() + axis, Dim());
    } else {
      dims[static_cast<size_t>(axis)] = Dim();
    }
    shape = dims;
  }
  ctx.set_output(0, s.type, shape);
  return Status::Ok();
}

Status InferSequenceMap(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(RequireSequence(ctx, 0));
  const Graph* body = ctx.attrs().GetGraph("body");
  if (body == nullptr) return ctx.Error("missing body graph");
  if (body->outputs().size() != ctx.num_outputs()) {
    return ctx.Error("body has " + std::to_string(body->outputs().size()) + " outputs, node " +
                     std::to_string(ctx.num_outputs()));
  }
  for (size_t j = 0; j < ctx.num_outputs(); ++j) {
    ctx.set_output(j, SequenceOf(body->value(body->outputs()[j]).info.type));
  }
  return Status::Ok();
}

Status InferOptional(InferContext& ctx) {
  TypeInfo out;
  if (ctx.has_input(0)) {
    const TypeInfo& x = ctx.input(0);
    if (x.kind == TensorKind::kOptional) return ctx.Error("input must be a tensor or a sequence");
    out = x;
    out.of_sequence = x.kind == TensorKind::kSequence;
  } else {
    const std::vector<int64_t> type = ctx.attrs().GetInts("type");
    if (type.size() != 3) return ctx.Error("an empty Optional needs the 'type' attribute");
    out.type = ElementTypeFromOnnx(static_cast<int>(type[1]));
    out.of_sequence = type[0] == static_cast<int64_t>(TensorKind::kSequence);
  }
  out.kind = TensorKind::kOptional;
  ctx.set_output(0, out);
  return Status::Ok();
}

Status InferOptionalHasElement(InferContext& ctx) {
  if (ctx.opset() < 18) {
    if (!ctx.has_input(0)) return ctx.Error("missing input 0 (an optional)");
    const TypeInfo& x = ctx.input(0);
    if (x.kind != TensorKind::kOptional && x.type != ElementType::kUndefined) {
      return ctx.Error("input must be an optional before opset 18, found " + x.ToString());
    }
  }
  ctx.set_output(0, ElementType::kBool, DimVector{});
  return Status::Ok();
}

Status InferOptionalGetElement(InferContext& ctx) {
  if (!ctx.has_input(0)) return ctx.Error("missing input 0");
  const TypeInfo& x = ctx.input(0);
  if (x.kind != TensorKind::kOptional) {
    if (ctx.opset() < 18 && x.type != ElementType::kUndefined) {
      return ctx.Error("input must be an optional before opset 18, found " + x.ToString());
    }
    ctx.set_output(0, x);
    return Status::Ok();
  }
  TypeInfo out = x;
  out.kind = x.of_sequence ? TensorKind::kSequence : TensorKind::kTensor;
  out.of_sequence = false;
  ctx.set_output(0, out);
  return Status::Ok();
}

constexpr OpSchema kSchemas[] = {
    {"SequenceEmpty", "", InferSequenceEmpty},
    {"SequenceConstruct", "", InferSequenceConstruct},
    {"SequenceAt", "", InferSequenceAt},
    {"SequenceInsert", "", InferSequenceInsert},
    {"SequenceErase", "", InferSequenceErase},
    {"SequenceLength", "", InferSequenceLength},
    {"SplitToSequence", "", InferSplitToSequence},
    {"ConcatFromSequence", "", InferConcatFromSequence},
    {"SequenceMap", "", InferSequenceMap},
    {"Optional", "", InferOptional},
    {"OptionalHasElement", "", InferOptionalHasElement},
    {"OptionalGetElement", "", InferOptionalGetElement},
};

}  // namespace

std::span<const OpSchema> SequenceSchemas() { return kSchemas; }

}  // namespace kiln
