// Package configuration (metadata/config.cfg): `Key = Value` lines, `#` comments, blank lines.
// The keys and their kinds, defaults and allowed values come from config_keys.inc, the one
// table; `OpBackend.<OpType> = <backend>` pins an op type. An unknown key, a bad value or a
// malformed line is an error naming the key, the line and what is allowed.
//
// The same settings are reachable from every front end: `kiln pack --config KEY=VALUE`, the
// session options of the C/C++/Python APIs (SetConfigKey by name), and the file itself.
//
//   KILN_ASSIGN_OR_RETURN(PackageConfig c, ParseConfigText(text, "pkg/metadata/config.cfg"));
//   KILN_RETURN_IF_ERROR(SetConfigKey(c, "Threads", "2"));
//   KILN_ASSIGN_OR_RETURN(SessionOptions so, c.ToSessionOptions());
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/status.h"
#include "runtime/session.h"

namespace kiln {

enum class OdcTrigger { kPrepare, kRecords, kBackground, kManual };
enum class OdcMode { kCompile, kQuantize };

struct PackageConfig {
  bool on_device_compilation = false;
  OdcTrigger odc_trigger = OdcTrigger::kRecords;
  OdcMode odc_mode = OdcMode::kQuantize;
  int64_t odc_records = 32;
  int64_t odc_sample_bytes = 134217728;
  double odc_max_accuracy_loss = -1;  // < 0: auto (the quantizer's default per measure)
  double odc_time_budget_sec = 900;
  int64_t odc_memory_budget_mb = 4096;
  std::string compute_units = "all";
  std::string model_type = "auto";
  int64_t threads = 1;
  std::string cpu_isa = "auto";
  std::vector<std::string> backends;
  bool fallback = true;
  bool release_packed_weights = true;
  bool tune_threads = true;
  std::string int8_kernel = "auto";
  bool exact_int8 = false;
  std::map<std::string, std::string> op_backend;  // OpBackend.<OpType>
  int64_t max_tensor_bytes = int64_t{4} << 30;
  int64_t max_arena_bytes = int64_t{16} << 30;
  int64_t max_constant_bytes = int64_t{16} << 30;
  int64_t max_loop_iterations = int64_t{1} << 24;
  // Keys set explicitly (in the file or by SetConfigKey), in order, with their text values.
  std::vector<std::pair<std::string, std::string>> explicit_keys;

  // The session options these keys describe (threads, units, backends, pins, fallback, type).
  Result<SessionOptions> ToSessionOptions() const;
  // `Key = Value` text: every key of the table with its current value (defaults commented).
  std::string ToText() const;
  // The current value of a key as text ("" for an unknown key).
  std::string Get(const std::string& key) const;
};

// One key: its table entry.
struct ConfigKeyInfo {
  const char* name;
  const char* kind;      // "bool", "enum", "int", "double", "list"
  const char* default_value;
  const char* allowed;   // "0|1", "a|b|c", "min..max", ""
  const char* doc;
};
const std::vector<ConfigKeyInfo>& ConfigKeys();

// Sets one key from text; an error names the key and what is allowed.
Status SetConfigKey(PackageConfig& config, const std::string& key, const std::string& value);
// Parses config.cfg text; `origin` names the file in errors ("config.cfg:3: ...").
Result<PackageConfig> ParseConfigText(const std::string& text, const std::string& origin);

const char* OdcTriggerName(OdcTrigger t);
const char* OdcModeName(OdcMode m);

}  // namespace kiln
