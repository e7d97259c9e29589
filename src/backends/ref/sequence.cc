// Reference kernels for ONNX's sequence and optional values: SequenceEmpty, SequenceConstruct,
// SequenceAt, SequenceInsert, SequenceErase, SequenceLength, SplitToSequence,
// ConcatFromSequence, SequenceMap, Optional, OptionalHasElement, OptionalGetElement.
//
// Containers are immutable Tensor handles (core/tensor.h): every op builds a new one, sharing the
// items' storage (items are owned tensors). Positions are int32/int64 scalars; negative ones
// count from the back (insert accepts [-n, n], at/erase [-n, n-1]).
// Optional's `type` attribute arrives as ints {TensorKind, ONNX element type, of_sequence}
// (onnx/importer.cc).
#include <string>
#include <vector>

#include "backends/ref/tensor_internal.h"

namespace kiln {
namespace {

using namespace tensor_ref;  // NOLINT: ElementCopier, DimProduct, axis and input helpers

Result<const Tensor*> RequireSequence(KernelContext& ctx, size_t i) {
  const Tensor* s = ctx.input(i);
  if (s == nullptr) return ctx.Error("missing input " + std::to_string(i) + " (a sequence)");
  if (!s->is_sequence()) {
    return ctx.Error("input " + std::to_string(i) + " must be a sequence, found " + s->Describe());
  }
  return s;
}

// Position input `i` normalised to [0, n + extra) (extra = 1 for insert), or `def` if absent.
Result<int64_t> Position(KernelContext& ctx, size_t i, int64_t n, int64_t extra, int64_t def) {
  const Tensor* p = ctx.input(i);
  if (p == nullptr) return def;
  if (p->size() != 1 || (p->type() != ElementType::kI32 && p->type() != ElementType::kI64)) {
    return ctx.Error("position must be an int32/int64 scalar, found " + p->Describe());
  }
  int64_t pos = p->GetAsInt64(0);
  if (pos < -n || pos >= n + extra) {
    return ctx.Error("position " + std::to_string(pos) + " is outside [" + std::to_string(-n) +
                     ", " + std::to_string(n + extra - 1) + "] for a sequence of " +
                     std::to_string(n));
  }
  return pos < 0 ? pos + n : pos;
}

Status SequenceEmpty(KernelContext& ctx) {
  const int code = static_cast<int>(ctx.attrs().GetInt("dtype", 1));
  const ElementType t = ElementTypeFromOnnx(code);
  if (t == ElementType::kUndefined) return ctx.Error("unsupported dtype " + std::to_string(code));
  return ctx.SetValue(0, Tensor::Sequence(t, {}));
}

Status SequenceConstruct(KernelContext& ctx) {
  std::vector<Tensor> items;
  for (size_t i = 0; i < ctx.num_inputs(); ++i) {
    const Tensor* t = ctx.input(i);
    if (t == nullptr || !t->is_tensor()) return ctx.Error("input " + std::to_string(i) + " must be a tensor");
    if (!items.empty() && t->type() != items[0].type()) {
      return ctx.Error("inputs mix " + items[0].Describe() + " and " + t->Describe());
    }
    items.push_back(*t);
  }
  if (items.empty()) return ctx.Error("needs at least one input");
  const ElementType type = items[0].type();
  return ctx.SetValue(0, Tensor::Sequence(type, std::move(items)));
}

Status SequenceAt(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* s, RequireSequence(ctx, 0));
  const int64_t n = static_cast<int64_t>(s->items().size());
  if (ctx.input(1) == nullptr) return ctx.Error("missing input 1 (position)");
  KILN_ASSIGN_OR_RETURN(int64_t pos, Position(ctx, 1, n, 0, 0));
  return ctx.SetValue(0, s->items()[static_cast<size_t>(pos)]);
}

Status SequenceInsert(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* s, RequireSequence(ctx, 0));
  const Tensor* t = ctx.input(1);
  if (t == nullptr || !t->is_tensor()) return ctx.Error("input 1 must be a tensor");
  if (s->type() != ElementType::kUndefined && t->type() != s->type()) {
    return ctx.Error("cannot insert " + t->Describe() + " into " + s->Describe());
  }
  const int64_t n = static_cast<int64_t>(s->items().size());
  KILN_ASSIGN_OR_RETURN(int64_t pos, Position(ctx, 2, n, 1, n));
  std::vector<Tensor> items = s->items();
  items.insert(items.begin() + pos, *t);
  return ctx.SetValue(0, Tensor::Sequence(t->type(), std::move(items)));
}

Status SequenceErase(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* s, RequireSequence(ctx, 0));
  const int64_t n = static_cast<int64_t>(s->items().size());
  if (n == 0) return ctx.Error("cannot erase from an empty sequence");
  KILN_ASSIGN_OR_RETURN(int64_t pos, Position(ctx, 1, n, 0, n - 1));
  std::vector<Tensor> items = s->items();
  items.erase(items.begin() + pos);
  return ctx.SetValue(0, Tensor::Sequence(s->type(), std::move(items)));
}

