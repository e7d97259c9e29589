// fold-batchnorm: Conv/ConvTranspose followed by an inference BatchNormalization becomes one
// convolution with folded weights and bias.
//
// BN(y)[m] = (y[m] - mean[m]) * a[m] + beta[m] with a[m] = scale[m] / sqrt(var[m] + epsilon),
// and y[m] = sum(W[m-th output channel] * x) + B[m], so
//   W'[.. m ..] = W[.. m ..] * a[m]          (Conv: W[m, c, k...]; ConvTranspose: W[c, j, k...]
//                                             with m = (c / (C/group)) * (M/group) + j)
//   B'[m]       = (B[m] - mean[m]) * a[m] + beta[m]   (B = 0 when the conv has none).
// Computed in double, stored in the weight's element type as new initializers (the originals
// stay for other readers; eliminate-dead drops them when unread). The convolution then writes
// the BN's output value, so its name and every reader (graph outputs included) are unchanged.
//
// Folded only when exact: BN in inference form (one output, training_mode 0, spatial 1), its
// scale/B/mean/var constant with one value per output channel, the conv output read by nothing
// but the BN, and the conv's W (and B when present) constant floats.
#include <cmath>

#include "passes/graph_edit.h"
#include "passes/pass_manager.h"

namespace kiln {
namespace {

using passes::ConstantValue;
using passes::GraphEditor;

// Folds BN node `bn_id` into its producer when possible; returns why not otherwise.
Result<std::string> TryFold(GraphEditor& e, NodeId bn_id) {
  Graph& g = e.graph();
  const Node& bn = g.node(bn_id);
  if (bn.inputs.size() != 5) return std::string("expected 5 inputs");
  for (size_t i = 1; i < bn.outputs.size(); ++i) {
    if (bn.outputs[i].valid()) return std::string("training outputs (mean/var) are used");
  }
  if (bn.outputs.empty() || !bn.outputs[0].valid()) return std::string("no output");
  if (bn.attrs.GetInt("training_mode", 0) != 0) return std::string("training_mode is 1");
  if (bn.attrs.GetInt("spatial", 1) != 1) return std::string("spatial is 0");

  const ValueId x = bn.inputs[0];
  const NodeId conv_id = x.valid() ? g.value(x).producer : NodeId();
  if (!conv_id.valid() || e.removed(conv_id) || !passes::IsConvolution(g.node(conv_id))) {
    return std::string("input is not a Conv/ConvTranspose output");
  }
  const Node& conv = g.node(conv_id);
  const std::string conv_desc = conv.Describe();
  if (conv.outputs.empty() || conv.outputs[0] != x) return std::string("unexpected conv outputs");
  if (e.SoleReader(x) != bn_id) {
    return "the output of " + conv_desc + " is also read elsewhere (" +
           std::to_string(e.ReaderCount(x)) + " readers" +
           (g.value(x).is_output ? ", a graph output" : "") + ")";
  }
  if (conv.inputs.size() < 2) return conv_desc + " has no weight input";
  const std::optional<Tensor> w = ConstantValue(g, conv.inputs[1]);
  if (!w || !IsFloating(w->type())) return "the " + conv_desc + " weight is not a float constant";
  std::optional<Tensor> b;
  if (conv.inputs.size() > 2 && conv.inputs[2].valid()) {
    b = ConstantValue(g, conv.inputs[2]);
    if (!b || !IsFloating(b->type())) return "the " + conv_desc + " bias is not a float constant";
  }
  TypeInfo w_info;
  w_info.type = w->type();
  w_info.shape = DimVector(w->shape().begin(), w->shape().end());
  const std::optional<int64_t> channels = passes::ConvOutputChannels(conv, w_info);
  if (!channels) {
    return "the " + conv_desc + " weight shape " + ShapeToString(w->shape()) +
           " does not fit its group";
  }
  const int64_t m_count = *channels;
  if (b && b->size() != m_count) {
    return "the " + conv_desc + " bias does not have one value per channel";
  }

  std::vector<std::vector<double>> params;  // scale, B, mean, var
  for (size_t i = 1; i < 5; ++i) {
    std::optional<Tensor> p = ConstantValue(g, bn.inputs[i]);
    if (!p || !IsFloating(p->type())) return std::string("parameters are not float constants");
    if (p->rank() != 1 || p->size() != m_count) {
      return "parameter " + std::to_string(i) + " has shape " + ShapeToString(p->shape()) +
             ", expected [" + std::to_string(m_count) + "]";
    }
    params.push_back(passes::ToDoubles(*p));
  }
  const double epsilon = bn.attrs.GetFloat("epsilon", 1e-5f);
  std::vector<double> a(static_cast<size_t>(m_count));
  std::vector<double> bias(static_cast<size_t>(m_count));
  const std::vector<double> b_old = b ? passes::ToDoubles(*b) : std::vector<double>(a.size(), 0.0);
  for (size_t m = 0; m < a.size(); ++m) {
    a[m] = params[0][m] / std::sqrt(params[3][m] + epsilon);
    bias[m] = (b_old[m] - params[2][m]) * a[m] + params[1][m];
  }

  std::vector<double> wv = passes::ToDoubles(*w);
  const Shape& ws = w->shape();
  int64_t kernel = 1;
  for (size_t i = 2; i < ws.size(); ++i) kernel *= ws[i];
  if (conv.op_type == "Conv") {
    const int64_t per_channel = ws[1] * kernel;
    for (int64_t m = 0; m < m_count; ++m) {
      for (int64_t k = 0; k < per_channel; ++k)
        wv[static_cast<size_t>(m * per_channel + k)] *= a[m];
    }
  } else {
    const int64_t group = conv.attrs.GetInt("group", 1);
    const int64_t in_per_group = ws[0] / group, out_per_group = ws[1];
    for (int64_t c = 0; c < ws[0]; ++c) {
      for (int64_t j = 0; j < out_per_group; ++j) {
        const double scale = a[static_cast<size_t>((c / in_per_group) * out_per_group + j)];
        for (int64_t k = 0; k < kernel; ++k)
          wv[static_cast<size_t>((c * ws[1] + j) * kernel + k)] *= scale;
      }
    }
  }
  KILN_ASSIGN_OR_RETURN(Tensor w_new, passes::FloatTensorFromDoubles(w->type(), ws, wv));
  KILN_ASSIGN_OR_RETURN(Tensor b_new, passes::FloatTensorFromDoubles(w->type(), {m_count}, bias));

  const std::string base = bn.name.empty() ? g.value(bn.outputs[0]).name : bn.name;
  const ValueId w_id = e.AddInitializer(base + "_folded_W", std::move(w_new));
  const ValueId b_id = e.AddInitializer(base + "_folded_B", std::move(b_new));
  const ValueId y = g.node(bn_id).outputs[0];
  e.SetInput(conv_id, 1, w_id);
  e.SetInput(conv_id, 2, b_id);
  e.RemoveNode(bn_id);
  e.MoveOutput(conv_id, 0, y);
  return std::string();
}

}  // namespace

Result<PassResult> FoldBatchNormPass(Model& model) {
  PassResult result;
  GraphEditor e(model.graph);
  KILN_ASSIGN_OR_RETURN(std::vector<NodeId> order, model.graph.TopologicalOrder());
  for (NodeId id : order) {
    const Node& n = model.graph.node(id);
    if (n.op_type != "BatchNormalization" || !passes::IsDefaultDomain(n)) continue;
    const std::string desc = n.Describe();
    KILN_ASSIGN_OR_RETURN(std::string skip, TryFold(e, id));
    if (skip.empty()) {
      ++result.rewrites;
    } else {
      result.notes.push_back(desc + " not folded: " + skip);
    }
  }
  KILN_RETURN_IF_ERROR(e.Commit());
  result.notes.insert(result.notes.begin(),
                      "folded " + std::to_string(result.rewrites) + " BatchNormalization nodes");
  return result;
}

}  // namespace kiln
