#include "core/tensor.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <mutex>

namespace kiln {

int64_t NumElements(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

Result<int64_t> CheckedNumElements(const Shape& shape) {
  // 2^48 elements is far beyond any memory; it keeps byte counts of every type inside int64.
  constexpr int64_t kMax = int64_t{1} << 48;
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) return InvalidArgument("shape " + ShapeToString(shape) + " has a negative dim");
    if (d != 0 && n > kMax / d) {
      return InvalidArgument("shape " + ShapeToString(shape) + " has too many elements (overflow)");
    }
    n *= d;
  }
  return n;
}

std::string ShapeToString(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ",";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

std::vector<int64_t> Strides(const Shape& shape) {
  std::vector<int64_t> s(shape.size(), 1);
  for (int i = static_cast<int>(shape.size()) - 2; i >= 0; --i) {
    s[static_cast<size_t>(i)] = s[static_cast<size_t>(i) + 1] * shape[static_cast<size_t>(i) + 1];
  }
  return s;
}

namespace {
thread_local int64_t t_tensor_byte_limit = 0;
}  // namespace

int64_t TensorByteLimit() { return t_tensor_byte_limit; }

ScopedTensorByteLimit::ScopedTensorByteLimit(int64_t max_bytes)
    : previous_(t_tensor_byte_limit) {
  t_tensor_byte_limit = max_bytes;
}
ScopedTensorByteLimit::~ScopedTensorByteLimit() { t_tensor_byte_limit = previous_; }

Status TensorTooLarge(const std::string& what, int64_t bytes, int64_t limit) {
  return OutOfRange(what + " would take " + std::to_string(bytes) +
                           " bytes, above the limit of " + std::to_string(limit) +
                           " bytes for one tensor (session option max_tensor_bytes, config key "
                           "MaxTensorBytes)");
}

Result<Tensor> Tensor::Allocate(ElementType type, Shape shape) {
  return AllocateImpl(type, std::move(shape), /*zero=*/true);
}

namespace {

constexpr size_t kHugeTensorBytes = size_t{4} << 20;
constexpr size_t kHugePage = size_t{2} << 20;

// `bytes` of zeroed memory aligned to 2 MiB, or nullptr (the caller falls back to the heap).
void* MapHuge(size_t bytes) {
  const size_t span = bytes + kHugePage;
  void* m = ::mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return nullptr;
  const auto base = reinterpret_cast<uintptr_t>(m);
  const uintptr_t aligned = (base + kHugePage - 1) & ~(uintptr_t{kHugePage} - 1);
  if (aligned > base) ::munmap(m, aligned - base);
  const uintptr_t end = base + span, used_end = aligned + bytes;
  if (end > used_end) ::munmap(reinterpret_cast<void*>(used_end), end - used_end);
  ::madvise(reinterpret_cast<void*>(aligned), bytes, MADV_HUGEPAGE);
  return reinterpret_cast<void*>(aligned);
}

void UnmapHuge(void* p, size_t bytes) { ::munmap(p, bytes); }

}  // namespace

Result<Tensor> Tensor::AllocateUninitialized(ElementType type, Shape shape) {
  if (type == ElementType::kString) return Allocate(type, std::move(shape));
  return AllocateImpl(type, std::move(shape), /*zero=*/false);
}

Result<Tensor> Tensor::AllocateImpl(ElementType type, Shape shape, bool zero) {
  if (type == ElementType::kUndefined) return InvalidArgument("cannot allocate an undefined type");
  KILN_ASSIGN_OR_RETURN(int64_t n, CheckedNumElements(shape));
  const int64_t limit = t_tensor_byte_limit;
  if (limit > 0 && n * static_cast<int64_t>(ElementSize(type)) > limit) {
    return TensorTooLarge(std::string(ElementTypeName(type)) + ShapeToString(shape),
                          n * static_cast<int64_t>(ElementSize(type)), limit);
  }
  Tensor t;
  t.type_ = type;
  t.shape_ = std::move(shape);
  t.size_ = n;
  if (type == ElementType::kString) {
    auto* strings = new std::string[static_cast<size_t>(n > 0 ? n : 1)];
    t.owner_ = std::shared_ptr<void>(strings, [](void* p) { delete[] static_cast<std::string*>(p); });
    t.data_ = strings;
    return t;
  }
  const size_t bytes = static_cast<size_t>(n) * ElementSize(type);
  const size_t rounded = (bytes + 63) / 64 * 64 + 64;
  if (rounded >= kHugeTensorBytes) {
    // Large tensors (weights of big layers, large activations) get their own mapping with
    // transparent huge pages requested: a 2 MiB page faults once instead of 512 times (page
    // faults were most of loading a 100 MB model), and fresh anonymous memory is already zero.
    void* p = MapHuge(rounded);
    if (p != nullptr) {
      t.owner_ = std::shared_ptr<void>(p, [rounded](void* q) { UnmapHuge(q, rounded); });
      t.data_ = p;
      return t;
    }
  }
  void* p = std::aligned_alloc(64, rounded);
  if (p == nullptr) return InvalidArgument("out of memory allocating " + t.Describe());
  if (zero) {
    std::memset(p, 0, rounded);
  } else {
    std::memset(static_cast<char*>(p) + bytes, 0, rounded - bytes);  // the padding only
  }
  t.owner_ = std::shared_ptr<void>(p, [](void* q) { std::free(q); });
  t.data_ = p;
  return t;
}

Tensor Tensor::Wrap(ElementType type, Shape shape, void* data) {
  Tensor t;
  t.type_ = type;
  t.size_ = NumElements(shape);
  t.shape_ = std::move(shape);
  t.data_ = data;
  return t;
}

Tensor Tensor::WrapShared(ElementType type, Shape shape, void* data, std::shared_ptr<void> owner) {
  Tensor t = Wrap(type, std::move(shape), data);
  t.owner_ = std::move(owner);
  return t;
}

Tensor Tensor::Sequence(ElementType elem, std::vector<Tensor> items) {
  for (Tensor& item : items) {
    if (item.is_tensor() && !item.owns_storage() && item.defined()) item = item.Clone();
  }
  Tensor t;
  t.kind_ = TensorKind::kSequence;
  t.type_ = elem;
  t.items_ = std::make_shared<const std::vector<Tensor>>(std::move(items));
  return t;
}

Tensor Tensor::OptionalOf(const Tensor& value) {
  Tensor t;
  t.kind_ = TensorKind::kOptional;
  t.type_ = value.type();
  t.of_sequence_ = value.is_sequence();
  Tensor held = value.is_tensor() && !value.owns_storage() ? value.Clone() : value;
  t.items_ = std::make_shared<const std::vector<Tensor>>(std::vector<Tensor>{std::move(held)});
  return t;
}

Tensor Tensor::OptionalNone(ElementType elem, bool of_sequence) {
  Tensor t;
  t.kind_ = TensorKind::kOptional;
  t.type_ = elem;
  t.of_sequence_ = of_sequence;
  t.items_ = std::make_shared<const std::vector<Tensor>>();
  return t;
}

const std::vector<Tensor>& Tensor::items() const {
  static const std::vector<Tensor> kNone;
  return items_ ? *items_ : kNone;
}

// ---- Reloadable storage (Tensor::LoadFromFile) ----

Result<std::shared_ptr<const SourceFile>> SourceFile::FromFd(int fd, std::string path) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return IoError("cannot stat " + path);
  }
  std::shared_ptr<SourceFile> f(new SourceFile());
  f->fd_ = fd;
  f->path_ = std::move(path);
  f->size_ = static_cast<int64_t>(st.st_size);
  f->mtime_ns_ = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  return std::shared_ptr<const SourceFile>(std::move(f));
}

