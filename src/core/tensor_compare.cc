#include "core/tensor_compare.h"

#include <cmath>
#include <sstream>

namespace kiln {

Status AllClose(const Tensor& expected, const Tensor& actual, double rtol, double atol) {
  if (expected.type() != actual.type()) {
    return InvalidArgument(std::string("type mismatch: expected ") + ElementTypeName(expected.type()) +
                           ", got " + ElementTypeName(actual.type()));
  }
  if (expected.shape() != actual.shape()) {
    return InvalidArgument("shape mismatch: expected " + ShapeToString(expected.shape()) + ", got " +
                           ShapeToString(actual.shape()));
  }
  const int64_t n = expected.size();
  int64_t bad = 0, first = -1;
  std::string first_e, first_a;
  if (expected.type() == ElementType::kString) {
    for (int64_t i = 0; i < n; ++i) {
      if (expected.data<std::string>()[i] != actual.data<std::string>()[i]) {
        if (first < 0) {
          first = i;
          first_e = "'" + expected.data<std::string>()[i] + "'";
          first_a = "'" + actual.data<std::string>()[i] + "'";
        }
        ++bad;
      }
    }
  } else if (IsFloating(expected.type())) {
    for (int64_t i = 0; i < n; ++i) {
      const double e = expected.GetAsDouble(i), a = actual.GetAsDouble(i);
      bool ok;
      if (std::isnan(e) || std::isnan(a)) {
        ok = std::isnan(e) && std::isnan(a);
      } else if (std::isinf(e) || std::isinf(a)) {
        ok = e == a;
      } else {
        ok = std::fabs(a - e) <= atol + rtol * std::fabs(e);
      }
      if (!ok) {
        if (first < 0) {
          first = i;
          std::ostringstream se, sa;
          se.precision(9);
          sa.precision(9);
          se << e;
          sa << a;
          first_e = se.str();
          first_a = sa.str();
        }
        ++bad;
      }
    }
  } else {
    for (int64_t i = 0; i < n; ++i) {
      if (expected.GetAsInt64(i) != actual.GetAsInt64(i) ||
          (expected.type() == ElementType::kU64 &&
           expected.data<uint64_t>()[i] != actual.data<uint64_t>()[i])) {
        if (first < 0) {
          first = i;
          first_e = std::to_string(expected.GetAsInt64(i));
          first_a = std::to_string(actual.GetAsInt64(i));
        }
        ++bad;
      }
    }
  }
  if (bad == 0) return Status::Ok();
  return InvalidArgument(std::to_string(bad) + " of " + std::to_string(n) +
                         " elements differ; first at " + std::to_string(first) + ": expected " +
                         first_e + ", got " + first_a);
}

Result<double> RelativeL2Error(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape()) {
    return InvalidArgument("shape mismatch: " + ShapeToString(a.shape()) + " vs " +
                           ShapeToString(b.shape()));
  }
  if (a.type() == ElementType::kString || b.type() == ElementType::kString) {
    return InvalidArgument("cannot compute an error over strings");
  }
  double num = 0, den = 0;
  for (int64_t i = 0; i < a.size(); ++i) {
    const double x = a.GetAsDouble(i), y = b.GetAsDouble(i);
    num += (x - y) * (x - y);
    den += y * y;
  }
  if (den == 0) return num == 0 ? 0.0 : std::sqrt(num);
  return std::sqrt(num / den);
}

}  // namespace kiln
