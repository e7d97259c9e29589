// Shape and type inference for the elementwise op family: unary math and activations, Cast,
// Clip, binary/variadic ops with numpy broadcasting (and the pre-opset-7 `broadcast`/`axis`
// form of Add, Sub, Mul, Div, Pow, And, Or, Xor, Equal, Greater, Less), comparisons, Where.
#include <cctype>
#include <string>

#include "ir/infer_util.h"
#include "ir/op_schema.h"

namespace kiln {

Result<ElementType> CastTargetType(const Node& node) {
  const Attribute* to = node.attrs.Find("to");
  if (to == nullptr) return InvalidArgument("attribute 'to' is required");
  if (to->kind == Attribute::Kind::kString) {
    // Opsets 1-5 name the type.
    static constexpr struct {
      const char* name;
      int code;
    } kNames[] = {{"FLOAT", 1},  {"UINT8", 2},   {"INT8", 3},    {"UINT16", 4}, {"INT16", 5},
                  {"INT32", 6},  {"INT64", 7},   {"STRING", 8},  {"BOOL", 9},   {"FLOAT16", 10},
                  {"DOUBLE", 11}, {"UINT32", 12}, {"UINT64", 13}, {"BFLOAT16", 16}};
    std::string upper = to->s;
    for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    for (const auto& n : kNames) {
      if (upper == n.name) return ElementTypeFromOnnx(n.code);
    }
    return InvalidArgument("attribute 'to' names unknown type \"" + to->s + "\"");
  }
  if (to->kind != Attribute::Kind::kInt) return InvalidArgument("attribute 'to' must be an int");
  const ElementType t = ElementTypeFromOnnx(static_cast<int>(to->i));
  if (t == ElementType::kUndefined) {
    return InvalidArgument("attribute 'to' = " + std::to_string(to->i) +
                           " is not a supported element type");
  }
  return t;
}

namespace {

Status RequireInputs(const InferContext& ctx, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (!ctx.has_input(i)) return ctx.Error("missing input " + std::to_string(i));
  }
  return Status::Ok();
}

Status RequireSameTypes(const InferContext& ctx, size_t first, size_t last) {
  for (size_t i = first + 1; i <= last; ++i) {
    if (ctx.has_input(i) && ctx.input_type(i) != ctx.input_type(first)) {
      return ctx.Error("input " + std::to_string(i) + " has element type " +
                       ElementTypeName(ctx.input_type(i)) + ", expected " +
                       ElementTypeName(ctx.input_type(first)));
    }
  }
  return Status::Ok();
}

// Output shape of a two-input broadcasting op, honouring the pre-opset-7 form where B is
// aligned inside A (the output then has A's shape).
Result<std::optional<DimVector>> BinaryShape(const InferContext& ctx) {
  if (ctx.opset() < 7) {
    const auto& a = ctx.input(0).shape;
    const auto& b = ctx.input(1).shape;
    if (a && b) {
      if (b->size() > a->size()) {
        return ctx.Error("B of rank " + std::to_string(b->size()) +
                         " cannot broadcast to A of rank " + std::to_string(a->size()));
      }
      if (ctx.attrs().GetInt("broadcast", 0) == 0 && b->size() != a->size()) {
        return ctx.Error("inputs must have equal shapes when broadcast=0");
      }
    }
    return a;
  }
  return BroadcastInputs(ctx);
}

Status InferBinarySameType(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(RequireInputs(ctx, 2));
  KILN_RETURN_IF_ERROR(RequireSameTypes(ctx, 0, 1));
  KILN_ASSIGN_OR_RETURN(auto shape, BinaryShape(ctx));
  ctx.set_output(0, ctx.input_type(0), std::move(shape));
  return Status::Ok();
}

// BitwiseAnd/Or/Xor-18: two integer inputs of one type, broadcast.
Status InferBitwise(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(RequireInputs(ctx, 2));
  KILN_RETURN_IF_ERROR(RequireSameTypes(ctx, 0, 1));
  const ElementType t = ctx.input_type(0);
  if (t != ElementType::kUndefined && !IsInteger(t)) {
    return ctx.Error(std::string("expected integer inputs, found ") + ElementTypeName(t));
  }
  KILN_ASSIGN_OR_RETURN(auto shape, BroadcastInputs(ctx));
  ctx.set_output(0, t, std::move(shape));
  return Status::Ok();
}

// BitwiseNot-18: one integer input.
Status InferBitwiseNot(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(RequireInputs(ctx, 1));
  const ElementType t = ctx.input_type(0);
  if (t != ElementType::kUndefined && !IsInteger(t)) {
    return ctx.Error(std::string("expected an integer input, found ") + ElementTypeName(t));
  }
  ctx.set_output(0, ctx.input(0));
  return Status::Ok();
}

Status InferPow(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(RequireInputs(ctx, 2));
  KILN_ASSIGN_OR_RETURN(auto shape, BinaryShape(ctx));
  ctx.set_output(0, ctx.input_type(0), std::move(shape));
  return Status::Ok();
}

Status InferCompare(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(RequireInputs(ctx, 2));
  KILN_RETURN_IF_ERROR(RequireSameTypes(ctx, 0, 1));
  KILN_ASSIGN_OR_RETURN(auto shape, BinaryShape(ctx));
  ctx.set_output(0, ElementType::kBool, std::move(shape));
  return Status::Ok();
}

Status InferVariadic(InferContext& ctx) {
  if (ctx.num_inputs() == 0) return ctx.Error("expected at least one input");
  KILN_RETURN_IF_ERROR(RequireInputs(ctx, ctx.num_inputs()));
  KILN_RETURN_IF_ERROR(RequireSameTypes(ctx, 0, ctx.num_inputs() - 1));
  return InferBroadcast(ctx);
}

Status InferWhere(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(RequireInputs(ctx, 3));
  if (ctx.input_type(0) != ElementType::kBool) {
    return ctx.Error(std::string("condition must be bool, found ") +
                     ElementTypeName(ctx.input_type(0)));
  }
  KILN_RETURN_IF_ERROR(RequireSameTypes(ctx, 1, 2));
  KILN_ASSIGN_OR_RETURN(auto shape, BroadcastInputs(ctx));
  ctx.set_output(0, ctx.input_type(1), std::move(shape));
  return Status::Ok();
}

Status InferPRelu(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(RequireInputs(ctx, 2));
  KILN_RETURN_IF_ERROR(RequireSameTypes(ctx, 0, 1));
  ctx.set_output(0, ctx.input(0));
  return Status::Ok();
}

Status InferBoolSameShape(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(RequireInputs(ctx, 1));
  ctx.set_output(0, ElementType::kBool, ctx.input(0).shape);
  return Status::Ok();
}

Status InferCast(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(RequireInputs(ctx, 1));
  auto to = CastTargetType(ctx.node());
  if (!to.ok()) return ctx.Error(to.status().message());
  ctx.set_output(0, *to, ctx.input(0).shape);
  return Status::Ok();
}

Status InferCastLike(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(RequireInputs(ctx, 2));
  ctx.set_output(0, ctx.input_type(1), ctx.input(0).shape);
  return Status::Ok();
}

Status InferClip(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(RequireInputs(ctx, 1));
  if (ctx.opset() >= 11) {
    KILN_RETURN_IF_ERROR(RequireSameTypes(ctx, 0, 2));
    for (size_t i = 1; i <= 2; ++i) {
      if (!ctx.has_input(i) || !ctx.input(i).shape) continue;
      const auto n = StaticNumElements(*ctx.input(i).shape);
      if (n && *n != 1) return ctx.Error("input " + std::to_string(i) + " must be a scalar");
    }
  }
  ctx.set_output(0, ctx.input(0));
  return Status::Ok();
}

constexpr OpSchema kSchemas[] = {
    // Unary math and activations: output = input type and shape.
    {"Abs", "", InferSameAsInput0},
    {"Neg", "", InferSameAsInput0},
    {"Sign", "", InferSameAsInput0},
    {"Reciprocal", "", InferSameAsInput0},
    {"Floor", "", InferSameAsInput0},
    {"Ceil", "", InferSameAsInput0},
    {"Round", "", InferSameAsInput0},
    {"Sqrt", "", InferSameAsInput0},
    {"Exp", "", InferSameAsInput0},
    {"Log", "", InferSameAsInput0},
    {"Sin", "", InferSameAsInput0},
    {"Cos", "", InferSameAsInput0},
    {"Tan", "", InferSameAsInput0},
    {"Asin", "", InferSameAsInput0},
    {"Acos", "", InferSameAsInput0},
    {"Atan", "", InferSameAsInput0},
    {"Sinh", "", InferSameAsInput0},
    {"Cosh", "", InferSameAsInput0},
    {"Tanh", "", InferSameAsInput0},
    {"Asinh", "", InferSameAsInput0},
    {"Acosh", "", InferSameAsInput0},
    {"Atanh", "", InferSameAsInput0},
    {"Erf", "", InferSameAsInput0},
    {"Relu", "", InferSameAsInput0},
    {"LeakyRelu", "", InferSameAsInput0},
    {"Elu", "", InferSameAsInput0},
    {"Selu", "", InferSameAsInput0},
    {"Celu", "", InferSameAsInput0},
    {"Sigmoid", "", InferSameAsInput0},
    {"HardSigmoid", "", InferSameAsInput0},
    {"HardSwish", "", InferSameAsInput0},
    {"Softplus", "", InferSameAsInput0},
    {"Softsign", "", InferSameAsInput0},
    {"ThresholdedRelu", "", InferSameAsInput0},
    {"Shrink", "", InferSameAsInput0},
    {"Not", "", InferSameAsInput0},
    {"IsNaN", "", InferBoolSameShape},
    {"IsInf", "", InferBoolSameShape},
    {"Cast", "", InferCast},
    {"CastLike", "", InferCastLike},
    {"Clip", "", InferClip},
    // Binary with broadcasting.
    {"Add", "", InferBinarySameType},
    {"Sub", "", InferBinarySameType},
    {"Mul", "", InferBinarySameType},
    {"Div", "", InferBinarySameType},
    {"Mod", "", InferBinarySameType},
    {"BitShift", "", InferBinarySameType},
    {"BitwiseAnd", "", InferBitwise},
    {"BitwiseOr", "", InferBitwise},
    {"BitwiseXor", "", InferBitwise},
    {"BitwiseNot", "", InferBitwiseNot},
    {"Pow", "", InferPow},
    {"PRelu", "", InferPRelu},
    {"Equal", "", InferCompare},
    {"Less", "", InferCompare},
    {"LessOrEqual", "", InferCompare},
    {"Greater", "", InferCompare},
    {"GreaterOrEqual", "", InferCompare},
    {"And", "", InferCompare},
    {"Or", "", InferCompare},
    {"Xor", "", InferCompare},
    {"Where", "", InferWhere},
    // Variadic.
    {"Max", "", InferVariadic},
    {"Min", "", InferVariadic},
    {"Sum", "", InferVariadic},
    {"Mean", "", InferVariadic},
};

}  // namespace

std::span<const OpSchema> ElementwiseSchemas() { return kSchemas; }

}  // namespace kiln
