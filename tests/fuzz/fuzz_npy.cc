// Fuzz target: the .npy reader (header dict, dtype, shape, data size) on arbitrary bytes; a
// tensor read is written back and read again, which must give the same tensor.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "core/npy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kiln;
  auto t = ParseNpy(std::string(reinterpret_cast<const char*>(data), size), "fuzz.npy");
  if (!t.ok()) return 0;
  const std::string again = SerializeNpy(*t);
  auto u = ParseNpy(again, "round trip");
  if (!u.ok() || u->type() != t->type() || u->shape() != t->shape() ||
      u->bytes() != t->bytes() || (t->bytes() > 0 && std::memcmp(u->raw(), t->raw(), t->bytes()) != 0)) {
    std::abort();  // a written .npy that does not read back as the same tensor
  }
  return 0;
}
