#include "precision/selector.h"

#include <cmath>
#include <cstdlib>

namespace kiln {
namespace {

std::string Trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

Status BadItem(const std::string& item, const std::string& why) {
  return InvalidArgument("--keep-fp32 item '" + item + "': " + why);
}

}  // namespace

bool KeepSelector::Matches(const Node& node) const { return !MatchingItem(node).empty(); }

std::string KeepSelector::MatchingItem(const Node& node) const {
  for (const std::string& op : op_types) {
    if (node.op_type == op) return "op:" + op;
  }
  for (size_t i = 0; i < name_regexes.size(); ++i) {
    if (std::regex_match(node.name, name_regexes[i])) return "name:" + name_patterns[i];
  }
  return "";
}

Result<KeepSelector> ParseKeepSelector(const std::string& text) {
  KeepSelector sel;
  sel.text = text;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string::npos) comma = text.size();
    const std::string item = Trim(text.substr(start, comma - start));
    start = comma + 1;
    if (item.empty()) {
      if (comma == text.size() && sel.op_types.empty() && sel.name_patterns.empty() &&
          !sel.auto_tolerance && Trim(text).empty()) {
        break;  // the empty selector
      }
      return BadItem(item, "empty item (two commas in a row, or a trailing comma)");
    }
    const size_t colon = item.find(':');
    if (colon == std::string::npos) {
      return BadItem(item, "expected op:TYPE, name:REGEX or auto:TOL");
    }
    const std::string kind = item.substr(0, colon);
    const std::string arg = item.substr(colon + 1);
    if (kind == "op") {
      if (arg.empty()) return BadItem(item, "op: needs an operator type, e.g. op:Softmax");
      sel.op_types.push_back(arg);
    } else if (kind == "name") {
      if (arg.empty()) return BadItem(item, "name: needs a regular expression");
      try {
        sel.name_regexes.emplace_back(arg, std::regex::ECMAScript);
      } catch (const std::regex_error& e) {
        return BadItem(item, std::string("invalid regular expression: ") + e.what());
      }
      sel.name_patterns.push_back(arg);
    } else if (kind == "auto") {
      char* end = nullptr;
      const double tol = std::strtod(arg.c_str(), &end);
      if (arg.empty() || end != arg.c_str() + arg.size() || !std::isfinite(tol) || tol <= 0) {
        return BadItem(item, "auto: needs a positive tolerance, e.g. auto:1e-3");
      }
      if (sel.auto_tolerance) return BadItem(item, "auto: given twice");
      sel.auto_tolerance = tol;
    } else {
      return BadItem(item, "unknown kind '" + kind + "', expected op:TYPE, name:REGEX or auto:TOL");
    }
    if (comma == text.size()) break;
  }
  return sel;
}

}  // namespace kiln
