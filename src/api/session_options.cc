#include "api/session_options.h"

#include <charconv>

#include "plan/partitioner.h"

namespace kiln::api {
namespace {

std::vector<std::string> SplitList(const std::string& s) {
  std::vector<std::string> out;
  std::string item;
  for (size_t i = 0; i <= s.size(); ++i) {
    if (i == s.size() || s[i] == ',') {
      // Trim spaces so that "xnnpack, ref" reads as written in a config file.
      const size_t b = item.find_first_not_of(' ');
      const size_t e = item.find_last_not_of(' ');
      if (b != std::string::npos) out.push_back(item.substr(b, e - b + 1));
      item.clear();
    } else {
      item += s[i];
    }
  }
  return out;
}

Result<int> ParseThreads(const std::string& key, const std::string& value) {
  int n = 0;
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
  if (ec != std::errc() || end != value.data() + value.size() || n < 1 || n > 256) {
    return InvalidArgument("config key " + key + " = '" + value +
                           "': expected an integer from 1 to 256");
  }
  return n;
}

Result<bool> ParseBool(const std::string& key, const std::string& value) {
  if (value == "1" || value == "on" || value == "true") return true;
  if (value == "0" || value == "off" || value == "false") return false;
  return InvalidArgument("config key " + key + " = '" + value + "': expected 0 or 1");
}

}  // namespace

Status SetSessionConfigKey(ApiSessionOptions& o, const std::string& key, const std::string& value) {
  if (key == "Threads") {
    KILN_ASSIGN_OR_RETURN(o.session.threads, ParseThreads(key, value));
  } else if (key == "ComputeUnits") {
    auto u = ParseComputeUnits(value);
    if (!u.ok()) {
      return InvalidArgument("config key ComputeUnits = '" + value +
                             "': expected cpu_only, cpu_and_gpu, cpu_and_npu or all");
    }
    o.session.units = *u;
  } else if (key == "ModelType") {
    auto t = ParseModelType(value);
    if (!t.ok()) {
      return InvalidArgument("config key ModelType = '" + value + "': expected program or network");
    }
    o.session.model_type = *t;
  } else if (key == "CpuIsa") {
    if (value == "auto") {
      o.session.isa.reset();
    } else {
      o.session.isa = ParseCpuIsa(value);
      if (!o.session.isa) {
        return InvalidArgument("config key CpuIsa = '" + value +
                               "': expected auto, portable, avx2, avx512 or avx512vnni");
      }
    }
  } else if (key == "Backends") {
    o.session.backends = SplitList(value);
  } else if (key == "Fallback") {
    KILN_ASSIGN_OR_RETURN(o.session.fallback, ParseBool(key, value));
  } else if (key == "ReleasePackedWeights") {
    KILN_ASSIGN_OR_RETURN(o.session.release_packed_weights, ParseBool(key, value));
  } else if (key == "ThreadTuning") {
    KILN_ASSIGN_OR_RETURN(o.session.tune_threads, ParseBool(key, value));
  } else if (key == "Int8Kernel") {
    const std::optional<Int8Kernel> k = ParseInt8Kernel(value);
    if (!k) {
      return InvalidArgument("config key Int8Kernel = '" + value +
                             "': expected auto, vnni, avx2, avx2u7 or xnnpack");
    }
    o.session.int8_kernel = *k;
  } else if (key == "ExactInt8") {
    KILN_ASSIGN_OR_RETURN(o.session.exact_int8, ParseBool(key, value));
  } else if (key == "Precision") {
    auto p = ParsePrecision(value);
    if (!p.ok()) {
      return InvalidArgument("config key Precision = '" + value + "': expected fp32, fp16 or mixed");
    }
    if (*p == Precision::kFp32) {
      o.precision.reset();
    } else {
      o.precision = *p;
    }
  } else if (key.rfind("OpBackend.", 0) == 0) {
    const std::string op = key.substr(10);
    if (op.empty() || value.empty()) {
      return InvalidArgument("config key '" + key + "' = '" + value +
                             "': expected OpBackend.<OpType> = <backend>, e.g. OpBackend.Conv = ref");
    }
    o.session.op_backend[op] = value;
  } else if (key == "MaxTensorBytes" || key == "MaxArenaBytes" || key == "MaxConstantBytes") {
    int64_t n = -1;
    const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
    if (ec != std::errc() || end != value.data() + value.size() || n < 0) {
      return InvalidArgument("config key " + key + " = '" + value +
                             "': expected a number of bytes (0: no limit)");
    }
    (key == "MaxTensorBytes"  ? o.session.max_tensor_bytes
     : key == "MaxArenaBytes" ? o.session.max_arena_bytes
                              : o.session.max_constant_bytes) = n;
  } else if (key == "MaxLoopIterations") {
    int64_t n = -1;
    const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
    if (ec != std::errc() || end != value.data() + value.size() || n < 0) {
      return InvalidArgument("config key " + key + " = '" + value +
                             "': expected a number of iterations (0: no limit)");
    }
    o.session.max_loop_iterations = n;
  } else if (key == "OnDeviceCompilation" || key.rfind("Odc", 0) == 0) {
    return InvalidArgument("config key " + key +
                           " applies to packages: on-device compilation needs a .kiln package "
                           "(make one with kiln_pack), this is a bare ONNX model");
  } else {
    return InvalidArgument("unknown config key '" + key +
                           "'; known: Threads, CpuIsa, ComputeUnits, ModelType, Backends, Fallback, "
                           "ReleasePackedWeights, ThreadTuning, Int8Kernel, ExactInt8, "
                           "Precision, OpBackend.<OpType>, MaxTensorBytes, MaxArenaBytes, "
                           "MaxConstantBytes, MaxLoopIterations");
  }
  return Status::Ok();
}

Result<ApiSessionOptions> ToSessionOptions(const kiln_session_options& c) {
  if (c.struct_size < sizeof(kiln_session_options)) {
    return InvalidArgument("kiln_session_options.struct_size is " + std::to_string(c.struct_size) +
                           ", expected " + std::to_string(sizeof(kiln_session_options)) +
                           ": call kiln_session_options_init first");
  }
  ApiSessionOptions o;
  if (c.threads < 1 || c.threads > 256) {
    return InvalidArgument("kiln_session_options.threads is " + std::to_string(c.threads) +
                           ", expected 1 to 256");
  }
  o.session.threads = c.threads;
  switch (c.units) {
    case KILN_UNITS_ALL: o.session.units = ComputeUnits::kAll; break;
    case KILN_UNITS_CPU_ONLY: o.session.units = ComputeUnits::kCpuOnly; break;
    case KILN_UNITS_CPU_AND_GPU: o.session.units = ComputeUnits::kCpuAndGpu; break;
    case KILN_UNITS_CPU_AND_NPU: o.session.units = ComputeUnits::kCpuAndNpu; break;
    default:
      return InvalidArgument("kiln_session_options.units is " + std::to_string(c.units) +
                             ", not a kiln_compute_units value");
  }
  switch (c.model_type) {
    case KILN_MODEL_TYPE_AS_MODEL: break;
    case KILN_MODEL_TYPE_PROGRAM: o.session.model_type = ModelType::kProgram; break;
    case KILN_MODEL_TYPE_NETWORK: o.session.model_type = ModelType::kNetwork; break;
    default:
      return InvalidArgument("kiln_session_options.model_type is " +
                             std::to_string(c.model_type) + ", not a kiln_model_type value");
  }
  switch (c.precision) {
    case KILN_PRECISION_AS_MODEL: break;
    case KILN_PRECISION_FP16: o.precision = Precision::kFp16; break;
    case KILN_PRECISION_MIXED: o.precision = Precision::kMixed; break;
    default:
      return InvalidArgument("kiln_session_options.precision is " + std::to_string(c.precision) +
                             ", not a kiln_precision value");
  }
  if (c.backends != nullptr) o.session.backends = SplitList(c.backends);
  o.session.fallback = c.fallback != 0;
  if (c.config_count > 0 && c.config == nullptr) {
    return InvalidArgument("kiln_session_options.config is NULL but config_count is " +
                           std::to_string(c.config_count));
  }
  for (size_t i = 0; i < c.config_count; ++i) {
    if (c.config[i].key == nullptr || c.config[i].value == nullptr) {
      return InvalidArgument("kiln_session_options.config[" + std::to_string(i) +
                             "] has a NULL key or value");
    }
    KILN_RETURN_IF_ERROR(SetSessionConfigKey(o, c.config[i].key, c.config[i].value));
  }
  return o;
}

Result<ServeOptions> ToServeOptions(const kiln_session_options& c) {
  // The same field checks as for a bare model (ranges, enum values, config entries present).
  kiln_session_options fields = c;
  fields.config = nullptr;
  fields.config_count = 0;
  KILN_ASSIGN_OR_RETURN(ApiSessionOptions checked, ToSessionOptions(fields));
  if (c.config_count > 0 && c.config == nullptr) {
    return InvalidArgument("kiln_session_options.config is NULL but config_count is " +
                           std::to_string(c.config_count));
  }
  ServeOptions so;
  if (checked.precision) {
    return InvalidArgument(
        "kiln_session_options.precision applies to ONNX models: a package's precision is chosen "
        "when it is packed (kiln_pack_options.precision)");
  }
  // Fields left at their kiln_session_options_init defaults keep the package's config.cfg.
  if (c.threads != 1) so.config["Threads"] = std::to_string(c.threads);
  if (c.units != KILN_UNITS_ALL) so.config["ComputeUnits"] = ComputeUnitsName(checked.session.units);
  if (c.model_type == KILN_MODEL_TYPE_PROGRAM) so.config["ModelType"] = "program";
  if (c.model_type == KILN_MODEL_TYPE_NETWORK) so.config["ModelType"] = "network";
  if (c.backends != nullptr) so.config["Backends"] = c.backends;
  if (c.fallback == 0) so.config["Fallback"] = "0";
  for (size_t i = 0; i < c.config_count; ++i) {
    if (c.config[i].key == nullptr || c.config[i].value == nullptr) {
      return InvalidArgument("kiln_session_options.config[" + std::to_string(i) +
                             "] has a NULL key or value");
    }
    const std::string key = c.config[i].key;
    if (key == "Precision") {
      return InvalidArgument(
          "config key Precision applies to ONNX models: a package's precision is chosen when "
          "it is packed (kiln_pack_options.precision)");
    }
    // Checked against the package key table when the package opens (errors name the key).
    so.config[key] = c.config[i].value;
  }
  return so;
}

}  // namespace kiln::api
