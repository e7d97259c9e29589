// Kiln IR -> ONNX protobuf. With importer.cc, the only translation units that see protobuf types.
#include "onnx/exporter.h"

#include <fcntl.h>
#include <onnx/onnx_pb.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstring>
#include <set>
#include <vector>

namespace kiln {
namespace {

// Lowest ir_version written, and the one each newer default-domain opset needs (ONNX's
// versioning table: opset 15-18 came with IR 8).
constexpr int64_t kMinIrVersion = 7;
int64_t IrVersionForOpset(int opset) { return opset >= 15 ? 8 : kMinIrVersion; }

Status ExportTensor(const Tensor& t, const std::string& name, onnx::TensorProto* tp) {
  const int code = ElementTypeToOnnx(t.type());
  if (code == 0 || !t.defined()) {
    return Unimplemented("tensor '" + name + "' has type " + ElementTypeName(t.type()) +
                         ", which ONNX export does not support");
  }
  tp->set_name(name);
  tp->set_data_type(code);
  for (int64_t d : t.shape()) tp->add_dims(d);
  switch (t.type()) {
    case ElementType::kString:
      for (int64_t i = 0; i < t.size(); ++i) tp->add_string_data(t.data<std::string>()[i]);
      break;
    case ElementType::kBool: {
      // One byte per element, 0 or 1, whatever the in-memory bool holds.
      std::string* raw = tp->mutable_raw_data();
      raw->resize(static_cast<size_t>(t.size()));
      for (int64_t i = 0; i < t.size(); ++i)
        (*raw)[static_cast<size_t>(i)] = t.data<bool>()[i] ? 1 : 0;
      break;
    }
    default:
      // Every other type is a plain little-endian array (f16/bf16 as their bit patterns).
      tp->set_raw_data(static_cast<const char*>(t.raw()), t.bytes());
      break;
  }
  return Status::Ok();
}

// Writes `info` into a ValueInfoProto. An unknown element type leaves the type unset; an unknown
// rank leaves the shape unset; an unknown dim is a Dimension with neither value nor param.
void ExportType(const TypeInfo& info, onnx::ValueInfoProto* vi) {
  if (info.type == ElementType::kUndefined) return;
  auto* tt = vi->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(ElementTypeToOnnx(info.type));
  if (!info.shape) return;
  auto* shape = tt->mutable_shape();
  for (const Dim& d : *info.shape) {
    auto* dim = shape->add_dim();
    if (d.is_static()) {
      dim->set_dim_value(d.value);
    } else if (!d.symbol.empty()) {
      dim->set_dim_param(d.symbol);
    }
  }
}

class GraphExporter {
 public:
  GraphExporter(const Graph& g, const ExportOptions& options) : g_(g), options_(options) {}

  Status Export(onnx::GraphProto* gp) {
    gp->set_name(g_.name.empty() ? "graph" : g_.name);
    KILN_RETURN_IF_ERROR(AssignNames());
    for (ValueId v : g_.inputs()) {
      const Value& val = g_.value(v);
      auto* vi = gp->add_input();
      vi->set_name(names_[v.v]);
      ExportType(val.info, vi);
    }
    for (uint32_t i = 0; i < g_.num_values(); ++i) {
      const Value& val = g_.values()[i];
      if (val.kind != ValueKind::kInitializer) continue;
      Status s = ExportTensor(val.initializer, names_[i], gp->add_initializer());
      if (!s.ok()) return s.WithContext("initializer '" + names_[i] + "'");
    }
    auto order = g_.TopologicalOrder();
    if (!order.ok()) return order.status().WithContext("graph '" + g_.name + "'");
    for (NodeId id : *order) KILN_RETURN_IF_ERROR(ExportNode(g_.node(id), gp->add_node()));
    for (ValueId v : g_.outputs()) {
      auto* vi = gp->add_output();
      vi->set_name(names_[v.v]);
      ExportType(g_.value(v).info, vi);
    }
    // Types of intermediate values that a node produces (graph outputs carry theirs above).
    for (uint32_t i = 0; options_.value_info && i < g_.num_values(); ++i) {
      const Value& val = g_.values()[i];
      if (val.kind != ValueKind::kIntermediate || val.is_output || !val.producer.valid() ||
          val.info.type == ElementType::kUndefined) {
        continue;
      }
      auto* vi = gp->add_value_info();
      vi->set_name(names_[i]);
      ExportType(val.info, vi);
    }
    return Status::Ok();
  }

