#include "io/bytes.hpp"

#include <zlib.h>

namespace flowad {
inline namespace v0 {
namespace detail {

std::uint32_t crc32(const void* data, std::size_t size, std::uint32_t crc) noexcept {
  // zlib returns its initial value, not `crc`, for a null buffer: an empty chunk must not restart the chain.
  if (size == 0) return crc;
  return static_cast<std::uint32_t>(::crc32_z(crc, static_cast<const Bytef*>(data), size));
}

}  // namespace detail
}  // namespace v0
}  // namespace flowad
