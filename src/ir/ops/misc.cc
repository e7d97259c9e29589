// Shape and type inference for the misc op family: losses, detection and sampling
// (NonMaxSuppression, RoiAlign, MaxRoiPool, GridSample), Det, signal processing (DFT, STFT,
// windows, MelWeightMatrix), text (StringNormalizer, TfIdfVectorizer), random generators, and
// the image helpers CenterCropPad and Col2Im.
#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "ir/infer_util.h"
#include "ir/op_schema.h"

namespace kiln {

namespace {

// The value of a constant scalar (or 1-element) integer input, if known.
std::optional<int64_t> ConstantInt(const InferContext& ctx, size_t i) {
  const Tensor* t = ctx.input_value(i);
  if (t == nullptr || t->size() != 1 || !IsInteger(t->type())) return std::nullopt;
  return t->GetAsInt64(0);
}

Status RequireFloat(const InferContext& ctx, size_t i) {
  if (!ctx.has_input(i)) return ctx.Error("missing input " + std::to_string(i));
  if (!IsFloating(ctx.input_type(i))) {
    return ctx.Error("input " + std::to_string(i) + " must be a float type, found " +
                     ElementTypeName(ctx.input_type(i)));
  }
  return Status::Ok();
}

Status RequireRank(const InferContext& ctx, size_t i, size_t rank) {
  const auto& s = ctx.input(i).shape;
  if (s && s->size() != rank) {
    return ctx.Error("input " + std::to_string(i) + " must have rank " + std::to_string(rank) +
                     ", found " + ctx.input(i).ToString());
  }
  return Status::Ok();
}

Dim DimOf(const InferContext& ctx, size_t i, size_t d) {
  const auto& s = ctx.input(i).shape;
  return s && d < s->size() ? (*s)[d] : Dim();
}

Status InferLoss(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(RequireFloat(ctx, 0));
  if (!ctx.has_input(1)) return ctx.Error("missing input 1 (labels)");
  const ElementType lt = ctx.input_type(1);
  if (lt != ElementType::kI32 && lt != ElementType::kI64) {
    return ctx.Error(std::string("labels must be i32 or i64, found ") + ElementTypeName(lt));
  }
  const TypeInfo& x = ctx.input(0);
  if (x.shape && x.shape->size() < 2) return ctx.Error("scores must have rank >= 2");
  const std::string reduction = ctx.attrs().GetString("reduction", "mean");
  if (reduction != "none" && reduction != "sum" && reduction != "mean") {
    return ctx.Error("reduction must be none, sum or mean, found '" + reduction + "'");
  }
  if (reduction == "none") {
    std::optional<DimVector> out;
    if (x.shape) {
      out = DimVector{(*x.shape)[0]};
      out->insert(out->end(), x.shape->begin() + 2, x.shape->end());
    } else if (ctx.input(1).shape) {
      out = ctx.input(1).shape;
    }
    ctx.set_output(0, x.type, out);
  } else {
    ctx.set_output(0, x.type, DimVector{});
  }
  if (ctx.num_outputs() > 1) ctx.set_output(1, x);
  return Status::Ok();
}

Status InferNonMaxSuppression(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(RequireFloat(ctx, 0));
  KILN_RETURN_IF_ERROR(RequireFloat(ctx, 1));
  KILN_RETURN_IF_ERROR(RequireRank(ctx, 0, 3));
  KILN_RETURN_IF_ERROR(RequireRank(ctx, 1, 3));
  ctx.set_output(0, ElementType::kI64, DimVector{Dim(), Dim(3)});
  return Status::Ok();
}

Status InferRoiAlign(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(RequireFloat(ctx, 0));
  KILN_RETURN_IF_ERROR(RequireRank(ctx, 0, 4));
  KILN_RETURN_IF_ERROR(RequireRank(ctx, 1, 2));
  KILN_RETURN_IF_ERROR(RequireRank(ctx, 2, 1));
  const int64_t oh = ctx.attrs().GetInt("output_height", 1);
  const int64_t ow = ctx.attrs().GetInt("output_width", 1);
  if (oh <= 0 || ow <= 0) return ctx.Error("output_height and output_width must be positive");
  ctx.set_output(0, ctx.input_type(0), DimVector{DimOf(ctx, 1, 0), DimOf(ctx, 0, 1), oh, ow});
  return Status::Ok();
}

Status InferMaxRoiPool(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(RequireFloat(ctx, 0));
  KILN_RETURN_IF_ERROR(RequireRank(ctx, 0, 4));
  KILN_RETURN_IF_ERROR(RequireRank(ctx, 1, 2));
  const auto pooled = ctx.attrs().GetInts("pooled_shape");
  if (pooled.size() != 2 || pooled[0] <= 0 || pooled[1] <= 0) {
    return ctx.Error("pooled_shape must hold 2 positive values");
  }
  ctx.set_output(0, ctx.input_type(0),
                 DimVector{DimOf(ctx, 1, 0), DimOf(ctx, 0, 1), pooled[0], pooled[1]});
  return Status::Ok();
}

Status InferGridSample(InferContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1)) return ctx.Error("expected inputs X and grid");
  // GridSample-20 also samples volumes: X [N, C, D, H, W], grid [N, Do, Ho, Wo, 3].
  if (ctx.opset() >= 20 && ctx.input(0).shape && ctx.input(0).shape->size() == 5) {
    KILN_RETURN_IF_ERROR(RequireRank(ctx, 1, 5));
    KILN_RETURN_IF_ERROR(RequireFloat(ctx, 1));
    ctx.set_output(0, ctx.input_type(0),
                   DimVector{DimOf(ctx, 0, 0), DimOf(ctx, 0, 1), DimOf(ctx, 1, 1), DimOf(ctx, 1, 2),
                             DimOf(ctx, 1, 3)});
    return Status::Ok();
  }
  KILN_RETURN_IF_ERROR(RequireRank(ctx, 0, 4));
  KILN_RETURN_IF_ERROR(RequireRank(ctx, 1, 4));
  KILN_RETURN_IF_ERROR(RequireFloat(ctx, 1));
  ctx.set_output(0, ctx.input_type(0),
                 DimVector{DimOf(ctx, 0, 0), DimOf(ctx, 0, 1), DimOf(ctx, 1, 1), DimOf(ctx, 1, 2)});
  return Status::Ok();
}

