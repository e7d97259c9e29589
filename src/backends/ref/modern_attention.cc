// Reference kernels: RotaryEmbedding-23 and Attention-23, in double (see modern_internal.h).
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "backends/ref/modern_internal.h"
#include "backends/ref/nn_internal.h"

namespace kiln::modern {
namespace {

// Element offset of (b, h, s, d) in a 4-D (B, H, S, D) tensor, or in a 3-D (B, S, H * D) one.
struct HeadLayout {
  int64_t batch = 0, heads = 0, seq = 0, head = 0;
  bool three_d = false;
  int64_t At(int64_t b, int64_t h, int64_t s, int64_t d) const {
    return three_d ? ((b * seq + s) * heads + h) * head + d
                   : ((b * heads + h) * seq + s) * head + d;
  }
};

// Reads the layout of a 4-D tensor, or of a 3-D one with `heads` heads (0: not given).
Status ReadLayout(const KernelContext& ctx, const Tensor& t, const char* name, int64_t heads,
                  HeadLayout* l) {
  if (t.rank() == 4) {
    *l = {t.dim(0), t.dim(1), t.dim(2), t.dim(3), false};
    return Status::Ok();
  }
  if (t.rank() != 3) {
    return ctx.Error(std::string(name) + " must be 3-D or 4-D, found " + t.Describe());
  }
  if (heads <= 0 || t.dim(2) % heads != 0) {
    return ctx.Error(std::string(name) + " " + t.Describe() + " is 3-D: its last dim must be a " +
                     "positive multiple of the head count " + std::to_string(heads));
  }
  *l = {t.dim(0), heads, t.dim(1), t.dim(2) / heads, true};
  return Status::Ok();
}

}  // namespace

// Rotates the first rotary_embedding_dim values of every head vector: pairs (x[i],
// x[i + rot/2]) (or (x[2i], x[2i+1]) when interleaved) by the angle whose cos/sin the caches
// hold for the token's position.
Status RotaryEmbeddingKernel(KernelContext& ctx) {
  KILN_RETURN_IF_ERROR(RequireFloatInput(ctx, 0, "X"));
  KILN_RETURN_IF_ERROR(RequireFloatInput(ctx, 1, "cos_cache"));
  KILN_RETURN_IF_ERROR(RequireFloatInput(ctx, 2, "sin_cache"));
  const Tensor& x = *ctx.input(0);
  const Tensor& cosc = *ctx.input(1);
  const Tensor& sinc = *ctx.input(2);
  const Tensor* pos = ctx.input(3);
  HeadLayout l;
  KILN_RETURN_IF_ERROR(ReadLayout(ctx, x, "X", ctx.attrs().GetInt("num_heads", 0), &l));
  const bool interleaved = ctx.attrs().GetInt("interleaved", 0) != 0;
  int64_t rot = ctx.attrs().GetInt("rotary_embedding_dim", 0);
  if (rot == 0) rot = l.head;
  if (rot < 0 || rot > l.head || rot % 2 != 0) {
    return ctx.Error("rotary_embedding_dim " + std::to_string(rot) +
                     " must be even and at most the head size " + std::to_string(l.head));
  }
  const int64_t half = rot / 2;
  if (cosc.shape() != sinc.shape()) {
    return ctx.Error("cos_cache " + cosc.Describe() + " and sin_cache " + sinc.Describe() +
                     " must have one shape");
  }
  std::vector<int64_t> ids;
  if (pos != nullptr) {
    if (pos->rank() != 2 || pos->dim(0) != l.batch || pos->dim(1) != l.seq) {
      return ctx.Error("position_ids " + pos->Describe() + " must have shape [" +
                       std::to_string(l.batch) + "," + std::to_string(l.seq) + "]");
    }
    if (cosc.rank() != 2 || cosc.dim(1) != half) {
      return ctx.Error("with position_ids, cos_cache " + cosc.Describe() +
                       " must have shape [max_position, " + std::to_string(half) + "]");
    }
    ids = pos->ToInt64Vector();
    for (int64_t p : ids) {
      if (p < 0 || p >= cosc.dim(0)) {
        return ctx.Error("position id " + std::to_string(p) + " is outside cos_cache " +
                         cosc.Describe());
      }
    }
  } else if (cosc.rank() != 3 || cosc.dim(0) != l.batch || cosc.dim(1) != l.seq ||
             cosc.dim(2) != half) {
    return ctx.Error("without position_ids, cos_cache " + cosc.Describe() + " must have shape [" +
                     std::to_string(l.batch) + "," + std::to_string(l.seq) + "," +
                     std::to_string(half) + "]");
  }
  const std::vector<double> xv = AsDoubles(x), cv = AsDoubles(cosc), sv = AsDoubles(sinc);
  std::vector<double> y = xv;
  for (int64_t b = 0; b < l.batch; ++b) {
    for (int64_t s = 0; s < l.seq; ++s) {
      const int64_t row = pos != nullptr ? ids[b * l.seq + s] : b * l.seq + s;
      const double* c = cv.data() + row * half;
      const double* sn = sv.data() + row * half;
      for (int64_t h = 0; h < l.heads; ++h) {
        const int64_t base = l.At(b, h, s, 0);
        for (int64_t i = 0; i < half; ++i) {
          const int64_t i1 = interleaved ? 2 * i : i;
          const int64_t i2 = interleaved ? 2 * i + 1 : i + half;
          const double a = xv[base + i1], bb = xv[base + i2];
          y[base + i1] = a * c[i] - bb * sn[i];
          y[base + i2] = bb * c[i] + a * sn[i];
        }
      }
    }
  }
  return WriteDoubles(ctx, 0, x.type(), x.shape(), y);
}

// softmax(cap(scale * Q K^T) + bias) V per (batch, query head), K and V of head h / (Hq / Hkv).
// cap(s) = c * tanh(s / c) when softcap c > 0. bias: attn_mask (bool: false masks out; float:
// added; broadcast to (B, Hq, Sq, T)) and, with is_causal, masked where key position
// j > query position i + (T - Sq) (the diagonal aligned to the last query, as with a KV cache).
// A masked score is the lowest float (as qk_matmul_output shows it, not -inf); a query whose
// keys are all masked (by the boolean mask or is_causal) gets zero weights and a zero output, as
// in ONNX Runtime. past_key/past_value are prepended to K/V, giving present_key/present_value.
// qk_matmul_output holds the scores after step qk_matmul_output_mode: 0 Q K^T scaled,
// 1 softcap, 2 + bias, 3 softmax.
//
// Order: ONNX Runtime 1.30, the oracle Kiln's tests compare against, applies softcap before
// the mask and numbers the qk_matmul_output modes in that order; the ONNX spec's text lists the
// mask first (mode 1 "after the mask", 2 "after softcap"). Kiln follows ONNX Runtime: in the
// spec's order tanh lifts a masked score to -softcap and masked keys leak into the output.
Status AttentionKernel(KernelContext& ctx) {
  KILN_RETURN_IF_ERROR(RequireFloatInput(ctx, 0, "Q"));
  KILN_RETURN_IF_ERROR(RequireFloatInput(ctx, 1, "K"));
  KILN_RETURN_IF_ERROR(RequireFloatInput(ctx, 2, "V"));
  const Tensor& q = *ctx.input(0);
  const Tensor& k = *ctx.input(1);
  const Tensor& v = *ctx.input(2);
  const Tensor* mask = ctx.input(3);
  const Tensor* past_k = ctx.input(4);
  const Tensor* past_v = ctx.input(5);
  if ((past_k == nullptr) != (past_v == nullptr)) {
    return ctx.Error("past_key and past_value must be given together");
  }
  if (q.rank() != k.rank() || q.rank() != v.rank()) {
    return ctx.Error("Q " + q.Describe() + ", K " + k.Describe() + " and V " + v.Describe() +
                     " must all be 3-D or all 4-D");
  }
  HeadLayout lq, lk, lv;
  KILN_RETURN_IF_ERROR(ReadLayout(ctx, q, "Q", ctx.attrs().GetInt("q_num_heads", 0), &lq));
  KILN_RETURN_IF_ERROR(ReadLayout(ctx, k, "K", ctx.attrs().GetInt("kv_num_heads", 0), &lk));
  KILN_RETURN_IF_ERROR(ReadLayout(ctx, v, "V", ctx.attrs().GetInt("kv_num_heads", 0), &lv));
  const int64_t B = lq.batch, Hq = lq.heads, Sq = lq.seq, D = lq.head;
  const int64_t Hkv = lk.heads, Skv = lk.seq, Dv = lv.head;
  if (lk.batch != B || lv.batch != B || lv.heads != Hkv || lv.seq != Skv || lk.head != D) {
    return ctx.Error("K " + k.Describe() + " and V " + v.Describe() + " do not match Q " +
                     q.Describe() + " (batch, kv heads, kv sequence, head size)");
  }
  if (Hkv <= 0 || Hq % Hkv != 0) {
    return ctx.Error("the query head count " + std::to_string(Hq) +
                     " is not a multiple of the key/value head count " + std::to_string(Hkv));
  }
  int64_t P = 0;
  if (past_k != nullptr) {
    const Tensor& pk = *past_k;
    const Tensor& pv = *past_v;
    if (pk.rank() != 4 || pv.rank() != 4 || pk.dim(0) != B || pk.dim(1) != Hkv || pk.dim(3) != D ||
        pv.dim(0) != B || pv.dim(1) != Hkv || pv.dim(3) != Dv || pv.dim(2) != pk.dim(2)) {
      return ctx.Error("past_key " + pk.Describe() + " / past_value " + pv.Describe() +
                       " must be [batch, kv_heads, past_seq, head_size] matching K and V");
    }
    P = pk.dim(2);
  }
  const int64_t T = P + Skv;
  // Mask strides over (B, Hq, Sq, T), right-aligned broadcast.
  int64_t mstride[4] = {0, 0, 0, 0};
  bool mask_bool = false;
  std::vector<double> mv;
  if (mask != nullptr) {
    const int64_t full[4] = {B, Hq, Sq, T};
    if (mask->rank() < 1 || mask->rank() > 4) {
      return ctx.Error("attn_mask " + mask->Describe() + " must have rank 1 to 4");
    }
    int64_t stride = 1;
    for (int i = mask->rank() - 1, d = 3; i >= 0; --i, --d) {
      const int64_t md = mask->dim(i);
      if (md != 1 && md != full[d]) {
        return ctx.Error("attn_mask " + mask->Describe() + " does not broadcast to [" +
                         std::to_string(B) + "," + std::to_string(Hq) + "," + std::to_string(Sq) +
                         "," + std::to_string(T) + "] (batch, q_heads, q_seq, total_seq)");
      }
      mstride[d] = md == 1 ? 0 : stride;
      stride *= md;
    }
    mask_bool = mask->type() == ElementType::kBool;
    if (!mask_bool && !IsFloating(mask->type())) {
      return ctx.Error("attn_mask must be bool or float, found " + mask->Describe());
    }
    mv = AsDoubles(*mask);
  }
  const bool causal = ctx.attrs().GetInt("is_causal", 0) != 0;
  const double scale = ctx.attrs().Has("scale") ? ctx.attrs().GetFloat("scale", 1.0f)
                                                : 1.0 / std::sqrt(static_cast<double>(D));
  const double softcap = ctx.attrs().GetFloat("softcap", 0.0f);
  const int64_t qk_mode = ctx.attrs().GetInt("qk_matmul_output_mode", 0);
  if (qk_mode < 0 || qk_mode > 3) {
    return ctx.Error("qk_matmul_output_mode must be 0 to 3, found " + std::to_string(qk_mode));
  }
  const std::vector<double> qv = AsDoubles(q), kv = AsDoubles(k), vv = AsDoubles(v);
  // present_key / present_value (B, Hkv, T, D / Dv): past rows, then the new ones.
  std::vector<double> pk(static_cast<size_t>(B * Hkv * T * D));
  std::vector<double> pv(static_cast<size_t>(B * Hkv * T * Dv));
  {
    std::vector<double> pkd, pvd;
    if (P > 0) {
      pkd = AsDoubles(*past_k);
      pvd = AsDoubles(*past_v);
    }
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t h = 0; h < Hkv; ++h) {
        for (int64_t t = 0; t < T; ++t) {
          double* kr = pk.data() + ((b * Hkv + h) * T + t) * D;
          double* vr = pv.data() + ((b * Hkv + h) * T + t) * Dv;
          for (int64_t d = 0; d < D; ++d) {
            kr[d] = t < P ? pkd[((b * Hkv + h) * P + t) * D + d] : kv[lk.At(b, h, t - P, d)];
          }
          for (int64_t d = 0; d < Dv; ++d) {
            vr[d] = t < P ? pvd[((b * Hkv + h) * P + t) * Dv + d] : vv[lv.At(b, h, t - P, d)];
          }
        }
      }
    }
  }
  const double kNegInf = -std::numeric_limits<double>::infinity();
  const double kMasked = std::numeric_limits<float>::lowest();
  HeadLayout ly = lq;
  ly.head = Dv;
  std::vector<double> y(static_cast<size_t>(B * Hq * Sq * Dv));
  std::vector<double> qk(static_cast<size_t>(B * Hq * Sq * T));
  const int64_t group = Hq / Hkv;
  nn::ParallelRange(ctx.thread_pool(), B * Hq, 1, [&](int64_t r0, int64_t r1) {
    std::vector<double> row(static_cast<size_t>(T));
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t b = r / Hq, h = r % Hq, hk = h / group;
      const double* kb = pk.data() + (b * Hkv + hk) * T * D;
      const double* vb = pv.data() + (b * Hkv + hk) * T * Dv;
      for (int64_t i = 0; i < Sq; ++i) {
        double* out_qk = qk.data() + ((b * Hq + h) * Sq + i) * T;
        int64_t unmasked = 0;
        for (int64_t j = 0; j < T; ++j) {
          double s = 0;
          for (int64_t d = 0; d < D; ++d) s += qv[lq.At(b, h, i, d)] * kb[j * D + d];
          s *= scale;
          if (qk_mode == 0) out_qk[j] = s;
          if (softcap > 0) s = softcap * std::tanh(s / softcap);
          if (qk_mode == 1) out_qk[j] = s;
          bool masked = false;
          if (mask != nullptr) {
            const double m = mv[b * mstride[0] + h * mstride[1] + i * mstride[2] + j * mstride[3]];
            if (mask_bool) {
              masked = m == 0;
            } else {
              s += m;
            }
          }
          masked = masked || (causal && j > i + (T - Sq));
          if (masked) s = kMasked;
          if (qk_mode == 2) out_qk[j] = s;
          if (!masked) ++unmasked;
          row[j] = s;
        }
        double mx = kNegInf;
        for (int64_t j = 0; j < T; ++j) mx = std::max(mx, row[j]);
        double sum = 0;
        for (int64_t j = 0; j < T; ++j) {
          row[j] = unmasked == 0 || mx == kNegInf ? 0.0 : std::exp(row[j] - mx);
          sum += row[j];
        }
        for (int64_t j = 0; j < T; ++j) {
          row[j] = sum > 0 ? row[j] / sum : 0.0;
          if (qk_mode == 3) out_qk[j] = row[j];
        }
        for (int64_t d = 0; d < Dv; ++d) {
          double acc = 0;
          for (int64_t j = 0; j < T; ++j) acc += row[j] * vb[j * Dv + d];
          y[ly.At(b, h, i, d)] = acc;
        }
      }
    }
  });
  const ElementType t = q.type();
  KILN_RETURN_IF_ERROR(
      WriteDoubles(ctx, 0, t, ly.three_d ? Shape{B, Sq, Hq * Dv} : Shape{B, Hq, Sq, Dv}, y));
  if (ctx.num_outputs() > 1 && ctx.output_used(1)) {
    KILN_RETURN_IF_ERROR(WriteDoubles(ctx, 1, t, Shape{B, Hkv, T, D}, pk));
  }
  if (ctx.num_outputs() > 2 && ctx.output_used(2)) {
    KILN_RETURN_IF_ERROR(WriteDoubles(ctx, 2, t, Shape{B, Hkv, T, Dv}, pv));
  }
  if (ctx.num_outputs() > 3 && ctx.output_used(3)) {
    KILN_RETURN_IF_ERROR(WriteDoubles(ctx, 3, t, Shape{B, Hq, Sq, T}, qk));
  }
  return Status::Ok();
}

}  // namespace kiln::modern
