// Tests of the reference misc-family kernels (losses, detection, sampling, signal, text, Det)
// against hand-computed values.
#include <gtest/gtest.h>

#include <cmath>

#include "backends/ref/eager.h"
#include "ir/op_schema.h"

namespace kiln {
namespace {

Tensor F32(std::vector<float> v, Shape s) { return Tensor::FromVector(v, std::move(s)); }

std::vector<double> Values(const Tensor& t) {
  std::vector<double> v;
  for (int64_t i = 0; i < t.size(); ++i) v.push_back(t.GetAsDouble(i));
  return v;
}

void ExpectNear(const std::vector<double>& got, const std::vector<double>& want, double tol) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], tol) << "at " << i;
}

TEST(RefLoss, NllWithWeightsAndIgnoreIndex) {
  // x [N=3, C=2]; targets 0, 1, 1 with the last one ignored; weights [2, 3].
  const Tensor x = F32({-1, -2, -3, -4, -5, -6}, {3, 2});
  const Tensor t = Tensor::FromVector<int64_t>({0, 1, 1}, {3});
  const Tensor w = F32({2, 3}, {2});
  Attributes none;
  none.Add(Attribute::String("reduction", "none"));
  none.Add(Attribute::Int("ignore_index", 1));
  auto r = RunOpEager("NegativeLogLikelihoodLoss", 13,
                      {x, Tensor::FromVector<int64_t>({0, 0, 1}, {3}), w}, 1, none);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ExpectNear(Values((*r)[0]), {2, 6, 0}, 1e-6);
  Attributes mean;
  auto m = RunOpEager("NegativeLogLikelihoodLoss", 13, {x, t, w}, 1, mean);
  ASSERT_TRUE(m.ok());
  // (2*1 + 3*4 + 3*6) / (2 + 3 + 3)
  ExpectNear(Values((*m)[0]), {32.0 / 8.0}, 1e-6);
  // A label outside [0, C) that is not ignored is an error.
  EXPECT_FALSE(RunOpEager("NegativeLogLikelihoodLoss", 13,
                          {x, Tensor::FromVector<int64_t>({0, 2, 1}, {3})}, 1)
                   .ok());
}

TEST(RefLoss, SoftmaxCrossEntropyOfUniformScoresIsLogC) {
  const Tensor x = F32({7, 7, 7, 7, 1, 1, 1, 1}, {2, 4});
  const Tensor t = Tensor::FromVector<int32_t>({3, 0}, {2});
  Attributes sum;
  sum.Add(Attribute::String("reduction", "sum"));
  auto r = RunOpEager("SoftmaxCrossEntropyLoss", 13, {x, t}, 2, sum);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ExpectNear(Values((*r)[0]), {2 * std::log(4.0)}, 1e-5);
  EXPECT_EQ((*r)[1].shape(), (Shape{2, 4}));
  ExpectNear(Values((*r)[1]), std::vector<double>(8, -std::log(4.0)), 1e-5);
}

TEST(RefVision, NonMaxSuppressionSuppressesOverlaps) {
  // Boxes 0 and 1 overlap with IoU 0.81; box 2 is apart. Scores favour box 1.
  const Tensor boxes = F32({0, 0, 10, 10, 1, 1, 10, 10, 20, 20, 30, 30}, {1, 3, 4});
  const Tensor scores = F32({0.5f, 0.9f, 0.3f}, {1, 1, 3});
  const Tensor max_out = Tensor::FromVector<int64_t>({5}, {1});
  const Tensor iou = F32({0.5f}, {1});
  const Tensor thresh = F32({0.4f}, {1});
  auto r = RunOpEager("NonMaxSuppression", 11, {boxes, scores, max_out, iou}, 1);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)[0].shape(), (Shape{2, 3}));
  ExpectNear(Values((*r)[0]), {0, 0, 1, 0, 0, 2}, 0);
  auto s = RunOpEager("NonMaxSuppression", 11, {boxes, scores, max_out, iou, thresh}, 1);
  ASSERT_TRUE(s.ok());
  ExpectNear(Values((*s)[0]), {0, 0, 1}, 0);
}

