// The `kiln` Python module: pybind11 bindings over the C++ API (include/kiln/kiln.hpp, in its
// exception mode) and, where a call needs a runtime element type, the C API beneath it. There
// is no second implementation here: every call goes through libkiln.so.
//
//   import kiln, numpy as np
//   s = kiln.Session("rec.onnx", threads=2, config={"OpBackend.Softmax": "ref"})
//   y = s.run({"x": np.zeros((1, 3, 48, 320), np.float32)})   # {"softmax_0.tmp_0": array}
//
// Errors: every Kiln failure raises kiln.Error (a RuntimeError) whose message is Kiln's and whose
// `status` is the C API status name ("invalid argument", "not found", ...).
#define KILN_CPP_EXCEPTIONS
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "kiln/kiln.hpp"

namespace py = pybind11;

namespace {

py::handle g_error;  // kiln.Error (a reference kept for the life of the process)

[[noreturn]] void Raise(kiln_status status, const std::string& message) {
  throw kiln::Exception(kiln::Error(status, message));
}

void Check(kiln_status s) {
  if (s != KILN_OK) Raise(s, kiln_last_error_message());
}

py::object ParseJson(const std::string& text) {
  return py::module_::import("json").attr("loads")(text);
}

kiln_element_type TypeOf(const py::dtype& d, const std::string& what) {
  const char kind = d.kind();
  const size_t size = d.itemsize();
  if (kind == 'f') {
    if (size == 2) return KILN_F16;
    if (size == 4) return KILN_F32;
    if (size == 8) return KILN_F64;
  } else if (kind == 'i') {
    if (size == 1) return KILN_I8;
    if (size == 2) return KILN_I16;
    if (size == 4) return KILN_I32;
    if (size == 8) return KILN_I64;
  } else if (kind == 'u') {
    if (size == 1) return KILN_U8;
    if (size == 2) return KILN_U16;
    if (size == 4) return KILN_U32;
    if (size == 8) return KILN_U64;
  } else if (kind == 'b') {
    return KILN_BOOL;
  }
  Raise(KILN_ERROR_INVALID_ARGUMENT,
        what + ": numpy dtype " + py::str(py::handle(d)).cast<std::string>() +
            " has no Kiln element type (float16/32/64, int8-64, uint8-64 or bool)");
}

// The numpy dtype of a Kiln output (bf16 has none: such outputs are returned as float32).
py::dtype DtypeOf(kiln_element_type t) {
  switch (t) {
    case KILN_F16: return py::dtype("float16");
    case KILN_F32: return py::dtype("float32");
    case KILN_F64: return py::dtype("float64");
    case KILN_I8: return py::dtype("int8");
    case KILN_I16: return py::dtype("int16");
    case KILN_I32: return py::dtype("int32");
    case KILN_I64: return py::dtype("int64");
    case KILN_U8: return py::dtype("uint8");
    case KILN_U16: return py::dtype("uint16");
    case KILN_U32: return py::dtype("uint32");
    case KILN_U64: return py::dtype("uint64");
    case KILN_BOOL: return py::dtype("bool");
    default: return py::dtype("float32");
  }
}

py::object ShapeOf(const kiln::ValueInfo& v) {
  if (v.rank < 0) return py::none();
  py::list dims;
  for (size_t k = 0; k < v.dims.size(); ++k) {
    if (v.dims[k] >= 0) {
      dims.append(v.dims[k]);
    } else if (!v.dim_names[k].empty()) {
      dims.append(v.dim_names[k]);
    } else {
      dims.append(py::none());
    }
  }
  return py::tuple(dims);
}

struct PyValueInfo {
  std::string name;
  std::string type;  // "f32", "f16", ... ("undefined" when the model does not say)
  py::object shape;  // tuple of int (static), str (a named dynamic dim), None; None: unknown rank
  std::string Repr() const {
    return "ValueInfo(name='" + name + "', type='" + type + "', shape=" +
           py::repr(shape).cast<std::string>() + ")";
  }
};

kiln_compute_units ParseUnits(const std::string& u) {
  if (u == "all") return KILN_UNITS_ALL;
  if (u == "cpu_only") return KILN_UNITS_CPU_ONLY;
  if (u == "cpu_and_gpu") return KILN_UNITS_CPU_AND_GPU;
  if (u == "cpu_and_npu") return KILN_UNITS_CPU_AND_NPU;
  Raise(KILN_ERROR_INVALID_ARGUMENT,
        "units='" + u + "': expected 'all', 'cpu_only', 'cpu_and_gpu' or 'cpu_and_npu'");
}

kiln_precision ParsePrecision(const std::string& p, bool model_allowed) {
  if (model_allowed && (p.empty() || p == "fp32")) return KILN_PRECISION_AS_MODEL;
  if (p == "fp16") return KILN_PRECISION_FP16;
  if (p == "mixed") return KILN_PRECISION_MIXED;
  Raise(KILN_ERROR_INVALID_ARGUMENT, "precision='" + p + "': expected " +
                                         (model_allowed ? "'fp32', " : "") + "'fp16' or 'mixed'");
}

kiln_model_type ParseModelType(const std::string& t) {
  if (t.empty()) return KILN_MODEL_TYPE_AS_MODEL;
  if (t == "program") return KILN_MODEL_TYPE_PROGRAM;
  if (t == "network") return KILN_MODEL_TYPE_NETWORK;
  Raise(KILN_ERROR_INVALID_ARGUMENT, "model_type='" + t + "': expected 'program' or 'network'");
}

std::vector<std::pair<std::string, std::string>> Items(const std::map<std::string, py::object>& c) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [k, v] : c) {
    // Values may be given as str, int, float or bool: {"Threads": 2, "OnDeviceCompilation": True}
    std::string text;
    if (py::isinstance<py::bool_>(v)) {
      text = v.cast<bool>() ? "1" : "0";
    } else {
      text = py::str(v).cast<std::string>();
    }
    out.emplace_back(k, text);
  }
  return out;
}