Status InferDet(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(RequireFloat(ctx, 0));
  const auto& s = ctx.input(0).shape;
  if (!s) {
    ctx.set_output(0, ctx.input_type(0), std::nullopt);
    return Status::Ok();
  }
  if (s->size() < 2)
    return ctx.Error("input must have rank >= 2, found " + ctx.input(0).ToString());
  ctx.set_output(0, ctx.input_type(0), DimVector(s->begin(), s->end() - 2));
  return Status::Ok();
}

Status InferDft(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(RequireFloat(ctx, 0));
  const auto& s = ctx.input(0).shape;
  if (!s) {
    ctx.set_output(0, ctx.input_type(0), std::nullopt);
    return Status::Ok();
  }
  const int rank = static_cast<int>(s->size());
  if (rank < 2) return ctx.Error("input must have rank >= 2, found " + ctx.input(0).ToString());
  const Dim& last = s->back();
  if (last.is_static() && last.value != 1 && last.value != 2) {
    return ctx.Error("last dim of input must be 1 (real) or 2 (complex), found " + last.ToString());
  }
  // Accepted axes are [-r, -2] and [0, r - 2]: the last dim holds the real/imaginary parts.
  // DFT-20 moved axis (default -2) to the optional input 2; unknown when not a constant.
  int64_t axis_attr = ctx.attrs().GetInt("axis", 1);
  if (ctx.opset() >= 20) {
    axis_attr = -2;
    if (ctx.has_input(2)) {
      const auto a = ConstantInt(ctx, 2);
      if (!a) {
        DimVector out(s->size(), Dim());
        out.back() = Dim(2);
        ctx.set_output(0, ctx.input_type(0), std::move(out));
        return Status::Ok();
      }
      axis_attr = *a;
    }
  }
  const int64_t axis = axis_attr < 0 ? axis_attr + rank : axis_attr;
  if (axis < 0 || axis > rank - 2) {
    return ctx.Error("axis " + std::to_string(axis_attr) + " is out of range for rank " +
                     std::to_string(rank));
  }
  DimVector out = *s;
  Dim len = out[static_cast<size_t>(axis)];
  if (ctx.has_input(1)) {
    auto l = ConstantInt(ctx, 1);
    len = l ? Dim(*l) : Dim();
  }
  if (ctx.attrs().GetInt("onesided", 0) != 0) {
    len = len.is_static() ? Dim(len.value / 2 + 1) : Dim();
  }
  out[static_cast<size_t>(axis)] = len;
  out.back() = Dim(2);
  ctx.set_output(0, ctx.input_type(0), std::move(out));
  return Status::Ok();
}

