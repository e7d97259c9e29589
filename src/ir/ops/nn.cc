// Shape and type inference for the nn op family: convolutions, pooling, normalisations, Gemm,
// MatMul, Einsum, softmax-like ops, Dropout, Resize and Upsample.
//
// Spatial output sizes follow the same rules as the reference kernels (see
// src/backends/ref/nn_conv.cc): explicit pads, SAME_UPPER/SAME_LOWER (out = ceil(in / stride))
// or VALID, with ceil_mode for pools. A symbolic input dim gives an unknown output dim.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>

#include "ir/infer_util.h"
#include "ir/op_schema.h"
#include "ir/resize_target.h"

namespace kiln {
namespace {

using Dims = std::optional<DimVector>;

Status NeedInput(const InferContext& ctx, size_t i) {
  if (!ctx.has_input(i)) return ctx.Error("missing required input " + std::to_string(i));
  return Status::Ok();
}

Status NeedFloat(const InferContext& ctx, size_t i) {
  if (!IsFloating(ctx.input_type(i))) {
    return ctx.Error(std::string("input ") + std::to_string(i) + " must be a float tensor, found " +
                     ElementTypeName(ctx.input_type(i)));
  }
  return Status::Ok();
}

// Spatial attributes of a conv or pool for `nd` spatial dims.
struct SpatialAttrs {
  std::vector<int64_t> kernel, stride, dilation, pads;
  std::string auto_pad;
  bool ceil_mode = false;
};

Status ReadSpatial(const InferContext& ctx, int nd, std::vector<int64_t> kernel, bool pool,
                   SpatialAttrs* s) {
  const Attributes& at = ctx.attrs();
  std::vector<int64_t> ks = at.GetInts("kernel_shape");
  if (kernel.empty()) kernel = ks;
  if (!ks.empty() && ks != kernel) return ctx.Error("kernel_shape disagrees with the weight");
  s->kernel = kernel;
  s->stride = at.GetInts("strides", std::vector<int64_t>(nd, 1));
  s->dilation = at.GetInts("dilations", std::vector<int64_t>(nd, 1));
  s->pads = at.GetInts("pads", std::vector<int64_t>(2 * nd, 0));
  s->auto_pad = at.GetString("auto_pad", "NOTSET");
  s->ceil_mode = pool && at.GetInt("ceil_mode", 0) != 0;
  if (static_cast<int>(s->kernel.size()) != nd || static_cast<int>(s->stride.size()) != nd ||
      static_cast<int>(s->dilation.size()) != nd || static_cast<int>(s->pads.size()) != 2 * nd) {
    return ctx.Error("kernel_shape/strides/dilations need " + std::to_string(nd) +
                     " values and pads " + std::to_string(2 * nd));
  }
  // Bounded so that the output size arithmetic below cannot overflow (fuzz_plan_file found
  // pads near 2^62 overflowing int64).
  constexpr int64_t kMaxSpatial = int64_t{1} << 31;
  for (int i = 0; i < 2 * nd; ++i) {
    if (s->pads[i] <= -kMaxSpatial || s->pads[i] >= kMaxSpatial) {
      return ctx.Error("pads value " + std::to_string(s->pads[i]) + " is out of range");
    }
  }
  for (int i = 0; i < nd; ++i) {
    if (s->kernel[i] >= kMaxSpatial || s->stride[i] >= kMaxSpatial ||
        s->dilation[i] >= kMaxSpatial) {
      return ctx.Error("kernel_shape/strides/dilations value out of range (at most 2^31 - 1)");
    }
    if (s->kernel[i] <= 0 || s->stride[i] <= 0 || s->dilation[i] <= 0) {
      return ctx.Error("kernel, stride and dilation values must be positive");
    }
  }
  return Status::Ok();
}

Result<Dim> SpatialOut(const InferContext& ctx, const SpatialAttrs& s, int i, const Dim& in,
                       int nd) {
  if (!in.is_static()) return Dim();
  if (in.value > (int64_t{1} << 48)) {
    return ctx.Error("input dim " + std::to_string(in.value) + " is too large");
  }
  const int64_t k = s.kernel[i], st = s.stride[i], eff = (k - 1) * s.dilation[i] + 1;
  if (s.auto_pad == "SAME_UPPER" || s.auto_pad == "SAME_LOWER")
    return Dim((in.value + st - 1) / st);
  if (s.auto_pad == "VALID") {
    if (in.value < eff) return ctx.Error("kernel is larger than the input");
    return Dim((in.value - eff) / st + 1);
  }
  if (s.auto_pad != "NOTSET" && !s.auto_pad.empty()) {
    return ctx.Error("unknown auto_pad '" + s.auto_pad + "'");
  }
  const int64_t pb = s.pads[i], pe = s.pads[i + nd];
  const int64_t span = in.value + pb + pe - eff;
  if (span < 0) return ctx.Error("kernel is larger than the padded input");
  int64_t out = s.ceil_mode ? (span + st - 1) / st + 1 : span / st + 1;
  if (s.ceil_mode && (out - 1) * st >= in.value + pb) --out;
  return Dim(out);
}

Status InferConv(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(NeedInput(ctx, 0));
  KILN_RETURN_IF_ERROR(NeedInput(ctx, 1));
  KILN_RETURN_IF_ERROR(NeedFloat(ctx, 0));
  const ElementType t = ctx.input_type(0);
  const Dims& xs = ctx.input(0).shape;
  const Dims& ws = ctx.input(1).shape;
  if (!xs || !ws) {
    ctx.set_output(0, t, xs ? Dims(DimVector(xs->size(), Dim())) : std::nullopt);
    return Status::Ok();
  }
  if (xs->size() < 3 || ws->size() != xs->size()) {
    return ctx.Error("expected X [N,C,spatial...] and W of the same rank");
  }
  const int nd = static_cast<int>(xs->size()) - 2;
  std::vector<int64_t> kernel;
  for (int i = 0; i < nd; ++i) {
    const Dim& d = (*ws)[i + 2];
    if (!d.is_static()) {
      kernel.clear();
      break;
    }
    kernel.push_back(d.value);
  }
  if (kernel.empty() && ctx.attrs().GetInts("kernel_shape").empty()) {
    DimVector out = {(*xs)[0], (*ws)[0]};
    out.resize(xs->size(), Dim());
    ctx.set_output(0, t, out);
    return Status::Ok();
  }
  SpatialAttrs s;
  KILN_RETURN_IF_ERROR(ReadSpatial(ctx, nd, kernel, false, &s));
  const int64_t group = ctx.attrs().GetInt("group", 1);
  const Dim& c = (*xs)[1];
  const Dim& wc = (*ws)[1];
  if (group <= 0) return ctx.Error("group must be positive");
  if (c.is_static() && wc.is_static() && c.value != wc.value * group) {
    return ctx.Error("X has " + std::to_string(c.value) + " channels but W expects " +
                     std::to_string(wc.value * group));
  }
  DimVector out = {(*xs)[0], (*ws)[0]};
  for (int i = 0; i < nd; ++i) {
    KILN_ASSIGN_OR_RETURN(Dim d, SpatialOut(ctx, s, i, (*xs)[i + 2], nd));
    out.push_back(d);
  }
  ctx.set_output(0, t, out);
  return Status::Ok();
}

Status InferConvTranspose(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(NeedInput(ctx, 0));
  KILN_RETURN_IF_ERROR(NeedInput(ctx, 1));
  KILN_RETURN_IF_ERROR(NeedFloat(ctx, 0));
  const ElementType t = ctx.input_type(0);
  const Dims& xs = ctx.input(0).shape;
  const Dims& ws = ctx.input(1).shape;
  if (!xs || !ws) {
    ctx.set_output(0, t, xs ? Dims(DimVector(xs->size(), Dim())) : std::nullopt);
    return Status::Ok();
  }
  if (xs->size() < 3 || ws->size() != xs->size()) {
    return ctx.Error("expected X [N,C,spatial...] and W of the same rank");
  }
  const int nd = static_cast<int>(xs->size()) - 2;
  const Attributes& at = ctx.attrs();
  const int64_t group = at.GetInt("group", 1);
  if (group <= 0) return ctx.Error("group must be positive");
  const Dim& wm = (*ws)[1];
  if (wm.is_static() && static_cast<__int128>(wm.value) * group > (int64_t{1} << 48)) {
    return ctx.Error("output channels (W dim 1 x group) too large");
  }
  DimVector out = {(*xs)[0], wm.is_static() ? Dim(wm.value * group) : Dim()};
  auto out_shape = at.GetInts("output_shape");
  if (static_cast<int>(out_shape.size()) == nd + 2)
    out_shape.erase(out_shape.begin(), out_shape.begin() + 2);
  auto strides = at.GetInts("strides", std::vector<int64_t>(nd, 1));
  auto dil = at.GetInts("dilations", std::vector<int64_t>(nd, 1));
  auto pads = at.GetInts("pads", std::vector<int64_t>(2 * nd, 0));
  auto opad = at.GetInts("output_padding", std::vector<int64_t>(nd, 0));
  auto ks = at.GetInts("kernel_shape");
  const std::string auto_pad = at.GetString("auto_pad", "NOTSET");
  if (static_cast<int>(strides.size()) != nd || static_cast<int>(dil.size()) != nd ||
      static_cast<int>(pads.size()) != 2 * nd || static_cast<int>(opad.size()) != nd ||
      (!out_shape.empty() && static_cast<int>(out_shape.size()) != nd) ||
      (!ks.empty() && static_cast<int>(ks.size()) != nd)) {
    return ctx.Error("strides/dilations/output_padding/output_shape need " + std::to_string(nd) +
                     " values and pads " + std::to_string(2 * nd));
  }
  for (int i = 0; i < nd; ++i) {
    if (!out_shape.empty()) {
      if (out_shape[i] < 0) {
        return ctx.Error("output_shape value " + std::to_string(out_shape[i]) + " is negative");
      }
      out.push_back(Dim(out_shape[i]));
      continue;
    }
    const Dim& in = (*xs)[i + 2];
    if (!in.is_static()) {
      out.push_back(Dim());
      continue;
    }
    if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      const __int128 v = static_cast<__int128>(in.value) * strides[i];
      if (v < 0 || v > (int64_t{1} << 48)) return ctx.Error("computed output size is out of range");
      out.push_back(Dim(static_cast<int64_t>(v)));
      continue;
    }
    const Dim& kd = (*ws)[i + 2];
    const int64_t k = !ks.empty() ? ks[i] : (kd.is_static() ? kd.value : -1);
    if (k < 0) {
      out.push_back(Dim());
      continue;
    }
    // In 128 bits: every attribute is an untrusted int64 (fuzz_plan_file).
    __int128 v = static_cast<__int128>(strides[i]) * (in.value - 1) + opad[i] +
                 static_cast<__int128>(k - 1) * dil[i] + 1;
    if (auto_pad != "VALID") v -= static_cast<__int128>(pads[i]) + pads[i + nd];
    if (v < 0) return ctx.Error("computed output size is negative");
    if (v > (int64_t{1} << 48)) return ctx.Error("computed output size is out of range");
    out.push_back(Dim(static_cast<int64_t>(v)));
  }
  ctx.set_output(0, t, out);
  return Status::Ok();
}

Status InferPool(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(NeedInput(ctx, 0));
  KILN_RETURN_IF_ERROR(CheckPoolAttributeVersion(ctx.node()));
  const ElementType t = ctx.input_type(0);
  const Dims& xs = ctx.input(0).shape;
  Dims out;
  if (xs) {
    if (xs->size() < 3) return ctx.Error("expected X [N,C,spatial...]");
    const int nd = static_cast<int>(xs->size()) - 2;
    SpatialAttrs s;
    KILN_RETURN_IF_ERROR(ReadSpatial(ctx, nd, {}, true, &s));
    DimVector d = {(*xs)[0], (*xs)[1]};
    for (int i = 0; i < nd; ++i) {
      KILN_ASSIGN_OR_RETURN(Dim o, SpatialOut(ctx, s, i, (*xs)[i + 2], nd));
      d.push_back(o);
    }
    out = d;
  }
  ctx.set_output(0, t, out);
  if (ctx.num_outputs() > 1) ctx.set_output(1, ElementType::kI64, out);
  return Status::Ok();
}

Status InferGlobalPool(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(NeedInput(ctx, 0));
  const Dims& xs = ctx.input(0).shape;
  Dims out;
  if (xs) {
    if (xs->size() < 3) return ctx.Error("expected X [N,C,spatial...]");
    DimVector d = {(*xs)[0], (*xs)[1]};
    d.resize(xs->size(), Dim(1));
    out = d;
  }
  ctx.set_output(0, ctx.input_type(0), out);
  return Status::Ok();
}

Status InferMaxUnpool(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(NeedInput(ctx, 0));
  KILN_RETURN_IF_ERROR(NeedInput(ctx, 1));
  const ElementType t = ctx.input_type(0);
  if (ctx.has_input(2)) {
    const Tensor* v = ctx.input_value(2);
    if (v != nullptr && IsInteger(v->type())) {
      ctx.set_output(0, t, ToDims(v->ToInt64Vector()));
    } else {
      const Dims& s = ctx.input(2).shape;
      Dims out;
      if (s && s->size() == 1 && (*s)[0].is_static()) out = DimVector((*s)[0].value, Dim());
      ctx.set_output(0, t, out);
    }
    return Status::Ok();
  }
  const Dims& xs = ctx.input(0).shape;
  if (!xs) {
    ctx.set_output(0, t, std::nullopt);
    return Status::Ok();
  }
  if (xs->size() < 3) return ctx.Error("expected X [N,C,spatial...]");
  const int nd = static_cast<int>(xs->size()) - 2;
  const auto ks = ctx.attrs().GetInts("kernel_shape");
  const auto st = ctx.attrs().GetInts("strides", std::vector<int64_t>(nd, 1));
  const auto pads = ctx.attrs().GetInts("pads", std::vector<int64_t>(2 * nd, 0));
  if (static_cast<int>(ks.size()) != nd || static_cast<int>(st.size()) != nd ||
      static_cast<int>(pads.size()) != 2 * nd) {
    return ctx.Error("kernel_shape and strides need " + std::to_string(nd) + " values");
  }
  DimVector d = {(*xs)[0], (*xs)[1]};
  for (int i = 0; i < nd; ++i) {
    const Dim& in = (*xs)[i + 2];
    if (!in.is_static()) {
      d.push_back(Dim());
      continue;
    }
    const __int128 v = static_cast<__int128>(in.value - 1) * st[i] + ks[i] -
                       static_cast<__int128>(pads[i]) - pads[i + nd];
    if (v < 0 || v > (int64_t{1} << 48)) return ctx.Error("computed output size is out of range");
    d.push_back(Dim(static_cast<int64_t>(v)));
  }
  ctx.set_output(0, t, d);
  return Status::Ok();
}

Status InferBatchNorm(InferContext& ctx) {
  for (size_t i = 0; i < 5; ++i) KILN_RETURN_IF_ERROR(NeedInput(ctx, i));
  KILN_RETURN_IF_ERROR(NeedFloat(ctx, 0));
  ctx.set_output(0, ctx.input(0));
  // Running / saved statistics have the shape and type of mean (outputs 1, 3) and var (2, 4).
  for (size_t i = 1; i < ctx.num_outputs(); ++i) ctx.set_output(i, ctx.input(i % 2 == 1 ? 3 : 4));
  return Status::Ok();
}

Status InferFloatSameAsInput0(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(NeedInput(ctx, 0));
  KILN_RETURN_IF_ERROR(NeedFloat(ctx, 0));
  ctx.set_output(0, ctx.input(0));
  return Status::Ok();
}

Status InferLayerNorm(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(NeedInput(ctx, 0));
  KILN_RETURN_IF_ERROR(NeedInput(ctx, 1));
  KILN_RETURN_IF_ERROR(NeedFloat(ctx, 0));
  ctx.set_output(0, ctx.input(0));
  const Dims& xs = ctx.input(0).shape;
  Dims stat;
  if (xs) {
    const int rank = static_cast<int>(xs->size());
    KILN_ASSIGN_OR_RETURN(int axis, NormalizeAxis(ctx.attrs().GetInt("axis", -1), rank, ctx));
    DimVector d(xs->begin(), xs->begin() + axis);
    d.resize(rank, Dim(1));
    stat = d;
  }
  for (size_t i = 1; i < ctx.num_outputs() && i < 3; ++i)
    ctx.set_output(i, ElementType::kF32, stat);
  return Status::Ok();
}

Status InferSoftmax(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(NeedInput(ctx, 0));
  KILN_RETURN_IF_ERROR(NeedFloat(ctx, 0));
  const Dims& xs = ctx.input(0).shape;
  if (xs) {
    const int rank = std::max<int>(1, static_cast<int>(xs->size()));
    const int64_t def = ctx.opset() < 13 ? 1 : -1;
    KILN_RETURN_IF_ERROR(NormalizeAxis(ctx.attrs().GetInt("axis", def), rank, ctx).status());
  }
  ctx.set_output(0, ctx.input(0));
  return Status::Ok();
}

Status InferGemm(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(NeedInput(ctx, 0));
  KILN_RETURN_IF_ERROR(NeedInput(ctx, 1));
  const ElementType t = ctx.input_type(0);
  if (ctx.input_type(1) != t) return ctx.Error("A and B must have one element type");
  const Dims& as = ctx.input(0).shape;
  const Dims& bs = ctx.input(1).shape;
  if ((as && as->size() != 2) || (bs && bs->size() != 2)) return ctx.Error("A and B must be 2-D");
  const bool ta = ctx.attrs().GetInt("transA", 0) != 0;
  const bool tb = ctx.attrs().GetInt("transB", 0) != 0;
  const Dim m = as ? (*as)[ta ? 1 : 0] : Dim();
  const Dim n = bs ? (*bs)[tb ? 0 : 1] : Dim();
  if (as && bs) {
    const Dim& ka = (*as)[ta ? 0 : 1];
    const Dim& kb = (*bs)[tb ? 1 : 0];
    if (ka.is_static() && kb.is_static() && ka.value != kb.value) {
      return ctx.Error("inner dims differ: " + std::to_string(ka.value) + " vs " +
                       std::to_string(kb.value));
    }
  }
  ctx.set_output(0, t, DimVector{m, n});
  return Status::Ok();
}

Status InferMatMul(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(NeedInput(ctx, 0));
  KILN_RETURN_IF_ERROR(NeedInput(ctx, 1));
  const ElementType t = ctx.input_type(0);
  if (ctx.input_type(1) != t) return ctx.Error("A and B must have one element type");
  const Dims& as = ctx.input(0).shape;
  const Dims& bs = ctx.input(1).shape;
  if (!as || !bs) {
    ctx.set_output(0, t, std::nullopt);
    return Status::Ok();
  }
  if (as->empty() || bs->empty()) return ctx.Error("MatMul operands must have rank >= 1");
  DimVector a = *as, b = *bs;
  const bool a_vec = a.size() == 1, b_vec = b.size() == 1;
  if (a_vec) a.insert(a.begin(), Dim(1));
  if (b_vec) b.push_back(Dim(1));
  const Dim& ka = a.back();
  const Dim& kb = b[b.size() - 2];
  if (ka.is_static() && kb.is_static() && ka.value != kb.value) {
    return ctx.Error("inner dims differ: " + std::to_string(ka.value) + " vs " +
                     std::to_string(kb.value));
  }
  auto batch = BroadcastDims(DimVector(a.begin(), a.end() - 2), DimVector(b.begin(), b.end() - 2));
  if (!batch.ok()) return ctx.Error(batch.status().message());
  DimVector out = *batch;
  if (!a_vec) out.push_back(a[a.size() - 2]);
  if (!b_vec) out.push_back(b.back());
  ctx.set_output(0, t, out);
  return Status::Ok();
}

Status InferEinsum(InferContext& ctx) {
  std::string eq;
  for (char c : ctx.attrs().GetString("equation", "")) {
    if (c != ' ') eq += c;
  }
  if (eq.empty()) return ctx.Error("attribute equation is required");
  if (ctx.num_inputs() == 0 || !ctx.has_input(0)) return ctx.Error("Einsum needs inputs");
  const ElementType t = ctx.input_type(0);
  const size_t arrow = eq.find("->");
  const std::string lhs = eq.substr(0, arrow);
  std::vector<std::string> terms;
  for (size_t start = 0;;) {
    const size_t comma = lhs.find(',', start);
    terms.push_back(lhs.substr(start, comma - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  if (terms.size() != ctx.num_inputs()) {
    return ctx.Error("equation has " + std::to_string(terms.size()) + " terms but the node has " +
                     std::to_string(ctx.num_inputs()) + " inputs");
  }
  // Label dims, ellipsis dims (right-aligned broadcast) and label counts.
  std::map<char, Dim> label;
  std::map<char, int> count;
  DimVector ell;
  bool any_ell = false;
  for (size_t i = 0; i < terms.size(); ++i) {
    const Dims& s = ctx.input(i).shape;
    const std::string& term = terms[i];
    const size_t e = term.find("...");
    std::string letters = term;
    if (e != std::string::npos) letters.erase(e, 3);
    for (char c : letters) {
      if (!std::isalpha(static_cast<unsigned char>(c))) {
        return ctx.Error(std::string("invalid character '") + c + "' in equation");
      }
      ++count[c];
    }
    if (!s) {
      if (e != std::string::npos) any_ell = true;
      for (char c : letters) label.emplace(c, Dim());
      continue;
    }
    const int rank = static_cast<int>(s->size());
    const int nl = static_cast<int>(letters.size());
    if (e == std::string::npos ? nl != rank : nl > rank) {
      return ctx.Error("term '" + term + "' does not match an operand of rank " +
                       std::to_string(rank));
    }
    const int ne = rank - nl;
    const int before = e == std::string::npos ? nl : static_cast<int>(e);
    for (int d = 0, li = 0; d < rank; ++d) {
      if (d >= before && d < before + ne) continue;
      const char c = letters[li++];
      const Dim& dim = (*s)[d];
      auto it = label.find(c);
      if (it == label.end() || (it->second.is_static() && it->second.value == 1)) {
        label[c] = dim;
      }
    }
    if (e != std::string::npos) {
      any_ell = true;
      DimVector mine(s->begin() + before, s->begin() + before + ne);
      auto r = BroadcastDims(ell, mine);
      if (!r.ok()) return ctx.Error(r.status().message());
      ell = *r;
    }
  }
  DimVector out;
  if (arrow != std::string::npos) {
    const std::string rhs = eq.substr(arrow + 2);
    for (size_t i = 0; i < rhs.size();) {
      if (rhs.compare(i, 3, "...") == 0) {
        out.insert(out.end(), ell.begin(), ell.end());
        i += 3;
        continue;
      }
      auto it = label.find(rhs[i]);
      if (it == label.end())
        return ctx.Error(std::string("output label '") + rhs[i] + "' is not in the inputs");
      out.push_back(it->second);
      ++i;
    }
  } else {
    out = ell;
    for (auto& [c, n] : count) {  // std::map orders uppercase before lowercase, like numpy
      if (n == 1) out.push_back(label[c]);
    }
  }
  bool rank_known = true;
  for (size_t i = 0; i < terms.size(); ++i) {
    if (!ctx.input(i).shape && terms[i].find("...") != std::string::npos) rank_known = false;
  }
  (void)any_ell;
  ctx.set_output(0, t, rank_known ? Dims(out) : std::nullopt);
  return Status::Ok();
}

Status InferDropout(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(NeedInput(ctx, 0));
  ctx.set_output(0, ctx.input(0));
  if (ctx.num_outputs() > 1) {
    ctx.set_output(1, ctx.opset() >= 10 ? ElementType::kBool : ctx.input_type(0),
                   ctx.input(0).shape);
  }
  return Status::Ok();
}

// Output dims of Resize/Upsample from known scales or sizes.
Status ResizeFromScales(InferContext& ctx, const Dims& xs, const std::vector<double>& scales) {
  DimVector out;
  if (scales.size() != xs->size()) {
    return ctx.Error("scales must hold " + std::to_string(xs->size()) + " values");
  }
  for (size_t i = 0; i < xs->size(); ++i) {
    const Dim& d = (*xs)[i];
    if (!(scales[i] > 0)) return ctx.Error("scales must be positive");
    if (scales[i] == 1.0) {
      out.push_back(d);
    } else {
      out.push_back(d.is_static() ? Dim(static_cast<int64_t>(std::floor(scales[i] * d.value)))
                                  : Dim());
    }
  }
  ctx.set_output(0, ctx.input_type(0), out);
  return Status::Ok();
}

std::vector<double> ConstDoubles(const Tensor& t) {
  std::vector<double> v;
  for (int64_t i = 0; i < t.size(); ++i) v.push_back(t.GetAsDouble(i));
  return v;
}

// Resize-18 with axes or keep_aspect_ratio_policy (ir/resize_target.h): exact when the input
// shape is static and scales or sizes are constants; otherwise the resized axes are unknown.
Status InferResize18(InferContext& ctx, const DimVector& xs, const Tensor* scales,
                     const Tensor* sizes) {
  const int rank = static_cast<int>(xs.size());
  auto axes = NormalizeResizeAxes(ctx.attrs().GetInts("axes"), rank);
  if (!axes.ok()) return ctx.Error(axes.status().message());
  std::vector<int64_t> in;
  for (const Dim& d : xs) in.push_back(d.is_static() ? d.value : -1);
  const bool have_sizes = sizes != nullptr && sizes->size() > 0;
  const bool have_scales = !have_sizes && scales != nullptr && scales->size() > 0;
  if (std::find(in.begin(), in.end(), -1) == in.end() && (have_sizes || have_scales)) {
    const std::vector<double> sc = have_scales ? ConstDoubles(*scales) : std::vector<double>();
    const std::vector<int64_t> sz = have_sizes ? sizes->ToInt64Vector() : std::vector<int64_t>();
    auto t =
        ExpandResizeTarget(in, *axes, ctx.attrs().GetString("keep_aspect_ratio_policy", "stretch"),
                           have_scales ? &sc : nullptr, have_sizes ? &sz : nullptr);
    if (!t.ok()) return ctx.Error(t.status().message());
    ctx.set_output(0, ctx.input_type(0), ToDims(t->sizes));
    return Status::Ok();
  }
  DimVector out = xs;
  for (int64_t a : *axes) out[a] = Dim();
  ctx.set_output(0, ctx.input_type(0), out);
  return Status::Ok();
}

Status InferResize(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(NeedInput(ctx, 0));
  const ElementType t = ctx.input_type(0);
  const Dims& xs = ctx.input(0).shape;
  if (!xs) {
    ctx.set_output(0, t, std::nullopt);
    return Status::Ok();
  }
  const size_t scales_i = ctx.opset() < 11 ? 1 : 2;
  const Tensor* scales = ctx.input_value(scales_i);
  const Tensor* sizes = ctx.opset() < 11 ? nullptr : ctx.input_value(3);
  if (ctx.opset() >= 18 &&
      (ctx.attrs().Has("axes") ||
       ctx.attrs().GetString("keep_aspect_ratio_policy", "stretch") != "stretch")) {
    if (ctx.has_input(3) && sizes == nullptr) {
      DimVector out = *xs;
      for (Dim& d : out) d = Dim();
      ctx.set_output(0, t, out);
      return Status::Ok();
    }
    return InferResize18(ctx, *xs, scales, sizes);
  }
  if (sizes != nullptr && sizes->size() > 0) {
    if (sizes->size() != static_cast<int64_t>(xs->size())) {
      return ctx.Error("sizes must hold " + std::to_string(xs->size()) + " values");
    }
    ctx.set_output(0, t, ToDims(sizes->ToInt64Vector()));
    return Status::Ok();
  }
  if (scales != nullptr && scales->size() > 0 &&
      (ctx.opset() < 11 || !ctx.has_input(3) || ctx.input_value(3) != nullptr)) {
    return ResizeFromScales(ctx, xs, ConstDoubles(*scales));
  }
  ctx.set_output(0, t, DimVector(xs->size(), Dim()));
  return Status::Ok();
}

Status InferUpsample(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(NeedInput(ctx, 0));
  const ElementType t = ctx.input_type(0);
  const Dims& xs = ctx.input(0).shape;
  if (!xs) {
    ctx.set_output(0, t, std::nullopt);
    return Status::Ok();
  }
  if (ctx.opset() < 9) {
    const auto f = ctx.attrs().GetFloats("scales");
    return ResizeFromScales(ctx, xs, std::vector<double>(f.begin(), f.end()));
  }
  if (const Tensor* s = ctx.input_value(1); s != nullptr)
    return ResizeFromScales(ctx, xs, ConstDoubles(*s));
  ctx.set_output(0, t, DimVector(xs->size(), Dim()));
  return Status::Ok();
}

constexpr OpSchema kSchemas[] = {
    {"Conv", "", InferConv},
    {"ConvTranspose", "", InferConvTranspose},
    {"MaxPool", "", InferPool},
    {"AveragePool", "", InferPool},
    {"LpPool", "", InferPool},
    {"GlobalAveragePool", "", InferGlobalPool},
    {"GlobalMaxPool", "", InferGlobalPool},
    {"GlobalLpPool", "", InferGlobalPool},
    {"MaxUnpool", "", InferMaxUnpool},
    {"BatchNormalization", "", InferBatchNorm},
    {"InstanceNormalization", "", InferFloatSameAsInput0},
    {"LayerNormalization", "", InferLayerNorm},
    {"LRN", "", InferFloatSameAsInput0},
    {"MeanVarianceNormalization", "", InferFloatSameAsInput0},
    {"Gemm", "", InferGemm},
    {"MatMul", "", InferMatMul},
    {"Einsum", "", InferEinsum},
    {"Softmax", "", InferSoftmax},
    {"LogSoftmax", "", InferSoftmax},
    {"Hardmax", "", InferSoftmax},
    {"Dropout", "", InferDropout},
    {"Resize", "", InferResize},
    {"Upsample", "", InferUpsample},
};

}  // namespace

std::span<const OpSchema> NnSchemas() { return kSchemas; }

}  // namespace kiln
