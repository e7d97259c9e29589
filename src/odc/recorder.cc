#include "odc/recorder.h"

#include <filesystem>
#include <random>

#include "core/file_name.h"
#include "core/npy.h"
#include "package/fs_util.h"

namespace kiln {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string StatePath(const std::string& dir) { return (fs::path(dir) / "odc/state.json").string(); }
std::string LockPath(const std::string& dir) { return (fs::path(dir) / "odc/state.lock").string(); }

Status WriteState(const std::string& dir, const OdcState& s) {
  return WriteFileAtomic(StatePath(dir), s.ToJson().dump() + "\n", /*durable=*/false);
}

}  // namespace

json OdcState::ToJson() const {
  json samples_j = json::array();
  for (const auto& s : samples) {
    samples_j.push_back({{"id", s.id}, {"bytes", s.bytes}, {"folder", s.folder}});
  }
  return json{{"records", records},           {"sample_bytes", sample_bytes},
              {"samples", samples_j},         {"signatures", signatures},
              {"last_job_records", last_job_records}, {"last_job_outcome", last_job_outcome}};
}

OdcState OdcState::FromJson(const json& j) {
  OdcState s;
  s.records = j.value("records", int64_t{0});
  s.sample_bytes = j.value("sample_bytes", int64_t{0});
  if (j.contains("samples") && j["samples"].is_array()) {
    for (const json& e : j["samples"]) {
      if (!e.is_object()) continue;
      OdcSample o;
      o.id = e.value("id", int64_t{0});
      o.bytes = e.value("bytes", int64_t{0});
      o.folder = e.value("folder", std::string());
      s.samples.push_back(o);
    }
  }
  if (j.contains("signatures") && j["signatures"].is_object()) {
    for (auto& [k, v] : j["signatures"].items()) {
      if (v.is_number_integer()) s.signatures[k] = v.get<int64_t>();
    }
  }
  s.last_job_records = j.value("last_job_records", int64_t{-1});
  s.last_job_outcome = j.value("last_job_outcome", std::string());
  return s;
}

Result<OdcState> ReadOdcState(const std::string& dir) {
  std::error_code ec;
  if (!fs::exists(StatePath(dir), ec)) return OdcState();
  KILN_ASSIGN_OR_RETURN(std::string text, ReadFileBytes(StatePath(dir)));
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return InvalidArgument(StatePath(dir) + ": not a JSON object (corrupted ODC state)");
  }
  return OdcState::FromJson(j);
}

std::string InputSignature(const NamedTensors& inputs) {
  std::string s;
  for (const auto& [name, t] : inputs) s += (s.empty() ? "" : ";") + name + ":" + t.Describe();
  return s;
}

Status UpdateOdcState(const std::string& dir, const std::function<void(OdcState&)>& edit) {
  std::error_code ec;
  fs::create_directories(fs::path(dir) / "odc", ec);
  KILN_ASSIGN_OR_RETURN(FileLock lock, FileLock::Acquire(LockPath(dir)));
  KILN_ASSIGN_OR_RETURN(OdcState s, ReadOdcState(dir));
  edit(s);
  return WriteState(dir, s);
}

Result<OdcState> RecordRun(const std::string& dir, const NamedTensors& inputs,
                           int64_t max_sample_bytes) {
  std::error_code ec;
  fs::create_directories(fs::path(dir) / "odc/samples", ec);
  if (ec) return IoError("cannot create " + dir + "/odc/samples: " + ec.message());
  KILN_ASSIGN_OR_RETURN(FileLock lock, FileLock::Acquire(LockPath(dir)));
  KILN_ASSIGN_OR_RETURN(OdcState s, ReadOdcState(dir));
  s.records += 1;
  s.signatures[InputSignature(inputs)] += 1;
  int64_t bytes = 0;
  for (const auto& [name, t] : inputs) bytes += static_cast<int64_t>(t.bytes());
  // Reservoir sampling over runs, bounded by bytes: keep while there is room, else replace a
  // uniformly chosen kept sample with probability kept / records.
  std::mt19937_64 rng(static_cast<uint64_t>(s.records) * 0x9E3779B97F4A7C15ull);
  int replace = -1;
  bool keep = false;
  if (bytes <= max_sample_bytes) {
    if (s.sample_bytes + bytes <= max_sample_bytes) {
      keep = true;
    } else if (!s.samples.empty()) {
      const uint64_t r = rng() % static_cast<uint64_t>(s.records);
      if (r < s.samples.size()) {
        replace = static_cast<int>(r);
        keep = s.sample_bytes - s.samples[r].bytes + bytes <= max_sample_bytes;
      }
    }
  }
  if (keep) {
    OdcSample o;
    o.id = s.records;
    o.bytes = bytes;
    o.folder = "odc/samples/" + std::to_string(o.id);
    const fs::path folder = fs::path(dir) / o.folder;
    fs::create_directories(folder, ec);
    if (ec) return IoError("cannot create " + folder.string() + ": " + ec.message());
    for (const auto& [name, t] : inputs) {
      if (t.type() == ElementType::kString) continue;
      KILN_RETURN_IF_ERROR(WriteNpy((folder / (SafeFileName(name) + ".npy")).string(), t));
    }
    // The state names the sample only after its files are written; a replaced sample's
    // files are removed only after the state no longer names them.
    std::string removed;
    if (replace >= 0) {
      removed = s.samples[replace].folder;
      s.sample_bytes -= s.samples[replace].bytes;
      s.samples.erase(s.samples.begin() + replace);
    }
    s.samples.push_back(o);
    s.sample_bytes += bytes;
    KILN_RETURN_IF_ERROR(WriteState(dir, s));
    if (!removed.empty()) fs::remove_all(fs::path(dir) / removed, ec);
    return s;
  }
  KILN_RETURN_IF_ERROR(WriteState(dir, s));
  return s;
}

Result<OdcState> CountRun(const std::string& dir, const std::string& signature) {
  std::error_code ec;
  fs::create_directories(fs::path(dir) / "odc", ec);
  KILN_ASSIGN_OR_RETURN(FileLock lock, FileLock::Acquire(LockPath(dir)));
  KILN_ASSIGN_OR_RETURN(OdcState s, ReadOdcState(dir));
  s.records += 1;
  s.signatures[signature] += 1;
  KILN_RETURN_IF_ERROR(WriteState(dir, s));
  return s;
}

Result<NamedTensors> LoadOdcSample(const std::string& dir, const OdcSample& s, const Graph& g) {
  NamedTensors out;
  for (ValueId v : g.inputs()) {
    const std::string& name = g.value(v).name;
    const std::string file = (fs::path(dir) / s.folder / (SafeFileName(name) + ".npy")).string();
    KILN_ASSIGN_OR_RETURN(Tensor t, ReadNpy(file));
    out.emplace_back(name, std::move(t));
  }
  return out;
}

}  // namespace kiln
