// Reference elementwise kernels and the broadcast helper, checked against hand-computed values
// (or values that follow from the ONNX spec's formulas evaluated independently in the test).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

#include "backends/ref/broadcast.h"
#include "backends/ref/eager.h"
#include "ir/op_schema.h"

namespace kiln {
namespace {

Tensor F32(std::vector<float> v, Shape s) { return Tensor::FromVector(v, std::move(s)); }
template <typename T>
Tensor T1(std::vector<T> v) {
  const int64_t n = static_cast<int64_t>(v.size());
  return Tensor::FromVector(v, {n});
}
template <typename T>
std::vector<T> Values(const Tensor& t) {
  return std::vector<T>(t.data<T>(), t.data<T>() + t.size());
}

void ExpectNear(const std::vector<float>& got, const std::vector<double>& want, double tol) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], tol) << "element " << i;
}

Attributes Attrs(std::initializer_list<Attribute> list) {
  Attributes as;
  for (const auto& a : list) as.Add(a);
  return as;
}

Tensor Run1(const std::string& op, int opset, const std::vector<Tensor>& in, Attributes attrs = {}) {
  auto r = RunOpEager(op, opset, in, 1, std::move(attrs));
  EXPECT_TRUE(r.ok()) << op << ": " << r.status().ToString();
  if (!r.ok()) return Tensor();
  return (*r)[0];
}

TEST(Broadcast, ShapesAndPlanCollapseDims) {
  Shape a{2, 3, 4}, b{3, 1}, c{4};
  auto out = BroadcastShapes({&a, &b, &c});
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(*out, (Shape{2, 3, 4}));
  Shape bad{5};
  EXPECT_FALSE(BroadcastShapes({&a, &bad}).ok());

  // [2,3,4] with [1,3,1]: no dims merge for input 1; runs of 4 with input 1 repeated.
  Shape d{1, 3, 1};
  auto plan = BroadcastPlan::Make(*out, {&a, &d});
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->inner(), 4);
  EXPECT_EQ(plan->runs(), 6);
  EXPECT_EQ(plan->inner_stride(0), 1);
  EXPECT_EQ(plan->inner_stride(1), 0);
  std::vector<int64_t> offs1;
  plan->ForEachRun(0, plan->runs(), [&](int64_t o, const int64_t* off) {
    EXPECT_EQ(off[0], o);
    offs1.push_back(off[1]);
  });
  EXPECT_EQ(offs1, (std::vector<int64_t>{0, 1, 2, 0, 1, 2}));
  // Starting mid-way gives the same offsets.
  std::vector<int64_t> tail;
  plan->ForEachRun(4, 6, [&](int64_t, const int64_t* off) { tail.push_back(off[1]); });
  EXPECT_EQ(tail, (std::vector<int64_t>{1, 2}));

  // Same shapes collapse to one run.
  auto same = BroadcastPlan::Make(a, {&a, &a});
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(same->runs(), 1);
  EXPECT_EQ(same->inner(), 24);
  EXPECT_EQ(BroadcastStrides(Shape{3, 1}, Shape{2, 3, 4}), (std::vector<int64_t>{0, 1, 0}));
  EXPECT_FALSE(BroadcastPlan::Make(Shape{3}, {&a}).ok());
}

