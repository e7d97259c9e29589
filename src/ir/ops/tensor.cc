// Shape and type inference for the tensor op family (Reshape, Slice, Gather, Pad, TopK, ...).
//
// These ops carry shapes through models (Shape -> Gather -> Unsqueeze -> Concat -> Reshape), so
// whenever a shape-carrying input has a known constant value it is used to give exact dims.
// Dims that depend on unknown data are unknown (Dim()), never guessed.
#include <algorithm>
#include <cmath>
#include <map>

#include "ir/infer_util.h"
#include "ir/op_schema.h"

namespace kiln {
namespace {

using Dims = std::optional<DimVector>;

// Integer values of input i when it is a known constant.
std::optional<std::vector<int64_t>> ConstInts(const InferContext& ctx, size_t i) {
  const Tensor* t = ctx.input_value(i);
  if (t == nullptr || !IsInteger(t->type())) return std::nullopt;
  return t->ToInt64Vector();
}

Status NeedInput(const InferContext& ctx, size_t i) {
  if (!ctx.has_input(i)) return ctx.Error("missing required input " + std::to_string(i));
  return Status::Ok();
}

// a * b, keeping a symbol when the other factor is 1.
Dim DimMul(const Dim& a, const Dim& b) {
  if (a.is_static() && b.is_static()) {
    int64_t p;
    return __builtin_mul_overflow(a.value, b.value, &p) ? Dim() : Dim(p);
  }
  if (a.is_static() && a.value == 1) return b;
  if (b.is_static() && b.value == 1) return a;
  if ((a.is_static() && a.value == 0) || (b.is_static() && b.value == 0)) return Dim(0);
  return Dim();
}

// Product of d[begin, end).
Dim DimProduct(const DimVector& d, size_t begin, size_t end) {
  Dim p(1);
  for (size_t i = begin; i < end; ++i) p = DimMul(p, d[i]);
  return p;
}

// d / n for a static divisor; an error when a static d does not divide.
Result<Dim> DimDiv(const InferContext& ctx, const Dim& d, int64_t n, const char* what) {
  if (n <= 0) return ctx.Error(std::string(what) + " must be positive");
  if (!d.is_static()) return n == 1 ? d : Dim();
  if (d.value % n != 0) {
    return ctx.Error("dim " + std::to_string(d.value) + " is not divisible by " + what + " " +
                     std::to_string(n));
  }
  return Dim(d.value / n);
}

// Unknown dims of a given rank.
DimVector Unknown(size_t rank) { return DimVector(rank, Dim()); }

// Number of elements of a static 1-D input shape (e.g. the length of a shape tensor).
std::optional<int64_t> StaticLength(const InferContext& ctx, size_t i) {
  if (!ctx.has_input(i)) return std::nullopt;
  const Dims& s = ctx.input(i).shape;
  if (!s) return std::nullopt;
  if (s->empty()) return 1;
  if (s->size() == 1 && (*s)[0].is_static()) return (*s)[0].value;
  return std::nullopt;
}

Status InferReshape(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(NeedInput(ctx, 0));
  const ElementType t = ctx.input_type(0);
  std::optional<std::vector<int64_t>> spec;
  if (ctx.opset() < 5) {
    if (!ctx.attrs().Has("shape")) return ctx.Error("missing attribute 'shape'");
    spec = ctx.attrs().GetInts("shape");
  } else {
    KILN_RETURN_IF_ERROR(NeedInput(ctx, 1));
    spec = ConstInts(ctx, 1);
  }
  if (!spec) {
    auto n = StaticLength(ctx, 1);
    ctx.set_output(0, t, n ? Dims(Unknown(static_cast<size_t>(*n))) : std::nullopt);
    return Status::Ok();
  }
  const bool allowzero = ctx.opset() >= 14 && ctx.attrs().GetInt("allowzero", 0) != 0;
  const Dims& in = ctx.input(0).shape;
  DimVector out(spec->size());
  int infer_at = -1;
  for (size_t i = 0; i < spec->size(); ++i) {
    const int64_t v = (*spec)[i];
    if (v == -1) {
      if (infer_at >= 0) return ctx.Error("shape has more than one -1");
      infer_at = static_cast<int>(i);
    } else if (v == 0 && !allowzero) {
      if (in && i >= in->size()) return ctx.Error("shape copies (0) a dim the input lacks");
      out[i] = in ? (*in)[i] : Dim();
    } else if (v < 0) {
      return ctx.Error("shape has invalid value " + std::to_string(v));
    } else {
      out[i] = Dim(v);
    }
  }
  if (in) {
    // Cancel symbols that appear on both sides, then compare the static products.
    int64_t in_static = 1, out_static = 1;
    bool unknown = false;
    std::map<std::string, int> symbols;
    for (const Dim& d : *in) {
      if (d.is_static()) {
        if (__builtin_mul_overflow(in_static, d.value, &in_static)) unknown = true;
      } else if (d.symbol.empty()) {
        unknown = true;
      } else {
        ++symbols[d.symbol];
      }
    }
    for (size_t i = 0; i < out.size(); ++i) {
      if (static_cast<int>(i) == infer_at) continue;
      const Dim& d = out[i];
      if (d.is_static()) {
        if (__builtin_mul_overflow(out_static, d.value, &out_static)) unknown = true;
      } else if (d.symbol.empty() || --symbols[d.symbol] < 0) {
        unknown = true;
      }
    }
    const bool had_symbols = !symbols.empty();
    std::vector<std::string> left;
    for (const auto& [s, n] : symbols) {
      for (int k = 0; k < n; ++k) left.push_back(s);
    }
    if (!unknown && left.empty()) {
      if (infer_at >= 0) {
        if (out_static == 0 || in_static % out_static != 0) {
          return ctx.Error("cannot infer the -1 dim of the new shape");
        }
        out[infer_at] = Dim(in_static / out_static);
      } else if (in_static != out_static && !had_symbols) {  // a symbol may be 0 at run time
        return ctx.Error("new shape has " + std::to_string(out_static) + " elements, input has " +
                         std::to_string(in_static));
      }
    } else if (!unknown && left.size() == 1 && infer_at >= 0 && in_static == out_static) {
      out[infer_at] = Dim::Symbol(left[0]);
    }
  }
  ctx.set_output(0, t, std::move(out));
  return Status::Ok();
}

Status InferFlatten(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(NeedInput(ctx, 0));
  const Dims& in = ctx.input(0).shape;
  if (!in) {
    ctx.set_output(0, ctx.input_type(0), Unknown(2));
    return Status::Ok();
  }
  const int r = static_cast<int>(in->size());
  int64_t axis = ctx.attrs().GetInt("axis", 1);
  if (axis < -r || axis > r) return ctx.Error("axis " + std::to_string(axis) + " out of range");
  if (axis < 0) axis += r;
  const size_t a = static_cast<size_t>(axis);
  ctx.set_output(0, ctx.input_type(0),
                 DimVector{DimProduct(*in, 0, a), DimProduct(*in, a, in->size())});
  return Status::Ok();
}

// Squeeze/Unsqueeze axes: nullopt + *known=false when they are an input of unknown value.
std::optional<std::vector<int64_t>> SqueezeAxes(const InferContext& ctx, bool* known) {
  *known = true;
  if (ctx.opset() < 13) {
    if (!ctx.attrs().Has("axes")) return std::nullopt;
    return ctx.attrs().GetInts("axes");
  }
  if (!ctx.has_input(1)) return std::nullopt;
  auto v = ConstInts(ctx, 1);
  if (!v) *known = false;
  return v;
}

Status InferSqueeze(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(NeedInput(ctx, 0));
  const ElementType t = ctx.input_type(0);
  const Dims& in = ctx.input(0).shape;
  bool known;
  auto axes = SqueezeAxes(ctx, &known);
  if (!in || !known) {
    ctx.set_output(0, t, std::nullopt);
    return Status::Ok();
  }
  const int r = static_cast<int>(in->size());
  std::vector<bool> drop(in->size(), false);
  if (axes) {
    for (int64_t a : *axes) {
      KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(a, r, ctx));
      if ((*in)[ax].is_static() && (*in)[ax].value != 1) {
        return ctx.Error("cannot squeeze axis " + std::to_string(a) + " of size " +
                         std::to_string((*in)[ax].value));
      }
      drop[ax] = true;
    }
  } else {
    for (int i = 0; i < r; ++i) {
      if (!(*in)[i].is_static()) {  // might be 1 at run time: rank unknown
        ctx.set_output(0, t, std::nullopt);
        return Status::Ok();
      }
      drop[i] = (*in)[i].value == 1;
    }
  }
  DimVector out;
  for (int i = 0; i < r; ++i) {
    if (!drop[i]) out.push_back((*in)[i]);
  }
  ctx.set_output(0, t, std::move(out));
  return Status::Ok();
}

Status InferUnsqueeze(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(NeedInput(ctx, 0));
  const ElementType t = ctx.input_type(0);
  const Dims& in = ctx.input(0).shape;
  bool known;
  auto axes = SqueezeAxes(ctx, &known);
  if (known && !axes) return ctx.Error("missing 'axes'");
  if (!in || !axes) {
    auto n = ctx.opset() >= 13 ? StaticLength(ctx, 1) : std::nullopt;
    ctx.set_output(0, t,
                   in && n ? Dims(Unknown(in->size() + static_cast<size_t>(*n))) : std::nullopt);
    return Status::Ok();
  }
  const int out_rank = static_cast<int>(in->size() + axes->size());
  std::vector<bool> is_new(static_cast<size_t>(out_rank), false);
  for (int64_t a : *axes) {
    KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(a, out_rank, ctx));
    if (is_new[ax]) return ctx.Error("axis " + std::to_string(a) + " is repeated");
    is_new[ax] = true;
  }
  DimVector out;
  size_t k = 0;
  for (int i = 0; i < out_rank; ++i) out.push_back(is_new[i] ? Dim(1) : (*in)[k++]);
  ctx.set_output(0, t, std::move(out));
  return Status::Ok();
}