Status InferStft(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(RequireFloat(ctx, 0));
  KILN_RETURN_IF_ERROR(RequireRank(ctx, 0, 3));
  std::optional<int64_t> frame_length;
  if (ctx.has_input(3)) {
    frame_length = ConstantInt(ctx, 3);
  } else if (ctx.has_input(2)) {
    const Dim w = DimOf(ctx, 2, 0);
    if (w.is_static()) frame_length = w.value;
  }
  const auto step = ConstantInt(ctx, 1);
  const Dim sig = DimOf(ctx, 0, 1);
  Dim frames;
  if (frame_length && step && sig.is_static() && *step > 0 && sig.value >= *frame_length) {
    frames = Dim((sig.value - *frame_length) / *step + 1);
  }
  Dim bins;
  if (frame_length) {
    bins = ctx.attrs().GetInt("onesided", 1) != 0 ? Dim(*frame_length / 2 + 1) : Dim(*frame_length);
  }
  ctx.set_output(0, ctx.input_type(0), DimVector{DimOf(ctx, 0, 0), frames, bins, Dim(2)});
  return Status::Ok();
}

Result<ElementType> OutputDataType(const InferContext& ctx, int64_t def) {
  const int64_t code = ctx.attrs().GetInt("output_datatype", def);
  const ElementType t = ElementTypeFromOnnx(static_cast<int>(code));
  if (!IsFloating(t) && !IsInteger(t)) {
    return ctx.Error("output_datatype " + std::to_string(code) + " is not a numeric type");
  }
  return t;
}

Status InferWindow(InferContext& ctx) {
  if (!ctx.has_input(0) || !IsInteger(ctx.input_type(0))) {
    return ctx.Error("input size must be an integer scalar");
  }
  KILN_ASSIGN_OR_RETURN(ElementType t, OutputDataType(ctx, 1));
  const auto n = ConstantInt(ctx, 0);
  ctx.set_output(0, t, DimVector{n ? Dim(*n) : Dim()});
  return Status::Ok();
}

Status InferMelWeightMatrix(InferContext& ctx) {
  for (size_t i = 0; i < 5; ++i) {
    if (!ctx.has_input(i)) return ctx.Error("missing input " + std::to_string(i));
  }
  KILN_ASSIGN_OR_RETURN(ElementType t, OutputDataType(ctx, 1));
  const auto bins = ConstantInt(ctx, 0);
  const auto dft = ConstantInt(ctx, 1);
  ctx.set_output(0, t, DimVector{dft ? Dim(*dft / 2 + 1) : Dim(), bins ? Dim(*bins) : Dim()});
  return Status::Ok();
}