TEST(RefVision, RoiAlignOfConstantImageIsConstant) {
  const Tensor x = F32(std::vector<float>(16, 3.0f), {1, 1, 4, 4});
  const Tensor rois = F32({0.5f, 0.5f, 2.5f, 2.5f}, {1, 4});
  const Tensor idx = Tensor::FromVector<int64_t>({0}, {1});
  Attributes attrs;
  attrs.Add(Attribute::Int("output_height", 2));
  attrs.Add(Attribute::Int("output_width", 2));
  auto r = RunOpEager("RoiAlign", 16, {x, rois, idx}, 1, attrs);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)[0].shape(), (Shape{1, 1, 2, 2}));
  ExpectNear(Values((*r)[0]), {3, 3, 3, 3}, 1e-6);
}

TEST(RefVision, GridSampleIdentityGridWithAlignedCorners) {
  const Tensor x = F32({1, 2, 3, 4, 5, 6}, {1, 1, 2, 3});
  // Pixel centres of a 2x3 image in normalised (x, y) with align_corners = 1.
  std::vector<float> g;
  for (float y : {-1.0f, 1.0f}) {
    for (float xx : {-1.0f, 0.0f, 1.0f}) g.insert(g.end(), {xx, y});
  }
  Attributes attrs;
  attrs.Add(Attribute::Int("align_corners", 1));
  for (const char* mode : {"bilinear", "nearest", "bicubic"}) {
    Attributes a = attrs;
    a.Add(Attribute::String("mode", mode));
    auto r = RunOpEager("GridSample", 16, {x, F32(g, {1, 2, 3, 2})}, 1, a);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ExpectNear(Values((*r)[0]), {1, 2, 3, 4, 5, 6}, 1e-5);
  }
  // Halfway between pixels 1 and 2 of the first row; outside the image reads zeros.
  auto r =
      RunOpEager("GridSample", 16, {x, F32({-0.5f, -1.0f, 5.0f, 5.0f}, {1, 1, 2, 2})}, 1, attrs);
  ASSERT_TRUE(r.ok());
  ExpectNear(Values((*r)[0]), {1.5, 0}, 1e-6);
}

TEST(RefMisc, DetOfBatchedMatrices) {
  const Tensor x = F32({1, 2, 3, 4, 2, 0, 0, 3}, {2, 2, 2});
  auto r = RunOpEager("Det", 11, {x}, 1);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)[0].shape(), (Shape{2}));
  ExpectNear(Values((*r)[0]), {-2, 6}, 1e-6);
  const Tensor m3 = F32({0, 2, 1, 3, 1, 0, 1, 1, 1}, {3, 3});  // needs pivoting
  auto d3 = RunOpEager("Det", 11, {m3}, 1);
  ASSERT_TRUE(d3.ok());
  ExpectNear(Values((*d3)[0]), {0 * (1 - 0) - 2 * (3 - 0) + 1 * (3 - 1)}, 1e-6);
}

TEST(RefSignal, DftOfRealSignalAndInverse) {
  const Tensor x = F32({1, 2, 3, 4}, {1, 4, 1});
  auto r = RunOpEager("DFT", 17, {x}, 1);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)[0].shape(), (Shape{1, 4, 2}));
  ExpectNear(Values((*r)[0]), {10, 0, -2, 2, -2, 0, -2, -2}, 1e-5);
  Attributes inv;
  inv.Add(Attribute::Int("inverse", 1));
  auto back = RunOpEager("DFT", 17, {(*r)[0]}, 1, inv);
  ASSERT_TRUE(back.ok());
  ExpectNear(Values((*back)[0]), {1, 0, 2, 0, 3, 0, 4, 0}, 1e-5);
  Attributes one;
  one.Add(Attribute::Int("onesided", 1));
  auto half = RunOpEager("DFT", 17, {x}, 1, one);
  ASSERT_TRUE(half.ok());
  EXPECT_EQ((*half)[0].shape(), (Shape{1, 3, 2}));
}

TEST(RefSignal, StftOfConstantSignalHasOnlyDc) {
  const Tensor sig = F32(std::vector<float>(10, 1.0f), {1, 10, 1});
  const Tensor step = Tensor::FromVector<int64_t>({2}, {});
  const Tensor len = Tensor::FromVector<int64_t>({4}, {});
  auto r = RunOpEager("STFT", 17, {sig, step, Tensor(), len}, 1);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)[0].shape(), (Shape{1, 4, 3, 2}));
  const auto v = Values((*r)[0]);
  for (int f = 0; f < 4; ++f) {
    EXPECT_NEAR(v[f * 6 + 0], 4, 1e-6);
    for (int k = 1; k < 6; ++k) EXPECT_NEAR(v[f * 6 + k], 0, 1e-6);
  }
}

