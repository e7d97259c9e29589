// Reference kernels for the recurrent ops RNN, GRU and LSTM (opsets 7-17 semantics).
//
// Math (per direction, per batch row, per time step; W/R rows grouped by gate, biases Wb/Rb):
//   RNN:  H = f(X W^T + H' R^T + Wb + Rb)
//   GRU:  z = f(X Wz^T + H' Rz^T + Wbz + Rbz),  r = f(X Wr^T + H' Rr^T + Wbr + Rbr)
//         h = g(X Wh^T + (r . H') Rh^T + Rbh + Wbh)          linear_before_reset = 0
//         h = g(X Wh^T + r . (H' Rh^T + Rbh) + Wbh)          linear_before_reset != 0
//         H = (1 - z) . h + z . H'
//   LSTM: gates i, o, f, c; peepholes P = [Pi, Po, Pf]
//         i = f(X Wi^T + H' Ri^T + Pi . C' + Wbi + Rbi),  f likewise with Pf (or 1 - i when
//         input_forget), c = g(X Wc^T + H' Rc^T + Wbc + Rbc), C = f . C' + i . c,
//         o = f(X Wo^T + H' Ro^T + Po . C + Wbo + Rbo),  H = o . h(C)
// `clip` bounds every gate pre-activation to [-clip, clip]. The reverse direction walks each
// row's sequence (of length sequence_lens[b]) backwards; Y is zero past a row's length and Y_h /
// Y_c hold the state after the row's last processed step. The gate math is in double, rounded
// once on store. The matrix-vector products read float32 weights in place (float accumulation,
// AVX2 FMA when the CPU has it: converting W and R to double every run cost more than the
// recurrence itself); other element types are widened to double.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <string>
#include <vector>

#include "backends/ref/kernel.h"
#include "core/cpu_features.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace kiln {

namespace {

#if defined(__x86_64__) || defined(__i386__)
// out[r] = sum_i m[r*n + i] * v[i] for r in [0, rows): four rows share each load of v.
KILN_TARGET_AVX2 inline float HSumAvx2(__m256 a) {
  __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  s4 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  s4 = _mm_add_ss(s4, _mm_movehdup_ps(s4));
  return _mm_cvtss_f32(s4);
}

KILN_TARGET_AVX2 void MatVecF32Avx2(const float* m, const float* v, int64_t rows, int64_t n,
                                    float* out) {
  const auto hsum = HSumAvx2;
  int64_t r = 0;
  for (; r + 4 <= rows; r += 4) {
    const float* m0 = m + r * n;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
      const __m256 x = _mm256_loadu_ps(v + i);
      a0 = _mm256_fmadd_ps(_mm256_loadu_ps(m0 + i), x, a0);
      a1 = _mm256_fmadd_ps(_mm256_loadu_ps(m0 + n + i), x, a1);
      a2 = _mm256_fmadd_ps(_mm256_loadu_ps(m0 + 2 * n + i), x, a2);
      a3 = _mm256_fmadd_ps(_mm256_loadu_ps(m0 + 3 * n + i), x, a3);
    }
    float s[4] = {hsum(a0), hsum(a1), hsum(a2), hsum(a3)};
    for (; i < n; ++i) {
      for (int q = 0; q < 4; ++q) s[q] += m0[q * n + i] * v[i];
    }
    for (int q = 0; q < 4; ++q) out[r + q] = s[q];
  }
  for (; r < rows; ++r) {
    __m256 a = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
      a = _mm256_fmadd_ps(_mm256_loadu_ps(m + r * n + i), _mm256_loadu_ps(v + i), a);
    }
    float s = hsum(a);
    for (; i < n; ++i) s += m[r * n + i] * v[i];
    out[r] = s;
  }
}
#endif

void MatVecF32(const float* m, const float* v, int64_t rows, int64_t n, float* out) {
#if defined(__x86_64__) || defined(__i386__)
  if (CpuHasAvx2()) {
    MatVecF32Avx2(m, v, rows, n, out);
    return;
  }
#endif
  for (int64_t r = 0; r < rows; ++r) {
    // Four partial sums: the same association as the vector path's lanes, roughly.
    float s[4] = {0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
      for (int q = 0; q < 4; ++q) s[q] += m[r * n + i + q] * v[i + q];
    }
    float sum = (s[0] + s[1]) + (s[2] + s[3]);
    for (; i < n; ++i) sum += m[r * n + i] * v[i];
    out[r] = sum;
  }
}

