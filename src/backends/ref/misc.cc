// Reference kernels for the misc op family: the table. The kernels live in misc_*.cc.
#include "backends/ref/misc_internal.h"

namespace kiln {

namespace {
using namespace misc_ref;  // NOLINT: the table names every kernel of this family

constexpr KernelDef kKernels[] = {
    {"SoftmaxCrossEntropyLoss", "", SoftmaxCrossEntropyLoss},
    {"NegativeLogLikelihoodLoss", "", NegativeLogLikelihoodLoss},
    {"NonMaxSuppression", "", NonMaxSuppression},
    {"RoiAlign", "", RoiAlign},
    {"MaxRoiPool", "", MaxRoiPool},
    {"GridSample", "", GridSample},
    {"DFT", "", DFT},
    {"STFT", "", STFT},
    {"HannWindow", "", HannWindow},
    {"HammingWindow", "", HammingWindow},
    {"BlackmanWindow", "", BlackmanWindow},
    {"MelWeightMatrix", "", MelWeightMatrix},
    {"Det", "", Det},
    {"StringNormalizer", "", StringNormalizer},
    {"TfIdfVectorizer", "", TfIdfVectorizer},
    {"Bernoulli", "", Bernoulli},
    {"RandomUniform", "", RandomUniform},
    {"RandomNormal", "", RandomNormal},
    {"RandomUniformLike", "", RandomUniformLike},
    {"RandomNormalLike", "", RandomNormalLike},
};
}  // namespace

std::span<const KernelDef> MiscKernels() { return kKernels; }

}  // namespace kiln