TEST(RefSignal, Windows) {
  const Tensor n = Tensor::FromVector<int64_t>({4}, {});
  auto hann = RunOpEager("HannWindow", 17, {n}, 1);
  ASSERT_TRUE(hann.ok());
  ExpectNear(Values((*hann)[0]), {0, 0.5, 1, 0.5}, 1e-6);
  Attributes sym;
  sym.Add(Attribute::Int("periodic", 0));
  auto blackman = RunOpEager("BlackmanWindow", 17, {Tensor::FromVector<int64_t>({3}, {})}, 1, sym);
  ASSERT_TRUE(blackman.ok());
  ExpectNear(Values((*blackman)[0]), {0, 1, 0}, 1e-6);
}

TEST(RefText, StringNormalizerRemovesStopwordsCaseInsensitively) {
  Tensor x = Tensor::Allocate(ElementType::kString, {1, 3}).value();
  x.data<std::string>()[0] = "Monday";
  x.data<std::string>()[1] = "is";
  x.data<std::string>()[2] = "fine";
  Attributes attrs;
  attrs.Add(Attribute::Strings("stopwords", {"monday"}));
  attrs.Add(Attribute::String("case_change_action", "UPPER"));
  auto r = RunOpEager("StringNormalizer", 10, {x}, 1, attrs);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)[0].shape(), (Shape{1, 2}));
  EXPECT_EQ((*r)[0].data<std::string>()[0], "IS");
  EXPECT_EQ((*r)[0].data<std::string>()[1], "FINE");
}

TEST(RefText, TfIdfCountsUnigramsAndSkipBigrams) {
  // Pool: unigrams {1, 2}, bigram {(1, 3)}; outputs at indexes 0, 1, 2.
  Attributes attrs;
  attrs.Add(Attribute::Int("min_gram_length", 1));
  attrs.Add(Attribute::Int("max_gram_length", 2));
  attrs.Add(Attribute::Int("max_skip_count", 1));
  attrs.Add(Attribute::String("mode", "TF"));
  attrs.Add(Attribute::Ints("ngram_counts", {0, 2}));
  attrs.Add(Attribute::Ints("ngram_indexes", {0, 1, 2}));
  attrs.Add(Attribute::Ints("pool_int64s", {1, 2, 1, 3}));
  // Sequence 1 2 3 1 3: unigram 1 twice, 2 once; bigram (1,3) at skip 1 (1 _ 3) and skip 0 (1 3).
  auto r = RunOpEager("TfIdfVectorizer", 9, {Tensor::FromVector<int32_t>({1, 2, 3, 1, 3}, {5})}, 1,
                      attrs);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ExpectNear(Values((*r)[0]), {2, 1, 2}, 0);
}

TEST(MiscInference, LossAndDftShapes) {
  Node n;
  n.op_type = "SoftmaxCrossEntropyLoss";
  n.opset = 13;
  n.attrs.Add(Attribute::String("reduction", "none"));
  n.outputs.resize(2);
  InferContext ctx(n,
                   {TypeInfo{ElementType::kF32, DimVector{3, 5, 2}},
                    TypeInfo{ElementType::kI64, DimVector{3, 2}}},
                   {nullptr, nullptr});
  {
    Status st = InferNode(ctx);
    ASSERT_TRUE(st.ok()) << st.ToString();
  }
  EXPECT_EQ(ctx.outputs()[0].ToString(), TypeInfo({ElementType::kF32, DimVector{3, 2}}).ToString());
  EXPECT_EQ(ctx.outputs()[1].ToString(),
            TypeInfo({ElementType::kF32, DimVector{3, 5, 2}}).ToString());
  Node d;
  d.op_type = "DFT";
  d.opset = 17;
  d.attrs.Add(Attribute::Int("onesided", 1));
  d.outputs.resize(1);
  InferContext dc(d, {TypeInfo{ElementType::kF32, DimVector{2, 10, 1}}}, {nullptr});
  {
    Status st = InferNode(dc);
    ASSERT_TRUE(st.ok()) << st.ToString();
  }
  EXPECT_EQ(dc.outputs()[0].ToString(),
            TypeInfo({ElementType::kF32, DimVector{2, 6, 2}}).ToString());
}

}  // namespace
}  // namespace kiln
