// Calibration statistics: per-tensor min/max and histograms recorded while a float model runs,
// saved to and merged from a JSON file, and turned into quantization ranges.
//
// Histogram layout (why merging is exact): kHistogramBins bins cover [-range, range) where
// `range` is the smallest power of two strictly greater than max |x| seen so far. A value x
// falls in bin floor(x * (kHistogramBins / 2) / range) + kHistogramBins / 2; scaling by powers
// of two is exact in floating point, so the index is exact. When a larger value arrives the
// range doubles and bin pairs merge: bin i moves to (i + kHistogramBins / 2) / 2, which is
// exactly the bin the value would have had at the doubled range. Hence recording A then B, or
// recording A and B in two processes and merging the files, gives identical statistics.
//
// Ranges from statistics (the real interval a quantized tensor must represent):
//   minmax           [min, max]
//   percentile:P     symmetric: [-T, T] with T the P-th percentile of |x|; asymmetric: the
//                    (100-P)/2-th and (100+P)/2-th percentiles of x (P in (0, 100])
//   entropy          T minimising the KL divergence between the |x| histogram clipped at T and
//                    its quantized version (TensorRT's calibration); symmetric [-T, T],
//                    asymmetric [-T, T] intersected with [min, max]
// Every range is clamped to [min, max] of the data.
//
//   CalibrationStats stats;
//   stats.Add("conv1_out", tensor);          // or RecordStatistics (record.h)
//   KILN_RETURN_IF_ERROR(SaveCalibrationStats(stats, "stats.json"));
//   KILN_ASSIGN_OR_RETURN(CalibrationStats other, LoadCalibrationStats("other.json"));
//   KILN_RETURN_IF_ERROR(stats.Merge(other));
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"

namespace kiln {

inline constexpr int kHistogramBins = 4096;
inline constexpr const char* kCalibrationFormat = "kiln-calibration";
inline constexpr int kCalibrationVersion = 1;

struct TensorStats {
  int64_t count = 0;      // finite elements recorded
  int64_t nonfinite = 0;  // inf/NaN elements (left out of everything else)
  double min = std::numeric_limits<double>::infinity();
  double max = -std::numeric_limits<double>::infinity();
  double range = 0;           // histogram half-width, a power of two; 0 while empty
  std::vector<int64_t> hist;  // kHistogramBins counts, empty while count == 0
  // Per-channel sums and counts of the finite elements along axis 1 (rank >= 2 tensors), for
  // bias correction. Valid only when the counts add up to `count` (HasChannelMeans): a file
  // written before they existed, or merged recordings of different channel counts, have none.
  std::vector<double> channel_sum;
  std::vector<int64_t> channel_count;

  bool HasChannelMeans() const;
  double ChannelMean(size_t c) const;  // HasChannelMeans() and c < channel_sum.size()

  // Records every element of a floating tensor (other types are an error).
  Status Add(const Tensor& t);
  void Merge(const TensorStats& other);
  // The lower edge of bin i.
  double BinLow(int i) const;
};

enum class RangeMethod { kMinMax, kPercentile, kEntropy, kMse };

struct CalibrationMethod {
  RangeMethod method = RangeMethod::kMinMax;
  double percentile = 99.99;  // for kPercentile
  std::string ToString() const;  // "minmax" / "percentile:99.99" / "entropy" / "mse"
};
// "minmax", "percentile:99.99" (P in (0, 100]), "entropy", "mse" (the range of least expected
// squared quantization error: clipping plus rounding noise, MseRange in calibration.cc).
Result<CalibrationMethod> ParseCalibrationMethod(const std::string& text);

// A real interval [lo, hi] with lo <= hi, from the statistics of one tensor. `symmetric`: the
// tensor will be quantized symmetrically (int8, zero point 0), so the interval is [-T, T].
Result<std::pair<double, double>> ComputeRange(const TensorStats& s, const CalibrationMethod& m,
                                               bool symmetric);

class CalibrationStats {
 public:
  // Records a tensor's elements under `name`.
  Status Add(const std::string& name, const Tensor& t);
  // Adds another recording (same histogram layout); `runs` add up.
  Status Merge(const CalibrationStats& other);
  const TensorStats* Find(const std::string& name) const;
  const std::map<std::string, TensorStats>& tensors() const { return tensors_; }
  // How many model runs (samples) were recorded.
  int64_t runs() const { return runs_; }
  void AddRuns(int64_t n) { runs_ += n; }

  std::string Serialize() const;  // JSON text
  // `what` names the source in errors (a file name).
  static Result<CalibrationStats> Parse(const std::string& text, const std::string& what);

 private:
  std::map<std::string, TensorStats> tensors_;
  int64_t runs_ = 0;
};

// Atomic write (temporary file, then rename).
Status SaveCalibrationStats(const CalibrationStats& stats, const std::string& path);
Result<CalibrationStats> LoadCalibrationStats(const std::string& path);

}  // namespace kiln
