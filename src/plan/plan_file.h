// Compiled plans on disk (.kplan): one file holding everything needed to run a model with neither
// the ONNX importer nor the graph passes: the optimized, typed graph (after fusion and QDQ
// fusion, with nested bodies), its weights, the input signatures it was compiled for, the cache
// key it was built under and a report. Kiln's own format (DESIGN.md "Data flow"); everything that
// leaves the process otherwise is standard ONNX.
//
// Layout (little-endian):
//   header   magic "KILNPLAN", u32 format version (kPlanFormatVersion), u32 section count,
//            u64 file size, u32 header crc32c (of the preceding bytes and the section table)
//   table    per section: u32 id, u32 flags, u64 offset, u64 size, u32 crc32c (CRC-32C of the
//            section's bytes), u32 reserved
//   sections each 64-byte aligned: KEY (JSON, the cache key), META (JSON: signatures, report,
//            notes), GRAPH (binary IR: values, nodes, attributes, nested graphs; initializers as
//            references into WEIGHTS), WEIGHTS (raw tensor data, each tensor 64-byte aligned)
// A loader verifies the header, the table and every section's checksum BEFORE it reads the
// section; every length and offset read from the file is bounds-checked (the file is untrusted:
// it may be truncated, tampered with or written by another Kiln). A failure is a Status naming
// the file, the section and the offset.
//
// Loading memory-maps the file read-only; initializer tensors of the loaded model point into the
// mapping (no copy), which LoadedPlan keeps alive (shared with the tensors' storage owner).
//
//   PlanContents c;
//   c.key_json = key.ToJson();  c.meta_json = ...;  // produced by the caller
//   KILN_RETURN_IF_ERROR(WritePlanFile("compiled/abc.kplan", c, optimized_model));
//   KILN_ASSIGN_OR_RETURN(LoadedPlan p, LoadPlanFile("compiled/abc.kplan"));
//   auto session = Session::CreatePrepared(std::move(p.model), options);  // no passes
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/status.h"
#include "ir/graph.h"

namespace kiln {

inline constexpr uint32_t kPlanFormatVersion = 1;

struct PlanContents {
  std::string key_json;   // the cache key (plan/cache_key.h), stored verbatim
  std::string meta_json;  // signatures compiled for, report, notes; stored verbatim
};

// Writes `model` (graph, nested graphs, opsets, metadata, model type) and `contents` to `path`
// atomically: a temporary file in the same folder, fsync, rename, fsync of the folder. No
// half-written file remains on failure.
Status WritePlanFile(const std::string& path, const PlanContents& contents, const Model& model);

struct LoadedPlan {
  Model model;            // initializers point into the mapping
  PlanContents contents;  // as written
  uint32_t format_version = 0;
  int64_t file_bytes = 0;
};

// Maps, verifies (header, table, every section's checksum) and decodes a plan file. An
// unknown format version is an error naming both versions (no section is read then).
Result<LoadedPlan> LoadPlanFile(const std::string& path);
// The same from memory (the bytes are copied once into owned storage).
Result<LoadedPlan> LoadPlanBytes(const void* data, size_t size, const std::string& what);

// Reads only the header, table and KEY section (checksum verified): for `kiln inspect` and for
// choosing among several plans without decoding their graphs.
Result<PlanContents> ReadPlanKey(const std::string& path);

}  // namespace kiln
