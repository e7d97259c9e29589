#include "ir/attribute.h"

namespace kiln {

const char* AttributeKindName(Attribute::Kind k) {
  switch (k) {
    case Attribute::Kind::kFloat: return "float";
    case Attribute::Kind::kInt: return "int";
    case Attribute::Kind::kString: return "string";
    case Attribute::Kind::kTensor: return "tensor";
    case Attribute::Kind::kGraph: return "graph";
    case Attribute::Kind::kFloats: return "floats";
    case Attribute::Kind::kInts: return "ints";
    case Attribute::Kind::kStrings: return "strings";
    case Attribute::Kind::kTensors: return "tensors";
    case Attribute::Kind::kGraphs: return "graphs";
  }
  return "?";
}

Attribute Attribute::Int(std::string name, int64_t v) {
  Attribute a;
  a.name = std::move(name);
  a.kind = Kind::kInt;
  a.i = v;
  return a;
}

Attribute Attribute::Float(std::string name, float v) {
  Attribute a;
  a.name = std::move(name);
  a.kind = Kind::kFloat;
  a.f = v;
  return a;
}

Attribute Attribute::String(std::string name, std::string v) {
  Attribute a;
  a.name = std::move(name);
  a.kind = Kind::kString;
  a.s = std::move(v);
  return a;
}

Attribute Attribute::Ints(std::string name, std::vector<int64_t> v) {
  Attribute a;
  a.name = std::move(name);
  a.kind = Kind::kInts;
  a.ints = std::move(v);
  return a;
}

Attribute Attribute::Floats(std::string name, std::vector<float> v) {
  Attribute a;
  a.name = std::move(name);
  a.kind = Kind::kFloats;
  a.floats = std::move(v);
  return a;
}

Attribute Attribute::Strings(std::string name, std::vector<std::string> v) {
  Attribute a;
  a.name = std::move(name);
  a.kind = Kind::kStrings;
  a.strings = std::move(v);
  return a;
}

Attribute Attribute::TensorValue(std::string name, Tensor v) {
  Attribute a;
  a.name = std::move(name);
  a.kind = Kind::kTensor;
  a.t = std::move(v);
  return a;
}

const Attribute* Attributes::Find(const std::string& name) const {
  for (const Attribute& a : items_) {
    if (a.name == name) return &a;
  }
  return nullptr;
}

int64_t Attributes::GetInt(const std::string& name, int64_t def) const {
  const Attribute* a = Find(name);
  if (a == nullptr) return def;
  if (a->kind == Attribute::Kind::kFloat) return static_cast<int64_t>(a->f);
  return a->i;
}

float Attributes::GetFloat(const std::string& name, float def) const {
  const Attribute* a = Find(name);
  if (a == nullptr) return def;
  if (a->kind == Attribute::Kind::kInt) return static_cast<float>(a->i);
  return a->f;
}

std::string Attributes::GetString(const std::string& name, const std::string& def) const {
  const Attribute* a = Find(name);
  return a == nullptr ? def : a->s;
}

std::vector<int64_t> Attributes::GetInts(const std::string& name, std::vector<int64_t> def) const {
  const Attribute* a = Find(name);
  if (a == nullptr) return def;
  return a->ints;
}

std::vector<float> Attributes::GetFloats(const std::string& name, std::vector<float> def) const {
  const Attribute* a = Find(name);
  if (a == nullptr) return def;
  return a->floats;
}

std::vector<std::string> Attributes::GetStrings(const std::string& name) const {
  const Attribute* a = Find(name);
  return a == nullptr ? std::vector<std::string>{} : a->strings;
}

const Tensor* Attributes::GetTensor(const std::string& name) const {
  const Attribute* a = Find(name);
  return a == nullptr || a->kind != Attribute::Kind::kTensor ? nullptr : &a->t;
}

const Graph* Attributes::GetGraph(const std::string& name) const {
  const Attribute* a = Find(name);
  return a == nullptr || a->kind != Attribute::Kind::kGraph ? nullptr : a->g.get();
}

}  // namespace kiln