enum class CellKind { kRnn, kGru, kLstm };

enum class Act {
  kRelu,
  kTanh,
  kSigmoid,
  kAffine,
  kLeakyRelu,
  kThresholdedRelu,
  kScaledTanh,
  kHardSigmoid,
  kElu,
  kSoftsign,
  kSoftplus
};

struct Activation {
  Act kind = Act::kTanh;
  double alpha = 0;
  double beta = 0;

  double operator()(double x) const {
    switch (kind) {
      case Act::kRelu:
        return x > 0 ? x : 0;
      case Act::kTanh:
        return std::tanh(x);
      case Act::kSigmoid:
        return 1.0 / (1.0 + std::exp(-x));
      case Act::kAffine:
        return alpha * x + beta;
      case Act::kLeakyRelu:
        return x >= 0 ? x : alpha * x;
      case Act::kThresholdedRelu:
        return x > alpha ? x : 0;
      case Act::kScaledTanh:
        return alpha * std::tanh(beta * x);
      case Act::kHardSigmoid:
        return std::max(0.0, std::min(1.0, alpha * x + beta));
      case Act::kElu:
        return x >= 0 ? x : alpha * (std::exp(x) - 1);
      case Act::kSoftsign:
        return x / (1 + std::fabs(x));
      case Act::kSoftplus:
        return std::log1p(std::exp(-std::fabs(x))) + std::max(x, 0.0);
    }
    return x;
  }
};

// Parses activation names, consuming activation_alpha/beta values in order for the functions
// that take them (defaults are those of the same-named ONNX operators).
Result<std::vector<Activation>> ParseActivations(const KernelContext& ctx,
                                                 const std::vector<std::string>& names) {
  const std::vector<float> alphas = ctx.attrs().GetFloats("activation_alpha");
  const std::vector<float> betas = ctx.attrs().GetFloats("activation_beta");
  size_t ai = 0;
  size_t bi = 0;
  std::vector<Activation> out;
  for (const std::string& name : names) {
    std::string n = name;
    std::transform(n.begin(), n.end(), n.begin(), [](unsigned char c) { return std::tolower(c); });
    Activation a;
    double def_alpha = 0;
    double def_beta = 0;
    bool uses_alpha = false;
    bool uses_beta = false;
    if (n == "relu") {
      a.kind = Act::kRelu;
    } else if (n == "tanh") {
      a.kind = Act::kTanh;
    } else if (n == "sigmoid") {
      a.kind = Act::kSigmoid;
    } else if (n == "affine") {
      a.kind = Act::kAffine;
      uses_alpha = uses_beta = true;
      def_alpha = 1;
    } else if (n == "leakyrelu") {
      a.kind = Act::kLeakyRelu;
      uses_alpha = true;
      def_alpha = 0.01;
    } else if (n == "thresholdedrelu") {
      a.kind = Act::kThresholdedRelu;
      uses_alpha = true;
      def_alpha = 1;
    } else if (n == "scaledtanh") {
      a.kind = Act::kScaledTanh;
      uses_alpha = uses_beta = true;
      def_alpha = 1;
      def_beta = 1;
    } else if (n == "hardsigmoid") {
      a.kind = Act::kHardSigmoid;
      uses_alpha = uses_beta = true;
      def_alpha = 0.2;
      def_beta = 0.5;
    } else if (n == "elu") {
      a.kind = Act::kElu;
      uses_alpha = true;
      def_alpha = 1;
    } else if (n == "softsign") {
      a.kind = Act::kSoftsign;
    } else if (n == "softplus") {
      a.kind = Act::kSoftplus;
    } else {
      return ctx.Error("unknown activation function '" + name + "'");
    }
    a.alpha = def_alpha;
    a.beta = def_beta;
    if (uses_alpha && ai < alphas.size()) a.alpha = alphas[ai++];
    if (uses_beta && bi < betas.size()) a.beta = betas[bi++];
    out.push_back(a);
  }
  return out;
}

