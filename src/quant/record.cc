// Calibration samples from .npy files and statistics recording (see record.h).
#include "quant/record.h"

#include "core/file_name.h"

#include <algorithm>
#include <filesystem>

#include "core/npy.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

Status CheckInput(const Value& v, const Tensor& t, const std::string& file) {
  if (t.type() != v.info.type) {
    return InvalidArgument("'" + file + "': input '" + v.name + "' expects " +
                           ElementTypeName(v.info.type) + ", found " + t.Describe());
  }
  if (v.info.shape) {
    const DimVector& dims = *v.info.shape;
    bool ok = static_cast<int>(dims.size()) == t.rank();
    for (size_t i = 0; ok && i < dims.size(); ++i) {
      ok = !dims[i].is_static() || dims[i].value == t.dim(static_cast<int>(i));
    }
    if (!ok) {
      return InvalidArgument("'" + file + "': input '" + v.name + "' expects shape " +
                             v.info.ToString() + ", found " + t.Describe());
    }
  }
  return Status::Ok();
}

}  // namespace

Result<std::vector<NamedTensors>> LoadCalibrationSamples(const std::string& dir,
                                                         const Graph& graph, int max_samples) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return InvalidArgument("calibration data '" + dir + "' is not a directory");
  }
  std::vector<fs::path> folders, files;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (e.is_directory()) folders.push_back(e.path());
    if (e.is_regular_file() && e.path().extension() == ".npy") files.push_back(e.path());
  }
  if (ec) return IoError("cannot list calibration data '" + dir + "': " + ec.message());
  std::sort(folders.begin(), folders.end());
  std::sort(files.begin(), files.end());
  std::vector<NamedTensors> samples;
  if (!folders.empty()) {
    for (const fs::path& f : folders) {
      if (static_cast<int>(samples.size()) >= max_samples) break;
      NamedTensors sample;
      for (ValueId in : graph.inputs()) {
        const Value& v = graph.value(in);
        const std::string file = (f / (SafeFileName(v.name) + ".npy")).string();
        if (!fs::exists(file)) {
          return InvalidArgument("calibration sample '" + f.string() + "' has no file for input '" +
                                 v.name + "' (expected " + file + ")");
        }
        KILN_ASSIGN_OR_RETURN(Tensor t, ReadNpy(file));
        KILN_RETURN_IF_ERROR(CheckInput(v, t, file));
        sample.emplace_back(v.name, std::move(t));
      }
      samples.push_back(std::move(sample));
    }
  } else if (!files.empty()) {
    if (graph.inputs().size() != 1) {
      return InvalidArgument("calibration data '" + dir + "': the model has " +
                             std::to_string(graph.inputs().size()) +
                             " inputs, so each sample must be a sub-folder holding NAME.npy per "
                             "input");
    }
    const Value& v = graph.value(graph.inputs()[0]);
    for (const fs::path& f : files) {
      if (static_cast<int>(samples.size()) >= max_samples) break;
      KILN_ASSIGN_OR_RETURN(Tensor t, ReadNpy(f.string()));
      KILN_RETURN_IF_ERROR(CheckInput(v, t, f.string()));
      samples.push_back({{v.name, std::move(t)}});
    }
  }
  if (samples.empty()) {
    return InvalidArgument("calibration data '" + dir +
                           "' holds no samples (.npy files or sub-folders of them)");
  }
  return samples;
}

Status RecordStatistics(const Model& model, const std::vector<NamedTensors>& samples,
                        const RecordOptions& options, CalibrationStats& stats) {
  KILN_ASSIGN_OR_RETURN(auto session,
                        Session::Create(CopyModel(model), SessionOptions::Reference(options.threads)));
  Status failed = Status::Ok();
  NodeObserver observer = [&](const Graph& g, const Node& node,
                              const std::vector<const Tensor*>& outputs) {
    if (&g != &session->graph() || !failed.ok()) return;  // main graph only
    for (size_t j = 0; j < outputs.size() && j < node.outputs.size(); ++j) {
      if (!outputs[j] || !node.outputs[j].valid() || !IsFloating(outputs[j]->type())) continue;
      Status s = stats.Add(g.value(node.outputs[j]).name, *outputs[j]);
      if (!s.ok()) failed = s;
    }
  };
  for (size_t i = 0; i < samples.size(); ++i) {
    for (const auto& [name, t] : samples[i]) {
      if (IsFloating(t.type())) KILN_RETURN_IF_ERROR(stats.Add(name, t));
    }
    auto outs = session->Run(samples[i], &observer);
    if (!outs.ok()) {
      return InvalidArgument("calibration sample " + std::to_string(i + 1) + ": " +
                             outs.status().message());
    }
    KILN_RETURN_IF_ERROR(failed);
    stats.AddRuns(1);
    if (options.progress) {
      options.progress("calibrating", static_cast<int>(i + 1), static_cast<int>(samples.size()));
    }
  }
  return Status::Ok();
}

}  // namespace kiln
