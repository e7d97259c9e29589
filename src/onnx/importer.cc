// ONNX protobuf -> Kiln IR. The only translation unit family that sees protobuf types.
#include "onnx/importer.h"

#include <onnx/onnx-data_pb.h>
#include <google/protobuf/io/coded_stream.h>
#include <onnx/onnx_pb.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unordered_map>

#include "ir/op_versions.h"
#include "ir/shape_inference.h"
#include "ir/verifier.h"
#include "onnx/slim_proto.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

Result<std::string> ReadFileBytes(const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return NotFound("no such file: " + path);
  std::ifstream in(path, std::ios::binary);
  if (!in) return IoError("cannot open " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  if (!in.good() && !in.eof()) return IoError("cannot read " + path);
  return ss.str();
}

// Resolves an external data location against `base_dir`; rejects anything that leaves it.
Result<std::string> SafeExternalPath(const std::string& base_dir, const std::string& location) {
  if (location.empty()) return InvalidArgument("external data has an empty location");
  fs::path rel(location);
  if (rel.is_absolute()) {
    return InvalidArgument("external data location '" + location + "' is an absolute path");
  }
  for (const auto& part : rel) {
    if (part == "..") {
      return InvalidArgument("external data location '" + location +
                             "' leaves the model's folder");
    }
  }
  fs::path full = fs::path(base_dir.empty() ? "." : base_dir) / rel;
  std::error_code ec;
  fs::path canon_base = fs::weakly_canonical(base_dir.empty() ? "." : base_dir, ec);
  fs::path canon = fs::weakly_canonical(full, ec);
  if (ec) return InvalidArgument("external data location '" + location + "' cannot be resolved");
  auto b = canon_base.string(), c = canon.string();
  if (c.compare(0, b.size(), b) != 0) {
    return InvalidArgument("external data location '" + location +
                           "' resolves outside the model's folder");
  }
  return canon.string();
}

// An ONNX element type code Kiln does not hold, with its name when ONNX defines one
// ("22 (int4)"): float8 (opset 19), int4/uint4 (21), float4e2m1 (23) and complex types.
std::string UnsupportedTypeName(int code) {
  static constexpr struct {
    int code;
    const char* name;
  } kNames[] = {{14, "complex64"},      {15, "complex128"}, {17, "float8e4m3fn"},
                {18, "float8e4m3fnuz"}, {19, "float8e5m2"}, {20, "float8e5m2fnuz"},
                {21, "uint4"},          {22, "int4"},       {23, "float4e2m1"}};
  for (const auto& n : kNames) {
    if (n.code == code) return std::to_string(code) + " (" + n.name + ")";
  }
  return std::to_string(code);
}

template <typename Field, typename T>
void CopyField(const Field& field, T* out) {
  for (int i = 0; i < field.size(); ++i) out[i] = static_cast<T>(field.Get(i));
}

// Where a stripped initializer's raw_data lies in the model file (slim_proto.h).
struct StrippedSource {
  // The file, kept open by the large initializers read from it (Tensor::LoadFromFile), so that
  // a session can release their pages once its kernels have packed them and read them again.
  std::shared_ptr<const SourceFile> file;
  std::vector<onnx_internal::StrippedBytes> by_initializer;  // ordered by initializer index
  std::vector<onnx_internal::StrippedBytes> by_node;  // node attributes, by (node, attribute)
  const onnx_internal::StrippedBytes* FindAttribute(int node, int attribute) const {
    auto it = std::lower_bound(by_node.begin(), by_node.end(), std::pair(node, attribute),
                               [](const onnx_internal::StrippedBytes& s, std::pair<int, int> k) {
                                 return std::pair(s.node, s.attribute) < k;
                               });
    return it != by_node.end() && it->node == node && it->attribute == attribute ? &*it
                                                                                  : nullptr;
  }
  const onnx_internal::StrippedBytes* Find(int initializer) const {
    auto it = std::lower_bound(by_initializer.begin(), by_initializer.end(), initializer,
                               [](const onnx_internal::StrippedBytes& s, int i) {
                                 return s.initializer < i;
                               });
    return it != by_initializer.end() && it->initializer == initializer ? &*it : nullptr;
  }
};

// Initializers of at least this many bytes read from a model file get pages of their own that
// can be released and read again (Tensor::LoadFromFile); smaller ones share the heap.
constexpr size_t kReloadableBytes = size_t{64} << 10;

Result<Tensor> ConvertTensor(const onnx::TensorProto& tp, const std::string& base_dir,
                             const onnx_internal::StrippedBytes* stripped = nullptr,
                             const StrippedSource* source = nullptr) {
  const std::string name = tp.name().empty() ? "<unnamed>" : tp.name();
  const ElementType type = ElementTypeFromOnnx(tp.data_type());
  if (type == ElementType::kUndefined) {
    return Unimplemented("tensor '" + name + "' has unsupported data type " +
                         UnsupportedTypeName(tp.data_type()));
  }
  if (tp.has_segment()) return Unimplemented("tensor '" + name + "' is segmented");
  Shape shape(tp.dims().begin(), tp.dims().end());
  auto count = CheckedNumElements(shape);
  if (!count.ok()) return InvalidArgument("tensor '" + name + "': " + count.status().message());
  const int64_t n = *count;
  const size_t bytes = static_cast<size_t>(n) * ElementSize(type);
  const std::string described = std::string(ElementTypeName(type)) + ShapeToString(shape);
  // Data inside the proto takes at least a byte per element in every encoding: a tensor that
  // declares more elements than its proto has bytes is refused before anything is allocated
  // (a 2^40-element initializer with no data would otherwise be allocated first).
  if (stripped != nullptr) {
    // raw_data left in the file by the slim parse: read once, straight into the tensor.
    if (type == ElementType::kString) {
      return InvalidArgument("string tensor '" + name + "' uses raw_data");
    }
    if (stripped->size != bytes) {
      return InvalidArgument("tensor '" + name + "' of " + described + " holds " +
                             std::to_string(stripped->size) + " bytes, expected " +
                             std::to_string(bytes));
    }
    if (bytes >= kReloadableBytes) {
      auto loaded = Tensor::LoadFromFile(type, shape, source->file, stripped->offset,
                                         "tensor '" + name + "'");
      if (!loaded.ok()) return loaded.status().WithContext("tensor '" + name + "'");
      return std::move(loaded).value();
    }
    auto allocated = Tensor::AllocateUninitialized(type, shape);
    if (!allocated.ok()) return allocated.status().WithContext("tensor '" + name + "'");
    // pread (SourceFile::Read): the file's pages stay in the page cache, not in this
    // process's resident set.
    KILN_RETURN_IF_ERROR(source->file->Read(stripped->offset, stripped->size, allocated->raw(),
                                            "tensor '" + name + "'"));
    return std::move(allocated).value();
  }
  if (tp.data_location() != onnx::TensorProto::EXTERNAL && n > 0 &&
      static_cast<uint64_t>(n) > tp.ByteSizeLong()) {
    return InvalidArgument("tensor '" + name + "' declares " + described + " (" +
                           std::to_string(n) + " elements) but holds only " +
                           std::to_string(tp.ByteSizeLong()) + " bytes of data");
  }
  Tensor t;
  auto allocate = [&]() -> Status {
    auto allocated = Tensor::Allocate(type, shape);
    if (!allocated.ok()) return allocated.status().WithContext("tensor '" + name + "'");
    t = std::move(allocated).value();
    return Status::Ok();
  };
  if (tp.data_location() != onnx::TensorProto::EXTERNAL) KILN_RETURN_IF_ERROR(allocate());
  auto size_error = [&](int64_t found, const char* what) {
    return InvalidArgument("tensor '" + name + "' of " + described + " holds " +
                           std::to_string(found) + " " + what + ", expected " +
                           std::to_string(type == ElementType::kString ? n : static_cast<int64_t>(bytes)));
  };

  if (tp.data_location() == onnx::TensorProto::EXTERNAL) {
    std::string location;
    int64_t offset = 0, length = -1;
    for (const auto& kv : tp.external_data()) {
      try {
        if (kv.key() == "location") location = kv.value();
        if (kv.key() == "offset") offset = std::stoll(kv.value());
        if (kv.key() == "length") length = std::stoll(kv.value());
      } catch (...) {
        return InvalidArgument("tensor '" + name + "' has a malformed external_data entry '" +
                               kv.key() + "'");
      }
    }
    if (type == ElementType::kString) {
      return Unimplemented("tensor '" + name + "': string tensors cannot use external data");
    }
    KILN_ASSIGN_OR_RETURN(std::string path, SafeExternalPath(base_dir, location));
    std::error_code ec;
    const auto file_size = static_cast<int64_t>(fs::file_size(path, ec));
    if (ec) return NotFound("tensor '" + name + "': external data file '" + location + "' not found");
    if (length < 0) length = static_cast<int64_t>(bytes);
    if (offset < 0 || length != static_cast<int64_t>(bytes) || offset > file_size ||
        file_size - offset < length) {
      return InvalidArgument("tensor '" + name + "': external data in '" + location +
                             "' (offset " + std::to_string(offset) + ", length " +
                             std::to_string(length) + ", file size " + std::to_string(file_size) +
                             ") does not hold " + std::to_string(bytes) + " bytes for " +
                             described);
    }
    KILN_RETURN_IF_ERROR(allocate());
    std::ifstream in(path, std::ios::binary);
    in.seekg(offset);
    in.read(static_cast<char*>(t.raw()), static_cast<std::streamsize>(bytes));
    if (!in) return IoError("tensor '" + name + "': cannot read external data '" + location + "'");
    return t;
  }

  if (tp.has_raw_data()) {
    if (type == ElementType::kString) return InvalidArgument("string tensor '" + name + "' uses raw_data");
    if (tp.raw_data().size() != bytes) return size_error(static_cast<int64_t>(tp.raw_data().size()), "bytes");
    if (bytes) std::memcpy(t.raw(), tp.raw_data().data(), bytes);
    return t;
  }

  auto expect = [&](int64_t found) -> Status {
    if (found != n) return size_error(found, "values");
    return Status::Ok();
  };
  switch (type) {
    case ElementType::kF32:
      KILN_RETURN_IF_ERROR(expect(tp.float_data_size()));
      CopyField(tp.float_data(), t.data<float>());
      break;
    case ElementType::kF64:
      KILN_RETURN_IF_ERROR(expect(tp.double_data_size()));
      CopyField(tp.double_data(), t.data<double>());
      break;
    case ElementType::kI64:
      KILN_RETURN_IF_ERROR(expect(tp.int64_data_size()));
      CopyField(tp.int64_data(), t.data<int64_t>());
      break;
    case ElementType::kU32:
      KILN_RETURN_IF_ERROR(expect(tp.uint64_data_size()));
      CopyField(tp.uint64_data(), t.data<uint32_t>());
      break;
    case ElementType::kU64:
      KILN_RETURN_IF_ERROR(expect(tp.uint64_data_size()));
      CopyField(tp.uint64_data(), t.data<uint64_t>());
      break;
    case ElementType::kI32:
      KILN_RETURN_IF_ERROR(expect(tp.int32_data_size()));
      CopyField(tp.int32_data(), t.data<int32_t>());
      break;
    case ElementType::kI8:
      KILN_RETURN_IF_ERROR(expect(tp.int32_data_size()));
      CopyField(tp.int32_data(), t.data<int8_t>());
      break;
    case ElementType::kU8:
      KILN_RETURN_IF_ERROR(expect(tp.int32_data_size()));
      CopyField(tp.int32_data(), t.data<uint8_t>());
      break;
    case ElementType::kI16:
      KILN_RETURN_IF_ERROR(expect(tp.int32_data_size()));
      CopyField(tp.int32_data(), t.data<int16_t>());
      break;
    case ElementType::kU16:
      KILN_RETURN_IF_ERROR(expect(tp.int32_data_size()));
      CopyField(tp.int32_data(), t.data<uint16_t>());
      break;
    case ElementType::kBool:
      KILN_RETURN_IF_ERROR(expect(tp.int32_data_size()));
      for (int i = 0; i < tp.int32_data_size(); ++i) t.data<bool>()[i] = tp.int32_data(i) != 0;
      break;
    case ElementType::kF16:
    case ElementType::kBF16:
      // Stored as bit patterns in int32_data.
      KILN_RETURN_IF_ERROR(expect(tp.int32_data_size()));
      for (int i = 0; i < tp.int32_data_size(); ++i) {
        t.data<uint16_t>()[i] = static_cast<uint16_t>(tp.int32_data(i));
      }
      break;
    case ElementType::kString:
      KILN_RETURN_IF_ERROR(expect(tp.string_data_size()));
      for (int i = 0; i < tp.string_data_size(); ++i) t.data<std::string>()[i] = tp.string_data(i);
      break;
    default:
      return Unimplemented("tensor '" + name + "' has unsupported type");
  }
  return t;
}

// Type of a TypeProto: a tensor, a sequence of tensors, or an optional of either (maps and
// sparse tensors are not supported). `name` is for messages.
Result<TypeInfo> ConvertTypeProto(const onnx::TypeProto& tp, const std::string& name) {
  TypeInfo info;
  if (tp.value_case() == onnx::TypeProto::VALUE_NOT_SET) return info;  // untyped: to be inferred
  if (tp.has_sequence_type() || tp.has_optional_type()) {
    const bool seq = tp.has_sequence_type();
    const onnx::TypeProto& elem = seq ? tp.sequence_type().elem_type() : tp.optional_type().elem_type();
    KILN_ASSIGN_OR_RETURN(TypeInfo inner, ConvertTypeProto(elem, name));
    if (!inner.is_tensor() && (seq || inner.kind != TensorKind::kSequence)) {
      return Unimplemented("value '" + name + "' has type " + (seq ? "seq(" : "optional(") +
                           inner.ToString() + "), which Kiln does not support (a sequence holds "
                           "tensors, an optional a tensor or a sequence of tensors)");
    }
    info = inner;
    if (seq) {
      info.kind = TensorKind::kSequence;
    } else {
      info.of_sequence = inner.kind == TensorKind::kSequence;
      info.kind = TensorKind::kOptional;
    }
    return info;
  }
  if (!tp.has_tensor_type()) {
    const char* kind = tp.has_map_type() ? "a map" :
                       tp.has_sparse_tensor_type() ? "a sparse tensor" : "an unknown";
    return Unimplemented("value '" + name + "' has " + kind + " type, which Kiln does not support");
  }
  const auto& tt = tp.tensor_type();
  if (tt.elem_type() != 0) {
    info.type = ElementTypeFromOnnx(tt.elem_type());
    if (info.type == ElementType::kUndefined) {
      return Unimplemented("value '" + name + "' has unsupported element type " +
                           UnsupportedTypeName(tt.elem_type()));
    }
  }
  if (tt.has_shape()) {
    DimVector dims;
    for (const auto& d : tt.shape().dim()) {
      if (d.has_dim_value()) {
        if (d.dim_value() < 0) {
          return InvalidArgument("value '" + name + "' has a negative dimension " +
                                 std::to_string(d.dim_value()));
        }
        dims.push_back(Dim(d.dim_value()));
      } else if (d.has_dim_param() && !d.dim_param().empty()) {
        dims.push_back(Dim::Symbol(d.dim_param()));
      } else {
        dims.push_back(Dim());
      }
    }
    info.shape = std::move(dims);
  }
  return info;
}

// Type of a ValueInfoProto (see ConvertTypeProto).
Result<TypeInfo> ConvertType(const onnx::ValueInfoProto& vi) {
  if (!vi.has_type()) return TypeInfo{};  // untyped: to be inferred
  return ConvertTypeProto(vi.type(), vi.name());
}

class GraphImporter {
 public:
  GraphImporter(const std::map<std::string, int>& opsets, std::string base_dir)
      : opsets_(opsets), base_dir_(std::move(base_dir)) {}

  // `outer` lists the names visible from enclosing graphs (with their types).
  Status Import(const onnx::GraphProto& gp, Graph& g,
                const std::vector<const Graph*>& enclosing) {
    // Every later stage (inference, verifier, executor) recurses per nesting level too.
    constexpr size_t kMaxNesting = kMaxGraphNesting;
    if (enclosing.size() > kMaxNesting) {
      return InvalidArgument("graph '" + gp.name() + "' is nested " +
                             std::to_string(enclosing.size()) +
                             " levels deep in subgraph attributes; Kiln accepts at most " +
                             std::to_string(kMaxNesting));
    }
    g.name = gp.name();
    // Initializers first: old models also list them as inputs.
    // Stripped raw_data belongs to the top-level graph's initializers only.
    const StrippedSource* stripped = enclosing.empty() ? stripped_ : nullptr;
    for (int i = 0; i < gp.initializer_size(); ++i) {
      const onnx::TensorProto& init = gp.initializer(i);
      if (init.name().empty()) return InvalidArgument("graph '" + gp.name() + "' has an unnamed initializer");
      if (g.FindValue(init.name())) {
        return InvalidArgument("initializer '" + init.name() + "' is defined twice");
      }
      auto t = ConvertTensor(init, base_dir_, stripped ? stripped->Find(i) : nullptr, stripped);
      if (!t.ok()) return t.status();
      g.AddInitializer(init.name(), std::move(t).value());
    }
    if (gp.sparse_initializer_size() > 0) {
      return Unimplemented("graph '" + gp.name() + "' has sparse initializers");
    }
    for (const auto& in : gp.input()) {
      KILN_ASSIGN_OR_RETURN(TypeInfo info, ConvertType(in));
      if (auto existing = g.FindValue(in.name())) {
        if (g.value(*existing).kind == ValueKind::kInitializer) continue;  // ir < 4 style
        return InvalidArgument("graph input '" + in.name() + "' is declared twice");
      }
      if (in.name().empty()) return InvalidArgument("graph '" + gp.name() + "' has an unnamed input");
      ValueId v = g.AddValue(in.name(), info.type, info.shape);
      g.value(v).info = info;
      g.MarkInput(v);
    }
    // Declared types of intermediate values, applied after node outputs exist.
    std::unordered_map<std::string, TypeInfo> declared;
    for (const auto& vi : gp.value_info()) {
      auto info = ConvertType(vi);
      if (info.ok()) declared[vi.name()] = std::move(info).value();
    }
    for (const auto& out : gp.output()) {
      KILN_ASSIGN_OR_RETURN(TypeInfo info, ConvertType(out));
      declared_outputs_.emplace_back(out.name(), info);
    }

    // Pass 1: create every node's output values so that node order does not matter here (the
    // verifier rejects cycles).
    std::vector<std::vector<ValueId>> node_outputs(static_cast<size_t>(gp.node_size()));
    for (int ni = 0; ni < gp.node_size(); ++ni) {
      const auto& np = gp.node(ni);
      for (const auto& o : np.output()) {
        if (o.empty()) {
          node_outputs[ni].push_back(ValueId());
          continue;
        }
        if (g.FindValue(o)) {
          return InvalidArgument("value '" + o + "' is produced twice (node " + np.op_type() +
                                 " '" + np.name() + "')");
        }
        TypeInfo info;
        if (auto it = declared.find(o); it != declared.end()) info = it->second;
        ValueId ov = g.AddValue(o, info.type, info.shape);
        g.value(ov).info = info;
        node_outputs[ni].push_back(ov);
      }
    }
    // Pass 2: nodes.
    for (int ni = 0; ni < gp.node_size(); ++ni) {
      const auto& np = gp.node(ni);
      const std::string node_name =
          np.name().empty() ? np.op_type() + "_" + std::to_string(ni) : np.name();
      const std::string& domain = np.domain() == "ai.onnx" ? std::string() : np.domain();
      auto op_it = opsets_.find(domain);
      if (op_it == opsets_.end()) {
        return InvalidArgument("node " + np.op_type() + " '" + node_name + "' uses domain '" +
                               domain + "' which the model does not import");
      }
      std::vector<ValueId> inputs;
      for (const auto& in : np.input()) {
        if (in.empty()) {
          inputs.push_back(ValueId());
          continue;
        }
        auto v = g.FindValue(in);
        if (!v) {
          // Outer-scope capture?
          const Value* outer = nullptr;
          for (auto it = enclosing.rbegin(); it != enclosing.rend() && !outer; ++it) {
            if (auto ov = (*it)->FindValue(in)) outer = &(*it)->value(*ov);
          }
          if (outer == nullptr) {
            return InvalidArgument("node " + np.op_type() + " '" + node_name +
                                   "' reads value '" + in + "' that nothing produces");
          }
          ValueId cap = g.AddValue(in, outer->info.type, outer->info.shape);
          g.value(cap).info = outer->info;
          g.value(cap).kind = ValueKind::kOuterScope;
          v = cap;
        }
        inputs.push_back(*v);
      }
      Attributes attrs;
      std::vector<const Graph*> inner_enclosing = enclosing;
      inner_enclosing.push_back(&g);
      for (int ai = 0; ai < np.attribute_size(); ++ai) {
        const auto& ap = np.attribute(ai);
        // Stripped tensor attributes belong to the top-level graph's nodes only.
        const onnx_internal::StrippedBytes* st =
            enclosing.empty() && stripped_ != nullptr ? stripped_->FindAttribute(ni, ai) : nullptr;
        auto a = ConvertAttribute(ap, np, node_name, inner_enclosing, st);
        if (!a.ok()) return a.status();
        attrs.Add(std::move(a).value());
      }
      g.AddNode(node_name, np.op_type(), std::move(inputs), std::move(node_outputs[ni]),
                std::move(attrs), domain, op_it->second);
    }
    for (const auto& [name, info] : declared_outputs_) {
      auto v = g.FindValue(name);
      if (!v) {
        // An output may also be an outer-scope value (subgraph passing a value through).
        const Value* outer = nullptr;
        for (auto it = enclosing.rbegin(); it != enclosing.rend() && !outer; ++it) {
          if (auto ov = (*it)->FindValue(name)) outer = &(*it)->value(*ov);
        }
        if (outer == nullptr) {
          return InvalidArgument("graph output '" + name + "' is not produced by any node");
        }
        ValueId cap = g.AddValue(name, outer->info.type, outer->info.shape);
        g.value(cap).info = outer->info;
        g.value(cap).kind = ValueKind::kOuterScope;
        v = cap;
      }
      Value& val = g.value(*v);
      if (val.info.type == ElementType::kUndefined) val.info.type = info.type;
      if (!val.info.shape) val.info.shape = info.shape;
      if (!info.is_tensor()) {
        val.info.kind = info.kind;
        val.info.of_sequence = info.of_sequence;
      }
      declared_output_types_.push_back(info);
      g.MarkOutput(*v);
    }
    return Status::Ok();
  }

  const std::vector<TypeInfo>& declared_output_types() const { return declared_output_types_; }

 private:
  // `stripped`: where the raw_data of a TENSOR attribute lies in the model file (slim_proto.h).
  Result<Attribute> ConvertAttribute(const onnx::AttributeProto& ap, const onnx::NodeProto& np,
                                     const std::string& node_name,
                                     const std::vector<const Graph*>& enclosing,
                                     const onnx_internal::StrippedBytes* stripped = nullptr) {
    Attribute a;
    a.name = ap.name();
    auto where = [&] { return "attribute '" + ap.name() + "' of node " + np.op_type() + " '" + node_name + "'"; };
    if (!ap.ref_attr_name().empty()) {
      return Unimplemented(where() + " refers to a function attribute");
    }
    switch (ap.type()) {
      case onnx::AttributeProto::FLOAT: a.kind = Attribute::Kind::kFloat; a.f = ap.f(); break;
      case onnx::AttributeProto::INT: a.kind = Attribute::Kind::kInt; a.i = ap.i(); break;
      case onnx::AttributeProto::STRING: a.kind = Attribute::Kind::kString; a.s = ap.s(); break;
      case onnx::AttributeProto::FLOATS:
        a.kind = Attribute::Kind::kFloats;
        a.floats.assign(ap.floats().begin(), ap.floats().end());
        break;
      case onnx::AttributeProto::INTS:
        a.kind = Attribute::Kind::kInts;
        a.ints.assign(ap.ints().begin(), ap.ints().end());
        break;
      case onnx::AttributeProto::STRINGS:
        a.kind = Attribute::Kind::kStrings;
        a.strings.assign(ap.strings().begin(), ap.strings().end());
        break;
      case onnx::AttributeProto::TENSOR: {
        a.kind = Attribute::Kind::kTensor;
        auto t = ConvertTensor(ap.t(), base_dir_, stripped, stripped ? stripped_ : nullptr);
        if (!t.ok()) return t.status().WithContext(where());
        a.t = std::move(t).value();
        break;
      }
      case onnx::AttributeProto::TENSORS:
        a.kind = Attribute::Kind::kTensors;
        for (const auto& tp : ap.tensors()) {
          auto t = ConvertTensor(tp, base_dir_);
          if (!t.ok()) return t.status().WithContext(where());
          a.tensors.push_back(std::move(t).value());
        }
        break;
      case onnx::AttributeProto::GRAPH: {
        a.kind = Attribute::Kind::kGraph;
        a.g = std::make_shared<Graph>();
        GraphImporter sub(opsets_, base_dir_);
        Status s = sub.Import(ap.g(), *a.g, enclosing);
        if (!s.ok()) return s.WithContext("in " + where());
        break;
      }
      case onnx::AttributeProto::GRAPHS:
        a.kind = Attribute::Kind::kGraphs;
        for (const auto& gp : ap.graphs()) {
          auto g = std::make_shared<Graph>();
          GraphImporter sub(opsets_, base_dir_);
          Status s = sub.Import(gp, *g, enclosing);
          if (!s.ok()) return s.WithContext("in " + where());
          a.graphs.push_back(std::move(g));
        }
        break;
      case onnx::AttributeProto::SPARSE_TENSOR:
      case onnx::AttributeProto::SPARSE_TENSORS:
        return Unimplemented(where() + " is a sparse tensor, which Kiln does not support");
      case onnx::AttributeProto::TYPE_PROTO: {
        // Optional's `type`: kept as ints {TensorKind, ONNX element type, of_sequence} (the
        // only type attribute of the default domain; see backends/ref/sequence.cc).
        auto t = ConvertTypeProto(ap.tp(), where());
        if (!t.ok()) return t.status();
        a.kind = Attribute::Kind::kInts;
        a.ints = {static_cast<int64_t>(t->kind), ElementTypeToOnnx(t->type), t->of_sequence ? 1 : 0};
        break;
      }
      case onnx::AttributeProto::TYPE_PROTOS:
        return Unimplemented(where() + " is a type proto, which Kiln does not support");
      default:
        return InvalidArgument(where() + " has no valid type (" + std::to_string(ap.type()) + ")");
    }
    return a;
  }

  const std::map<std::string, int>& opsets_;
  std::string base_dir_;

 public:
  const StrippedSource* stripped_ = nullptr;

 private:
  std::vector<std::pair<std::string, TypeInfo>> declared_outputs_;
  std::vector<TypeInfo> declared_output_types_;
};

Result<Model> ImportProto(const onnx::ModelProto& mp, const ImportOptions& options,
                          const std::string& path, const StrippedSource* stripped = nullptr) {
  Model model;
  model.path = path;
  model.ir_version = mp.ir_version();
  model.producer_name = mp.producer_name();
  model.producer_version = mp.producer_version();
  for (const auto& p : mp.metadata_props()) model.metadata[p.key()] = p.value();
  if (!mp.has_graph()) return InvalidArgument("model has no graph (not an ONNX model?)");
  if (mp.ir_version() <= 0) return InvalidArgument("model has no ir_version (not an ONNX model?)");
  for (const auto& op : mp.opset_import()) {
    std::string domain = op.domain() == "ai.onnx" ? "" : op.domain();
    model.opsets[domain] = static_cast<int>(op.version());
  }
  if (mp.opset_import_size() == 0) model.opsets[""] = 1;  // ir_version 1/2 models
  if (auto it = model.opsets.find(""); it != model.opsets.end()) {
    if (it->second < 1 || it->second > kMaxDefaultOpset) {
      return Unimplemented("model imports ai.onnx opset " + std::to_string(it->second) +
                           "; Kiln supports opsets 1 to " + std::to_string(kMaxDefaultOpset));
    }
  }
  GraphImporter importer(model.opsets, options.external_data_dir);
  importer.stripped_ = stripped;
  KILN_RETURN_IF_ERROR(importer.Import(mp.graph(), model.graph, {}));
  KILN_RETURN_IF_ERROR(VerifyGraph(model.graph));
  // Op versions of opsets 18-23 that Kiln does not implement (ir/op_versions.h).
  KILN_RETURN_IF_ERROR(CheckOpVersions(model.graph));
  if (options.infer_shapes) {
    KILN_RETURN_IF_ERROR(InferShapes(model.graph, InferShapesOptions{}));
  }
  return model;
}

// ParseFromArray with a nesting limit above protobuf's default of 100 messages, so that deeply
// nested subgraphs reach the importer's own check (GraphImporter::Import, 32 graph levels: about
// 3 messages each), which names the problem.
bool ParseModel(const void* data, size_t size, onnx::ModelProto& mp) {
  google::protobuf::io::CodedInputStream in(static_cast<const uint8_t*>(data),
                                            static_cast<int>(size));
  in.SetRecursionLimit(400);
  return mp.ParseFromCodedStream(&in) && in.ConsumedEntireMessage();
}

}  // namespace

