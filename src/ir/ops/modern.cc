// Shape and type inference for the ops that appeared in opsets 18-23 (ir/op_versions.h lists
// their versions): Gelu, Mish, GroupNormalization, RMSNormalization, RotaryEmbedding, Attention,
// AffineGrid and DeformConv. Shapes follow the reference kernels in
// src/backends/ref/modern_*.cc; a symbolic or unknown dim gives an unknown output dim.
#include <string>

#include "ir/infer_util.h"
#include "ir/op_schema.h"

namespace kiln {
namespace {

Status NeedInputs(const InferContext& ctx, size_t count) {
  for (size_t i = 0; i < count; ++i) {
    if (!ctx.has_input(i)) return ctx.Error("missing required input " + std::to_string(i));
  }
  return Status::Ok();
}

Status NeedFloat(const InferContext& ctx, size_t i) {
  const ElementType t = ctx.input_type(i);
  if (t != ElementType::kUndefined && !IsFloating(t)) {
    return ctx.Error("input " + std::to_string(i) + " must be a float tensor, found " +
                     ElementTypeName(t));
  }
  return Status::Ok();
}

Status NeedRank(const InferContext& ctx, size_t i, int lo, int hi) {
  const auto& s = ctx.input(i).shape;
  if (s && (static_cast<int>(s->size()) < lo || static_cast<int>(s->size()) > hi)) {
    return ctx.Error("input " + std::to_string(i) + " must have rank " + std::to_string(lo) +
                     (lo == hi ? "" : " to " + std::to_string(hi)) + ", found " +
                     ctx.input(i).ToString());
  }
  return Status::Ok();
}

// Dim `d` of input `i`, unknown when the rank is unknown.
Dim DimOf(const InferContext& ctx, size_t i, int d) {
  const auto& s = ctx.input(i).shape;
  if (!s || d < 0 || d >= static_cast<int>(s->size())) return Dim();
  return (*s)[d];
}

Dim Mul(const Dim& a, int64_t k) { return a.is_static() ? Dim(a.value * k) : Dim(); }
Dim Div(const Dim& a, int64_t k) {
  return a.is_static() && k > 0 && a.value % k == 0 ? Dim(a.value / k) : Dim();
}
Dim Add(const Dim& a, const Dim& b) {
  return a.is_static() && b.is_static() ? Dim(a.value + b.value) : Dim();
}

Status InferFloatUnary(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(NeedInputs(ctx, 1));
  KILN_RETURN_IF_ERROR(NeedFloat(ctx, 0));
  if (ctx.node().op_type == "Gelu") {
    const std::string a = ctx.attrs().GetString("approximate", "none");
    if (a != "none" && a != "tanh") {
      return ctx.Error("approximate must be \"none\" or \"tanh\", found \"" + a + "\"");
    }
  }
  ctx.set_output(0, ctx.input(0));
  return Status::Ok();
}

Status InferGroupNorm(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(NeedInputs(ctx, 3));
  KILN_RETURN_IF_ERROR(NeedFloat(ctx, 0));
  KILN_RETURN_IF_ERROR(NeedRank(ctx, 0, 2, 64));
  if (!ctx.attrs().Has("num_groups")) return ctx.Error("attribute num_groups is required");
  const int64_t groups = ctx.attrs().GetInt("num_groups", 0);
  if (groups <= 0) return ctx.Error("num_groups must be positive, found " + std::to_string(groups));
  const Dim c = DimOf(ctx, 0, 1);
  if (c.is_static() && c.value % groups != 0) {
    return ctx.Error("channel count " + std::to_string(c.value) +
                     " is not divisible by num_groups " + std::to_string(groups));
  }
  // Opset 18: scale and bias hold one value per group; opset 21: one per channel.
  const Dim want = ctx.opset() >= 21 ? c : Dim(groups);
  for (size_t i = 1; i < 3; ++i) {
    KILN_RETURN_IF_ERROR(NeedRank(ctx, i, 1, 1));
    const Dim got = DimOf(ctx, i, 0);
    if (want.is_static() && got.is_static() && want.value != got.value) {
      return ctx.Error(
          std::string(i == 1 ? "scale" : "bias") + " must have " + std::to_string(want.value) +
          (ctx.opset() >= 21 ? " values (one per channel)" : " values (one per group)") +
          ", found " + ctx.input(i).ToString());
    }
  }
  ctx.set_output(0, ctx.input(0));
  return Status::Ok();
}

Status InferRmsNorm(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(NeedInputs(ctx, 2));
  KILN_RETURN_IF_ERROR(NeedFloat(ctx, 0));
  if (const auto& s = ctx.input(0).shape; s) {
    KILN_RETURN_IF_ERROR(
        NormalizeAxis(ctx.attrs().GetInt("axis", -1), static_cast<int>(s->size()), ctx).status());
  }
  ctx.set_output(0, ctx.input(0));
  return Status::Ok();
}

Status InferRotary(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(NeedInputs(ctx, 3));
  KILN_RETURN_IF_ERROR(NeedFloat(ctx, 0));
  KILN_RETURN_IF_ERROR(NeedRank(ctx, 0, 3, 4));
  const auto& s = ctx.input(0).shape;
  if (s && s->size() == 3 && ctx.attrs().GetInt("num_heads", 0) <= 0) {
    return ctx.Error("a 3-D input needs the num_heads attribute");
  }
  ctx.set_output(0, ctx.input(0));
  return Status::Ok();
}

// Attention-23: Q, K, V are 4-D (batch, heads, seq, head_size) or 3-D (batch, seq,
// heads * head_size) with q_num_heads/kv_num_heads. Outputs Y, present_key, present_value,
// qk_matmul_output.
Status InferAttention(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(NeedInputs(ctx, 3));
  for (size_t i = 0; i < 3; ++i) {
    KILN_RETURN_IF_ERROR(NeedFloat(ctx, i));
    KILN_RETURN_IF_ERROR(NeedRank(ctx, i, 3, 4));
  }
  const ElementType t = ctx.input_type(0);
  const auto& qs = ctx.input(0).shape;
  const auto& ks = ctx.input(1).shape;
  const auto& vs = ctx.input(2).shape;
  if (!qs || !ks || !vs) {
    for (size_t i = 0; i < ctx.num_outputs(); ++i) ctx.set_output(i, t, std::nullopt);
    return Status::Ok();
  }
  if (qs->size() != ks->size() || qs->size() != vs->size()) {
    return ctx.Error("Q, K and V must all be 3-D or all 4-D, found " + ctx.input(0).ToString() +
                     ", " + ctx.input(1).ToString() + ", " + ctx.input(2).ToString());
  }
  const bool three_d = qs->size() == 3;
  const int64_t qh_attr = ctx.attrs().GetInt("q_num_heads", 0);
  const int64_t kvh_attr = ctx.attrs().GetInt("kv_num_heads", 0);
  if (three_d && (qh_attr <= 0 || kvh_attr <= 0)) {
    return ctx.Error("3-D Q, K, V need the q_num_heads and kv_num_heads attributes");
  }
  const Dim batch = (*qs)[0];
  const Dim q_heads = three_d ? Dim(qh_attr) : (*qs)[1];
  const Dim kv_heads = three_d ? Dim(kvh_attr) : (*ks)[1];
  const Dim q_seq = three_d ? (*qs)[1] : (*qs)[2];
  const Dim kv_seq = three_d ? (*ks)[1] : (*ks)[2];
  const Dim head = three_d ? Div((*qs)[2], qh_attr) : (*qs)[3];
  const Dim v_head = three_d ? Div((*vs)[2], kvh_attr) : (*vs)[3];
  if (q_heads.is_static() && kv_heads.is_static() &&
      (kv_heads.value == 0 || q_heads.value % kv_heads.value != 0)) {
    return ctx.Error("q_num_heads " + std::to_string(q_heads.value) +
                     " is not a multiple of kv_num_heads " + std::to_string(kv_heads.value));
  }
  Dim past = Dim(0);
  if (ctx.has_input(4)) {
    KILN_RETURN_IF_ERROR(NeedRank(ctx, 4, 4, 4));
    past = DimOf(ctx, 4, 2);
  }
  const Dim total = Add(past, kv_seq);
  if (three_d) {
    const Dim width =
        q_heads.is_static() && v_head.is_static() ? Mul(v_head, q_heads.value) : Dim();
    ctx.set_output(0, t, DimVector{batch, q_seq, width});
  } else {
    ctx.set_output(0, t, DimVector{batch, q_heads, q_seq, v_head});
  }
  ctx.set_output(1, t, DimVector{batch, kv_heads, total, head});
  ctx.set_output(2, t, DimVector{batch, kv_heads, total, v_head});
  ctx.set_output(3, t, DimVector{batch, q_heads, q_seq, total});
  return Status::Ok();
}

// AffineGrid-20: theta (N, 2, 3) or (N, 3, 4), size = (N, C, H, W) or (N, C, D, H, W) ->
// grid (N, H, W, 2) or (N, D, H, W, 3).
Status InferAffineGrid(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(NeedInputs(ctx, 2));
  KILN_RETURN_IF_ERROR(NeedFloat(ctx, 0));
  KILN_RETURN_IF_ERROR(NeedRank(ctx, 0, 3, 3));
  const ElementType t = ctx.input_type(0);
  const Tensor* size = ctx.input_value(1);
  if (size == nullptr) {
    ctx.set_output(0, t, std::nullopt);
    return Status::Ok();
  }
  const std::vector<int64_t> s = size->ToInt64Vector();
  if (s.size() != 4 && s.size() != 5) {
    return ctx.Error("size must hold 4 (N, C, H, W) or 5 (N, C, D, H, W) values, found " +
                     std::to_string(s.size()));
  }
  DimVector out{s[0]};
  for (size_t i = 2; i < s.size(); ++i) out.push_back(s[i]);
  out.push_back(static_cast<int64_t>(s.size() - 2));
  ctx.set_output(0, t, out);
  return Status::Ok();
}

// DeformConv-19: X (N, C, H, W), W (oC, C/group, kH, kW), offset, [B], [mask] -> (N, oC, oH, oW)
// with oH, oW from offset's shape (its spatial dims are the output's).
Status InferDeformConv(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(NeedInputs(ctx, 3));
  KILN_RETURN_IF_ERROR(NeedFloat(ctx, 0));
  KILN_RETURN_IF_ERROR(NeedRank(ctx, 0, 4, 4));
  KILN_RETURN_IF_ERROR(NeedRank(ctx, 1, 4, 4));
  KILN_RETURN_IF_ERROR(NeedRank(ctx, 2, 4, 4));
  ctx.set_output(0, ctx.input_type(0),
                 DimVector{DimOf(ctx, 0, 0), DimOf(ctx, 1, 0), DimOf(ctx, 2, 2), DimOf(ctx, 2, 3)});
  return Status::Ok();
}

constexpr OpSchema kSchemas[] = {
    {"Gelu", "", InferFloatUnary},
    {"Mish", "", InferFloatUnary},
    {"GroupNormalization", "", InferGroupNorm},
    {"RMSNormalization", "", InferRmsNorm},
    {"RotaryEmbedding", "", InferRotary},
    {"Attention", "", InferAttention},
    {"AffineGrid", "", InferAffineGrid},
    {"DeformConv", "", InferDeformConv},
};

}  // namespace

std::span<const OpSchema> ModernSchemas() { return kSchemas; }

}  // namespace kiln
