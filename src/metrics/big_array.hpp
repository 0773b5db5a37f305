// Uninitialised storage for large temporary arrays of trivial types (private to src/metrics).
//
// On Linux, arrays of 2 MiB and more are mapped with MADV_HUGEPAGE: on the project's VMs the first
// touch of fresh 4 KiB pages runs at ~0.2 GB/s (a 22 MB key array costs ~100 ms before any work),
// while 2 MiB pages are touched in ~2 ms. Elsewhere, or if mapping fails, plain operator new.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <type_traits>
#include <utility>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace flowad {
inline namespace v0 {
namespace metrics_detail {

template <class T>
class big_array {
  static_assert(std::is_trivially_copyable_v<T> && std::is_trivially_destructible_v<T>, "big_array holds trivial types");

 public:
  big_array() noexcept = default;
  explicit big_array(std::size_t size) { allocate(size); }
  ~big_array() { release(); }
  big_array(big_array&& other) noexcept { *this = std::move(other); }
  big_array& operator=(big_array&& other) noexcept {
    if (this != &other) {
      release();
      data_ = std::exchange(other.data_, nullptr);
      size_ = std::exchange(other.size_, 0);
      base_ = std::exchange(other.base_, nullptr);
      mapped_bytes_ = std::exchange(other.mapped_bytes_, 0);
    }
    return *this;
  }
  big_array(const big_array&) = delete;
  big_array& operator=(const big_array&) = delete;

  T* data() noexcept { return data_; }
  const T* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  T& operator[](std::size_t i) noexcept { return data_[i]; }
  const T& operator[](std::size_t i) const noexcept { return data_[i]; }

 private:
  static constexpr std::size_t huge_page = std::size_t{2} << 20;

  void allocate(std::size_t size) {
    if (size == 0) return;
    if (size > static_cast<std::size_t>(-1) / sizeof(T) - 2 * huge_page) throw std::bad_alloc();
    const std::size_t bytes = size * sizeof(T);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (bytes >= huge_page) {
      const std::size_t total = bytes + huge_page;  // room to align the start to a huge page
      void* p = ::mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p != MAP_FAILED) {
        const std::uintptr_t aligned =
            (reinterpret_cast<std::uintptr_t>(p) + huge_page - 1) & ~static_cast<std::uintptr_t>(huge_page - 1);
        ::madvise(reinterpret_cast<void*>(aligned), bytes, MADV_HUGEPAGE);  // advice only; failure is harmless
        base_ = p;
        mapped_bytes_ = total;
        data_ = reinterpret_cast<T*>(aligned);
        size_ = size;
        return;
      }
    }
#endif
    data_ = static_cast<T*>(::operator new(bytes));
    size_ = size;
  }

  void release() noexcept {
#if defined(__linux__)
    if (base_ != nullptr) {
      ::munmap(base_, mapped_bytes_);
      base_ = nullptr;
      data_ = nullptr;
      size_ = 0;
      return;
    }
#endif
    ::operator delete(data_);
    data_ = nullptr;
    size_ = 0;
  }

  T* data_ = nullptr;
  std::size_t size_ = 0;
  void* base_ = nullptr;
  std::size_t mapped_bytes_ = 0;
};

}  // namespace metrics_detail
}  // namespace v0
}  // namespace flowad
