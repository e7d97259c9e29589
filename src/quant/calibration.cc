// Calibration statistics: recording, merging, ranges, and the JSON file (see calibration.h).
#include "quant/calibration.h"

#include <algorithm>
#include <cmath>
#include <tuple>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

namespace kiln {
namespace {

using Json = nlohmann::json;
constexpr int kHalf = kHistogramBins / 2;

// The smallest power of two strictly greater than x (x >= 0); 1 for 0.
double RangeFor(double x) {
  int e = 0;
  std::frexp(x, &e);  // x = m * 2^e with m in [0.5, 1), so x < 2^e
  return x == 0 ? 1.0 : std::ldexp(1.0, e);
}

int BinOf(double x, double range) {
  return static_cast<int>(std::floor(x / range * kHalf)) + kHalf;
}

// Doubles the histogram's range once: bin pairs merge exactly (calibration.h).
void DoubleRange(TensorStats& s) {
  std::vector<int64_t> h(kHistogramBins, 0);
  for (int i = 0; i < kHistogramBins; ++i) h[(i + kHalf) / 2] += s.hist[i];
  s.hist = std::move(h);
  s.range *= 2;
}

// |x| histogram: bin i counts |x| in [i w, (i + 1) w), w = range / kHalf.
std::vector<double> AbsHistogram(const TensorStats& s) {
  std::vector<double> a(kHalf);
  for (int i = 0; i < kHalf; ++i) {
    a[i] = static_cast<double>(s.hist[kHalf + i] + s.hist[kHalf - 1 - i]);
  }
  return a;
}

// KL(P || Q) of TensorRT's entropy calibration for threshold bin `t` and `levels` levels.
double KlDivergence(const std::vector<double>& h, int t, int levels) {
  std::vector<double> p(h.begin(), h.begin() + t);
  double outliers = 0;
  for (size_t i = t; i < h.size(); ++i) outliers += h[i];
  p[t - 1] += outliers;
  std::vector<double> q(t, 0.0);
  for (int j = 0; j < levels; ++j) {
    const int b = static_cast<int>(static_cast<int64_t>(j) * t / levels);
    const int e = static_cast<int>(static_cast<int64_t>(j + 1) * t / levels);
    double sum = 0;
    int nonzero = 0;
    for (int k = b; k < e; ++k) {
      sum += h[k];
      nonzero += h[k] != 0;
    }
    for (int k = b; k < e; ++k) {
      if (h[k] != 0) q[k] = sum / nonzero;
    }
  }
  double ps = 0, qs = 0;
  for (int k = 0; k < t; ++k) {
    ps += p[k];
    qs += q[k];
  }
  if (ps == 0 || qs == 0) return 0;
  double kl = 0;
  for (int k = 0; k < t; ++k) {
    if (p[k] == 0) continue;
    const double pk = p[k] / ps;
    const double qk = std::max(q[k] / qs, 1e-12);
    kl += pk * std::log(pk / qk);
  }
  return kl;
}

std::string Num(double x) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", x);
  return buf;
}

// Records the byte offset and message of the first JSON syntax error.
class SyntaxCheck : public nlohmann::json_sax<Json> {
 public:
  size_t position = 0;
  std::string message;
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override { return true; }
  bool key(string_t&) override { return true; }
  bool end_object() override { return true; }
  bool start_array(std::size_t) override { return true; }
  bool end_array() override { return true; }
  bool parse_error(std::size_t pos, const std::string& token,
                   const nlohmann::detail::exception& ex) override {
    position = pos;
    message = ex.what();
    return false;
  }
};

}  // namespace