SourceFile::~SourceFile() {
  if (fd_ >= 0) ::close(fd_);
}

Status SourceFile::Read(uint64_t offset, uint64_t size, void* out, const std::string& what) const {
  struct stat st {};
  if (::fstat(fd_, &st) != 0) return IoError("cannot stat " + path_);
  const int64_t mtime = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  if (static_cast<int64_t>(st.st_size) != size_ || mtime != mtime_ns_) {
    return IoError(path_ + " was changed in place since it was loaded; " + what +
                              " cannot be read from it again (load the model again)");
  }
  auto* dst = static_cast<char*>(out);
  while (size > 0) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(size, uint64_t{1} << 30));
    const ssize_t got = ::pread(fd_, dst, want, static_cast<off_t>(offset));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return IoError("cannot read " + what + " from " + path_);
    dst += got;
    offset += static_cast<uint64_t>(got);
    size -= static_cast<uint64_t>(got);
  }
  return Status::Ok();
}

namespace {

// Pages of their own holding a tensor read from a file; released and restored as a whole.
struct ReloadableStorage {
  void* base = nullptr;
  size_t mapped = 0;  // bytes mapped (whole pages)
  size_t bytes = 0;   // the tensor's bytes
  std::shared_ptr<const SourceFile> file;
  uint64_t offset = 0;
  std::string what;
  std::mutex mu;
  bool released = false;
  ~ReloadableStorage() {
    if (base != nullptr) ::munmap(base, mapped);
  }
};

}  // namespace

