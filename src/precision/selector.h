// The --keep-fp32 selector of precision conversion: which nodes stay in fp32.
//
// Grammar: a comma-separated list of items, each one of
//   op:TYPE    every node whose op_type is TYPE (e.g. op:Softmax)
//   name:REGEX every node whose name fully matches the ECMAScript regex (std::regex_match)
//   auto:TOL   measure fp16 sensitivity and keep the fewest nodes so that every output's
//              relative L2 error against fp32 is at most TOL (precision_convert.h)
// A name regex may not contain ',' (it separates items). An empty selector keeps nothing.
//
//   auto sel = ParseKeepSelector("op:Softmax,name:head_.*,auto:1e-3");
//   if (sel.ok() && sel->Matches(node)) ...
#pragma once

#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "core/status.h"
#include "ir/graph.h"

namespace kiln {

struct KeepSelector {
  std::string text;                   // as given, recorded in the model's metadata
  std::vector<std::string> op_types;  // op:TYPE items
  std::vector<std::string> name_patterns;
  std::vector<std::regex> name_regexes;  // name:REGEX items, parallel to name_patterns
  std::optional<double> auto_tolerance;  // auto:TOL

  // True when an op: or name: item selects this node (auto is decided by measurement).
  bool Matches(const Node& node) const;
  // "op:Softmax" / "name:head_.*" for the first item that selects the node ("" when none).
  std::string MatchingItem(const Node& node) const;
};

// Errors name the offending item: "--keep-fp32 item 'foo': expected op:TYPE, name:REGEX or
// auto:TOL".
Result<KeepSelector> ParseKeepSelector(const std::string& text);

}  // namespace kiln
