#include "plan/memory_plan.h"

#include <algorithm>
#include <cstdio>
#include <numeric>

namespace kiln {

namespace {
int64_t AlignUp(int64_t x) {
  return (x + MemoryPlan::kAlignment - 1) / MemoryPlan::kAlignment * MemoryPlan::kAlignment;
}
}  // namespace

MemoryPlan PlanMemory(std::vector<BufferRequest> buffers) {
  MemoryPlan plan;
  plan.buffers = std::move(buffers);
  const size_t n = plan.buffers.size();
  plan.offsets.assign(n, 0);
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const auto& x = plan.buffers[a];
    const auto& y = plan.buffers[b];
    if (x.bytes != y.bytes) return x.bytes > y.bytes;
    if (x.first != y.first) return x.first < y.first;
    return x.id < y.id;
  });
  std::vector<size_t> placed;
  for (size_t idx : order) {
    const BufferRequest& b = plan.buffers[idx];
    plan.unshared_bytes += AlignUp(b.bytes);
    // Intervals in memory taken by live-overlapping placed buffers, sorted by offset.
    std::vector<std::pair<int64_t, int64_t>> taken;
    for (size_t p : placed) {
      const BufferRequest& o = plan.buffers[p];
      if (o.last < b.first || b.last < o.first) continue;
      taken.emplace_back(plan.offsets[p], plan.offsets[p] + AlignUp(o.bytes));
    }
    std::sort(taken.begin(), taken.end());
    int64_t offset = 0;
    const int64_t need = AlignUp(b.bytes);
    for (const auto& [start, end] : taken) {
      if (start - offset >= need) break;
      offset = std::max(offset, end);
    }
    plan.offsets[idx] = offset;
    plan.arena_bytes = std::max(plan.arena_bytes, offset + need);
    placed.push_back(idx);
  }
  return plan;
}

std::string MemoryPlan::ToString() const {
  std::string s;
  char line[512];
  std::snprintf(line, sizeof(line), "%-40s %12s %11s %12s\n", "buffer", "bytes", "steps", "offset");
  s += line;
  for (size_t i = 0; i < buffers.size(); ++i) {
    const auto& b = buffers[i];
    std::string steps = std::to_string(b.first) + ".." + std::to_string(b.last);
    std::string name = b.name.size() > 40 ? b.name.substr(0, 37) + "..." : b.name;
    std::snprintf(line, sizeof(line), "%-40s %12lld %11s %12lld\n", name.c_str(),
                  static_cast<long long>(b.bytes), steps.c_str(),
                  static_cast<long long>(offsets[i]));
    s += line;
  }
  std::snprintf(line, sizeof(line), "arena: %lld bytes for %zu buffers (%lld bytes without reuse)\n",
                static_cast<long long>(arena_bytes), buffers.size(),
                static_cast<long long>(unshared_bytes));
  s += line;
  return s;
}

}  // namespace kiln
