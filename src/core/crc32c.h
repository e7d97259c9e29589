// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78): the checksum of compiled-plan sections
// (plan/plan_file.h). Crc32c() picks the SSE4.2 `crc32` instruction when the CPU has it (checked
// once at run time) and a portable table-driven loop otherwise; both give identical results.
//
//   uint32_t c = Crc32c(data, size);              // one buffer
//   uint32_t c2 = Crc32cExtend(c, more, n);       // continue over further bytes
// Crc32c("123456789") == 0xE3069283.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kiln {

// CRC-32C of `size` bytes; `crc` is the CRC of what came before (0 for none).
uint32_t Crc32cExtend(uint32_t crc, const void* data, size_t size);
inline uint32_t Crc32c(const void* data, size_t size) { return Crc32cExtend(0, data, size); }

// The two implementations, for tests and benchmarks. Crc32cHardware requires Crc32cHasHardware().
uint32_t Crc32cPortable(uint32_t crc, const void* data, size_t size);
uint32_t Crc32cHardware(uint32_t crc, const void* data, size_t size);
bool Crc32cHasHardware();

}  // namespace kiln
