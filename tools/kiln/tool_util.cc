#include "tool_util.h"

#include "core/file_name.h"

#include <cmath>
#include <cstdio>
#include <random>
#include <sstream>

#include "core/float_convert.h"
#include "core/npy.h"

namespace kiln::cli {
namespace {

Result<std::pair<std::string, std::string>> SplitItem(const std::string& item, const char* what) {
  size_t eq = item.rfind('=');
  if (eq == std::string::npos || eq == 0) {
    return InvalidArgument(std::string("expected ") + what + ", got '" + item + "'");
  }
  return std::make_pair(item.substr(0, eq), item.substr(eq + 1));
}

}  // namespace

Result<std::map<std::string, Tensor>> ParseInputFiles(const std::vector<std::string>& items) {
  std::map<std::string, Tensor> out;
  for (const auto& item : items) {
    KILN_ASSIGN_OR_RETURN(auto kv, SplitItem(item, "NAME=FILE.npy"));
    Tensor t;
    if (kv.second == "[]" || kv.second.find(',') != std::string::npos) {
      // A sequence input: its elements, one .npy each ("[]": the empty sequence; its element
      // type is set from the model's declaration in MakeInputs).
      std::vector<Tensor> items;
      if (kv.second != "[]") {
        std::stringstream ss(kv.second);
        std::string file;
        while (std::getline(ss, file, ',')) {
          KILN_ASSIGN_OR_RETURN(Tensor e, ReadNpy(file));
          if (!items.empty() && e.type() != items[0].type()) {
            return InvalidArgument("input '" + kv.first + "': sequence elements of types " +
                                   ElementTypeName(items[0].type()) + " and " +
                                   ElementTypeName(e.type()) + " (" + file + ")");
          }
          items.push_back(std::move(e));
        }
      }
      t = Tensor::Sequence(items.empty() ? ElementType::kUndefined : items[0].type(),
                           std::move(items));
    } else {
      KILN_ASSIGN_OR_RETURN(t, ReadNpy(kv.second));
    }
    if (!out.emplace(kv.first, std::move(t)).second) {
      return InvalidArgument("input '" + kv.first + "' given twice");
    }
  }
  return out;
}

Result<std::map<std::string, Shape>> ParseShapes(const std::vector<std::string>& items) {
  std::map<std::string, Shape> out;
  for (const auto& item : items) {
    KILN_ASSIGN_OR_RETURN(auto kv, SplitItem(item, "NAME=D0,D1,..."));
    Shape s;
    std::stringstream ss(kv.second);
    std::string d;
    while (std::getline(ss, d, ',')) {
      try {
        size_t used = 0;
        long long v = std::stoll(d, &used);
        if (used != d.size() || v < 0) throw std::invalid_argument(d);
        s.push_back(v);
      } catch (...) {
        return InvalidArgument("bad dimension '" + d + "' in --shape " + item);
      }
    }
    KILN_RETURN_IF_ERROR(CheckedNumElements(s).status().WithContext("--shape " + item));
    out[kv.first] = s;
  }
  return out;
}

Result<NamedTensors> MakeInputs(const Graph& g, const std::map<std::string, Tensor>& given,
                                const std::map<std::string, Shape>& shapes, uint64_t seed,
                                bool verbose) {
  for (const auto& [name, t] : given) {
    if (!g.FindValue(name) || g.value(*g.FindValue(name)).kind != ValueKind::kInput) {
      return InvalidArgument("the model has no input named '" + name + "'");
    }
  }
  for (const auto& [name, s] : shapes) {
    if (!g.FindValue(name) || g.value(*g.FindValue(name)).kind != ValueKind::kInput) {
      return InvalidArgument("--shape names '" + name + "', which is not a model input");
    }
  }
  std::mt19937_64 rng(seed);
  NamedTensors out;
  for (ValueId id : g.inputs()) {
    const Value& v = g.value(id);
    if (!v.info.is_tensor()) {
      // Sequence and optional inputs come only from -i (no random containers).
      const ElementType elem = v.info.type;
      auto it = given.find(v.name);
      if (v.info.kind == TensorKind::kSequence) {
        if (it == given.end()) {
          return InvalidArgument("input '" + v.name + "' is a sequence of " +
                                 ElementTypeName(elem) + ": give its elements with -i " + v.name +
                                 "=A.npy,B.npy,... (-i " + v.name + "=[] for an empty one)");
        }
        const Tensor& t = it->second;
        if (t.is_sequence()) {
          out.emplace_back(v.name, t.items().empty() ? Tensor::Sequence(elem, {}) : t);
        } else {
          out.emplace_back(v.name, Tensor::Sequence(t.type(), {t}));  // one element
        }
        continue;
      }
      // Optional: the value given, else an empty optional.
      if (it == given.end()) {
        if (verbose) {
          std::fprintf(stderr, "note: optional input '%s' not given: passed as empty\n",
                       v.name.c_str());
        }
        out.emplace_back(v.name, Tensor::OptionalNone(elem, v.info.of_sequence));
      } else {
        out.emplace_back(v.name, Tensor::OptionalOf(it->second));
      }
      continue;
    }
    if (auto it = given.find(v.name); it != given.end()) {
      const ElementType want = v.info.type;
      const Tensor& t = it->second;
      if (want != ElementType::kUndefined && want != t.type() && IsFloating(want) &&
          IsFloating(t.type())) {
        // f32 data into an f16 program input (or any float into another): convert, with a note.
        KILN_ASSIGN_OR_RETURN(Tensor converted, ConvertFloatTensor(t, want));
        std::fprintf(stderr, "note: input '%s': %s data converted to %s, the type the model "
                     "declares\n", v.name.c_str(), ElementTypeName(t.type()), ElementTypeName(want));
        out.emplace_back(v.name, std::move(converted));
        continue;
      }
      out.emplace_back(v.name, t);
      continue;
    }
    Shape shape;
    if (auto it = shapes.find(v.name); it != shapes.end()) {
      shape = it->second;
      if (v.info.shape && v.info.shape->size() != shape.size()) {
        return InvalidArgument("--shape " + v.name + " has rank " + std::to_string(shape.size()) +
                               " but the input is " + v.info.ToString());
      }
    } else if (v.info.shape) {
      for (const Dim& d : *v.info.shape) {
        if (d.is_static()) {
          shape.push_back(d.value);
        } else {
          shape.push_back(1);
          if (verbose) {
            std::fprintf(stderr, "note: input '%s' %s: dynamic dim '%s' set to 1 (use --shape)\n",
                         v.name.c_str(), v.info.ToString().c_str(), d.ToString().c_str());
          }
        }
      }
    } else {
      return InvalidArgument("input '" + v.name + "' has unknown rank; give --shape " + v.name +
                             "=D0,D1,...");
    }
    ElementType type = v.info.type == ElementType::kUndefined ? ElementType::kF32 : v.info.type;
    auto t = Tensor::Allocate(type, shape);
    if (!t.ok()) return t.status().WithContext("input '" + v.name + "'");
    std::uniform_real_distribution<double> uni(0.0, 1.0);
    std::uniform_int_distribution<int> small(0, 9);
    bool ok = Dispatch<kAllNumeric | kDispatchBool>(type, [&](auto tag) {
      using T = decltype(tag);
      T* p = t->template data<T>();
      for (int64_t i = 0; i < t->size(); ++i) {
        if constexpr (std::is_same_v<T, bool>) {
          p[i] = small(rng) % 2 == 1;
        } else if constexpr (std::is_integral_v<T>) {
          p[i] = static_cast<T>(small(rng));
        } else {
          p[i] = T(static_cast<float>(uni(rng)));
        }
      }
    });
    if (!ok) {
      return InvalidArgument("cannot make random data for input '" + v.name + "' of type " +
                             ElementTypeName(type) + "; give it with -i");
    }
    out.emplace_back(v.name, std::move(t).value());
  }
  return out;
}

std::string Summarize(const Tensor& t) {
  if (t.type() == ElementType::kString || t.size() == 0) return "";
  double mn = INFINITY, mx = -INFINITY, sum = 0;
  for (int64_t i = 0; i < t.size(); ++i) {
    double x = t.GetAsDouble(i);
    mn = std::min(mn, x);
    mx = std::max(mx, x);
    sum += x;
  }
  char buf[160];
  std::snprintf(buf, sizeof(buf), "min %.6g max %.6g mean %.6g first [", mn, mx, sum / static_cast<double>(t.size()));
  std::string s = buf;
  for (int64_t i = 0; i < std::min<int64_t>(4, t.size()); ++i) {
    std::snprintf(buf, sizeof(buf), "%s%.6g", i ? ", " : "", t.GetAsDouble(i));
    s += buf;
  }
  return s + (t.size() > 4 ? ", ...]" : "]");
}

std::string SanitizeFileName(const std::string& name) { return SafeFileName(name); }

void AddSessionFlags(CLI::App* app, SessionFlags& f) {
  app->add_option("--threads", f.threads, "threads for kernels")->check(CLI::Range(1, 256));
  app->add_option("--units", f.units, "compute units: cpu_only, cpu_and_gpu, cpu_and_npu, all");
  app->add_option("--backends", f.backends, "backend preference, comma-separated (e.g. xnnpack,ref)");
  app->add_option("--pin", f.pins, "OP=BACKEND: run every node of that op type on that backend");
  app->add_flag("--no-fallback", f.no_fallback,
                "error (listing every node) instead of running nodes on the reference backend");
  app->add_flag("--keep-weights", f.keep_weights,
                "keep the model's copy of every weight resident beside the packed one (config "
                "key ReleasePackedWeights = 0)");
  app->add_flag("--no-thread-tuning", f.no_thread_tuning,
                "run every step the backend splits on the thread pool, without timing the first "
                "runs on one thread too (config key ThreadTuning = 0)");
  app->add_option("--model-type", f.model_type, "override the model's type: program or network");
  app->add_option("--isa", f.isa,
                  "highest instruction set for Kiln's own kernels: auto (the CPU's best), "
                  "portable, avx2, avx512, avx512vnni (capped by the CPU)");
  app->add_option("--int8-kernel", f.int8_kernel,
                  "int8 convolution kernel: auto, vnni, avx2, avx2u7 (7-bit weights) or xnnpack "
                  "(config key Int8Kernel; one the CPU or --isa cannot run falls back to "
                  "XNNPACK's)");
  app->add_flag("--exact-int8", f.exact_int8,
                "same-shape int8 Add / Mul from a table of the reference's results instead of "
                "XNNPACK's fixed-point kernels (config key ExactInt8 = 1)");
}

Result<SessionOptions> ToSessionOptions(const SessionFlags& f) {
  SessionOptions o = SessionOptions::Threads(f.threads);
  KILN_ASSIGN_OR_RETURN(o.units, ParseComputeUnits(f.units));
  std::string item;
  for (size_t i = 0; i <= f.backends.size(); ++i) {
    if (i == f.backends.size() || f.backends[i] == ',') {
      if (!item.empty()) o.backends.push_back(item);
      item.clear();
    } else {
      item += f.backends[i];
    }
  }
  for (const std::string& pin : f.pins) {
    const size_t eq = pin.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == pin.size()) {
      return InvalidArgument("--pin '" + pin + "': expected OP=BACKEND, e.g. Conv=ref");
    }
    o.op_backend[pin.substr(0, eq)] = pin.substr(eq + 1);
  }
  o.fallback = !f.no_fallback;
  o.release_packed_weights = !f.keep_weights;
  o.tune_threads = !f.no_thread_tuning;
  if (f.isa != "auto") {
    o.isa = ParseCpuIsa(f.isa);
    if (!o.isa) {
      return InvalidArgument("--isa '" + f.isa +
                             "': expected auto, portable, avx2, avx512 or avx512vnni");
    }
  }
  const std::optional<Int8Kernel> k8 = ParseInt8Kernel(f.int8_kernel);
  if (!k8) {
    return InvalidArgument("--int8-kernel '" + f.int8_kernel +
                           "': expected auto, vnni, avx2, avx2u7 or xnnpack");
  }
  o.int8_kernel = *k8;
  o.exact_int8 = f.exact_int8;
  if (!f.model_type.empty()) {
    KILN_ASSIGN_OR_RETURN(ModelType t, ParseModelType(f.model_type));
    o.model_type = t;
  }
  return o;
}

}  // namespace kiln::cli

namespace kiln::cli {

void AddConfigFlag(CLI::App* app, std::vector<std::string>& configs) {
  app->add_option("--config", configs,
                  "Package config key over metadata/config.cfg: KEY=VALUE (repeatable)");
}

Result<std::vector<std::pair<std::string, std::string>>> ParseConfigItems(
    const std::vector<std::string>& items) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const std::string& item : items) {
    const size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0) {
      return InvalidArgument("--config '" + item + "': expected KEY=VALUE, e.g. Threads=2");
    }
    out.emplace_back(item.substr(0, eq), item.substr(eq + 1));
  }
  return out;
}

Result<ServeOptions> ToServeOptions(const SessionFlags& flags,
                                    const std::vector<std::string>& configs) {
  ServeOptions so;
  KILN_ASSIGN_OR_RETURN(so.session, ToSessionOptions(flags));
  if (flags.threads != 1) so.threads = flags.threads;
  KILN_ASSIGN_OR_RETURN(auto items, ParseConfigItems(configs));
  for (const auto& [k, v] : items) so.config[k] = v;
  return so;
}

}  // namespace kiln::cli
