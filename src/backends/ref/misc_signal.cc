// Reference kernels for the signal-processing ops (opset 17): DFT, STFT, HannWindow,
// HammingWindow, BlackmanWindow, MelWeightMatrix.
//
// Math: direct O(N^2) discrete Fourier transforms in double, X[k] = sum_n x[n] e^(-2 pi i k n / N)
// (the inverse uses +i and divides by N), with twiddle angles reduced modulo N for accuracy.
// Windows are the generalized cosine windows w[n] = a0 - a1 cos(2 pi n / D) + a2 cos(4 pi n / D)
// with D = N (periodic) or N - 1 (symmetric).
#include <algorithm>
#include <cmath>
#include <complex>
#include <string>
#include <vector>

#include "backends/ref/misc_internal.h"

namespace kiln::misc_ref {

namespace {

constexpr double kPi = 3.14159265358979323846;

// out[k] for k < n_out of the length-n DFT of in (zero-padded / truncated to n).
void Dft(const std::vector<std::complex<double>>& in, int64_t n, int64_t n_out, bool inverse,
         std::vector<std::complex<double>>& out) {
  out.assign(static_cast<size_t>(n_out), {0.0, 0.0});
  const double sign = inverse ? 1.0 : -1.0;
  const int64_t m = std::min<int64_t>(n, static_cast<int64_t>(in.size()));
  for (int64_t k = 0; k < n_out; ++k) {
    std::complex<double> acc(0, 0);
    for (int64_t j = 0; j < m; ++j) {
      const double angle =
          sign * 2.0 * kPi * static_cast<double>((k * j) % n) / static_cast<double>(n);
      acc += in[static_cast<size_t>(j)] * std::complex<double>(std::cos(angle), std::sin(angle));
    }
    out[static_cast<size_t>(k)] = inverse ? acc / static_cast<double>(n) : acc;
  }
}

void StoreDoubles(Tensor* t, const std::vector<double>& v) {
  Dispatch<kAllNumeric>(t->type(), [&](auto tag) {
    using T = decltype(tag);
    for (size_t i = 0; i < v.size(); ++i) {
      if constexpr (std::is_integral_v<T>) {
        t->data<T>()[i] = std::isfinite(v[i]) ? static_cast<T>(v[i]) : T(0);
      } else {
        t->data<T>()[i] = static_cast<T>(v[i]);
      }
    }
  });
}

Result<int64_t> ScalarInt(const KernelContext& ctx, size_t i, const char* what) {
  const Tensor* t = ctx.input(i);
  if (t == nullptr || t->size() != 1 || !IsInteger(t->type())) {
    return ctx.Error(std::string(what) + " must be an integer scalar");
  }
  return t->GetAsInt64(0);
}

Status RunWindow(KernelContext& ctx, double a0, double a1, double a2) {
  KILN_ASSIGN_OR_RETURN(int64_t n, ScalarInt(ctx, 0, "size"));
  if (n < 0) return ctx.Error("size must be non-negative, found " + std::to_string(n));
  const ElementType t =
      ElementTypeFromOnnx(static_cast<int>(ctx.attrs().GetInt("output_datatype", 1)));
  if (!IsFloating(t) && !IsInteger(t)) return ctx.Error("output_datatype is not a numeric type");
  const bool periodic = ctx.attrs().GetInt("periodic", 1) != 0;
  const int64_t d = periodic ? n : n - 1;
  std::vector<double> w(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const double x = d > 0 ? 2.0 * kPi * static_cast<double>(i) / static_cast<double>(d) : 0.0;
    w[static_cast<size_t>(i)] = a0 - a1 * std::cos(x) + a2 * std::cos(2 * x);
  }
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.output(0, t, {n}));
  StoreDoubles(y, w);
  return Status::Ok();
}

}  // namespace

