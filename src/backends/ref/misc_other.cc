// Reference kernels for Det, the text ops StringNormalizer and TfIdfVectorizer, and the random
// generators Bernoulli, RandomUniform(Like) and RandomNormal(Like).
//
// Det: LU factorisation with partial pivoting in double, one matrix at a time.
// Random generators draw from a std::mt19937 seeded with the `seed` attribute (a fixed default
// otherwise): reproducible within Kiln, but not the same stream as other runtimes.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "backends/ref/misc_internal.h"

namespace kiln::misc_ref {

Status Det(KernelContext& ctx) {
  const Tensor* x = ctx.input(0);
  if (x == nullptr) return ctx.Error("missing input");
  if (!IsFloating(x->type())) return ctx.UnsupportedType(x->type());
  const int rank = x->rank();
  if (rank < 2 || x->dim(rank - 1) != x->dim(rank - 2)) {
    return ctx.Error("input must be [..., M, M], found " + x->Describe());
  }
  const int64_t m = x->dim(rank - 1);
  const Shape out_shape(x->shape().begin(), x->shape().end() - 2);
  const int64_t count = NumElements(out_shape);
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.output(0, x->type(), out_shape));
  std::vector<double> a(static_cast<size_t>(m * m));
  for (int64_t b = 0; b < count; ++b) {
    for (int64_t i = 0; i < m * m; ++i) a[static_cast<size_t>(i)] = x->GetAsDouble(b * m * m + i);
    double det = 1;
    for (int64_t c = 0; c < m && det != 0; ++c) {
      int64_t piv = c;
      for (int64_t r = c + 1; r < m; ++r) {
        if (std::fabs(a[static_cast<size_t>(r * m + c)]) >
            std::fabs(a[static_cast<size_t>(piv * m + c)]))
          piv = r;
      }
      const double pv = a[static_cast<size_t>(piv * m + c)];
      if (pv == 0) {
        det = 0;
        break;
      }
      if (piv != c) {
        for (int64_t k = 0; k < m; ++k)
          std::swap(a[static_cast<size_t>(piv * m + k)], a[static_cast<size_t>(c * m + k)]);
        det = -det;
      }
      det *= pv;
      for (int64_t r = c + 1; r < m; ++r) {
        const double f = a[static_cast<size_t>(r * m + c)] / pv;
        for (int64_t k = c; k < m; ++k)
          a[static_cast<size_t>(r * m + k)] -= f * a[static_cast<size_t>(c * m + k)];
      }
    }
    Dispatch<kDispatchFloat>(x->type(), [&](auto tag) {
      using T = decltype(tag);
      y->data<T>()[b] = static_cast<T>(det);
    });
  }
  return Status::Ok();
}

namespace {

std::string ChangeCase(std::string s, bool upper) {
  // ASCII case mapping; bytes of multi-byte UTF-8 sequences are left unchanged.
  for (char& ch : s) {
    const unsigned char u = static_cast<unsigned char>(ch);
    if (u < 128) ch = static_cast<char>(upper ? std::toupper(u) : std::tolower(u));
  }
  return s;
}

}  // namespace

Status StringNormalizer(KernelContext& ctx) {
  const Tensor* x = ctx.input(0);
  if (x == nullptr || x->type() != ElementType::kString)
    return ctx.Error("input must be a string tensor");
  if (x->rank() != 1 && !(x->rank() == 2 && x->dim(0) == 1)) {
    return ctx.Error("input must be [C] or [1, C], found " + x->Describe());
  }
  const std::string action = ctx.attrs().GetString("case_change_action", "NONE");
  if (action != "NONE" && action != "LOWER" && action != "UPPER") {
    return ctx.Error("case_change_action must be NONE, LOWER or UPPER, found '" + action + "'");
  }
  const bool case_sensitive = ctx.attrs().GetInt("is_case_sensitive", 0) != 0;
  std::vector<std::string> stop = ctx.attrs().GetStrings("stopwords");
  if (!case_sensitive) {
    for (auto& s : stop) s = ChangeCase(s, false);
  }
  std::vector<std::string> kept;
  for (int64_t i = 0; i < x->size(); ++i) {
    const std::string& s = x->data<std::string>()[i];
    const std::string key = case_sensitive ? s : ChangeCase(s, false);
    if (std::find(stop.begin(), stop.end(), key) != stop.end()) continue;
    kept.push_back(action == "NONE" ? s : ChangeCase(s, action == "UPPER"));
  }
  // Removing every element leaves a single empty string.
  if (kept.empty()) kept.emplace_back();
  const int64_t n = static_cast<int64_t>(kept.size());
  const Shape out_shape = x->rank() == 1 ? Shape{n} : Shape{1, n};
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.output(0, ElementType::kString, out_shape));
  for (int64_t i = 0; i < n; ++i) y->data<std::string>()[i] = kept[static_cast<size_t>(i)];
  return Status::Ok();
}

