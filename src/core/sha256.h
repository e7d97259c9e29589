// SHA-256 (FIPS 180-4), for the package MANIFEST's file hashes and the source-model hash in a
// compiled plan's cache key. Portable C++; hashes about 300-400 MB/s on one core.
//
//   Sha256 h;  h.Update(data, size);  std::string hex = h.HexDigest();
//   KILN_ASSIGN_OR_RETURN(std::string hex, Sha256File("models/rec.onnx"));
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/status.h"

namespace kiln {

class Sha256 {
 public:
  Sha256();
  void Update(const void* data, size_t size);
  std::array<uint8_t, 32> Digest();  // finishes the hash; call once
  std::string HexDigest();           // 64 lowercase hex digits

 private:
  void Block(const uint8_t* p);
  uint32_t h_[8];
  uint8_t buf_[64];
  size_t buf_len_ = 0;
  uint64_t total_ = 0;
};

std::string Sha256Hex(const void* data, size_t size);
// Hashes a file by streaming it; an error names the file.
Result<std::string> Sha256File(const std::string& path);

}  // namespace kiln
