// C API: models, session options, sessions (create, describe, prepare, run, plan report).
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "api/api_internal.h"
#include "api/session_options.h"
#include "onnx/importer.h"
#include "package/package.h"
#include "kiln/plan_render.h"

namespace kiln::api {
namespace {

KilnValueDesc Describe(const Value& v) {
  KilnValueDesc d;
  d.name = v.name;
  d.type = ToC(v.info.type);
  if (v.info.shape) {
    d.rank = static_cast<int64_t>(v.info.shape->size());
    for (const Dim& dim : *v.info.shape) {
      d.dims.push_back(dim.is_static() ? dim.value : -1);
      d.dim_names.push_back(dim.is_static() ? "" : dim.symbol);
    }
  }
  for (const std::string& s : d.dim_names) d.dim_name_ptrs.push_back(s.c_str());
  return d;
}

void Fill(const KilnValueDesc& d, kiln_value_info* out) {
  out->name = d.name.c_str();
  out->type = d.type;
  out->rank = d.rank;
  out->dims = d.rank >= 0 ? d.dims.data() : nullptr;
  out->dim_names = d.rank >= 0 ? d.dim_name_ptrs.data() : nullptr;
}

kiln_status Info(const char* fn, const kiln_session* s, size_t index, kiln_value_info* out,
                 bool input) {
  if (s == nullptr) return NullArgument(fn, "session");
  if (out == nullptr) return NullArgument(fn, "out_info");
  const auto& list = input ? s->inputs : s->outputs;
  if (index >= list.size()) {
    return Fail(KILN_ERROR_OUT_OF_RANGE, std::string(fn) + ": index " + std::to_string(index) +
                                             " is out of range: the model has " +
                                             std::to_string(list.size()) +
                                             (input ? " inputs" : " outputs"));
  }
  Fill(list[index], out);
  return KILN_OK;
}

kiln_status Find(const char* fn, const kiln_session* s, const char* name, size_t* out, bool input) {
  if (s == nullptr) return NullArgument(fn, "session");
  if (name == nullptr) return NullArgument(fn, "name");
  if (out == nullptr) return NullArgument(fn, "out_index");
  const auto& list = input ? s->inputs : s->outputs;
  std::string names;
  for (size_t i = 0; i < list.size(); ++i) {
    if (list[i].name == name) {
      *out = i;
      return KILN_OK;
    }
    names += (i ? ", " : "") + list[i].name;
  }
  return Fail(KILN_ERROR_NOT_FOUND, std::string(fn) + ": the model has no " +
                                        (input ? "input" : "output") + " named '" + name +
                                        "' (" + (input ? "inputs" : "outputs") + ": " + names + ")");
}

kiln_status CreateModel(const char* fn, Result<Model> model, kiln_model** out) {
  if (!model.ok()) return Fail(model.status().WithContext(fn));
  *out = new kiln_model{std::move(model).value(), ""};
  return KILN_OK;
}

void DescribeGraph(kiln_session& s, const Graph& g) {
  for (ValueId v : g.inputs()) s.inputs.push_back(Describe(g.value(v)));
  for (ValueId v : g.outputs()) s.outputs.push_back(Describe(g.value(v)));
}

kiln_status CreatePackageSession(const char* fn, const std::string& path,
                                 const kiln_session_options& options, kiln_session** out) {
  auto so = ToServeOptions(options);
  if (!so.ok()) return Fail(so.status().WithContext(fn));
  auto serving = ServingSession::Open(path, *so);
  if (!serving.ok()) return Fail(serving.status().WithContext(std::string(fn) + ": " + path));
  auto s = std::make_unique<kiln_session>();
  s->serving = std::move(serving).value();
  s->model_path = path;
  DescribeGraph(*s, s->serving->session()->graph());
  *out = s.release();
  return KILN_OK;
}

}  // namespace

Result<NamedTensors> BoundInputs(const kiln_binding& b, const char* fn) {
  NamedTensors inputs;
  for (size_t i = 0; i < b.inputs.size(); ++i) {
    if (!b.inputs[i].defined()) {
      return Status(StatusCode::kInvalidArgument,
                    std::string(fn) + ": input " + std::to_string(i) + " '" +
                        b.session->inputs[i].name + "' is not bound: call kiln_binding_set_input");
    }
    inputs.emplace_back(b.session->inputs[i].name, b.inputs[i]);
  }
  return inputs;
}

Result<NamedTensors> StaticInputs(const kiln_session& s, const char* fn) {
  NamedTensors inputs;
  for (const KilnValueDesc& d : s.inputs) {
    if (d.rank < 0) {
      return InvalidArgument(std::string(fn) + ": input '" + d.name +
                             "' has an unknown rank: pass a binding with the input bound");
    }
    for (size_t k = 0; k < d.dims.size(); ++k) {
      if (d.dims[k] < 0) {
        return InvalidArgument(std::string(fn) + ": input '" + d.name + "' has a dynamic dim " +
                               std::to_string(k) + " ('" + d.dim_names[k] +
                               "'): pass a binding with the input bound");
      }
    }
    const ElementType t = FromC(d.type) == ElementType::kUndefined ? ElementType::kF32 : FromC(d.type);
    KILN_ASSIGN_OR_RETURN(Tensor x, Tensor::Allocate(t, d.dims));
    inputs.emplace_back(d.name, std::move(x));
  }
  return inputs;
}

}  // namespace kiln::api