Status TfIdfVectorizer(KernelContext& ctx) {
  const Tensor* x = ctx.input(0);
  if (x == nullptr) return ctx.Error("missing input");
  const bool is_string = x->type() == ElementType::kString;
  if (!is_string && x->type() != ElementType::kI32 && x->type() != ElementType::kI64) {
    return ctx.UnsupportedType(x->type());
  }
  if (x->rank() > 2) return ctx.Error("input must be [C] or [N, C], found " + x->Describe());
  const int64_t min_n = ctx.attrs().GetInt("min_gram_length", 1);
  const int64_t max_n = ctx.attrs().GetInt("max_gram_length", 1);
  const int64_t max_skip = ctx.attrs().GetInt("max_skip_count", 0);
  const std::string mode = ctx.attrs().GetString("mode", "TF");
  const auto counts = ctx.attrs().GetInts("ngram_counts");
  const auto indexes = ctx.attrs().GetInts("ngram_indexes");
  const auto weights = ctx.attrs().GetFloats("weights");
  const auto pool_i = ctx.attrs().GetInts("pool_int64s");
  const auto pool_s = ctx.attrs().GetStrings("pool_strings");
  if (mode != "TF" && mode != "IDF" && mode != "TFIDF")
    return ctx.Error("mode must be TF, IDF or TFIDF");
  if (min_n < 1 || max_n < min_n || max_skip < 0)
    return ctx.Error("bad n-gram length or skip attributes");
  if ((is_string && !pool_i.empty()) || (!is_string && !pool_s.empty())) {
    return ctx.Error("the pool type must match the input type");
  }
  // Every n-gram is keyed by its tokens rendered as strings (ints in decimal).
  const int64_t pool_size = static_cast<int64_t>(is_string ? pool_s.size() : pool_i.size());
  auto pool_token = [&](int64_t i) {
    return is_string ? pool_s[static_cast<size_t>(i)]
                     : std::to_string(pool_i[static_cast<size_t>(i)]);
  };
  std::map<std::vector<std::string>, int64_t> ngram_ordinal;
  int64_t ordinal = 0;
  for (size_t lvl = 0; lvl < counts.size(); ++lvl) {
    const int64_t n = static_cast<int64_t>(lvl) + 1;
    const int64_t start = counts[lvl];
    const int64_t end = lvl + 1 < counts.size() ? counts[lvl + 1] : pool_size;
    if (start < 0 || end > pool_size || end < start || (end - start) % n != 0) {
      return ctx.Error("ngram_counts does not partition the pool");
    }
    for (int64_t p = start; p < end; p += n) {
      std::vector<std::string> key;
      for (int64_t k = 0; k < n; ++k) key.push_back(pool_token(p + k));
      ngram_ordinal[key] = ordinal++;
    }
  }
  if (static_cast<int64_t>(indexes.size()) != ordinal) {
    return ctx.Error("ngram_indexes has " + std::to_string(indexes.size()) + " entries for " +
                     std::to_string(ordinal) + " n-grams");
  }
  if (!weights.empty() && weights.size() != indexes.size())
    return ctx.Error("weights and ngram_indexes sizes differ");
  int64_t width = 0;
  for (int64_t v : indexes) {
    if (v < 0) return ctx.Error("ngram_indexes must be non-negative");
    width = std::max(width, v + 1);
  }
  const int64_t rows = x->rank() == 2 ? x->dim(0) : 1;
  const int64_t cols = x->rank() == 0 ? 1 : x->dim(x->rank() - 1);
  std::vector<std::string> tokens(static_cast<size_t>(x->size()));
  for (int64_t i = 0; i < x->size(); ++i) {
    tokens[static_cast<size_t>(i)] =
        is_string ? x->data<std::string>()[i] : std::to_string(x->GetAsInt64(i));
  }
  std::vector<double> out(static_cast<size_t>(rows * width), 0.0);
  std::vector<int64_t> hits(static_cast<size_t>(ordinal));
  for (int64_t r = 0; r < rows; ++r) {
    std::fill(hits.begin(), hits.end(), 0);
    for (int64_t i = 0; i < cols; ++i) {
      for (int64_t n = min_n; n <= max_n; ++n) {
        // A unigram does not depend on the skip distance: count it once.
        const int64_t skips = n == 1 ? 0 : max_skip;
        for (int64_t s = 0; s <= skips; ++s) {
          if (i + (n - 1) * (s + 1) >= cols) break;
          std::vector<std::string> key;
          for (int64_t k = 0; k < n; ++k)
            key.push_back(tokens[static_cast<size_t>(r * cols + i + k * (s + 1))]);
          auto it = ngram_ordinal.find(key);
          if (it != ngram_ordinal.end()) ++hits[static_cast<size_t>(it->second)];
        }
      }
    }
    for (int64_t o = 0; o < ordinal; ++o) {
      const int64_t c = hits[static_cast<size_t>(o)];
      const double w = weights.empty() ? 1.0 : weights[static_cast<size_t>(o)];
      double v = static_cast<double>(c);
      if (mode == "IDF") v = c > 0 ? w : 0.0;
      if (mode == "TFIDF") v = static_cast<double>(c) * w;
      out[static_cast<size_t>(r * width + indexes[static_cast<size_t>(o)])] = v;
    }
  }
  const Shape out_shape = x->rank() == 2 ? Shape{rows, width} : Shape{width};
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.output(0, ElementType::kF32, out_shape));
  for (size_t i = 0; i < out.size(); ++i) y->data<float>()[i] = static_cast<float>(out[i]);
  return Status::Ok();
}

