// Private declarations of the reference misc-family kernels, split over misc_*.cc by concern:
// losses (misc_loss.cc), signal processing (misc_signal.cc), detection and sampling
// (misc_vision.cc), and the rest (misc_other.cc: Det, text ops, random generators).
// misc.cc gathers them into the one table MiscKernels() returns.
#pragma once

#include "backends/ref/kernel.h"

namespace kiln::misc_ref {

// misc_loss.cc
Status SoftmaxCrossEntropyLoss(KernelContext& ctx);
Status NegativeLogLikelihoodLoss(KernelContext& ctx);

// misc_vision.cc
Status NonMaxSuppression(KernelContext& ctx);
Status RoiAlign(KernelContext& ctx);
Status MaxRoiPool(KernelContext& ctx);
Status GridSample(KernelContext& ctx);

// misc_signal.cc
Status DFT(KernelContext& ctx);
Status STFT(KernelContext& ctx);
Status HannWindow(KernelContext& ctx);
Status HammingWindow(KernelContext& ctx);
Status BlackmanWindow(KernelContext& ctx);
Status MelWeightMatrix(KernelContext& ctx);

// misc_other.cc
Status Det(KernelContext& ctx);
Status StringNormalizer(KernelContext& ctx);
Status TfIdfVectorizer(KernelContext& ctx);
Status Bernoulli(KernelContext& ctx);
Status RandomUniform(KernelContext& ctx);
Status RandomNormal(KernelContext& ctx);
Status RandomUniformLike(KernelContext& ctx);
Status RandomNormalLike(KernelContext& ctx);

}  // namespace kiln::misc_ref