Result<Tensor> Tensor::LoadFromFile(ElementType type, Shape shape,
                                    std::shared_ptr<const SourceFile> file, uint64_t offset,
                                    const std::string& what) {
  if (type == ElementType::kString || type == ElementType::kUndefined) {
    return InvalidArgument(what + ": a " + ElementTypeName(type) + " tensor is not read from a file");
  }
  KILN_ASSIGN_OR_RETURN(int64_t n, CheckedNumElements(shape));
  const size_t bytes = static_cast<size_t>(n) * ElementSize(type);
  const int64_t limit = t_tensor_byte_limit;
  if (limit > 0 && static_cast<int64_t>(bytes) > limit) {
    return TensorTooLarge(what, static_cast<int64_t>(bytes), limit);
  }
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  auto st = std::make_shared<ReloadableStorage>();
  // At least one page and 64 bytes of zeroed padding past the data, like Allocate's.
  st->mapped = (bytes + 64 + page - 1) / page * page;
  void* m = ::mmap(nullptr, st->mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return InvalidArgument("out of memory allocating " + what);
  st->base = m;
  if (st->mapped >= kHugeTensorBytes) ::madvise(m, st->mapped, MADV_HUGEPAGE);
  st->bytes = bytes;
  st->file = std::move(file);
  st->offset = offset;
  st->what = what;
  KILN_RETURN_IF_ERROR(st->file->Read(offset, bytes, m, what));
  Tensor t;
  t.type_ = type;
  t.shape_ = std::move(shape);
  t.size_ = n;
  t.data_ = m;
  t.owner_ = std::static_pointer_cast<void>(st);
  t.reloadable_ = true;
  return t;
}

int64_t Tensor::ReleasePages() const {
  if (!reloadable_) return 0;
  auto* st = static_cast<ReloadableStorage*>(owner_.get());
  std::lock_guard<std::mutex> lock(st->mu);
  if (st->released) return 0;
  // The pages go back to the system; PROT_NONE makes any read before RestorePages fault
  // instead of returning the zeros an anonymous page reads as after MADV_DONTNEED.
  if (::madvise(st->base, st->mapped, MADV_DONTNEED) != 0) return 0;
  if (::mprotect(st->base, st->mapped, PROT_NONE) != 0) return 0;
  st->released = true;
  return static_cast<int64_t>(st->mapped);
}

Status Tensor::RestorePages() const {
  if (!reloadable_) return Status::Ok();
  auto* st = static_cast<ReloadableStorage*>(owner_.get());
  std::lock_guard<std::mutex> lock(st->mu);
  if (!st->released) return Status::Ok();
  if (::mprotect(st->base, st->mapped, PROT_READ | PROT_WRITE) != 0) {
    return Internal("cannot make the pages of " + st->what + " accessible again");
  }
  Status s = st->file->Read(st->offset, st->bytes, st->base, st->what);
  if (!s.ok()) {
    ::madvise(st->base, st->mapped, MADV_DONTNEED);
    ::mprotect(st->base, st->mapped, PROT_NONE);
    return s;
  }
  st->released = false;
  return Status::Ok();
}

bool Tensor::pages_released() const {
  if (!reloadable_) return false;
  auto* st = static_cast<ReloadableStorage*>(owner_.get());
  std::lock_guard<std::mutex> lock(st->mu);
  return st->released;
}

Tensor Tensor::Clone() const {
  if (!is_tensor()) {
    Tensor t = *this;
    std::vector<Tensor> copies;
    for (const Tensor& item : items()) copies.push_back(item.Clone());
    t.items_ = std::make_shared<const std::vector<Tensor>>(std::move(copies));
    return t;
  }
  if (!defined()) return Tensor();
  // Every byte is written below: no zero fill first (a copy of a large input touches its
  // pages once, not twice).
  Tensor t = AllocateImpl(type_, shape_, type_ == ElementType::kString).value();
  if (type_ == ElementType::kString) {
    for (int64_t i = 0; i < size_; ++i) t.data<std::string>()[i] = data<std::string>()[i];
  } else if (bytes() > 0) {
    std::memcpy(t.data_, data_, bytes());
  }
  return t;
}

Tensor Tensor::Reshaped(Shape shape) const {
  Tensor t = *this;
  t.shape_ = std::move(shape);
  return t;
}

double Tensor::GetAsDouble(int64_t i) const {
  double v = 0;
  Dispatch<kAllNumeric | kDispatchBool>(type_, [&](auto tag) {
    using T = decltype(tag);
    v = static_cast<double>(data<T>()[i]);
  });
  return v;
}

int64_t Tensor::GetAsInt64(int64_t i) const {
  int64_t v = 0;
  Dispatch<kAllNumeric | kDispatchBool>(type_, [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_integral_v<T>) {
      v = static_cast<int64_t>(data<T>()[i]);
    } else {
      v = static_cast<int64_t>(static_cast<double>(data<T>()[i]));
    }
  });
  return v;
}

std::vector<int64_t> Tensor::ToInt64Vector() const {
  std::vector<int64_t> out(static_cast<size_t>(size_));
  for (int64_t i = 0; i < size_; ++i) out[static_cast<size_t>(i)] = GetAsInt64(i);
  return out;
}

std::string Tensor::Describe() const {
  if (is_sequence()) {
    return "seq(" + std::string(ElementTypeName(type_)) + ", " + std::to_string(items().size()) +
           (items().size() == 1 ? " item)" : " items)");
  }
  if (is_optional()) {
    if (!has_element()) {
      return std::string("optional(none: ") + (of_sequence_ ? "seq(" : "") +
             ElementTypeName(type_) + (of_sequence_ ? "))" : ")");
    }
    return "optional(" + items()[0].Describe() + ")";
  }
  return std::string(ElementTypeName(type_)) + ShapeToString(shape_);
}

}  // namespace kiln