Status InferTranspose(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(NeedInput(ctx, 0));
  const ElementType t = ctx.input_type(0);
  const Dims& in = ctx.input(0).shape;
  const bool has_perm = ctx.attrs().Has("perm");
  std::vector<int64_t> perm = ctx.attrs().GetInts("perm");
  if (!in) {
    ctx.set_output(0, t, has_perm ? Dims(Unknown(perm.size())) : std::nullopt);
    return Status::Ok();
  }
  const int r = static_cast<int>(in->size());
  if (!has_perm) {
    for (int i = r - 1; i >= 0; --i) perm.push_back(i);
  }
  if (static_cast<int>(perm.size()) != r) return ctx.Error("perm length differs from the rank");
  std::vector<bool> seen(static_cast<size_t>(r), false);
  DimVector out;
  for (int64_t p : perm) {
    if (p < 0 || p >= r || seen[p]) return ctx.Error("perm is not a permutation");
    seen[p] = true;
    out.push_back((*in)[p]);
  }
  ctx.set_output(0, t, std::move(out));
  return Status::Ok();
}

Status InferConcat(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(NeedInput(ctx, 0));
  const ElementType t = ctx.input_type(0);
  if (ctx.opset() >= 4 && !ctx.attrs().Has("axis")) return ctx.Error("missing attribute 'axis'");
  Dims out;
  int axis = -1;
  bool axis_static = true;
  int64_t axis_sum = 0;
  for (size_t i = 0; i < ctx.num_inputs(); ++i) {
    if (!ctx.has_input(i)) continue;
    if (ctx.input_type(i) != t) return ctx.Error("inputs have different element types");
    const Dims& s = ctx.input(i).shape;
    if (!s) {
      axis_static = false;
      continue;
    }
    if (!out) {
      if (s->empty()) return ctx.Error("cannot concatenate scalars");
      KILN_ASSIGN_OR_RETURN(
          axis, NormalizeAxis(ctx.attrs().GetInt("axis", 1), static_cast<int>(s->size()), ctx));
      out = *s;
    } else if (s->size() != out->size()) {
      return ctx.Error("inputs have different ranks");
    }
    for (size_t d = 0; d < s->size(); ++d) {
      if (static_cast<int>(d) == axis) continue;
      Dim& o = (*out)[d];
      const Dim& x = (*s)[d];
      if (o.is_static() && x.is_static() && o.value != x.value) {
        return ctx.Error("inputs differ in dim " + std::to_string(d));
      }
      if (!o.is_static() && (x.is_static() || o.symbol.empty())) o = x;
    }
    if ((*s)[axis].is_static()) {
      if (__builtin_add_overflow(axis_sum, (*s)[axis].value, &axis_sum)) axis_static = false;
    } else {
      axis_static = false;
    }
  }
  if (out) (*out)[axis] = axis_static ? Dim(axis_sum) : Dim();
  ctx.set_output(0, t, std::move(out));
  return Status::Ok();
}

