// kiln pack MODEL.onnx -o NAME.kiln [--precision fp32|fp16|mixed] [--config KEY=VALUE]...
// kiln compile PKG [--mode compile|quantize] [--threads N] [--config KEY=VALUE]...
// and the package part of `kiln inspect PKG`: MANIFEST, config, compiled plans with their
// compatibility with this device and this Kiln, ODC state and history.
#include <cstdio>

#include "commands.h"
#include "odc/pack.h"
#include "odc/recorder.h"
#include "odc/serving_session.h"
#include "package/package.h"
#include "plan/cache_key.h"
#include "tool_util.h"

namespace kiln::cli {
namespace {

using nlohmann::json;

struct PackCliOptions {
  std::string model, output, precision = "fp32", keep_fp32;
  std::vector<std::string> configs;
  bool force = false;
};

Status DoPack(const PackCliOptions& o) {
  PackOptions p;
  p.precision = o.precision;
  p.keep_fp32 = o.keep_fp32;
  p.force = o.force;
  KILN_ASSIGN_OR_RETURN(p.config, ParseConfigItems(o.configs));
  KILN_ASSIGN_OR_RETURN(PackReport r, PackModel(o.model, o.output, p));
  std::printf("packed %s into %s (default model %s)\n", o.model.c_str(), r.dir.c_str(),
              r.default_model.c_str());
  return Status::Ok();
}

struct CompileCliOptions {
  std::string package, mode;
  std::vector<std::string> configs;
  std::vector<std::string> shapes;
  int threads = 0;
};

Status DoCompile(const CompileCliOptions& o) {
  if (!IsPackagePath(o.package)) {
    return InvalidArgument(o.package + " is not a Kiln package (make one with kiln pack)");
  }
  ServeOptions so;
  so.threads = o.threads;
  so.record = false;
  KILN_ASSIGN_OR_RETURN(auto items, ParseConfigItems(o.configs));
  for (const auto& [k, v] : items) so.config[k] = v;
  if (!o.mode.empty()) so.config["OdcMode"] = o.mode;
  KILN_ASSIGN_OR_RETURN(auto serving, ServingSession::Open(o.package, so));
  // --shape runs (random inputs) are recorded so that a package without recorded data can be
  // compiled for a signature (mode compile); mode quantize needs real recorded samples.
  if (!o.shapes.empty()) {
    KILN_ASSIGN_OR_RETURN(auto shapes, ParseShapes(o.shapes));
    KILN_ASSIGN_OR_RETURN(NamedTensors in,
                          MakeInputs(serving->session()->graph(), {}, shapes, 0, false));
    Package pkg = Package::Open(o.package).value();
    for (int i = 0; i < 3; ++i) {
      KILN_RETURN_IF_ERROR(RecordRun(o.package, in, pkg.config().odc_sample_bytes).status());
    }
  }
  KILN_ASSIGN_OR_RETURN(CompileJobResult r, serving->CompileNow());
  std::printf("compile job: %s%s\n", r.outcome.c_str(),
              r.reason.empty() ? "" : (" (" + r.reason + ")").c_str());
  if (!r.entry.is_null()) std::printf("%s\n", r.entry.dump(2).c_str());
  std::printf("serving now: %s\n", serving->ServedBy().c_str());
  if (r.outcome == "busy") return InvalidArgument("another process is compiling " + o.package);
  return Status::Ok();
}

}  // namespace

Status InspectPackage(const std::string& dir, const SessionOptions& so) {
  KILN_ASSIGN_OR_RETURN(Package pkg, Package::Open(dir));
  const Manifest& m = pkg.manifest();
  std::printf("package: %s (schema %d, generation %lld)\n", dir.c_str(), m.schema_version,
              static_cast<long long>(m.generation));
  std::printf("default model: %s; original: %s\n", m.default_model.c_str(),
              m.original_model.c_str());
  std::printf("files:\n");
  for (const auto& [p, f] : m.files) {
    std::printf("  %-48s %12lld bytes  sha256 %s\n", p.c_str(), static_cast<long long>(f.size),
                f.sha256.substr(0, 16).c_str());
  }
  std::printf("config (metadata/config.cfg):\n");
  for (const ConfigKeyInfo& k : ConfigKeys()) {
    std::printf("  %-20s = %s\n", k.name, pkg.config().Get(k.name).c_str());
  }
  for (const auto& [op, b] : pkg.config().op_backend) {
    std::printf("  OpBackend.%-10s = %s\n", op.c_str(), b.c_str());
  }
  KILN_ASSIGN_OR_RETURN(SessionOptions cfg, pkg.config().ToSessionOptions());
  cfg.extra_backends = so.extra_backends;
  std::printf("compiled plans:\n");
  if (m.plans.empty()) std::printf("  (none)\n");
  for (const ManifestPlan& p : m.plans) {
    auto key = CacheKey::FromJson(p.key);
    std::string status = "incompatible", why = "unreadable key";
    if (key.ok()) {
      CacheKey wanted = CurrentKey(m.files.at(m.default_model).sha256, "", key->model_type, cfg);
      KeyComparison c = CompareKeys(*key, wanted);
      status = PlanCompatibilityName(c.compatibility);
      why = c.reason;
    }
    std::printf("  %s  %s  %s%s\n", p.path.c_str(), p.precision.c_str(), status.c_str(),
                why.empty() ? "" : (" (" + why + ")").c_str());
    if (key.ok()) {
      std::printf("    key %s: build %s, cpu %s %s, units %s, type %s, signatures", key->Hash().c_str(),
                  key->kiln_build.c_str(), key->cpu.vendor.c_str(), key->cpu.model.c_str(),
                  key->units.c_str(), key->model_type.c_str());
      for (const auto& s : key->signatures) std::printf(" %s", s.c_str());
      std::printf("\n    from %s; report %s\n", p.source_model.c_str(), p.report.dump().c_str());
    }
  }
  KILN_ASSIGN_OR_RETURN(OdcState st, ReadOdcState(dir));
  std::printf("odc: %s, trigger %s, mode %s; %lld runs recorded (job after %lld), %zu samples "
              "kept (%.1f MB), last job: %s\n",
              pkg.config().on_device_compilation ? "on" : "off",
              OdcTriggerName(pkg.config().odc_trigger), OdcModeName(pkg.config().odc_mode),
              static_cast<long long>(st.records), static_cast<long long>(pkg.config().odc_records),
              st.samples.size(), st.sample_bytes / 1e6,
              st.last_job_outcome.empty() ? "none" : st.last_job_outcome.c_str());
  for (const auto& [sig, n] : st.signatures) {
    std::printf("  signature %s: %lld runs\n", sig.c_str(), static_cast<long long>(n));
  }
  std::printf("odc history (%zu):\n", m.odc_history.size());
  for (const json& e : m.odc_history) std::printf("  %s\n", e.dump().c_str());
  if (!m.retired.empty()) {
    std::printf("retired (previous generation, removed after the new one has served):");
    for (const auto& r : m.retired) std::printf(" %s", r.c_str());
    std::printf("\n");
  }
  return Status::Ok();
}

Command AddPackCommand(CLI::App& app) {
  auto o = std::make_shared<PackCliOptions>();
  CLI::App* sub = app.add_subcommand("pack", "Make a Kiln package (model, config, MANIFEST)");
  sub->add_option("model", o->model, "ONNX model file")->required();
  sub->add_option("-o,--output", o->output, "Package folder to write (NAME.kiln)")->required();
  sub->add_option("--precision", o->precision, "fp32 (default), fp16 or mixed: the default model");
  sub->add_option("--keep-fp32", o->keep_fp32, "For mixed: the selector of nodes kept fp32");
  AddConfigFlag(sub, o->configs);
  sub->add_flag("--force", o->force, "Replace an existing package at the output");
  return {sub, [o] { return DoPack(*o); }};
}

Command AddCompileCommand(CLI::App& app) {
  auto o = std::make_shared<CompileCliOptions>();
  CLI::App* sub = app.add_subcommand(
      "compile", "Run the on-device compile job of a package now (the manual trigger)");
  sub->add_option("package", o->package, "Kiln package folder")->required();
  sub->add_option("--mode", o->mode, "compile (a plan at the package's precision) or quantize");
  sub->add_option("--threads", o->threads, "Threads the plan is compiled and timed with");
  sub->add_option("--shape", o->shapes,
                  "Record random runs of this input shape first: NAME=D0,D1,... (mode compile)");
  AddConfigFlag(sub, o->configs);
  return {sub, [o] { return DoCompile(*o); }};
}

}  // namespace kiln::cli
