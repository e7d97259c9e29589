#include "odc/pack.h"

#include <unistd.h>

#include <filesystem>

#include "core/file_name.h"
#include "onnx/exporter.h"
#include "onnx/importer.h"
#include "package/config.h"
#include "package/fs_util.h"
#include "package/package.h"
#include "passes/pass_manager.h"
#include "precision/convert.h"

namespace kiln {

namespace fs = std::filesystem;

Result<PackReport> PackModel(const std::string& model_path, const std::string& out_dir,
                             const PackOptions& o) {
  std::error_code ec;
  if (!fs::is_regular_file(model_path, ec)) return NotFound("model " + model_path + " not found");
  PackageConfig config;
  for (const auto& [k, v] : o.config) KILN_RETURN_IF_ERROR(SetConfigKey(config, k, v));
  if (o.precision != "fp32" && o.precision != "fp16" && o.precision != "mixed") {
    return InvalidArgument("--precision '" + o.precision + "': expected fp32, fp16 or mixed");
  }
  // Importing checks the model before a package is made of it.
  KILN_ASSIGN_OR_RETURN(Model model, ImportOnnxFile(model_path));
  if (fs::exists(out_dir, ec)) {
    if (!o.force) return InvalidArgument(out_dir + " exists (use --force to replace it)");
    if (!IsPackagePath(out_dir)) {
      return InvalidArgument(out_dir + " exists and is not a Kiln package: not replaced");
    }
  }
  const std::string name = SafeFileName(fs::path(model_path).stem().string());
  const std::string tmp = TempNameFor(fs::path(out_dir).lexically_normal().string());
  fs::create_directories(fs::path(tmp) / "metadata", ec);
  fs::create_directories(fs::path(tmp) / "models", ec);
  if (ec) return IoError("cannot create " + tmp + ": " + ec.message());
  auto fail = [&](Status s) -> Result<PackReport> {
    fs::remove_all(tmp, ec);
    return s;
  };
  Manifest m;
  m.name = name;
  m.original_model = "models/" + name + ".onnx";
  m.default_model = m.original_model;
  Status s = CopyFileAtomic(model_path, (fs::path(tmp) / m.original_model).string());
  if (!s.ok()) return fail(s);
  m.models.push_back({m.original_model, "original", "fp32", ""});
  if (o.precision != "fp32") {
    PrecisionOptions p;
    auto prec = ParsePrecision(o.precision);
    if (!prec.ok()) return fail(prec.status());
    p.precision = *prec;
    if (!o.keep_fp32.empty()) {
      auto sel = ParseKeepSelector(o.keep_fp32);
      if (!sel.ok()) return fail(sel.status());
      p.keep_fp32 = *sel;
    }
    auto passes = RunPasses(model, DefaultOptimizationPasses());
    if (!passes.ok()) return fail(passes.status());
    auto r = ConvertPrecision(model, p);
    if (!r.ok()) return fail(r.status());
    const std::string rel = "models/" + name + "." + o.precision + ".onnx";
    s = ExportOnnxFile(model, (fs::path(tmp) / rel).string(), ExportOptions{.value_info = false});
    if (!s.ok()) return fail(s);
    m.models.push_back({rel, "converted", o.precision, m.original_model});
    m.default_model = rel;
  }
  s = WriteFileAtomic((fs::path(tmp) / "metadata/config.cfg").string(), config.ToText());
  if (!s.ok()) return fail(s);
  PackReport rep;
  for (const auto& mm : m.models) {
    s = AddFileToManifest(m, tmp, mm.path);
    if (!s.ok()) return fail(s);
    rep.files.push_back(mm.path);
  }
  s = AddFileToManifest(m, tmp, "metadata/config.cfg");
  if (!s.ok()) return fail(s);
  s = WriteFileAtomic((fs::path(tmp) / "metadata/MANIFEST").string(), m.ToJson());
  if (!s.ok()) return fail(s);
  if (fs::exists(out_dir, ec)) fs::remove_all(out_dir, ec);
  if (::rename(tmp.c_str(), out_dir.c_str()) != 0) {
    return fail(IoError("cannot rename " + tmp + " to " + out_dir));
  }
  std::string parent = fs::path(out_dir).parent_path().string();
  (void)FsyncPath(parent.empty() ? "." : parent);
  rep.dir = out_dir;
  rep.default_model = m.default_model;
  return rep;
}

}  // namespace kiln
