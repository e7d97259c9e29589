#include "core/npy.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace kiln {
namespace {

struct DtypeName {
  ElementType type;
  const char* descr;
};
constexpr DtypeName kDtypes[] = {
    {ElementType::kF32, "<f4"}, {ElementType::kF64, "<f8"}, {ElementType::kF16, "<f2"},
    {ElementType::kI8, "|i1"},  {ElementType::kU8, "|u1"},  {ElementType::kI16, "<i2"},
    {ElementType::kU16, "<u2"}, {ElementType::kI32, "<i4"}, {ElementType::kU32, "<u4"},
    {ElementType::kI64, "<i8"}, {ElementType::kU64, "<u8"}, {ElementType::kBool, "|b1"},
};

// Value of `key` in the header dict: the text after "'key':" up to the matching end.
Result<std::string> HeaderField(const std::string& header, const std::string& key,
                                const std::string& what) {
  const std::string k = "'" + key + "'";
  size_t p = header.find(k);
  if (p == std::string::npos) return InvalidArgument(what + ": npy header has no " + k);
  p = header.find(':', p + k.size());
  if (p == std::string::npos) return InvalidArgument(what + ": malformed npy header");
  ++p;
  while (p < header.size() && header[p] == ' ') ++p;
  if (p >= header.size()) return InvalidArgument(what + ": malformed npy header");
  if (header[p] == '(') {
    size_t e = header.find(')', p);
    if (e == std::string::npos) return InvalidArgument(what + ": malformed npy shape");
    return header.substr(p, e - p + 1);
  }
  if (header[p] == '\'') {
    size_t e = header.find('\'', p + 1);
    if (e == std::string::npos) return InvalidArgument(what + ": malformed npy header");
    return header.substr(p + 1, e - p - 1);
  }
  size_t e = header.find_first_of(",}", p);
  return header.substr(p, e - p);
}

}  // namespace

Result<Tensor> ParseNpy(const std::string& bytes, const std::string& what) {
  if (bytes.size() < 10 || std::memcmp(bytes.data(), "\x93NUMPY", 6) != 0) {
    return InvalidArgument(what + ": not a .npy file (bad magic)");
  }
  const int major = static_cast<unsigned char>(bytes[6]);
  size_t header_len = 0, header_start = 0;
  if (major == 1) {
    header_len = static_cast<unsigned char>(bytes[8]) | (static_cast<unsigned char>(bytes[9]) << 8);
    header_start = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) return InvalidArgument(what + ": truncated npy header");
    for (int i = 0; i < 4; ++i) header_len |= static_cast<size_t>(static_cast<unsigned char>(bytes[8 + i])) << (8 * i);
    header_start = 12;
  } else {
    return InvalidArgument(what + ": unsupported npy version " + std::to_string(major));
  }
  if (header_start + header_len > bytes.size()) return InvalidArgument(what + ": truncated npy header");
  const std::string header = bytes.substr(header_start, header_len);
  KILN_ASSIGN_OR_RETURN(std::string descr, HeaderField(header, "descr", what));
  KILN_ASSIGN_OR_RETURN(std::string fortran, HeaderField(header, "fortran_order", what));
  KILN_ASSIGN_OR_RETURN(std::string shape_text, HeaderField(header, "shape", what));
  if (fortran.find("True") != std::string::npos) {
    return InvalidArgument(what + ": Fortran-ordered npy arrays are not supported");
  }
  ElementType type = ElementType::kUndefined;
  std::string d = descr;
  if (d.size() == 3 && d[0] == '=') d[0] = '<';
  if (d == "<b1" || d == "=b1") d = "|b1";
  if (d == "<i1") d = "|i1";
  if (d == "<u1") d = "|u1";
  for (const auto& e : kDtypes) {
    if (d == e.descr) type = e.type;
  }
  if (type == ElementType::kUndefined) {
    return InvalidArgument(what + ": unsupported npy dtype '" + descr + "'");
  }
  Shape shape;
  if (shape_text.size() < 2 || shape_text.front() != '(' || shape_text.back() != ')') {
    return InvalidArgument(what + ": malformed npy shape '" + shape_text +
                           "' (expected a tuple such as (2, 3))");
  }
  std::string inner = shape_text.substr(1, shape_text.size() - 2);
  std::stringstream ss(inner);
  std::string item;
  while (std::getline(ss, item, ',')) {
    size_t a = item.find_first_not_of(' ');
    if (a == std::string::npos) continue;
    try {
      size_t used = 0;
      const std::string text = item.substr(a);
      long long v = std::stoll(text, &used);
      if (text.find_first_not_of(' ', used) != std::string::npos) throw std::invalid_argument(text);
      shape.push_back(v);
    } catch (...) {
      return InvalidArgument(what + ": malformed npy shape " + shape_text);
    }
  }
  auto count = CheckedNumElements(shape);
  if (!count.ok()) return InvalidArgument(what + ": " + count.status().message());
  const size_t data_start = header_start + header_len;
  const size_t need = static_cast<size_t>(*count) * ElementSize(type);
  if (bytes.size() - data_start < need) {
    return InvalidArgument(what + ": npy data holds " + std::to_string(bytes.size() - data_start) +
                           " bytes, expected " + std::to_string(need) + " for " +
                           ElementTypeName(type) + ShapeToString(shape));
  }
  KILN_ASSIGN_OR_RETURN(Tensor t, Tensor::Allocate(type, shape));
  if (need) std::memcpy(t.raw(), bytes.data() + data_start, need);
  if (type == ElementType::kBool) {
    for (int64_t i = 0; i < t.size(); ++i) {
      t.data<bool>()[i] = reinterpret_cast<const uint8_t*>(bytes.data() + data_start)[i] != 0;
    }
  }
  return t;
}

