// Shape and type inference for the recurrent ops RNN, GRU and LSTM.
//
// Shapes (layout 0 / layout 1, the latter from opset 14):
//   X [seq, batch, input] / [batch, seq, input];  W [dirs, gates*hidden, input]
//   Y [seq, dirs, batch, hidden] / [batch, seq, dirs, hidden]
//   Y_h, Y_c [dirs, batch, hidden] / [batch, dirs, hidden]
#include <string>

#include "ir/infer_util.h"
#include "ir/op_schema.h"

namespace kiln {

namespace {

Dim At(const TypeInfo& t, size_t i) {
  return t.shape && i < t.shape->size() ? (*t.shape)[i] : Dim();
}

Status InferRecurrent(InferContext& ctx) {
  for (size_t i = 0; i < 3; ++i) {
    if (!ctx.has_input(i)) return ctx.Error("missing input " + std::to_string(i) + " (X, W, R)");
    const auto& s = ctx.input(i).shape;
    if (s && s->size() != 3) {
      return ctx.Error("input " + std::to_string(i) + " must have rank 3, found " +
                       ctx.input(i).ToString());
    }
  }
  const ElementType t = ctx.input_type(0);
  if (!IsFloating(t))
    return ctx.Error(std::string("X must be a float type, found ") + ElementTypeName(t));
  if (ctx.input_type(1) != t || ctx.input_type(2) != t) return ctx.Error("X, W and R types differ");
  const std::string direction = ctx.attrs().GetString("direction", "forward");
  int64_t dirs = 1;
  if (direction == "bidirectional") {
    dirs = 2;
  } else if (direction != "forward" && direction != "reverse") {
    return ctx.Error("direction must be forward, reverse or bidirectional, found '" + direction +
                     "'");
  }
  const int64_t layout = ctx.opset() >= 14 ? ctx.attrs().GetInt("layout", 0) : 0;
  if (layout != 0 && layout != 1) return ctx.Error("layout must be 0 or 1");
  Dim hidden = ctx.attrs().Has("hidden_size") ? Dim(ctx.attrs().GetInt("hidden_size", 0))
                                              : At(ctx.input(2), 2);
  if (hidden.is_static() && hidden.value <= 0) return ctx.Error("hidden_size must be positive");
  const TypeInfo& x = ctx.input(0);
  const Dim seq = At(x, layout == 0 ? 0 : 1);
  const Dim batch = At(x, layout == 0 ? 1 : 0);
  if (layout == 0) {
    ctx.set_output(0, t, DimVector{seq, dirs, batch, hidden});
    for (size_t i = 1; i < ctx.num_outputs(); ++i)
      ctx.set_output(i, t, DimVector{dirs, batch, hidden});
  } else {
    ctx.set_output(0, t, DimVector{batch, seq, dirs, hidden});
    for (size_t i = 1; i < ctx.num_outputs(); ++i)
      ctx.set_output(i, t, DimVector{batch, dirs, hidden});
  }
  return Status::Ok();
}

constexpr OpSchema kSchemas[] = {
    {"RNN", "", InferRecurrent},
    {"GRU", "", InferRecurrent},
    {"LSTM", "", InferRecurrent},
};

}  // namespace

std::span<const OpSchema> RnnSchemas() { return kSchemas; }

}  // namespace kiln