 private:
  // Value names as written; a value a pass left unnamed gets a fresh name no other value has.
  Status AssignNames() {
    names_.resize(g_.num_values());
    std::set<std::string> used;
    for (const Value& v : g_.values()) used.insert(v.name);
    int next = 0;
    for (uint32_t i = 0; i < g_.num_values(); ++i) {
      const Value& v = g_.values()[i];
      if (!v.name.empty()) {
        names_[i] = v.name;
        continue;
      }
      if (v.kind == ValueKind::kOuterScope) {
        return InvalidArgument("graph '" + g_.name + "' captures an unnamed outer-scope value");
      }
      std::string name;
      do {
        name = "kiln_value_" + std::to_string(next++);
      } while (used.count(name));
      used.insert(name);
      names_[i] = name;
    }
    return Status::Ok();
  }

  Status ExportNode(const Node& n, onnx::NodeProto* np) {
    np->set_name(n.name);
    np->set_op_type(n.op_type);
    if (!n.domain.empty()) np->set_domain(n.domain);
    for (ValueId v : n.inputs) np->add_input(v.valid() ? names_[v.v] : std::string());
    for (ValueId v : n.outputs) np->add_output(v.valid() ? names_[v.v] : std::string());
    for (const Attribute& a : n.attrs.items()) {
      Status s = ExportAttribute(a, np->add_attribute());
      if (!s.ok()) return s.WithContext("attribute '" + a.name + "' of node " + n.Describe());
    }
    return Status::Ok();
  }

  Status ExportSubgraph(const std::shared_ptr<Graph>& g, onnx::GraphProto* gp) const {
    if (!g) return InvalidArgument("graph attribute holds no graph");
    GraphExporter sub(*g, options_);
    return sub.Export(gp);
  }

  Status ExportAttribute(const Attribute& a, onnx::AttributeProto* ap) const {
    ap->set_name(a.name);
    using K = Attribute::Kind;
    switch (a.kind) {
      case K::kFloat:
        ap->set_type(onnx::AttributeProto::FLOAT);
        ap->set_f(a.f);
        break;
      case K::kInt:
        ap->set_type(onnx::AttributeProto::INT);
        ap->set_i(a.i);
        break;
      case K::kString:
        ap->set_type(onnx::AttributeProto::STRING);
        ap->set_s(a.s);
        break;
      case K::kTensor:
        ap->set_type(onnx::AttributeProto::TENSOR);
        KILN_RETURN_IF_ERROR(ExportTensor(a.t, "", ap->mutable_t()));
        break;
      case K::kGraph:
        ap->set_type(onnx::AttributeProto::GRAPH);
        KILN_RETURN_IF_ERROR(ExportSubgraph(a.g, ap->mutable_g()));
        break;
      case K::kFloats:
        ap->set_type(onnx::AttributeProto::FLOATS);
        for (float f : a.floats) ap->add_floats(f);
        break;
      case K::kInts:
        ap->set_type(onnx::AttributeProto::INTS);
        for (int64_t i : a.ints) ap->add_ints(i);
        break;
      case K::kStrings:
        ap->set_type(onnx::AttributeProto::STRINGS);
        for (const auto& s : a.strings) ap->add_strings(s);
        break;
      case K::kTensors:
        ap->set_type(onnx::AttributeProto::TENSORS);
        for (const Tensor& t : a.tensors)
          KILN_RETURN_IF_ERROR(ExportTensor(t, "", ap->add_tensors()));
        break;
      case K::kGraphs:
        ap->set_type(onnx::AttributeProto::GRAPHS);
        for (const auto& g : a.graphs) KILN_RETURN_IF_ERROR(ExportSubgraph(g, ap->add_graphs()));
        break;
      default:
        return Internal("unknown attribute kind " + std::to_string(static_cast<int>(a.kind)));
    }
    return Status::Ok();
  }

