#include "plan/cache_key.h"

#include <cpuid.h>
#include <cpuinfo.h>

#include <algorithm>
#include <mutex>

#include "core/sha256.h"
#include "plan/build_id.h"
#include "plan/plan_file.h"

namespace kiln {

using nlohmann::json;

namespace {

bool HasAvxVnni() {
#if defined(__x86_64__) || defined(__i386__)
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid_max(0, nullptr) < 7) return false;
  __cpuid_count(7, 1, a, b, c, d);
  return (a >> 4) & 1;
#else
  return false;
#endif
}

}  // namespace

const CpuIdentity& CpuIdentity::Current() {
  static CpuIdentity id;
  static std::once_flag once;
  std::call_once(once, [] {
    if (!cpuinfo_initialize()) {
      id.vendor = "unknown";
      id.model = "unknown";
      return;
    }
    const cpuinfo_package* pkg = cpuinfo_get_package(0);
    id.model = pkg != nullptr ? pkg->name : "unknown";
    const cpuinfo_core* core = cpuinfo_get_core(0);
    switch (core != nullptr ? core->vendor : cpuinfo_vendor_unknown) {
      case cpuinfo_vendor_intel: id.vendor = "Intel"; break;
      case cpuinfo_vendor_amd: id.vendor = "AMD"; break;
      default: id.vendor = "other"; break;
    }
    auto add = [](bool has, const char* name) {
      if (has) id.features.push_back(name);
    };
    add(cpuinfo_has_x86_sse4_2(), "sse4.2");
    add(cpuinfo_has_x86_avx(), "avx");
    add(cpuinfo_has_x86_avx2(), "avx2");
    add(cpuinfo_has_x86_fma3(), "fma");
    add(cpuinfo_has_x86_f16c(), "f16c");
    add(cpuinfo_has_x86_avx512f(), "avx512f");
    add(cpuinfo_has_x86_avx512bw(), "avx512bw");
    add(cpuinfo_has_x86_avx512dq(), "avx512dq");
    add(cpuinfo_has_x86_avx512vl(), "avx512vl");
    add(cpuinfo_has_x86_avx512vnni(), "avx512vnni");
    add(cpuinfo_has_x86_avx512bf16(), "avx512bf16");
    add(HasAvxVnni(), "avxvnni");
    std::sort(id.features.begin(), id.features.end());
  });
  return id;
}

json CacheKey::ToJson() const {
  return json{{"plan_format", plan_format},
              {"kiln_build", kiln_build},
              {"source_sha256", source_sha256},
              {"cpu", {{"vendor", cpu.vendor}, {"model", cpu.model}, {"features", cpu.features}}},
              {"units", units},
              {"precision", precision},
              {"model_type", model_type},
              {"options", options},
              {"signatures", signatures}};
}

Result<CacheKey> CacheKey::FromJson(const json& j) {
  if (!j.is_object()) return InvalidArgument("cache key: not a JSON object");
  CacheKey k;
  try {
    k.plan_format = j.at("plan_format").get<uint32_t>();
    k.kiln_build = j.at("kiln_build").get<std::string>();
    k.source_sha256 = j.at("source_sha256").get<std::string>();
    k.cpu.vendor = j.at("cpu").at("vendor").get<std::string>();
    k.cpu.model = j.at("cpu").at("model").get<std::string>();
    k.cpu.features = j.at("cpu").at("features").get<std::vector<std::string>>();
    k.units = j.at("units").get<std::string>();
    k.precision = j.at("precision").get<std::string>();
    k.model_type = j.at("model_type").get<std::string>();
    k.options = j.at("options").get<std::string>();
    k.signatures = j.value("signatures", std::vector<std::string>{});
  } catch (const json::exception& e) {
    return InvalidArgument(std::string("cache key: ") + e.what());
  }
  return k;
}

std::string CacheKey::Hash() const {
  json j = ToJson();
  j.erase("signatures");
  return Sha256Hex(j.dump().data(), j.dump().size()).substr(0, 16);
}

std::string CanonicalOptions(const SessionOptions& o) {
  std::string s = "backends=";
  for (size_t i = 0; i < o.backends.size(); ++i) s += (i ? "," : "") + o.backends[i];
  s += ";pins=";
  bool first = true;
  for (const auto& [op, b] : o.op_backend) {
    s += (first ? "" : ",") + op + "=" + b;
    first = false;
  }
  s += std::string(";fallback=") + (o.fallback ? "1" : "0");
  s += std::string(";fuse_qdq=") + (o.fuse_qdq ? "1" : "0");
  if (o.isa) s += std::string(";isa=") + CpuIsaName(*o.isa);  // only when forced: keys stay
  if (o.int8_kernel != Int8Kernel::kAuto) s += std::string(";int8=") + Int8KernelName(o.int8_kernel);
  if (o.exact_int8) s += ";exact_int8=1";
  return s;
}

CacheKey CurrentKey(const std::string& source_sha256, const std::string& precision,
                    const std::string& model_type, const SessionOptions& options) {
  CacheKey k;
  k.plan_format = kPlanFormatVersion;
  k.kiln_build = KilnBuildId();
  k.source_sha256 = source_sha256;
  k.cpu = CpuIdentity::Current();
  k.units = ComputeUnitsName(options.units);
  k.precision = precision;
  k.model_type = model_type;
  k.options = CanonicalOptions(options);
  return k;
}

const char* PlanCompatibilityName(PlanCompatibility c) {
  switch (c) {
    case PlanCompatibility::kOptimal: return "optimal";
    case PlanCompatibility::kStale: return "stale";
    case PlanCompatibility::kIncompatible: return "incompatible";
  }
  return "?";
}

KeyComparison CompareKeys(const CacheKey& s, const CacheKey& w) {
  KeyComparison r;
  auto no = [&](std::string why) {
    r.compatibility = PlanCompatibility::kIncompatible;
    r.reason = std::move(why);
    return r;
  };
  if (s.plan_format != w.plan_format) {
    return no("plan format " + std::to_string(s.plan_format) + ", this Kiln reads " +
              std::to_string(w.plan_format));
  }
  if (s.source_sha256 != w.source_sha256) return no("compiled from another source model");
  for (const std::string& f : s.cpu.features) {
    if (std::find(w.cpu.features.begin(), w.cpu.features.end(), f) == w.cpu.features.end()) {
      return no("compiled for a CPU with " + f + ", which this CPU (" + w.cpu.model + ") lacks");
    }
  }
  if (s.units != w.units) return no("compute units " + s.units + ", the session asks " + w.units);
  if (s.model_type != w.model_type) return no("model type " + s.model_type + " vs " + w.model_type);
  if (s.options != w.options) return no("options '" + s.options + "' vs '" + w.options + "'");
  if (s.kiln_build != w.kiln_build) {
    r.compatibility = PlanCompatibility::kStale;
    r.reason = "built by Kiln " + s.kiln_build + ", this is " + w.kiln_build;
    return r;
  }
  if (s.cpu.features != w.cpu.features || s.cpu.vendor != w.cpu.vendor || s.cpu.model != w.cpu.model) {
    r.compatibility = PlanCompatibility::kStale;
    r.reason = "compiled on " + s.cpu.vendor + " " + s.cpu.model + ", this is " + w.cpu.vendor +
               " " + w.cpu.model;
    return r;
  }
  r.compatibility = PlanCompatibility::kOptimal;
  return r;
}

}  // namespace kiln