Status InferSplit(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(NeedInput(ctx, 0));
  const ElementType t = ctx.input_type(0);
  const Dims& in = ctx.input(0).shape;
  const size_t n = ctx.num_outputs();
  // Split-18: sizes from the split input or from num_outputs, exactly one of the two.
  const bool by_count = ctx.opset() >= 18 && ctx.attrs().Has("num_outputs");
  if (ctx.opset() >= 18 && by_count == ctx.has_input(1)) {
    return ctx.Error(by_count ? "has both the split input and the num_outputs attribute"
                              : "needs the split input or the num_outputs attribute");
  }
  if (by_count && ctx.attrs().GetInt("num_outputs", 0) != static_cast<int64_t>(n)) {
    return ctx.Error("num_outputs is " + std::to_string(ctx.attrs().GetInt("num_outputs", 0)) +
                     ", but the node has " + std::to_string(n) + " outputs");
  }
  if (!in) {
    for (size_t i = 0; i < n; ++i) ctx.set_output(i, t, std::nullopt);
    return Status::Ok();
  }
  KILN_ASSIGN_OR_RETURN(
      int axis, NormalizeAxis(ctx.attrs().GetInt("axis", 0), static_cast<int>(in->size()), ctx));
  std::optional<std::vector<int64_t>> split;
  bool known = true;
  const Dim& d = (*in)[axis];
  if (by_count) {
    if (d.is_static()) {
      split = SplitChunks(d.value, static_cast<int64_t>(n));
      if (split->empty()) {
        return ctx.Error("dim " + std::to_string(d.value) + " cannot be split into " +
                         std::to_string(n) + " chunks of ceil(dim / num_outputs)");
      }
    } else {
      known = false;
    }
  } else if (ctx.has_input(1)) {
    split = ConstInts(ctx, 1);
    known = split.has_value();
  } else if (ctx.attrs().Has("split")) {
    split = ctx.attrs().GetInts("split");
  }
  if (split && split->size() != n) return ctx.Error("split has a size per output, sizes differ");
  int64_t total = 0;
  for (size_t i = 0; split && i < n; ++i) {
    if ((*split)[i] < 0 || __builtin_add_overflow(total, (*split)[i], &total)) {
      return ctx.Error("split has an invalid size");
    }
  }
  if (split && d.is_static() && total != d.value) {
    return ctx.Error("split sizes sum to " + std::to_string(total) + ", dim is " +
                     std::to_string(d.value));
  }
  Dim part;
  if (!split && known && n > 0) {
    KILN_ASSIGN_OR_RETURN(part, DimDiv(ctx, d, static_cast<int64_t>(n), "output count"));
  }
  for (size_t i = 0; i < n; ++i) {
    DimVector s = *in;
    s[axis] = split ? Dim((*split)[i]) : part;
    ctx.set_output(i, t, std::move(s));
  }
  return Status::Ok();
}