Status InferStringNormalizer(InferContext& ctx) {
  if (!ctx.has_input(0) || ctx.input_type(0) != ElementType::kString) {
    return ctx.Error("input must be a string tensor");
  }
  const auto& s = ctx.input(0).shape;
  if (!s) {
    ctx.set_output(0, ElementType::kString, std::nullopt);
    return Status::Ok();
  }
  if (s->size() != 1 && s->size() != 2) return ctx.Error("input must be [C] or [1, C]");
  DimVector out = *s;
  // Stop words may remove elements (an empty result keeps one empty string).
  if (ctx.attrs().GetStrings("stopwords").size() > 0) out.back() = Dim();
  ctx.set_output(0, ElementType::kString, std::move(out));
  return Status::Ok();
}

Status InferTfIdf(InferContext& ctx) {
  if (!ctx.has_input(0)) return ctx.Error("missing input 0");
  const auto idx = ctx.attrs().GetInts("ngram_indexes");
  int64_t width = 0;
  for (int64_t v : idx) width = std::max(width, v + 1);
  const auto& s = ctx.input(0).shape;
  if (!s) {
    ctx.set_output(0, ElementType::kF32, std::nullopt);
    return Status::Ok();
  }
  if (s->size() == 1 || s->empty()) {
    ctx.set_output(0, ElementType::kF32, DimVector{width});
  } else if (s->size() == 2) {
    ctx.set_output(0, ElementType::kF32, DimVector{(*s)[0], width});
  } else {
    return ctx.Error("input must be [C] or [N, C], found " + ctx.input(0).ToString());
  }
  return Status::Ok();
}

Result<ElementType> DTypeAttr(const InferContext& ctx, ElementType def) {
  if (!ctx.attrs().Has("dtype")) return def;
  const ElementType t = ElementTypeFromOnnx(static_cast<int>(ctx.attrs().GetInt("dtype", 1)));
  if (t == ElementType::kUndefined) return ctx.Error("dtype attribute names an unknown type");
  return t;
}

Status InferRandom(InferContext& ctx) {
  KILN_ASSIGN_OR_RETURN(ElementType t, DTypeAttr(ctx, ElementType::kF32));
  const auto shape = ctx.attrs().GetInts("shape");
  DimVector d;
  for (int64_t v : shape) {
    if (v < 0) return ctx.Error("shape attribute has a negative dim");
    d.push_back(v);
  }
  ctx.set_output(0, t, std::move(d));
  return Status::Ok();
}

Status InferRandomLike(InferContext& ctx) {
  if (!ctx.has_input(0)) return ctx.Error("missing input 0");
  KILN_ASSIGN_OR_RETURN(ElementType t, DTypeAttr(ctx, ctx.input_type(0)));
  ctx.set_output(0, t, ctx.input(0).shape);
  return Status::Ok();
}

// CenterCropPad-18: the input's shape with each of `axes` (all by default) set to its value in
// the `shape` input; unknown dims when that input is not a known constant.
Status InferCenterCropPad(InferContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1))
    return ctx.Error("expected inputs input_data and shape");
  if (!IsInteger(ctx.input_type(1))) {
    return ctx.Error(std::string("shape must be int32 or int64, found ") +
                     ElementTypeName(ctx.input_type(1)));
  }
  const ElementType t = ctx.input_type(0);
  const auto& in = ctx.input(0).shape;
  if (!in) {
    ctx.set_output(0, t, std::nullopt);
    return Status::Ok();
  }
  const int r = static_cast<int>(in->size());
  std::vector<int64_t> axes = ctx.attrs().GetInts("axes");
  if (!ctx.attrs().Has("axes")) {
    for (int i = 0; i < r; ++i) axes.push_back(i);
  }
  DimVector out = *in;
  const Tensor* shape = ctx.input_value(1);
  if (shape != nullptr && shape->size() != static_cast<int64_t>(axes.size())) {
    return ctx.Error("shape has " + std::to_string(shape->size()) +
                     " values, expected one per axis (" + std::to_string(axes.size()) + ")");
  }
  std::vector<bool> seen(static_cast<size_t>(r), false);
  for (size_t i = 0; i < axes.size(); ++i) {
    KILN_ASSIGN_OR_RETURN(int a, NormalizeAxis(axes[i], r, ctx));
    if (seen[a]) return ctx.Error("axis " + std::to_string(axes[i]) + " is repeated in axes");
    seen[a] = true;
    out[a] = shape != nullptr ? Dim(shape->GetAsInt64(static_cast<int64_t>(i))) : Dim();
    if (out[a].is_static() && out[a].value < 0) return ctx.Error("shape has a negative value");
  }
  ctx.set_output(0, t, std::move(out));
  return Status::Ok();
}

