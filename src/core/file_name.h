// A value or model name made safe as one file name: every character outside [A-Za-z0-9._-]
// replaced by '_'. One rule for `kiln run -o`, calibration sample folders, ODC's kept samples
// and package model names, so that each writes what the others read.
#pragma once

#include <string>

namespace kiln {

inline std::string SafeFileName(std::string s) {
  for (char& c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) c = '_';
  }
  return s;
}

}  // namespace kiln