class PySession {
 public:
  PySession(const std::string& path, const std::string& units, int threads,
            const std::map<std::string, py::object>& config, const std::string& precision,
            const std::string& model_type, const std::string& backends, bool fallback)
      : session_(Open(path, units, threads, config, precision, model_type, backends, fallback)) {}

  std::vector<PyValueInfo> Infos(bool inputs) const {
    std::vector<PyValueInfo> out;
    for (const kiln::ValueInfo& v : inputs ? session_.Inputs() : session_.Outputs()) {
      out.push_back({v.name, kiln_element_type_name(v.type), ShapeOf(v)});
    }
    return out;
  }

  py::dict Run(const py::dict& feeds) {
    kiln::Binding io = session_.NewBinding();
    std::vector<py::array> keep = Bind(io, feeds, "run");
    {
      py::gil_scoped_release release;
      session_.Run(io);
    }
    py::dict out;
    const auto outputs = session_.Outputs();
    for (size_t i = 0; i < outputs.size(); ++i) {
      kiln::Tensor t = io.Output(i);
      const std::vector<int64_t> shape = t.shape();
      std::vector<py::ssize_t> dims(shape.begin(), shape.end());
      if (t.type() == KILN_BF16) {
        py::array_t<float> a(dims);
        Check(kiln_tensor_copy_to(t.get(), KILN_F32, a.mutable_data(), a.nbytes()));
        out[py::str(outputs[i].name)] = a;
        continue;
      }
      py::array a(DtypeOf(t.type()), dims);
      if (static_cast<size_t>(a.nbytes()) != t.bytes()) {
        Raise(KILN_ERROR_INTERNAL, "output '" + outputs[i].name + "': " +
                                       std::to_string(t.bytes()) + " bytes, numpy expects " +
                                       std::to_string(a.nbytes()));
      }
      if (t.bytes() > 0) std::memcpy(a.mutable_data(), kiln_tensor_data(t.get()), t.bytes());
      out[py::str(outputs[i].name)] = a;
    }
    return out;
  }

