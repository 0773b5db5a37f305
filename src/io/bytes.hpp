// Byte-level helpers shared by the file formats flowad reads and writes (model files, .npy/.npz, PNG).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

namespace flowad {
inline namespace v0 {
namespace detail {

// CRC-32 (IEEE 802.3, the polynomial of zip, zlib and PNG), computed by zlib. Chains:
// crc32(b, nb, crc32(a, na)) is the checksum of a followed by b; an empty chunk leaves it unchanged.
std::uint32_t crc32(const void* data, std::size_t size, std::uint32_t crc = 0) noexcept;

inline bool host_is_little_endian() noexcept {
  const std::uint32_t one = 1;
  std::uint8_t first;
  std::memcpy(&first, &one, 1);
  return first == 1;
}

// Little-endian fields (zip records, .npy header lengths), whatever the host's byte order.
inline std::uint16_t le16(const std::uint8_t* p) noexcept {
  return static_cast<std::uint16_t>(p[0] | (p[1] << 8));
}
inline std::uint32_t le32(const std::uint8_t* p) noexcept {
  return static_cast<std::uint32_t>(p[0]) | (static_cast<std::uint32_t>(p[1]) << 8) |
         (static_cast<std::uint32_t>(p[2]) << 16) | (static_cast<std::uint32_t>(p[3]) << 24);
}
inline std::uint64_t le64(const std::uint8_t* p) noexcept {
  return static_cast<std::uint64_t>(le32(p)) | (static_cast<std::uint64_t>(le32(p + 4)) << 32);
}
// Big-endian (PNG chunk lengths).
inline std::uint32_t be32(const std::uint8_t* p) noexcept {
  return (static_cast<std::uint32_t>(p[0]) << 24) | (static_cast<std::uint32_t>(p[1]) << 16) |
         (static_cast<std::uint32_t>(p[2]) << 8) | static_cast<std::uint32_t>(p[3]);
}
inline void put16(std::string& out, std::uint32_t v) {
  out.push_back(static_cast<char>(v & 0xFFu));
  out.push_back(static_cast<char>((v >> 8) & 0xFFu));
}
inline void put32(std::string& out, std::uint32_t v) {
  put16(out, v & 0xFFFFu);
  put16(out, v >> 16);
}

}  // namespace detail
}  // namespace v0
}  // namespace flowad