Result<Model> ImportOnnxBytes(const void* data, size_t size, const ImportOptions& options) {
  if (size > static_cast<size_t>(INT32_MAX)) {
    return Unimplemented("model protobuf is larger than 2 GiB; use external data");
  }
  onnx::ModelProto mp;
  if (size == 0) return InvalidArgument("model is empty (0 bytes)");
  if (!ParseModel(data, size, mp)) {
    return InvalidArgument("model is not a valid ONNX protobuf (" + std::to_string(size) +
                           " bytes could not be parsed; truncated or not ONNX)");
  }
  return ImportProto(mp, options, "");
}

Result<Model> ImportOnnxFile(const std::string& path, const ImportOptions& options) {
  ImportOptions opts = options;
  if (opts.external_data_dir.empty()) {
    opts.external_data_dir = fs::path(path).parent_path().string();
    if (opts.external_data_dir.empty()) opts.external_data_dir = ".";
  }
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return NotFound("no such file: " + path);
  // The file is mapped for the wire walk (which touches only the pages of the graph's
  // structure); large initializers are then read once, straight into their tensors
  // (slim_proto.h). A file the walk does not understand is parsed whole, as before.
  struct File {
    int fd = -1;
    void* map = MAP_FAILED;
    size_t size = 0;
    ~File() {
      if (map != MAP_FAILED) ::munmap(map, size);
      if (fd >= 0) ::close(fd);
    }
  } file;
  file.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (file.fd < 0) return IoError("cannot open " + path);
  struct stat st {};
  if (::fstat(file.fd, &st) != 0) return IoError("cannot stat " + path);
  file.size = static_cast<size_t>(st.st_size);
  if (file.size == 0) return InvalidArgument(path + ": model file is empty");
  file.map = ::mmap(nullptr, file.size, PROT_READ, MAP_PRIVATE, file.fd, 0);
  if (file.map == MAP_FAILED) return IoError("cannot map " + path);
  const auto* bytes = static_cast<const uint8_t*>(file.map);
  auto slim = onnx_internal::SlimModelBytes(bytes, file.size, /*min_bytes=*/4096);
  const uint8_t* parse_data = slim ? reinterpret_cast<const uint8_t*>(slim->bytes.data()) : bytes;
  const size_t parse_size = slim ? slim->bytes.size() : file.size;
  onnx::ModelProto mp;
  if (parse_size > static_cast<size_t>(INT32_MAX) || !ParseModel(parse_data, parse_size, mp)) {
    return InvalidArgument(path + ": not a valid ONNX protobuf (" + std::to_string(file.size) +
                           " bytes could not be parsed; truncated or not ONNX)");
  }
  StrippedSource source;
  if (slim) {
    for (const onnx_internal::StrippedBytes& b : slim->stripped) {
      (b.initializer >= 0 ? source.by_initializer : source.by_node).push_back(b);
    }
    const int dup_fd = ::fcntl(file.fd, F_DUPFD_CLOEXEC, 0);
    if (dup_fd < 0) return IoError("cannot open " + path + " again for its weights");
    KILN_ASSIGN_OR_RETURN(source.file, SourceFile::FromFd(dup_fd, path));
    slim->bytes = std::string();
  }
  auto m = ImportProto(mp, opts, path, slim ? &source : nullptr);
  if (!m.ok()) return m.status().WithContext(path);
  return m;
}