Result<Tensor> ReadNpy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound("cannot open " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ParseNpy(ss.str(), path);
}

namespace {

// The .npy header (magic, version 1.0, length, dict) padded so that the data starts at a
// multiple of 64 bytes.
std::string NpyHeader(const Tensor& t) {
  const char* descr = "<u2";  // bf16 bit patterns
  for (const auto& e : kDtypes) {
    if (e.type == t.type()) descr = e.descr;
  }
  std::string shape = "(";
  for (size_t i = 0; i < t.shape().size(); ++i) {
    shape += std::to_string(t.shape()[i]);
    shape += (t.shape().size() == 1 || i + 1 < t.shape().size()) ? ", " : "";
  }
  if (t.shape().size() == 1) shape.erase(shape.size() - 1);
  shape += ")";
  std::string header = std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': " +
                       shape + ", }";
  // The header ends with '\n'.
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::string out = std::string("\x93NUMPY\x01\x00", 8);
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>((header.size() >> 8) & 0xff);
  out += header;
  return out;
}

}  // namespace

std::string SerializeNpy(const Tensor& t) {
  std::string out = NpyHeader(t);
  out.append(static_cast<const char*>(t.raw()), t.bytes());
  return out;
}

Status WriteNpy(const std::string& path, const Tensor& t) {
  if (t.type() == ElementType::kString) {
    return Unimplemented("cannot write string tensors as .npy (" + path + ")");
  }
  // Header and data straight from the tensor's memory (no serialised copy: ODC records input
  // samples while serving, where a copy of a 5 MB page costs more than the write itself),
  // under a temporary name renamed into place: a reader never sees a half-written file.
  const std::string header = NpyHeader(t);
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return IoError("cannot write " + tmp + ": " + std::strerror(errno));
  auto write_all = [fd](const char* p, size_t n) {
    while (n > 0) {
      const ssize_t w = ::write(fd, p, n);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return false;
      p += w;
      n -= static_cast<size_t>(w);
    }
    return true;
  };
  const bool ok = write_all(header.data(), header.size()) &&
                  write_all(static_cast<const char*>(t.raw()), t.bytes());
  const int err = errno;
  if (::close(fd) != 0 || !ok) {
    std::remove(tmp.c_str());
    return IoError("cannot write " + tmp + (ok ? "" : std::string(": ") + std::strerror(err)));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::remove(tmp.c_str());
    return IoError("cannot rename " + tmp + " to " + path + ": " + ec.message());
  }
  return Status::Ok();
}

}  // namespace kiln