std::vector<double> ToDoubles(const Tensor* t) {
  std::vector<double> v;
  if (t == nullptr) return v;
  v.resize(static_cast<size_t>(t->size()));
  for (int64_t i = 0; i < t->size(); ++i) v[static_cast<size_t>(i)] = t->GetAsDouble(i);
  return v;
}

Status CheckShape(const KernelContext& ctx, const Tensor* t, const char* what, const Shape& want) {
  if (t != nullptr && t->shape() != want) {
    return ctx.Error(std::string(what) + " must have shape " + ShapeToString(want) + ", found " +
                     ShapeToString(t->shape()));
  }
  return Status::Ok();
}

Status StoreDoubles(Tensor* t, const std::vector<double>& v) {
  Dispatch<kDispatchFloat>(t->type(), [&](auto tag) {
    using T = decltype(tag);
    T* d = t->data<T>();
    for (size_t i = 0; i < v.size(); ++i) {
      if constexpr (std::is_same_v<T, double>) {
        d[i] = v[i];
      } else {
        d[i] = static_cast<T>(static_cast<float>(v[i]));
      }
    }
  });
  return Status::Ok();
}

Status RunRecurrent(KernelContext& ctx, CellKind kind) {
  const Tensor* x_t = ctx.input(0);
  const Tensor* w_t = ctx.input(1);
  const Tensor* r_t = ctx.input(2);
  const Tensor* b_t = ctx.input(3);
  const Tensor* lens_t = ctx.input(4);
  const Tensor* h0_t = ctx.input(5);
  const Tensor* c0_t = kind == CellKind::kLstm ? ctx.input(6) : nullptr;
  const Tensor* p_t = kind == CellKind::kLstm ? ctx.input(7) : nullptr;
  if (x_t == nullptr || w_t == nullptr || r_t == nullptr)
    return ctx.Error("X, W and R are required");
  const ElementType type = x_t->type();
  if (!IsFloating(type)) return ctx.UnsupportedType(type);
  for (const Tensor* t : {w_t, r_t, b_t, h0_t, c0_t, p_t}) {
    if (t != nullptr && t->type() != type) {
      return ctx.Error("all float inputs must be " + std::string(ElementTypeName(type)) +
                       ", found " + t->Describe());
    }
  }
  if (x_t->rank() != 3 || w_t->rank() != 3 || r_t->rank() != 3) {
    return ctx.Error("X, W and R must have rank 3, found " + x_t->Describe() + ", " +
                     w_t->Describe() + ", " + r_t->Describe());
  }
  const int64_t layout = ctx.opset() >= 14 ? ctx.attrs().GetInt("layout", 0) : 0;
  if (layout != 0 && layout != 1) return ctx.Error("layout must be 0 or 1");
  const int64_t seq = x_t->dim(layout == 0 ? 0 : 1);
  const int64_t batch = x_t->dim(layout == 0 ? 1 : 0);
  const int64_t input_size = x_t->dim(2);
  const std::string direction = ctx.attrs().GetString("direction", "forward");
  if (direction != "forward" && direction != "reverse" && direction != "bidirectional") {
    return ctx.Error("direction must be forward, reverse or bidirectional, found '" + direction +
                     "'");
  }
  const int64_t dirs = direction == "bidirectional" ? 2 : 1;
  const int64_t gates = kind == CellKind::kRnn ? 1 : kind == CellKind::kGru ? 3 : 4;
  const int64_t hidden = ctx.attrs().GetInt("hidden_size", r_t->dim(2));
  if (hidden <= 0) return ctx.Error("hidden_size must be positive");
  const int64_t gh = gates * hidden;
  KILN_RETURN_IF_ERROR(CheckShape(ctx, w_t, "W", {dirs, gh, input_size}));
  KILN_RETURN_IF_ERROR(CheckShape(ctx, r_t, "R", {dirs, gh, hidden}));
  KILN_RETURN_IF_ERROR(CheckShape(ctx, b_t, "B", {dirs, 2 * gh}));
  KILN_RETURN_IF_ERROR(CheckShape(ctx, lens_t, "sequence_lens", {batch}));
  const Shape state_shape = layout == 0 ? Shape{dirs, batch, hidden} : Shape{batch, dirs, hidden};
  KILN_RETURN_IF_ERROR(CheckShape(ctx, h0_t, "initial_h", state_shape));
  KILN_RETURN_IF_ERROR(CheckShape(ctx, c0_t, "initial_c", state_shape));
  KILN_RETURN_IF_ERROR(CheckShape(ctx, p_t, "P", {dirs, 3 * hidden}));
  if (lens_t != nullptr && !IsInteger(lens_t->type())) {
    return ctx.Error("sequence_lens must be an integer tensor, found " + lens_t->Describe());
  }

  // Activations: per direction, RNN f; GRU f, g; LSTM f, g, h.
  const size_t nacts = kind == CellKind::kRnn ? 1 : kind == CellKind::kGru ? 2 : 3;
  std::vector<std::string> names = ctx.attrs().GetStrings("activations");
  if (names.empty()) {
    const std::vector<std::string> defaults =
        kind == CellKind::kRnn   ? std::vector<std::string>{"Tanh"}
        : kind == CellKind::kGru ? std::vector<std::string>{"Sigmoid", "Tanh"}
                                 : std::vector<std::string>{"Sigmoid", "Tanh", "Tanh"};
    for (int64_t d = 0; d < dirs; ++d) names.insert(names.end(), defaults.begin(), defaults.end());
  } else if (names.size() == nacts && dirs == 2) {
    // One set given for a bidirectional op: use it for both directions.
    std::vector<std::string> twice = names;
    twice.insert(twice.end(), names.begin(), names.end());
    names = twice;
  }
  if (names.size() != nacts * static_cast<size_t>(dirs)) {
    return ctx.Error("expected " + std::to_string(nacts * static_cast<size_t>(dirs)) +
                     " activations, found " + std::to_string(names.size()));
  }
  KILN_ASSIGN_OR_RETURN(std::vector<Activation> acts, ParseActivations(ctx, names));
  const bool has_clip = ctx.attrs().Has("clip");
  const double clip = ctx.attrs().GetFloat("clip", 0);
  if (has_clip && !(clip > 0)) return ctx.Error("clip must be positive");
  const bool linear_before_reset = ctx.attrs().GetInt("linear_before_reset", 0) != 0;
  const bool input_forget = ctx.attrs().GetInt("input_forget", 0) != 0;

  std::vector<int64_t> lens(static_cast<size_t>(batch), seq);
  if (lens_t != nullptr) {
    lens = lens_t->ToInt64Vector();
    for (int64_t l : lens) {
      if (l < 0 || l > seq) {
        return ctx.Error("sequence_lens value " + std::to_string(l) + " is outside [0, " +
                         std::to_string(seq) + "]");
      }
    }
  }
  // float32: X, W and R are read in place; other types are widened to double once.
  const bool f32 = type == ElementType::kF32;
  const std::vector<double> X = f32 ? std::vector<double>() : ToDoubles(x_t);
  const std::vector<double> W = f32 ? std::vector<double>() : ToDoubles(w_t);
  const std::vector<double> R = f32 ? std::vector<double>() : ToDoubles(r_t);
  const float* xf = f32 ? x_t->data<float>() : nullptr;
  const float* wf_all = f32 ? w_t->data<float>() : nullptr;
  const float* rf_all = f32 ? r_t->data<float>() : nullptr;
  const std::vector<double> B = ToDoubles(b_t);
  const std::vector<double> H0 = ToDoubles(h0_t);
  const std::vector<double> C0 = ToDoubles(c0_t);
  const std::vector<double> P = ToDoubles(p_t);

  std::vector<double> Y(static_cast<size_t>(seq * dirs * batch * hidden), 0.0);
  std::vector<double> YH(static_cast<size_t>(dirs * batch * hidden), 0.0);
  std::vector<double> YC(YH.size(), 0.0);
  auto y_index = [&](int64_t t, int64_t d, int64_t b) {
    return static_cast<size_t>(layout == 0 ? ((t * dirs + d) * batch + b) * hidden
                                           : ((b * seq + t) * dirs + d) * hidden);
  };
  auto state_index = [&](int64_t d, int64_t b) {
    return static_cast<size_t>(layout == 0 ? (d * batch + b) * hidden : (b * dirs + d) * hidden);
  };
  auto x_index = [&](int64_t t, int64_t b) {
    return static_cast<size_t>(layout == 0 ? (t * batch + b) * input_size
                                           : (b * seq + t) * input_size);
  };
  auto clipped = [&](double v) { return has_clip ? std::max(-clip, std::min(clip, v)) : v; };

  const size_t H = static_cast<size_t>(hidden);
  std::vector<double> xg(static_cast<size_t>(gh));  // X W^T + Wb per gate row
  std::vector<double> hg(static_cast<size_t>(gh));  // H' R^T + Rb per gate row
  std::vector<double> h(H), c(H), h_new(H), c_new(H), rh(H);
  std::vector<float> xg_f(f32 ? static_cast<size_t>(gh) : 0), hg_f(xg_f.size());
  std::vector<float> h_f(f32 ? H : 0), v_f(h_f.size());
  for (int64_t d = 0; d < dirs; ++d) {
    const bool reverse = direction == "reverse" || d == 1;
    const Activation* act = &acts[static_cast<size_t>(d) * nacts];
    const double* w = f32 ? nullptr : W.data() + d * gh * input_size;
    const double* r = f32 ? nullptr : R.data() + d * gh * hidden;
    const float* wf = f32 ? wf_all + d * gh * input_size : nullptr;
    const float* rf = f32 ? rf_all + d * gh * hidden : nullptr;
    const double* wb = B.empty() ? nullptr : B.data() + d * 2 * gh;
    const double* rb = wb == nullptr ? nullptr : wb + gh;
    const double* p = P.empty() ? nullptr : P.data() + d * 3 * hidden;
    for (int64_t b = 0; b < batch; ++b) {
      const size_t si = state_index(d, b);
      for (size_t j = 0; j < H; ++j) {
        h[j] = H0.empty() ? 0.0 : H0[si + j];
        c[j] = C0.empty() ? 0.0 : C0[si + j];
      }
      const int64_t len = lens[static_cast<size_t>(b)];
      for (int64_t step = 0; step < len; ++step) {
        const int64_t t = reverse ? len - 1 - step : step;
        if (f32) {
          MatVecF32(wf, xf + x_index(t, b), gh, input_size, xg_f.data());
          for (size_t j = 0; j < H; ++j) h_f[j] = static_cast<float>(h[j]);
          MatVecF32(rf, h_f.data(), gh, hidden, hg_f.data());
          for (int64_t k = 0; k < gh; ++k) {
            xg[static_cast<size_t>(k)] = (wb == nullptr ? 0.0 : wb[k]) + xg_f[static_cast<size_t>(k)];
            hg[static_cast<size_t>(k)] = (rb == nullptr ? 0.0 : rb[k]) + hg_f[static_cast<size_t>(k)];
          }
        } else {
          const double* xv = X.data() + x_index(t, b);
          for (int64_t k = 0; k < gh; ++k) {
            double sx = wb == nullptr ? 0.0 : wb[k];
            for (int64_t i = 0; i < input_size; ++i) sx += w[k * input_size + i] * xv[i];
            double sh = rb == nullptr ? 0.0 : rb[k];
            for (int64_t j = 0; j < hidden; ++j) sh += r[k * hidden + j] * h[static_cast<size_t>(j)];
            xg[static_cast<size_t>(k)] = sx;
            hg[static_cast<size_t>(k)] = sh;
          }
        }
        if (kind == CellKind::kRnn) {
          for (size_t j = 0; j < H; ++j) h_new[j] = act[0](clipped(xg[j] + hg[j]));
        } else if (kind == CellKind::kGru) {
          // Gate rows: z [0, H), r [H, 2H), h [2H, 3H).
          std::vector<double>& z = c_new;  // reuse as scratch
          for (size_t j = 0; j < H; ++j) {
            z[j] = act[0](clipped(xg[j] + hg[j]));
            rh[j] = act[0](clipped(xg[H + j] + hg[H + j]));
          }
          for (size_t j = 0; j < H; ++j) {
            double pre;
            if (linear_before_reset) {
              pre = xg[2 * H + j] + rh[j] * hg[2 * H + j];
            } else {
              double s = rb == nullptr ? 0.0 : rb[2 * H + j];
              if (f32) {
                if (j == 0) {
                  for (size_t k = 0; k < H; ++k) v_f[k] = static_cast<float>(rh[k] * h[k]);
                }
                float dot = 0;
                MatVecF32(rf + (2 * H + j) * H, v_f.data(), 1, hidden, &dot);
                s += dot;
              } else {
                const double* rrow = r + (2 * H + j) * H;
                for (size_t k = 0; k < H; ++k) s += rrow[k] * rh[k] * h[k];
              }
              pre = xg[2 * H + j] + s;
            }
            const double hh = act[1](clipped(pre));
            h_new[j] = (1 - z[j]) * hh + z[j] * h[j];
          }
        } else {
          // Gate rows: i [0, H), o [H, 2H), f [2H, 3H), c [3H, 4H).
          for (size_t j = 0; j < H; ++j) {
            const double pi = p == nullptr ? 0.0 : p[j];
            const double po = p == nullptr ? 0.0 : p[H + j];
            const double pf = p == nullptr ? 0.0 : p[2 * H + j];
            const double ig = act[0](clipped(xg[j] + hg[j] + pi * c[j]));
            const double fg = input_forget
                                  ? 1.0 - ig
                                  : act[0](clipped(xg[2 * H + j] + hg[2 * H + j] + pf * c[j]));
            const double cg = act[1](clipped(xg[3 * H + j] + hg[3 * H + j]));
            c_new[j] = fg * c[j] + ig * cg;
            const double og = act[0](clipped(xg[H + j] + hg[H + j] + po * c_new[j]));
            h_new[j] = og * act[2](c_new[j]);
          }
          c = c_new;
        }
        h = h_new;
        std::copy(h.begin(), h.end(), Y.begin() + static_cast<std::ptrdiff_t>(y_index(t, d, b)));
      }
      std::copy(h.begin(), h.end(), YH.begin() + static_cast<std::ptrdiff_t>(si));
      std::copy(c.begin(), c.end(), YC.begin() + static_cast<std::ptrdiff_t>(si));
    }
  }

  const Shape y_shape =
      layout == 0 ? Shape{seq, dirs, batch, hidden} : Shape{batch, seq, dirs, hidden};
  if (ctx.num_outputs() > 0 && ctx.output_used(0)) {
    KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.output(0, type, y_shape));
    KILN_RETURN_IF_ERROR(StoreDoubles(y, Y));
  }
  if (ctx.num_outputs() > 1 && ctx.output_used(1)) {
    KILN_ASSIGN_OR_RETURN(Tensor * yh, ctx.output(1, type, state_shape));
    KILN_RETURN_IF_ERROR(StoreDoubles(yh, YH));
  }
  if (kind == CellKind::kLstm && ctx.num_outputs() > 2 && ctx.output_used(2)) {
    KILN_ASSIGN_OR_RETURN(Tensor * yc, ctx.output(2, type, state_shape));
    KILN_RETURN_IF_ERROR(StoreDoubles(yc, YC));
  }
  return Status::Ok();
}

Status Rnn(KernelContext& ctx) { return RunRecurrent(ctx, CellKind::kRnn); }
Status Gru(KernelContext& ctx) { return RunRecurrent(ctx, CellKind::kGru); }
Status Lstm(KernelContext& ctx) { return RunRecurrent(ctx, CellKind::kLstm); }

constexpr KernelDef kKernels[] = {
    {"RNN", "", Rnn},
    {"GRU", "", Gru},
    {"LSTM", "", Lstm},
};

}  // namespace

std::span<const KernelDef> RnnKernels() { return kKernels; }

}  // namespace kiln
