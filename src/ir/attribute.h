// Node attributes: a name and one typed payload (scalars, lists, tensors, nested graphs).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace kiln {

class Graph;

struct Attribute {
  enum class Kind { kFloat, kInt, kString, kTensor, kGraph, kFloats, kInts, kStrings, kTensors, kGraphs };
  std::string name;
  Kind kind = Kind::kInt;
  float f = 0;
  int64_t i = 0;
  std::string s;
  Tensor t;
  std::shared_ptr<Graph> g;
  std::vector<float> floats;
  std::vector<int64_t> ints;
  std::vector<std::string> strings;
  std::vector<Tensor> tensors;
  std::vector<std::shared_ptr<Graph>> graphs;

  // Constructors for passes and tests: Attribute::Int("axis", 1), Attribute::Ints("perm", {0, 2, 1}).
  static Attribute Int(std::string name, int64_t v);
  static Attribute Float(std::string name, float v);
  static Attribute String(std::string name, std::string v);
  static Attribute Ints(std::string name, std::vector<int64_t> v);
  static Attribute Floats(std::string name, std::vector<float> v);
  static Attribute Strings(std::string name, std::vector<std::string> v);
  static Attribute TensorValue(std::string name, Tensor v);
};

const char* AttributeKindName(Attribute::Kind k);

// An ordered attribute list with typed getters. Getters with a default return it when the
// attribute is absent; Require* return an error naming the attribute when absent or mistyped.
class Attributes {
 public:
  void Add(Attribute a) { items_.push_back(std::move(a)); }
  const Attribute* Find(const std::string& name) const;
  bool Has(const std::string& name) const { return Find(name) != nullptr; }
  const std::vector<Attribute>& items() const { return items_; }
  std::vector<Attribute>& items() { return items_; }

  int64_t GetInt(const std::string& name, int64_t def) const;
  float GetFloat(const std::string& name, float def) const;
  std::string GetString(const std::string& name, const std::string& def) const;
  std::vector<int64_t> GetInts(const std::string& name, std::vector<int64_t> def = {}) const;
  std::vector<float> GetFloats(const std::string& name, std::vector<float> def = {}) const;
  std::vector<std::string> GetStrings(const std::string& name) const;
  const Tensor* GetTensor(const std::string& name) const;
  const Graph* GetGraph(const std::string& name) const;

 private:
  std::vector<Attribute> items_;
};

}  // namespace kiln
