#include "package/package.h"

#include <sys/stat.h>

#include <filesystem>

#include "core/sha256.h"
#include "package/fs_util.h"

namespace kiln {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kManifestPath = "metadata/MANIFEST";
constexpr const char* kConfigPath = "metadata/config.cfg";

Result<std::string> GetString(const json& j, const char* key, const std::string& where,
                              bool required = true) {
  auto it = j.find(key);
  if (it == j.end()) {
    if (!required) return std::string();
    return InvalidArgument(where + ": missing \"" + key + "\"");
  }
  if (!it->is_string()) return InvalidArgument(where + ": \"" + key + "\" must be a string");
  return it->get<std::string>();
}

}  // namespace

Status CheckPackagePath(const std::string& path, const std::string& what) {
  if (path.empty()) return InvalidArgument(what + ": empty path");
  if (path[0] == '/') return InvalidArgument(what + ": absolute path '" + path + "' is not allowed");
  if (path.find('\\') != std::string::npos || path.find('\0') != std::string::npos) {
    return InvalidArgument(what + ": path '" + path + "' has a forbidden character");
  }
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    const std::string part = path.substr(start, end - start);
    if (part.empty() || part == "." || part == "..") {
      return InvalidArgument(what + ": path '" + path +
                             "' leaves the package or has an empty component");
    }
    start = end + 1;
  }
  return Status::Ok();
}

bool IsPackagePath(const std::string& path) {
  std::error_code ec;
  return fs::is_directory(path, ec) && fs::exists(fs::path(path) / kManifestPath, ec);
}