Status InferSlice(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(NeedInput(ctx, 0));
  const ElementType t = ctx.input_type(0);
  const Dims& in = ctx.input(0).shape;
  if (!in) {
    ctx.set_output(0, t, std::nullopt);
    return Status::Ok();
  }
  const int r = static_cast<int>(in->size());
  std::optional<std::vector<int64_t>> starts, ends, axes, steps;
  if (ctx.opset() < 10) {
    starts = ctx.attrs().GetInts("starts");
    ends = ctx.attrs().GetInts("ends");
    if (ctx.attrs().Has("axes")) axes = ctx.attrs().GetInts("axes");
  } else {
    KILN_RETURN_IF_ERROR(NeedInput(ctx, 1));
    KILN_RETURN_IF_ERROR(NeedInput(ctx, 2));
    starts = ConstInts(ctx, 1);
    ends = ConstInts(ctx, 2);
    if (ctx.has_input(3)) {
      axes = ConstInts(ctx, 3);
      if (!axes) {  // which axes are sliced is unknown
        ctx.set_output(0, t, Unknown(in->size()));
        return Status::Ok();
      }
    }
    if (ctx.has_input(4)) {
      steps = ConstInts(ctx, 4);
      if (!steps) steps = std::vector<int64_t>();  // unknown: marked by an empty vector
    }
  }
  DimVector out = *in;
  const bool values_known = starts && ends && (!steps || !steps->empty());
  size_t k = starts ? starts->size() : (ends ? ends->size() : 0);
  if (!axes) {
    if (!starts && !ends) {  // neither length nor axes known
      ctx.set_output(0, t, Unknown(in->size()));
      return Status::Ok();
    }
    axes = std::vector<int64_t>();
    for (size_t i = 0; i < k; ++i) axes->push_back(static_cast<int64_t>(i));
  }
  k = axes->size();
  if (values_known && (starts->size() != k || ends->size() != k || (steps && steps->size() != k))) {
    return ctx.Error("starts, ends, axes and steps must have the same length");
  }
  for (size_t i = 0; i < k; ++i) {
    KILN_ASSIGN_OR_RETURN(int a, NormalizeAxis((*axes)[i], r, ctx));
    const Dim& dim = (*in)[a];
    if (!values_known || !dim.is_static()) {
      out[a] = Dim();
      continue;
    }
    const int64_t d = dim.value, step = steps ? (*steps)[i] : 1;
    if (step == 0) return ctx.Error("steps must be non-zero");
    const int64_t len = NormalizeSlice((*starts)[i], (*ends)[i], step, d).length;
    out[a] = Dim(len);
  }
  ctx.set_output(0, t, std::move(out));
  return Status::Ok();
}

Status InferGather(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(NeedInput(ctx, 0));
  KILN_RETURN_IF_ERROR(NeedInput(ctx, 1));
  const Dims& data = ctx.input(0).shape;
  const Dims& ind = ctx.input(1).shape;
  Dims out;
  if (data && ind) {
    if (data->empty()) return ctx.Error("data must have rank >= 1");
    KILN_ASSIGN_OR_RETURN(int axis, NormalizeAxis(ctx.attrs().GetInt("axis", 0),
                                                  static_cast<int>(data->size()), ctx));
    out = DimVector(data->begin(), data->begin() + axis);
    out->insert(out->end(), ind->begin(), ind->end());
    out->insert(out->end(), data->begin() + axis + 1, data->end());
  }
  ctx.set_output(0, ctx.input_type(0), std::move(out));
  return Status::Ok();
}

Status InferGatherElements(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(NeedInput(ctx, 0));
  KILN_RETURN_IF_ERROR(NeedInput(ctx, 1));
  ctx.set_output(0, ctx.input_type(0), ctx.input(1).shape);
  return Status::Ok();
}