Result<Tensor> ParseTensorProto(const void* data, size_t size, const std::string& base_dir) {
  onnx::TensorProto tp;
  if (size > static_cast<size_t>(INT32_MAX) || !tp.ParseFromArray(data, static_cast<int>(size))) {
    return InvalidArgument("not a valid TensorProto");
  }
  return ConvertTensor(tp, base_dir);
}

namespace {

Result<Tensor> ConvertSequence(const onnx::SequenceProto& sp, const std::string& base_dir) {
  if (sp.elem_type() != onnx::SequenceProto::TENSOR &&
      sp.elem_type() != onnx::SequenceProto::UNDEFINED) {
    return Unimplemented("sequence '" + sp.name() + "' holds elements of kind " +
                         std::to_string(sp.elem_type()) + "; Kiln's sequences hold tensors");
  }
  std::vector<Tensor> items;
  ElementType elem = ElementType::kUndefined;
  for (const auto& tp : sp.tensor_values()) {
    KILN_ASSIGN_OR_RETURN(Tensor t, ConvertTensor(tp, base_dir));
    if (elem != ElementType::kUndefined && t.type() != elem) {
      return InvalidArgument("sequence '" + sp.name() + "' mixes " + ElementTypeName(elem) +
                             " and " + ElementTypeName(t.type()) + " tensors");
    }
    elem = t.type();
    items.push_back(std::move(t));
  }
  return Tensor::Sequence(elem, std::move(items));
}

}  // namespace

