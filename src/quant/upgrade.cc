// Upgrading a model's default-domain opset to 13, so that QDQ weights can be per channel.
//
// Between opsets 7 and 13 most ops only gained types or attributes with defaults that keep
// their old meaning. The ones that changed form are rewritten here: attributes that became
// inputs (Clip-11 min/max, Slice-10 starts/ends/axes/steps, Pad-11 pads/value, TopK-10 k,
// Dropout-12 ratio, Squeeze/Unsqueeze/Split/ReduceSum-13 axes/split), and Softmax, LogSoftmax
// and Hardmax whose opset-13 form works on one axis instead of flattening to 2-D (the same
// thing when the axis is the last one, which is required, with a known rank). Ops that were replaced (Upsample, Scatter) or whose meaning
// changed without a direct rewrite here (Resize-10) make the upgrade fail, naming the node.
#include <set>

#include "quant/internal.h"

namespace kiln::quant_internal {
namespace {

constexpr int kTarget = 13;

struct Upgrader {
  Graph& g;
  int from;
  int counter = 0;

  ValueId Ints(const std::string& base, const std::vector<int64_t>& v) {
    Tensor t = Tensor::Allocate(ElementType::kI64, {static_cast<int64_t>(v.size())}).value();
    for (size_t i = 0; i < v.size(); ++i) t.data<int64_t>()[i] = v[i];
    return Add(base, std::move(t));
  }
  ValueId Add(const std::string& base, Tensor t) {
    std::string name;
    do {
      name = base + "_opset13_" + std::to_string(counter++);
    } while (g.FindValue(name));
    return g.AddInitializer(name, std::move(t));
  }
  // Removes attribute `name`, returning it when present.
  std::optional<Attribute> Take(Node& n, const std::string& name) {
    auto& items = n.attrs.items();
    for (auto it = items.begin(); it != items.end(); ++it) {
      if (it->name == name) {
        Attribute a = *it;
        items.erase(it);
        return a;
      }
    }
    return std::nullopt;
  }
  void SetInput(Node& n, size_t slot, ValueId v) {
    if (n.inputs.size() <= slot) n.inputs.resize(slot + 1);
    n.inputs[slot] = v;
  }
  Status Fail(const Node& n, const std::string& why) {
    return Unimplemented("cannot upgrade " + n.Describe() + " from opset " + std::to_string(from) +
                         " to 13: " + why);
  }

  // The conditions under which UpgradeNode fails, checked before anything is changed.
  Status Check(const Node& n) {
    const std::string& op = n.op_type;
    const int v = n.opset > 0 ? n.opset : from;
    auto type_of_input0 = [&] {
      return n.inputs.empty() || !n.inputs[0].valid() ? ElementType::kUndefined
                                                      : g.value(n.inputs[0]).info.type;
    };
    if (op == "Clip" && v < 11 && (n.attrs.Has("min") || n.attrs.Has("max")) &&
        type_of_input0() != ElementType::kF32) {
      return Fail(n, "min/max attributes of a non-f32 Clip");
    }
    if (op == "Slice" && v < 10 && (!n.attrs.Has("starts") || !n.attrs.Has("ends"))) {
      return Fail(n, "missing starts/ends");
    }
    if (op == "Pad" && v < 11 && !n.attrs.Has("pads")) return Fail(n, "missing pads");
    if (op == "Pad" && v < 11 && n.attrs.Has("value") && type_of_input0() != ElementType::kF32) {
      return Fail(n, "a constant value for a non-f32 Pad");
    }
    if (op == "TopK" && v < 10 && !n.attrs.Has("k")) return Fail(n, "missing k");
    if ((op == "Softmax" || op == "LogSoftmax" || op == "Hardmax") && v < 13) {
      const TypeInfo& in = g.value(n.inputs[0]).info;
      if (!in.shape) return Fail(n, "the input's rank is unknown");
      const int64_t rank = static_cast<int64_t>(in.shape->size());
      int64_t axis = n.attrs.GetInt("axis", 1);
      if (axis < 0) axis += rank;
      if (axis != rank - 1) {
        return Fail(n, "axis " + std::to_string(axis) + " is not the last axis of rank " +
                           std::to_string(rank));
      }
    }
    if (op == "Upsample" || op == "Scatter" || (op == "Resize" && v < 11)) {
      return Fail(n, "the op was replaced or changed meaning");
    }
    return Status::Ok();
  }

