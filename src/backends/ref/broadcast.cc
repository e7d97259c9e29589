#include "backends/ref/broadcast.h"

#include <algorithm>

namespace kiln {

Result<Shape> BroadcastShapes(std::span<const Shape* const> shapes) {
  size_t rank = 0;
  for (const Shape* s : shapes) rank = std::max(rank, s->size());
  Shape out(rank, 1);
  for (const Shape* s : shapes) {
    const size_t off = rank - s->size();
    for (size_t i = 0; i < s->size(); ++i) {
      const int64_t d = (*s)[i];
      int64_t& o = out[off + i];
      if (d == o || d == 1) continue;
      if (o == 1) {
        o = d;
        continue;
      }
      return InvalidArgument("cannot broadcast shape " + ShapeToString(*s) + " at dim " +
                             std::to_string(i) + ": size " + std::to_string(d) +
                             " against size " + std::to_string(o));
    }
  }
  return out;
}

bool BroadcastsTo(const Shape& in, const Shape& out) {
  if (in.size() > out.size()) return false;
  const size_t off = out.size() - in.size();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != out[off + i] && in[i] != 1) return false;
  }
  return true;
}

std::vector<int64_t> BroadcastStrides(const Shape& in, const Shape& out) {
  std::vector<int64_t> strides(out.size(), 0);
  const size_t off = out.size() - in.size();
  int64_t s = 1;
  for (size_t i = in.size(); i-- > 0;) {
    strides[off + i] = (in[i] == 1) ? 0 : s;
    s *= in[i];
  }
  return strides;
}

Result<BroadcastPlan> BroadcastPlan::Make(const Shape& out, std::span<const Shape* const> inputs) {
  BroadcastPlan p;
  const size_t ni = inputs.size();
  p.num_inputs_ = ni;
  p.size_ = NumElements(out);
  p.inner_strides_.assign(ni, 0);
  p.identity_.assign(ni, false);
  std::vector<std::vector<int64_t>> strides(ni);
  for (size_t k = 0; k < ni; ++k) {
    if (!BroadcastsTo(*inputs[k], out)) {
      return InvalidArgument("input shape " + ShapeToString(*inputs[k]) +
                             " does not broadcast to " + ShapeToString(out));
    }
    p.identity_[k] = (*inputs[k] == out) || (NumElements(*inputs[k]) == p.size_ && p.size_ <= 1);
    strides[k] = BroadcastStrides(*inputs[k], out);
  }
  if (p.size_ == 0) return p;  // inner_ = runs_ = 0

  // Drop size-1 output dims, then merge dim d into its outer neighbour whenever every input's
  // stride is contiguous across the pair (both broadcast, or outer stride == inner stride * size).
  std::vector<int64_t> dims;
  std::vector<std::vector<int64_t>> st;  // [dim][input]
  for (size_t d = 0; d < out.size(); ++d) {
    if (out[d] == 1) continue;
    std::vector<int64_t> col(ni);
    for (size_t k = 0; k < ni; ++k) col[k] = strides[k][d];
    if (!dims.empty()) {
      bool mergeable = true;
      for (size_t k = 0; k < ni; ++k) {
        if (st.back()[k] != col[k] * out[d]) mergeable = false;
      }
      if (mergeable) {
        dims.back() *= out[d];
        st.back() = col;
        continue;
      }
    }
    dims.push_back(out[d]);
    st.push_back(std::move(col));
  }
  if (dims.empty()) {  // every dim is 1: a single element
    p.inner_ = 1;
    p.runs_ = 1;
    return p;
  }
  p.inner_ = dims.back();
  p.inner_strides_ = st.back();
  p.runs_ = p.size_ / p.inner_;
  dims.pop_back();
  st.pop_back();
  p.outer_dims_ = dims;
  p.outer_strides_.reserve(dims.size() * ni);
  for (const auto& col : st) p.outer_strides_.insert(p.outer_strides_.end(), col.begin(), col.end());
  return p;
}

std::string BroadcastPlan::ToString() const {
  std::string s = "runs " + std::to_string(runs_) + "x" + std::to_string(inner_) + " strides";
  for (size_t k = 0; k < num_inputs_; ++k) {
    s += " in" + std::to_string(k) + ":" + std::to_string(inner_strides_[k]);
  }
  return s;
}

}  // namespace kiln
