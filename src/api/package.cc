// C API: packages (kiln_pack, kiln_compile_package) and on-device compilation of a package's
// session (recording on/off, compile now, status and history as JSON, what serves).
//
// The work is odc/pack.h and odc/serving_session.h's; this file only checks arguments, holds
// the session's serving lock and turns results into JSON for the caller.
#include <nlohmann/json.hpp>

#include "api/api_internal.h"
#include "odc/pack.h"
#include "package/package.h"

namespace kiln::api {
namespace {

using nlohmann::json;

kiln_status NotAPackage(const char* fn, const kiln_session& s) {
  return Fail(KILN_ERROR_INVALID_ARGUMENT,
              std::string(fn) + ": the session serves a bare ONNX model" +
                  (s.model_path.empty() ? std::string() : " (" + s.model_path + ")") +
                  ": on-device compilation needs a .kiln package (make one with kiln_pack)");
}

std::string ResultJson(const CompileJobResult& r, const std::string& served_by) {
  json j = {{"outcome", r.outcome}, {"reason", r.reason}, {"plan", r.plan_path}};
  j["entry"] = r.entry.is_null() ? json::object() : r.entry;
  if (!served_by.empty()) j["served_by"] = served_by;
  return j.dump(2);
}

Result<std::vector<std::pair<std::string, std::string>>> ConfigItems(
    const char* fn, const char* what, const kiln_config_entry* config, size_t count) {
  if (count > 0 && config == nullptr) {
    return InvalidArgument(std::string(fn) + ": " + what + " is NULL but its count is " +
                           std::to_string(count));
  }
  std::vector<std::pair<std::string, std::string>> items;
  for (size_t i = 0; i < count; ++i) {
    if (config[i].key == nullptr || config[i].value == nullptr) {
      return InvalidArgument(std::string(fn) + ": " + what + "[" + std::to_string(i) +
                             "] has a NULL key or value");
    }
    items.emplace_back(config[i].key, config[i].value);
  }
  return items;
}

Status Pack(const char* model, const char* out, const kiln_pack_options& c) {
  constexpr const char* fn = "kiln_pack";
  if (c.struct_size < sizeof(kiln_pack_options)) {
    return InvalidArgument(std::string(fn) + ": options.struct_size is " +
                           std::to_string(c.struct_size) + ": call kiln_pack_options_init first");
  }
  PackOptions p;
  switch (c.precision) {
    case KILN_PRECISION_AS_MODEL: p.precision = "fp32"; break;
    case KILN_PRECISION_FP16: p.precision = "fp16"; break;
    case KILN_PRECISION_MIXED: p.precision = "mixed"; break;
    default:
      return InvalidArgument(std::string(fn) + ": options.precision is " +
                             std::to_string(c.precision) + ", not a kiln_precision value");
  }
  if (c.keep_fp32 != nullptr) p.keep_fp32 = c.keep_fp32;
  p.force = c.force != 0;
  KILN_ASSIGN_OR_RETURN(p.config, ConfigItems(fn, "options.config", c.config, c.config_count));
  auto r = PackModel(model, out, p);
  return r.ok() ? Status::Ok() : r.status().WithContext(fn);
}

}  // namespace
}  // namespace kiln::api

using kiln::api::Fail;
using kiln::api::Guard;
using kiln::api::NullArgument;

