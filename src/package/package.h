// Kiln packages (DESIGN.md "The package"): a folder holding a model, its configuration and what
// the device made of it.
//
//   name.kiln/
//     metadata/MANIFEST     JSON (schema below), replaced only by an atomic rename
//     metadata/config.cfg   Key = Value (package/config.h)
//     models/name.onnx      the original; never modified after `kiln pack`
//     models/name.fp16.onnx a converted program (pack --precision fp16|mixed), optional
//     models/name.q8.onnx   the QDQ model written by on-device compilation
//     compiled/<key>.kplan  compiled plans (plan/plan_file.h), one per cache key
//     odc/                  recorder state, kept samples, statistics, locks (src/odc)
//
// MANIFEST, schema_version 1:
//   { "format": "kiln-package", "schema_version": 1, "generation": G, "name": "...",
//     "default_model": "models/name.onnx", "original_model": "models/name.onnx",
//     "files":   { "<path>": { "size": N, "sha256": "<hex>" }, ... },      every file listed here
//     "models":  [ { "path", "kind": original|converted|quantized, "precision", "source" } ],
//     "plans":   [ { "path", "key": {cache key}, "source_model", "precision", "generation",
//                    "report": {...} } ],
//     "odc_history": [ {outcome, reason, measurements, time}, ... ],
//     "retired": [ paths of the previous generation, removed once the new one has served ] }
//
// Every path in a MANIFEST is relative, has no '..' or empty component and, resolved through
// symbolic links, stays inside the package; anything else is rejected when the package opens.
// A listed file that is missing, truncated (size) or has the wrong hash is an error naming it.
// Sizes are checked at open; hashes when a file is used (VerifyFile), since hashing every
// model at every start would cost more than loading a compiled plan.
//
// Updates (UpdateManifest) write the new MANIFEST under a temporary name, sync it, rename it
// over the old one and sync the folder: a crash leaves the old or the new MANIFEST, never a
// torn one. New artifacts are written and synced before the MANIFEST that names them.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/status.h"
#include "package/config.h"

namespace kiln {

inline constexpr int kManifestSchemaVersion = 1;

struct ManifestFile {
  int64_t size = 0;
  std::string sha256;
};

struct ManifestModel {
  std::string path;
  std::string kind;       // "original", "converted", "quantized"
  std::string precision;  // "fp32", "fp16", "mixed", "int8"
  std::string source;     // the model it was made from ("" for the original)
};

struct ManifestPlan {
  std::string path;
  nlohmann::json key;          // plan/cache_key.h CacheKey::ToJson()
  std::string source_model;    // the model the plan was compiled from
  std::string precision;       // "fp32", "fp16", "int8" ...
  int64_t generation = 0;
  nlohmann::json report;       // ODC measurements for the plan
};

struct Manifest {
  int schema_version = kManifestSchemaVersion;
  int64_t generation = 1;
  std::string name;
  std::string default_model;
  std::string original_model;
  std::map<std::string, ManifestFile> files;
  std::vector<ManifestModel> models;
  std::vector<ManifestPlan> plans;
  nlohmann::json odc_history = nlohmann::json::array();
  std::vector<std::string> retired;

  static Result<Manifest> Parse(const std::string& text, const std::string& origin);
  std::string ToJson() const;
  const ManifestModel* FindModel(const std::string& path) const;
};

// A relative path that stays inside a package (no '..', not absolute, no empty component).
Status CheckPackagePath(const std::string& path, const std::string& what);
// Whether `path` names a package folder (it has metadata/MANIFEST).
bool IsPackagePath(const std::string& path);

class Package {
 public:
  // Reads and validates MANIFEST and config.cfg: schema, paths, that every listed file exists
  // inside the package with its listed size. Errors name the file and what is wrong.
  static Result<Package> Open(const std::string& dir);

  const std::string& dir() const { return dir_; }
  std::string Path(const std::string& rel) const;  // dir/rel
  const Manifest& manifest() const { return manifest_; }
  const PackageConfig& config() const { return config_; }
  PackageConfig& mutable_config() { return config_; }

  // Size and sha256 of a listed file against the MANIFEST; an error names the file.
  Status VerifyFile(const std::string& rel) const;

  // Replaces the MANIFEST atomically after `edit` changed a copy of the current one (re-read
  // from disk first, so that concurrent recorders' history entries are not lost: callers hold
  // the package's manifest lock, see odc/). The generation is incremented.
  Status UpdateManifest(const std::function<Status(Manifest&)>& edit);
  // Re-reads the MANIFEST from disk.
  Status Reload();

 private:
  std::string dir_;
  Manifest manifest_;
  PackageConfig config_;
};

// Hashes `rel` inside `dir` and records it in `m.files`.
Status AddFileToManifest(Manifest& m, const std::string& dir, const std::string& rel);

}  // namespace kiln
