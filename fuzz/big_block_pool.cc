// operator new/delete for fuzz_csv: blocks of 1 MiB or more are kept and
// reused instead of mapped and unmapped on every call.
//
// Why: every CsvScanner allocates its read buffer (4 MiB by default), several
// times per input. ASan serves such blocks with a fresh mmap each time, and
// the page faults of touching 4 MiB made fuzz_csv run at ~50 inputs/s on the
// 2-core VM. Reused blocks keep ASan's checks: a free block is poisoned whole
// (a use after delete is reported), a live block past its size is poisoned
// (an overflow is reported). Everything smaller, and aligned new, goes to
// malloc/aligned_alloc, which ASan intercepts as usual; every variant is
// defined here so that new and delete always pair (ASan's
// alloc-dealloc-mismatch check between new and free is what this loses).
// A live block is a LeakSanitizer root region (libFuzzer's own large vectors
// land here too, and what they point to must not look leaked).
#include <sanitizer/asan_interface.h>
#include <sanitizer/lsan_interface.h>
#include <sys/mman.h>

#include <cstddef>
#include <cstdlib>
#include <mutex>
#include <new>

namespace {

constexpr size_t kBig = 1 << 20;
constexpr int kSlots = 16;

struct Block {
  void* p = nullptr;
  size_t size = 0;  // bytes asked for (a block is reused for the same size only)
};

std::mutex mu;
Block live[kSlots];
Block spare[kSlots];

size_t Capacity(size_t n) { return (n + 4095) & ~static_cast<size_t>(4095); }

void* Alloc(size_t n) {
  if (n >= kBig) {
    std::lock_guard<std::mutex> lock(mu);
    for (Block& b : live) {
      if (b.p != nullptr) continue;
      for (Block& s : spare) {
        if (s.p != nullptr && s.size == n) {
          b = s;
          s = Block();
          ASAN_UNPOISON_MEMORY_REGION(b.p, n);
          __lsan_register_root_region(b.p, n);
          return b.p;
        }
      }
      void* p = mmap(nullptr, Capacity(n), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                     -1, 0);
      if (p == MAP_FAILED) break;
      ASAN_POISON_MEMORY_REGION(static_cast<char*>(p) + n, Capacity(n) - n);
      b = Block{p, n};
      __lsan_register_root_region(p, n);
      return p;
    }
  }
  void* p = std::malloc(n == 0 ? 1 : n);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

void Free(void* p) {
  if (p == nullptr) return;
  {
    std::lock_guard<std::mutex> lock(mu);
    for (Block& b : live) {
      if (b.p != p) continue;
      __lsan_unregister_root_region(b.p, b.size);
      ASAN_POISON_MEMORY_REGION(b.p, Capacity(b.size));
      for (Block& s : spare) {
        if (s.p == nullptr) {
          s = b;
          b = Block();
          return;
        }
      }
      munmap(b.p, Capacity(b.size));
      b = Block();
      return;
    }
  }
  std::free(p);
}

void* AllocAligned(size_t n, std::align_val_t a) {
  const size_t align = static_cast<size_t>(a);
  void* p = std::aligned_alloc(align, (n + align - 1) / align * align);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

}  // namespace

void* operator new(size_t n) { return Alloc(n); }
void* operator new[](size_t n) { return Alloc(n); }
void* operator new(size_t n, const std::nothrow_t&) noexcept {
  try {
    return Alloc(n);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](size_t n, const std::nothrow_t& t) noexcept { return operator new(n, t); }
void* operator new(size_t n, std::align_val_t a) { return AllocAligned(n, a); }
void* operator new[](size_t n, std::align_val_t a) { return AllocAligned(n, a); }
void* operator new(size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  try {
    return AllocAligned(n, a);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](size_t n, std::align_val_t a, const std::nothrow_t& t) noexcept {
  return operator new(n, a, t);
}
void operator delete(void* p) noexcept { Free(p); }
void operator delete[](void* p) noexcept { Free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { Free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { Free(p); }
void operator delete(void* p, size_t) noexcept { Free(p); }
void operator delete[](void* p, size_t) noexcept { Free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t, std::align_val_t) noexcept { std::free(p); }
