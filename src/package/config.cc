#include "package/config.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <sstream>

namespace kiln {

namespace {

std::string Trim(const std::string& s) {
  size_t a = 0, b = s.size();
  while (a < b && (s[a] == ' ' || s[a] == '\t' || s[a] == '\r')) ++a;
  while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\t' || s[b - 1] == '\r')) --b;
  return s.substr(a, b - a);
}

std::vector<std::string> SplitOn(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string item;
  for (size_t i = 0; i <= s.size(); ++i) {
    if (i == s.size() || s[i] == sep) {
      item = Trim(item);
      if (!item.empty()) out.push_back(item);
      item.clear();
    } else {
      item += s[i];
    }
  }
  return out;
}

const ConfigKeyInfo* FindKey(const std::string& key) {
  for (const ConfigKeyInfo& k : ConfigKeys()) {
    if (key == k.name) return &k;
  }
  return nullptr;
}

std::string KeyNames() {
  std::string names;
  for (const ConfigKeyInfo& k : ConfigKeys()) names += std::string(names.empty() ? "" : ", ") + k.name;
  return names + ", OpBackend.<OpType>";
}

// Checks `value` against the key's kind and range; returns the error text or "".
std::string CheckValue(const ConfigKeyInfo& k, const std::string& value) {
  const std::string kind = k.kind;
  if (kind == "bool" || kind == "enum") {
    for (const std::string& a : SplitOn(k.allowed, '|')) {
      if (value == a) return "";
    }
    return "expected one of " + std::string(k.allowed);
  }
  if (kind == "auto_double" && value == "auto") return "";
  if (kind == "int" || kind == "double" || kind == "auto_double") {
    const std::vector<std::string> range = [&] {
      std::string a = k.allowed;
      if (a.rfind("auto|", 0) == 0) a = a.substr(5);
      const size_t dots = a.find("..");
      return std::vector<std::string>{a.substr(0, dots), a.substr(dots + 2)};
    }();
    errno = 0;
    char* end = nullptr;
    const double v = kind == "int" ? static_cast<double>(std::strtoll(value.c_str(), &end, 10))
                                   : std::strtod(value.c_str(), &end);
    if (value.empty() || end == nullptr || *end != '\0' || errno != 0 || !std::isfinite(v)) {
      return std::string("expected ") + (kind == "int" ? "an integer" : "a number") + " in " +
             k.allowed;
    }
    if (v < std::strtod(range[0].c_str(), nullptr) || v > std::strtod(range[1].c_str(), nullptr)) {
      return "expected a value in " + std::string(k.allowed);
    }
    return "";
  }
  return "";  // lists: any names
}

}  // namespace

const std::vector<ConfigKeyInfo>& ConfigKeys() {
  static const std::vector<ConfigKeyInfo> keys = {
#define KILN_CONFIG_KEY(name, kind, def, allowed, doc) \
  {#name, #kind, def, allowed, doc},
#include "package/config_keys.inc"
#undef KILN_CONFIG_KEY
  };
  return keys;
}

const char* OdcTriggerName(OdcTrigger t) {
  switch (t) {
    case OdcTrigger::kPrepare: return "prepare";
    case OdcTrigger::kRecords: return "records";
    case OdcTrigger::kBackground: return "background";
    case OdcTrigger::kManual: return "manual";
  }
  return "?";
}

const char* OdcModeName(OdcMode m) { return m == OdcMode::kCompile ? "compile" : "quantize"; }

Status SetConfigKey(PackageConfig& c, const std::string& key_in, const std::string& value_in) {
  const std::string key = Trim(key_in);
  const std::string value = Trim(value_in);
  if (key.rfind("OpBackend.", 0) == 0) {
    const std::string op = key.substr(10);
    if (op.empty() || value.empty()) {
      return InvalidArgument("config key '" + key +
                             "': expected OpBackend.<OpType> = <backend>, e.g. OpBackend.Conv = ref");
    }
    c.op_backend[op] = value;
    c.explicit_keys.emplace_back(key, value);
    return Status::Ok();
  }
  const ConfigKeyInfo* k = FindKey(key);
  if (k == nullptr) {
    return InvalidArgument("unknown config key '" + key + "' (known keys: " + KeyNames() + ")");
  }
  const std::string why = CheckValue(*k, value);
  if (!why.empty()) {
    return InvalidArgument("config key '" + key + "': bad value '" + value + "': " + why);
  }
  if (key == "OnDeviceCompilation") {
    c.on_device_compilation = value == "1";
  } else if (key == "OdcTrigger") {
    c.odc_trigger = value == "prepare"      ? OdcTrigger::kPrepare
                    : value == "records"    ? OdcTrigger::kRecords
                    : value == "background" ? OdcTrigger::kBackground
                                            : OdcTrigger::kManual;
  } else if (key == "OdcMode") {
    c.odc_mode = value == "compile" ? OdcMode::kCompile : OdcMode::kQuantize;
  } else if (key == "OdcRecords") {
    c.odc_records = std::strtoll(value.c_str(), nullptr, 10);
  } else if (key == "OdcSampleBytes") {
    c.odc_sample_bytes = std::strtoll(value.c_str(), nullptr, 10);
  } else if (key == "OdcMaxAccuracyLoss") {
    c.odc_max_accuracy_loss = value == "auto" ? -1.0 : std::strtod(value.c_str(), nullptr);
  } else if (key == "OdcTimeBudgetSec") {
    c.odc_time_budget_sec = std::strtod(value.c_str(), nullptr);
  } else if (key == "OdcMemoryBudgetMB") {
    c.odc_memory_budget_mb = std::strtoll(value.c_str(), nullptr, 10);
  } else if (key == "ComputeUnits") {
    c.compute_units = value;
  } else if (key == "ModelType") {
    c.model_type = value;
  } else if (key == "Threads") {
    c.threads = std::strtoll(value.c_str(), nullptr, 10);
  } else if (key == "CpuIsa") {
    c.cpu_isa = value;
  } else if (key == "Backends") {
    c.backends = SplitOn(value, ',');
  } else if (key == "Fallback") {
    c.fallback = value == "1";
  } else if (key == "ReleasePackedWeights") {
    c.release_packed_weights = value == "1";
  } else if (key == "ThreadTuning") {
    c.tune_threads = value == "1";
  } else if (key == "Int8Kernel") {
    c.int8_kernel = value;
  } else if (key == "ExactInt8") {
    c.exact_int8 = value == "1";
  } else if (key == "MaxTensorBytes") {
    c.max_tensor_bytes = std::strtoll(value.c_str(), nullptr, 10);
  } else if (key == "MaxArenaBytes") {
    c.max_arena_bytes = std::strtoll(value.c_str(), nullptr, 10);
  } else if (key == "MaxConstantBytes") {
    c.max_constant_bytes = std::strtoll(value.c_str(), nullptr, 10);
  } else if (key == "MaxLoopIterations") {
    c.max_loop_iterations = std::strtoll(value.c_str(), nullptr, 10);
  }
  for (auto& [k2, v2] : c.explicit_keys) {
    if (k2 == key) {
      v2 = value;
      return Status::Ok();
    }
  }
  c.explicit_keys.emplace_back(key, value);
  return Status::Ok();
}

Result<PackageConfig> ParseConfigText(const std::string& text, const std::string& origin) {
  PackageConfig c;
  std::istringstream in(text);
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    const size_t hash = line.find('#');
    if (hash != std::string::npos) line = line.substr(0, hash);
    line = Trim(line);
    if (line.empty()) continue;
    const std::string where = origin + ":" + std::to_string(number);
    const size_t eq = line.find('=');
    if (eq == std::string::npos) {
      return InvalidArgument(where + ": expected 'Key = Value', found '" + line + "'");
    }
    Status s = SetConfigKey(c, line.substr(0, eq), line.substr(eq + 1));
    if (!s.ok()) return InvalidArgument(where + ": " + s.message());
  }
  return c;
}

std::string PackageConfig::Get(const std::string& key) const {
  if (key.rfind("OpBackend.", 0) == 0) {
    auto it = op_backend.find(key.substr(10));
    return it == op_backend.end() ? "" : it->second;
  }
  auto num = [](double v) {
    std::ostringstream o;
    o << v;
    return o.str();
  };
  if (key == "OnDeviceCompilation") return on_device_compilation ? "1" : "0";
  if (key == "OdcTrigger") return OdcTriggerName(odc_trigger);
  if (key == "OdcMode") return OdcModeName(odc_mode);
  if (key == "OdcRecords") return std::to_string(odc_records);
  if (key == "OdcSampleBytes") return std::to_string(odc_sample_bytes);
  if (key == "OdcMaxAccuracyLoss") {
    return odc_max_accuracy_loss < 0 ? std::string("auto") : num(odc_max_accuracy_loss);
  }
  if (key == "OdcTimeBudgetSec") return num(odc_time_budget_sec);
  if (key == "OdcMemoryBudgetMB") return std::to_string(odc_memory_budget_mb);
  if (key == "ComputeUnits") return compute_units;
  if (key == "ModelType") return model_type;
  if (key == "Threads") return std::to_string(threads);
  if (key == "CpuIsa") return cpu_isa;
  if (key == "Backends") {
    std::string s;
    for (const auto& b : backends) s += (s.empty() ? "" : ",") + b;
    return s;
  }
  if (key == "Fallback") return fallback ? "1" : "0";
  if (key == "ReleasePackedWeights") return release_packed_weights ? "1" : "0";
  if (key == "ThreadTuning") return tune_threads ? "1" : "0";
  if (key == "Int8Kernel") return int8_kernel;
  if (key == "ExactInt8") return exact_int8 ? "1" : "0";
  if (key == "MaxTensorBytes") return std::to_string(max_tensor_bytes);
  if (key == "MaxArenaBytes") return std::to_string(max_arena_bytes);
  if (key == "MaxConstantBytes") return std::to_string(max_constant_bytes);
  if (key == "MaxLoopIterations") return std::to_string(max_loop_iterations);
  return "";
}

std::string PackageConfig::ToText() const {
  std::string out = "# Kiln package configuration (Key = Value; see `kiln pack --help-config`)\n";
  for (const ConfigKeyInfo& k : ConfigKeys()) {
    bool set = false;
    for (const auto& e : explicit_keys) set = set || e.first == k.name;
    const std::string v = Get(k.name);
    out += std::string(set ? "" : "# ") + k.name + " = " + v + "\n";
  }
  for (const auto& [op, b] : op_backend) out += "OpBackend." + op + " = " + b + "\n";
  return out;
}

Result<SessionOptions> PackageConfig::ToSessionOptions() const {
  SessionOptions o = SessionOptions::Threads(static_cast<int>(threads));
  KILN_ASSIGN_OR_RETURN(o.units, ParseComputeUnits(compute_units));
  o.backends = backends;
  o.op_backend = op_backend;
  o.fallback = fallback;
  o.release_packed_weights = release_packed_weights;
  o.tune_threads = tune_threads;
  o.int8_kernel = ParseInt8Kernel(int8_kernel).value_or(Int8Kernel::kAuto);
  o.exact_int8 = exact_int8;
  o.max_tensor_bytes = max_tensor_bytes;
  o.max_arena_bytes = max_arena_bytes;
  o.max_constant_bytes = max_constant_bytes;
  o.max_loop_iterations = max_loop_iterations;
  if (cpu_isa != "auto") o.isa = ParseCpuIsa(cpu_isa);
  if (model_type != "auto") {
    KILN_ASSIGN_OR_RETURN(ModelType t, ParseModelType(model_type));
    o.model_type = t;
  }
  return o;
}

}  // namespace kiln
