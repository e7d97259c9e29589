// Einsum: parses the equation (explicit or implicit output, repeated labels for diagonals and
// traces, one ellipsis per term broadcast numpy-style), then walks every combination of label
// values with an odometer, output labels outermost, keeping each operand's offset updated
// incrementally. Products accumulate in double (int64/uint64 for integer types).
#include <algorithm>
#include <map>

#include "backends/ref/nn_internal.h"

namespace kiln::nn {
namespace {

struct Term {
  std::vector<int> labels;  // label ids per dim (after ellipsis expansion)
};

// Label ids: 0..51 for letters, 52.. for ellipsis dims (52 + i for the i-th of the broadcast
// ellipsis dims counted from the left of the widest ellipsis).
constexpr int kEllipsisBase = 52;

int LetterId(char c) {
  if (c >= 'a' && c <= 'z') return c - 'a';
  if (c >= 'A' && c <= 'Z') return 26 + (c - 'A');
  return -1;
}

Status ParseTerm(const KernelContext& ctx, const std::string& s, int rank, int* ell_rank,
                 std::vector<int>* letters_before, std::vector<int>* letters_after,
                 bool* has_ellipsis) {
  *has_ellipsis = false;
  size_t i = 0;
  while (i < s.size()) {
    if (s.compare(i, 3, "...") == 0) {
      if (*has_ellipsis) return ctx.Error("more than one ellipsis in term '" + s + "'");
      *has_ellipsis = true;
      i += 3;
      continue;
    }
    const int id = LetterId(s[i]);
    if (id < 0) return ctx.Error(std::string("invalid character '") + s[i] + "' in equation");
    (*has_ellipsis ? letters_after : letters_before)->push_back(id);
    ++i;
  }
  const int letters = static_cast<int>(letters_before->size() + letters_after->size());
  if (rank >= 0) {
    if (*has_ellipsis ? letters > rank : letters != rank) {
      return ctx.Error("term '" + s + "' does not match an operand of rank " +
                       std::to_string(rank));
    }
    *ell_rank = *has_ellipsis ? rank - letters : 0;
  }
  return Status::Ok();
}

}  // namespace

Status EinsumKernel(KernelContext& ctx) {
  std::string eq;
  for (char c : ctx.attrs().GetString("equation", "")) {
    if (c != ' ') eq += c;
  }
  if (eq.empty()) return ctx.Error("attribute equation is required");
  const size_t arrow = eq.find("->");
  const std::string lhs = eq.substr(0, arrow);
  std::vector<std::string> terms;
  {
    size_t start = 0;
    while (true) {
      const size_t comma = lhs.find(',', start);
      terms.push_back(lhs.substr(start, comma - start));
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  }
  const size_t n_in = terms.size();
  std::vector<const Tensor*> ins;
  for (size_t i = 0; i < ctx.num_inputs(); ++i) {
    if (ctx.input(i) == nullptr) return ctx.Error("inputs may not be omitted");
    ins.push_back(ctx.input(i));
  }
  if (ins.size() != n_in) {
    return ctx.Error("equation has " + std::to_string(n_in) + " terms but the node has " +
                     std::to_string(ins.size()) + " inputs");
  }
  for (const Tensor* t : ins) {
    if (t->type() != ins[0]->type()) return ctx.Error("inputs must have one element type");
  }
  // Parse each term and expand ellipses.
  int max_ell = 0;
  std::vector<std::vector<int>> before(n_in), after(n_in);
  std::vector<int> ell(n_in, 0);
  std::vector<bool> has_ell(n_in);
  for (size_t i = 0; i < n_in; ++i) {
    bool h;
    KILN_RETURN_IF_ERROR(
        ParseTerm(ctx, terms[i], ins[i]->rank(), &ell[i], &before[i], &after[i], &h));
    has_ell[i] = h;
    max_ell = std::max(max_ell, ell[i]);
  }
  std::vector<Term> in_terms(n_in);
  for (size_t i = 0; i < n_in; ++i) {
    in_terms[i].labels = before[i];
    for (int e = 0; e < ell[i]; ++e)
      in_terms[i].labels.push_back(kEllipsisBase + max_ell - ell[i] + e);
    in_terms[i].labels.insert(in_terms[i].labels.end(), after[i].begin(), after[i].end());
  }
  // Label sizes (1 broadcasts).
  std::map<int, int64_t> size;
  for (size_t i = 0; i < n_in; ++i) {
    for (size_t d = 0; d < in_terms[i].labels.size(); ++d) {
      const int l = in_terms[i].labels[d];
      const int64_t s = ins[i]->dim(static_cast<int>(d));
      auto it = size.find(l);
      if (it == size.end() || it->second == 1) {
        size[l] = s;
      } else if (s != 1 && s != it->second) {
        return ctx.Error("label sizes disagree: " + std::to_string(s) + " vs " +
                         std::to_string(it->second));
      }
    }
  }
  // Output labels.
  std::vector<int> out_labels;
  if (arrow != std::string::npos) {
    std::vector<int> ob, oa;
    int unused = 0;
    bool h;
    KILN_RETURN_IF_ERROR(ParseTerm(ctx, eq.substr(arrow + 2), -1, &unused, &ob, &oa, &h));
    out_labels = ob;
    if (h) {
      for (int e = 0; e < max_ell; ++e) out_labels.push_back(kEllipsisBase + e);
    }
    out_labels.insert(out_labels.end(), oa.begin(), oa.end());
    for (int l : out_labels) {
      if (l < kEllipsisBase && size.count(l) == 0) return ctx.Error("output label not in inputs");
    }
    std::vector<int> sorted = out_labels;
    std::sort(sorted.begin(), sorted.end());
    if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) {
      return ctx.Error("output labels repeat");
    }
  } else {
    for (int e = 0; e < max_ell; ++e) out_labels.push_back(kEllipsisBase + e);
    std::map<int, int> count;
    for (size_t i = 0; i < n_in; ++i) {
      for (int l : before[i]) ++count[l];
      for (int l : after[i]) ++count[l];
    }
    std::vector<int> singles;
    for (auto [l, c] : count) {
      if (c == 1) singles.push_back(l);
    }
    // Sort by ASCII order (uppercase before lowercase) like numpy.
    std::sort(singles.begin(), singles.end(), [](int a, int b) {
      auto key = [](int x) { return x >= 26 ? x - 26 : x + 26; };
      return key(a) < key(b);
    });
    out_labels.insert(out_labels.end(), singles.begin(), singles.end());
  }
  // Every label: output ones first, then summed ones.
  std::vector<int> all = out_labels;
  for (auto& [l, s] : size) {
    if (std::find(all.begin(), all.end(), l) == all.end()) all.push_back(l);
  }
  Shape out_shape;
  for (int l : out_labels) out_shape.push_back(size.count(l) ? size[l] : 1);
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.output(0, ins[0]->type(), out_shape));
  const size_t nl = all.size();
  std::vector<int64_t> extent(nl);
  for (size_t j = 0; j < nl; ++j) extent[j] = size.count(all[j]) ? size[all[j]] : 1;
  // stride[i][j]: step of operand i's offset when label j advances.
  std::vector<std::vector<int64_t>> stride(n_in, std::vector<int64_t>(nl, 0));
  for (size_t i = 0; i < n_in; ++i) {
    const auto st = Strides(ins[i]->shape());
    for (size_t d = 0; d < in_terms[i].labels.size(); ++d) {
      if (ins[i]->dim(static_cast<int>(d)) == 1) continue;  // broadcast
      const size_t j = std::find(all.begin(), all.end(), in_terms[i].labels[d]) - all.begin();
      stride[i][j] += st[d];
    }
  }
  const int64_t out_count = y->size();
  int64_t inner_count = 1;
  for (size_t j = out_labels.size(); j < nl; ++j) inner_count *= extent[j];
  const bool ok = Dispatch<kAllNumeric>(ins[0]->type(), [&](auto tag) {
    using T = decltype(tag);
    using Acc =
        std::conditional_t<std::is_integral_v<T>,
                           std::conditional_t<std::is_signed_v<T>, int64_t, uint64_t>, double>;
    T* yd = y->data<T>();
    std::vector<const T*> data(n_in);
    for (size_t i = 0; i < n_in; ++i) data[i] = ins[i]->data<T>();
    std::vector<int64_t> idx(nl, 0), off(n_in, 0);
    for (int64_t o = 0; o < out_count; ++o) {
      Acc acc{};
      for (int64_t s = 0; s < inner_count; ++s) {
        Acc prod = Acc(1);
        for (size_t i = 0; i < n_in; ++i) {
          if constexpr (std::is_integral_v<T>) {
            prod *= static_cast<Acc>(data[i][off[i]]);
          } else {
            prod *= ToD(data[i][off[i]]);
          }
        }
        acc += prod;
        // Advance the summed labels (innermost last).
        for (size_t j = nl; j-- > out_labels.size();) {
          for (size_t i = 0; i < n_in; ++i) off[i] += stride[i][j];
          if (++idx[j] < extent[j]) break;
          for (size_t i = 0; i < n_in; ++i) off[i] -= stride[i][j] * extent[j];
          idx[j] = 0;
        }
      }
      if constexpr (std::is_integral_v<T>) {
        yd[o] = static_cast<T>(acc);
      } else {
        yd[o] = FromD<T>(acc);
      }
      for (size_t j = out_labels.size(); j-- > 0;) {
        for (size_t i = 0; i < n_in; ++i) off[i] += stride[i][j];
        if (++idx[j] < extent[j]) break;
        for (size_t i = 0; i < n_in; ++i) off[i] -= stride[i][j] * extent[j];
        idx[j] = 0;
      }
    }
  });
  if (!ok) return ctx.UnsupportedType(ins[0]->type());
  return Status::Ok();
}

}  // namespace kiln::nn
