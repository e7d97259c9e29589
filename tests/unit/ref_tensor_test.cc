// Unit tests of the tensor op family: reference kernels (via RunOpEager) and shape inference.
// Expected values are worked out by hand from the ONNX operator definitions.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "backends/ref/eager.h"
#include "ir/infer_util.h"
#include "ir/op_schema.h"

namespace kiln {
namespace {

template <typename T>
Tensor Make(const std::vector<T>& v, Shape shape) {
  return Tensor::FromVector<T>(v, std::move(shape));
}
Tensor I64(const std::vector<int64_t>& v) {
  return Make<int64_t>(v, {static_cast<int64_t>(v.size())});
}
Tensor I64Scalar(int64_t v) { return Make<int64_t>({v}, {}); }

template <typename T>
std::vector<T> Values(const Tensor& t) {
  return std::vector<T>(t.data<T>(), t.data<T>() + t.size());
}

Attributes Attrs(std::vector<Attribute> list) {
  Attributes out;
  for (auto& a : list) out.Add(std::move(a));
  return out;
}

// Runs one op and returns its outputs, failing the test on error.
std::vector<Tensor> RunOk(const std::string& op, int opset, const std::vector<Tensor>& inputs,
                          size_t num_outputs = 1, Attributes attrs = {}) {
  auto r = RunOpEager(op, opset, inputs, num_outputs, std::move(attrs));
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(r).value() : std::vector<Tensor>(num_outputs);
}

TEST(RefTensor, ReshapeHandlesZeroMinusOneAndAllowZero) {
  Tensor x = Make<float>(std::vector<float>(24, 1.0f), {2, 3, 4});
  auto out = RunOk("Reshape", 13, {x, I64({0, -1, 2})});
  EXPECT_EQ(out[0].shape(), (Shape{2, 6, 2}));
  // allowzero=1: a 0 is a real zero dim, so [0, 4] of a 0-element input works, and 0 here fails.
  Tensor empty = Make<float>({}, {0, 3});
  out = RunOk("Reshape", 14, {empty, I64({3, 0})}, 1, Attrs({Attribute::Int("allowzero", 1)}));
  EXPECT_EQ(out[0].shape(), (Shape{3, 0}));
  EXPECT_FALSE(
      RunOpEager("Reshape", 14, {x, I64({0, 24})}, 1, Attrs({Attribute::Int("allowzero", 1)})).ok());
  // Opset < 5: the shape is an attribute.
  out = RunOk("Reshape", 1, {x}, 1, Attrs({Attribute::Ints("shape", {4, -1})}));
  EXPECT_EQ(out[0].shape(), (Shape{4, 6}));
  EXPECT_FALSE(RunOpEager("Reshape", 13, {x, I64({5, -1})}, 1).ok());
  EXPECT_FALSE(RunOpEager("Reshape", 13, {x, I64({-1, -1})}, 1).ok());
}

TEST(RefTensor, SqueezeUnsqueezeOldAndNewAxes) {
  Tensor x = Make<int32_t>({1, 2, 3}, {1, 3, 1});
  EXPECT_EQ(RunOk("Squeeze", 11, {x}, 1, Attrs({Attribute::Ints("axes", {-1})}))[0].shape(),
            (Shape{1, 3}));
  EXPECT_EQ(RunOk("Squeeze", 13, {x, I64({0})})[0].shape(), (Shape{3, 1}));
  EXPECT_EQ(RunOk("Squeeze", 13, {x})[0].shape(), (Shape{3}));
  EXPECT_FALSE(RunOpEager("Squeeze", 13, {x, I64({1})}, 1).ok());  // dim 3 is not 1
  EXPECT_EQ(RunOk("Unsqueeze", 13, {x, I64({-1, 0})})[0].shape(), (Shape{1, 1, 3, 1, 1}));
  EXPECT_EQ(RunOk("Unsqueeze", 11, {x}, 1, Attrs({Attribute::Ints("axes", {2})}))[0].shape(),
            (Shape{1, 3, 1, 1}));
}

TEST(RefTensor, TransposeAndStringsAreCopiedByValue) {
  Tensor s = Make<std::string>({"a", "b", "c", "d", "e", "f"}, {2, 3});
  auto out = RunOk("Transpose", 13, {s});
  EXPECT_EQ(out[0].shape(), (Shape{3, 2}));
  EXPECT_EQ(Values<std::string>(out[0]), (std::vector<std::string>{"a", "d", "b", "e", "c", "f"}));
  Tensor x = Make<float>({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, {2, 3, 2});
  out = RunOk("Transpose", 13, {x}, 1, Attrs({Attribute::Ints("perm", {1, 0, 2})}));
  EXPECT_EQ(Values<float>(out[0]), (std::vector<float>{0, 1, 6, 7, 2, 3, 8, 9, 4, 5, 10, 11}));
}

TEST(RefTensor, ConcatAndSplitOldAndNewForms) {
  Tensor a = Make<int64_t>({1, 2, 3, 4}, {2, 2});
  Tensor b = Make<int64_t>({5, 6}, {2, 1});
  auto out = RunOk("Concat", 13, {a, b}, 1, Attrs({Attribute::Int("axis", -1)}));
  EXPECT_EQ(Values<int64_t>(out[0]), (std::vector<int64_t>{1, 2, 5, 3, 4, 6}));
  Tensor x = Make<float>({1, 2, 3, 4, 5, 6}, {6});
  auto parts = RunOk("Split", 11, {x}, 2, Attrs({Attribute::Ints("split", {2, 4})}));
  EXPECT_EQ(Values<float>(parts[1]), (std::vector<float>{3, 4, 5, 6}));
  parts = RunOk("Split", 13, {x, I64({5, 1})}, 2);
  EXPECT_EQ(Values<float>(parts[1]), (std::vector<float>{6}));
  parts = RunOk("Split", 13, {x}, 3);
  EXPECT_EQ(Values<float>(parts[2]), (std::vector<float>{5, 6}));
  EXPECT_FALSE(RunOpEager("Split", 13, {x}, 4).ok());  // 6 does not split into 4 equal parts
}

TEST(RefTensor, SliceClampsAndStepsBackwards) {
  Tensor x = Make<int32_t>({0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {10});
  // start 100 clamps to 9, end -100 clamps to "before 0": the whole array reversed by 3.
  auto out = RunOk("Slice", 13, {x, I64({100}), I64({-100}), I64({0}), I64({-3})});
  EXPECT_EQ(Values<int32_t>(out[0]), (std::vector<int32_t>{9, 6, 3, 0}));
  out = RunOk("Slice", 13, {x, I64({-4}), I64({1000})});
  EXPECT_EQ(Values<int32_t>(out[0]), (std::vector<int32_t>{6, 7, 8, 9}));
  out = RunOk("Slice", 1, {x}, 1, Attrs({Attribute::Ints("starts", {2}), Attribute::Ints("ends", {5})}));
  EXPECT_EQ(Values<int32_t>(out[0]), (std::vector<int32_t>{2, 3, 4}));
  out = RunOk("Slice", 13, {x, I64({5}), I64({2})});
  EXPECT_EQ(out[0].shape(), (Shape{0}));
  EXPECT_FALSE(RunOpEager("Slice", 13, {x, I64({0}), I64({5}), I64({0}), I64({0})}, 1).ok());
}

TEST(RefTensor, GatherFamilyWithNegativeIndicesAndBatchDims) {
  Tensor x = Make<float>({1, 2, 3, 4, 5, 6}, {3, 2});
  auto out = RunOk("Gather", 13, {x, Make<int32_t>({-1, 0}, {2})});
  EXPECT_EQ(Values<float>(out[0]), (std::vector<float>{5, 6, 1, 2}));
  EXPECT_FALSE(RunOpEager("Gather", 13, {x, I64({3})}, 1).ok());
  out = RunOk("GatherElements", 13, {x, Make<int64_t>({1, 0, 0, -1}, {2, 2})}, 1,
              Attrs({Attribute::Int("axis", 1)}));
  EXPECT_EQ(Values<float>(out[0]), (std::vector<float>{2, 1, 3, 4}));
  // batch_dims=1: batch b picks data[b][idx].
  Tensor d = Make<int32_t>({0, 1, 2, 3, 4, 5, 6, 7}, {2, 2, 2});
  out = RunOk("GatherND", 13, {d, Make<int64_t>({1, 0}, {2, 1})}, 1,
              Attrs({Attribute::Int("batch_dims", 1)}));
  EXPECT_EQ(out[0].shape(), (Shape{2, 2}));
  EXPECT_EQ(Values<int32_t>(out[0]), (std::vector<int32_t>{2, 3, 4, 5}));
}

TEST(RefTensor, ScatterReductionsApplyDuplicatesInOrder) {
  Tensor data = Make<float>({1, 2, 3, 4, 5}, {1, 5});
  Tensor idx = Make<int64_t>({1, 1}, {1, 2});
  Tensor upd = Make<float>({10, 20}, {1, 2});
  auto out = RunOk("ScatterElements", 16, {data, idx, upd}, 1,
                   Attrs({Attribute::Int("axis", 1), Attribute::String("reduction", "add")}));
  EXPECT_EQ(Values<float>(out[0]), (std::vector<float>{1, 32, 3, 4, 5}));
  out = RunOk("ScatterElements", 16, {data, idx, upd}, 1,
              Attrs({Attribute::Int("axis", 1), Attribute::String("reduction", "mul")}));
  EXPECT_EQ(Values<float>(out[0]), (std::vector<float>{1, 400, 3, 4, 5}));
  // Scatter-9 is ScatterElements without reduction: the last duplicate wins.
  out = RunOk("Scatter", 9, {data, idx, upd}, 1, Attrs({Attribute::Int("axis", 1)}));
  EXPECT_EQ(Values<float>(out[0]), (std::vector<float>{1, 20, 3, 4, 5}));
  Tensor d2 = Make<int32_t>({1, 2, 3, 4}, {2, 2});
  out = RunOk("ScatterND", 16, {d2, Make<int64_t>({1}, {1, 1}), Make<int32_t>({5, 6}, {1, 2})}, 1,
              Attrs({Attribute::String("reduction", "add")}));
  EXPECT_EQ(Values<int32_t>(out[0]), (std::vector<int32_t>{1, 2, 8, 10}));
}

TEST(RefTensor, ExpandTileAndOldTile) {
  Tensor x = Make<int64_t>({1, 2}, {2, 1});
  auto out = RunOk("Expand", 13, {x, I64({2, 3})});
  EXPECT_EQ(Values<int64_t>(out[0]), (std::vector<int64_t>{1, 1, 1, 2, 2, 2}));
  out = RunOk("Expand", 13, {x, I64({1})});  // bidirectional: keeps [2, 1]
  EXPECT_EQ(out[0].shape(), (Shape{2, 1}));
  out = RunOk("Tile", 13, {x, I64({2, 2})});
  EXPECT_EQ(Values<int64_t>(out[0]), (std::vector<int64_t>{1, 1, 2, 2, 1, 1, 2, 2}));
  out = RunOk("Tile", 1, {x, I64Scalar(3), I64Scalar(1)});
  EXPECT_EQ(Values<int64_t>(out[0]), (std::vector<int64_t>{1, 1, 1, 2, 2, 2}));
}

TEST(RefTensor, PadModesAndOldAttributes) {
  Tensor x = Make<float>({1, 2, 3}, {1, 3});
  auto out = RunOk("Pad", 13, {x, I64({0, 2, 0, 1}), Make<float>({9}, {})});
  EXPECT_EQ(Values<float>(out[0]), (std::vector<float>{9, 9, 1, 2, 3, 9}));
  out = RunOk("Pad", 13, {x, I64({0, 2, 0, 2})}, 1, Attrs({Attribute::String("mode", "reflect")}));
  EXPECT_EQ(Values<float>(out[0]), (std::vector<float>{3, 2, 1, 2, 3, 2, 1}));
  out = RunOk("Pad", 13, {x, I64({0, 2, 0, 1})}, 1, Attrs({Attribute::String("mode", "edge")}));
  EXPECT_EQ(Values<float>(out[0]), (std::vector<float>{1, 1, 1, 2, 3, 3}));
  out = RunOk("Pad", 13, {x, I64({0, -1, 0, 0})});  // negative pads crop
  EXPECT_EQ(Values<float>(out[0]), (std::vector<float>{2, 3}));
  Attribute value;
  value.name = "value";
  value.kind = Attribute::Kind::kFloat;
  value.f = 7;
  out = RunOk("Pad", 2, {x}, 1, Attrs({Attribute::Ints("pads", {1, 0, 0, 0}), value}));
  EXPECT_EQ(Values<float>(out[0]), (std::vector<float>{7, 7, 7, 1, 2, 3}));
}

TEST(RefTensor, TopKBreaksTiesTowardsLowerIndex) {
  Tensor x = Make<float>({3, 1, 3, 2, 1}, {5});
  auto out = RunOk("TopK", 11, {x, I64({3})}, 2);
  EXPECT_EQ(Values<float>(out[0]), (std::vector<float>{3, 3, 2}));
  EXPECT_EQ(Values<int64_t>(out[1]), (std::vector<int64_t>{0, 2, 3}));
  out = RunOk("TopK", 11, {x, I64({2})}, 2, Attrs({Attribute::Int("largest", 0)}));
  EXPECT_EQ(Values<int64_t>(out[1]), (std::vector<int64_t>{1, 4}));
  out = RunOk("TopK", 1, {x}, 2, Attrs({Attribute::Int("k", 1)}));
  EXPECT_EQ(Values<int64_t>(out[1]), (std::vector<int64_t>{0}));
  EXPECT_FALSE(RunOpEager("TopK", 11, {x, I64({6})}, 2).ok());
}

TEST(RefTensor, UniqueUnsortedKeepsFirstOccurrenceOrder) {
  Tensor x = Make<int32_t>({5, 3, 5, 1, 3}, {5});
  auto out = RunOk("Unique", 11, {x}, 4, Attrs({Attribute::Int("sorted", 0)}));
  EXPECT_EQ(Values<int32_t>(out[0]), (std::vector<int32_t>{5, 3, 1}));
  EXPECT_EQ(Values<int64_t>(out[1]), (std::vector<int64_t>{0, 1, 3}));
  EXPECT_EQ(Values<int64_t>(out[2]), (std::vector<int64_t>{0, 1, 0, 2, 1}));
  EXPECT_EQ(Values<int64_t>(out[3]), (std::vector<int64_t>{2, 2, 1}));
  out = RunOk("Unique", 11, {x}, 4);
  EXPECT_EQ(Values<int32_t>(out[0]), (std::vector<int32_t>{1, 3, 5}));
  EXPECT_EQ(Values<int64_t>(out[2]), (std::vector<int64_t>{2, 1, 2, 0, 1}));
  Tensor s = Make<std::string>({"b", "a", "b"}, {3});
  out = RunOk("Unique", 11, {s}, 1);
  EXPECT_EQ(Values<std::string>(out[0]), (std::vector<std::string>{"a", "b"}));
}

TEST(RefTensor, CumSumExclusiveReverseAndHalf) {
  Tensor x = Make<int32_t>({1, 2, 3, 4}, {4});
  auto out = RunOk("CumSum", 14, {x, I64Scalar(0)}, 1,
                   Attrs({Attribute::Int("exclusive", 1), Attribute::Int("reverse", 1)}));
  EXPECT_EQ(Values<int32_t>(out[0]), (std::vector<int32_t>{9, 7, 4, 0}));
  Tensor h = Make<Half>({Half(1.0f), Half(0.5f), Half(0.25f)}, {3});
  out = RunOk("CumSum", 14, {h, Make<int32_t>({0}, {})});
  ASSERT_EQ(out[0].type(), ElementType::kF16);
  EXPECT_EQ(static_cast<float>(out[0].data<Half>()[2]), 1.75f);
}

TEST(RefTensor, ArgMaxSelectLastIndexAndKeepdims) {
  Tensor x = Make<float>({2, 5, 5, 1, 0, 0}, {2, 3});
  auto out = RunOk("ArgMax", 13, {x}, 1, Attrs({Attribute::Int("axis", 1), Attribute::Int("keepdims", 0)}));
  EXPECT_EQ(out[0].shape(), (Shape{2}));
  EXPECT_EQ(Values<int64_t>(out[0]), (std::vector<int64_t>{1, 0}));
  out = RunOk("ArgMax", 13, {x}, 1, Attrs({Attribute::Int("axis", 1), Attribute::Int("select_last_index", 1)}));
  EXPECT_EQ(out[0].shape(), (Shape{2, 1}));
  EXPECT_EQ(Values<int64_t>(out[0]), (std::vector<int64_t>{2, 0}));
  out = RunOk("ArgMin", 13, {x}, 1, Attrs({Attribute::Int("axis", 1), Attribute::Int("select_last_index", 1)}));
  EXPECT_EQ(Values<int64_t>(out[0]), (std::vector<int64_t>{0, 2}));
}

TEST(RefTensor, SmallGeneratorsAndShapeOps) {
  auto out = RunOk("Range", 11,
                   {Make<int32_t>({10}, {}), Make<int32_t>({1}, {}), Make<int32_t>({-4}, {})});
  EXPECT_EQ(Values<int32_t>(out[0]), (std::vector<int32_t>{10, 6, 2}));
  out = RunOk("OneHot", 11, {I64({-1, 1}), I64Scalar(3), Make<float>({0, 5}, {2})});
  EXPECT_EQ(Values<float>(out[0]), (std::vector<float>{0, 0, 5, 0, 5, 0}));
  Tensor x = Make<float>(std::vector<float>(6, 0), {2, 3});
  out = RunOk("Shape", 15, {x}, 1, Attrs({Attribute::Int("start", -1)}));
  EXPECT_EQ(Values<int64_t>(out[0]), (std::vector<int64_t>{3}));
  out = RunOk("EyeLike", 11, {x}, 1, Attrs({Attribute::Int("k", 1), Attribute::Int("dtype", 7)}));
  EXPECT_EQ(Values<int64_t>(out[0]), (std::vector<int64_t>{0, 1, 0, 0, 0, 1}));
  out = RunOk("NonZero", 13, {Make<bool>({false, true, true, false}, {2, 2})});
  EXPECT_EQ(Values<int64_t>(out[0]), (std::vector<int64_t>{0, 1, 1, 0}));
  out = RunOk("Trilu", 14, {Make<int32_t>({1, 2, 3, 4, 5, 6, 7, 8, 9}, {3, 3}), I64Scalar(-1)}, 1,
              Attrs({Attribute::Int("upper", 0)}));
  EXPECT_EQ(Values<int32_t>(out[0]), (std::vector<int32_t>{0, 0, 0, 4, 0, 0, 7, 8, 0}));
}

TEST(RefTensor, DepthToSpaceModesDiffer) {
  // C = 4, blocksize 2, H = W = 1: DCR reads channels as [b1, b2], CRD as [c, b1, b2] too when
  // C/b^2 = 1, so use C = 8 (two output channels) to tell them apart.
  std::vector<float> v(8);
  for (int i = 0; i < 8; ++i) v[i] = static_cast<float>(i);
  Tensor x = Make<float>(v, {1, 8, 1, 1});
  auto dcr = RunOk("DepthToSpace", 13, {x}, 1, Attrs({Attribute::Int("blocksize", 2)}));
  EXPECT_EQ(Values<float>(dcr[0]), (std::vector<float>{0, 2, 4, 6, 1, 3, 5, 7}));
  auto crd =
      RunOk("DepthToSpace", 13, {x}, 1, Attrs({Attribute::Int("blocksize", 2), Attribute::String("mode", "CRD")}));
  EXPECT_EQ(Values<float>(crd[0]), (std::vector<float>{0, 1, 2, 3, 4, 5, 6, 7}));
  auto back = RunOk("SpaceToDepth", 13, {dcr[0]}, 1, Attrs({Attribute::Int("blocksize", 2)}));
  EXPECT_EQ(Values<float>(back[0]), v);
}

// Inference helpers: one node with the given input types and known values.
Result<std::vector<TypeInfo>> Infer(const std::string& op, int opset, std::vector<TypeInfo> ins,
                                    std::vector<const Tensor*> values, size_t num_outputs = 1,
                                    Attributes attrs = {}) {
  Node n;
  n.name = "n";
  n.op_type = op;
  n.opset = opset;
  n.attrs = std::move(attrs);
  for (size_t i = 0; i < ins.size(); ++i) n.inputs.push_back(ValueId(static_cast<uint32_t>(i)));
  for (size_t i = 0; i < num_outputs; ++i) n.outputs.push_back(ValueId(100 + i));
  values.resize(ins.size(), nullptr);
  InferContext ctx(n, std::move(ins), std::move(values));
  KILN_RETURN_IF_ERROR(InferNode(ctx));
  return ctx.outputs();
}

TEST(InferTensor, ReshapeKeepsSymbolsThroughZeroAndMinusOne) {
  const TypeInfo x{ElementType::kF32, DimVector{Dim::Symbol("N"), 3, 4}};
  const TypeInfo shape_t{ElementType::kI64, DimVector{2}};
  Tensor spec = I64({0, -1});
  auto r = Infer("Reshape", 13, {x, shape_t}, {nullptr, &spec});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)[0].ToString(), "f32[N,12]");
  Tensor spec2 = I64({-1, 12});
  r = Infer("Reshape", 13, {x, shape_t}, {nullptr, &spec2});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)[0].ToString(), "f32[N,12]");
  // Unknown shape value: rank from the shape input's length, dims unknown.
  r = Infer("Reshape", 13, {x, shape_t}, {});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)[0].shape->size(), 2u);
  EXPECT_FALSE((*r)[0].shape->at(0).is_static());
  Tensor bad = I64({5, 5});
  EXPECT_FALSE(
      Infer("Reshape", 13, {TypeInfo{ElementType::kF32, DimVector{2, 3}}, shape_t}, {nullptr, &bad})
          .ok());
}