Result<Tensor> ReadValueProtoFile(const std::string& path, TensorKind kind) {
  if (kind == TensorKind::kTensor) return ReadTensorProtoFile(path);
  KILN_ASSIGN_OR_RETURN(std::string bytes, ReadFileBytes(path));
  const std::string base = fs::path(path).parent_path().string();
  if (bytes.size() > static_cast<size_t>(INT32_MAX)) return InvalidArgument(path + ": too large");
  const int size = static_cast<int>(bytes.size());
  if (kind == TensorKind::kSequence) {
    onnx::SequenceProto sp;
    if (!sp.ParseFromArray(bytes.data(), size)) return InvalidArgument(path + ": not a SequenceProto");
    auto t = ConvertSequence(sp, base);
    if (!t.ok()) return t.status().WithContext(path);
    return t;
  }
  onnx::OptionalProto op;
  if (!op.ParseFromArray(bytes.data(), size)) return InvalidArgument(path + ": not an OptionalProto");
  if (op.has_tensor_value()) {
    auto t = ConvertTensor(op.tensor_value(), base);
    if (!t.ok()) return t.status().WithContext(path);
    return Tensor::OptionalOf(*t);
  }
  if (op.has_sequence_value()) {
    auto t = ConvertSequence(op.sequence_value(), base);
    if (!t.ok()) return t.status().WithContext(path);
    return Tensor::OptionalOf(*t);
  }
  if (op.elem_type() != onnx::OptionalProto::TENSOR &&
      op.elem_type() != onnx::OptionalProto::SEQUENCE &&
      op.elem_type() != onnx::OptionalProto::UNDEFINED) {
    return Unimplemented(path + ": optional of element kind " + std::to_string(op.elem_type()));
  }
  return Tensor::OptionalNone(ElementType::kUndefined,
                              op.elem_type() == onnx::OptionalProto::SEQUENCE);
}

Result<Tensor> ReadTensorProtoFile(const std::string& path) {
  KILN_ASSIGN_OR_RETURN(std::string bytes, ReadFileBytes(path));
  auto t = ParseTensorProto(bytes.data(), bytes.size(), fs::path(path).parent_path().string());
  if (!t.ok()) return t.status().WithContext(path);
  return t;
}

}  // namespace kiln