Result<Manifest> Manifest::Parse(const std::string& text, const std::string& origin) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return InvalidArgument(origin + ": not a JSON object (a truncated or corrupted MANIFEST?)");
  }
  Manifest m;
  KILN_ASSIGN_OR_RETURN(std::string format, GetString(j, "format", origin));
  if (format != "kiln-package") {
    return InvalidArgument(origin + ": format is '" + format + "', expected 'kiln-package'");
  }
  if (!j.contains("schema_version") || !j["schema_version"].is_number_integer()) {
    return InvalidArgument(origin + ": missing integer \"schema_version\"");
  }
  m.schema_version = j["schema_version"].get<int>();
  if (m.schema_version != kManifestSchemaVersion) {
    return InvalidArgument(origin + ": schema_version " + std::to_string(m.schema_version) +
                           " is not supported by this Kiln (it reads version " +
                           std::to_string(kManifestSchemaVersion) + ")");
  }
  if (j.contains("generation") && j["generation"].is_number_integer()) {
    m.generation = j["generation"].get<int64_t>();
  }
  KILN_ASSIGN_OR_RETURN(m.name, GetString(j, "name", origin));
  KILN_ASSIGN_OR_RETURN(m.default_model, GetString(j, "default_model", origin));
  KILN_ASSIGN_OR_RETURN(m.original_model, GetString(j, "original_model", origin));
  if (!j.contains("files") || !j["files"].is_object()) {
    return InvalidArgument(origin + ": missing object \"files\"");
  }
  for (auto& [path, f] : j["files"].items()) {
    KILN_RETURN_IF_ERROR(CheckPackagePath(path, origin + ": files"));
    if (!f.is_object() || !f.contains("size") || !f["size"].is_number_integer() ||
        !f.contains("sha256") || !f["sha256"].is_string()) {
      return InvalidArgument(origin + ": files[\"" + path + "\"] needs an integer size and a sha256");
    }
    m.files[path] = ManifestFile{f["size"].get<int64_t>(), f["sha256"].get<std::string>()};
  }
  if (j.contains("models")) {
    if (!j["models"].is_array()) return InvalidArgument(origin + ": \"models\" must be an array");
    for (const json& e : j["models"]) {
      if (!e.is_object()) return InvalidArgument(origin + ": a models entry is not an object");
      ManifestModel mm;
      KILN_ASSIGN_OR_RETURN(mm.path, GetString(e, "path", origin + ": models"));
      KILN_ASSIGN_OR_RETURN(mm.kind, GetString(e, "kind", origin + ": models", false));
      KILN_ASSIGN_OR_RETURN(mm.precision, GetString(e, "precision", origin + ": models", false));
      KILN_ASSIGN_OR_RETURN(mm.source, GetString(e, "source", origin + ": models", false));
      m.models.push_back(mm);
    }
  }
  if (j.contains("plans")) {
    if (!j["plans"].is_array()) return InvalidArgument(origin + ": \"plans\" must be an array");
    for (const json& e : j["plans"]) {
      if (!e.is_object()) return InvalidArgument(origin + ": a plans entry is not an object");
      ManifestPlan p;
      KILN_ASSIGN_OR_RETURN(p.path, GetString(e, "path", origin + ": plans"));
      KILN_ASSIGN_OR_RETURN(p.source_model, GetString(e, "source_model", origin + ": plans"));
      KILN_ASSIGN_OR_RETURN(p.precision, GetString(e, "precision", origin + ": plans", false));
      p.key = e.value("key", json::object());
      p.report = e.value("report", json::object());
      if (e.contains("generation") && e["generation"].is_number_integer()) {
        p.generation = e["generation"].get<int64_t>();
      }
      m.plans.push_back(p);
    }
  }
  if (j.contains("odc_history") && j["odc_history"].is_array()) m.odc_history = j["odc_history"];
  if (j.contains("retired") && j["retired"].is_array()) {
    for (const json& r : j["retired"]) {
      if (r.is_string()) m.retired.push_back(r.get<std::string>());
    }
  }
  // Every path that names a file must be listed in "files" and stay inside the package.
  auto listed = [&](const std::string& p, const std::string& what) -> Status {
    KILN_RETURN_IF_ERROR(CheckPackagePath(p, origin + ": " + what));
    if (!m.files.count(p)) {
      return InvalidArgument(origin + ": " + what + " '" + p + "' is not listed in \"files\"");
    }
    return Status::Ok();
  };
  KILN_RETURN_IF_ERROR(listed(m.default_model, "default_model"));
  KILN_RETURN_IF_ERROR(listed(m.original_model, "original_model"));
  for (const auto& mm : m.models) KILN_RETURN_IF_ERROR(listed(mm.path, "model"));
  for (const auto& p : m.plans) KILN_RETURN_IF_ERROR(listed(p.path, "plan"));
  for (const auto& r : m.retired) KILN_RETURN_IF_ERROR(CheckPackagePath(r, origin + ": retired"));
  return m;
}

std::string Manifest::ToJson() const {
  json j;
  j["format"] = "kiln-package";
  j["schema_version"] = schema_version;
  j["generation"] = generation;
  j["name"] = name;
  j["default_model"] = default_model;
  j["original_model"] = original_model;
  json files = json::object();
  for (const auto& [p, f] : this->files) files[p] = {{"size", f.size}, {"sha256", f.sha256}};
  j["files"] = files;
  json models_j = json::array();
  for (const auto& mm : models) {
    models_j.push_back({{"path", mm.path}, {"kind", mm.kind}, {"precision", mm.precision},
                        {"source", mm.source}});
  }
  j["models"] = models_j;
  json plans_j = json::array();
  for (const auto& p : plans) {
    plans_j.push_back({{"path", p.path}, {"key", p.key}, {"source_model", p.source_model},
                       {"precision", p.precision}, {"generation", p.generation},
                       {"report", p.report}});
  }
  j["plans"] = plans_j;
  j["odc_history"] = odc_history;
  j["retired"] = retired;
  return j.dump(2) + "\n";
}

const ManifestModel* Manifest::FindModel(const std::string& path) const {
  for (const auto& mm : models) {
    if (mm.path == path) return &mm;
  }
  return nullptr;
}

std::string Package::Path(const std::string& rel) const { return (fs::path(dir_) / rel).string(); }

