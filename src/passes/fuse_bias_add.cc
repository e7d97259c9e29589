// fuse-bias-add: Conv/ConvTranspose followed by Add of a constant that holds one value per output
// channel (or one value for all) becomes the convolution's bias.
//
// The conv output y has shape [N, M, d1, ...] (rank r = the weight's rank). The constant c
// broadcasts onto y without changing y's shape, and is constant along every axis but the
// channel axis, exactly when c's rank is at most r and, aligning c's dims to y's from the right,
// every dim is 1 except the one on axis 1, which may be M. Then y + c = conv(x) with bias
// B'[m] = B[m] + c[m] (or c[0]), B = 0 when the conv has none; computed in double, stored in the
// constant's element type (which ONNX requires to equal the conv's). The conv then writes the
// Add's output value, keeping its name and readers. The weight need not be constant, only its
// shape static.
//
// Add before opset 7 (the legacy broadcast/axis attributes) is left alone.
#include "passes/graph_edit.h"
#include "passes/pass_manager.h"

namespace kiln {
namespace {

using passes::ConstantValue;
using passes::GraphEditor;

constexpr const char* kNotCandidate = "-";

// The slot of `add` holding the conv output, or -1 when neither input comes from a live conv.
int ConvSlot(const GraphEditor& e, const Node& add) {
  for (int s = 0; s < 2; ++s) {
    const ValueId v = add.inputs[static_cast<size_t>(s)];
    if (!v.valid()) continue;
    const NodeId p = e.graph().value(v).producer;
    if (p.valid() && !e.removed(p) && passes::IsConvolution(e.graph().node(p))) return s;
  }
  return -1;
}

// Fuses `add_id` into the conv feeding it when possible; returns why not otherwise ("" when
// fused, kNotCandidate when the Add is not a conv output plus a constant at all).
Result<std::string> TryFuse(GraphEditor& e, NodeId add_id) {
  Graph& g = e.graph();
  const Node& add = g.node(add_id);
  if (add.inputs.size() != 2 || add.outputs.size() != 1 || !add.outputs[0].valid()) {
    return std::string(kNotCandidate);
  }
  const int slot = ConvSlot(e, add);
  if (slot < 0) return std::string(kNotCandidate);
  const ValueId y = add.inputs[static_cast<size_t>(slot)];
  const std::optional<Tensor> c = ConstantValue(g, add.inputs[static_cast<size_t>(1 - slot)]);
  if (!c) return std::string(kNotCandidate);
  const NodeId conv_id = g.value(y).producer;
  const Node& conv = g.node(conv_id);
  const std::string conv_desc = conv.Describe();
  if (add.opset > 0 && add.opset < 7) return std::string("legacy broadcast semantics (opset < 7)");
  if (!IsFloating(c->type())) return std::string("the constant is not a float tensor");
  if (conv.outputs.empty() || conv.outputs[0] != y) return std::string("unexpected conv outputs");
  if (e.SoleReader(y) != add_id) {
    return "the output of " + conv_desc + " is also read elsewhere (" +
           std::to_string(e.ReaderCount(y)) + " readers" +
           (g.value(y).is_output ? ", a graph output" : "") + ")";
  }
  if (conv.inputs.size() < 2 || !conv.inputs[1].valid()) return conv_desc + " has no weight";
  const TypeInfo& w_info = g.value(conv.inputs[1]).info;
  const std::optional<int64_t> channels = passes::ConvOutputChannels(conv, w_info);
  if (!channels) {
    return "the " + conv_desc + " weight shape " + w_info.ToString() + " is not static";
  }
  const int64_t m_count = *channels;
  const int64_t rank = static_cast<int64_t>(w_info.shape->size());
  const TypeInfo& y_info = g.value(y).info;
  if (y_info.type != ElementType::kUndefined && y_info.type != c->type()) {
    return "the constant is " + std::string(ElementTypeName(c->type())) +
           " but the conv output is " + ElementTypeName(y_info.type);
  }
  if (c->rank() > rank) {
    return "the constant " + ShapeToString(c->shape()) + " broadcasts the output";
  }
  bool per_channel = false;
  for (int64_t i = 0; i < c->rank(); ++i) {
    const int64_t axis = i + rank - c->rank();
    const int64_t d = c->dim(static_cast<int>(i));
    if (d == 1) continue;
    if (axis == 1 && d == m_count) {
      per_channel = true;
      continue;
    }
    return "the constant " + ShapeToString(c->shape()) + " is not one value per channel of " +
           std::to_string(m_count);
  }

  std::vector<double> bias(static_cast<size_t>(m_count), 0.0);
  if (conv.inputs.size() > 2 && conv.inputs[2].valid()) {
    const std::optional<Tensor> b = ConstantValue(g, conv.inputs[2]);
    if (!b || !IsFloating(b->type()) || b->size() != m_count) {
      return "the " + conv_desc + " bias is not a float constant of " + std::to_string(m_count) +
             " values";
    }
    bias = passes::ToDoubles(*b);
  }
  const std::vector<double> cv = passes::ToDoubles(*c);
  for (size_t m = 0; m < bias.size(); ++m) bias[m] += cv[per_channel ? m : 0];
  KILN_ASSIGN_OR_RETURN(Tensor b_new, passes::FloatTensorFromDoubles(c->type(), {m_count}, bias));

  const std::string base = add.name.empty() ? g.value(add.outputs[0]).name : add.name;
  const ValueId b_id = e.AddInitializer(base + "_fused_B", std::move(b_new));
  const ValueId out = g.node(add_id).outputs[0];
  e.SetInput(conv_id, 2, b_id);
  e.RemoveNode(add_id);
  e.MoveOutput(conv_id, 0, out);
  return std::string();
}

}  // namespace

Result<PassResult> FuseBiasAddPass(Model& model) {
  PassResult result;
  GraphEditor e(model.graph);
  KILN_ASSIGN_OR_RETURN(std::vector<NodeId> order, model.graph.TopologicalOrder());
  for (NodeId id : order) {
    const Node& n = model.graph.node(id);
    if (n.op_type != "Add" || !passes::IsDefaultDomain(n)) continue;
    const std::string desc = n.Describe();
    KILN_ASSIGN_OR_RETURN(std::string skip, TryFuse(e, id));
    if (skip.empty()) {
      ++result.rewrites;
    } else if (skip != kNotCandidate) {
      result.notes.push_back(desc + " not fused: " + skip);
    }
  }
  KILN_RETURN_IF_ERROR(e.Commit());
  result.notes.insert(result.notes.begin(),
                      "fused " + std::to_string(result.rewrites) + " Add nodes into conv biases");
  return result;
}

}  // namespace kiln
