// The .kplan writer and its verified loader (plan_file.h). The GRAPH section is a flat,
// little-endian encoding of the Model written by Writer and read back by Reader, whose every
// read is bounds-checked: a corrupted file ends in a Status naming the section and offset.
#include "plan/plan_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "core/crc32c.h"
#include "package/fs_util.h"

namespace kiln {

namespace {

constexpr char kMagic[8] = {'K', 'I', 'L', 'N', 'P', 'L', 'A', 'N'};
enum SectionId : uint32_t { kKey = 1, kMeta = 2, kGraph = 3, kWeights = 4 };
const char* SectionName(uint32_t id) {
  switch (id) {
    case kKey: return "KEY";
    case kMeta: return "META";
    case kGraph: return "GRAPH";
    case kWeights: return "WEIGHTS";
  }
  return "?";
}
constexpr size_t kHeaderBytes = 8 + 4 + 4 + 8 + 4 + 4;  // magic, version, count, size, crc, pad
constexpr size_t kEntryBytes = 4 + 4 + 8 + 8 + 4 + 4;
constexpr size_t kAlign = 64;
constexpr int kMaxDepth = 64;  // nested graphs

size_t AlignUp(size_t x) { return (x + kAlign - 1) / kAlign * kAlign; }

class Writer {
 public:
  explicit Writer(std::string* weights) : weights_(weights) {}
  std::string out;
  template <typename T>
  void Pod(T v) {
    out.append(reinterpret_cast<const char*>(&v), sizeof(T));
  }
  void Str(const std::string& s) {
    Pod<uint32_t>(static_cast<uint32_t>(s.size()));
    out += s;
  }
  void TensorData(const Tensor& t) {
    Pod<uint8_t>(t.defined() ? 1 : 0);
    if (!t.defined()) return;
    Pod<uint8_t>(static_cast<uint8_t>(t.type()));
    Pod<uint32_t>(static_cast<uint32_t>(t.rank()));
    for (int64_t d : t.shape()) Pod<int64_t>(d);
    if (t.type() == ElementType::kString) {
      for (int64_t i = 0; i < t.size(); ++i) Str(t.data<std::string>()[i]);
      return;
    }
    const size_t off = AlignUp(weights_->size());
    weights_->resize(off, '\0');
    weights_->append(static_cast<const char*>(t.raw()), t.bytes());
    Pod<uint64_t>(off);
    Pod<uint64_t>(t.bytes());
  }
  void GraphData(const Graph& g) {
    Str(g.name);
    Pod<uint32_t>(static_cast<uint32_t>(g.num_values()));
    for (const Value& v : g.values()) {
      Str(v.name);
      Pod<uint8_t>(static_cast<uint8_t>(v.kind));
      Pod<uint8_t>(static_cast<uint8_t>(v.info.type));
      Pod<uint8_t>(static_cast<uint8_t>(v.info.kind));
      Pod<uint8_t>(v.info.of_sequence ? 1 : 0);
      Pod<uint8_t>(v.info.shape ? 1 : 0);
      if (v.info.shape) {
        Pod<uint32_t>(static_cast<uint32_t>(v.info.shape->size()));
        for (const Dim& d : *v.info.shape) {
          Pod<int64_t>(d.value);
          Str(d.symbol);
        }
      }
      Pod<uint32_t>(static_cast<uint32_t>(v.quant.scales.size()));
      for (float f : v.quant.scales) Pod<float>(f);
      Pod<uint32_t>(static_cast<uint32_t>(v.quant.zero_points.size()));
      for (int64_t z : v.quant.zero_points) Pod<int64_t>(z);
      Pod<int32_t>(v.quant.axis);
      Pod<uint8_t>(v.is_output ? 1 : 0);
      TensorData(v.kind == ValueKind::kInitializer ? v.initializer : Tensor());
    }
    Pod<uint32_t>(static_cast<uint32_t>(g.num_nodes()));
    for (const Node& n : g.nodes()) {
      Str(n.name);
      Str(n.op_type);
      Str(n.domain);
      Pod<int32_t>(n.opset);
      Pod<uint32_t>(static_cast<uint32_t>(n.inputs.size()));
      for (ValueId v : n.inputs) Pod<uint32_t>(v.v);
      Pod<uint32_t>(static_cast<uint32_t>(n.outputs.size()));
      for (ValueId v : n.outputs) Pod<uint32_t>(v.v);
      Pod<uint32_t>(static_cast<uint32_t>(n.attrs.items().size()));
      for (const Attribute& a : n.attrs.items()) AttrData(a);
    }
    Pod<uint32_t>(static_cast<uint32_t>(g.inputs().size()));
    for (ValueId v : g.inputs()) Pod<uint32_t>(v.v);
    Pod<uint32_t>(static_cast<uint32_t>(g.outputs().size()));
    for (ValueId v : g.outputs()) Pod<uint32_t>(v.v);
  }
  void AttrData(const Attribute& a) {
    Str(a.name);
    Pod<uint8_t>(static_cast<uint8_t>(a.kind));
    using K = Attribute::Kind;
    switch (a.kind) {
      case K::kFloat: Pod<float>(a.f); break;
      case K::kInt: Pod<int64_t>(a.i); break;
      case K::kString: Str(a.s); break;
      case K::kTensor: TensorData(a.t); break;
      case K::kGraph: GraphData(*a.g); break;
      case K::kFloats:
        Pod<uint32_t>(static_cast<uint32_t>(a.floats.size()));
        for (float f : a.floats) Pod<float>(f);
        break;
      case K::kInts:
        Pod<uint32_t>(static_cast<uint32_t>(a.ints.size()));
        for (int64_t i : a.ints) Pod<int64_t>(i);
        break;
      case K::kStrings:
        Pod<uint32_t>(static_cast<uint32_t>(a.strings.size()));
        for (const auto& s : a.strings) Str(s);
        break;
      case K::kTensors:
        Pod<uint32_t>(static_cast<uint32_t>(a.tensors.size()));
        for (const auto& t : a.tensors) TensorData(t);
        break;
      case K::kGraphs:
        Pod<uint32_t>(static_cast<uint32_t>(a.graphs.size()));
        for (const auto& g : a.graphs) GraphData(*g);
        break;
    }
  }
  void ModelData(const Model& m) {
    Pod<int64_t>(m.ir_version);
    Str(m.producer_name);
    Str(m.producer_version);
    Pod<uint32_t>(static_cast<uint32_t>(m.opsets.size()));
    for (const auto& [d, v] : m.opsets) {
      Str(d);
      Pod<int32_t>(v);
    }
    Pod<uint32_t>(static_cast<uint32_t>(m.metadata.size()));
    for (const auto& [k, v] : m.metadata) {
      Str(k);
      Str(v);
    }
    GraphData(m.graph);
  }

