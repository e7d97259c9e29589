// CTC greedy decoding of PP-OCR's recognizer output: per time step the most likely class,
// repeats merged, blanks (class 0) dropped; classes 1..K are the lines of ppocr_keys_v1.txt in
// order and class K+1 a space (PaddleOCR's use_space_char). Confidence: the mean probability of
// the kept steps.
#pragma once

#include <string>
#include <vector>

namespace ocr {

// The key list (one UTF-8 character per line) plus the space; false with *error when unreadable.
bool LoadKeys(const std::string& path, std::vector<std::string>* keys, std::string* error);

struct Decoded {
  std::string text;
  float confidence = 0;
};

// probs: steps x classes probabilities of one line; classes must be keys.size() + 1.
Decoded CtcDecode(const float* probs, int steps, int classes, const std::vector<std::string>& keys);

}  // namespace ocr