TEST(RefElementwise, AddBroadcastsRowsAndColumns) {
  Tensor a = F32({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor row = F32({10, 20, 30}, {3});
  Tensor col = F32({100, 200}, {2, 1});
  EXPECT_EQ(Values<float>(Run1("Add", 14, {a, row})),
            (std::vector<float>{11, 22, 33, 14, 25, 36}));
  EXPECT_EQ(Values<float>(Run1("Add", 14, {a, col})),
            (std::vector<float>{101, 102, 103, 204, 205, 206}));
  Tensor outer = Run1("Mul", 14, {col, row});
  EXPECT_EQ(outer.shape(), (Shape{2, 3}));
  EXPECT_EQ(Values<float>(outer), (std::vector<float>{1000, 2000, 3000, 2000, 4000, 6000}));
  Tensor scalar = F32({2}, {});
  EXPECT_EQ(Values<float>(Run1("Div", 14, {scalar, a})),
            (std::vector<float>{2, 1, 2.0f / 3, 0.5f, 0.4f, 2.0f / 6}));
  EXPECT_FALSE(RunOpEager("Add", 14, {a, F32({1, 2}, {2})}, 1).ok());
  // Empty tensors broadcast to empty outputs.
  Tensor empty = Tensor::Allocate(ElementType::kF32, {0, 3}).value();
  EXPECT_EQ(Run1("Add", 14, {empty, row}).shape(), (Shape{0, 3}));
  EXPECT_EQ(Run1("Where", 16, {Tensor::Allocate(ElementType::kBool, {2, 0}).value(), col, col}).shape(),
            (Shape{2, 0}));
  EXPECT_FALSE(RunOpEager("Add", 14, {a, T1<int32_t>({1, 2, 3})}, 1).ok());
}

TEST(RefElementwise, LargeBroadcastMatchesScalarLoop) {
  // [4,5,3000] * [5,1] exercises the run walk (and the thread pool when one is given).
  const int64_t n = 4 * 5 * 3000;
  std::vector<float> av(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) av[static_cast<size_t>(i)] = static_cast<float>(i % 97) - 40;
  Tensor a = F32(av, {4, 5, 3000});
  Tensor b = F32({1, 2, 3, 4, 5}, {5, 1});
  Tensor y = Run1("Mul", 14, {a, b});
  for (int64_t i = 0; i < n; ++i) {
    const float want = av[static_cast<size_t>(i)] * static_cast<float>((i / 3000) % 5 + 1);
    ASSERT_EQ(y.data<float>()[i], want) << i;
  }
}

TEST(RefElementwise, IntegerDivisionTruncatesAndRejectsZero) {
  Tensor a = T1<int32_t>({7, -7, 7, -7, std::numeric_limits<int32_t>::min()});
  Tensor b = T1<int32_t>({2, 2, -2, -2, -1});
  EXPECT_EQ(Values<int32_t>(Run1("Div", 14, {a, b})),
            (std::vector<int32_t>{3, -3, -3, 3, std::numeric_limits<int32_t>::min()}));
  auto r = RunOpEager("Div", 14, {a, T1<int32_t>({1, 0, 1, 1, 1})}, 1);
  EXPECT_FALSE(r.ok());
  Tensor u = T1<uint8_t>({250, 10});
  EXPECT_EQ(Values<uint8_t>(Run1("Add", 14, {u, T1<uint8_t>({10, 10})})), (std::vector<uint8_t>{4, 20}));
  EXPECT_EQ(Values<uint16_t>(Run1("Mul", 14, {T1<uint16_t>({65535}), T1<uint16_t>({65535})})),
            (std::vector<uint16_t>{1}));
}

TEST(RefElementwise, ModFollowsDivisorSignUnlessFmod) {
  Tensor x = T1<int64_t>({-4, 7, 5, 4, -7, 8});
  Tensor y = T1<int64_t>({2, -3, 8, -2, 3, 5});
  EXPECT_EQ(Values<int64_t>(Run1("Mod", 13, {x, y})), (std::vector<int64_t>{0, -2, 5, 0, 2, 3}));
  EXPECT_EQ(Values<int64_t>(Run1("Mod", 13, {x, y}, Attrs({Attribute::Int("fmod", 1)}))),
            (std::vector<int64_t>{0, 1, 5, 0, -1, 3}));
  Tensor xf = T1<float>({-4.5f, 7.5f});
  Tensor yf = T1<float>({2.0f, -2.0f});
  EXPECT_EQ(Values<float>(Run1("Mod", 13, {xf, yf}, Attrs({Attribute::Int("fmod", 1)}))),
            (std::vector<float>{-0.5f, 1.5f}));
  EXPECT_EQ(Values<float>(Run1("Mod", 13, {xf, yf})), (std::vector<float>{1.5f, -0.5f}));
  EXPECT_FALSE(RunOpEager("Mod", 13, {x, T1<int64_t>({1, 1, 0, 1, 1, 1})}, 1).ok());
}

TEST(RefElementwise, PowMixedTypes) {
  EXPECT_EQ(Values<float>(Run1("Pow", 15, {T1<float>({1, 2, 3}), T1<int64_t>({4, 5, 6})})),
            (std::vector<float>{1, 32, 729}));
  EXPECT_EQ(Values<int64_t>(Run1("Pow", 15, {T1<int64_t>({1, 2, 3}), T1<float>({4, 5, 0.5f})})),
            (std::vector<int64_t>{1, 32, 1}));
  EXPECT_EQ(Values<int32_t>(Run1("Pow", 15, {T1<int32_t>({-2, 3, 2}), T1<int32_t>({3, 0, -1})})),
            (std::vector<int32_t>{-8, 1, 0}));
}

TEST(RefElementwise, BitShiftAndLogic) {
  Tensor x = T1<uint8_t>({16, 4, 1});
  Tensor s = T1<uint8_t>({1, 2, 9});
  EXPECT_EQ(Values<uint8_t>(Run1("BitShift", 11, {x, s}, Attrs({Attribute::String("direction", "RIGHT")}))),
            (std::vector<uint8_t>{8, 1, 0}));
  EXPECT_EQ(Values<uint8_t>(Run1("BitShift", 11, {x, s}, Attrs({Attribute::String("direction", "LEFT")}))),
            (std::vector<uint8_t>{32, 16, 0}));
  EXPECT_FALSE(RunOpEager("BitShift", 11, {x, s}, 1).ok());
  Tensor p = T1<bool>({true, true, false, false});
  Tensor q = T1<bool>({true, false, true, false});
  EXPECT_EQ(Values<bool>(Run1("And", 7, {p, q})), (std::vector<bool>{true, false, false, false}));
  EXPECT_EQ(Values<bool>(Run1("Or", 7, {p, q})), (std::vector<bool>{true, true, true, false}));
  EXPECT_EQ(Values<bool>(Run1("Xor", 7, {p, q})), (std::vector<bool>{false, true, true, false}));
  EXPECT_EQ(Values<bool>(Run1("Not", 1, {p})), (std::vector<bool>{false, false, true, true}));
}

TEST(RefElementwise, Comparisons) {
  Tensor a = T1<float>({1, 2, 3});
  Tensor b = F32({2}, {});
  EXPECT_EQ(Values<bool>(Run1("Less", 13, {a, b})), (std::vector<bool>{true, false, false}));
  EXPECT_EQ(Values<bool>(Run1("LessOrEqual", 16, {a, b})), (std::vector<bool>{true, true, false}));
  EXPECT_EQ(Values<bool>(Run1("Greater", 13, {a, b})), (std::vector<bool>{false, false, true}));
  EXPECT_EQ(Values<bool>(Run1("GreaterOrEqual", 16, {a, b})), (std::vector<bool>{false, true, true}));
  EXPECT_EQ(Values<bool>(Run1("Equal", 13, {a, b})), (std::vector<bool>{false, true, false}));
  Tensor s1 = T1<std::string>({"a", "bc"});
  Tensor s2 = T1<std::string>({"a", "b"});
  EXPECT_EQ(Values<bool>(Run1("Equal", 19, {s1, s2})), (std::vector<bool>{true, false}));
}

TEST(RefElementwise, LegacyBroadcastAttribute) {
  // Opset 6: B of shape [3] placed at axis 1 of A [2,3,2].
  Tensor a = F32({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, {2, 3, 2});
  Tensor b = F32({100, 200, 300}, {3});
  Tensor y = Run1("Add", 6, {a, b}, Attrs({Attribute::Int("broadcast", 1), Attribute::Int("axis", 1)}));
  EXPECT_EQ(Values<float>(y), (std::vector<float>{100, 101, 202, 203, 304, 305, 106, 107, 208, 209,
                                                  310, 311}));
  // Without broadcast=1 shapes must match.
  EXPECT_FALSE(RunOpEager("Add", 6, {a, b}, 1).ok());
  // Default axis aligns trailing dims.
  Tensor c = F32({1, 2}, {2});
  EXPECT_EQ(Values<float>(Run1("Sub", 6, {a, c}, Attrs({Attribute::Int("broadcast", 1)})))[3], 1.0f);
}

TEST(RefElementwise, VariadicAndWhere) {
  Tensor a = T1<float>({3, 2, 1});
  Tensor b = T1<float>({1, 4, 4});
  Tensor c = F32({2}, {1});
  EXPECT_EQ(Values<float>(Run1("Max", 13, {a, b, c})), (std::vector<float>{3, 4, 4}));
  EXPECT_EQ(Values<float>(Run1("Min", 13, {a, b, c})), (std::vector<float>{1, 2, 1}));
  EXPECT_EQ(Values<float>(Run1("Sum", 13, {a, b, c})), (std::vector<float>{6, 8, 7}));
  EXPECT_EQ(Values<float>(Run1("Mean", 13, {a, b, c})), (std::vector<float>{2, 8.0f / 3, 7.0f / 3}));
  EXPECT_EQ(Values<float>(Run1("Sum", 13, {a})), (std::vector<float>{3, 2, 1}));
  Tensor cond = Tensor::FromVector<bool>({true, false}, {2, 1});
  Tensor x = T1<int64_t>({1, 2, 3});
  Tensor y = Tensor::FromVector<int64_t>({9}, {});
  Tensor w = Run1("Where", 16, {cond, x, y});
  EXPECT_EQ(w.shape(), (Shape{2, 3}));
  EXPECT_EQ(Values<int64_t>(w), (std::vector<int64_t>{1, 2, 3, 9, 9, 9}));
  Tensor ws = Run1("Where", 16, {T1<bool>({true, false}), T1<std::string>({"x", "y"}),
                                 T1<std::string>({"p", "q"})});
  EXPECT_EQ(Values<std::string>(ws), (std::vector<std::string>{"x", "q"}));
}

TEST(RefElementwise, UnaryMath) {
  Tensor r = Run1("Round", 11, {T1<float>({0.5f, 1.5f, 2.5f, -0.5f, -1.5f, 2.6f})});
  EXPECT_EQ(Values<float>(r), (std::vector<float>{0, 2, 2, -0.0f, -2, 3}));
  EXPECT_EQ(Values<int32_t>(Run1("Abs", 13, {T1<int32_t>({-3, 4})})), (std::vector<int32_t>{3, 4}));
  EXPECT_EQ(Values<float>(Run1("Sign", 13, {T1<float>({-3, 0, 2})})), (std::vector<float>{-1, 0, 1}));
  EXPECT_EQ(Values<float>(Run1("Neg", 13, {T1<float>({-3, 2})})), (std::vector<float>{3, -2}));
  EXPECT_EQ(Values<float>(Run1("Reciprocal", 13, {T1<float>({4, -0.5f})})), (std::vector<float>{0.25f, -2}));
  EXPECT_EQ(Values<float>(Run1("Floor", 13, {T1<float>({-1.5f, 1.5f})})), (std::vector<float>{-2, 1}));
  EXPECT_EQ(Values<float>(Run1("Ceil", 13, {T1<float>({-1.5f, 1.5f})})), (std::vector<float>{-1, 2}));
  EXPECT_EQ(Values<double>(Run1("Sqrt", 13, {T1<double>({9, 2})})), (std::vector<double>{3, std::sqrt(2.0)}));
  EXPECT_NEAR(Values<float>(Run1("Erf", 13, {T1<float>({1})}))[0], 0.8427007929f, 1e-6);
  EXPECT_NEAR(Values<float>(Run1("Acosh", 9, {T1<float>({2})}))[0], 1.3169578969f, 1e-6);
  // f16 computes in float and rounds: exp(1) = 2.71875 in half.
  Tensor h = Run1("Exp", 13, {T1<Half>({Half(1.0f)})});
  EXPECT_EQ(h.type(), ElementType::kF16);
  EXPECT_EQ(static_cast<float>(h.data<Half>()[0]), 2.71875f);
}

TEST(RefElementwise, Activations) {
  Tensor x = T1<float>({-2, -0.5f, 0, 0.5f, 2});
  EXPECT_EQ(Values<float>(Run1("Relu", 14, {x})), (std::vector<float>{0, 0, 0, 0.5f, 2}));
  EXPECT_EQ(Values<int8_t>(Run1("Relu", 14, {T1<int8_t>({-3, 5})})), (std::vector<int8_t>{0, 5}));
  EXPECT_EQ(Values<float>(Run1("LeakyRelu", 16, {x}, Attrs({Attribute::Float("alpha", 0.1f)}))),
            (std::vector<float>{-0.2f, -0.05f, 0, 0.5f, 2}));
  ExpectNear(Values<float>(Run1("HardSigmoid", 6, {x})), {0.1, 0.4, 0.5, 0.6, 0.9}, 1e-6);
  EXPECT_EQ(Values<float>(Run1("ThresholdedRelu", 10, {x}, Attrs({Attribute::Float("alpha", 0.4f)}))),
            (std::vector<float>{0, 0, 0, 0.5f, 2}));
  EXPECT_EQ(Values<float>(Run1("Shrink", 9, {x}, Attrs({Attribute::Float("lambd", 1), Attribute::Float("bias", 0.5f)}))),
            (std::vector<float>{-1.5f, 0, 0, 0, 1.5f}));
  const auto sig = Values<float>(Run1("Sigmoid", 13, {x}));
  const auto elu = Values<float>(Run1("Elu", 6, {x}));
  const auto selu = Values<float>(Run1("Selu", 6, {x}));
  const auto celu = Values<float>(Run1("Celu", 12, {x}, Attrs({Attribute::Float("alpha", 2)})));
  const auto sp = Values<float>(Run1("Softplus", 1, {x}));
  const auto ss = Values<float>(Run1("Softsign", 1, {x}));
  const auto hs = Values<float>(Run1("HardSwish", 14, {x}));
  const double xs[] = {-2, -0.5, 0, 0.5, 2};
  for (int i = 0; i < 5; ++i) {
    const double v = xs[i];
    EXPECT_NEAR(sig[i], 1 / (1 + std::exp(-v)), 1e-6);
    EXPECT_NEAR(elu[i], v < 0 ? std::exp(v) - 1 : v, 1e-6);
    EXPECT_NEAR(selu[i], v > 0 ? 1.0507009873554805 * v : 1.0507009873554805 * 1.6732632423543772 * (std::exp(v) - 1), 1e-5);
    EXPECT_NEAR(celu[i], std::max(0.0, v) + std::min(0.0, 2 * (std::exp(v / 2) - 1)), 1e-6);
    EXPECT_NEAR(sp[i], std::log(std::exp(v) + 1), 1e-6);
    EXPECT_NEAR(ss[i], v / (1 + std::fabs(v)), 1e-6);
    EXPECT_NEAR(hs[i], v * std::max(0.0, std::min(1.0, v / 6 + 0.5)), 1e-6);
  }
  // PRelu with a per-channel slope [C,1,1] broadcast over [1,C,1,2].
  Tensor px = F32({-1, 1, -2, 2}, {1, 2, 1, 2});
  Tensor slope = F32({0.5f, 0.25f}, {2, 1, 1});
  EXPECT_EQ(Values<float>(Run1("PRelu", 16, {px, slope})), (std::vector<float>{-0.5f, 1, -0.5f, 2}));
}

TEST(RefElementwise, SigmoidF32IsAccurateOverTheWholeRange) {
  // The f32 kernel uses its own exp; compare with the double formula on a dense sweep.
  std::vector<float> xs;
  for (float v = -100.0f; v <= 100.0f; v += 0.00731f) xs.push_back(v);
  for (float v : {0.0f, -0.0f, 1e-8f, -1e-8f, 87.2f, -87.2f, 87.4f, -87.4f, 1e30f, -1e30f}) xs.push_back(v);
  xs.push_back(INFINITY);
  xs.push_back(-INFINITY);
  xs.push_back(NAN);
  const auto y = Values<float>(Run1("Sigmoid", 13, {T1<float>(xs)}));
  for (size_t i = 0; i < xs.size(); ++i) {
    const double x = xs[i];
    if (std::isnan(x)) {
      EXPECT_TRUE(std::isnan(y[i]));
      continue;
    }
    const double want = 1.0 / (1.0 + std::exp(-x));
    // About 2 ulp, or absolute 1e-37 where the kernel flushes results below e^-87.3 to 0.
    EXPECT_NEAR(y[i], want, std::max(want * 3e-7, 1e-37)) << "x = " << x;
  }
}

TEST(RefElementwise, ClipAttributesAndInputs) {
  Tensor x = T1<float>({-3, 0, 3});
  EXPECT_EQ(Values<float>(Run1("Clip", 6, {x}, Attrs({Attribute::Float("min", -1), Attribute::Float("max", 2)}))),
            (std::vector<float>{-1, 0, 2}));
  EXPECT_EQ(Values<float>(Run1("Clip", 13, {x, F32({-1}, {}), Tensor()})), (std::vector<float>{-1, 0, 3}));
  EXPECT_EQ(Values<float>(Run1("Clip", 13, {x, Tensor(), F32({1}, {})})), (std::vector<float>{-3, 0, 1}));
  EXPECT_EQ(Values<int8_t>(Run1("Clip", 13, {T1<int8_t>({-100, 5, 100}), Tensor::FromVector<int8_t>({-10}, {}),
                                              Tensor::FromVector<int8_t>({10}, {})})),
            (std::vector<int8_t>{-10, 5, 10}));
  // min > max gives max, as numpy.clip.
  EXPECT_EQ(Values<float>(Run1("Clip", 13, {x, F32({2}, {}), F32({1}, {})})), (std::vector<float>{1, 1, 1}));
}

TEST(RefElementwise, CastNumbersBoolsAndStrings) {
  Tensor f = T1<float>({1.9f, -1.9f, 0.0f, 300.0f});
  EXPECT_EQ(Values<int32_t>(Run1("Cast", 13, {f}, Attrs({Attribute::Int("to", 6)}))),
            (std::vector<int32_t>{1, -1, 0, 300}));
  EXPECT_EQ(Values<uint8_t>(Run1("Cast", 13, {f}, Attrs({Attribute::Int("to", 2)}))),
            (std::vector<uint8_t>{1, 255, 0, 44}));
  EXPECT_EQ(Values<bool>(Run1("Cast", 13, {f}, Attrs({Attribute::Int("to", 9)}))),
            (std::vector<bool>{true, true, false, true}));
  // Opset 1-5 name the type.
  EXPECT_EQ(Values<double>(Run1("Cast", 5, {f}, Attrs({Attribute::String("to", "DOUBLE")})))[0],
            static_cast<double>(1.9f));
  Tensor s = Run1("Cast", 13, {T1<float>({0.47892547f, 1.0f, 1e-5f, 123456789.0f, -0.0f, NAN, -INFINITY})},
                  Attrs({Attribute::Int("to", 8)}));
  EXPECT_EQ(Values<std::string>(s), (std::vector<std::string>{"0.47892547", "1.0", "1e-05", "123456790.0",
                                                              "-0.0", "nan", "-inf"}));
  Tensor back = Run1("Cast", 13, {T1<std::string>({"0.5", "+INF", "-inf", "NaN", "1e3"})},
                     Attrs({Attribute::Int("to", 1)}));
  const auto bv = Values<float>(back);
  EXPECT_EQ(bv[0], 0.5f);
  EXPECT_TRUE(std::isinf(bv[1]) && bv[1] > 0);
  EXPECT_TRUE(std::isinf(bv[2]) && bv[2] < 0);
  EXPECT_TRUE(std::isnan(bv[3]));
  EXPECT_EQ(bv[4], 1000.0f);
  EXPECT_FALSE(RunOpEager("Cast", 13, {T1<std::string>({"abc"})}, 1, Attrs({Attribute::Int("to", 1)})).ok());
  EXPECT_EQ(Values<int64_t>(Run1("Cast", 13, {T1<std::string>({"-42", "7"})}, Attrs({Attribute::Int("to", 7)}))),
            (std::vector<int64_t>{-42, 7}));
  // f32 -> f16 rounds to nearest even; f32 -> bf16 truncates (ONNX <= 17 reference data).
  Tensor h = Run1("Cast", 13, {T1<float>({1.0f + std::ldexp(1.0f, -11) * 3})}, Attrs({Attribute::Int("to", 10)}));
  EXPECT_EQ(h.data<Half>()[0].bits, 0x3c02);
  Tensor bf = Run1("Cast", 13, {T1<float>({0.48033667f})}, Attrs({Attribute::Int("to", 16)}));
  EXPECT_EQ(bf.data<BFloat16>()[0].bits, 0x3ef5);
  // CastLike takes the type of its second input.
  Tensor cl = Run1("CastLike", 15, {T1<int32_t>({3}), T1<double>({0})});
  EXPECT_EQ(cl.type(), ElementType::kF64);
  EXPECT_EQ(cl.data<double>()[0], 3.0);
}

TEST(RefElementwise, IsNaNIsInf) {
  Tensor x = T1<float>({NAN, INFINITY, -INFINITY, 1});
  EXPECT_EQ(Values<bool>(Run1("IsNaN", 13, {x})), (std::vector<bool>{true, false, false, false}));
  EXPECT_EQ(Values<bool>(Run1("IsInf", 10, {x})), (std::vector<bool>{false, true, true, false}));
  EXPECT_EQ(Values<bool>(Run1("IsInf", 10, {x}, Attrs({Attribute::Int("detect_positive", 0)}))),
            (std::vector<bool>{false, false, true, false}));
}

TEST(ElementwiseInference, BroadcastLegacyAndCast) {
  Node n;
  n.name = "n";
  n.op_type = "Add";
  n.opset = 14;
  n.outputs = {ValueId(2)};
  InferContext ctx(n, {TypeInfo{ElementType::kF32, DimVector{Dim::Symbol("N"), 3, 1}},
                       TypeInfo{ElementType::kF32, DimVector{4}}},
                   {nullptr, nullptr});
  Status st = InferNode(ctx);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(ctx.outputs()[0].ToString(), TypeInfo({ElementType::kF32, DimVector{Dim::Symbol("N"), 3, 4}}).ToString());

  n.op_type = "Less";
  InferContext mismatch(n, {TypeInfo{ElementType::kF32, DimVector{3}}, TypeInfo{ElementType::kI32, DimVector{3}}},
                        {nullptr, nullptr});
  EXPECT_FALSE(InferNode(mismatch).ok());

  n.op_type = "Cast";
  n.attrs = Attrs({Attribute::Int("to", 7)});
  InferContext cast(n, {TypeInfo{ElementType::kF32, std::nullopt}}, {nullptr});
  ASSERT_TRUE(InferNode(cast).ok());
  EXPECT_EQ(cast.outputs()[0].type, ElementType::kI64);
  EXPECT_FALSE(cast.outputs()[0].shape.has_value());

  n.op_type = "Mul";
  n.opset = 6;
  n.attrs = Attrs({Attribute::Int("broadcast", 1)});
  InferContext legacy(n, {TypeInfo{ElementType::kF32, DimVector{2, 3}}, TypeInfo{ElementType::kF32, DimVector{3}}},
                      {nullptr, nullptr});
  ASSERT_TRUE(InferNode(legacy).ok());
  EXPECT_EQ(legacy.outputs()[0].static_shape(), (Shape{2, 3}));
}

}  // namespace
}  // namespace kiln
