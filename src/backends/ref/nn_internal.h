// Private interface between the files of the reference nn kernel family (nn*.cc).
//
// nn_gemm.cc holds the one fast f32 matrix multiply (packed, cache-blocked, register-tiled,
// float accumulation) that Conv, ConvTranspose, Gemm and MatMul share; the other files hold the
// kernels, and nn.cc gathers them into NnKernels(). Everything else in the family is written
// once as a template over the element type, accumulating in double (float for f16/bf16 is not
// needed: double is exact enough and cheap on these paths).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "backends/ref/kernel.h"

namespace kiln::nn {

// ---- element conversions for templated kernels -------------------------------------------
template <typename T>
inline double ToD(T v) {
  return static_cast<double>(static_cast<float>(v));
}
inline double ToD(double v) { return v; }
inline double ToD(float v) { return v; }
template <typename T>
inline T FromD(double v) {
  return static_cast<T>(static_cast<float>(v));
}
template <>
inline double FromD<double>(double v) {
  return v;
}

// f16/bf16 tensors run the fast f32 paths: widen once, compute with float accumulation, round
// on store.
inline std::vector<float> WidenToF32(const Tensor& t) {
  std::vector<float> v(static_cast<size_t>(t.size()));
  if (t.type() == ElementType::kF16) {
    for (int64_t i = 0; i < t.size(); ++i) v[i] = t.data<Half>()[i];
  } else if (t.type() == ElementType::kBF16) {
    for (int64_t i = 0; i < t.size(); ++i) v[i] = t.data<BFloat16>()[i];
  } else {
    for (int64_t i = 0; i < t.size(); ++i) v[i] = static_cast<float>(t.GetAsDouble(i));
  }
  return v;
}
inline void NarrowFromF32(const std::vector<float>& v, Tensor* t) {
  if (t->type() == ElementType::kF16) {
    for (int64_t i = 0; i < t->size(); ++i) t->data<Half>()[i] = Half(v[i]);
  } else if (t->type() == ElementType::kBF16) {
    for (int64_t i = 0; i < t->size(); ++i) t->data<BFloat16>()[i] = BFloat16(v[i]);
  }
}

// ---- small f32 vector helpers ----------------------------------------------------------------
// GCC's -O2 only vectorises loops whose trip count needs no epilogue, so hot row loops use
// vector extensions explicitly (AVX2 under -mavx2, SSE pairs otherwise).
typedef float V8f __attribute__((vector_size(32), aligned(4)));

// y[i] += a * x[i] for i in [0, n).
inline void AxpyF32(float* y, const float* x, float a, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    *reinterpret_cast<V8f*>(y + i) += *reinterpret_cast<const V8f*>(x + i) * a;
  }
  for (; i < n; ++i) y[i] += a * x[i];
}

// ---- f32 GEMM -----------------------------------------------------------------------------
// C[M,N] = alpha * op(A)[M,K] * B[K,N] + beta * C, float accumulation. B is produced block by
// block by a packer, so that convolutions can gather im2col columns straight into the packed
// layout without materialising the whole column matrix.
class BPacker {
 public:
  virtual ~BPacker() = default;
  // Writes B[k0:k0+kc, n0:n0+nc] to dst as ceil(nc/kGemmNr) strips, each kc rows of kGemmNr
  // floats (strip s holds columns n0+s*kGemmNr ...); columns past nc are written as zeros.
  virtual void Pack(int64_t k0, int64_t kc, int64_t n0, int64_t nc, float* dst) const = 0;
};
inline constexpr int64_t kGemmNr = 16;
inline constexpr int64_t kGemmMr = 6;

// B as a plain matrix: element (k, n) at b[k*ldb + n], or at b[n*ldb + k] when trans.
class MatrixBPacker final : public BPacker {
 public:
  MatrixBPacker(const float* b, int64_t ldb, bool trans) : b_(b), ldb_(ldb), trans_(trans) {}
  void Pack(int64_t k0, int64_t kc, int64_t n0, int64_t nc, float* dst) const override;

 private:
  const float* b_;
  int64_t ldb_;
  bool trans_;
};

// A: element (m, k) at a[m*lda + k], or at a[k*lda + m] when trans_a.
// C rows are ldc apart. beta == 0 ignores (and overwrites) whatever C holds.
// pool may be null; Sgemm may parallelise over tiles of C with it.
void Sgemm(bool trans_a, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
           const BPacker& b, float beta, float* c, int64_t ldc, ThreadPool* pool);
// Convenience for plain matrices.
void SgemmPlain(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
                int64_t ldc, ThreadPool* pool);

// Runs fn(begin, end) over [0, n) on the pool, or inline when the pool is null or n is small.
void ParallelRange(ThreadPool* pool, int64_t n, int64_t grain,
                   const std::function<void(int64_t, int64_t)>& fn);

// ---- convolution / pooling geometry -------------------------------------------------------
struct ConvGeometry {
  int nd = 0;  // number of spatial dims
  std::vector<int64_t> in, out, kernel, stride, dilation, pad_begin, pad_end;
};
// Reads kernel_shape (or `kernel` when given), strides, dilations, pads, auto_pad and (pools)
// ceil_mode from the node and computes the output size for spatial input dims `in`.
Status ComputeConvGeometry(const KernelContext& ctx, const std::vector<int64_t>& in,
                           const std::vector<int64_t>& kernel, bool use_ceil_mode, ConvGeometry* g);

// ---- kernels (one function per op) --------------------------------------------------------
Status ConvKernel(KernelContext& ctx);
Status ConvTransposeKernel(KernelContext& ctx);
Status MaxPoolKernel(KernelContext& ctx);
Status AveragePoolKernel(KernelContext& ctx);
Status LpPoolKernel(KernelContext& ctx);
Status GlobalAveragePoolKernel(KernelContext& ctx);
Status GlobalMaxPoolKernel(KernelContext& ctx);
Status GlobalLpPoolKernel(KernelContext& ctx);
Status MaxUnpoolKernel(KernelContext& ctx);
Status Col2ImKernel(KernelContext& ctx);  // nn_col2im.cc
Status BatchNormalizationKernel(KernelContext& ctx);
Status InstanceNormalizationKernel(KernelContext& ctx);
Status LayerNormalizationKernel(KernelContext& ctx);
Status LrnKernel(KernelContext& ctx);
Status MeanVarianceNormalizationKernel(KernelContext& ctx);
Status GemmKernel(KernelContext& ctx);
Status MatMulKernel(KernelContext& ctx);
Status EinsumKernel(KernelContext& ctx);
Status SoftmaxKernel(KernelContext& ctx);
Status LogSoftmaxKernel(KernelContext& ctx);
Status HardmaxKernel(KernelContext& ctx);
Status DropoutKernel(KernelContext& ctx);
Status ResizeKernel(KernelContext& ctx);
Status UpsampleKernel(KernelContext& ctx);

// Every element of a tensor of any numeric type, as double (nn_norm.cc).
std::vector<double> AsDoubles(const Tensor& t);
// Allocates output `index` with the given float type and shape and writes `values` to it.
Status WriteDoubles(KernelContext& ctx, size_t index, ElementType type, const Shape& shape,
                    const std::vector<double>& values);

}  // namespace kiln::nn