namespace {

std::mt19937_64 MakeEngine(const KernelContext& ctx) {
  const Attribute* seed = ctx.attrs().Find("seed");
  return std::mt19937_64(seed != nullptr ? static_cast<uint64_t>(static_cast<int64_t>(seed->f))
                                         : 5489u);
}

Result<ElementType> DType(const KernelContext& ctx, ElementType def) {
  if (!ctx.attrs().Has("dtype")) return def;
  const ElementType t = ElementTypeFromOnnx(static_cast<int>(ctx.attrs().GetInt("dtype", 1)));
  if (!IsFloating(t) && !IsInteger(t) && t != ElementType::kBool) {
    return ctx.Error("dtype " + std::to_string(ctx.attrs().GetInt("dtype", 1)) +
                     " is not supported");
  }
  return t;
}

Status FillRandom(KernelContext& ctx, ElementType t, const Shape& shape, bool normal) {
  auto engine = MakeEngine(ctx);
  const double a = ctx.attrs().GetFloat(normal ? "mean" : "low", 0.0f);
  const double b = ctx.attrs().GetFloat(normal ? "scale" : "high", 1.0f);
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.output(0, t, shape));
  std::uniform_real_distribution<double> uni(a, b);
  std::normal_distribution<double> gauss(a, b > 0 ? b : 1.0);
  bool ok = Dispatch<kAllNumeric | kDispatchBool>(t, [&](auto tag) {
    using T = decltype(tag);
    for (int64_t i = 0; i < y->size(); ++i) {
      const double v = normal ? gauss(engine) : uni(engine);
      if constexpr (std::is_same_v<T, bool>) {
        y->data<T>()[i] = v != 0;
      } else {
        y->data<T>()[i] = static_cast<T>(v);
      }
    }
  });
  if (!ok) return ctx.UnsupportedType(t);
  return Status::Ok();
}

}  // namespace

Status Bernoulli(KernelContext& ctx) {
  const Tensor* x = ctx.input(0);
  if (x == nullptr || !IsFloating(x->type())) return ctx.Error("input must be a float tensor");
  KILN_ASSIGN_OR_RETURN(ElementType t, DType(ctx, x->type()));
  auto engine = MakeEngine(ctx);
  std::uniform_real_distribution<double> uni(0.0, 1.0);
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.output(0, t, x->shape()));
  Dispatch<kAllNumeric | kDispatchBool>(t, [&](auto tag) {
    using T = decltype(tag);
    for (int64_t i = 0; i < x->size(); ++i) {
      const bool one = uni(engine) < x->GetAsDouble(i);
      if constexpr (std::is_same_v<T, bool>) {
        y->data<T>()[i] = one;
      } else {
        y->data<T>()[i] = static_cast<T>(one ? 1.0f : 0.0f);
      }
    }
  });
  return Status::Ok();
}

Status RandomUniform(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(ElementType t, DType(ctx, ElementType::kF32));
  const Shape shape = ctx.attrs().GetInts("shape");
  KILN_RETURN_IF_ERROR(CheckedNumElements(shape).status());
  return FillRandom(ctx, t, shape, false);
}

Status RandomNormal(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(ElementType t, DType(ctx, ElementType::kF32));
  const Shape shape = ctx.attrs().GetInts("shape");
  KILN_RETURN_IF_ERROR(CheckedNumElements(shape).status());
  return FillRandom(ctx, t, shape, true);
}

Status RandomUniformLike(KernelContext& ctx) {
  const Tensor* x = ctx.input(0);
  if (x == nullptr) return ctx.Error("missing input");
  KILN_ASSIGN_OR_RETURN(ElementType t, DType(ctx, x->type()));
  return FillRandom(ctx, t, x->shape(), false);
}

Status RandomNormalLike(KernelContext& ctx) {
  const Tensor* x = ctx.input(0);
  if (x == nullptr) return ctx.Error("missing input");
  KILN_ASSIGN_OR_RETURN(ElementType t, DType(ctx, x->type()));
  return FillRandom(ctx, t, x->shape(), true);
}

}  // namespace kiln::misc_ref
