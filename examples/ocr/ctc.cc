#include "ctc.h"

#include <fstream>

namespace ocr {

bool LoadKeys(const std::string& path, std::vector<std::string>* keys, std::string* error) {
  std::ifstream f(path);
  if (!f) {
    *error = "cannot open the key list " + path;
    return false;
  }
  keys->clear();
  std::string line;
  while (std::getline(f, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    keys->push_back(line);
  }
  while (!keys->empty() && keys->back().empty()) keys->pop_back();
  if (keys->empty()) {
    *error = "the key list " + path + " is empty";
    return false;
  }
  keys->push_back(" ");
  return true;
}

Decoded CtcDecode(const float* probs, int steps, int classes, const std::vector<std::string>& keys) {
  Decoded d;
  int previous = -1;
  double sum = 0;
  int kept = 0;
  for (int t = 0; t < steps; ++t) {
    const float* row = probs + static_cast<size_t>(t) * classes;
    int best = 0;
    for (int c = 1; c < classes; ++c) {
      if (row[c] > row[best]) best = c;
    }
    if (best != 0 && best != previous && best - 1 < static_cast<int>(keys.size())) {
      d.text += keys[best - 1];
      sum += row[best];
      ++kept;
    }
    previous = best;
  }
  d.confidence = kept > 0 ? static_cast<float>(sum / kept) : 0.f;
  return d;
}

}  // namespace ocr
