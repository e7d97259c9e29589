// Fuzz target: the package config parser (config.cfg `Key = Value` lines against the key table)
// and the session options it describes; a parsed config is written back and parsed again.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "package/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kiln;
  auto c = ParseConfigText(std::string(reinterpret_cast<const char*>(data), size), "config.cfg");
  if (!c.ok()) return 0;
  (void)c->ToSessionOptions();
  auto again = ParseConfigText(c->ToText(), "config.cfg (written back)");
  if (!again.ok()) std::abort();  // Kiln writes a config it cannot read
  return 0;
}
