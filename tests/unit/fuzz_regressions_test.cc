// Inputs the fuzz targets (tests/fuzz) found crashing, each fed to the same entry point: every
// one must now end in a clean error (or a correct result), never a crash.
#include <gtest/gtest.h>

#include <string>

#include "core/npy.h"

namespace kiln {
namespace {

// fuzz_npy: a header whose 'shape' value is empty ("'shape': }") made ParseNpy call
// substr(1, ...) on an empty string (std::out_of_range escaped: the process aborted).
TEST(FuzzRegressions, NpyEmptyShapeValue) {
  const std::string bytes("\x93""NUMPY\x01""\x00""v\x00""{'descr': '|u1', 'fortran_order':, e salF'shape': }                                   (0, 3), }                                                          \x0a""", 164);
  auto t = ParseNpy(bytes, "crash.npy");
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("crash.npy"), std::string::npos) << t.status().message();
}

// The same family: shapes that are not a tuple of integers.
TEST(FuzzRegressions, NpyMalformedShapes) {
  for (const std::string shape : {"(2, 3x)", "2, 3", "(", ")", "(2, -1)", "(99999999999, 99999999999)"}) {
    std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }";
    header.resize(118, ' ');
    header += '\n';
    std::string bytes = std::string("\x93NUMPY\x01\x00", 8) + static_cast<char>(header.size()) +
                        '\0' + header + std::string(24, '\0');
    auto t = ParseNpy(bytes, "bad.npy");
    EXPECT_FALSE(t.ok()) << shape;
  }
}

}  // namespace
}  // namespace kiln