extern "C" {

kiln_status kiln_pack_options_init(kiln_pack_options* options) {
  if (options == nullptr) return NullArgument("kiln_pack_options_init", "options");
  *options = kiln_pack_options{};
  options->struct_size = sizeof(kiln_pack_options);
  options->precision = KILN_PRECISION_AS_MODEL;
  return KILN_OK;
}

kiln_status kiln_pack(const char* model_path, const char* package_path,
                      const kiln_pack_options* options) {
  constexpr const char* fn = "kiln_pack";
  return Guard(fn, [&] {
    if (model_path == nullptr) return NullArgument(fn, "model_path");
    if (package_path == nullptr) return NullArgument(fn, "package_path");
    kiln_pack_options defaults;
    kiln_pack_options_init(&defaults);
    kiln::Status s = kiln::api::Pack(model_path, package_path, options ? *options : defaults);
    return s.ok() ? KILN_OK : Fail(s);
  });
}

kiln_status kiln_compile_package(const char* package_path, const kiln_config_entry* config,
                                 size_t config_count, char** out_result_json) {
  constexpr const char* fn = "kiln_compile_package";
  return Guard(fn, [&]() -> kiln_status {
    if (package_path == nullptr) return NullArgument(fn, "package_path");
    if (!kiln::IsPackagePath(package_path)) {
      return Fail(KILN_ERROR_INVALID_ARGUMENT,
                  std::string(fn) + ": " + package_path +
                      " is not a Kiln package (no metadata/MANIFEST; make one with kiln_pack)");
    }
    auto items = kiln::api::ConfigItems(fn, "config", config, config_count);
    if (!items.ok()) return Fail(items.status());
    kiln::ServeOptions so;
    so.record = false;  // the job uses what earlier runs recorded; this open records nothing
    for (const auto& [k, v] : *items) so.config[k] = v;
    auto serving = kiln::ServingSession::Open(package_path, so);
    if (!serving.ok()) return Fail(serving.status().WithContext(fn));
    auto r = (*serving)->CompileNow();
    if (!r.ok()) return Fail(r.status().WithContext(fn));
    if (out_result_json == nullptr) return KILN_OK;
    return kiln::api::ReturnString(fn, kiln::api::ResultJson(*r, (*serving)->ServedBy()),
                                   out_result_json);
  });
}

kiln_status kiln_session_odc_set_recording(kiln_session* session, int on) {
  constexpr const char* fn = "kiln_session_odc_set_recording";
  return Guard(fn, [&]() -> kiln_status {
    if (session == nullptr) return NullArgument(fn, "session");
    if (!session->serving) return kiln::api::NotAPackage(fn, *session);
    std::lock_guard<std::mutex> lock(session->serving_mu);
    if (on != 0 && !session->serving->OdcStatus().value("enabled", false)) {
      return Fail(KILN_ERROR_INVALID_ARGUMENT,
                  std::string(fn) + ": " + session->model_path +
                      " has OnDeviceCompilation = 0, so nothing would be recorded: set it in the "
                      "package (kiln_pack_options.config) or in the session's config");
    }
    session->serving->set_record(on != 0);
    return KILN_OK;
  });
}

kiln_status kiln_session_odc_compile_now(kiln_session* session, char** out_result_json) {
  constexpr const char* fn = "kiln_session_odc_compile_now";
  return Guard(fn, [&]() -> kiln_status {
    if (session == nullptr) return NullArgument(fn, "session");
    if (!session->serving) return kiln::api::NotAPackage(fn, *session);
    std::lock_guard<std::mutex> lock(session->serving_mu);
    auto r = session->serving->CompileNow();
    if (!r.ok()) return Fail(r.status().WithContext(fn));
    if (out_result_json == nullptr) return KILN_OK;
    return kiln::api::ReturnString(fn, kiln::api::ResultJson(*r, session->serving->ServedBy()),
                                   out_result_json);
  });
}

kiln_status kiln_session_odc_status_json(const kiln_session* session, char** out_json) {
  constexpr const char* fn = "kiln_session_odc_status_json";
  return Guard(fn, [&]() -> kiln_status {
    if (session == nullptr) return NullArgument(fn, "session");
    if (out_json == nullptr) return NullArgument(fn, "out_json");
    nlohmann::json j;
    if (session->serving) {
      std::lock_guard<std::mutex> lock(session->serving_mu);
      j = session->serving->OdcStatus();
      j["recording"] = j.value("enabled", false) && session->serving->record();
    } else {
      j = {{"enabled", false},
           {"recording", false},
           {"reason", "a bare model, not a package"},
           {"served_by", "model " + session->model_path}};
    }
    return kiln::api::ReturnString(fn, j.dump(2), out_json);
  });
}

kiln_status kiln_session_odc_history_json(const kiln_session* session, char** out_json) {
  constexpr const char* fn = "kiln_session_odc_history_json";
  return Guard(fn, [&]() -> kiln_status {
    if (session == nullptr) return NullArgument(fn, "session");
    if (out_json == nullptr) return NullArgument(fn, "out_json");
    nlohmann::json j = nlohmann::json::array();
    if (session->serving) {
      std::lock_guard<std::mutex> lock(session->serving_mu);
      j = session->serving->OdcHistory();
    }
    return kiln::api::ReturnString(fn, j.dump(2), out_json);
  });
}

kiln_status kiln_session_served_by(const kiln_session* session, char** out_text) {
  constexpr const char* fn = "kiln_session_served_by";
  return Guard(fn, [&]() -> kiln_status {
    if (session == nullptr) return NullArgument(fn, "session");
    if (out_text == nullptr) return NullArgument(fn, "out_text");
    std::string text;
    if (session->serving) {
      text = session->serving->ServedBy();
    } else {
      text = session->model_path.empty() ? "model (from memory)" : "model " + session->model_path;
    }
    return kiln::api::ReturnString(fn, text, out_text);
  });
}

}  // extern "C"
