// The `kiln plan` report: what a session's execution plan says about a model, gathered once
// into plain data (PlanReport) and rendered as a text table, JSON, Graphviz dot or one
// self-contained HTML page that draws the graph.
//
//   KILN_ASSIGN_OR_RETURN(std::shared_ptr<const ExecutionPlan> plan, session->Plan(inputs));
//   PlanReport r = CollectPlanReport(*session, *plan, "model.onnx");
//   std::string page = RenderPlanHtml(r);
//
// Every node of the main graph appears once: placed (partition, backend, unit, precision, and
// why preferred backends declined it) or folded at plan time (its outputs became constants).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "runtime/executor.h"
#include "runtime/session.h"

namespace kiln::cli {

struct PlanValueInfo {
  std::string name;
  std::string type;       // specialised type, e.g. "f32[1,3,160,160]"; "" for an omitted input
  bool constant = false;  // initializer or folded at plan time
};

struct PlanNodeInfo {
  uint32_t id = 0;
  std::string name;
  std::string op_type;
  bool folded = false;  // not placed: every output was computed at plan time
  int partition = -1;
  std::string backend;    // "" when folded
  std::string unit;       // "cpu" / "gpu" / "npu"; "" when folded
  std::string stated;     // the node's stated float type, e.g. "f16"
  std::string actual;     // what the backend computes it in (= stated when not raised)
  std::string precision;  // PrecisionLabel(): "f16" or "f16 raised to f32"
  std::string reason;     // why backends before the chosen one declined it
  double cost_us = 0;
  std::vector<PlanValueInfo> inputs, outputs;
};

struct PlanPartitionInfo {
  int index = 0;
  std::string backend, unit;
  bool compiled = false;        // false: run node by node in the executor (reference backend)
  std::vector<uint32_t> nodes;  // node ids in execution order
  double cost_us = 0, border_cost_us = 0;
  std::vector<PlanValueInfo> inputs, outputs;  // border values
  std::vector<std::string> border_conversions;
  int64_t weight_bytes = 0, workspace_bytes = 0;
};

struct PlanEdge {
  uint32_t from = 0, to = 0;  // node ids
  std::string value;
};

struct PlanReport {
  std::string model;       // file name
  std::string model_type;  // "program" / "network"
  std::string units;       // "all", "cpu_only", ...
  int threads = 1;
  std::vector<std::pair<std::string, std::string>> backends;  // (name, unit), preference order
  std::vector<std::string> notes;
  std::vector<PlanValueInfo> inputs, outputs;  // graph inputs / outputs
  std::vector<PlanNodeInfo> nodes;             // by node id
  std::vector<PlanPartitionInfo> partitions;   // in execution order
  std::vector<PlanEdge> edges;                 // producer -> consumer, once per value and pair
  int64_t arena_bytes = 0, unshared_bytes = 0;
  size_t arena_buffers = 0;

  size_t folded_count() const;
  // (backend, placed node count) in the order of `backends`, backends with no nodes left out.
  std::vector<std::pair<std::string, size_t>> NodesPerBackend() const;
  // "709 nodes (12 folded), 9 partitions (xnnpack 650, ref 47), model type program, units all,
  // threads 1"
  std::string SummaryLine() const;
};

// Defined in plan.cc, with the text table and the dot graph.
PlanReport CollectPlanReport(const Session& session, const ExecutionPlan& plan,
                             const std::string& model_file);
std::string RenderPlanTable(const PlanReport& r);
std::string RenderPlanDot(const PlanReport& r);

// The rest in plan_render.cc.

// Colours per backend ("" = folded): strong (outline) or light (fill), as "#rrggbb".
std::string BackendColor(const PlanReport& r, const std::string& backend, bool light);
// "512 B", "3.4 KiB", "1.25 MiB".
std::string FormatBytes(int64_t bytes);
// "x f32[1,3,160,160], y f32[2]" ("-" when empty; omitted values skipped).
std::string ValueList(const std::vector<PlanValueInfo>& values);

std::string RenderPlanJson(const PlanReport& r);
std::string RenderPlanHtml(const PlanReport& r);

}  // namespace kiln::cli
