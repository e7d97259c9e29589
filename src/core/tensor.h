// Tensor: an element type, a concrete shape and a view of storage.
//
// A Tensor is a cheap handle (copying it shares storage). Storage is either owned (heap, via
// Allocate, freed with the last handle) or borrowed (Wrap: arena memory owned by an executor,
// valid while that executor's run lasts). Strings are stored as std::string objects and are
// always owned.
//
// A Tensor handle may also carry one of ONNX's two container values (TensorKind): a sequence of
// tensors (SequenceConstruct, SplitToSequence, ...) or an optional (empty, or holding a tensor or
// a sequence). Then type() is the element type of the tensors inside (kUndefined when not
// known, e.g. an empty optional of unknown type), shape() is empty, size() is 0 and there is no
// storage: the items are owned tensors, shared and immutable (kernels build new containers).
// Only sequence/optional ops, Identity and control flow see them; every other kernel gets plain
// tensors, so the executor, its slots and the kernel interface are the same for all values.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/element_type.h"
#include "core/status.h"

namespace kiln {

using Shape = std::vector<int64_t>;

// Product of dims (1 for a scalar). Assumes no overflow: use CheckedNumElements on user input.
int64_t NumElements(const Shape& shape);
// Element count, or an error when a dim is negative or the product overflows int64 / 2^48.
Result<int64_t> CheckedNumElements(const Shape& shape);

// The most bytes one tensor may take on this thread (0: no limit); Tensor::Allocate refuses a
// larger tensor with an error before allocating. A session sets it (SessionOptions::
// max_tensor_bytes) around its create, plan and run calls; kernels allocating on thread-pool
// workers are not covered.
int64_t TensorByteLimit();
class ScopedTensorByteLimit {
 public:
  explicit ScopedTensorByteLimit(int64_t max_bytes);
  ~ScopedTensorByteLimit();
  ScopedTensorByteLimit(const ScopedTensorByteLimit&) = delete;
  ScopedTensorByteLimit& operator=(const ScopedTensorByteLimit&) = delete;

 private:
  int64_t previous_;
};
// The error for a tensor of `bytes` bytes above `limit`: names the value, both sizes and the
// setting (session option max_tensor_bytes, config key MaxTensorBytes).
Status TensorTooLarge(const std::string& what, int64_t bytes, int64_t limit);
// "[1,3,224,224]"
std::string ShapeToString(const Shape& shape);
// Row-major strides in elements.
std::vector<int64_t> Strides(const Shape& shape);

enum class TensorKind { kTensor, kSequence, kOptional };

// A file that tensors were read from and can be read from again (Tensor::LoadFromFile). It is
// kept open: a file replaced by a rename keeps serving the version that was loaded; one changed
// in place (another size or modification time) is refused when read again.
class SourceFile {
 public:
  // Takes ownership of `fd` (open for reading); `path` names it in messages.
  static Result<std::shared_ptr<const SourceFile>> FromFd(int fd, std::string path);
  ~SourceFile();
  SourceFile(const SourceFile&) = delete;
  SourceFile& operator=(const SourceFile&) = delete;
  // Reads `size` bytes at `offset` into `out`; `what` names the data in messages.
  Status Read(uint64_t offset, uint64_t size, void* out, const std::string& what) const;
  const std::string& path() const { return path_; }

 private:
  SourceFile() = default;
  int fd_ = -1;
  std::string path_;
  int64_t size_ = 0, mtime_ns_ = 0;
};

class Tensor {
 public:
  Tensor() = default;

  // A sequence of tensors of element type `elem` (items that borrow storage are cloned).
  static Tensor Sequence(ElementType elem, std::vector<Tensor> items);
  // An optional holding `value` (a tensor or a sequence; borrowed storage is cloned).
  static Tensor OptionalOf(const Tensor& value);
  // An empty optional whose element type is `elem` (of_sequence: an optional sequence type).
  static Tensor OptionalNone(ElementType elem, bool of_sequence = false);