TEST(InferTensor, SliceUsesKnownValuesAndLeavesOthersUnknown) {
  const TypeInfo x{ElementType::kF32, DimVector{Dim::Symbol("B"), 10, 8}};
  const TypeInfo i1{ElementType::kI64, DimVector{1}};
  Tensor starts = I64({1}), ends = I64({-1}), axes = I64({1});
  auto r = Infer("Slice", 13, {x, i1, i1, i1}, {nullptr, &starts, &ends, &axes});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)[0].ToString(), "f32[B,8,8]");
  r = Infer("Slice", 13, {x, i1, i1, i1}, {nullptr, nullptr, &ends, &axes});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)[0].ToString(), "f32[B,?,8]");
}

TEST(InferTensor, ShapeChainPiecesAndUnknownSqueeze) {
  const TypeInfo x{ElementType::kF32, DimVector{Dim::Symbol("N"), 3}};
  auto r = Infer("Shape", 15, {x}, {});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)[0].ToString(), "i64[2]");
  // Squeeze without axes over a symbolic dim cannot know the rank.
  r = Infer("Squeeze", 13, {x}, {});
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE((*r)[0].shape.has_value());
  const TypeInfo s{ElementType::kI64, DimVector{}};
  Tensor zero = I64({0});
  r = Infer("Unsqueeze", 13, {s, TypeInfo{ElementType::kI64, DimVector{1}}}, {nullptr, &zero});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)[0].ToString(), "i64[1]");
  Tensor target = I64({4, 1, 3});
  r = Infer("Expand", 13, {x, TypeInfo{ElementType::kI64, DimVector{3}}}, {nullptr, &target});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)[0].ToString(), "f32[4,N,3]");
  Tensor k = I64({2});
  r = Infer("TopK", 11, {x, TypeInfo{ElementType::kI64, DimVector{1}}}, {nullptr, &k}, 2);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)[1].ToString(), "i64[N,2]");
  Tensor big = I64({4});
  EXPECT_FALSE(
      Infer("TopK", 11, {x, TypeInfo{ElementType::kI64, DimVector{1}}}, {nullptr, &big}, 2).ok());
}

}  // namespace
}  // namespace kiln
