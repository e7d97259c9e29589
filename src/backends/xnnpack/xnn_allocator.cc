// The allocator Kiln gives XNNPACK (xnn_initialize): packed weights are most of what a plan
// build allocates, and at a cold start the page faults of touching that fresh memory were most
// of the build (rec: ~2,700 faults for 11 MB). Large blocks therefore come from chunks mapped
// with transparent huge pages requested (madvise; a 2 MB page faults once), carved by a bump
// pointer; a chunk is unmapped when its last block is freed. Small blocks (operator structs,
// indirection buffers) go to the C heap. Every block carries a 64-byte header (its size and
// chunk) so that realloc and free know where it came from.
#include <sys/mman.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "backends/xnnpack/xnn_internal.h"

namespace kiln::xnn {
namespace {

constexpr size_t kHeader = 64;                 // keeps XNNPACK's 64-byte alignment
constexpr size_t kLarge = 128 * 1024;          // blocks from this size go to chunks
constexpr size_t kHugePage = 2 * 1024 * 1024;
constexpr size_t kChunk = 16 * 1024 * 1024;    // default chunk size (multiple of kHugePage)

struct Chunk {
  char* base = nullptr;
  size_t size = 0;
  size_t used = 0;
  size_t live = 0;  // blocks not yet freed
};

struct Header {
  size_t size;    // usable bytes
  Chunk* chunk;   // nullptr: C heap
};

std::mutex g_mu;
Chunk* g_current = nullptr;  // the chunk new large blocks are carved from

Chunk* NewChunk(size_t at_least) {
  const size_t size = std::max(kChunk, (at_least + kHugePage - 1) / kHugePage * kHugePage);
  // Over-map by one huge page to align the base to 2 MB (THP needs aligned ranges).
  const size_t mapped = size + kHugePage;
  void* p = mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  char* raw = static_cast<char*>(p);
  char* base = reinterpret_cast<char*>(
      (reinterpret_cast<uintptr_t>(raw) + kHugePage - 1) / kHugePage * kHugePage);
  if (base > raw) munmap(raw, static_cast<size_t>(base - raw));
  char* end = base + size;
  if (raw + mapped > end) munmap(end, static_cast<size_t>(raw + mapped - end));
#ifdef MADV_HUGEPAGE
  madvise(base, size, MADV_HUGEPAGE);
#endif
  auto* c = new (std::nothrow) Chunk();
  if (c == nullptr) {
    munmap(base, size);
    return nullptr;
  }
  c->base = base;
  c->size = size;
  return c;
}

void ReleaseChunk(Chunk* c) {
  munmap(c->base, c->size);
  delete c;
}

void* Allocate(size_t size) {
  const size_t need = (size + kHeader + 63) / 64 * 64;
  Header* h = nullptr;
  if (size >= kLarge) {
    std::lock_guard<std::mutex> lock(g_mu);
    if (g_current == nullptr || g_current->size - g_current->used < need) {
      Chunk* c = NewChunk(need);
      if (c == nullptr) return nullptr;
      // The old current chunk is freed by its last block's release (or now, if it has none).
      if (g_current != nullptr && g_current->live == 0) ReleaseChunk(g_current);
      g_current = c;
    }
    h = reinterpret_cast<Header*>(g_current->base + g_current->used);
    g_current->used += need;
    ++g_current->live;
    h->chunk = g_current;
  } else {
    h = static_cast<Header*>(std::aligned_alloc(64, need));
    if (h == nullptr) return nullptr;
    h->chunk = nullptr;
  }
  h->size = size;
  return reinterpret_cast<char*>(h) + kHeader;
}

Header* HeaderOf(void* p) { return reinterpret_cast<Header*>(static_cast<char*>(p) - kHeader); }

void Free(void* p) {
  if (p == nullptr) return;
  Header* h = HeaderOf(p);
  Chunk* c = h->chunk;
  if (c == nullptr) {
    std::free(h);
    return;
  }
  std::lock_guard<std::mutex> lock(g_mu);
  if (--c->live == 0) {
    if (c == g_current) {
      c->used = 0;  // reuse the current chunk from its start
    } else {
      ReleaseChunk(c);
    }
  }
}

void* XAllocate(void*, size_t size) { return Allocate(size); }
void* XReallocate(void*, void* p, size_t size) {
  if (p == nullptr) return Allocate(size);
  Header* h = HeaderOf(p);
  if (size <= h->size) return p;
  void* q = Allocate(size);
  if (q == nullptr) return nullptr;
  std::memcpy(q, p, h->size);
  Free(p);
  return q;
}
void XDeallocate(void*, void* p) { Free(p); }
void* XAlignedAllocate(void*, size_t alignment, size_t size) {
  return alignment <= 64 ? Allocate(size) : nullptr;
}
void XAlignedDeallocate(void*, void* p) { Free(p); }

}  // namespace

const xnn_allocator* KilnXnnAllocator() {
  static const xnn_allocator a = {nullptr, XAllocate, XReallocate, XDeallocate, XAlignedAllocate,
                                  XAlignedDeallocate};
  return &a;
}

}  // namespace kiln::xnn