Status InferGatherND(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(NeedInput(ctx, 0));
  KILN_RETURN_IF_ERROR(NeedInput(ctx, 1));
  const Dims& data = ctx.input(0).shape;
  const Dims& ind = ctx.input(1).shape;
  Dims out;
  const int64_t b = ctx.opset() >= 12 ? ctx.attrs().GetInt("batch_dims", 0) : 0;
  if (data && ind && !ind->empty() && ind->back().is_static()) {
    const int64_t k = ind->back().value;
    const int64_t r = static_cast<int64_t>(data->size());
    if (b < 0 || b > r || k < 1 || k > r - b) {
      return ctx.Error("indices' last dim exceeds the data rank");
    }
    out = DimVector(ind->begin(), ind->end() - 1);
    out->insert(out->end(), data->begin() + b + k, data->end());
  }
  ctx.set_output(0, ctx.input_type(0), std::move(out));
  return Status::Ok();
}

Status InferExpand(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(NeedInput(ctx, 0));
  KILN_RETURN_IF_ERROR(NeedInput(ctx, 1));
  const Dims& in = ctx.input(0).shape;
  auto target = ConstInts(ctx, 1);
  Dims out;
  if (in && target) {
    auto b = BroadcastDims(*in, ToDims(*target));
    if (!b.ok()) return ctx.Error(b.status().message());
    out = std::move(b).value();
  } else if (auto n = StaticLength(ctx, 1); in && n) {
    out = Unknown(std::max(in->size(), static_cast<size_t>(*n)));
  }
  ctx.set_output(0, ctx.input_type(0), std::move(out));
  return Status::Ok();
}

Status InferTile(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(NeedInput(ctx, 0));
  const Dims& in = ctx.input(0).shape;
  Dims out;
  if (in) {
    out = Unknown(in->size());
    std::optional<std::vector<int64_t>> reps;
    if (ctx.opset() < 6) {
      auto tiles = ConstInts(ctx, 1), axis = ConstInts(ctx, 2);
      if (tiles && axis && tiles->size() == 1 && axis->size() == 1) {
        KILN_ASSIGN_OR_RETURN(int a, NormalizeAxis((*axis)[0], static_cast<int>(in->size()), ctx));
        reps = std::vector<int64_t>(in->size(), 1);
        (*reps)[a] = (*tiles)[0];
      }
    } else {
      reps = ConstInts(ctx, 1);
    }
    if (reps) {
      if (reps->size() != in->size()) return ctx.Error("repeats length differs from the rank");
      for (size_t i = 0; i < in->size(); ++i) {
        if ((*reps)[i] < 0) return ctx.Error("repeats has a negative value");
        (*out)[i] = DimMul((*in)[i], Dim((*reps)[i]));
      }
    }
  }
  ctx.set_output(0, ctx.input_type(0), std::move(out));
  return Status::Ok();
}

Status InferPad(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(NeedInput(ctx, 0));
  const std::string mode = ctx.attrs().GetString("mode", "constant");
  if (mode != "constant" && mode != "edge" && mode != "reflect" &&
      !(mode == "wrap" && ctx.opset() >= 19)) {
    return ctx.Error("mode must be constant, reflect or edge" +
                     std::string(ctx.opset() >= 19 ? " or wrap" : " (wrap needs opset 19)") +
                     ", found '" + mode + "'");
  }
  const Dims& in = ctx.input(0).shape;
  Dims out;
  if (in) {
    out = Unknown(in->size());
    std::optional<std::vector<int64_t>> pads;
    if (ctx.opset() < 11) {
      pads = ctx.attrs().GetInts(ctx.opset() < 2 ? "paddings" : "pads");
    } else {
      KILN_RETURN_IF_ERROR(NeedInput(ctx, 1));
      pads = ConstInts(ctx, 1);
    }
    const size_t r = in->size();
    // Pad-18: an `axes` input says which axes `pads` covers (begins, then ends); others get 0.
    if (pads && ctx.opset() >= 18 && ctx.has_input(3)) {
      const std::optional<std::vector<int64_t>> axes = ConstInts(ctx, 3);
      if (!axes) {
        pads.reset();
      } else if (pads->size() != 2 * axes->size()) {
        return ctx.Error("pads has " + std::to_string(pads->size()) + " values, expected " +
                         std::to_string(2 * axes->size()) + " for " + std::to_string(axes->size()) +
                         " axes");
      } else {
        std::vector<int64_t> full(2 * r, 0);
        std::vector<bool> seen(r, false);
        for (size_t i = 0; i < axes->size(); ++i) {
          KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis((*axes)[i], static_cast<int>(r), ctx));
          if (seen[ax]) return ctx.Error("axis " + std::to_string((*axes)[i]) + " is repeated");
          seen[ax] = true;
          full[ax] = (*pads)[i];
          full[ax + r] = (*pads)[i + axes->size()];
        }
        pads = std::move(full);
      }
    }
    if (pads) {
      if (pads->size() != 2 * r) return ctx.Error("pads must have 2 * rank values");
      for (size_t i = 0; i < r; ++i) {
        int64_t p, v;
        const Dim& d = (*in)[i];
        if (__builtin_add_overflow((*pads)[i], (*pads)[i + r], &p)) {
          return ctx.Error("pads are too large");
        }
        if (p == 0) {
          (*out)[i] = d;
        } else if (d.is_static()) {
          if (__builtin_add_overflow(d.value, p, &v) || v < 0) {
            return ctx.Error("pads make an invalid dim");
          }
          (*out)[i] = Dim(v);
        }
      }
    }
  }
  ctx.set_output(0, ctx.input_type(0), std::move(out));
  return Status::Ok();
}