Status DFT(KernelContext& ctx) {
  const Tensor* x = ctx.input(0);
  if (x == nullptr) return ctx.Error("missing input");
  if (!IsFloating(x->type())) return ctx.UnsupportedType(x->type());
  const int rank = x->rank();
  if (rank < 2 || (x->shape().back() != 1 && x->shape().back() != 2)) {
    return ctx.Error("input must be [..., 1] (real) or [..., 2] (complex), found " + x->Describe());
  }
  // DFT-17 takes axis as an attribute (default 1); DFT-20 as the optional scalar input 2
  // (default -2).
  int64_t axis = ctx.attrs().GetInt("axis", 1);
  if (ctx.opset() >= 20) {
    axis = -2;
    if (ctx.input(2) != nullptr) {
      KILN_ASSIGN_OR_RETURN(axis, ScalarInt(ctx, 2, "axis"));
    }
  }
  const int64_t axis_given = axis;
  if (axis < 0) axis += rank;
  if (axis < 0 || axis > rank - 2) {
    return ctx.Error("axis " + std::to_string(axis_given) + " is out of range for input rank " +
                     std::to_string(rank));
  }
  const bool inverse = ctx.attrs().GetInt("inverse", 0) != 0;
  const bool onesided = ctx.attrs().GetInt("onesided", 0) != 0;
  const int64_t n_in = x->dim(static_cast<int>(axis));
  int64_t n = n_in;
  if (ctx.input(1) != nullptr) {
    KILN_ASSIGN_OR_RETURN(n, ScalarInt(ctx, 1, "dft_length"));
    if (n <= 0) return ctx.Error("dft_length must be positive, found " + std::to_string(n));
  }
  const int64_t n_out = onesided ? n / 2 + 1 : n;
  const int64_t comp = x->shape().back();
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < axis; ++i) outer *= x->dim(i);
  for (int i = static_cast<int>(axis) + 1; i < rank - 1; ++i) inner *= x->dim(i);
  Shape out_shape = x->shape();
  out_shape[static_cast<size_t>(axis)] = n_out;
  out_shape.back() = 2;
  std::vector<double> out(static_cast<size_t>(outer * n_out * inner * 2));
  std::vector<std::complex<double>> line(static_cast<size_t>(n_in)), res;
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t i = 0; i < inner; ++i) {
      for (int64_t j = 0; j < n_in; ++j) {
        const int64_t base = ((o * n_in + j) * inner + i) * comp;
        line[static_cast<size_t>(j)] = {x->GetAsDouble(base),
                                        comp == 2 ? x->GetAsDouble(base + 1) : 0.0};
      }
      Dft(line, n, n_out, inverse, res);
      for (int64_t k = 0; k < n_out; ++k) {
        const size_t base = static_cast<size_t>(((o * n_out + k) * inner + i) * 2);
        out[base] = res[static_cast<size_t>(k)].real();
        out[base + 1] = res[static_cast<size_t>(k)].imag();
      }
    }
  }
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.output(0, x->type(), out_shape));
  StoreDoubles(y, out);
  return Status::Ok();
}

Status STFT(KernelContext& ctx) {
  const Tensor* sig = ctx.input(0);
  const Tensor* window = ctx.input(2);
  if (sig == nullptr) return ctx.Error("missing input signal");
  if (!IsFloating(sig->type())) return ctx.UnsupportedType(sig->type());
  if (sig->rank() != 3 || (sig->dim(2) != 1 && sig->dim(2) != 2)) {
    return ctx.Error("signal must be [batch, length, 1 or 2], found " + sig->Describe());
  }
  KILN_ASSIGN_OR_RETURN(int64_t step, ScalarInt(ctx, 1, "frame_step"));
  if (step <= 0) return ctx.Error("frame_step must be positive");
  if (window != nullptr && window->rank() != 1)
    return ctx.Error("window must be 1-D, found " + window->Describe());
  int64_t fl = 0;
  if (ctx.input(3) != nullptr) {
    KILN_ASSIGN_OR_RETURN(fl, ScalarInt(ctx, 3, "frame_length"));
    if (window != nullptr && window->dim(0) != fl) {
      return ctx.Error("window length " + std::to_string(window->dim(0)) +
                       " differs from frame_length " + std::to_string(fl));
    }
  } else if (window != nullptr) {
    fl = window->dim(0);
  } else {
    return ctx.Error("one of window and frame_length is required");
  }
  const int64_t batch = sig->dim(0), len = sig->dim(1), comp = sig->dim(2);
  if (fl <= 0 || fl > len) {
    return ctx.Error("frame_length " + std::to_string(fl) + " must be in [1, " +
                     std::to_string(len) + "]");
  }
  const bool onesided = ctx.attrs().GetInt("onesided", 1) != 0;
  const int64_t bins = onesided ? fl / 2 + 1 : fl;
  const int64_t frames = (len - fl) / step + 1;
  std::vector<double> out(static_cast<size_t>(batch * frames * bins * 2));
  std::vector<std::complex<double>> frame(static_cast<size_t>(fl)), res;
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t f = 0; f < frames; ++f) {
      for (int64_t j = 0; j < fl; ++j) {
        const int64_t base = (b * len + f * step + j) * comp;
        const double wv = window != nullptr ? window->GetAsDouble(j) : 1.0;
        frame[static_cast<size_t>(j)] = {sig->GetAsDouble(base) * wv,
                                         comp == 2 ? sig->GetAsDouble(base + 1) * wv : 0.0};
      }
      Dft(frame, fl, bins, false, res);
      for (int64_t k = 0; k < bins; ++k) {
        const size_t base = static_cast<size_t>(((b * frames + f) * bins + k) * 2);
        out[base] = res[static_cast<size_t>(k)].real();
        out[base + 1] = res[static_cast<size_t>(k)].imag();
      }
    }
  }
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.output(0, sig->type(), {batch, frames, bins, 2}));
  StoreDoubles(y, out);
  return Status::Ok();
}

