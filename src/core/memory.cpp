#include <sys/mman.h>

#include <new>

#include "flowad/tensor.hpp"

namespace flowad {
inline namespace v0 {
namespace detail {

namespace {
constexpr std::size_t huge_page = std::size_t{2} << 20;
}

void* allocate_bytes(std::size_t bytes) {
  if (bytes < huge_buffer_bytes) return ::operator new(bytes, std::align_val_t{buffer_alignment});
  void* p = ::operator new(bytes, std::align_val_t{huge_page});
  // Advice only: without transparent huge pages the buffer still works, at 4 KiB first-touch speed.
  ::madvise(p, bytes, MADV_HUGEPAGE);
  return p;
}

void free_bytes(void* p, std::size_t bytes) noexcept {
  if (!p) return;
  if (bytes < huge_buffer_bytes) ::operator delete(p, std::align_val_t{buffer_alignment});
  else ::operator delete(p, std::align_val_t{huge_page});
}

}  // namespace detail
}  // namespace v0
}  // namespace flowad