Status InferShape(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(NeedInput(ctx, 0));
  const Dims& in = ctx.input(0).shape;
  Dim n;
  if (in) {
    const int64_t r = static_cast<int64_t>(in->size());
    int64_t start = ctx.opset() >= 15 ? ctx.attrs().GetInt("start", 0) : 0;
    int64_t end = ctx.opset() >= 15 ? ctx.attrs().GetInt("end", r) : r;
    if (start < 0) start += r;
    if (end < 0) end += r;
    start = std::clamp<int64_t>(start, 0, r);
    end = std::clamp<int64_t>(end, 0, r);
    n = Dim(std::max<int64_t>(end - start, 0));
  }
  ctx.set_output(0, ElementType::kI64, DimVector{n});
  return Status::Ok();
}

Status InferSize(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(NeedInput(ctx, 0));
  ctx.set_output(0, ElementType::kI64, DimVector{});
  return Status::Ok();
}

Status InferConstantOfShape(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(NeedInput(ctx, 0));
  const Tensor* value = ctx.attrs().GetTensor("value");
  const ElementType t = value != nullptr ? value->type() : ElementType::kF32;
  Dims out;
  if (auto shape = ConstInts(ctx, 0)) {
    for (int64_t d : *shape) {
      if (d < 0) return ctx.Error("shape has a negative dim");
    }
    out = ToDims(*shape);
  } else if (auto n = StaticLength(ctx, 0)) {
    out = Unknown(static_cast<size_t>(*n));
  }
  ctx.set_output(0, t, std::move(out));
  return Status::Ok();
}

Status InferConstant(InferContext& ctx) {
  const Attributes& at = ctx.attrs();
  auto list = [](size_t n) { return DimVector{Dim(static_cast<int64_t>(n))}; };
  if (const Tensor* v = at.GetTensor("value")) {
    ctx.set_output(0, v->type(), ToDims(v->shape()));
  } else if (at.Has("value_float")) {
    ctx.set_output(0, ElementType::kF32, DimVector{});
  } else if (at.Has("value_floats")) {
    ctx.set_output(0, ElementType::kF32, list(at.GetFloats("value_floats").size()));
  } else if (at.Has("value_int")) {
    ctx.set_output(0, ElementType::kI64, DimVector{});
  } else if (at.Has("value_ints")) {
    ctx.set_output(0, ElementType::kI64, list(at.GetInts("value_ints").size()));
  } else if (at.Has("value_string")) {
    ctx.set_output(0, ElementType::kString, DimVector{});
  } else if (at.Has("value_strings")) {
    ctx.set_output(0, ElementType::kString, list(at.GetStrings("value_strings").size()));
  } else if (at.Has("sparse_value")) {
    return Unimplemented(ctx.node().Describe() + ": sparse_value constants are not supported");
  } else {
    return ctx.Error("no value attribute");
  }
  return Status::Ok();
}

Status InferRange(InferContext& ctx) {
  for (size_t i = 0; i < 3; ++i) {
    KILN_RETURN_IF_ERROR(NeedInput(ctx, i));
    if (ctx.input_type(i) != ctx.input_type(0)) return ctx.Error("inputs differ in type");
  }
  Dim n;
  const Tensor *s = ctx.input_value(0), *l = ctx.input_value(1), *d = ctx.input_value(2);
  if (s && l && d && s->size() == 1 && l->size() == 1 && d->size() == 1) {
    const double delta = d->GetAsDouble(0);
    if (delta == 0) return ctx.Error("delta is zero");
    const double count = std::ceil((l->GetAsDouble(0) - s->GetAsDouble(0)) / delta);
    if (IsInteger(s->type())) {  // exact integer count
      const __int128 diff = static_cast<__int128>(l->GetAsInt64(0)) - s->GetAsInt64(0);
      const __int128 step = d->GetAsInt64(0);
      __int128 c = 0;
      if (diff != 0 && (diff > 0) == (step > 0)) {
        const __int128 ad = diff > 0 ? diff : -diff, as = step > 0 ? step : -step;
        c = (ad + as - 1) / as;
      }
      if (c > (__int128{1} << 48)) return ctx.Error("range has too many elements");
      n = Dim(static_cast<int64_t>(c));
    } else if (count < static_cast<double>(int64_t{1} << 48)) {
      n = Dim(count > 0 ? static_cast<int64_t>(count) : 0);
    }
  }
  ctx.set_output(0, ctx.input_type(0), DimVector{n});
  return Status::Ok();
}