Status SequenceLength(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* s, RequireSequence(ctx, 0));
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.output(0, ElementType::kI64, {}));
  out->data<int64_t>()[0] = static_cast<int64_t>(s->items().size());
  return Status::Ok();
}

// Copies x[..., begin:begin+len, ...] along `axis` into a new owned tensor (axis dropped if squeeze).
Tensor SliceAxis(const Tensor& x, int axis, int64_t begin, int64_t len, bool squeeze) {
  Shape shape = x.shape();
  shape[static_cast<size_t>(axis)] = len;
  Tensor out = Tensor::Allocate(x.type(), shape).value();
  const ElementCopier c(x.type());
  const int64_t outer = DimProduct(x.shape(), 0, axis);
  const int64_t inner = DimProduct(x.shape(), axis + 1, x.rank());
  const int64_t d = x.dim(axis);
  for (int64_t o = 0; o < outer; ++o) {
    c.Copy(out.raw(), o * len * inner, x.raw(), (o * d + begin) * inner, len * inner);
  }
  if (squeeze) {
    shape.erase(shape.begin() + axis);
    out = out.Reshaped(shape);
  }
  return out;
}

// split absent: chunks of 1 (squeezed unless keepdims = 0); a scalar: chunks of that size (the
// last may be smaller); 1-D: the chunk lengths, which must add up to the dim.
Status SplitToSequence(KernelContext& ctx) {
  KILN_REQUIRE_INPUT(x, 0, "input");
  if (x->rank() == 0) return ctx.Error("cannot split a scalar");
  KILN_ASSIGN_OR_RETURN(int axis, NormalizeAxis(ctx, ctx.attrs().GetInt("axis", 0), x->rank()));
  const int64_t d = x->dim(axis);
  std::vector<int64_t> lengths;
  bool squeeze = false;
  if (const Tensor* s = ctx.input(1)) {
    KILN_ASSIGN_OR_RETURN(lengths, IntValues(ctx, *s, "split"));
    if (s->rank() == 0) {
      const int64_t chunk = lengths[0];
      if (chunk <= 0) return ctx.Error("split must be positive, found " + std::to_string(chunk));
      lengths.clear();
      for (int64_t b = 0; b < d; b += chunk) lengths.push_back(std::min(chunk, d - b));
    } else {
      int64_t total = 0;
      for (int64_t l : lengths) {
        if (l < 0) return ctx.Error("split has a negative length");
        total += l;
      }
      if (total != d) {
        return ctx.Error("split " + ShapeToString(lengths) + " does not add up to dim " +
                         std::to_string(d) + " of " + x->Describe());
      }
    }
  } else {
    lengths.assign(static_cast<size_t>(d), 1);
    squeeze = ctx.attrs().GetInt("keepdims", 1) == 0;
  }
  std::vector<Tensor> items;
  int64_t begin = 0;
  for (int64_t l : lengths) {
    items.push_back(SliceAxis(*x, axis, begin, l, squeeze));
    begin += l;
  }
  return ctx.SetValue(0, Tensor::Sequence(x->type(), std::move(items)));
}

// Concatenates the items along `axis` (new_axis = 1: stacks them along a new axis).
Status ConcatFromSequence(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* s, RequireSequence(ctx, 0));
  const auto& items = s->items();
  if (items.empty()) return ctx.Error("cannot concatenate an empty sequence");
  if (!ctx.attrs().Has("axis")) return ctx.Error("missing attribute 'axis'");
  const bool new_axis = ctx.attrs().GetInt("new_axis", 0) != 0;
  const Tensor& first = items[0];
  const int r = first.rank() + (new_axis ? 1 : 0);
  if (r == 0) return ctx.Error("cannot concatenate scalars");
  KILN_ASSIGN_OR_RETURN(int axis, NormalizeAxis(ctx, ctx.attrs().GetInt("axis", 0), r));
  // View each item with the new axis of length 1 inserted, then concatenate.
  std::vector<Tensor> views;
  for (const Tensor& t : items) {
    bool same = t.type() == first.type() && t.rank() == first.rank();
    for (int dd = 0; same && dd < t.rank(); ++dd) {
      same = (!new_axis && dd == axis) || t.dim(dd) == first.dim(dd);
    }
    if (!same) {
      return ctx.Error("items " + first.Describe() + " and " + t.Describe() +
                       " cannot be concatenated along axis " + std::to_string(axis));
    }
    Shape shape = t.shape();
    if (new_axis) shape.insert(shape.begin() + axis, 1);
    views.push_back(t.Reshaped(shape));
  }
  Shape out_shape = views[0].shape();
  out_shape[static_cast<size_t>(axis)] = 0;
  for (const Tensor& v : views) out_shape[static_cast<size_t>(axis)] += v.dim(axis);
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.output(0, first.type(), out_shape));
  const ElementCopier c(first.type());
  const int64_t outer = DimProduct(out_shape, 0, axis);
  const int64_t inner = DimProduct(out_shape, axis + 1, r);
  int64_t pos = 0;
  for (int64_t o = 0; o < outer; ++o) {
    for (const Tensor& v : views) {
      const int64_t chunk = v.dim(axis) * inner;
      c.Copy(out->raw(), pos, v.raw(), o * chunk, chunk);
      pos += chunk;
    }
  }
  return Status::Ok();
}