  // Owned, zero-initialised storage (strings default-constructed).
  static Result<Tensor> Allocate(ElementType type, Shape shape);
  // Owned storage left uninitialised (not for strings): for data about to be written whole.
  static Result<Tensor> AllocateUninitialized(ElementType type, Shape shape);
  // Borrowed storage; `data` must hold NumElements(shape) elements and outlive the tensor.
  static Tensor Wrap(ElementType type, Shape shape, void* data);
  // Borrowed storage kept alive by `owner` (e.g. a memory-mapped compiled plan).
  static Tensor WrapShared(ElementType type, Shape shape, void* data, std::shared_ptr<void> owner);
  // Owned storage on pages of its own, filled from `bytes` bytes of `file` at `offset`: its
  // pages can be given back to the system (ReleasePages) and read again (RestorePages). For
  // large weights read from a model file; other tensors are not reloadable.
  static Result<Tensor> LoadFromFile(ElementType type, Shape shape,
                                     std::shared_ptr<const SourceFile> file, uint64_t offset,
                                     const std::string& what);
  // A scalar or 1-D tensor from values, for tests and constant folding.
  template <typename T>
  static Tensor FromVector(const std::vector<T>& values, const Shape& shape) {
    Tensor t = Allocate(ElementTypeOf<T>::value, shape).value();
    for (size_t i = 0; i < values.size(); ++i) t.data<T>()[i] = values[i];
    return t;
  }

  // False only for a default-constructed handle (no value at all).
  bool defined() const { return type_ != ElementType::kUndefined || kind_ != TensorKind::kTensor; }
  TensorKind kind() const { return kind_; }
  bool is_tensor() const { return kind_ == TensorKind::kTensor; }
  bool is_sequence() const { return kind_ == TensorKind::kSequence; }
  bool is_optional() const { return kind_ == TensorKind::kOptional; }
  // Sequence: its items. Optional: zero items (empty) or one (the value held).
  const std::vector<Tensor>& items() const;
  // Optional: whether it holds a value. Optional of a sequence type (also when empty).
  bool has_element() const { return is_optional() && !items().empty(); }
  bool optional_of_sequence() const { return of_sequence_; }
  ElementType type() const { return type_; }
  const Shape& shape() const { return shape_; }
  int rank() const { return static_cast<int>(shape_.size()); }
  int64_t dim(int i) const { return shape_[static_cast<size_t>(i)]; }
  int64_t size() const { return size_; }
  size_t bytes() const { return static_cast<size_t>(size_) * ElementSize(type_); }
  bool owns_storage() const { return owner_ != nullptr; }
  // Whether another handle shares this one's storage now (a copy of the tensor, a model made by
  // CopyModel).
  bool shares_storage() const { return owner_ != nullptr && owner_.use_count() > 1; }

  void* raw() { return data_; }
  const void* raw() const { return data_; }
  template <typename T>
  T* data() {
    return static_cast<T*>(data_);
  }
  template <typename T>
  const T* data() const {
    return static_cast<const T*>(data_);
  }

  // Storage made by LoadFromFile: its pages can be released and restored.
  bool reloadable() const { return reloadable_; }
  // Gives a reloadable tensor's pages back to the system; until RestorePages its data is
  // inaccessible (a read faults: never silently zeros). Returns the bytes released (0: not
  // reloadable or already released). The caller makes sure that no other holder of the storage
  // (shares_storage) reads it meanwhile. For a session's weights that every kernel reading them
  // has copied into its own packed form (the model's copy would otherwise stay resident twice).
  int64_t ReleasePages() const;
  // Reads released pages back from the file (nothing to do when not released).
  Status RestorePages() const;
  bool pages_released() const;

  // Deep copy into owned storage.
  Tensor Clone() const;
  // Same storage, new shape with the same element count.
  Tensor Reshaped(Shape shape) const;
  // Reads element i converted to double / int64 (numeric and bool types only).
  double GetAsDouble(int64_t i) const;
  int64_t GetAsInt64(int64_t i) const;
  // Values of an integer tensor (any integer type) as int64, e.g. a shape input.
  std::vector<int64_t> ToInt64Vector() const;
  // "f32[1,3,224,224]"; "seq(f32, 3 items)"; "optional(f32[2])"; "optional(none: f32)".
  std::string Describe() const;

 private:
  static Result<Tensor> AllocateImpl(ElementType type, Shape shape, bool zero);
  TensorKind kind_ = TensorKind::kTensor;
  bool of_sequence_ = false;  // optional: declared as an optional sequence
  std::shared_ptr<const std::vector<Tensor>> items_;  // sequence / optional contents
  ElementType type_ = ElementType::kUndefined;
  Shape shape_;
  int64_t size_ = 0;
  void* data_ = nullptr;
  std::shared_ptr<void> owner_;
  bool reloadable_ = false;  // owner_ is a ReloadableStorage (tensor.cc)
};

}  // namespace kiln