Result<Package> Package::Open(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return NotFound("package " + dir + " is not a folder");
  const fs::path root = fs::canonical(dir, ec);
  if (ec) return IoError("cannot resolve package folder " + dir + ": " + ec.message());
  Package p;
  p.dir_ = dir;
  const std::string manifest_file = p.Path(kManifestPath);
  KILN_ASSIGN_OR_RETURN(std::string text, ReadFileBytes(manifest_file));
  KILN_ASSIGN_OR_RETURN(p.manifest_, Manifest::Parse(text, manifest_file));
  for (const auto& [rel, f] : p.manifest_.files) {
    const std::string full = p.Path(rel);
    // A symbolic link anywhere on the way must not lead out of the package.
    const fs::path resolved = fs::weakly_canonical(full, ec);
    const std::string r = resolved.string(), base = root.string() + "/";
    if (ec || r.compare(0, base.size(), base) != 0) {
      return InvalidArgument(manifest_file + ": '" + rel + "' resolves to " + r +
                             ", outside the package " + root.string());
    }
    struct stat st;
    if (::stat(full.c_str(), &st) != 0) {
      return NotFound(manifest_file + " lists '" + rel + "', which is missing");
    }
    if (!S_ISREG(st.st_mode)) return InvalidArgument("'" + rel + "' in " + dir + " is not a regular file");
    // config.cfg is meant to be edited by hand (switching ODC on): it is checked by parsing.
    if (st.st_size != f.size && rel != kConfigPath) {
      return InvalidArgument("'" + rel + "' in " + dir + " has " + std::to_string(st.st_size) +
                             " bytes, the MANIFEST says " + std::to_string(f.size) +
                             " (truncated or replaced)");
    }
  }
  const std::string cfg = p.Path(kConfigPath);
  if (fs::exists(cfg, ec)) {
    KILN_ASSIGN_OR_RETURN(std::string cfg_text, ReadFileBytes(cfg));
    KILN_ASSIGN_OR_RETURN(p.config_, ParseConfigText(cfg_text, cfg));
  }
  return p;
}

Status Package::VerifyFile(const std::string& rel) const {
  auto it = manifest_.files.find(rel);
  if (it == manifest_.files.end()) return NotFound("'" + rel + "' is not listed in " + dir_ + "'s MANIFEST");
  KILN_ASSIGN_OR_RETURN(std::string h, Sha256File(Path(rel)));
  if (h != it->second.sha256) {
    return InvalidArgument("'" + rel + "' in " + dir_ + " has sha256 " + h +
                           ", the MANIFEST says " + it->second.sha256 + " (corrupted or replaced)");
  }
  return Status::Ok();
}

Status Package::Reload() {
  const std::string manifest_file = Path(kManifestPath);
  KILN_ASSIGN_OR_RETURN(std::string text, ReadFileBytes(manifest_file));
  KILN_ASSIGN_OR_RETURN(manifest_, Manifest::Parse(text, manifest_file));
  return Status::Ok();
}

Status Package::UpdateManifest(const std::function<Status(Manifest&)>& edit) {
  KILN_RETURN_IF_ERROR(Reload());
  Manifest m = manifest_;
  KILN_RETURN_IF_ERROR(edit(m));
  m.generation = manifest_.generation + 1;
  KILN_RETURN_IF_ERROR(WriteFileAtomic(Path(kManifestPath), m.ToJson()));
  manifest_ = std::move(m);
  return Status::Ok();
}

Status AddFileToManifest(Manifest& m, const std::string& dir, const std::string& rel) {
  KILN_RETURN_IF_ERROR(CheckPackagePath(rel, "file"));
  const std::string full = (fs::path(dir) / rel).string();
  std::error_code ec;
  const auto size = fs::file_size(full, ec);
  if (ec) return NotFound("cannot stat " + full + ": " + ec.message());
  KILN_ASSIGN_OR_RETURN(std::string h, Sha256File(full));
  m.files[rel] = ManifestFile{static_cast<int64_t>(size), h};
  return Status::Ok();
}

}  // namespace kiln
