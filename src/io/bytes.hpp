// Byte-level helpers shared by the file formats flowad reads and writes (model files, .npy/.npz, PNG).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace flowad {
inline namespace v0 {
namespace detail {

// CRC-32 (IEEE 802.3, the polynomial of zip, zlib and PNG). Chains: crc32(b, nb, crc32(a, na)) is the
// checksum of a followed by b.
std::uint32_t crc32(const void* data, std::size_t size, std::uint32_t crc = 0) noexcept;

inline bool host_is_little_endian() noexcept {
  const std::uint32_t one = 1;
  std::uint8_t first;
  std::memcpy(&first, &one, 1);
  return first == 1;
}

}  // namespace detail
}  // namespace v0
}  // namespace flowad