// Col2Im-18: [N, C * prod(block_shape), L] -> [N, C, image_shape...].
Status InferCol2Im(InferContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1) || !ctx.has_input(2)) {
    return ctx.Error("expected inputs input, image_shape and block_shape");
  }
  KILN_RETURN_IF_ERROR(RequireFloat(ctx, 0));
  KILN_RETURN_IF_ERROR(RequireRank(ctx, 0, 3));
  const ElementType t = ctx.input_type(0);
  const auto& in = ctx.input(0).shape;
  const Tensor* image = ctx.input_value(1);
  const Tensor* block = ctx.input_value(2);
  if (image == nullptr) {
    const auto& s = ctx.input(1).shape;
    if (in && s && s->size() == 1 && (*s)[0].is_static()) {
      DimVector out = {(*in)[0], Dim()};
      out.resize(2 + static_cast<size_t>((*s)[0].value), Dim());
      ctx.set_output(0, t, std::move(out));
    } else {
      ctx.set_output(0, t, std::nullopt);
    }
    return Status::Ok();
  }
  DimVector out = {in ? (*in)[0] : Dim(), Dim()};
  for (int64_t i = 0; i < image->size(); ++i) out.push_back(Dim(image->GetAsInt64(i)));
  if (in && block != nullptr && (*in)[1].is_static()) {
    int64_t taps = 1;
    for (int64_t i = 0; i < block->size(); ++i) {
      const int64_t b = block->GetAsInt64(i);
      if (b <= 0 || __builtin_mul_overflow(taps, b, &taps)) {
        return ctx.Error("block_shape has an invalid value");
      }
    }
    if ((*in)[1].value % taps != 0) {
      return ctx.Error("dim 1 of input " + ctx.input(0).ToString() +
                       " is not divisible by prod(block_shape) = " + std::to_string(taps));
    }
    out[1] = Dim((*in)[1].value / taps);
  }
  ctx.set_output(0, t, std::move(out));
  return Status::Ok();
}

constexpr OpSchema kSchemas[] = {
    {"CenterCropPad", "", InferCenterCropPad},
    {"Col2Im", "", InferCol2Im},
    {"SoftmaxCrossEntropyLoss", "", InferLoss},
    {"NegativeLogLikelihoodLoss", "", InferLoss},
    {"NonMaxSuppression", "", InferNonMaxSuppression},
    {"RoiAlign", "", InferRoiAlign},
    {"MaxRoiPool", "", InferMaxRoiPool},
    {"GridSample", "", InferGridSample},
    {"Det", "", InferDet},
    {"DFT", "", InferDft},
    {"STFT", "", InferStft},
    {"HannWindow", "", InferWindow},
    {"HammingWindow", "", InferWindow},
    {"BlackmanWindow", "", InferWindow},
    {"MelWeightMatrix", "", InferMelWeightMatrix},
    {"StringNormalizer", "", InferStringNormalizer},
    {"TfIdfVectorizer", "", InferTfIdf},
    {"Bernoulli", "", InferRandomLike},
    {"RandomUniform", "", InferRandom},
    {"RandomNormal", "", InferRandom},
    {"RandomUniformLike", "", InferRandomLike},
    {"RandomNormalLike", "", InferRandomLike},
};

}  // namespace

std::span<const OpSchema> MiscSchemas() { return kSchemas; }

}  // namespace kiln