  Status UpgradeNode(NodeId id) {
    KILN_RETURN_IF_ERROR(Check(g.node(id)));
    Node& n = g.node(id);
    const std::string& op = n.op_type;
    const int v = n.opset > 0 ? n.opset : from;
    if (op == "Clip" && v < 11) {
      auto lo = Take(n, "min"), hi = Take(n, "max");
      if (lo) SetInput(n, 1, Add(n.name + "_min", Tensor::FromVector<float>({lo->f}, {})));
      if (hi) SetInput(n, 2, Add(n.name + "_max", Tensor::FromVector<float>({hi->f}, {})));
    } else if (op == "Slice" && v < 10) {
      auto starts = Take(n, "starts"), ends = Take(n, "ends"), axes = Take(n, "axes");
      SetInput(n, 1, Ints(n.name + "_starts", starts->ints));
      SetInput(n, 2, Ints(n.name + "_ends", ends->ints));
      if (axes) SetInput(n, 3, Ints(n.name + "_axes", axes->ints));
    } else if ((op == "Squeeze" || op == "Unsqueeze" || op == "ReduceSum") && v < 13) {
      if (auto axes = Take(n, "axes")) SetInput(n, 1, Ints(n.name + "_axes", axes->ints));
    } else if (op == "Split" && v < 13) {
      if (auto split = Take(n, "split")) SetInput(n, 1, Ints(n.name + "_split", split->ints));
    } else if (op == "Pad" && v < 11) {
      auto pads = Take(n, "pads"), value = Take(n, "value");
      SetInput(n, 1, Ints(n.name + "_pads", pads->ints));
      if (value) {
        SetInput(n, 2, Add(n.name + "_value", Tensor::FromVector<float>({value->f}, {})));
      }
    } else if (op == "TopK" && v < 10) {
      auto k = Take(n, "k");
      SetInput(n, 1, Ints(n.name + "_k", {k->i}));
    } else if (op == "Dropout" && v < 12) {
      auto ratio = Take(n, "ratio");
      Take(n, "is_test");
      if (ratio) SetInput(n, 1, Add(n.name + "_ratio", Tensor::FromVector<float>({ratio->f}, {})));
    } else if ((op == "Softmax" || op == "LogSoftmax" || op == "Hardmax") && v < 13) {
      Take(n, "axis");
      n.attrs.Add(Attribute::Int("axis", -1));
    }
    g.node(id).opset = kTarget;
    return Status::Ok();
  }
};

// `apply` false: only checks (so that a failure leaves the model untouched).
Status UpgradeGraph(Graph& g, int from, bool apply) {
  Upgrader u{g, from};
  for (uint32_t i = 0; i < g.num_nodes(); ++i) {
    Node& n = g.node(NodeId(i));
    if (!(n.domain.empty() || n.domain == "ai.onnx")) continue;
    for (Attribute& a : n.attrs.items()) {
      if (a.g) KILN_RETURN_IF_ERROR(UpgradeGraph(*a.g, from, apply));
      for (auto& sub : a.graphs) KILN_RETURN_IF_ERROR(UpgradeGraph(*sub, from, apply));
    }
    KILN_RETURN_IF_ERROR(apply ? u.UpgradeNode(NodeId(i)) : u.Check(n));
  }
  return Status::Ok();
}

}  // namespace

Status UpgradeToOpset13(Model& model) {
  auto it = model.opsets.find("");
  const int from = it == model.opsets.end() ? 1 : it->second;
  if (from >= kTarget) return Status::Ok();
  KILN_RETURN_IF_ERROR(UpgradeGraph(model.graph, from, false));
  KILN_RETURN_IF_ERROR(UpgradeGraph(model.graph, from, true));
  model.opsets[""] = kTarget;
  return Status::Ok();
}

}  // namespace kiln::quant_internal
