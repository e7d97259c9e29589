// `kiln pack`: makes a package (package/package.h) from an ONNX model. The original is copied
// unchanged to models/NAME.onnx; with --precision fp16|mixed a converted program
// models/NAME.fp16.onnx (or .mixed.onnx) is added and becomes the default model. The config
// keys are checked against the table (package/config.h) before anything is written. The
// package is assembled in a temporary folder beside the target and renamed into place, so a
// failure leaves no half-written package.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "core/status.h"

namespace kiln {

struct PackOptions {
  std::string precision = "fp32";  // fp32, fp16, mixed
  std::string keep_fp32;           // the selector for mixed (default: op:Softmax...)
  std::vector<std::pair<std::string, std::string>> config;  // KEY=VALUE
  bool force = false;              // replace an existing package at the target
};

struct PackReport {
  std::string dir;
  std::string default_model;
  std::vector<std::string> files;
};

Result<PackReport> PackModel(const std::string& model_path, const std::string& out_dir,
                             const PackOptions& options);

}  // namespace kiln