  const Graph& g_;
  const ExportOptions& options_;
  std::vector<std::string> names_;
};

// Highest opset each domain's nodes state, over the graph and its bodies, for models (built by
// hand or by a pass) whose opset map misses a domain.
void CollectNodeOpsets(const Graph& g, std::map<std::string, int>& out) {
  for (const Node& n : g.nodes()) {
    int& v = out[n.domain];
    v = std::max(v, n.opset);
    for (const Attribute& a : n.attrs.items()) {
      if (a.g) CollectNodeOpsets(*a.g, out);
      for (const auto& sub : a.graphs) {
        if (sub) CollectNodeOpsets(*sub, out);
      }
    }
  }
}

Result<onnx::ModelProto> BuildProto(const Model& model, const ExportOptions& options) {
  onnx::ModelProto mp;
  std::map<std::string, int> opsets = model.opsets;
  std::map<std::string, int> used;
  CollectNodeOpsets(model.graph, used);
  for (const auto& [domain, version] : used) {
    if (opsets.count(domain)) continue;
    if (version <= 0) {
      return InvalidArgument("the model's nodes use domain '" + domain +
                             "' but the model states no opset for it");
    }
    opsets[domain] = version;
  }
  int64_t ir = std::max(model.ir_version, kMinIrVersion);
  if (auto it = opsets.find(""); it != opsets.end())
    ir = std::max(ir, IrVersionForOpset(it->second));
  mp.set_ir_version(ir);
  for (const auto& [domain, version] : opsets) {
    auto* op = mp.add_opset_import();
    op->set_domain(domain);
    op->set_version(version);
  }
  mp.set_producer_name("kiln");
  for (const auto& [key, value] : model.metadata) {
    auto* p = mp.add_metadata_props();
    p->set_key(key);
    p->set_value(value);
  }
  GraphExporter exporter(model.graph, options);
  KILN_RETURN_IF_ERROR(exporter.Export(mp.mutable_graph()));
  return mp;
}

}  // namespace

Result<std::string> ExportOnnxBytes(const Model& model, const ExportOptions& options) {
  KILN_ASSIGN_OR_RETURN(onnx::ModelProto mp, BuildProto(model, options));
  const size_t size = mp.ByteSizeLong();
  if (size > static_cast<size_t>(INT32_MAX)) {
    return Unimplemented("exported model would be " + std::to_string(size) +
                         " bytes, over protobuf's 2 GiB limit");
  }
  std::string bytes;
  if (!mp.SerializeToString(&bytes)) return Internal("cannot serialize the ONNX model");
  return bytes;
}

Status ExportOnnxFile(const Model& model, const std::string& path, const ExportOptions& options) {
  KILN_ASSIGN_OR_RETURN(std::string bytes, ExportOnnxBytes(model, options));
  // A temporary beside the target (same file system, so the rename is atomic), created
  // exclusively with the permissions of an ordinary new file.
  static std::atomic<uint64_t> counter{0};
  std::string tmp;
  int fd = -1;
  for (int attempt = 0; attempt < 100 && fd < 0; ++attempt) {
    tmp = path + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
    fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0 && errno != EEXIST) break;
  }
  if (fd < 0) return IoError("cannot write " + path + ": " + std::strerror(errno));
  // Closes the file if still open, removes it, and reports `err` (the failing call's errno).
  auto fail = [&](const std::string& what, int err, bool close_fd) {
    if (close_fd) ::close(fd);
    ::unlink(tmp.c_str());
    const std::string reason = std::strerror(err);
    return IoError("cannot " + what + " " + path + ": " + reason);
  };
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail("write", errno, true);
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) return fail("write", errno, true);
  if (::close(fd) != 0) return fail("write", errno, false);
  if (::rename(tmp.c_str(), path.c_str()) != 0)
    return fail("rename a temporary file to", errno, false);
  return Status::Ok();
}

}  // namespace kiln