Status TensorStats::Add(const Tensor& t) {
  if (!IsFloating(t.type())) {
    return InvalidArgument("calibration records floating tensors only, found " + t.Describe());
  }
  double lo = std::numeric_limits<double>::infinity(), hi = -lo, amax = 0;
  int64_t finite = 0;
  for (int64_t i = 0; i < t.size(); ++i) {
    const double x = t.GetAsDouble(i);
    if (!std::isfinite(x)) {
      ++nonfinite;
      continue;
    }
    ++finite;
    lo = std::min(lo, x);
    hi = std::max(hi, x);
    amax = std::max(amax, std::fabs(x));
  }
  if (finite == 0) return Status::Ok();
  if (t.rank() >= 2 && t.dim(1) > 0) {
    const int64_t channels = t.dim(1);
    int64_t inner = 1;
    for (int d = 2; d < t.rank(); ++d) inner *= t.dim(d);
    // Channels are valid so far (or nothing recorded yet) and match: accumulate; else poison.
    const bool fresh = count == 0 && channel_sum.empty();
    if (fresh || (HasChannelMeans() && static_cast<int64_t>(channel_sum.size()) == channels)) {
      channel_sum.resize(channels, 0.0);
      channel_count.resize(channels, 0);
      for (int64_t i = 0; i < t.size(); ++i) {
        const double x = t.GetAsDouble(i);
        if (!std::isfinite(x)) continue;
        const int64_t c = (i / std::max<int64_t>(inner, 1)) % channels;
        channel_sum[c] += x;
        ++channel_count[c];
      }
    } else {
      channel_sum.clear();
      channel_count.clear();
    }
  } else {
    channel_sum.clear();
    channel_count.clear();
  }
  const double need = RangeFor(amax);
  if (hist.empty()) {
    hist.assign(kHistogramBins, 0);
    range = need;
  }
  while (range < need) DoubleRange(*this);
  for (int64_t i = 0; i < t.size(); ++i) {
    const double x = t.GetAsDouble(i);
    if (std::isfinite(x)) ++hist[BinOf(x, range)];
  }
  count += finite;
  min = std::min(min, lo);
  max = std::max(max, hi);
  return Status::Ok();
}

void TensorStats::Merge(const TensorStats& o) {
  nonfinite += o.nonfinite;
  if (o.count == 0) return;
  if (count == 0) {
    const int64_t nf = nonfinite;
    *this = o;
    nonfinite = nf;
    return;
  }
  TensorStats other = o;
  if (HasChannelMeans() && other.HasChannelMeans() &&
      channel_sum.size() == other.channel_sum.size()) {
    for (size_t c = 0; c < channel_sum.size(); ++c) {
      channel_sum[c] += other.channel_sum[c];
      channel_count[c] += other.channel_count[c];
    }
  } else {
    channel_sum.clear();
    channel_count.clear();
  }
  while (range < other.range) DoubleRange(*this);
  while (other.range < range) DoubleRange(other);
  for (int i = 0; i < kHistogramBins; ++i) hist[i] += other.hist[i];
  count += other.count;
  min = std::min(min, other.min);
  max = std::max(max, other.max);
}

bool TensorStats::HasChannelMeans() const {
  if (count == 0 || channel_sum.empty() || channel_sum.size() != channel_count.size()) return false;
  int64_t total = 0;
  for (int64_t n : channel_count) total += n;
  return total == count;
}

double TensorStats::ChannelMean(size_t c) const {
  return channel_count[c] > 0 ? channel_sum[c] / static_cast<double>(channel_count[c]) : 0.0;
}

double TensorStats::BinLow(int i) const {
  return (static_cast<double>(i) - kHalf) * range / kHalf;
}

std::string CalibrationMethod::ToString() const {
  switch (method) {
    case RangeMethod::kMinMax: return "minmax";
    case RangeMethod::kPercentile: return "percentile:" + Num(percentile);
    case RangeMethod::kEntropy: return "entropy";
    case RangeMethod::kMse: return "mse";
  }
  return "?";
}

Result<CalibrationMethod> ParseCalibrationMethod(const std::string& text) {
  CalibrationMethod m;
  if (text == "minmax") return m;
  if (text == "entropy") {
    m.method = RangeMethod::kEntropy;
    return m;
  }
  if (text == "mse") {
    m.method = RangeMethod::kMse;
    return m;
  }
  if (text.rfind("percentile:", 0) == 0) {
    const std::string p = text.substr(11);
    char* end = nullptr;
    const double v = std::strtod(p.c_str(), &end);
    if (p.empty() || *end != '\0' || !(v > 0 && v <= 100)) {
      return InvalidArgument("--method '" + text + "': the percentile must be a number in (0, 100]");
    }
    m.method = RangeMethod::kPercentile;
    m.percentile = v;
    return m;
  }
  return InvalidArgument("--method '" + text + "': expected minmax, percentile:P, entropy or mse");
}

