// Fuzz target: the package MANIFEST parser (JSON, schema, paths confined to the package); a
// parsed manifest is written back and parsed again, which must succeed.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "package/package.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kiln;
  auto m = Manifest::Parse(std::string(reinterpret_cast<const char*>(data), size), "MANIFEST");
  if (!m.ok()) return 0;
  auto again = Manifest::Parse(m->ToJson(), "MANIFEST (written back)");
  if (!again.ok()) std::abort();  // Kiln writes a MANIFEST it cannot read
  return 0;
}