Status InferOneHot(InferContext& ctx) {
  for (size_t i = 0; i < 3; ++i) KILN_RETURN_IF_ERROR(NeedInput(ctx, i));
  const Dims& in = ctx.input(0).shape;
  Dims out;
  if (in) {
    const int r = static_cast<int>(in->size());
    int64_t axis = ctx.attrs().GetInt("axis", -1);
    if (axis < -r - 1 || axis > r)
      return ctx.Error("axis " + std::to_string(axis) + " out of range");
    if (axis < 0) axis += r + 1;
    Dim depth;
    if (const Tensor* dv = ctx.input_value(1); dv && dv->size() == 1) {
      const double v = dv->GetAsDouble(0);
      if (v >= 1 && v < static_cast<double>(int64_t{1} << 48)) depth = Dim(static_cast<int64_t>(v));
    }
    out = *in;
    out->insert(out->begin() + axis, depth);
  }
  ctx.set_output(0, ctx.input_type(2), std::move(out));
  return Status::Ok();
}

Status InferNonZero(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(NeedInput(ctx, 0));
  const Dims& in = ctx.input(0).shape;
  Dim count;
  if (const Tensor* v = ctx.input_value(0); v && v->type() != ElementType::kString) {
    int64_t c = 0;
    for (int64_t i = 0; i < v->size(); ++i) c += v->GetAsDouble(i) != 0;
    count = Dim(c);
  }
  ctx.set_output(0, ElementType::kI64,
                 DimVector{in ? Dim(static_cast<int64_t>(in->size())) : Dim(), count});
  return Status::Ok();
}

Status InferTopK(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(NeedInput(ctx, 0));
  const Dims& in = ctx.input(0).shape;
  Dims out;
  if (in) {
    if (in->empty()) return ctx.Error("input must have rank >= 1");
    KILN_ASSIGN_OR_RETURN(
        int axis, NormalizeAxis(ctx.attrs().GetInt("axis", -1), static_cast<int>(in->size()), ctx));
    std::optional<int64_t> kv;
    if (ctx.opset() < 10) {
      kv = ctx.attrs().GetInt("k", 0);
    } else if (auto v = ConstInts(ctx, 1); v && v->size() == 1) {
      kv = (*v)[0];
    }
    Dim k;
    if (kv) {
      const Dim& d = (*in)[axis];
      if (*kv < 0 || (d.is_static() && *kv > d.value)) {
        return ctx.Error("k = " + std::to_string(*kv) + " is outside [0, axis size " +
                         d.ToString() + "]");
      }
      k = Dim(*kv);
    }
    out = *in;
    (*out)[axis] = k;
  }
  ctx.set_output(0, ctx.input_type(0), out);
  ctx.set_output(1, ElementType::kI64, out);
  return Status::Ok();
}

Status InferUnique(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(NeedInput(ctx, 0));
  const Dims& in = ctx.input(0).shape;
  Dims y = DimVector{Dim()};
  Dim n;  // length of inverse_indices
  if (ctx.attrs().Has("axis")) {
    y = std::nullopt;
    if (in) {
      KILN_ASSIGN_OR_RETURN(int axis, NormalizeAxis(ctx.attrs().GetInt("axis", 0),
                                                    static_cast<int>(in->size()), ctx));
      y = *in;
      n = (*in)[axis];
      (*y)[axis] = Dim();
    }
  } else if (in) {
    n = DimProduct(*in, 0, in->size());
  }
  ctx.set_output(0, ctx.input_type(0), y);
  ctx.set_output(1, ElementType::kI64, DimVector{Dim()});
  ctx.set_output(2, ElementType::kI64, DimVector{n});
  ctx.set_output(3, ElementType::kI64, DimVector{Dim()});
  return Status::Ok();
}

Status InferDepthSpace(InferContext& ctx, bool to_space) {
  KILN_RETURN_IF_ERROR(NeedInput(ctx, 0));
  const Dims& in = ctx.input(0).shape;
  const int64_t b = ctx.attrs().GetInt("blocksize", 0);
  if (b <= 0 || b > (int64_t{1} << 20)) return ctx.Error("blocksize must be in [1, 2^20]");
  Dims out;
  if (in) {
    if (in->size() != 4) return ctx.Error("input must be 4-D");
    out = *in;
    if (to_space) {
      KILN_ASSIGN_OR_RETURN((*out)[1], DimDiv(ctx, (*in)[1], b * b, "blocksize^2"));
      (*out)[2] = DimMul((*in)[2], Dim(b));
      (*out)[3] = DimMul((*in)[3], Dim(b));
    } else {
      (*out)[1] = DimMul((*in)[1], Dim(b * b));
      KILN_ASSIGN_OR_RETURN((*out)[2], DimDiv(ctx, (*in)[2], b, "blocksize"));
      KILN_ASSIGN_OR_RETURN((*out)[3], DimDiv(ctx, (*in)[3], b, "blocksize"));
    }
  }
  ctx.set_output(0, ctx.input_type(0), std::move(out));
  return Status::Ok();
}
Status InferDepthToSpace(InferContext& ctx) { return InferDepthSpace(ctx, true); }
Status InferSpaceToDepth(InferContext& ctx) { return InferDepthSpace(ctx, false); }