  py::object Plan(const py::object& feeds) {
    if (feeds.is_none()) return ParseJson(session_.PlanJson());
    kiln::Binding io = session_.NewBinding();
    std::vector<py::array> keep = Bind(io, feeds.cast<py::dict>(), "plan");
    return ParseJson(session_.PlanJson(&io));
  }

  std::string ServedBy() const { return session_.ServedBy(); }
  void SetRecording(bool on) { session_.OdcSetRecording(on); }
  py::object CompileNow() {
    std::string r;
    {
      py::gil_scoped_release release;
      r = session_.OdcCompileNow();
    }
    return ParseJson(r);
  }
  py::object OdcStatus() const { return ParseJson(session_.OdcStatusJson()); }
  py::object OdcHistory() const { return ParseJson(session_.OdcHistoryJson()); }

 private:
  static kiln::Session Open(const std::string& path, const std::string& units, int threads,
                            const std::map<std::string, py::object>& config,
                            const std::string& precision, const std::string& model_type,
                            const std::string& backends, bool fallback) {
    kiln::SessionOptions o;
    o.raw.units = ParseUnits(units);
    o.raw.threads = threads;
    o.raw.precision = ParsePrecision(precision, true);
    o.raw.model_type = ParseModelType(model_type);
    o.raw.fallback = fallback ? 1 : 0;
    o.backends = backends;
    o.config = Items(config);
    kiln::Model model = kiln::Model::FromFile(path);
    return kiln::Session::Create(model, o);
  }

  // Binds every feed; float arrays of another float type than declared are converted (as
  // Core ML accepts float32 for a float16 input). Returns the arrays, kept alive for the call.
  std::vector<py::array> Bind(kiln::Binding& io, const py::dict& feeds, const char* fn) {
    std::vector<py::array> keep;
    for (const auto& [key, value] : feeds) {
      const std::string name = py::str(key).cast<std::string>();
      size_t index = 0;
      Check(kiln_session_find_input(session_.get(), name.c_str(), &index));
      py::array a = py::array::ensure(value, py::array::c_style);
      if (!a) {
        Raise(KILN_ERROR_INVALID_ARGUMENT,
              std::string(fn) + ": input '" + name + "' is not convertible to a numpy array");
      }
      const kiln_element_type type = TypeOf(a.dtype(), std::string(fn) + ": input '" + name + "'");
      std::vector<int64_t> shape(a.shape(), a.shape() + a.ndim());
      Check(kiln_binding_set_input(io.get(), index, type, shape.data(), shape.size(), a.data(),
                                   a.nbytes(), KILN_BIND_CONVERT));
      keep.push_back(a);
    }
    return keep;
  }

  kiln::Session session_;
};

}  // namespace

