// Reference kernels for the nn op family: the table. The kernels live in nn_*.cc (see
// nn_internal.h for how the family is split).
#include "backends/ref/nn_internal.h"

namespace kiln {

namespace {
constexpr KernelDef kKernels[] = {
    {"Conv", "", nn::ConvKernel},
    {"ConvTranspose", "", nn::ConvTransposeKernel},
    {"MaxPool", "", nn::MaxPoolKernel},
    {"AveragePool", "", nn::AveragePoolKernel},
    {"LpPool", "", nn::LpPoolKernel},
    {"GlobalAveragePool", "", nn::GlobalAveragePoolKernel},
    {"GlobalMaxPool", "", nn::GlobalMaxPoolKernel},
    {"GlobalLpPool", "", nn::GlobalLpPoolKernel},
    {"MaxUnpool", "", nn::MaxUnpoolKernel},
    {"Col2Im", "", nn::Col2ImKernel},
    {"BatchNormalization", "", nn::BatchNormalizationKernel},
    {"InstanceNormalization", "", nn::InstanceNormalizationKernel},
    {"LayerNormalization", "", nn::LayerNormalizationKernel},
    {"LRN", "", nn::LrnKernel},
    {"MeanVarianceNormalization", "", nn::MeanVarianceNormalizationKernel},
    {"Gemm", "", nn::GemmKernel},
    {"MatMul", "", nn::MatMulKernel},
    {"Einsum", "", nn::EinsumKernel},
    {"Softmax", "", nn::SoftmaxKernel},
    {"LogSoftmax", "", nn::LogSoftmaxKernel},
    {"Hardmax", "", nn::HardmaxKernel},
    {"Dropout", "", nn::DropoutKernel},
    {"Resize", "", nn::ResizeKernel},
    {"Upsample", "", nn::UpsampleKernel},
};
}  // namespace

std::span<const KernelDef> NnKernels() { return kKernels; }

}  // namespace kiln