Status InferCompress(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(NeedInput(ctx, 0));
  KILN_RETURN_IF_ERROR(NeedInput(ctx, 1));
  const Dims& in = ctx.input(0).shape;
  Dim kept;
  if (const Tensor* c = ctx.input_value(1)) {
    int64_t n = 0;
    for (int64_t i = 0; i < c->size(); ++i) n += c->GetAsDouble(i) != 0;
    kept = Dim(n);
  }
  Dims out = DimVector{kept};
  if (ctx.attrs().Has("axis")) {
    out = std::nullopt;
    if (in) {
      KILN_ASSIGN_OR_RETURN(int axis, NormalizeAxis(ctx.attrs().GetInt("axis", 0),
                                                    static_cast<int>(in->size()), ctx));
      out = *in;
      (*out)[axis] = kept;
    }
  }
  ctx.set_output(0, ctx.input_type(0), std::move(out));
  return Status::Ok();
}

Status InferEyeLike(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(NeedInput(ctx, 0));
  ElementType t = ctx.input_type(0);
  if (ctx.attrs().Has("dtype")) {
    t = ElementTypeFromOnnx(static_cast<int>(ctx.attrs().GetInt("dtype", 0)));
    if (t == ElementType::kUndefined) return ctx.Error("unknown 'dtype'");
  }
  const Dims& in = ctx.input(0).shape;
  if (in && in->size() != 2) return ctx.Error("input must be 2-D");
  ctx.set_output(0, t, in ? in : Dims(Unknown(2)));
  return Status::Ok();
}

Status InferArgExtreme(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(NeedInput(ctx, 0));
  const Dims& in = ctx.input(0).shape;
  Dims out;
  if (in) {
    if (in->empty()) return ctx.Error("input must have rank >= 1");
    KILN_ASSIGN_OR_RETURN(
        int axis, NormalizeAxis(ctx.attrs().GetInt("axis", 0), static_cast<int>(in->size()), ctx));
    out = *in;
    if (ctx.attrs().GetInt("keepdims", 1) != 0) {
      (*out)[axis] = Dim(1);
    } else {
      out->erase(out->begin() + axis);
    }
  }
  ctx.set_output(0, ElementType::kI64, std::move(out));
  return Status::Ok();
}

Status InferCumSum(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(NeedInput(ctx, 1));
  return InferSameAsInput0(ctx);
}

constexpr OpSchema kSchemas[] = {
    {"Reshape", "", InferReshape},
    {"Flatten", "", InferFlatten},
    {"Squeeze", "", InferSqueeze},
    {"Unsqueeze", "", InferUnsqueeze},
    {"Transpose", "", InferTranspose},
    {"Concat", "", InferConcat},
    {"Split", "", InferSplit},
    {"Slice", "", InferSlice},
    {"Gather", "", InferGather},
    {"GatherElements", "", InferGatherElements},
    {"GatherND", "", InferGatherND},
    {"Scatter", "", InferSameAsInput0},
    {"ScatterElements", "", InferSameAsInput0},
    {"ScatterND", "", InferSameAsInput0},
    {"Expand", "", InferExpand},
    {"Tile", "", InferTile},
    {"Pad", "", InferPad},
    {"Shape", "", InferShape},
    {"Size", "", InferSize},
    {"ConstantOfShape", "", InferConstantOfShape},
    {"Constant", "", InferConstant},
    {"Range", "", InferRange},
    {"Identity", "", InferSameAsInput0},
    {"OneHot", "", InferOneHot},
    {"NonZero", "", InferNonZero},
    {"TopK", "", InferTopK},
    {"Unique", "", InferUnique},
    {"Trilu", "", InferSameAsInput0},
    {"DepthToSpace", "", InferDepthToSpace},
    {"SpaceToDepth", "", InferSpaceToDepth},
    {"Compress", "", InferCompress},
    {"ReverseSequence", "", InferSameAsInput0},
    {"EyeLike", "", InferEyeLike},
    {"CumSum", "", InferCumSum},
    {"ArgMax", "", InferArgExtreme},
    {"ArgMin", "", InferArgExtreme},
};

}  // namespace

std::span<const OpSchema> TensorSchemas() { return kSchemas; }

}  // namespace kiln