// Runs the body once per item: sequence inputs give their i-th item, tensor inputs themselves;
// every body output is gathered into an output sequence.
Status SequenceMap(KernelContext& ctx) {
  const Graph* body = ctx.attrs().GetGraph("body");
  if (body == nullptr) return ctx.Error("missing body graph");
  KILN_ASSIGN_OR_RETURN(const Tensor* s0, RequireSequence(ctx, 0));
  const size_t n = s0->items().size();
  for (size_t i = 1; i < ctx.num_inputs(); ++i) {
    const Tensor* t = ctx.input(i);
    if (t == nullptr) return ctx.Error("missing input " + std::to_string(i));
    if (t->is_sequence() && t->items().size() != n) {
      return ctx.Error("input sequences differ in length: " + s0->Describe() + " and " +
                       t->Describe());
    }
  }
  std::vector<std::vector<Tensor>> outs(ctx.num_outputs());
  for (size_t k = 0; k < n; ++k) {
    std::vector<Tensor> in;
    for (size_t i = 0; i < ctx.num_inputs(); ++i) {
      const Tensor* t = ctx.input(i);
      in.push_back(t->is_sequence() ? t->items()[k] : *t);
    }
    KILN_ASSIGN_OR_RETURN(std::vector<Tensor> res, ctx.RunSubgraph(*body, in));
    if (res.size() != outs.size()) {
      return ctx.Error("body produced " + std::to_string(res.size()) + " outputs, expected " +
                       std::to_string(outs.size()));
    }
    for (size_t j = 0; j < res.size(); ++j) outs[j].push_back(std::move(res[j]));
  }
  for (size_t j = 0; j < outs.size(); ++j) {
    ElementType t = outs[j].empty() ? body->value(body->outputs()[j]).info.type : outs[j][0].type();
    KILN_RETURN_IF_ERROR(ctx.SetValue(j, Tensor::Sequence(t, std::move(outs[j]))));
  }
  return Status::Ok();
}

Status Optional(KernelContext& ctx) {
  if (const Tensor* x = ctx.input(0)) {
    if (x->is_optional()) return ctx.Error("input must be a tensor or a sequence, found " + x->Describe());
    return ctx.SetValue(0, Tensor::OptionalOf(*x));
  }
  const std::vector<int64_t> type = ctx.attrs().GetInts("type");
  if (type.size() != 3) return ctx.Error("an empty Optional needs the 'type' attribute");
  const ElementType elem = ElementTypeFromOnnx(static_cast<int>(type[1]));
  return ctx.SetValue(0, Tensor::OptionalNone(
                             elem, type[0] == static_cast<int64_t>(TensorKind::kSequence)));
}

// Opset 15: an optional input. Opset 18: also a tensor or sequence (true), or no input (false).
Status OptionalHasElement(KernelContext& ctx) {
  const Tensor* x = ctx.input(0);
  bool has = false;
  if (x != nullptr) {
    if (!x->is_optional() && ctx.opset() < 18) {
      return ctx.Error("input must be an optional before opset 18, found " + x->Describe());
    }
    has = x->is_optional() ? x->has_element() : true;
  } else if (ctx.opset() < 18) {
    return ctx.Error("missing input 0 (an optional)");
  }
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.output(0, ElementType::kBool, {}));
  out->data<bool>()[0] = has;
  return Status::Ok();
}

Status OptionalGetElement(KernelContext& ctx) {
  const Tensor* x = ctx.input(0);
  if (x == nullptr) return ctx.Error("missing input 0");
  if (!x->is_optional()) {
    if (ctx.opset() < 18) {
      return ctx.Error("input must be an optional before opset 18, found " + x->Describe());
    }
    return ctx.SetValue(0, *x);
  }
  if (!x->has_element()) return ctx.Error("the optional input is empty");
  return ctx.SetValue(0, x->items()[0]);
}

constexpr KernelDef kKernels[] = {
    {"SequenceEmpty", "", SequenceEmpty, true},
    {"SequenceConstruct", "", SequenceConstruct, true},
    {"SequenceAt", "", SequenceAt, true},
    {"SequenceInsert", "", SequenceInsert, true},
    {"SequenceErase", "", SequenceErase, true},
    {"SequenceLength", "", SequenceLength, true},
    {"SplitToSequence", "", SplitToSequence, true},
    {"ConcatFromSequence", "", ConcatFromSequence, true},
    {"SequenceMap", "", SequenceMap, true},
    {"Optional", "", Optional, true},
    {"OptionalHasElement", "", OptionalHasElement, true},
    {"OptionalGetElement", "", OptionalGetElement, true},
};

}  // namespace

std::span<const KernelDef> SequenceKernels() { return kKernels; }

}  // namespace kiln