 private:
  std::string* weights_;
};

class Reader {
 public:
  Reader(const char* p, size_t n, const char* w, size_t wn, std::shared_ptr<void> owner,
         std::string what)
      : p_(p), n_(n), w_(w), wn_(wn), owner_(std::move(owner)), what_(std::move(what)) {}

  Status Fail(const std::string& why) const {
    return InvalidArgument(what_ + ": GRAPH section at offset " + std::to_string(pos_) + ": " + why);
  }
  template <typename T>
  Status Pod(T& v) {
    if (n_ - pos_ < sizeof(T)) return Fail("unexpected end of section");
    std::memcpy(&v, p_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return Status::Ok();
  }
  Status Count(uint32_t& v, size_t min_bytes_each) {
    KILN_RETURN_IF_ERROR(Pod(v));
    if (min_bytes_each > 0 && static_cast<uint64_t>(v) * min_bytes_each > n_ - pos_) {
      return Fail("count " + std::to_string(v) + " exceeds the section");
    }
    return Status::Ok();
  }
  Status Str(std::string& s) {
    uint32_t len;
    KILN_RETURN_IF_ERROR(Pod(len));
    if (n_ - pos_ < len) return Fail("string of " + std::to_string(len) + " bytes exceeds the section");
    s.assign(p_ + pos_, len);
    pos_ += len;
    return Status::Ok();
  }
  Status Type(ElementType& t) {
    uint8_t b = 0;
    KILN_RETURN_IF_ERROR(Pod(b));
    t = static_cast<ElementType>(b);
    if (b != 0 && ElementSize(t) == 0 && t != ElementType::kString) {
      return Fail("unknown element type " + std::to_string(b));
    }
    if (std::string(ElementTypeName(t)).empty()) return Fail("unknown element type");
    return Status::Ok();
  }
  Status TensorData(Tensor& t) {
    uint8_t has = 0;
    KILN_RETURN_IF_ERROR(Pod(has));
    if (!has) return Status::Ok();
    ElementType type = ElementType::kUndefined;
    KILN_RETURN_IF_ERROR(Type(type));
    if (type == ElementType::kUndefined) return Fail("tensor of undefined type");
    uint32_t rank;
    KILN_RETURN_IF_ERROR(Count(rank, 8));
    Shape shape(rank);
    for (auto& d : shape) KILN_RETURN_IF_ERROR(Pod(d));
    auto n = CheckedNumElements(shape);
    if (!n.ok()) return Fail(n.status().message());
    if (type == ElementType::kString) {
      if (static_cast<uint64_t>(*n) * 4 > n_ - pos_) return Fail("string tensor exceeds the section");
      KILN_ASSIGN_OR_RETURN(t, Tensor::Allocate(type, shape));
      for (int64_t i = 0; i < *n; ++i) KILN_RETURN_IF_ERROR(Str(t.data<std::string>()[i]));
      return Status::Ok();
    }
    uint64_t off, bytes;
    KILN_RETURN_IF_ERROR(Pod(off));
    KILN_RETURN_IF_ERROR(Pod(bytes));
    if (bytes != static_cast<uint64_t>(*n) * ElementSize(type)) return Fail("tensor byte count mismatch");
    if (off > wn_ || bytes > wn_ - off) {
      return Fail("tensor data [" + std::to_string(off) + ", +" + std::to_string(bytes) +
                  ") outside the WEIGHTS section");
    }
    t = Tensor::WrapShared(type, shape, const_cast<char*>(w_ + off), owner_);
    return Status::Ok();
  }
  Status Id(uint32_t& v, size_t limit, bool allow_invalid) {
    KILN_RETURN_IF_ERROR(Pod(v));
    if (v == ValueId::kInvalid && allow_invalid) return Status::Ok();
    if (v >= limit) return Fail("value id " + std::to_string(v) + " out of range");
    return Status::Ok();
  }
  Status GraphData(Graph& g, int depth) {
    if (depth > kMaxDepth) return Fail("graphs nested deeper than " + std::to_string(kMaxDepth));
    KILN_RETURN_IF_ERROR(Str(g.name));
    uint32_t nv;
    KILN_RETURN_IF_ERROR(Count(nv, 16));
    for (uint32_t i = 0; i < nv; ++i) {
      std::string name;
      KILN_RETURN_IF_ERROR(Str(name));
      uint8_t kind, has_shape;
      KILN_RETURN_IF_ERROR(Pod(kind));
      if (kind > static_cast<uint8_t>(ValueKind::kOuterScope)) return Fail("bad value kind");
      ElementType type;
      KILN_RETURN_IF_ERROR(Type(type));
      uint8_t tkind, of_seq;
      KILN_RETURN_IF_ERROR(Pod(tkind));
      KILN_RETURN_IF_ERROR(Pod(of_seq));
      if (tkind > static_cast<uint8_t>(TensorKind::kOptional)) return Fail("bad value type kind");
      KILN_RETURN_IF_ERROR(Pod(has_shape));
      std::optional<DimVector> shape;
      if (has_shape) {
        uint32_t rank;
        KILN_RETURN_IF_ERROR(Count(rank, 12));
        DimVector dims(rank);
        for (Dim& d : dims) {
          KILN_RETURN_IF_ERROR(Pod(d.value));
          KILN_RETURN_IF_ERROR(Str(d.symbol));
        }
        shape = std::move(dims);
      }
      ValueId id = g.AddValue(name, type, shape);
      Value& v = g.value(id);
      v.kind = static_cast<ValueKind>(kind);
      v.info.kind = static_cast<TensorKind>(tkind);
      v.info.of_sequence = of_seq != 0;
      uint32_t ns, nz;
      KILN_RETURN_IF_ERROR(Count(ns, 4));
      v.quant.scales.resize(ns);
      for (float& f : v.quant.scales) KILN_RETURN_IF_ERROR(Pod(f));
      KILN_RETURN_IF_ERROR(Count(nz, 8));
      v.quant.zero_points.resize(nz);
      for (int64_t& z : v.quant.zero_points) KILN_RETURN_IF_ERROR(Pod(z));
      int32_t axis;
      KILN_RETURN_IF_ERROR(Pod(axis));
      v.quant.axis = axis;
      uint8_t out;
      KILN_RETURN_IF_ERROR(Pod(out));
      KILN_RETURN_IF_ERROR(TensorData(g.value(id).initializer));
      if (v.kind == ValueKind::kInitializer && !g.value(id).initializer.defined()) {
        return Fail("initializer '" + name + "' without data");
      }
    }
    uint32_t nn;
    KILN_RETURN_IF_ERROR(Count(nn, 24));
    for (uint32_t i = 0; i < nn; ++i) {
      std::string name, op, domain;
      KILN_RETURN_IF_ERROR(Str(name));
      KILN_RETURN_IF_ERROR(Str(op));
      KILN_RETURN_IF_ERROR(Str(domain));
      int32_t opset;
      KILN_RETURN_IF_ERROR(Pod(opset));
      std::vector<ValueId> ins, outs;
      uint32_t k;
      KILN_RETURN_IF_ERROR(Count(k, 4));
      for (uint32_t j = 0; j < k; ++j) {
        uint32_t v;
        KILN_RETURN_IF_ERROR(Id(v, nv, true));
        ins.emplace_back(v);
      }
      KILN_RETURN_IF_ERROR(Count(k, 4));
      for (uint32_t j = 0; j < k; ++j) {
        uint32_t v;
        KILN_RETURN_IF_ERROR(Id(v, nv, true));
        outs.emplace_back(v);
      }
      Attributes attrs;
      KILN_RETURN_IF_ERROR(Count(k, 5));
      for (uint32_t j = 0; j < k; ++j) {
        Attribute a;
        KILN_RETURN_IF_ERROR(AttrData(a, depth));
        attrs.Add(std::move(a));
      }
      g.AddNode(name, op, ins, outs, std::move(attrs), domain, opset);
    }
    uint32_t k;
    KILN_RETURN_IF_ERROR(Count(k, 4));
    for (uint32_t j = 0; j < k; ++j) {
      uint32_t v;
      KILN_RETURN_IF_ERROR(Id(v, nv, false));
      const ValueKind kind = g.value(ValueId(v)).kind;
      g.MarkInput(ValueId(v));
      g.value(ValueId(v)).kind = kind;
    }
    KILN_RETURN_IF_ERROR(Count(k, 4));
    for (uint32_t j = 0; j < k; ++j) {
      uint32_t v;
      KILN_RETURN_IF_ERROR(Id(v, nv, false));
      g.MarkOutput(ValueId(v));
    }
    return Status::Ok();
  }
  Status AttrData(Attribute& a, int depth) {
    KILN_RETURN_IF_ERROR(Str(a.name));
    uint8_t kind;
    KILN_RETURN_IF_ERROR(Pod(kind));
    using K = Attribute::Kind;
    if (kind > static_cast<uint8_t>(K::kGraphs)) return Fail("bad attribute kind");
    a.kind = static_cast<K>(kind);
    uint32_t n;
    switch (a.kind) {
      case K::kFloat: return Pod(a.f);
      case K::kInt: return Pod(a.i);
      case K::kString: return Str(a.s);
      case K::kTensor: return TensorData(a.t);
      case K::kGraph:
        a.g = std::make_shared<Graph>();
        return GraphData(*a.g, depth + 1);
      case K::kFloats:
        KILN_RETURN_IF_ERROR(Count(n, 4));
        a.floats.resize(n);
        for (float& f : a.floats) KILN_RETURN_IF_ERROR(Pod(f));
        return Status::Ok();
      case K::kInts:
        KILN_RETURN_IF_ERROR(Count(n, 8));
        a.ints.resize(n);
        for (int64_t& i : a.ints) KILN_RETURN_IF_ERROR(Pod(i));
        return Status::Ok();
      case K::kStrings:
        KILN_RETURN_IF_ERROR(Count(n, 4));
        a.strings.resize(n);
        for (auto& s : a.strings) KILN_RETURN_IF_ERROR(Str(s));
        return Status::Ok();
      case K::kTensors:
        KILN_RETURN_IF_ERROR(Count(n, 1));
        a.tensors.resize(n);
        for (auto& t : a.tensors) KILN_RETURN_IF_ERROR(TensorData(t));
        return Status::Ok();
      case K::kGraphs:
        KILN_RETURN_IF_ERROR(Count(n, 4));
        for (uint32_t i = 0; i < n; ++i) {
          a.graphs.push_back(std::make_shared<Graph>());
          KILN_RETURN_IF_ERROR(GraphData(*a.graphs.back(), depth + 1));
        }
        return Status::Ok();
    }
    return Status::Ok();
  }
  Status ModelData(Model& m) {
    KILN_RETURN_IF_ERROR(Pod(m.ir_version));
    KILN_RETURN_IF_ERROR(Str(m.producer_name));
    KILN_RETURN_IF_ERROR(Str(m.producer_version));
    uint32_t n;
    KILN_RETURN_IF_ERROR(Count(n, 8));
    for (uint32_t i = 0; i < n; ++i) {
      std::string d;
      int32_t v;
      KILN_RETURN_IF_ERROR(Str(d));
      KILN_RETURN_IF_ERROR(Pod(v));
      m.opsets[d] = v;
    }
    KILN_RETURN_IF_ERROR(Count(n, 8));
    for (uint32_t i = 0; i < n; ++i) {
      std::string k, v;
      KILN_RETURN_IF_ERROR(Str(k));
      KILN_RETURN_IF_ERROR(Str(v));
      m.metadata[k] = v;
    }
    KILN_RETURN_IF_ERROR(GraphData(m.graph, 0));
    if (pos_ != n_) return Fail("trailing bytes after the graph");
    return Status::Ok();
  }

 private:
  const char* p_;
  size_t n_;
  size_t pos_ = 0;
  const char* w_;
  size_t wn_;
  std::shared_ptr<void> owner_;
  std::string what_;
};

struct Section {
  uint32_t id = 0;
  uint64_t offset = 0, size = 0;
  uint32_t crc = 0;
};

template <typename T>
void Put(std::string& s, T v) {
  s.append(reinterpret_cast<const char*>(&v), sizeof(T));
}
template <typename T>
T Get(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

struct Mapping {
  void* base = nullptr;
  size_t size = 0;
  std::string owned;  // LoadPlanBytes
  ~Mapping() {
    if (base != nullptr && owned.empty()) ::munmap(base, size);
  }
};

// Verifies header and table, then each requested section's checksum before it is read.
Result<std::vector<Section>> ReadTable(const char* p, size_t size, const std::string& what,
                                       uint32_t* version) {
  if (size < kHeaderBytes) {
    return InvalidArgument(what + ": " + std::to_string(size) +
                           " bytes, too short for a compiled plan (truncated?)");
  }
  if (std::memcmp(p, kMagic, 8) != 0) return InvalidArgument(what + ": not a Kiln compiled plan (bad magic)");
  *version = Get<uint32_t>(p + 8);
  if (*version != kPlanFormatVersion) {
    return InvalidArgument(what + ": plan format version " + std::to_string(*version) +
                           ", this Kiln reads version " + std::to_string(kPlanFormatVersion));
  }
  const uint32_t count = Get<uint32_t>(p + 12);
  const uint64_t file_size = Get<uint64_t>(p + 16);
  if (file_size != size) {
    return InvalidArgument(what + ": the header says " + std::to_string(file_size) +
                           " bytes, the file has " + std::to_string(size) + " (truncated or extended)");
  }
  if (count == 0 || count > 16 || kHeaderBytes + count * kEntryBytes > size) {
    return InvalidArgument(what + ": bad section count " + std::to_string(count));
  }
  std::string covered(p, 24);
  covered.append(p + kHeaderBytes, count * kEntryBytes);
  if (Crc32c(covered.data(), covered.size()) != Get<uint32_t>(p + 24)) {
    return InvalidArgument(what + ": header or section table checksum mismatch (corrupted)");
  }
  std::vector<Section> out;
  for (uint32_t i = 0; i < count; ++i) {
    const char* e = p + kHeaderBytes + i * kEntryBytes;
    Section s;
    s.id = Get<uint32_t>(e);
    s.offset = Get<uint64_t>(e + 8);
    s.size = Get<uint64_t>(e + 16);
    s.crc = Get<uint32_t>(e + 24);
    if (s.offset > size || s.size > size - s.offset) {
      return InvalidArgument(what + ": section " + SectionName(s.id) + " at offset " +
                             std::to_string(s.offset) + " lies outside the file");
    }
    out.push_back(s);
  }
  return out;
}

Result<const Section*> Verified(const std::vector<Section>& table, uint32_t id, const char* p,
                                const std::string& what) {
  for (const Section& s : table) {
    if (s.id != id) continue;
    if (Crc32c(p + s.offset, s.size) != s.crc) {
      return InvalidArgument(what + ": section " + SectionName(id) + " (offset " +
                             std::to_string(s.offset) + ", " + std::to_string(s.size) +
                             " bytes) fails its checksum: corrupted or tampered with");
    }
    return &s;
  }
  return InvalidArgument(what + ": section " + SectionName(id) + " is missing");
}

Result<LoadedPlan> Decode(const std::shared_ptr<Mapping>& map, const std::string& what) {
  const char* p = static_cast<const char*>(map->base);
  LoadedPlan lp;
  KILN_ASSIGN_OR_RETURN(auto table, ReadTable(p, map->size, what, &lp.format_version));
  KILN_ASSIGN_OR_RETURN(const Section* key, Verified(table, kKey, p, what));
  KILN_ASSIGN_OR_RETURN(const Section* meta, Verified(table, kMeta, p, what));
  KILN_ASSIGN_OR_RETURN(const Section* weights, Verified(table, kWeights, p, what));
  KILN_ASSIGN_OR_RETURN(const Section* graph, Verified(table, kGraph, p, what));
  lp.contents.key_json.assign(p + key->offset, key->size);
  lp.contents.meta_json.assign(p + meta->offset, meta->size);
  Reader r(p + graph->offset, graph->size, p + weights->offset, weights->size, map, what);
  KILN_RETURN_IF_ERROR(r.ModelData(lp.model));
  lp.file_bytes = static_cast<int64_t>(map->size);
  return lp;
}

}  // namespace

Status WritePlanFile(const std::string& path, const PlanContents& contents, const Model& model) {
  std::string weights;
  Writer w(&weights);
  w.ModelData(model);
  const std::vector<std::pair<uint32_t, const std::string*>> parts = {
      {kKey, &contents.key_json}, {kMeta, &contents.meta_json}, {kGraph, &w.out},
      {kWeights, &weights}};
  std::string table;
  size_t offset = AlignUp(kHeaderBytes + parts.size() * kEntryBytes);
  std::vector<size_t> offsets;
  for (const auto& [id, bytes] : parts) {
    offsets.push_back(offset);
    Put<uint32_t>(table, id);
    Put<uint32_t>(table, 0);
    Put<uint64_t>(table, offset);
    Put<uint64_t>(table, bytes->size());
    Put<uint32_t>(table, Crc32c(bytes->data(), bytes->size()));
    Put<uint32_t>(table, 0);
    offset = AlignUp(offset + bytes->size());
  }
  const size_t total = offsets.back() + parts.back().second->size();
  std::string file(kMagic, 8);
  Put<uint32_t>(file, kPlanFormatVersion);
  Put<uint32_t>(file, static_cast<uint32_t>(parts.size()));
  Put<uint64_t>(file, total);
  std::string covered = file + table;
  Put<uint32_t>(file, Crc32c(covered.data(), covered.size()));
  Put<uint32_t>(file, 0);
  file += table;
  for (size_t i = 0; i < parts.size(); ++i) {
    file.resize(offsets[i], '\0');
    file += *parts[i].second;
  }
  return WriteFileAtomic(path, file);
}

Result<LoadedPlan> LoadPlanFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NotFound("cannot open compiled plan " + path);
  struct stat st;
  if (::fstat(fd, &st) != 0 || st.st_size <= 0) {
    ::close(fd);
    return InvalidArgument(path + ": empty or unreadable compiled plan");
  }
  void* base = ::mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (base == MAP_FAILED) return IoError("cannot map " + path);
  auto map = std::make_shared<Mapping>();
  map->base = base;
  map->size = static_cast<size_t>(st.st_size);
  return Decode(map, path);
}

Result<LoadedPlan> LoadPlanBytes(const void* data, size_t size, const std::string& what) {
  auto map = std::make_shared<Mapping>();
  // Over-aligned copy: tensors read from it with aligned loads.
  map->owned.assign(static_cast<const char*>(data), size);
  map->base = map->owned.data();
  map->size = size;
  return Decode(map, what);
}

Result<PlanContents> ReadPlanKey(const std::string& path) {
  KILN_ASSIGN_OR_RETURN(std::string bytes, ReadFileBytes(path));
  uint32_t version = 0;
  KILN_ASSIGN_OR_RETURN(auto table, ReadTable(bytes.data(), bytes.size(), path, &version));
  KILN_ASSIGN_OR_RETURN(const Section* key, Verified(table, kKey, bytes.data(), path));
  PlanContents c;
  c.key_json.assign(bytes.data() + key->offset, key->size);
  return c;
}

}  // namespace kiln