PYBIND11_MODULE(kiln, m) {
  m.doc() =
      "Kiln: an on-device ONNX compiler and runtime.\n\n"
      "  s = kiln.Session('model.onnx', threads=2)\n"
      "  outputs = s.run({'x': x})          # dict of numpy arrays\n\n"
      "Session runs an ONNX model or a .kiln package (kiln.pack); convert, quantize, pack and\n"
      "compile write models and packages. Failures raise kiln.Error with Kiln's message.";
  m.attr("__version__") = kiln_version_string();
  g_error = py::exception<kiln::Exception>(m, "Error", PyExc_RuntimeError).release();
  g_error.attr("__doc__") =
      "A Kiln failure: str(e) is Kiln's message, e.status the status name ('invalid argument', "
      "'not found', 'unimplemented', 'out of range', 'internal', 'io', 'wrong order').";
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const kiln::Exception& e) {
      py::object err = g_error(e.what());
      err.attr("status") = kiln_status_name(e.status());
      PyErr_SetObject(g_error.ptr(), err.ptr());
    }
  });

  py::class_<PyValueInfo>(m, "ValueInfo", "An input or output as the model declares it.")
      .def_readonly("name", &PyValueInfo::name)
      .def_readonly("type", &PyValueInfo::type, "Element type: 'f32', 'f16', 'i64', ...")
      .def_readonly("shape", &PyValueInfo::shape,
                    "Tuple of dims: int (static), str (a named dynamic dim) or None; None when "
                    "the rank is unknown.")
      .def("__repr__", &PyValueInfo::Repr);

  py::class_<PySession>(m, "Session",
                        "A model or package placed on backends and ready to run. Thread-safe: "
                        "run() may be called from several threads (the GIL is released while "
                        "Kiln runs).")
      .def(py::init<const std::string&, const std::string&, int,
                    const std::map<std::string, py::object>&, const std::string&,
                    const std::string&, const std::string&, bool>(),
           py::arg("path"), py::arg("units") = "all", py::arg("threads") = 1,
           py::arg("config") = std::map<std::string, py::object>{}, py::arg("precision") = "",
           py::arg("model_type") = "", py::arg("backends") = "", py::arg("fallback") = true,
           "Session(path, units='all', threads=1, config={}, precision='', model_type='',\n"
           "        backends='', fallback=True)\n\n"
           "path: an .onnx file or a .kiln package folder.\n"
           "units: 'all', 'cpu_only', 'cpu_and_gpu' or 'cpu_and_npu'.\n"
           "threads: kernel threads, 1..256.\n"
           "config: config keys by name, e.g. {'OpBackend.Conv': 'ref', 'Backends': 'xnnpack,ref'};\n"
           "  for a package every key of its table, e.g. {'OnDeviceCompilation': 1}.\n"
           "precision: '' / 'fp32' (as the model), 'fp16' or 'mixed' (converts an fp32 model).\n"
           "model_type: '' (as the model), 'program' or 'network'.\n"
           "backends: preference order, e.g. 'xnnpack,ref'.  fallback: may nodes fall back to ref.")
      .def_property_readonly(
          "inputs", [](const PySession& s) { return s.Infos(true); },
          "The model's inputs (list of ValueInfo).")
      .def_property_readonly(
          "outputs", [](const PySession& s) { return s.Infos(false); },
          "The model's outputs (list of ValueInfo).")
      .def("run", &PySession::Run, py::arg("inputs"),
           "run(inputs) -> dict\n\n"
           "Runs once. inputs: {name: numpy array} for every input; float arrays of another float\n"
           "type than the input declares are converted (float32 into a float16 input). Returns\n"
           "{output name: numpy array} in the outputs' own types (float16 stays float16).")
      .def("plan", &PySession::Plan, py::arg("inputs") = py::none(),
           "plan(inputs=None) -> dict\n\n"
           "The plan report (per node: partition, backend, unit, stated and actual precision,\n"
           "reason) for the shapes of `inputs` (None: the model's static shapes).")
      .def_property_readonly("served_by", &PySession::ServedBy,
                             "What runs now: 'float model models/x.onnx', 'compiled plan ... "
                             "(int8, optimal)', or 'model PATH' for an ONNX file.")
      .def("set_recording", &PySession::SetRecording, py::arg("on"),
           "Recording of runs for on-device compilation on or off (packages with "
           "OnDeviceCompilation = 1).")
      .def("compile_now", &PySession::CompileNow,
           "Runs the package's compile job now; returns its result {'outcome', 'reason', 'plan', "
           "'entry', 'served_by'}. The session serves an accepted plan from its next run.")
      .def("odc_status", &PySession::OdcStatus, "On-device compilation status (dict).")
      .def("odc_history", &PySession::OdcHistory, "The package's ODC history (list of dicts).");

  m.def(
      "convert",
      [](const std::string& input, const std::string& output, const std::string& precision,
         const std::string& model_type, const std::string& keep_fp32, bool keep_io_types,
         bool optimize, int threads) {
        kiln::ConvertOptions o;
        o.raw.precision = ParsePrecision(precision, false);
        o.raw.model_type = ParseModelType(model_type.empty() ? "program" : model_type);
        o.keep_fp32 = keep_fp32;
        o.raw.keep_io_types = keep_io_types ? 1 : 0;
        o.raw.optimize = optimize ? 1 : 0;
        o.raw.threads = threads;
        py::gil_scoped_release release;
        kiln::Convert(input, output, o);
      },
      py::arg("input"), py::arg("output"), py::arg("precision") = "fp16",
      py::arg("model_type") = "program", py::arg("keep_fp32") = "",
      py::arg("keep_io_types") = false, py::arg("optimize") = true, py::arg("threads") = 1,
      "convert(input, output, precision='fp16', model_type='program', keep_fp32='',\n"
      "        keep_io_types=False, optimize=True, threads=1)\n\n"
      "Writes the fp16 (or 'mixed': precision-sensitive ops kept fp32, chosen by the keep_fp32\n"
      "selector 'op:Softmax,name:REGEX') program of the ONNX model `input` to `output`.");

  m.def(
      "quantize",
      [](const std::string& input, const std::string& output, const std::string& data_dir,
         int samples, const std::string& method, const std::string& activations,
         bool per_channel, int weight_bits, const std::string& keep_float, bool optimize,
         int threads) {
        kiln::QuantizeOptions o;
        o.data_dir = data_dir;
        o.raw.samples = samples;
        o.method = method;
        o.activations = activations;
        o.raw.per_channel = per_channel ? 1 : 0;
        o.raw.weight_bits = weight_bits;
        o.keep_float = keep_float;
        o.raw.optimize = optimize ? 1 : 0;
        o.raw.threads = threads;
        py::gil_scoped_release release;
        kiln::Quantize(input, output, o);
      },
      py::arg("input"), py::arg("output"), py::arg("data_dir"), py::arg("samples") = 64,
      py::arg("method") = "mse", py::arg("activations") = "u8", py::arg("per_channel") = true,
      py::arg("weight_bits") = 8, py::arg("keep_float") = "", py::arg("optimize") = true,
      py::arg("threads") = 1,
      "quantize(input, output, data_dir, samples=64, method='mse', activations='u8',\n"
      "         per_channel=True, weight_bits=8, keep_float='', optimize=True, threads=1)\n\n"
      "Calibrates on data_dir/<sample>/<input name>.npy and writes the int8 QDQ model.\n"
      "method: 'mse', 'minmax', 'percentile:P' or 'entropy'; activations: 'u8' or 's8'.");

  m.def(
      "pack",
      [](const std::string& model, const std::string& package, const std::string& precision,
         const std::string& keep_fp32, const std::map<std::string, py::object>& config,
         bool force) {
        kiln::PackOptions o;
        o.raw.precision = ParsePrecision(precision, true);
        o.keep_fp32 = keep_fp32;
        o.config = Items(config);
        o.raw.force = force ? 1 : 0;
        py::gil_scoped_release release;
        kiln::Pack(model, package, o);
      },
      py::arg("model"), py::arg("package"), py::arg("precision") = "fp32",
      py::arg("keep_fp32") = "", py::arg("config") = std::map<std::string, py::object>{},
      py::arg("force") = false,
      "pack(model, package, precision='fp32', keep_fp32='', config={}, force=False)\n\n"
      "Makes the package folder `package` (NAME.kiln) from an ONNX model. config: keys of\n"
      "metadata/config.cfg, e.g. {'OnDeviceCompilation': 1, 'OdcRecords': 16}.");

  m.def(
      "compile",
      [](const std::string& package, const std::map<std::string, py::object>& config) {
        std::string r;
        const auto items = Items(config);
        {
          py::gil_scoped_release release;
          r = kiln::CompilePackage(package, items);
        }
        return ParseJson(r);
      },
      py::arg("package"), py::arg("config") = std::map<std::string, py::object>{},
      "compile(package, config={}) -> dict\n\n"
      "Runs the package's on-device compile job now (on what earlier runs recorded), with\n"
      "config keys over its config.cfg for this job (e.g. {'OdcMode': 'compile'}). Returns\n"
      "{'outcome': 'accepted'|'accepted-float'|'rejected'|'no-samples'|..., 'reason', 'plan',\n"
      "'entry', 'served_by'}.");
}