// The range minimizing the expected squared quantization error of the recorded values:
// rounding noise step^2 / 12 for each value inside, (v - bound)^2 for each clipped one (bin
// centres). Asymmetric: 255 steps over [lo, hi] (holding 0), lo and hi searched in turn over 256
// candidates each between the median magnitude and the extreme, twice; symmetric: 254 steps
// over [-t, t].
std::pair<double, double> MseRange(const TensorStats& s, bool symmetric) {
  const double w = s.range / kHalf;
  auto centre = [&](int i) { return s.BinLow(i) + 0.5 * w; };
  auto cost = [&](double lo, double hi) {
    const double step = symmetric ? std::max(-lo, hi) / 127.0 : (hi - lo) / 255.0;
    const double noise = step * step / 12.0;
    double e = 0;
    for (int i = 0; i < kHistogramBins; ++i) {
      const double n = static_cast<double>(s.hist[i]);
      if (n == 0) continue;
      const double v = centre(i);
      if (v > hi) {
        e += n * (v - hi) * (v - hi);
      } else if (v < lo) {
        e += n * (v - lo) * (v - lo);
      } else {
        e += n * noise;
      }
    }
    return e;
  };
  double lo = std::min(s.min, 0.0), hi = std::max(s.max, 0.0);
  if (symmetric) {
    const double amax = std::max(-lo, hi);
    double best_t = amax, best = cost(-amax, amax);
    for (int k = 1; k <= 256; ++k) {
      const double t = amax * k / 256.0;
      const double c = cost(-t, t);
      if (c < best) best = c, best_t = t;
    }
    return {-best_t, best_t};
  }
  for (int round = 0; round < 2; ++round) {
    double best = cost(lo, hi);
    const double hmax = std::max(s.max, 0.0), lmin = std::min(s.min, 0.0);
    for (int k = 1; k <= 256 && hmax > 0; ++k) {
      const double h = hmax * k / 256.0;
      const double c = cost(lo, h);
      if (c < best) best = c, hi = h;
    }
    for (int k = 1; k <= 256 && lmin < 0; ++k) {
      const double l = lmin * k / 256.0;
      const double c = cost(l, hi);
      if (c < best) best = c, lo = l;
    }
  }
  return {lo, hi};
}

Result<std::pair<double, double>> ComputeRange(const TensorStats& s, const CalibrationMethod& m,
                                               bool symmetric) {
  if (s.count == 0) return InvalidArgument("no finite values were recorded");
  const double amax = std::max(std::fabs(s.min), std::fabs(s.max));
  double lo = s.min, hi = s.max;
  const double w = s.range / kHalf;
  if (m.method == RangeMethod::kPercentile && m.percentile < 100) {
    if (symmetric) {
      const std::vector<double> a = AbsHistogram(s);
      const double target = m.percentile / 100.0 * static_cast<double>(s.count);
      double cum = 0;
      double t = amax;
      for (int i = 0; i < kHalf; ++i) {
        cum += a[i];
        if (cum >= target) {
          t = std::min(amax, (i + 1) * w);
          break;
        }
      }
      lo = -t;
      hi = t;
    } else {
      const double tail = (100.0 - m.percentile) / 200.0 * static_cast<double>(s.count);
      double cum = 0;
      int first = 0, last = kHistogramBins - 1;
      for (int i = 0; i < kHistogramBins; ++i) {
        cum += static_cast<double>(s.hist[i]);
        if (cum > tail) {
          first = i;
          break;
        }
      }
      cum = 0;
      for (int i = kHistogramBins - 1; i >= 0; --i) {
        cum += static_cast<double>(s.hist[i]);
        if (cum > tail) {
          last = i;
          break;
        }
      }
      lo = std::max(s.min, s.BinLow(first));
      hi = std::min(s.max, s.BinLow(last + 1));
    }
  } else if (m.method == RangeMethod::kMse) {
    std::tie(lo, hi) = MseRange(s, symmetric);
  } else if (m.method == RangeMethod::kEntropy) {
    const std::vector<double> a = AbsHistogram(s);
    const int levels = (!symmetric && s.min >= 0) ? 256 : 128;
    int used = kHalf;
    while (used > 1 && a[used - 1] == 0) --used;
    double t = amax;
    if (used > levels) {
      const int step = std::max(1, (used - levels) / 256);
      double best = std::numeric_limits<double>::infinity();
      int best_bin = used;
      for (int b = levels; b <= used; b += step) {
        const double kl = KlDivergence(a, b, levels);
        if (kl < best) {
          best = kl;
          best_bin = b;
        }
      }
      t = std::min(amax, best_bin * w);
    }
    lo = -t;
    hi = t;
  } else if (symmetric) {
    lo = -amax;
    hi = amax;
  }
  if (symmetric) {
    const double t = std::max(std::fabs(lo), std::fabs(hi));
    return std::make_pair(-t, t);
  }
  lo = std::max(lo, s.min);
  hi = std::min(hi, s.max);
  if (lo > hi) lo = hi = s.min;
  return std::make_pair(lo, hi);
}