using kiln::api::Fail;
using kiln::api::Guard;
using kiln::api::NullArgument;

extern "C" {

kiln_status kiln_model_create_from_file(const char* path, kiln_model** out_model) {
  constexpr const char* fn = "kiln_model_create_from_file";
  return Guard(fn, [&] {
    if (path == nullptr) return NullArgument(fn, "path");
    if (out_model == nullptr) return NullArgument(fn, "out_model");
    std::error_code ec;
    const std::string p = path;
    if (kiln::IsPackagePath(p)) {
      // Checked now (MANIFEST, config.cfg, listed files), so that a broken package fails here;
      // each session opens it again and serves what it holds then.
      auto pkg = kiln::Package::Open(p);
      if (!pkg.ok()) return Fail(pkg.status().WithContext(fn));
      auto m = std::make_unique<kiln_model>();
      m->package_path = p;
      *out_model = m.release();
      return KILN_OK;
    }
    if (std::filesystem::is_directory(p, ec)) {
      return Fail(KILN_ERROR_INVALID_ARGUMENT,
                  std::string(fn) + ": " + p +
                      " is a folder but not a Kiln package (no metadata/MANIFEST)");
    }
    return kiln::api::CreateModel(fn, kiln::ImportOnnxFile(p), out_model);
  });
}

kiln_status kiln_model_create_from_memory(const void* data, size_t size, kiln_model** out_model) {
  constexpr const char* fn = "kiln_model_create_from_memory";
  return Guard(fn, [&] {
    if (data == nullptr) return NullArgument(fn, "data");
    if (out_model == nullptr) return NullArgument(fn, "out_model");
    if (size == 0) return Fail(KILN_ERROR_INVALID_ARGUMENT, std::string(fn) + ": size is 0");
    return kiln::api::CreateModel(fn, kiln::ImportOnnxBytes(data, size), out_model);
  });
}

void kiln_model_release(kiln_model* model) { delete model; }

kiln_status kiln_session_options_init(kiln_session_options* options) {
  if (options == nullptr) return NullArgument("kiln_session_options_init", "options");
  *options = kiln_session_options{};
  options->struct_size = sizeof(kiln_session_options);
  options->threads = 1;
  options->units = KILN_UNITS_ALL;
  options->model_type = KILN_MODEL_TYPE_AS_MODEL;
  options->precision = KILN_PRECISION_AS_MODEL;
  options->fallback = 1;
  return KILN_OK;
}

kiln_status kiln_session_create(const kiln_model* model, const kiln_session_options* options,
                                kiln_session** out_session) {
  constexpr const char* fn = "kiln_session_create";
  return Guard(fn, [&] {
    if (model == nullptr) return NullArgument(fn, "model");
    if (out_session == nullptr) return NullArgument(fn, "out_session");
    kiln_session_options defaults;
    kiln_session_options_init(&defaults);
    if (!model->package_path.empty()) {
      return kiln::api::CreatePackageSession(fn, model->package_path,
                                             options ? *options : defaults, out_session);
    }
    auto o = kiln::api::ToSessionOptions(options ? *options : defaults);
    if (!o.ok()) return Fail(o.status().WithContext(fn));
    kiln::Model copy = kiln::CopyModel(model->model);
    if (o->precision) {
      kiln::PrecisionOptions p;
      p.precision = *o->precision;
      p.threads = o->session.threads;
      auto r = kiln::ConvertPrecision(copy, p);
      if (!r.ok()) return Fail(r.status().WithContext(std::string(fn) + ": precision conversion"));
    }
    auto session = kiln::Session::Create(std::move(copy), o->session);
    if (!session.ok()) return Fail(session.status().WithContext(fn));
    auto s = std::make_unique<kiln_session>();
    s->session = std::move(session).value();
    s->model_path = model->model.path;
    kiln::api::DescribeGraph(*s, s->session->graph());
    *out_session = s.release();
    return KILN_OK;
  });
}

void kiln_session_release(kiln_session* session) { delete session; }

kiln_status kiln_session_input_count(const kiln_session* session, size_t* out_count) {
  if (session == nullptr) return NullArgument("kiln_session_input_count", "session");
  if (out_count == nullptr) return NullArgument("kiln_session_input_count", "out_count");
  *out_count = session->inputs.size();
  return KILN_OK;
}

kiln_status kiln_session_output_count(const kiln_session* session, size_t* out_count) {
  if (session == nullptr) return NullArgument("kiln_session_output_count", "session");
  if (out_count == nullptr) return NullArgument("kiln_session_output_count", "out_count");
  *out_count = session->outputs.size();
  return KILN_OK;
}

kiln_status kiln_session_input_info(const kiln_session* session, size_t index,
                                    kiln_value_info* out_info) {
  return kiln::api::Info("kiln_session_input_info", session, index, out_info, true);
}

kiln_status kiln_session_output_info(const kiln_session* session, size_t index,
                                     kiln_value_info* out_info) {
  return kiln::api::Info("kiln_session_output_info", session, index, out_info, false);
}

kiln_status kiln_session_find_input(const kiln_session* session, const char* name,
                                    size_t* out_index) {
  return Guard("kiln_session_find_input", [&] {
    return kiln::api::Find("kiln_session_find_input", session, name, out_index, true);
  });
}

kiln_status kiln_session_find_output(const kiln_session* session, const char* name,
                                     size_t* out_index) {
  return Guard("kiln_session_find_output", [&] {
    return kiln::api::Find("kiln_session_find_output", session, name, out_index, false);
  });
}

static kiln::Result<kiln::NamedTensors> PlanInputs(const char* fn, kiln_session* session,
                                                   const kiln_binding* binding) {
  if (binding == nullptr) return kiln::api::StaticInputs(*session, fn);
  if (binding->session != session) {
    return kiln::InvalidArgument(std::string(fn) + ": the binding belongs to another session");
  }
  return kiln::api::BoundInputs(*binding, fn);
}

kiln_status kiln_session_prepare(kiln_session* session, const kiln_binding* binding) {
  constexpr const char* fn = "kiln_session_prepare";
  return Guard(fn, [&] {
    if (session == nullptr) return NullArgument(fn, "session");
    auto inputs = PlanInputs(fn, session, binding);
    if (!inputs.ok()) return Fail(inputs.status());
    auto plan = session->Current()->Plan(*inputs);
    if (!plan.ok()) return Fail(plan.status().WithContext(fn));
    return KILN_OK;
  });
}

kiln_status kiln_session_plan_json(kiln_session* session, const kiln_binding* binding,
                                   char** out_json) {
  constexpr const char* fn = "kiln_session_plan_json";
  return Guard(fn, [&] {
    if (session == nullptr) return NullArgument(fn, "session");
    if (out_json == nullptr) return NullArgument(fn, "out_json");
    auto inputs = PlanInputs(fn, session, binding);
    if (!inputs.ok()) return Fail(inputs.status());
    std::shared_ptr<kiln::Session> current = session->Current();
    auto plan = current->Plan(*inputs);
    if (!plan.ok()) return Fail(plan.status().WithContext(fn));
    const std::string file = std::filesystem::path(session->model_path).filename().string();
    kiln::cli::PlanReport report = kiln::cli::CollectPlanReport(*current, **plan, file);
    if (session->serving) report.notes.push_back("served by " + session->serving->ServedBy());
    return kiln::api::ReturnString(fn, kiln::cli::RenderPlanJson(report), out_json);
  });
}

}  // extern "C"
