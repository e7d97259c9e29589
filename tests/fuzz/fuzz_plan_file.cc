// Fuzz target: the compiled-plan loader (src/plan/plan_file.h). The checksums are a guard
// against corruption, not against an adversary (anyone can recompute a CRC), so the target
// first makes the mutated bytes' file size and CRC-32Cs consistent: the decoder behind them
// (graph, attributes, nested graphs, weights) sees the mutations. A plan that loads is then
// verified and given a session and a plan for small inputs, as `kiln run` would.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "core/crc32c.h"
#include "fuzz_util.h"
#include "plan/plan_file.h"

namespace {

template <typename T>
T Get(const std::string& s, size_t at) {
  T v;
  std::memcpy(&v, s.data() + at, sizeof(T));
  return v;
}
template <typename T>
void Put(std::string& s, size_t at, T v) {
  std::memcpy(s.data() + at, &v, sizeof(T));
}

constexpr size_t kHeader = 32, kEntry = 32;

// Header: magic[8] u32 version, u32 count, u64 size, u32 crc, u32 pad; entries: u32 id,
// u32 flags, u64 offset, u64 size, u32 crc, u32 reserved.
void FixChecksums(std::string& f) {
  if (f.size() < kHeader) return;
  Put<uint64_t>(f, 16, f.size());
  const uint32_t count = Get<uint32_t>(f, 12);
  if (count == 0 || count > 16 || kHeader + count * kEntry > f.size()) return;
  for (uint32_t i = 0; i < count; ++i) {
    const size_t e = kHeader + i * kEntry;
    const uint64_t off = Get<uint64_t>(f, e + 8), size = Get<uint64_t>(f, e + 16);
    if (off <= f.size() && size <= f.size() - off) {
      Put<uint32_t>(f, e + 24, kiln::Crc32c(f.data() + off, size));
    }
  }
  std::string covered = f.substr(0, 24) + f.substr(kHeader, count * kEntry);
  Put<uint32_t>(f, 24, kiln::Crc32c(covered.data(), covered.size()));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kiln;
  std::string bytes(reinterpret_cast<const char*>(data), size);
  FixChecksums(bytes);
  auto plan = LoadPlanBytes(bytes.data(), bytes.size(), "fuzz.kplan");
  if (!plan.ok()) return 0;
  NamedTensors inputs;
  const bool small = fuzz::SmallInputs(plan->model.graph, &inputs);
  auto session = Session::CreatePrepared(std::move(plan->model), fuzz::FuzzSessionOptions());
  if (!session.ok() || !small) return 0;
  (void)(*session)->Plan(inputs);
  return 0;
}