Status CalibrationStats::Add(const std::string& name, const Tensor& t) {
  Status st = tensors_[name].Add(t);
  if (!st.ok()) return InvalidArgument("tensor '" + name + "': " + st.message());
  return st;
}

Status CalibrationStats::Merge(const CalibrationStats& other) {
  for (const auto& [name, s] : other.tensors_) tensors_[name].Merge(s);
  runs_ += other.runs_;
  return Status::Ok();
}

const TensorStats* CalibrationStats::Find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

std::string CalibrationStats::Serialize() const {
  Json j;
  j["format"] = kCalibrationFormat;
  j["version"] = kCalibrationVersion;
  j["bins"] = kHistogramBins;
  j["runs"] = runs_;
  Json tensors = Json::object();
  for (const auto& [name, s] : tensors_) {
    Json t;
    t["count"] = s.count;
    t["nonfinite"] = s.nonfinite;
    if (s.count > 0) {
      t["min"] = s.min;
      t["max"] = s.max;
      t["range"] = s.range;
      int first = 0, last = kHistogramBins - 1;
      while (first < last && s.hist[first] == 0) ++first;
      while (last > first && s.hist[last] == 0) --last;
      t["first_bin"] = first;
      t["counts"] = std::vector<int64_t>(s.hist.begin() + first, s.hist.begin() + last + 1);
      if (s.HasChannelMeans()) {
        t["channel_sums"] = s.channel_sum;
        t["channel_counts"] = s.channel_count;
      }
    }
    tensors[name] = std::move(t);
  }
  j["tensors"] = std::move(tensors);
  return j.dump() + "\n";
}