Status HannWindow(KernelContext& ctx) { return RunWindow(ctx, 0.5, 0.5, 0.0); }
Status HammingWindow(KernelContext& ctx) { return RunWindow(ctx, 25.0 / 46.0, 21.0 / 46.0, 0.0); }
Status BlackmanWindow(KernelContext& ctx) { return RunWindow(ctx, 0.42, 0.5, 0.08); }

Status MelWeightMatrix(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(int64_t mel_bins, ScalarInt(ctx, 0, "num_mel_bins"));
  KILN_ASSIGN_OR_RETURN(int64_t dft_length, ScalarInt(ctx, 1, "dft_length"));
  KILN_ASSIGN_OR_RETURN(int64_t sample_rate, ScalarInt(ctx, 2, "sample_rate"));
  for (size_t i : {3, 4}) {
    if (ctx.input(i) == nullptr || ctx.input(i)->size() != 1) {
      return ctx.Error("lower_edge_hertz and upper_edge_hertz must be scalars");
    }
  }
  const double lower = ctx.input(3)->GetAsDouble(0);
  const double upper = ctx.input(4)->GetAsDouble(0);
  if (!std::isfinite(lower) || !std::isfinite(upper) || lower < 0 || upper < lower) {
    return ctx.Error("edge frequencies must be finite with 0 <= lower <= upper");
  }
  if (mel_bins <= 0 || dft_length <= 0 || sample_rate <= 0) {
    return ctx.Error("num_mel_bins, dft_length and sample_rate must be positive");
  }
  const ElementType t =
      ElementTypeFromOnnx(static_cast<int>(ctx.attrs().GetInt("output_datatype", 1)));
  if (!IsFloating(t) && !IsInteger(t)) return ctx.Error("output_datatype is not a numeric type");
  const int64_t spec_bins = dft_length / 2 + 1;
  // Mel points spaced evenly between the edges, mapped back to Hz and then to DFT bins.
  const double low_mel = 2595.0 * std::log10(1.0 + lower / 700.0);
  const double high_mel = 2595.0 * std::log10(1.0 + upper / 700.0);
  const double step = (high_mel - low_mel) / static_cast<double>(mel_bins + 2);
  std::vector<int64_t> bin(static_cast<size_t>(mel_bins + 2));
  for (int64_t i = 0; i < mel_bins + 2; ++i) {
    const double hz =
        700.0 * (std::pow(10.0, (static_cast<double>(i) * step + low_mel) / 2595.0) - 1.0);
    bin[static_cast<size_t>(i)] = static_cast<int64_t>(
        std::floor(static_cast<double>(dft_length + 1) * hz / static_cast<double>(sample_rate)));
  }
  std::vector<double> out(static_cast<size_t>(spec_bins * mel_bins), 0.0);
  auto set = [&](int64_t row, int64_t col, double v) {
    if (row >= 0 && row < spec_bins) out[static_cast<size_t>(row * mel_bins + col)] = v;
  };
  for (int64_t i = 0; i < mel_bins; ++i) {
    const int64_t lo = bin[static_cast<size_t>(i)];
    const int64_t center = bin[static_cast<size_t>(i + 1)];
    const int64_t hi = bin[static_cast<size_t>(i + 2)];
    if (center == lo) {
      set(center, i, 1.0);
    } else {
      for (int64_t j = std::max<int64_t>(lo, 0); j <= std::min(center, spec_bins - 1); ++j) {
        set(j, i, static_cast<double>(j - lo) / static_cast<double>(center - lo));
      }
    }
    if (hi > center) {
      for (int64_t j = std::max<int64_t>(center, 0); j < std::min(hi, spec_bins); ++j) {
        set(j, i, static_cast<double>(hi - j) / static_cast<double>(hi - center));
      }
    }
  }
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.output(0, t, {spec_bins, mel_bins}));
  StoreDoubles(y, out);
  return Status::Ok();
}

}  // namespace kiln::misc_ref
