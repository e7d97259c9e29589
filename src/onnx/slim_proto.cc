#include "onnx/slim_proto.h"

namespace kiln::onnx_internal {
namespace {

// Protobuf wire types.
constexpr int kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5;
// Field numbers (onnx.proto3).
constexpr uint64_t kModelGraph = 7, kGraphInitializer = 5, kTensorRawData = 9;
constexpr uint64_t kGraphNode = 1, kNodeAttribute = 5, kAttributeTensor = 5;

bool ReadVarint(const uint8_t*& p, const uint8_t* end, uint64_t& v) {
  v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (p >= end) return false;
    const uint8_t b = *p++;
    v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) return true;
  }
  return false;  // more than 10 bytes
}

void WriteVarint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

struct Field {
  uint64_t number = 0;
  int wire = 0;
  const uint8_t* start = nullptr;    // the tag
  const uint8_t* payload = nullptr;  // length-delimited: the bytes after the length
  uint64_t length = 0;               // length-delimited: payload bytes
  const uint8_t* end = nullptr;      // one past the field
};

// The next field of a message in [p, end); false on anything malformed or a group.
bool NextField(const uint8_t*& p, const uint8_t* end, Field& f) {
  f.start = p;
  uint64_t tag = 0;
  if (!ReadVarint(p, end, tag)) return false;
  f.number = tag >> 3;
  f.wire = static_cast<int>(tag & 7);
  if (f.number == 0) return false;
  uint64_t scratch = 0;
  switch (f.wire) {
    case kVarint:
      if (!ReadVarint(p, end, scratch)) return false;
      break;
    case kFixed64:
      if (end - p < 8) return false;
      p += 8;
      break;
    case kFixed32:
      if (end - p < 4) return false;
      p += 4;
      break;
    case kLengthDelimited:
      if (!ReadVarint(p, end, f.length)) return false;
      if (f.length > static_cast<uint64_t>(end - p)) return false;
      f.payload = p;
      p += f.length;
      break;
    default:
      return false;  // groups (3, 4) and invalid wire types
  }
  f.end = p;
  return true;
}

void WriteTag(std::string& out, uint64_t number, int wire) {
  WriteVarint(out, (number << 3) | static_cast<uint64_t>(wire));
}

// A length-delimited field `f` written again with the rewritten payload `sub`.
void WriteSub(std::string& out, const Field& f, const std::string& sub) {
  WriteTag(out, f.number, f.wire);
  WriteVarint(out, sub.size());
  out += sub;
}

class Slimmer {
 public:
  Slimmer(const uint8_t* base, uint64_t min_bytes) : base_(base), min_bytes_(min_bytes) {}

  bool Model(const uint8_t* p, const uint8_t* end, std::string& out) {
    bool graph_seen = false;
    while (p < end) {
      Field f;
      if (!NextField(p, end, f)) return false;
      if (f.number == kModelGraph && f.wire == kLengthDelimited) {
        if (graph_seen) return false;  // protobuf would merge the two: leave it to protobuf
        graph_seen = true;
        std::string g;
        if (!Graph(f.payload, f.payload + f.length, g)) return false;
        WriteSub(out, f, g);
      } else {
        out.append(reinterpret_cast<const char*>(f.start), static_cast<size_t>(f.end - f.start));
      }
    }
    return true;
  }

  std::vector<StrippedBytes> stripped;

 private:
  bool Graph(const uint8_t* p, const uint8_t* end, std::string& out) {
    while (p < end) {
      Field f;
      if (!NextField(p, end, f)) return false;
      if (f.number == kGraphInitializer && f.wire == kLengthDelimited) {
        std::string t;
        if (!Tensor(f.payload, f.payload + f.length, t, {initializer_, -1, -1})) return false;
        ++initializer_;
        WriteSub(out, f, t);
      } else if (f.number == kGraphNode && f.wire == kLengthDelimited) {
        std::string n;
        if (!Node(f.payload, f.payload + f.length, n)) return false;
        ++node_;
        WriteSub(out, f, n);
      } else {
        out.append(reinterpret_cast<const char*>(f.start), static_cast<size_t>(f.end - f.start));
      }
    }
    return true;
  }

  // A top-level node: the TensorProto of each of its attributes (a Constant's value) is
  // slimmed like an initializer, recorded by node and attribute index.
  bool Node(const uint8_t* p, const uint8_t* end, std::string& out) {
    int attribute = 0;
    while (p < end) {
      Field f;
      if (!NextField(p, end, f)) return false;
      if (f.number == kNodeAttribute && f.wire == kLengthDelimited) {
        std::string a;
        if (!Attribute(f.payload, f.payload + f.length, a, attribute)) return false;
        ++attribute;
        WriteSub(out, f, a);
      } else {
        out.append(reinterpret_cast<const char*>(f.start), static_cast<size_t>(f.end - f.start));
      }
    }
    return true;
  }

  bool Attribute(const uint8_t* p, const uint8_t* end, std::string& out, int attribute) {
    bool tensor_seen = false;
    while (p < end) {
      Field f;
      if (!NextField(p, end, f)) return false;
      if (f.number == kAttributeTensor && f.wire == kLengthDelimited) {
        if (tensor_seen) return false;  // protobuf would merge the two: leave it to protobuf
        tensor_seen = true;
        std::string t;
        if (!Tensor(f.payload, f.payload + f.length, t, {-1, node_, attribute})) return false;
        WriteSub(out, f, t);
      } else {
        out.append(reinterpret_cast<const char*>(f.start), static_cast<size_t>(f.end - f.start));
      }
    }
    return true;
  }

  // `where`: the StrippedBytes to record (its offset and size filled in here).
  bool Tensor(const uint8_t* p, const uint8_t* end, std::string& out, StrippedBytes where) {
    int raw_fields = 0;
    while (p < end) {
      Field f;
      if (!NextField(p, end, f)) return false;
      if (f.number == kTensorRawData && f.wire == kLengthDelimited) {
        if (++raw_fields > 1) return false;  // protobuf keeps the last one: leave it to protobuf
        if (f.length >= min_bytes_) {
          where.offset = static_cast<uint64_t>(f.payload - base_);
          where.size = f.length;
          stripped.push_back(where);
          WriteTag(out, f.number, f.wire);
          WriteVarint(out, 0);
          continue;
        }
      }
      out.append(reinterpret_cast<const char*>(f.start), static_cast<size_t>(f.end - f.start));
    }
    return true;
  }

  const uint8_t* base_;
  uint64_t min_bytes_;
  int initializer_ = 0;
  int node_ = 0;
};

}  // namespace

std::optional<SlimModel> SlimModelBytes(const uint8_t* data, size_t size, uint64_t min_bytes) {
  Slimmer s(data, min_bytes);
  SlimModel m;
  if (!s.Model(data, data + size, m.bytes) || s.stripped.empty()) return std::nullopt;
  m.stripped = std::move(s.stripped);
  return m;
}

}  // namespace kiln::onnx_internal