Result<CalibrationStats> CalibrationStats::Parse(const std::string& text, const std::string& what) {
  SyntaxCheck check;
  if (!Json::sax_parse(text, &check)) {
    return InvalidArgument(what + ": not a valid calibration file (JSON error at byte " +
                           std::to_string(check.position) + " of " + std::to_string(text.size()) +
                           "; truncated or corrupted?): " + check.message);
  }
  const Json j = Json::parse(text, nullptr, false);
  auto bad = [&](const std::string& m) { return InvalidArgument(what + ": " + m); };
  if (!j.is_object() || !j.contains("format") || j["format"] != kCalibrationFormat) {
    return bad(std::string("not a calibration file (expected \"format\": \"") + kCalibrationFormat +
               "\")");
  }
  if (!j.contains("version") || !j["version"].is_number_integer() ||
      j["version"].get<int64_t>() != kCalibrationVersion) {
    return bad("unsupported calibration file version (expected " +
               std::to_string(kCalibrationVersion) + ")");
  }
  if (!j.contains("bins") || !j["bins"].is_number_integer() ||
      j["bins"].get<int64_t>() != kHistogramBins) {
    return bad("expected \"bins\": " + std::to_string(kHistogramBins));
  }
  if (!j.contains("runs") || !j["runs"].is_number_integer() || j["runs"].get<int64_t>() < 0) {
    return bad("\"runs\" must be a non-negative integer");
  }
  if (!j.contains("tensors") || !j["tensors"].is_object()) return bad("missing \"tensors\" object");
  CalibrationStats stats;
  stats.runs_ = j["runs"].get<int64_t>();
  for (const auto& item : j["tensors"].items()) {
    // Named, not a structured binding: clang 14 cannot capture those in the lambdas below.
    const std::string& name = item.key();
    const nlohmann::json& t = item.value();
    auto tbad = [&](const std::string& m) { return bad("tensor '" + name + "': " + m); };
    auto int_field = [&](const char* key, int64_t& out) -> bool {
      if (!t.contains(key) || !t[key].is_number_integer() || t[key].get<int64_t>() < 0) return false;
      out = t[key].get<int64_t>();
      return true;
    };
    if (!t.is_object()) return tbad("expected an object");
    TensorStats s;
    if (!int_field("count", s.count) || !int_field("nonfinite", s.nonfinite)) {
      return tbad("\"count\" and \"nonfinite\" must be non-negative integers");
    }
    if (s.count > 0) {
      for (const char* key : {"min", "max", "range"}) {
        if (!t.contains(key) || !t[key].is_number()) {
          return tbad(std::string("missing number \"") + key + "\"");
        }
      }
      s.min = t["min"].get<double>();
      s.max = t["max"].get<double>();
      s.range = t["range"].get<double>();
      int dummy = 0;
      if (!(s.min <= s.max) || !std::isfinite(s.min) || !std::isfinite(s.max)) {
        return tbad("min " + Num(s.min) + " > max " + Num(s.max));
      }
      if (!(s.range > 0) || std::frexp(s.range, &dummy) != 0.5 ||
          std::max(std::fabs(s.min), std::fabs(s.max)) >= s.range) {
        return tbad("\"range\" " + Num(s.range) + " is not a power of two above max |x|");
      }
      int64_t first = 0;
      if (!int_field("first_bin", first) || !t.contains("counts") || !t["counts"].is_array()) {
        return tbad("missing \"first_bin\" or \"counts\"");
      }
      const Json& counts = t["counts"];
      if (first + static_cast<int64_t>(counts.size()) > kHistogramBins) {
        return tbad("histogram has more than " + std::to_string(kHistogramBins) + " bins");
      }
      s.hist.assign(kHistogramBins, 0);
      int64_t total = 0;
      for (size_t i = 0; i < counts.size(); ++i) {
        if (!counts[i].is_number_integer() || counts[i].get<int64_t>() < 0) {
          return tbad("histogram count " + std::to_string(i) + " is not a non-negative integer");
        }
        s.hist[first + i] = counts[i].get<int64_t>();
        total += s.hist[first + i];
      }
      if (total != s.count) {
        return tbad("histogram counts add up to " + std::to_string(total) + ", expected count " +
                    std::to_string(s.count));
      }
      // Optional (files written before bias correction have none; they load without means).
      if (t.contains("channel_sums") || t.contains("channel_counts")) {
        const bool shape_ok = t.contains("channel_sums") && t["channel_sums"].is_array() &&
                              t.contains("channel_counts") && t["channel_counts"].is_array() &&
                              t["channel_sums"].size() == t["channel_counts"].size();
        if (!shape_ok) {
          return tbad("\"channel_sums\" and \"channel_counts\" must be arrays of one size");
        }
        int64_t n = 0;
        for (size_t i = 0; i < t["channel_sums"].size(); ++i) {
          const Json& sum = t["channel_sums"][i];
          const Json& cnt = t["channel_counts"][i];
          if (!sum.is_number() || !std::isfinite(sum.get<double>()) || !cnt.is_number_integer() ||
              cnt.get<int64_t>() < 0) {
            return tbad("channel entry " + std::to_string(i) + " is not a finite sum and a count");
          }
          s.channel_sum.push_back(sum.get<double>());
          s.channel_count.push_back(cnt.get<int64_t>());
          n += s.channel_count.back();
        }
        if (n != s.count) {
          return tbad("channel counts add up to " + std::to_string(n) + ", expected count " +
                      std::to_string(s.count));
        }
      }
    }
    stats.tensors_[name] = std::move(s);
  }
  return stats;
}

Status SaveCalibrationStats(const CalibrationStats& stats, const std::string& path) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) return IoError("cannot write calibration file '" + tmp + "'");
    const std::string text = stats.Serialize();
    f.write(text.data(), static_cast<std::streamsize>(text.size()));
    if (!f) return IoError("cannot write calibration file '" + tmp + "'");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    return IoError("cannot write calibration file '" + path + "'");
  }
  return Status::Ok();
}

Result<CalibrationStats> LoadCalibrationStats(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return IoError("cannot read calibration file '" + path + "'");
  std::stringstream ss;
  ss << f.rdbuf();
  return CalibrationStats::Parse(ss.str(), "calibration file '" + path + "'");
}

}  // namespace kiln
